//! Work off the UI thread: listing folders, searching, reindexing, thumbnails. Each job
//! reports back as an event on the UI loop's channel.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossterm::event::{KeyEvent, MouseEvent};
use ratatui_image::picker::Picker;

use lookalike_core::catalog::{self, Filter};
use lookalike_core::indexer::Throttle;
use lookalike_core::review::Decisions;
use lookalike_core::{Config, Engine, Error, ErrorKind, Progress, Query, SearchService, Steering};

use super::action::{Effect, Msg};
use super::photo_cache::{self, PhotoCache};
use super::state::{DirEntry, ReviewData, ReviewGroup, ReviewPhoto, FACET_FIELDS};
use super::widgets::{self, Ready, ThumbKey};

pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Msg(Msg),
    Thumb(ThumbKey, Result<Ready, String>),
}

enum SearchJob {
    /// Open the catalog, or open it again after an index run.
    Open,
    /// Load the duplicate groups of the open version and the saved decisions.
    Review,
    Search {
        id: u64,
        query: Query,
        steering: Steering,
        k: usize,
        filters: Vec<Filter>,
    },
}

/// Thumbnail threads; two keep a page filling quickly while the search thread embeds.
const THUMB_THREADS: usize = 2;

/// The engine every worker shares (one model in memory), or why there is none.
type Shared = Result<Arc<Engine>, String>;

pub struct Workers {
    /// Set by the search thread, which opens the engine (pulling a published state can
    /// take a while), so the UI thread never waits on it.
    engine: Arc<OnceLock<Shared>>,
    events: Sender<Event>,
    search: Sender<SearchJob>,
    thumbs: Sender<ThumbKey>,
    cancel: Arc<AtomicBool>,
    reindex: Option<JoinHandle<()>>,
    /// Review decisions to save, in order, on a thread of their own; quitting waits for it.
    saves: Option<Sender<Decisions>>,
    writer: Option<JoinHandle<()>>,
}

impl Workers {
    /// Starts the workers; thumbnails of a remote catalog go through an on-disk cache of
    /// `photo_cache_bytes` (0 = none).
    pub fn start(config: &Config, picker: Picker, events: Sender<Event>, photo_cache_bytes: u64) -> Workers {
        let engine: Arc<OnceLock<Shared>> = Arc::default();
        let (search, jobs) = mpsc::channel();
        let (cell, settings, tx) = (engine.clone(), config.clone(), events.clone());
        std::thread::Builder::new()
            .name("search".into())
            .spawn(move || {
                let opened = Engine::new(settings.clone()).map(Arc::new).map_err(|e| open_problem(&settings, &e));
                if let Ok(engine) = &opened {
                    preload_model(engine.clone(), tx.clone());
                }
                search_loop(cell.get_or_init(|| opened).clone(), jobs, tx)
            })
            .expect("spawn search thread");
        let (thumbs, keys) = mpsc::channel::<ThumbKey>();
        let keys = Arc::new(Mutex::new(keys));
        let remote = catalog::url_scheme(&config.catalog).is_some();
        let cache = (remote && photo_cache_bytes > 0)
            .then(photo_cache::default_dir)
            .flatten()
            .map(|dir| Arc::new(PhotoCache::open(dir, photo_cache_bytes)));
        for i in 0..THUMB_THREADS {
            let (keys, tx, picker, cache) = (keys.clone(), events.clone(), picker.clone(), cache.clone());
            let cell = engine.clone();
            std::thread::Builder::new()
                .name(format!("thumbs-{i}"))
                .spawn(move || loop {
                    let next = keys.lock().map(|rx| rx.recv());
                    let Ok(Ok(key)) = next else { return };
                    // Before the catalog is open only the picker's local files are shown.
                    let catalog = cell.get().and_then(|e| e.as_ref().ok()).map(|e| e.source().clone());
                    let made = widgets::make(&picker, &key, catalog.as_deref(), cache.as_deref());
                    if tx.send(Event::Thumb(key, made)).is_err() {
                        return;
                    }
                })
                .expect("spawn thumbnail thread");
        }
        let _ = search.send(SearchJob::Open);
        let (saves, to_save) = mpsc::channel();
        let (cell, tx) = (engine.clone(), events.clone());
        let writer = std::thread::Builder::new()
            .name("review-writer".into())
            .spawn(move || save_decisions(&cell, &to_save, &tx))
            .expect("spawn review writer thread");
        Workers {
            engine,
            events,
            search,
            thumbs,
            cancel: Arc::new(AtomicBool::new(false)),
            reindex: None,
            saves: Some(saves),
            writer: Some(writer),
        }
    }

    pub fn thumbnails(&self, keys: Vec<ThumbKey>) {
        for key in keys {
            let _ = self.thumbs.send(key);
        }
    }

