//! `lookalike serve`: an HTTP API and a web page over one shared [`SearchService`], the
//! model loaded once. Concurrent photo queries share model calls (the core's batcher);
//! every queue is bounded (503 with Retry-After when full), bodies are capped, every
//! error is JSON `{"error": {"kind", "message"}}`, and item photos are read only through
//! the catalog source by the store's keys, so no request names a path.

mod config;
mod error;
mod items;
mod jobs;
mod metrics;
mod openapi;
mod page;
mod search;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use lookalike_core::batcher::Batcher;
use lookalike_core::SearchService;
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

pub use config::{ServerConfig, Token};
use error::ApiError;

/// What every handler shares.
pub(crate) struct App {
    service: Arc<SearchService>,
    config: ServerConfig,
    batcher: Batcher,
    permits: Semaphore,
    /// Searches admitted (running or waiting), and how many may be.
    admitted: AtomicUsize,
    max_admitted: usize,
    timeout: Duration,
    metrics: Arc<metrics::Metrics>,
    thumbnails: items::ThumbnailCache,
    jobs: Arc<jobs::Jobs>,
    near: items::NearScans,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    status: String,
    items: usize,
    /// exact or annoy.
    search: String,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// The server starts listening only once the model is loaded and the index open, so
/// answering at all means ready.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Model loaded, index open", body = Ready)))]
async fn readyz(State(app): State<Arc<App>>) -> Json<Ready> {
    let s = app.service.snapshot();
    Json(Ready { status: "ready".into(), items: s.len(), search: s.method().into() })
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint (see /v1/openapi.json or the README's HTTP API)",
    )
}

/// The API's routes over a service, and its index jobs; starts the batch worker.
fn router(service: Arc<SearchService>, config: &ServerConfig) -> anyhow::Result<(Router, Arc<jobs::Jobs>)> {
    let metrics = Arc::new(metrics::Metrics::new());
    let observer = metrics.clone();
    let batcher = Batcher::start(
        service.clone(),
        config.batch_size,
        Duration::from_millis(config.batch_wait_ms),
        // Every photo query holds an admission; the slack is for queries whose clients
        // hung up, until the worker drops them.
        2 * (config.max_concurrent + config.max_queue).max(1),
        Box::new(move |n| observer.batch(n)),
    )?;
    let app = Arc::new(App {
        service,
        config: config.clone(),
        batcher,
        permits: Semaphore::new(config.max_concurrent),
        admitted: AtomicUsize::new(0),
        max_admitted: config.max_concurrent + config.max_queue,
        timeout: Duration::from_secs(config.timeout_s),
        metrics,
        thumbnails: items::thumbnail_cache(config.thumbnail_cache_mib),
        jobs: Arc::default(),
        near: items::NearScans::default(),
    });
    let jobs = app.jobs.clone();
    let router = Router::new()
        .route("/", get(page::page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/search", post(search::search_handler))
        .route("/v1/items/{id}", get(items::item))
        .route("/v1/items/{id}/similar", get(search::similar))
        .route("/v1/items/{id}/image", get(items::image))
        .route("/v1/items/{id}/thumbnail", get(items::thumbnail))
        .route("/v1/facets", get(items::facets))
        .route("/v1/dupes", get(items::dupes))
        .route("/v1/index", post(jobs::start))
        .route("/v1/jobs/{id}", get(jobs::get))
        .fallback(not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panicked))
        .layer(axum::middleware::from_fn_with_state(app.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(config.max_body_kib * 1024))
        .with_state(app);
    Ok((router, jobs))
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight and returns.
/// `listening` is told the bound address (port 0 picks a free one).
pub fn serve(
    service: Arc<SearchService>,
    config: &ServerConfig,
    listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    // The blocking threads decode photos and rank: CPU work, so a few per core is all
    // that helps, and the bound keeps the threads (and their memory) few under load.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads((4 * cores).max(8)).build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let (router, jobs) = router(service, config)?;
        listening(listener.local_addr()?);
        let stop = async move {
            shutdown().await;
            // A running index job stops at its next batch; its journal keeps the work.
            jobs.cancel.store(true, Ordering::SeqCst);
        };
        axum::serve(listener, router).with_graceful_shutdown(stop).await?;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
