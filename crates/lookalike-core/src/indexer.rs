//! The index run: brings a catalog's store up to date. New and changed images are
//! embedded (identical files once), removed ones dropped, unchanged ones kept; finished
//! batches go to the journal first, so a killed run resumes; then the descriptors and the
//! Annoy index follow the store.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::SharedIndex;
use crate::catalog::{self, CatalogFile, CatalogSource, RowError, Skipped};
use crate::config::Config;
use crate::descriptor::Space;
use crate::error::{Error, Result};
use crate::files::remove_if_present;
use crate::index::forest;
use crate::model::{self, DecodeError, Embedder, Photo};
use crate::state::StateDir;
use crate::store::{self, Entry, Identity, Journal, Store};

/// Where an index run is, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Scanning,
    Hashing,
    /// Computing colour descriptors for a store made before they existed (no model).
    Colours,
    Embedding,
    Saving,
    /// Fitting the whitening and describing every item.
    Describing,
    /// Building the Annoy index.
    Trees,
    /// Publishing the descriptors to the shared backend (`[index] backend`).
    Syncing,
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
    pub catalog: String,
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
    /// Images whose features another machine embedded, taken from the shared backend.
    pub shared: usize,
    /// Stored images that got their colour descriptor from their photo in this run (a
    /// store made before colours existed), keeping their features: no model run.
    pub recoloured: usize,
    /// Why every image was embedded again, when it was.
    pub rebuilt: Option<String>,
    pub cancelled: bool,
    /// The search descriptors, and whether their whitening was fit again in this run.
    pub descriptors: String,
    pub whitening_refit: bool,
    /// The Annoy index was (re)built in this run.
    pub annoy_built: bool,
    /// What the run changed in the shared backend, when there is one.
    pub synced: Option<crate::backend::SyncReport>,
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

/// Thins out progress reports for a display: a report passes when `interval` has gone
/// by since the last one that passed, and the last report of each phase always does.
pub struct Throttle {
    interval: std::time::Duration,
    /// Phase, when it started, when a report last passed.
    last: std::sync::Mutex<Option<(Phase, Instant, Instant)>>,
}

impl Throttle {
    pub fn new(interval: std::time::Duration) -> Throttle {
        Throttle { interval, last: std::sync::Mutex::new(None) }
    }

    /// Seconds since the report's phase started, when the report should be shown.
    pub fn admit(&self, p: Progress) -> Option<f64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (phase, started, shown) = match *last {
            Some((phase, started, shown)) if phase == p.phase => (phase, started, Some(shown)),
            _ => (p.phase, now, None),
        };
        let due = shown.is_none_or(|t| now.duration_since(t) >= self.interval) || p.done >= p.total;
        *last = Some((phase, started, if due { now } else { shown.unwrap_or(now) }));
        due.then(|| now.duration_since(started).as_secs_f64())
    }
}

/// What an index run works on; the engine lends its own.
pub struct Parts<'a> {
    pub config: &'a Config,
    pub source: &'a dyn CatalogSource,
    pub state: &'a StateDir,
    pub identity: Identity,
    pub embedder: Arc<dyn Embedder>,
    /// A shared backend through which index runs on several machines embed together.
    pub shared: Option<&'a dyn SharedIndex>,
}

