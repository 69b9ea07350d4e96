//! The engine API shared by the CLI and the TUI: index a catalog, search it, describe it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{self, CatalogFile, Metadata, Product, RowError, Skipped};
use crate::config::{Config, SearchMode};
use crate::descriptor::{self, Space};
use crate::index::annoy::{self, Annoy, Built};
use crate::index::{self, Scored};
use crate::model::{self, DecodeError, Embedder};
use crate::store::{self, Entry, Identity, Journal, Store};

/// Where an index run is, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Scanning,
    Hashing,
    Embedding,
    Saving,
    /// Fitting the whitening and describing every item.
    Describing,
    /// Building the Annoy index.
    Trees,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: usize,
    pub total: usize,
}

/// What an index run did.
#[derive(Debug, Default, Serialize)]
pub struct IndexReport {
    pub catalog: PathBuf,
    pub state_dir: PathBuf,
    /// Images in the store after the run.
    pub items: usize,
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    pub skipped: Vec<Skipped>,
    /// Images passed through the model in this run.
    pub embedded: usize,
    /// Images whose vectors came from an interrupted run's journal.
    pub resumed: usize,
    /// Images whose vectors were copied from a byte-identical file.
    pub deduplicated: usize,
    /// Why every image was embedded again, when it was.
    pub rebuilt: Option<String>,
    pub cancelled: bool,
    /// The search descriptors, and whether their whitening was fit again in this run.
    pub descriptors: String,
    pub whitening_refit: bool,
    /// The Annoy index was (re)built in this run.
    pub annoy_built: bool,
    pub metadata_errors: Vec<RowError>,
    pub seconds: f64,
    /// Peak resident memory (MiB) up to the end of embedding and over the whole run, when
    /// the caller measured it (`lookalike index` does).
    pub peak_mib: [Option<f64>; 2],
}

impl IndexReport {
    /// "N items (added a, updated u, removed r, unchanged n, skipped s)", for summaries.
    pub fn counts(&self) -> String {
        format!(
            "{} items (added {}, updated {}, removed {}, unchanged {}, skipped {})",
            self.items,
            self.added.len(),
            self.updated.len(),
            self.removed.len(),
            self.unchanged,
            self.skipped.len()
        )
    }
}

/// A way to stop a long run between batches, keeping what is done.
pub type Cancel = AtomicBool;

pub struct Engine {
    config: Config,
    state_dir: PathBuf,
}

