//! `lookalike serve`: an HTTP API over one shared [`SearchService`], the model loaded
//! once. Search work runs on blocking threads, at most `max_concurrent` at a time (more
//! are answered 503 with Retry-After rather than queued without bound); bodies are capped;
//! every error is JSON `{"error": {"kind", "message"}}`; item images are read only
//! through the catalog source, by the keys of the store, so no request names a path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lookalike_core::catalog::{Field, Filter};
use lookalike_core::service::Facet;
use lookalike_core::{Config, ErrorKind, Hit, Query, SearchService};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// The `[server]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; loopback unless you mean to expose it.
    pub listen: SocketAddr,
    /// Largest request body, in KiB (an uploaded photo).
    pub max_body_kib: usize,
    /// Searches running at once; more wait in a queue.
    pub max_concurrent: usize,
    /// Searches waiting at most; more are answered 503 with Retry-After.
    pub max_queue: usize,
    /// Longest a search may take before the answer is 503.
    pub timeout_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_kib: 16 * 1024,
            max_concurrent: 4,
            max_queue: 64,
            timeout_s: 30,
        }
    }
}

impl ServerConfig {
    /// The `[server]` section of a configuration; unknown keys are errors naming them.
    pub fn from_config(config: &Config) -> anyhow::Result<ServerConfig> {
        let parsed: ServerConfig =
            config.server.clone().try_into().map_err(|e| anyhow::anyhow!("invalid [server] section: {e}"))?;
        if parsed.max_concurrent == 0 || parsed.max_body_kib == 0 || parsed.timeout_s == 0 {
            anyhow::bail!("invalid [server] section: max_concurrent, max_body_kib and timeout_s must be at least 1");
        }
        Ok(parsed)
    }
}

struct App {
    service: Arc<SearchService>,
    permits: Semaphore,
    /// Searches running or waiting for a permit, and how many may.
    admitted: AtomicUsize,
    max_admitted: usize,
    timeout: Duration,
}

/// A search's place in the bounded queue, given back when it ends.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A JSON error with its status.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, message: message.into() }
    }
}

impl From<lookalike_core::Error> for ApiError {
    fn from(e: lookalike_core::Error) -> ApiError {
        let (status, kind) = match e.kind() {
            ErrorKind::UnknownItem => (StatusCode::NOT_FOUND, "unknown_item"),
            ErrorKind::AmbiguousItem => (StatusCode::CONFLICT, "ambiguous_item"),
            ErrorKind::BadImage => (StatusCode::UNPROCESSABLE_ENTITY, "bad_image"),
            ErrorKind::NotIndexed | ErrorKind::Outdated | ErrorKind::Locked => {
                (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": { "kind": self.kind, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// `k`, `offset` and repeated `filter=field:value` of a search URL.
struct Params {
    k: usize,
    offset: usize,
    filters: Vec<Filter>,
}

fn params(query: Option<String>, default_k: usize) -> ApiResult<Params> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| bad(format!("query string: {e}")))?;
    let mut p = Params { k: default_k, offset: 0, filters: Vec::new() };
    for (key, value) in pairs {
        let number = |v: &str| v.parse::<usize>().map_err(|_| bad(format!("{key}={v:?} is not a whole number")));
        match key.as_str() {
            "k" => p.k = number(&value)?,
            "offset" => p.offset = number(&value)?,
            "filter" => {
                let (field, v) =
                    value.split_once(':').ok_or_else(|| bad(format!("filter {value:?} is not field:value")))?;
                let field = Field::from_column(field.trim())
                    .ok_or_else(|| bad(format!("unknown filter field {field:?}: use one of {}", Field::columns())))?;
                p.filters.push(Filter { field, value: v.trim().to_string() });
            }
            other => return Err(bad(format!("unknown parameter {other:?}: use k, offset, filter"))),
        }
    }
    if p.k == 0 || p.k > 1000 || p.offset > 10_000 {
        return Err(bad("k must be 1 to 1000 and offset at most 10000".into()));
    }
    Ok(p)
}

/// A hit as clients see it: no server paths, a URL for the photo.
#[derive(Serialize)]
struct HitOut {
    rank: usize,
    id: String,
    rel: String,
    score: f32,
    metadata: Option<lookalike_core::catalog::Product>,
    image_url: String,
}

impl From<Hit> for HitOut {
    fn from(h: Hit) -> HitOut {
        HitOut { image_url: image_url(&h.id), rank: h.rank, id: h.id, rel: h.rel, score: h.score, metadata: h.metadata }
    }
}

#[derive(Serialize)]
struct SearchOut {
    hits: Vec<HitOut>,
    took_ms: f64,
}

/// Runs a search on a blocking thread, within the concurrency limit and the timeout.
async fn run_search(app: &Arc<App>, query: Query, p: Params) -> ApiResult<Json<SearchOut>> {
    if app.admitted.fetch_add(1, Ordering::SeqCst) >= app.max_admitted {
        app.admitted.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many searches waiting; retry shortly"));
    }
    let _admission = Admission(&app.admitted);
    let started = Instant::now();
    let busy = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the search took too long");
    let _permit = match tokio::time::timeout(app.timeout, app.permits.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => return Err(busy()),
    };
    let service = app.service.clone();
    let work =
        tokio::task::spawn_blocking(move || service.search(&query, p.k + p.offset, &p.filters).map(|h| (h, p.offset)));
    let left = app.timeout.saturating_sub(started.elapsed());
    let (hits, offset) = match tokio::time::timeout(left, work).await {
        Err(_) => return Err(busy()),
        Ok(Err(join)) => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("search failed: {join}")))
        }
        Ok(Ok(result)) => result?,
    };
    let hits = hits.into_iter().skip(offset).map(HitOut::from).collect();
    Ok(Json(SearchOut { hits, took_ms: started.elapsed().as_secs_f64() * 1000.0 }))
}