pub fn run(parts: Parts, full: bool, cancel: &Cancel, progress: &(dyn Fn(Progress) + Sync)) -> Result<IndexReport> {
    let started = Instant::now();
    let Parts { config, source, state, identity, embedder, shared } = parts;
    if embedder.policy() != config.resize {
        return Err(Error::config("the model's preprocessing differs from the configuration"));
    }
    let lock = state.lock()?;
    state.remove_stale_temp_files(&lock)?;
    let mut report =
        IndexReport { catalog: source.name(), state_dir: state.path().to_path_buf(), ..Default::default() };
    report.metadata_errors = source.labels()?.errors;
    // Peak memory up to the end of embedding: taken when the next phase starts.
    let embedding_peak = std::sync::OnceLock::new();
    let progress = |p: Progress| {
        if matches!(p.phase, Phase::Saving | Phase::Describing) {
            embedding_peak.get_or_init(crate::runtime::peak_rss_mib);
        }
        progress(p)
    };
    let progress = &progress;

    progress(Progress { phase: Phase::Scanning, done: 0, total: 0 });
    let scan = source.list()?;
    report.skipped = scan.skipped;

    let store_path = state.store();
    // A store without this colour descriptor keeps its features: its photos are only read
    // again for their colours.
    let mut recolour = false;
    let old = if full || !store_path.exists() {
        None
    } else {
        let old = Store::open(&store_path)?;
        if identity.recolours(old.identity()) {
            recolour = true;
            Some(old)
        } else if old.identity() != &identity {
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
        remove_if_present(&state.journal())?;
    }
    let (mut journal, journaled) = Journal::open(&state.journal(), &identity)?;

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
    let mut hashed: Vec<(usize, std::io::Result<String>)> = Vec::with_capacity(total_hash);
    // Bytes a remote source fetched to hash them, kept for the model up to
    // `[catalog] fetch_keep_mib`.
    let mut fetched: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut fetched_bytes = 0;
    // In slices, so a cancelled run stops soon and a catalog that went away stops the run
    // instead of every image being skipped.
    for slice in needs_hash.chunks(HASH_SLICE) {
        if cancel.load(Ordering::Relaxed) {
            // Unhashed files keep their old version, like unembedded ones (below).
            break;
        }
        let keys: Vec<&str> = slice.iter().map(|&i| scan.files[i].rel.as_str()).collect();
        let hashes = source.hashes(&keys);
        if let Some((key, e)) = keys.iter().zip(&hashes).find_map(|(k, h)| h.as_ref().err().map(|e| (k, e))) {
            if catalog::is_outage(e) {
                return Err(Error::Catalog { catalog: source.name(), reason: format!("reading {key}: {e}") });
            }
        }
        for (&i, h) in slice.iter().zip(hashes) {
            hashed.push((
                i,
                h.map(|h| {
                    if let Some(bytes) = h.bytes.filter(|b| fetched_bytes + b.len() <= config.fetch.keep_bytes) {
                        fetched_bytes += bytes.len();
                        fetched.insert(i, bytes);
                    }
                    h.hash
                }),
            ));
        }
        progress(Progress { phase: Phase::Hashing, done: hashed.len(), total: total_hash });
    }
    progress(Progress { phase: Phase::Hashing, done: hashed.len(), total: total_hash });

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
    // Old rows whose colours are still to be computed (a resumed pass finds its earlier
    // work in the journal), by file: the row their features come from.
    let mut recoloured: HashMap<usize, usize> = HashMap::new();
    // Every file whose stored row is being given colours, done now or in a resumed run.
    let mut recolouring: std::collections::HashSet<usize> = std::collections::HashSet::new();
    if recolour {
        let journaled: HashMap<&str, u64> = journaled.iter().map(|r| (r.entry.hash.as_str(), r.vector_at)).collect();
        for (i, src) in sources.iter_mut().enumerate() {
            if let Some(Source::Store(row)) = *src {
                recolouring.insert(i);
                match journaled.get(entries[i].as_ref().unwrap().hash.as_str()) {
                    Some(&at) => {
                        *src = Some(Source::Journal(at));
                        report.resumed += 1;
                    }
                    None => {
                        recoloured.insert(i, row);
                        *src = None;
                    }
                }
            }
        }
    }
    let mut to_colour: Vec<usize> = recoloured.keys().copied().collect();
    to_colour.sort_unstable();
    let embedding: std::collections::HashSet<usize> = to_embed.iter().copied().collect();
    fetched.retain(|i, _| embedding.contains(i));

    let mut failed = vec![false; scan.files.len()];
    let mut on_batch = |batch: Vec<(usize, Result<Vec<f32>, DecodeError>)>, report: &mut IndexReport| {
        let (mut rows, mut vectors) = (Vec::new(), Vec::new());
        for (i, result) in batch {
            match result {
                Ok(v) => {
                    rows.push(i);
                    vectors.push(v);
                }
                Err(DecodeError::Io(e)) if catalog::is_outage(&e) => {
                    // What is in the journal stays; the next run resumes from it.
                    let reason = format!("reading {}: {e}", scan.files[i].rel);
                    return Err(Error::Catalog { catalog: source.name(), reason });
                }
                Err(e) => {
                    report.skipped.push(Skipped { path: scan.files[i].rel.clone(), reason: e.to_string() });
                    failed[i] = true;
                }
            }
        }
        let records: Vec<(Entry, &[f32])> =
            rows.iter().zip(&vectors).map(|(&i, v)| (entries[i].clone().unwrap(), v.as_slice())).collect();
        for (&i, at) in rows.iter().zip(journal.append(&records)?) {
            sources[i] = Some(Source::Journal(at));
        }
        Ok(rows.len())
    };
    let kept = old.as_ref().map(|s| Kept { store: s, rows: &recoloured });
    let todo = EmbedList { files: &scan.files, todo: &to_colour, fetched: HashMap::new(), kept };
    embed_files(source, embedder.as_ref(), config.batch(), todo, cancel, progress, |batch| {
        report.recoloured += on_batch(batch, &mut report)?;
        Ok(())
    })?;
    if let Some(shared) = shared.filter(|_| !to_embed.is_empty()) {
        let hash = |i: usize| entries[i].as_ref().expect("a file to embed has its hash").hash.as_str();
        let by_hash: HashMap<&str, usize> = to_embed.iter().map(|&i| (hash(i), i)).collect();
        let id = identity.key();
        shared.enqueue(&id, &by_hash.keys().copied().collect::<Vec<_>>())?;
        let mut remaining: std::collections::BTreeSet<usize> = to_embed.iter().copied().collect();
        let total = remaining.len();
        while !remaining.is_empty() && !cancel.load(Ordering::Relaxed) {
            // What other machines finished meanwhile.
            let wanted: Vec<&str> = remaining.iter().map(|&i| hash(i)).collect();
            let made: Vec<(usize, Result<Vec<f32>, DecodeError>)> = shared
                .features(&id, &wanted)?
                .into_iter()
                .filter(|(_, row)| row.len() == identity.dims)
                .filter_map(|(h, row)| by_hash.get(h.as_str()).map(|&i| (i, Ok(row))))
                .filter(|(i, _)| remaining.remove(i))
                .collect();
            report.shared += on_batch(made, &mut report)?;
            if remaining.is_empty() {
                break;
            }
            let wanted: Vec<&str> = remaining.iter().map(|&i| hash(i)).collect();
            let claim = shared.claim(&id, &wanted, config.batch() * 4)?;
            let mine: Vec<usize> = claim.hashes().iter().filter_map(|h| by_hash.get(h.as_str()).copied()).collect();
            if mine.is_empty() {
                // Other machines hold the rest: wait for their features (or their claims to end).
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
            let offset = total - remaining.len();
            let progress = |p: Progress| progress(Progress { done: offset + p.done, total, ..p });
            let bytes = mine.iter().filter_map(|i| fetched.remove(i).map(|b| (*i, b))).collect();
            let list = EmbedList { files: &scan.files, todo: &mine, fetched: bytes, kept: None };
            let mut rows = Vec::new();
            embed_files(source, embedder.as_ref(), config.batch(), list, cancel, &progress, |batch| {
                rows.extend(
                    batch.iter().filter_map(|(i, r)| r.as_ref().ok().map(|v| (hash(*i).to_string(), v.clone()))),
                );
                report.embedded += on_batch(batch, &mut report)?;
                Ok(())
            })?;
            // Embedded or undecodable here: not to be waited for either way.
            for i in &mine {
                remaining.remove(i);
            }
            claim.done(&rows)?;
        }
        // Left only when cancelled: embedded below, which stops at once.
        to_embed.retain(|i| remaining.contains(i));
    }
    let todo = EmbedList { files: &scan.files, todo: &to_embed, fetched, kept: None };
    embed_files(source, embedder.as_ref(), config.batch(), todo, cancel, progress, |batch| {
        report.embedded += on_batch(batch, &mut report)?;
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
                    Some(r) if matches!(src, Source::Store(x) if x == r) || recolouring.contains(&i) => {
                        report.unchanged += 1
                    }
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

    let unchanged_store = !recolour && old.as_ref().is_some_and(|s| s.entries() == final_entries.as_slice());
    // A cancelled colour pass leaves rows without colours: the old store stays as it is
    // and the next run resumes from the journal.
    let partial = recolour && final_sources.iter().any(|s| matches!(s, Source::Store(_)));
    if partial {
        drop(journal);
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    if !unchanged_store {
        progress(Progress { phase: Phase::Saving, done: 0, total: final_entries.len() });
        let journal_vectors = journal.vectors()?;
        let vector = |i: usize| -> Cow<[f32]> {
            match final_sources[i] {
                Source::Store(r) => old.as_ref().unwrap().vector(r).into(),
                Source::Journal(at) => journal_vectors.get(at).into(),
            }
        };
        // Rows made in this run (or a resumed one) join the old rows' devices.
        let mut embedded_on = old.as_ref().map(Store::embedded_on).unwrap_or_default();
        let kind = embedder.device_kind().to_string();
        if final_sources.iter().any(|s| matches!(s, Source::Journal(_))) && !embedded_on.contains(&kind) {
            embedded_on.push(kind);
        }
        store::write(&store_path, &identity, &embedded_on, &final_entries, vector)?;
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
        let previous = Space::open(&state.descriptors()).ok();
        let saved = previous.as_ref().is_some_and(|p| p.matches(&current, &config.descriptor));
        let (space, refit) = Space::update(&current, config.descriptor, previous, changed)?;
        if !saved {
            space.save(&state.descriptors())?;
        }
        report.whitening_refit = refit;
        report.descriptors = space.summary();
        if forest::current(state, &current, &space, &config.index).is_none() {
            progress(Progress { phase: Phase::Trees, done: 0, total: current.len() });
            forest::build_for(state, &current, &space, &config.index)?;
            report.annoy_built = true;
        }
    }
    if !report.cancelled {
        remove_if_present(&state.journal())?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.peak_mib = [embedding_peak.get().copied(), Some(crate::runtime::peak_rss_mib())];
    Ok(report)
}

/// What to embed: rows of `files`, some with their bytes already fetched.
struct EmbedList<'a> {
    files: &'a [CatalogFile],
    todo: &'a [usize],
    fetched: HashMap<usize, Vec<u8>>,
    /// Files that keep the features of a stored row and only need their colours.
    kept: Option<Kept<'a>>,
}

struct Kept<'a> {
    store: &'a Store,
    rows: &'a HashMap<usize, usize>,
}

/// Decodes on the rayon pool while the model runs on the previous batch; gives stored
/// rows (features, then colour).
#[allow(clippy::type_complexity)]
fn embed_files(
    source: &dyn CatalogSource,
    embedder: &dyn Embedder,
    batch: usize,
    list: EmbedList,
    cancel: &Cancel,
    progress: &(dyn Fn(Progress) + Sync),
    mut on_batch: impl FnMut(Vec<(usize, Result<Vec<f32>, DecodeError>)>) -> Result<()>,
) -> Result<()> {
    let EmbedList { files, todo, mut fetched, kept } = list;
    let total = todo.len();
    let phase = if kept.is_some() { Phase::Colours } else { Phase::Embedding };
    progress(Progress { phase, done: 0, total });
    if total == 0 {
        return Ok(());
    }
    let batch = batch.max(1);
    let policy = embedder.policy();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, Result<Photo, DecodeError>)>>(1);
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || {
            for chunk in todo.chunks(batch) {
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let missing: Vec<&str> =
                    chunk.iter().filter(|i| !fetched.contains_key(i)).map(|&i| files[i].rel.as_str()).collect();
                let mut read = source.read_many(&missing).into_iter();
                let bytes: Vec<(usize, Result<Vec<u8>, DecodeError>)> = chunk
                    .iter()
                    .map(|&i| {
                        (
                            i,
                            fetched
                                .remove(&i)
                                .map(Ok)
                                .unwrap_or_else(|| read.next().unwrap_or(Err(DecodeError::Empty))),
                        )
                    })
                    .collect();
                let decoded = bytes
                    .into_par_iter()
                    .map(|(i, bytes)| (i, bytes.and_then(|b| Photo::decode(&b, policy))))
                    .collect();
                if tx.send(decoded).is_err() {
                    break;
                }
            }
        });
        let mut done = 0;
        for decoded in rx {
            let (mut rows, mut inputs, mut colours) = (Vec::new(), Vec::new(), Vec::new());
            let mut results: Vec<(usize, Result<Vec<f32>, DecodeError>)> = Vec::new();
            for (i, photo) in decoded {
                match (photo, kept.as_ref().and_then(|k| Some((k.store, *k.rows.get(&i)?)))) {
                    (Ok(p), Some((store, row))) => {
                        results.push((i, Ok(model::row(&store.vector(row)[..model::FEATURE_DIMS], &p.colour))))
                    }
                    (Ok(p), None) => {
                        rows.push(i);
                        inputs.push(p.input);
                        colours.push(p.colour);
                    }
                    (Err(e), _) => results.push((i, Err(e))),
                }
            }
            let vectors = if inputs.is_empty() { Vec::new() } else { embedder.embed(&inputs)? };
            let stored = vectors.chunks(model::FEATURE_DIMS).zip(&colours).map(|(f, c)| Ok(model::row(f, c)));
            results.extend(rows.into_iter().zip(stored));
            done += results.len();
            on_batch(results)?;
            progress(Progress { phase, done, total });
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A row of the existing store.
    Store(usize),
    /// A vector in the journal, by file offset (resumed or embedded by this run).
    Journal(u64),
}

/// Files hashed per call to the source: large enough for a remote source's concurrency.
const HASH_SLICE: usize = 256;

/// Whether a stored entry still describes a listed file (same size and change token).
pub(crate) fn same_stat(e: &Entry, f: &CatalogFile) -> bool {
    e.size == f.size && e.mtime_ns == f.mtime_ns
}