    /// Runs an effect; `Copy` is returned as terminal output for the caller to write.
    pub fn run(&mut self, effect: Effect) -> Option<String> {
        match effect {
            Effect::ListDir(dir) => {
                let tx = self.events.clone();
                std::thread::spawn(move || {
                    let entries = list_dir(&dir);
                    let _ = tx.send(Event::Msg(Msg::Listed { dir, entries }));
                });
            }
            Effect::Search { id, query, steering, k, filters } => {
                let _ = self.search.send(SearchJob::Search { id, query, steering, k, filters });
            }
            Effect::Reopen => {
                let _ = self.search.send(SearchJob::Open);
            }
            Effect::Reindex { full } => {
                self.join_reindex();
                self.cancel.store(false, Ordering::SeqCst);
                let engine = self.engine.get().cloned().unwrap_or_else(|| Err("the catalog is still opening".into()));
                let (cancel, tx) = (self.cancel.clone(), self.events.clone());
                self.reindex = Some(
                    std::thread::Builder::new()
                        .name("reindex".into())
                        .spawn(move || reindex(engine, full, &cancel, tx))
                        .expect("spawn reindex thread"),
                );
            }
            Effect::CancelReindex => self.cancel.store(true, Ordering::SeqCst),
            Effect::LoadReview => {
                let _ = self.search.send(SearchJob::Review);
            }
            Effect::SaveReview(decisions) => {
                if let Some(saves) = &self.saves {
                    let _ = saves.send(decisions);
                }
            }
            Effect::Open(path) => {
                if let Err(e) = open_with_system_viewer(&path) {
                    let _ = self.events.send(Event::Msg(Msg::Problem(e)));
                }
            }
            Effect::Copy(text) => return Some(osc52(&text)),
        }
        None
    }

    fn join_reindex(&mut self) {
        if let Some(handle) = self.reindex.take() {
            let _ = handle.join();
        }
    }

    /// Stops a running reindex between batches and waits for it, and for the review
    /// decisions still to be saved, so quitting never leaves half-written state.
    pub fn finish(mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.join_reindex();
        self.saves = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Folders and images in `dir`, folders first.
pub fn list_dir(dir: &Path) -> Result<Vec<DirEntry>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut entries: Vec<DirEntry> = read
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // Follow symlinks; a dangling one is left out.
            let meta = std::fs::metadata(e.path()).ok()?;
            if meta.is_dir() {
                Some(DirEntry { name, is_dir: true, size: 0 })
            } else if meta.is_file() && catalog::has_image_extension(Path::new(&name)) {
                Some(DirEntry { name, is_dir: false, size: meta.len() })
            } else {
                None
            }
        })
        .collect();
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase())));
    Ok(entries)
}

fn search_loop(engine: Shared, jobs: Receiver<SearchJob>, tx: Sender<Event>) {
    let mut service: Option<SearchService> = None;
    while let Ok(first) = jobs.recv() {
        // Only the newest search matters; an Open among the queued jobs still happens.
        let (mut open, mut review) = (false, false);
        let mut search = None;
        for job in std::iter::once(first).chain(jobs.try_iter()) {
            match job {
                SearchJob::Open => open = true,
                SearchJob::Review => review = true,
                s @ SearchJob::Search { .. } => search = Some(s),
            }
        }
        if open {
            // A reopened service keeps its engine, so the model is not loaded again.
            let opened = match (&engine, service.take()) {
                (Err(problem), _) => Err(problem.clone()),
                (Ok(e), None) => SearchService::open(e.clone(), None).map_err(|err| open_problem(e.config(), &err)),
                (Ok(e), Some(s)) => s.reload().map(|()| s).map_err(|err| open_problem(e.config(), &err)),
            };
            let msg = match opened {
                Ok(s) => {
                    let snapshot = s.snapshot();
                    let msg = Msg::Opened {
                        items: snapshot.len(),
                        method: snapshot.method(),
                        note: snapshot.note().map(|n| match snapshot.descriptors_saved() {
                            true => n.to_string(),
                            false => format!("{n}; press r to save them"),
                        }),
                        facets: snapshot.facets(&FACET_FIELDS),
                    };
                    service = Some(s);
                    msg
                }
                Err(problem) => Msg::OpenFailed(problem),
            };
            if tx.send(Event::Msg(msg)).is_err() {
                return;
            }
        }
        if review {
            let loaded = match (&engine, &service) {
                (Ok(e), Some(s)) => review_data(e, s).map(Box::new),
                (Err(problem), _) => Err(problem.clone()),
                (Ok(_), None) => Err("the catalog is not open".to_string()),
            };
            if tx.send(Event::Msg(Msg::ReviewLoaded(loaded))).is_err() {
                return;
            }
        }
        let Some(SearchJob::Search { id, query, steering, k, filters }) = search else { continue };
        let started = Instant::now();
        let outcome = match &service {
            None => Err("the catalog is not open yet".to_string()),
            Some(s) => s
                .search_steered(&query, &steering, k, &filters)
                .map(|hits| (hits, started.elapsed().as_secs_f64()))
                .map_err(|e| search_problem(&e)),
        };
        if tx.send(Event::Msg(Msg::Found { id, k, outcome })).is_err() {
            return;
        }
    }
}

