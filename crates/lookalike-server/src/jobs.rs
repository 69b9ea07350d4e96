//! `POST /v1/index` and `GET /v1/jobs/{id}`: an incremental reindex on a thread of its own
//! while searches go on; when it is saved the service switches to the new version at
//! once (a search sees one version or the other, never a mix). One job at a time; the
//! write endpoint needs the bearer token and is refused when the server has none.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use lookalike_core::{Phase, Progress, SearchService};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::App;

/// Finished jobs kept for `GET /v1/jobs/{id}`.
const KEPT: usize = 32;

#[derive(Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// What an index run changed.
#[derive(Clone, Serialize, ToSchema)]
pub struct JobReport {
    items: usize,
    added: usize,
    updated: usize,
    removed: usize,
    unchanged: usize,
    skipped: usize,
    embedded: usize,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct JobOut {
    id: u64,
    state: JobState,
    /// scanning, hashing, embedding, saving, describing or trees.
    phase: String,
    /// Work done and to do in this phase.
    done: usize,
    total: usize,
    /// Items per second in this phase.
    rate: f64,
    elapsed_s: f64,
    report: Option<JobReport>,
    error: Option<String>,
}

struct Job {
    out: JobOut,
    started: Instant,
    phase_started: Instant,
}

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    running: AtomicBool,
    recent: Mutex<VecDeque<Arc<Mutex<Job>>>>,
    /// Set on shutdown: a running job stops at its next batch (its journal keeps the work).
    pub cancel: Arc<AtomicBool>,
}

fn phase_name(phase: Phase) -> String {
    format!("{phase:?}").to_lowercase()
}

impl Jobs {
    fn get(&self, id: u64) -> Option<JobOut> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().map(|j| j.lock().unwrap_or_else(|e| e.into_inner())).find(|j| j.out.id == id).map(|j| {
            let mut out = j.out.clone();
            if out.state == JobState::Running {
                out.elapsed_s = j.started.elapsed().as_secs_f64();
            }
            out
        })
    }

    /// Starts a reindex unless one is running.
    fn start(self: &Arc<Self>, service: Arc<SearchService>) -> ApiResult<JobOut> {
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(ApiError::new(StatusCode::CONFLICT, "job_running", "an index job is running already"));
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let now = Instant::now();
        let out = JobOut {
            id,
            state: JobState::Running,
            phase: phase_name(Phase::Scanning),
            done: 0,
            total: 0,
            rate: 0.0,
            elapsed_s: 0.0,
            report: None,
            error: None,
        };
        let job = Arc::new(Mutex::new(Job { out: out.clone(), started: now, phase_started: now }));
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.push_back(job.clone());
            while recent.len() > KEPT {
                recent.pop_front();
            }
        }
        let jobs = self.clone();
        let spawned = std::thread::Builder::new().name(format!("index-job-{id}")).spawn(move || {
            let lock = || job.lock().unwrap_or_else(|e| e.into_inner());
            let progress = |p: Progress| {
                let mut j = lock();
                let phase = phase_name(p.phase);
                if phase != j.out.phase {
                    j.out.phase = phase;
                    j.phase_started = Instant::now();
                }
                let secs = j.phase_started.elapsed().as_secs_f64();
                j.out.done = p.done;
                j.out.total = p.total;
                j.out.rate = if secs > 0.0 { p.done as f64 / secs } else { 0.0 };
            };
            let result = service.engine().index(false, &jobs.cancel, &progress).and_then(|r| {
                service.reload()?;
                Ok(r)
            });
            let mut j = lock();
            j.out.elapsed_s = j.started.elapsed().as_secs_f64();
            match result {
                Ok(r) => {
                    j.out.state = JobState::Done;
                    j.out.report = Some(JobReport {
                        items: r.items,
                        added: r.added.len(),
                        updated: r.updated.len(),
                        removed: r.removed.len(),
                        unchanged: r.unchanged,
                        skipped: r.skipped.len(),
                        embedded: r.embedded,
                    });
                }
                Err(e) => {
                    j.out.state = JobState::Failed;
                    j.out.error = Some(e.to_string());
                }
            }
            drop(j);
            jobs.running.store(false, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            self.running.store(false, Ordering::SeqCst);
            return Err(ApiError::internal(format!("cannot start the index job: {e}")));
        }
        Ok(out)
    }
}

/// Refuses a write without the server's token.
fn authorize(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    let Some(token) = &app.config.token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "writes_disabled",
            "this server has no token: set [server] token or LOOKALIKE_SERVER_TOKEN to allow writes",
        ));
    };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !token.admits(given) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <token>"));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/index", tag = "index", security(("bearer" = [])),
    responses((status = 202, description = "The job started", body = JobOut),
        (status = 401, description = "Missing or wrong token", body = ErrorOut),
        (status = 403, description = "The server has no token: writes are off", body = ErrorOut),
        (status = 409, description = "A job is running", body = ErrorOut)))]
pub async fn start(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<(StatusCode, Json<JobOut>)> {
    authorize(&app, &headers)?;
    let job = app.jobs.start(app.service.clone())?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "index", params(("id" = u64, Path, description = "The job id from POST /v1/index")),
    responses((status = 200, body = JobOut), (status = 400, description = "Not a job id", body = ErrorOut),
        (status = 404, description = "No such job", body = ErrorOut)))]
pub async fn get(
    State(app): State<Arc<App>>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<JobOut>> {
    let Path(id) = id.map_err(|r| ApiError::bad_request(r.body_text()))?;
    app.jobs
        .get(id)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_job", format!("no job {id}")))
}