/// A held lock on a state folder; released on drop or when the process dies.
struct StateLock(#[allow(dead_code)] std::fs::File);

impl Engine {
    pub fn new(config: Config) -> Result<Engine> {
        let state_dir = config.state_dir()?;
        Ok(Engine { config, state_dir })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join(store::STORE_FILE)
    }

    fn journal_path(&self) -> PathBuf {
        self.state_dir.join(store::JOURNAL_FILE)
    }

    fn descriptors_path(&self) -> PathBuf {
        self.state_dir.join(descriptor::FILE)
    }

    /// The Annoy index file over the search descriptors, readable by Python's `annoy`
    /// (angular; dimensions in `index.ann.json`).
    pub fn annoy_path(&self) -> PathBuf {
        self.state_dir.join("index.ann")
    }

    fn annoy_sidecar(&self) -> PathBuf {
        self.state_dir.join("index.ann.json")
    }

    /// True when the index file on disk was built from exactly these descriptors and settings.
    fn annoy_current(&self, space: &Space) -> bool {
        let Ok(text) = std::fs::read(self.annoy_sidecar()) else { return false };
        let Ok(built) = serde_json::from_slice::<Built>(&text) else { return false };
        let len = std::fs::metadata(self.annoy_path()).map(|m| m.len()).unwrap_or(0);
        built.items == space.len()
            && built.dims == space.dims()
            && built.n_trees == self.config.index.n_trees
            && built.seed == annoy::DEFAULT_SEED
            && built.source_crc == space.crc()
            && built.file_len == len
            && annoy::file_crc(&self.annoy_path()).is_ok_and(|crc| crc == built.file_crc)
    }

    /// Builds the Annoy index over `space`, the descriptors of `store`; the caller holds
    /// the state lock.
    fn build_annoy(&self, store: &Store, space: &Space) -> Result<()> {
        let sidecar = self.annoy_sidecar();
        remove_if_present(&sidecar)?;
        if space.is_empty() {
            return remove_if_present(&self.annoy_path());
        }
        let n_trees = self.config.index.n_trees;
        let built =
            annoy::build(space.vectors(), space.dims(), n_trees, annoy::DEFAULT_SEED, space.crc(), &self.annoy_path())?;
        // For users of the file outside lookalike: line i is the catalog path of item i.
        let paths: String = store.entries().iter().map(|e| format!("{}\n", e.path)).collect();
        store::write_atomic(&self.state_dir.join("index.ann.paths"), paths.as_bytes())?;
        store::write_atomic(&sidecar, &serde_json::to_vec_pretty(&built)?)
    }

    pub fn identity(&self) -> Identity {
        Identity {
            model: model::MODEL_ID.to_string(),
            preprocessing: self.config.resize.preprocessing_id(),
            dims: model::FEATURE_DIMS,
        }
    }

    fn lock(&self) -> Result<StateLock> {
        std::fs::create_dir_all(&self.state_dir).with_context(|| {
            format!(
                "cannot create state folder {}: set LOOKALIKE_STATE_DIR or [store] state_dir to a writable folder",
                self.state_dir.display()
            )
        })?;
        let path = self.state_dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another lookalike is indexing {} right now; wait for it to finish and run again",
                self.state_dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// Temp files of a store write that a crash interrupted; only called under the lock.
    fn remove_stale_temp_files(&self) -> Result<()> {
        let listing =
            std::fs::read_dir(&self.state_dir).with_context(|| format!("cannot list {}", self.state_dir.display()))?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if [".store-", ".index-", store::TEMP_PREFIX].iter().any(|p| name.starts_with(p)) {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }

    pub fn load_metadata(&self) -> Result<Metadata> {
        match self.config.labels_path() {
            Some(path) => Metadata::load(&path),
            None => Ok(Metadata::default()),
        }
    }

    /// Brings the store up to date with the catalog: embeds new and changed images only,
    /// drops removed ones, resumes an interrupted run from its journal.
    pub fn index(
        &self,
        embedder: &Embedder,
        full: bool,
        cancel: &Cancel,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<IndexReport> {
        let started = Instant::now();
        let identity = self.identity();
        if embedder.preprocessing_id() != identity.preprocessing {
            bail!("the embedder's preprocessing differs from the configuration");
        }
        let _lock = self.lock()?;
        self.remove_stale_temp_files()?;
        let mut report = IndexReport {
            catalog: self.config.catalog.clone(),
            state_dir: self.state_dir.clone(),
            ..Default::default()
        };
        report.metadata_errors = self.load_metadata()?.errors;

        progress(Progress { phase: Phase::Scanning, done: 0, total: 0 });
        let scan = catalog::scan(&self.config.catalog)?;
        report.skipped = scan.skipped;

        let store_path = self.store_path();
        let old = if full || !store_path.exists() {
            None
        } else {
            let old = Store::open(&store_path)?;
            if old.identity() != &identity {
                report.rebuilt = Some(format!(
                    "the store was made with {} / {}, the configuration asks for {} / {}",
                    old.identity().model,
                    old.identity().preprocessing,
                    identity.model,
                    identity.preprocessing
                ));
                None
            } else {
                Some(old)
            }
        };
        if full {
            report.rebuilt = Some("--full was given".into());
            remove_if_present(&self.journal_path())?;
        }
        let (mut journal, journaled) = Journal::open(&self.journal_path(), &identity)?;

        // Where each scanned file's vector comes from.
        let mut sources: Vec<Option<Source>> = vec![None; scan.files.len()];
        let mut entries: Vec<Option<Entry>> = vec![None; scan.files.len()];
        let mut needs_hash = Vec::new();
        for (i, f) in scan.files.iter().enumerate() {
            let row = old.as_ref().and_then(|s| s.find(&f.rel));
            match (&old, row) {
                (Some(s), Some(row)) if same_stat(&s.entries()[row], f) => {
                    sources[i] = Some(Source::Store(row));
                    entries[i] = Some(s.entries()[row].clone());
                }
                _ => needs_hash.push(i),
            }
        }
        let total_hash = needs_hash.len();
        let hashed: Vec<(usize, std::io::Result<String>)> =
            needs_hash.par_iter().map(|&i| (i, store::content_hash(&scan.files[i].abs))).collect();
        progress(Progress { phase: Phase::Hashing, done: total_hash, total: total_hash });

        let mut by_hash: HashMap<&str, Source> = HashMap::new();
        if let Some(s) = &old {
            for (row, e) in s.entries().iter().enumerate() {
                by_hash.entry(e.hash.as_str()).or_insert(Source::Store(row));
            }
        }
        for r in &journaled {
            by_hash.insert(r.entry.hash.as_str(), Source::Journal(r.vector_at));
        }
        let mut to_embed: Vec<usize> = Vec::new();
        // Byte-identical new files are embedded once: (copy, first file with that content).
        let mut queued: HashMap<String, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut resumed = 0;
        for (i, hash) in hashed {
            let f = &scan.files[i];
            let hash = match hash {
                Ok(h) => h,
                Err(e) => {
                    report.skipped.push(Skipped { path: f.rel.clone(), reason: format!("cannot read: {e}") });
                    continue;
                }
            };
            let old_row = old.as_ref().and_then(|s| s.find(&f.rel));
            let entry = Entry { path: f.rel.clone(), size: f.size, mtime_ns: f.mtime_ns, hash };
            let same_content = old_row.filter(|&r| old.as_ref().unwrap().entries()[r].hash == entry.hash);
            if let Some(row) = same_content {
                sources[i] = Some(Source::Store(row));
            } else if let Some(&src) = by_hash.get(entry.hash.as_str()) {
                match src {
                    Source::Journal(_) => resumed += 1,
                    _ => report.deduplicated += 1,
                }
                sources[i] = Some(src);
            } else if let Some(&first) = queued.get(&entry.hash) {
                copies.push((i, first));
            } else {
                queued.insert(entry.hash.clone(), i);
                to_embed.push(i);
            }
            entries[i] = Some(entry);
        }
        report.resumed = resumed;

        let mut failed = vec![false; scan.files.len()];
        self.embed_files(embedder, &scan.files, &to_embed, cancel, progress, |batch| {
            let (mut rows, mut vectors) = (Vec::new(), Vec::new());
            for (i, result) in batch {
                match result {
                    Ok(v) => {
                        rows.push(i);
                        vectors.push(v);
                    }
                    Err(e) => {
                        report.skipped.push(Skipped { path: scan.files[i].rel.clone(), reason: e.to_string() });
                        failed[i] = true;
                    }
                }
            }
            report.embedded += rows.len();
            let records: Vec<(Entry, &[f32])> =
                rows.iter().zip(&vectors).map(|(&i, v)| (entries[i].clone().unwrap(), v.as_slice())).collect();
            for (&i, at) in rows.iter().zip(journal.append(&records)?) {
                sources[i] = Some(Source::Journal(at));
            }
            Ok(())
        })?;
        report.cancelled = cancel.load(Ordering::Relaxed);
        for (i, first) in copies {
            if let Some(src) = sources[first] {
                sources[i] = Some(src);
                report.deduplicated += 1;
            } else if failed[first] {
                failed[i] = true;
                let reason = format!("identical to {}, which could not be decoded", scan.files[first].rel);
                report.skipped.push(Skipped { path: scan.files[i].rel.clone(), reason });
            }
        }

        // Files without a vector yet (cancelled) keep their old version, if any, so the
        // store stays consistent; the next run sees them as changed and embeds them.
        let mut final_entries: Vec<Entry> = Vec::new();
        let mut final_sources: Vec<Source> = Vec::new();
        for (i, f) in scan.files.iter().enumerate() {
            let old_row = old.as_ref().and_then(|s| s.find(&f.rel));
            match (sources[i], old_row) {
                (Some(src), _) => {
                    let entry = entries[i].clone().unwrap();
                    match old_row {
                        None => report.added.push(f.rel.clone()),
                        Some(r) if matches!(src, Source::Store(x) if x == r) => report.unchanged += 1,
                        Some(_) => report.updated.push(f.rel.clone()),
                    }
                    final_entries.push(entry);
                    final_sources.push(src);
                }
                (None, Some(r)) if !failed[i] && report.cancelled => {
                    final_entries.push(old.as_ref().unwrap().entries()[r].clone());
                    final_sources.push(Source::Store(r));
                }
                _ => {}
            }
        }
        if let Some(s) = &old {
            let kept: std::collections::HashSet<&str> = final_entries.iter().map(|e| e.path.as_str()).collect();
            report.removed =
                s.entries().iter().filter(|e| !kept.contains(e.path.as_str())).map(|e| e.path.clone()).collect();
        }
        report.items = final_entries.len();

        let unchanged_store = old.as_ref().is_some_and(|s| s.entries() == final_entries.as_slice());
        if !unchanged_store {
            progress(Progress { phase: Phase::Saving, done: 0, total: final_entries.len() });
            let journal_vectors = journal.vectors()?;
            let vector = |i: usize| -> Cow<[f32]> {
                match final_sources[i] {
                    Source::Store(r) => old.as_ref().unwrap().vector(r).into(),
                    Source::Journal(at) => journal_vectors.get(at).into(),
                }
            };
            store::write(&store_path, &identity, &final_entries, vector)?;
        }
        drop(journal);
        // An unchanged store is the one already open; only a rewritten one is read again.
        let current = match old {
            Some(s) if unchanged_store => Some(s),
            _ if store_path.exists() => Some(Store::open(&store_path)?),
            _ => None,
        };
        if let Some(current) = current {
            progress(Progress { phase: Phase::Describing, done: 0, total: current.len() });
            let changed = report.added.len() + report.updated.len() + report.removed.len();
            // A damaged or outdated descriptors file is simply made again.
            let previous = Space::open(&self.descriptors_path()).ok();
            let saved = previous.as_ref().is_some_and(|p| p.matches(&current, &self.config.descriptor));
            let (space, refit) = Space::update(&current, self.config.descriptor, previous, changed)?;
            if !saved {
                space.save(&self.descriptors_path())?;
            }
            report.whitening_refit = refit;
            report.descriptors = format!("{} ({} dims)", self.config.descriptor.describe(), space.dims());
            if !self.annoy_current(&space) {
                progress(Progress { phase: Phase::Trees, done: 0, total: current.len() });
                self.build_annoy(&current, &space)?;
                report.annoy_built = true;
            }
        }
        if !report.cancelled {
            remove_if_present(&self.journal_path())?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Decodes on the rayon pool while the model runs on the previous batch.
    #[allow(clippy::type_complexity)]
    fn embed_files(
        &self,
        embedder: &Embedder,
        files: &[CatalogFile],
        todo: &[usize],
        cancel: &Cancel,
        progress: &(dyn Fn(Progress) + Sync),
        mut on_batch: impl FnMut(Vec<(usize, Result<Vec<f32>, DecodeError>)>) -> Result<()>,
    ) -> Result<()> {
        let total = todo.len();
        progress(Progress { phase: Phase::Embedding, done: 0, total });
        if total == 0 {
            return Ok(());
        }
        let batch = self.config.batch_size.max(1);
        let policy = embedder.policy();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, Result<Vec<f32>, DecodeError>)>>(1);
        std::thread::scope(|scope| -> Result<()> {
            scope.spawn(move || {
                for chunk in todo.chunks(batch) {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let decoded = chunk.par_iter().map(|&i| (i, model::load_input(&files[i].abs, policy))).collect();
                    if tx.send(decoded).is_err() {
                        break;
                    }
                }
            });
            let mut done = 0;
            for decoded in rx {
                let mut rows = Vec::new();
                let mut inputs = Vec::new();
                let mut results: Vec<(usize, Result<Vec<f32>, DecodeError>)> = Vec::new();
                for (i, input) in decoded {
                    match input {
                        Ok(x) => {
                            rows.push(i);
                            inputs.push(x);
                        }
                        Err(e) => results.push((i, Err(e))),
                    }
                }
                let vectors = embedder.embed_inputs(&inputs)?;
                results.extend(
                    rows.into_iter().zip(vectors.chunks(model::FEATURE_DIMS)).map(|(i, v)| (i, Ok(v.to_vec()))),
                );
                done += results.len();
                on_batch(results)?;
                progress(Progress { phase: Phase::Embedding, done, total });
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Opens the store for searching; `mode` overrides `[index] mode`.
    pub fn searcher(&self, mode: Option<SearchMode>) -> Result<Searcher> {
        let path = self.store_path();
        if !path.exists() {
            bail!(
                "catalog {} is not indexed yet (no {}): run `lookalike index`",
                self.config.catalog.display(),
                path.display()
            );
        }
        let store = Store::open(&path)?;
        let identity = self.identity();
        if store.identity() != &identity {
            bail!(
                "the store was made with {} / {} but the configuration asks for {} / {}: run `lookalike index`",
                store.identity().model,
                store.identity().preprocessing,
                identity.model,
                identity.preprocessing
            );
        }
        let approx = match mode.unwrap_or(self.config.index.mode) {
            SearchMode::Exact => false,
            SearchMode::Approx => true,
            SearchMode::Auto => store.len() >= self.config.index.exact_below,
        };
        let (space, unsaved) = self.load_space(&store)?;
        let (annoy, note) = match unsaved {
            Some(why) => (None, Some(why)),
            None if approx && !space.is_empty() => self.open_annoy(&store, &space),
            None => (None, None),
        };
        Ok(Searcher {
            annoy,
            search_k: self.config.index.search_k,
            note,
            space,
            expand: self.config.expand,
            store,
            metadata: self.load_metadata()?,
            catalog: self.config.catalog.clone(),
            weights: self.config.weights.clone(),
            policy: self.config.resize,
            embedder: OnceLock::new(),
        })
    }

    /// The saved descriptors of `store` when they match it and the settings; otherwise
    /// they are made in memory for this process and the note says so (`lookalike index`
    /// saves them; searches never write the state folder behind an index run's back).
    fn load_space(&self, store: &Store) -> Result<(Space, Option<String>)> {
        let recipe = self.config.descriptor;
        let why = match Space::open(&self.descriptors_path()) {
            Ok(s) if s.matches(store, &recipe) => return Ok((s, None)),
            Ok(_) => "saved ones are for other settings or another store".to_string(),
            Err(e) => format!("{e:#}"),
        };
        let space = Space::fit(store, recipe)?;
        Ok((
            space,
            Some(format!("searching exactly on descriptors made in memory ({why}); `lookalike index` saves them")),
        ))
    }

    /// The Annoy index over `space`, rebuilt first when stale or damaged; without it,
    /// searches are exact and the note says why.
    fn open_annoy(&self, store: &Store, space: &Space) -> (Option<Annoy>, Option<String>) {
        let rebuilt = if self.annoy_current(space) {
            Ok(())
        } else {
            self.lock().and_then(|_lock| self.build_annoy(store, space))
        };
        match rebuilt.and_then(|()| Annoy::open(&self.annoy_path(), space.dims(), space.len())) {
            Ok(a) => (Some(a), None),
            Err(e) => (None, Some(format!("searching exactly: the Annoy index is unusable ({e:#})"))),
        }
    }

    /// Facts about the catalog and its store, for `lookalike info`.
    pub fn info(&self) -> Result<Info> {
        let path = self.store_path();
        let store = if path.exists() { Some(Store::open(&path)?) } else { None };
        Ok(Info {
            catalog: self.config.catalog.clone(),
            labels: self.config.labels_path(),
            state_dir: self.state_dir.clone(),
            store: path,
            store_bytes: store.as_ref().map(|s| s.file_size()),
            items: store.as_ref().map(|s| s.len()),
            model: self.identity().model,
            preprocessing: self.identity().preprocessing,
            weights: self.config.weights.clone(),
            weights_present: self.config.weights.is_file(),
            stale: store.as_ref().is_some_and(|s| s.identity() != &self.identity()),
            interrupted_run: self.journal_path().exists(),
            search: match self.config.index.mode {
                SearchMode::Auto if store.as_ref().is_some_and(|s| s.len() >= self.config.index.exact_below) => "annoy",
                SearchMode::Auto | SearchMode::Exact => "exact",
                SearchMode::Approx => "annoy",
            },
            annoy_index: self.annoy_path(),
            descriptors: self.config.descriptor.describe(),
            annoy_current: store.as_ref().is_some_and(|s| {
                Space::open(&self.descriptors_path())
                    .is_ok_and(|d| d.matches(s, &self.config.descriptor) && self.annoy_current(&d))
            }),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Info {
    pub catalog: PathBuf,
    pub labels: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub store: PathBuf,
    pub store_bytes: Option<u64>,
    pub items: Option<usize>,
    pub model: String,
    pub preprocessing: String,
    pub weights: PathBuf,
    pub weights_present: bool,
    /// The store was made with another model or preprocessing than configured.
    pub stale: bool,
    /// A journal of an unfinished index run is waiting to be resumed.
    pub interrupted_run: bool,
    pub search: &'static str,
    /// What searches compare (`[search]` descriptor settings).
    pub descriptors: String,
    pub annoy_index: PathBuf,
    /// The Annoy index was built from the current store with the current settings.
    pub annoy_current: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A row of the existing store.
    Store(usize),
    /// A vector in the journal, by file offset (resumed or embedded by this run).
    Journal(u64),
}

fn same_stat(e: &Entry, f: &CatalogFile) -> bool {
    e.size == f.size && e.mtime_ns == f.mtime_ns
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A metadata condition: `field=value`, case-insensitive on the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: String,
    pub value: String,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (field, value) = s.split_once('=').ok_or_else(|| format!("{s:?} is not FIELD=VALUE"))?;
        let field = field.trim();
        if !catalog::FIELDS.contains(&field) {
            return Err(format!("unknown field {field:?}: use one of {}", catalog::FIELDS.join(", ")));
        }
        Ok(Filter { field: field.to_string(), value: value.trim().to_string() })
    }
}

impl Filter {
    pub fn matches(&self, product: Option<&Product>) -> bool {
        product.and_then(|p| p.field(&self.field)).is_some_and(|v| v.eq_ignore_ascii_case(&self.value))
    }
}

fn product_of<'a>(store: &Store, metadata: &'a Metadata, row: usize) -> Option<&'a Product> {
    metadata.get(catalog::product_id(&store.entries()[row].path))
}

/// What to search with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Any image file; it is embedded.
    Image(PathBuf),
    /// A catalog item, by product id or catalog-relative path; its stored vector is used
    /// and the item itself is left out of the results.
    Item(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub rank: usize,
    pub path: PathBuf,
    pub rel: String,
    pub id: String,
    pub score: f32,
    pub metadata: Option<Product>,
}

/// An open store plus what a search needs; the model loads on the first image query.
pub struct Searcher {
    annoy: Option<Annoy>,
    search_k: usize,
    note: Option<String>,
    space: Space,
    expand: usize,
    store: Store,
    metadata: Metadata,
    catalog: PathBuf,
    weights: PathBuf,
    policy: model::ResizePolicy,
    embedder: OnceLock<Embedder>,
}

impl Searcher {
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn into_store(self) -> Store {
        self.store
    }

    /// The descriptors searches compare.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// Neighbours averaged into each query (0 = no query expansion).
    pub fn expand(&self) -> usize {
        self.expand
    }

    /// "annoy" or "exact": what `search` uses.
    pub fn method(&self) -> &'static str {
        if self.annoy.is_some() {
            "annoy"
        } else {
            "exact"
        }
    }

    /// Why an approximate search fell back to exact, if it did.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn product(&self, row: usize) -> Option<&Product> {
        product_of(&self.store, &self.metadata, row)
    }

    fn embedder(&self) -> Result<&Embedder> {
        if let Some(e) = self.embedder.get() {
            return Ok(e);
        }
        let e = Embedder::load(&self.weights, self.policy)?;
        Ok(self.embedder.get_or_init(|| e))
    }

    /// Row of a catalog item given by catalog-relative path or product id.
    pub fn find_item(&self, item: &str) -> Result<usize> {
        if let Some(row) = self.store.find(item) {
            return Ok(row);
        }
        let rows: Vec<usize> =
            (0..self.store.len()).filter(|&r| catalog::product_id(&self.store.entries()[r].path) == item).collect();
        match rows.as_slice() {
            [row] => Ok(*row),
            [] => bail!("no catalog item {item:?}: give a product id or a path relative to the catalog"),
            _ => bail!(
                "{item:?} names {} catalog files; give the path instead: {}",
                rows.len(),
                rows.iter().map(|&r| self.store.entries()[r].path.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The query's descriptor, expanded with its neighbours, and the row to leave out of
    /// the results for item queries.
    pub fn query_vector(&self, query: &Query) -> Result<(Vec<f32>, Option<usize>)> {
        let (vector, exclude) = match query {
            Query::Image(path) => (self.space.describe(&self.embedder()?.embed_file(path)?)?, None),
            Query::Item(item) => {
                let row = self.find_item(item)?;
                (self.space.vector(row).to_vec(), Some(row))
            }
        };
        if self.expand == 0 || self.space.is_empty() {
            return Ok((vector, exclude));
        }
        let neighbours = self.top_k(&vector, self.expand, |row| Some(row) != exclude);
        Ok((self.space.expand(&vector, &neighbours), exclude))
    }

    pub fn search(&self, query: &Query, k: usize, filters: &[Filter]) -> Result<Vec<Hit>> {
        let (vector, exclude) = self.query_vector(query)?;
        Ok(self.search_vector(&vector, k, filters, |row| Some(row) != exclude))
    }

    /// Cosine search with metadata filters and an extra row predicate.
    pub fn search_vector(
        &self,
        vector: &[f32],
        k: usize,
        filters: &[Filter],
        keep: impl Fn(usize) -> bool + Sync,
    ) -> Vec<Hit> {
        // Annoy is not Sync, so the parallel predicate borrows only the store and metadata.
        let (store, metadata) = (&self.store, &self.metadata);
        let keep = |row| keep(row) && filters.iter().all(|f| f.matches(product_of(store, metadata, row)));
        self.top_k(vector, k, keep).into_iter().enumerate().map(|(rank, s)| self.hit(rank + 1, s)).collect()
    }

    /// Annoy candidates re-scored exactly, or an exact scan.
    fn top_k(&self, vector: &[f32], k: usize, keep: impl Fn(usize) -> bool + Sync) -> Vec<Scored> {
        if let Some(annoy) = &self.annoy {
            // Annoy proposes candidates; scores come exact from the store. When filters
            // leave fewer than k of them, the exact search below answers instead.
            let mut top: Vec<Scored> = annoy
                .candidates(vector, self.search_k.max(k + 1), self.search_k)
                .into_iter()
                .filter(|&row| row < self.space.len() && keep(row))
                .map(|row| Scored { row, score: index::dot(self.space.vector(row), vector) })
                .collect();
            top.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
            if top.len() >= k {
                top.truncate(k);
                return top;
            }
        }
        index::exact_top_k(self.space.vectors(), self.space.dims(), vector, k, keep)
    }

    fn hit(&self, rank: usize, s: Scored) -> Hit {
        let rel = self.store.entries()[s.row].path.clone();
        Hit {
            rank,
            path: self.catalog.join(&rel),
            id: catalog::product_id(&rel).to_string(),
            metadata: self.product(s.row).cloned(),
            rel,
            score: s.score,
        }
    }
}