/// Where a client fetches an item's photo.
fn image_url(id: &str) -> String {
    format!("/v1/items/{}/image", url_path(id))
}

/// A product id as one URL path segment.
fn url_path(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemQuery {
    item: String,
}

async fn search(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<SearchOut>> {
    // Over the body limit is 413, as JSON like every other error.
    let body = body.map_err(|r| {
        let kind = if r.status() == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_request" };
        ApiError::new(r.status(), kind, r.body_text())
    })?;
    let p = params(q, app.service.engine().config().k)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let query = if content_type.starts_with("application/json") {
        let item: ItemQuery = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("JSON body: {e}")))?;
        Query::Item(item.item)
    } else if content_type.starts_with("image/") || content_type == "application/octet-stream" {
        if body.is_empty() {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "empty body: send the image's bytes"));
        }
        Query::Bytes { name: "the uploaded image".into(), bytes: body.to_vec() }
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {content_type:?}: send image/* bytes or application/json {{\"item\": ID}}"),
        ));
    };
    run_search(&app, query, p).await
}

async fn similar(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<SearchOut>> {
    let p = params(q, app.service.engine().config().k)?;
    run_search(&app, Query::Item(id), p).await
}

#[derive(Serialize)]
struct ItemOut {
    id: String,
    rel: String,
    image_url: String,
    metadata: Option<lookalike_core::catalog::Product>,
}

async fn item(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<ItemOut>> {
    let snapshot = app.service.snapshot();
    let row = snapshot.find_item(&id)?;
    let rel = snapshot.store().entries()[row].path.clone();
    let id = lookalike_core::catalog::product_id(&rel).to_string();
    Ok(Json(ItemOut { image_url: image_url(&id), id, rel, metadata: snapshot.product(row).cloned() }))
}

async fn image(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Response> {
    let snapshot = app.service.snapshot();
    let rel = snapshot.store().entries()[snapshot.find_item(&id)?].path.clone();
    let source = app.service.engine().source().clone();
    let key = rel.clone();
    let bytes = tokio::task::spawn_blocking(move || source.read(&key))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unreadable_image", format!("{rel}: {e}")))?;
    let ext = rel.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let mime = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

/// The fields worth a facet: categories, not per-product ids and names.
const FACET_FIELDS: &[Field] = &[
    Field::Gender,
    Field::MasterCategory,
    Field::SubCategory,
    Field::ArticleType,
    Field::BaseColour,
    Field::Season,
    Field::Year,
    Field::Usage,
];

async fn facets(State(app): State<Arc<App>>) -> Json<Vec<Facet>> {
    Json(app.service.snapshot().facets(FACET_FIELDS))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let s = app.service.snapshot();
    Json(serde_json::json!({ "status": "ready", "items": s.len(), "search": s.method() }))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint (see the README's HTTP API)")
}

/// The API's routes over a service.
pub fn router(service: Arc<SearchService>, config: &ServerConfig) -> Router {
    let app = Arc::new(App {
        service,
        permits: Semaphore::new(config.max_concurrent),
        admitted: AtomicUsize::new(0),
        max_admitted: config.max_concurrent + config.max_queue,
        timeout: Duration::from_secs(config.timeout_s),
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/search", post(search))
        .route("/v1/items/{id}", get(item))
        .route("/v1/items/{id}/similar", get(similar))
        .route("/v1/items/{id}/image", get(image))
        .route("/v1/facets", get(facets))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.max_body_kib * 1024))
        .with_state(app)
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight and returns.
/// `listening` is told the bound address (port 0 picks a free one).
pub fn serve(
    service: Arc<SearchService>,
    config: &ServerConfig,
    listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        listening(listener.local_addr()?);
        axum::serve(listener, router(service, config)).with_graceful_shutdown(shutdown()).await?;
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
