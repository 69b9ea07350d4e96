//! Work off the UI thread: listing folders, searching, reindexing, thumbnails. Each job
//! reports back as an event on the UI loop's channel.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossterm::event::KeyEvent;
use ratatui_image::picker::Picker;

use super::action::{Effect, Msg};
use super::state::{facets, DirEntry};
use super::widgets::{self, Ready, ThumbKey};
use crate::catalog;
use crate::config::Config;
use crate::engine::{Engine, Filter, Phase, Progress, Query, Searcher};
use crate::model::Embedder;

pub enum Event {
    Key(KeyEvent),
    Resize(u16, u16),
    Msg(Msg),
    Thumb(ThumbKey, Result<Ready, String>),
}

enum SearchJob {
    Open,
    Search { id: u64, query: Query, k: usize, filters: Vec<Filter> },
}

/// Thumbnail threads; two keep a page filling quickly while the search thread embeds.
const THUMB_THREADS: usize = 2;

pub struct Workers {
    config: Config,
    events: Sender<Event>,
    search: Sender<SearchJob>,
    thumbs: Sender<ThumbKey>,
    cancel: Arc<AtomicBool>,
    reindex: Option<JoinHandle<()>>,
}

impl Workers {
    pub fn start(config: Config, picker: Picker, events: Sender<Event>) -> Workers {
        let (search, jobs) = mpsc::channel();
        let (cfg, tx) = (config.clone(), events.clone());
        std::thread::Builder::new()
            .name("search".into())
            .spawn(move || search_loop(cfg, jobs, tx))
            .expect("spawn search thread");
        let (thumbs, keys) = mpsc::channel::<ThumbKey>();
        let keys = Arc::new(Mutex::new(keys));
        for i in 0..THUMB_THREADS {
            let (keys, tx, picker) = (keys.clone(), events.clone(), picker.clone());
            std::thread::Builder::new()
                .name(format!("thumbs-{i}"))
                .spawn(move || loop {
                    let next = keys.lock().map(|rx| rx.recv());
                    let Ok(Ok(key)) = next else { return };
                    let made = widgets::make(&picker, &key);
                    if tx.send(Event::Thumb(key, made)).is_err() {
                        return;
                    }
                })
                .expect("spawn thumbnail thread");
        }
        let _ = search.send(SearchJob::Open);
        Workers { config, events, search, thumbs, cancel: Arc::new(AtomicBool::new(false)), reindex: None }
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
            Effect::Search { id, query, k, filters } => {
                let _ = self.search.send(SearchJob::Search { id, query, k, filters });
            }
            Effect::Reopen => {
                let _ = self.search.send(SearchJob::Open);
            }
            Effect::Reindex { full } => {
                self.join_reindex();
                self.cancel.store(false, Ordering::SeqCst);
                let (config, cancel, tx) = (self.config.clone(), self.cancel.clone(), self.events.clone());
                self.reindex = Some(
                    std::thread::Builder::new()
                        .name("reindex".into())
                        .spawn(move || reindex(config, full, &cancel, tx))
                        .expect("spawn reindex thread"),
                );
            }
            Effect::CancelReindex => self.cancel.store(true, Ordering::SeqCst),
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

    /// Stops a running reindex between batches and waits for it, so quitting never
    /// leaves half-written state.
    pub fn finish(mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.join_reindex();
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

fn search_loop(config: Config, jobs: Receiver<SearchJob>, tx: Sender<Event>) {
    let mut searcher: Option<Searcher> = None;
    // The last query's vector: paging and filtering do not embed the image again.
    let mut last: Option<(Query, Vec<f32>, Option<usize>)> = None;
    while let Ok(first) = jobs.recv() {
        // Only the newest search matters; an Open among the queued jobs still happens.
        let mut open = false;
        let mut search = None;
        for job in std::iter::once(first).chain(jobs.try_iter()) {
            match job {
                SearchJob::Open => open = true,
                s @ SearchJob::Search { .. } => search = Some(s),
            }
        }
        if open {
            last = None;
            searcher = None;
            let msg = match open_searcher(&config) {
                Ok(s) => {
                    let facets = facets((0..s.store().len()).filter_map(|r| s.product(r)));
                    let msg = Msg::Opened {
                        items: s.store().len(),
                        method: s.method(),
                        note: s.note().map(String::from),
                        facets,
                    };
                    searcher = Some(s);
                    msg
                }
                Err(problem) => Msg::OpenFailed(problem),
            };
            if tx.send(Event::Msg(msg)).is_err() {
                return;
            }
        }
        let Some(SearchJob::Search { id, query, k, filters }) = search else { continue };
        let started = Instant::now();
        let outcome = match &searcher {
            None => Err("the catalog is not open yet".to_string()),
            Some(s) => {
                let cached = last.as_ref().filter(|(q, _, _)| *q == query).map(|(_, v, x)| (v.clone(), *x));
                match cached.map(Ok).unwrap_or_else(|| s.query_vector(&query)) {
                    Ok((vector, exclude)) => {
                        let hits = s.search_vector(&vector, k, &filters, |row| Some(row) != exclude);
                        last = Some((query, vector, exclude));
                        Ok((hits, started.elapsed().as_secs_f64()))
                    }
                    Err(e) => Err(format!("{e:#}")),
                }
            }
        };
        if tx.send(Event::Msg(Msg::Found { id, k, outcome })).is_err() {
            return;
        }
    }
}

/// The searcher, or what the user should do to get one.
fn open_searcher(config: &Config) -> Result<Searcher, String> {
    if !config.catalog.is_dir() {
        return Err(format!(
            "No catalog at {}: run `lookalike demo` for the demo catalog, or pass --catalog DIR.",
            config.catalog.display()
        ));
    }
    let engine = Engine::new(config.clone()).map_err(|e| format!("{e:#}"))?;
    if !engine.store_path().exists() {
        let weights = if config.weights.is_file() {
            String::new()
        } else {
            format!(" First fetch the model: `lookalike fetch-weights` (no weights at {}).", config.weights.display())
        };
        return Err(format!(
            "Catalog {} is not indexed yet: press r to index it (or run `lookalike index`).{weights}",
            config.catalog.display()
        ));
    }
    engine.searcher(None).map_err(|e| format!("{e:#}"))
}

fn reindex(config: Config, full: bool, cancel: &AtomicBool, tx: Sender<Event>) {
    let last = Mutex::new((Phase::Scanning, Instant::now(), Instant::now() - Duration::from_secs(1)));
    let progress = |p: Progress| {
        let mut last = last.lock().expect("progress lock");
        if last.0 != p.phase {
            *last = (p.phase, Instant::now(), Instant::now() - Duration::from_secs(1));
        }
        // At most ten updates a second, and always the last one of a phase.
        if last.2.elapsed() < Duration::from_millis(100) && p.done < p.total {
            return;
        }
        last.2 = Instant::now();
        let _ = tx.send(Event::Msg(Msg::Progress { progress: p, phase_seconds: last.1.elapsed().as_secs_f64() }));
    };
    let outcome = (|| {
        if !config.weights.is_file() {
            anyhow::bail!("no model weights at {}: run `lookalike fetch-weights`", config.weights.display());
        }
        let engine = Engine::new(config.clone())?;
        let embedder = Embedder::load(&config.weights, config.resize)?;
        engine.index(&embedder, full, cancel, &progress)
    })();
    let _ = tx.send(Event::Msg(Msg::Reindexed(outcome.map(Box::new).map_err(|e| format!("{e:#}")))));
}

fn open_with_system_viewer(path: &Path) -> Result<(), String> {
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