/// The duplicate groups of the open version with their photos' locators, and the
/// decisions saved so far.
fn review_data(engine: &Engine, service: &SearchService) -> Result<ReviewData, String> {
    let known = service.snapshot().known_dupes();
    let decisions = Decisions::load(&engine.state().review()).map_err(|e| e.to_string())?;
    let source = engine.source();
    let groups = known
        .groups
        .iter()
        .map(|g| ReviewGroup {
            tier: g.tier,
            photos: g.members.iter().map(|m| ReviewPhoto { path: source.locator(&m.rel), member: m.clone() }).collect(),
        })
        .collect();
    Ok(ReviewData { groups, source: known.describe(), decisions })
}

/// Saves each set of decisions sent (the newest of those waiting), until the sender is gone.
fn save_decisions(engine: &OnceLock<Shared>, to_save: &Receiver<Decisions>, tx: &Sender<Event>) {
    while let Ok(first) = to_save.recv() {
        let newest = to_save.try_iter().last().unwrap_or(first);
        let saved = match engine.get() {
            Some(Ok(engine)) => newest.save(&engine.state().review()).map_err(|e| e.to_string()),
            Some(Err(problem)) => Err(problem.clone()),
            None => Err("the catalog is still opening".to_string()),
        };
        if let Err(e) = saved {
            let _ = tx.send(Event::Msg(Msg::Problem(format!("review decisions not saved: {e}"))));
        }
    }
}

/// Why the catalog cannot be searched, and what the user can do about it.
fn open_problem(config: &Config, err: &Error) -> String {
    match err.kind() {
        ErrorKind::Catalog if !config.catalog.is_dir() => format!(
            "No catalog at {}: run `lookalike demo` for the demo catalog, or pass --catalog DIR.",
            config.catalog.display()
        ),
        ErrorKind::NotIndexed => {
            let weights = if config.weights.is_file() {
                String::new()
            } else {
                format!(
                    " First fetch the model: `lookalike fetch-weights` (no weights at {}).",
                    config.weights.display()
                )
            };
            format!(
                "Catalog {} is not indexed yet: press r to index it (or run `lookalike index`).{weights}",
                config.catalog.display()
            )
        }
        ErrorKind::Outdated | ErrorKind::Damaged => format!("{err}: press r to index it again."),
        _ => err.to_string(),
    }
}

/// A failed search or index run in plain words, with what to do where there is something.
fn search_problem(err: &Error) -> String {
    match err.kind() {
        ErrorKind::WeightsMissing | ErrorKind::WeightsInvalid => format!("{err}: run `lookalike fetch-weights`"),
        ErrorKind::Locked => format!("{err}: wait for it to finish and press r again"),
        _ => err.to_string(),
    }
}

/// Loads (and warms up) the model on a thread of its own and says when it is ready; a
/// photo query asked meanwhile waits for this same load.
fn preload_model(engine: Arc<Engine>, tx: Sender<Event>) {
    let _ = tx.send(Event::Msg(Msg::ModelLoading));
    let _ = std::thread::Builder::new().name("model".into()).spawn(move || {
        let loaded = engine.warm_up().map_err(|e| search_problem(&e));
        let _ = tx.send(Event::Msg(Msg::ModelLoaded(loaded)));
    });
}

fn reindex(engine: Shared, full: bool, cancel: &AtomicBool, tx: Sender<Event>) {
    let throttle = Throttle::new(Duration::from_millis(100));
    let progress = |p: Progress| {
        if let Some(phase_seconds) = throttle.admit(p) {
            let _ = tx.send(Event::Msg(Msg::Progress { progress: p, phase_seconds }));
        }
    };
    let outcome = match engine {
        Err(problem) => Err(problem),
        Ok(engine) => engine.index(full, cancel, &progress).map_err(|e| search_problem(&e)),
    };
    let _ = tx.send(Event::Msg(Msg::Reindexed(outcome.map(Box::new))));
}

fn open_with_system_viewer(path: &Path) -> Result<(), String> {
    if lookalike_core::catalog::url_scheme(path).is_some() {
        return Err(format!("{} is in a remote catalog, not a file here: y copies its locator", path.display()));
    }
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    std::process::Command::new(opener)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot run {opener} to open {}: {e}", path.display()))
}

/// The OSC 52 sequence that puts `text` on the clipboard of the terminal, local or
/// across SSH (tmux passes it on with `set -g set-clipboard on`).
pub fn osc52(text: &str) -> String {
    use base64::Engine as _;
    format!("\x1b]52;c;{}\x07", base64::engine::general_purpose::STANDARD.encode(text))
}

/// True when the TUI runs on the user's own machine (not over SSH).
pub fn is_local() -> bool {
    ["SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"].iter().all(|v| std::env::var_os(v).is_none())
}
