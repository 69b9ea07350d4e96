//! Approximate search that has to earn its place: Annoy trees built over a PCA projection
//! of the descriptors (cheaper nodes, tighter splits), their candidates re-ranked exactly
//! at full dimension, and in `auto` mode used only where the cost measured when the trees
//! were built says they beat exact search.
//!
//! `index.ann` stays a plain spotify/annoy file (of the projected vectors);
//! `index.ann.proj` holds the projection (little-endian f32: the mean, then the
//! `dims x tree_dims` basis, row-major); `index.ann.keys` the identity of each item
//! (little-endian u64, [`key`]); `index.ann.rows` the store row of each item when the
//! trees were built (little-endian u32: items are numbered by the trees' leaves, so that
//! neighbours sit side by side in the file); `index.ann.json` records them all and the
//! cost. Photos
//! added or removed since the build are a [`Delta`] beside the trees until it grows past
//! [`DELTA_SHARE`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::annoy::{self, file_crc, Annoy, Built, Numbering, DEFAULT_SEED};
use super::exact::{dot, exact_top_k, Exact};
use super::{Request, Scored, VectorIndex};
use crate::config::{IndexConfig, SearchMode};
use crate::descriptor::{Fingerprint, Space, Whitening};
use crate::error::{Error, IoContext, Result};
use crate::files;
use crate::state::StateDir;
use crate::store::Store;

/// Rows the projection is fit on: a PCA over more costs time, not accuracy.
const FIT_ROWS: usize = 20_000;
/// Candidates an unfiltered search re-ranks at full dimension (at least 2k): the trees'
/// own order over the projection is good enough to cut there.
const RERANK: usize = 100;
/// Stored items that measure the cost when the trees are built.
const PROBES: usize = 200;
/// Trees stay in use while the photos added, changed or removed since they were built are
/// at most this share of their items: the added ones are searched exactly beside them,
/// the removed ones masked. Past it an index run builds them again.
pub const DELTA_SHARE: f64 = 0.02;
/// `auto` searches with the trees only when they answer this many times faster than exact
/// search...
pub const SPEEDUP: f64 = 3.0;
/// ...and find at least this share of exact search's top 10 (the probe is small, so a
/// little below the [`TARGET_RECALL`] it aims at).
pub const MIN_RECALL: f64 = 0.98;
/// The probe raises `search_k` from `index.search_k` by steps of about 1.4x (x1, x1.4,
/// x2, x2.8, ...) until the trees find this share of exact search's top 10, at most
/// [`LADDER`] steps (64x): a bigger catalog needs more candidates, and the smallest
/// number that suffices is the fastest (doubling overshot: at a million items it jumped
/// from 40,000, short of 0.99, to 80,000, where 56,000 suffice). The probe's
/// 200 queries measure recall to about +-0.002, so it aims that much above the 0.99 that
/// searches should get.
pub const TARGET_RECALL: f64 = 0.992;
pub const LADDER: u32 = 12;

/// What the trees cost against exact search, measured on stored items as queries (each
/// query's own item left out) on the machine that built them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub queries: usize,
    /// The `search_k` the probe chose, which searches use...
    pub search_k: usize,
    /// ...starting from this one (`index.search_k`).
    #[serde(default)]
    pub search_k_from: usize,
    pub exact_ms: f64,
    pub forest_ms: f64,
    pub recall_at_10: f64,
}

impl Cost {
    pub fn speedup(&self) -> f64 {
        self.exact_ms / self.forest_ms.max(1e-9)
    }

    /// Whether `auto` should search with the trees.
    pub fn pays(&self) -> bool {
        self.recall_at_10 >= MIN_RECALL && self.speedup() >= SPEEDUP
    }
}

/// `index.ann.json`: what the trees were built from and over, so a stale file is never
/// served, and what they cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// The Annoy file; its `dims` are the trees' (what Python's `AnnoyIndex` needs).
    #[serde(flatten)]
    pub file: Built,
    pub descriptor_dims: usize,
    /// CRC-32 of `index.ann.proj`; none when the trees are over the descriptors themselves.
    pub projection_crc: Option<u32>,
    /// The descriptors' transform ([`Space::fit_id`]): within one, a photo's descriptor
    /// never changes, so the trees stay valid for the photos they hold.
    pub fit_id: String,
    /// CRC-32 of `index.ann.keys`, one [`key`] per item.
    pub keys_crc: u32,
    /// CRC-32 of `index.ann.rows`, the row of each item when the trees were built; none
    /// in sidecars from before items were numbered by leaves, where item i is row i.
    #[serde(default)]
    pub rows_crc: Option<u32>,
    /// The store the trees were built for: while it is the same, its rows are the items
    /// and the keys need not be read and matched.
    pub store: Fingerprint,
    /// When `index.ann` was written: while it still says so, opening skips reading the
    /// whole file for its checksum (most of a second at a million items).
    #[serde(default)]
    pub written_ns: i64,
    pub cost: Cost,
}

/// A file's modification time in nanoseconds (0 when unknown).
fn modified_ns(path: &Path) -> i64 {
    let since = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).ok();
    std::fs::metadata(path).ok().and_then(|m| m.modified().ok()).and_then(since).map_or(0, |d| d.as_nanos() as i64)
}

/// The files of one set of trees: the Annoy file, the projection and the item rows.
pub struct TreeFiles {
    pub ann: PathBuf,
    pub proj: PathBuf,
    pub rows: PathBuf,
}

impl TreeFiles {
    pub fn of(state: &StateDir) -> TreeFiles {
        TreeFiles { ann: state.annoy(), proj: state.annoy_projection(), rows: state.annoy_rows() }
    }

    /// `ann` with `ann.proj` and `ann.rows` beside it, as in a state folder.
    pub fn beside(ann: &Path) -> TreeFiles {
        let with = |suffix: &str| PathBuf::from(format!("{}.{suffix}", ann.display()));
        TreeFiles { ann: ann.to_path_buf(), proj: with("proj"), rows: with("rows") }
    }
}

/// The row of each item as the trees were built ([`Delta::built`]), checked against the
/// sidecar.
fn read_rows(path: &Path, sidecar: &Sidecar) -> Result<Delta> {
    let items = sidecar.file.items;
    let Some(crc) = sidecar.rows_crc else { return Ok(Delta::none(items)) };
    let bytes = read_checked(path, 4 * items, &format!("{items} items take"), crc)?;
    let rows: Vec<u32> = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if rows.iter().any(|&r| r as usize >= items) {
        return Err(Error::damaged(path, format!("a row past the {items} items")));
    }
    Ok(Delta::built(rows))
}

/// A photo's identity in the trees: its catalog path and content hash.
pub fn key(path: &str, hash: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::new().chain_update(path).chain_update([0]).chain_update(hash).finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// How the trees' items map to the store's rows now.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// The row of each item; [`MASKED`] when its photo was removed or changed.
    rows: Vec<u32>,
    /// Rows the trees lack, searched exactly beside them.
    added: Vec<usize>,
    masked: usize,
}

const MASKED: u32 = u32::MAX;

impl Delta {
    /// Items are rows, none added or masked.
    pub fn none(items: usize) -> Delta {
        Self::built((0..items as u32).collect())
    }

    /// Item i is row `rows[i]`, none added or masked: the store the trees were built for.
    pub fn built(rows: Vec<u32>) -> Delta {
        Delta { rows, added: Vec::new(), masked: 0 }
    }

    /// Matches the trees' item keys with the store's rows, given in row order.
    pub fn of(items: &[u64], rows: impl Iterator<Item = u64>) -> Delta {
        let mut item_of: std::collections::HashMap<u64, u32> =
            items.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
        let mut map = vec![MASKED; items.len()];
        let mut added = Vec::new();
        for (row, k) in rows.enumerate() {
            match item_of.remove(&k) {
                Some(item) => map[item as usize] = row as u32,
                None => added.push(row),
            }
        }
        Delta { masked: item_of.len(), rows: map, added }
    }

    pub fn added(&self) -> usize {
        self.added.len()
    }

    pub fn masked(&self) -> usize {
        self.masked
    }

    /// Added and masked photos as a share of the trees' items.
    pub fn share(&self) -> f64 {
        (self.added.len() + self.masked) as f64 / self.rows.len().max(1) as f64
    }
}

/// Whether a search in `mode` uses the trees.
pub fn chooses(mode: SearchMode, cost: &Cost) -> bool {
    match mode {
        SearchMode::Exact => false,
        SearchMode::Approx => true,
        SearchMode::Auto => cost.pays(),
    }
}

/// Dimensions the trees are built over for `items` descriptors of `dims`.
pub fn tree_dims(config: &IndexConfig, dims: usize, items: usize) -> usize {
    match config.project_dims {
        0 => dims,
        p if p >= dims || items < 2 => dims,
        p => p,
    }
}

/// `vectors` as trees are built over them with `config`: projected (with the projection's
/// dimensions), or None when the trees are over the vectors themselves.
pub fn tree_vectors(vectors: &[f32], dims: usize, config: &IndexConfig) -> Result<Option<(Vec<f32>, usize)>> {
    match projection(vectors, dims, config)? {
        Some(p) => Ok(Some((project_all(&p, vectors)?, p.out_dims))),
        None => Ok(None),
    }
}

/// The projection trees are built over with `config`; None when they are over the
/// vectors themselves.
fn projection(vectors: &[f32], dims: usize, config: &IndexConfig) -> Result<Option<Whitening>> {
    let tree_dims = tree_dims(config, dims, vectors.len() / dims.max(1));
    Ok(if tree_dims < dims { Some(fit_projection(vectors, dims, tree_dims)?) } else { None })
}

/// The PCA of the descriptors, fit on up to [`FIT_ROWS`] rows spread over them.
fn fit_projection(vectors: &[f32], dims: usize, tree_dims: usize) -> Result<Whitening> {
    let items = vectors.len() / dims;
    let step = items.div_ceil(FIT_ROWS).max(1);
    let rows: Vec<f32> = vectors.chunks_exact(dims).step_by(step).flatten().copied().collect();
    Whitening::pca(&rows, dims, tree_dims)
}

/// Every row projected, in blocks so the tensors stay small.
fn project_all(projection: &Whitening, vectors: &[f32]) -> Result<Vec<f32>> {
    let block = projection.in_dims * 16_384;
    let parts: Vec<Vec<f32>> = vectors.chunks(block).map(|rows| projection.apply(rows)).collect::<Result<_>>()?;
    Ok(parts.concat())
}

fn save_projection(projection: &Whitening, out: &Path) -> Result<u32> {
    let bytes: Vec<u8> = projection.mean.iter().chain(&projection.proj).flat_map(|x| x.to_le_bytes()).collect();
    files::write_atomic(out, &bytes)?;
    Ok(crc32fast::hash(&bytes))
}

/// A file beside the trees, read whole: `want` bytes (`needs` says for what) with the
/// checksum the sidecar records.
fn read_checked(path: &Path, want: usize, needs: &str, crc: u32) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).at("cannot read", path)?;
    if bytes.len() != want {
        return Err(Error::damaged(path, format!("{} bytes, {needs} {want}", bytes.len())));
    }
    if crc32fast::hash(&bytes) != crc {
        return Err(Error::damaged(path, "its checksum differs from the one in index.ann.json"));
    }
    Ok(bytes)
}

fn open_projection(path: &Path, dims: usize, tree_dims: usize, crc: u32) -> Result<Whitening> {
    let want = 4 * (dims + dims * tree_dims);
    let bytes = read_checked(path, want, &format!("a {dims} x {tree_dims} projection takes"), crc)?;
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (mean, proj) = floats.split_at(dims);
    Ok(Whitening { mean: mean.to_vec(), proj: proj.to_vec(), in_dims: dims, out_dims: tree_dims })
}

/// The trees opened for searching, with the projection queries go through.
pub struct Forest {
    annoy: Annoy,
    projection: Option<Whitening>,
    search_k: usize,
    delta: Delta,
}

impl Forest {
    /// Opens the state folder's trees as its sidecar describes them, for the store's rows
    /// as `delta` maps them.
    pub fn open(state: &StateDir, sidecar: &Sidecar, delta: Delta) -> Result<Forest> {
        Self::open_with(&TreeFiles::of(state), sidecar, delta)
    }

    pub fn with_delta(self, delta: Delta) -> Forest {
        Forest { delta, ..self }
    }

    /// Opens trees kept outside a state folder (`bench-annoy --out`) for the rows they
    /// were built over. Searches go with the `search_k` the build's probe chose.
    pub fn open_at(files: &TreeFiles, sidecar: &Sidecar) -> Result<Forest> {
        Self::open_with(files, sidecar, read_rows(&files.rows, sidecar)?)
    }

    fn open_with(files: &TreeFiles, sidecar: &Sidecar, delta: Delta) -> Result<Forest> {
        let tree_dims = sidecar.file.dims;
        let projection = match sidecar.projection_crc {
            Some(crc) => Some(open_projection(&files.proj, sidecar.descriptor_dims, tree_dims, crc)?),
            None => None,
        };
        let annoy = Annoy::open(&files.ann, tree_dims, sidecar.file.items)?;
        let search_k = sidecar.cost.search_k;
        Ok(Forest { annoy, projection, search_k, delta })
    }

    pub fn set_search_k(&mut self, search_k: usize) {
        self.search_k = search_k;
    }

    /// The k best rows by exact cosine among the trees' candidates and the rows added
    /// since they were built, those `keep` lets through; fewer than k when the candidates
    /// run out. `spare` more candidates are taken for rows the caller will refuse; a
    /// `filtered` search re-ranks every candidate, since a filter may refuse most of them.
    #[allow(clippy::too_many_arguments)]
    pub fn top(
        &self,
        vectors: &[f32],
        dims: usize,
        query: &[f32],
        k: usize,
        spare: usize,
        filtered: bool,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<Scored> {
        let rows = vectors.len() / dims.max(1);
        let projected = self.projection.as_ref().map(|p| p.apply_one(query));
        let wanted = if filtered { self.search_k } else { RERANK.max(2 * k) + spare };
        let candidates =
            self.annoy.candidates(projected.as_deref().unwrap_or(query), wanted, self.search_k.max(wanted));
        let in_trees = candidates.into_iter().filter_map(|item| self.delta.rows.get(item).copied());
        let mut top: Vec<Scored> = in_trees
            .filter(|&row| row != MASKED)
            .map(|row| row as usize)
            .chain(self.delta.added.iter().copied())
            .filter(|&row| row < rows && keep(row))
            .map(|row| Scored { row, score: dot(&vectors[row * dims..(row + 1) * dims], query) })
            .collect();
        top.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        top.truncate(k);
        top
    }
}

/// Exact search's top 10 for stored items as queries, the yardstick of [`Truth::cost`].
pub struct Truth {
    rows: Vec<usize>,
    top: Vec<Vec<usize>>,
    exact_ms: f64,
}

impl Truth {
    /// Up to `queries` stored items, spread over the store, each searched exactly (timed).
    pub fn of(vectors: &[f32], dims: usize, queries: usize) -> Truth {
        let items = vectors.len() / dims.max(1);
        let count = queries.min(items);
        let rows: Vec<usize> = (0..count).map(|i| i * items / count).collect();
        let started = Instant::now();
        let top = rows
            .iter()
            .map(|&q| {
                let hits = exact_top_k(vectors, dims, &vectors[q * dims..(q + 1) * dims], 10, |r| r != q);
                hits.iter().map(|s| s.row).collect()
            })
            .collect();
        let exact_ms = ms_per(started, count);
        Truth { rows, top, exact_ms }
    }

    /// Milliseconds per exact search.
    pub fn exact_ms(&self) -> f64 {
        self.exact_ms
    }

    /// Recall@10 and time per query of `forest` on the same queries.
    pub fn cost(&self, vectors: &[f32], dims: usize, forest: &Forest) -> Cost {
        let started = Instant::now();
        let found: Vec<Vec<usize>> = self
            .rows
            .iter()
            .map(|&q| {
                let query = &vectors[q * dims..(q + 1) * dims];
                forest.top(vectors, dims, query, 10, 1, false, |r| r != q).iter().map(|s| s.row).collect()
            })
            .collect();
        let forest_ms = ms_per(started, self.rows.len());
        let hits: usize = found.iter().zip(&self.top).map(|(f, t)| f.iter().filter(|r| t.contains(r)).count()).sum();
        let recall_at_10 = hits as f64 / self.top.iter().map(Vec::len).sum::<usize>().max(1) as f64;
        let (queries, search_k, search_k_from) = (self.rows.len(), forest.search_k, forest.search_k);
        Cost { queries, search_k, search_k_from, exact_ms: self.exact_ms, forest_ms, recall_at_10 }
    }
}

fn ms_per(started: Instant, count: usize) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0 / count.max(1) as f64
}

/// Builds the trees over `vectors` (projected when `config` says so) into `files`, and
/// measures their cost; the caller writes the sidecar. Also returns the row of each item.
pub fn build(
    vectors: &[f32],
    dims: usize,
    config: &IndexConfig,
    source_crc: u32,
    files: &TreeFiles,
) -> Result<(Sidecar, Vec<u32>)> {
    let (mut sidecar, rows) = build_trees(vectors, dims, config, source_crc, files)?;
    let mut forest = Forest::open_with(files, &sidecar, Delta::built(rows.clone()))?;
    sidecar.cost = probe(vectors, dims, &mut forest, config.search_k);
    Ok((sidecar, rows))
}

/// The search_k values the probe tries: `from`, 1.4 `from`, 2 `from`, 2.8 `from`, 4
/// `from`, ... ([`LADDER`] steps, ending at 64 `from`).
pub fn ladder(from: usize) -> Vec<usize> {
    (0..=LADDER).map(|i| if i % 2 == 0 { from << (i / 2) } else { (from * 7 / 5) << (i / 2) }).collect()
}

/// What the trees cost against exact search on a few stored items, at the first
/// search_k of the [`ladder`] that reaches [`TARGET_RECALL`] (or its last);
/// `forest` is left at that search_k.
pub fn probe(vectors: &[f32], dims: usize, forest: &mut Forest, from: usize) -> Cost {
    let truth = Truth::of(vectors, dims, PROBES);
    let mut cost = Cost::default();
    for search_k in ladder(from) {
        forest.set_search_k(search_k);
        cost = truth.cost(vectors, dims, forest);
        if cost.recall_at_10 >= TARGET_RECALL {
            break;
        }
    }
    Cost { search_k_from: from, ..cost }
}

/// The projection, the trees and the rows of their items, without the cost (left at zero).
pub fn build_trees(
    vectors: &[f32],
    dims: usize,
    config: &IndexConfig,
    source_crc: u32,
    out: &TreeFiles,
) -> Result<(Sidecar, Vec<u32>)> {
    let projection = projection(vectors, dims, config)?;
    let (n_trees, ann, leaves) = (config.n_trees, &out.ann, Numbering::Leaves);
    let (file, rows) = match &projection {
        Some(p) => annoy::build(&project_all(p, vectors)?, p.out_dims, n_trees, DEFAULT_SEED, source_crc, ann, leaves)?,
        None => annoy::build(vectors, dims, n_trees, DEFAULT_SEED, source_crc, ann, leaves)?,
    };
    let projection_crc = match &projection {
        Some(p) => Some(save_projection(p, &out.proj)?),
        None => {
            files::remove_if_present(&out.proj)?;
            None
        }
    };
    let row_bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
    files::write_atomic(&out.rows, &row_bytes)?;
    let rows_crc = Some(crc32fast::hash(&row_bytes));
    // The store's keys and transform are `build_for`'s to record.
    let (fit_id, keys_crc, store, written_ns) = (String::new(), 0, Fingerprint::default(), 0);
    let cost = Cost::default();
    let sidecar =
        Sidecar { file, descriptor_dims: dims, projection_crc, fit_id, keys_crc, rows_crc, store, written_ns, cost };
    Ok((sidecar, rows))
}

/// The state folder's trees when they can serve `store` as it is now: built with these
/// settings over descriptors of the same transform, intact, and with the photos changed
/// since at most [`DELTA_SHARE`] of them; with how their items map to the rows now.
pub fn current(state: &StateDir, store: &Store, space: &Space, config: &IndexConfig) -> Option<(Sidecar, Delta)> {
    let sidecar: Sidecar = serde_json::from_slice(&std::fs::read(state.annoy_sidecar()).ok()?).ok()?;
    let (f, ann) = (&sidecar.file, state.annoy());
    let len = std::fs::metadata(&ann).map(|m| m.len()).unwrap_or(0);
    let fresh = sidecar.descriptor_dims == space.dims()
        && f.dims == tree_dims(config, space.dims(), f.items)
        && f.n_trees == config.n_trees
        && f.seed == DEFAULT_SEED
        && sidecar.cost.search_k_from == config.search_k
        && sidecar.fit_id == space.fit_id()
        && f.file_len == len
        && ((sidecar.written_ns != 0 && sidecar.written_ns == modified_ns(&ann))
            || file_crc(&ann).is_ok_and(|crc| crc == f.file_crc));
    if !fresh {
        return None;
    }
    if sidecar.store == Fingerprint::of(store) {
        let delta = read_rows(&state.annoy_rows(), &sidecar).ok()?;
        return Some((sidecar, delta));
    }
    let keys = std::fs::read(state.annoy_keys()).ok()?;
    if keys.len() != 8 * f.items || crc32fast::hash(&keys) != sidecar.keys_crc {
        return None;
    }
    let items: Vec<u64> = keys.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
    let delta = Delta::of(&items, store.entries().iter().map(|e| key(&e.path, &e.hash)));
    (delta.share() <= DELTA_SHARE).then_some((sidecar, delta))
}

/// Builds the state folder's trees over `space`, the descriptors of `store`; the caller
/// holds the state lock. The sidecar goes last, so a crash never leaves stale trees that
/// look current. None for an empty store; else the sidecar and how items map to rows.
pub fn build_for(
    state: &StateDir,
    store: &Store,
    space: &Space,
    config: &IndexConfig,
) -> Result<Option<(Sidecar, Delta)>> {
    let sidecar_path = state.annoy_sidecar();
    files::remove_if_present(&sidecar_path)?;
    if space.is_empty() {
        for path in [state.annoy_projection(), state.annoy_keys(), state.annoy_rows(), state.annoy()] {
            files::remove_if_present(&path)?;
        }
        return Ok(None);
    }
    let (mut sidecar, rows) = build(space.vectors(), space.dims(), config, space.crc(), &TreeFiles::of(state))?;
    let entries: Vec<_> = rows.iter().map(|&row| &store.entries()[row as usize]).collect();
    let keys: Vec<u8> = entries.iter().flat_map(|e| key(&e.path, &e.hash).to_le_bytes()).collect();
    files::write_atomic(&state.annoy_keys(), &keys)?;
    let paths: String = entries.iter().map(|e| format!("{}\n", e.path)).collect();
    files::write_atomic(&state.annoy_paths(), paths.as_bytes())?;
    (sidecar.fit_id, sidecar.keys_crc) = (space.fit_id(), crc32fast::hash(&keys));
    sidecar.store = Fingerprint::of(store);
    sidecar.written_ns = modified_ns(&state.annoy());
    files::write_atomic(&sidecar_path, &crate::store::json_pretty(&sidecar))?;
    Ok(Some((sidecar, Delta::built(rows))))
}

/// The trees' candidates re-ranked exactly; exact search answers instead when a filter
/// leaves fewer than k of them.
pub struct ForestIndex {
    forest: Forest,
    exact: Exact,
}

impl ForestIndex {
    pub fn new(forest: Forest, exact: Exact) -> ForestIndex {
        ForestIndex { forest, exact }
    }

    /// The search itself, which cannot fail.
    pub fn top(&self, request: &Request) -> Vec<Scored> {
        let (space, rows) = (self.exact.vectors(), self.exact.rows());
        let (k, spare, filtered) = (request.k, request.exclude.len(), !request.filters.is_empty());
        let hits = self
            .forest
            .top(space.vectors(), space.dims(), request.vector, k, spare, filtered, |r| rows.keep(request, r));
        if hits.len() >= k {
            return hits;
        }
        self.exact.top(request)
    }
}

impl VectorIndex for ForestIndex {
    fn method(&self) -> &'static str {
        "annoy"
    }

    fn search(&self, request: &Request) -> Result<Vec<Scored>> {
        Ok(self.top(request))
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::*;

    /// Every row projected without tensors, as queries are: what `project_all` must match.
    fn project_each(projection: &Whitening, vectors: &[f32]) -> Vec<f32> {
        vectors.par_chunks(projection.in_dims).flat_map_iter(|row| projection.apply_one(row)).collect()
    }

    /// Unit vectors around 40 centres in 64 dimensions.
    fn clustered(n: usize, dims: usize) -> Vec<f32> {
        let noise = crate::bench::pseudo_uniform(11, n * dims + 40 * dims);
        let (centres, jitter) = noise.split_at(40 * dims);
        let mut out: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = &centres[(i % 40) * dims..(i % 40 + 1) * dims];
                c.iter().zip(&jitter[i * dims..(i + 1) * dims]).map(|(c, j)| c + 0.4 * j).collect::<Vec<_>>()
            })
            .collect();
        out.chunks_mut(dims).for_each(super::super::exact::normalize);
        out
    }

    /// Trees built over `n` clustered vectors in a temporary folder.
    struct Fixture {
        _dir: tempfile::TempDir,
        vectors: Vec<f32>,
        files: TreeFiles,
        sidecar: Sidecar,
        rows: Vec<u32>,
    }

    fn built(n: usize, dims: usize, config: &IndexConfig) -> Fixture {
        let vectors = clustered(n, dims);
        let dir = tempfile::tempdir().unwrap();
        let files = TreeFiles::beside(&dir.path().join("i.ann"));
        let (sidecar, rows) = build(&vectors, dims, config, 7, &files).unwrap();
        Fixture { _dir: dir, vectors, files, sidecar, rows }
    }

    #[test]
    fn projected_trees_find_what_exact_search_finds_and_record_their_cost() {
        let (n, dims) = (3000, 64);
        let config = IndexConfig { project_dims: 16, n_trees: 8, search_k: 2000, ..IndexConfig::default() };
        let Fixture { _dir, vectors, files, sidecar, rows } = built(n, dims, &config);
        assert_eq!((sidecar.file.dims, sidecar.descriptor_dims, sidecar.file.items), (16, 64, n));
        assert!(sidecar.projection_crc.is_some() && files.proj.is_file());
        assert_eq!((sidecar.cost.queries, sidecar.cost.search_k_from), (PROBES, 2000));
        assert!(ladder(2000).contains(&sidecar.cost.search_k), "{:?}", sidecar.cost);
        assert_eq!((ladder(2000)[1], ladder(2000)[LADDER as usize]), (2800, 2000 << 6));
        assert!(sidecar.cost.recall_at_10 >= 0.9, "{:?}", sidecar.cost);
        assert!(sidecar.cost.exact_ms > 0.0 && sidecar.cost.forest_ms > 0.0);

        // The projection as stored equals the one the trees were built with.
        let projection = open_projection(&files.proj, dims, 16, sidecar.projection_crc.unwrap()).unwrap();
        let (bulk, each) = (project_all(&projection, &vectors).unwrap(), project_each(&projection, &vectors));
        assert!(bulk.iter().zip(&each).all(|(a, b)| (a - b).abs() < 1e-4));

        // Items are numbered by the leaves, each row once; item i of the file is row rows[i].
        let mut sorted = rows.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>());
        assert_ne!(rows, sorted, "numbered by leaves, not by rows");
        let annoy = Annoy::open(&files.ann, 16, n).unwrap();
        for item in [0, 1234, n - 1] {
            let row = rows[item] as usize;
            let projected = projection.apply_one(&vectors[row * dims..(row + 1) * dims]);
            assert_eq!(annoy.candidates(&projected, 1, 100), vec![item]);
        }
        // Reopened, the trees map items to the same rows; a damaged rows file is refused.
        assert_eq!(Forest::open_at(&files, &sidecar).unwrap().delta, Delta::built(rows.clone()));
        let good = std::fs::read(&files.rows).unwrap();
        std::fs::write(&files.rows, &good[..good.len() - 4]).unwrap();
        let err = Forest::open_at(&files, &sidecar).err().unwrap().to_string();
        assert!(err.contains("i.ann.rows") && err.contains("bytes"), "{err}");
        std::fs::write(&files.rows, &good).unwrap();

        // Trees over the first 2,900 rows with the last 100 beside them: found as if built in.
        let (some, rows) = build(&vectors[..2900 * dims], dims, &config, 7, &files).unwrap();
        let items: Vec<u64> = rows.iter().map(|i| key(&i.to_string(), "")).collect();
        let delta = Delta::of(&items, (0..n).map(|i| key(&i.to_string(), "")));
        let forest = Forest::open_at(&files, &some).unwrap().with_delta(delta);
        let query = &vectors[2950 * dims..2951 * dims];
        assert_eq!(forest.top(&vectors, dims, query, 1, 0, false, |_| true)[0].row, 2950);
        assert!(Truth::of(&vectors, dims, 100).cost(&vectors, dims, &forest).recall_at_10 >= 0.9);

        // Without a projection the trees are over the descriptors, and a stale file goes.
        let plain = IndexConfig { project_dims: 0, ..config };
        let (sidecar, _) = build(&vectors, dims, &plain, 7, &files).unwrap();
        assert_eq!((sidecar.file.dims, sidecar.projection_crc), (64, None));
        assert!(!files.proj.exists());
    }

    #[test]
    fn a_damaged_projection_is_refused_naming_the_file() {
        let config = IndexConfig { project_dims: 8, n_trees: 2, search_k: 500, ..IndexConfig::default() };
        let Fixture { _dir, files, sidecar, .. } = built(500, 32, &config);
        let mut bytes = std::fs::read(&files.proj).unwrap();
        bytes[10] ^= 0x40;
        std::fs::write(&files.proj, &bytes).unwrap();
        let err = Forest::open_at(&files, &sidecar).err().unwrap().to_string();
        assert!(err.contains("i.ann.proj") && err.contains("checksum"), "{err}");
        std::fs::write(&files.proj, &bytes[..bytes.len() - 4]).unwrap();
        let err = Forest::open_at(&files, &sidecar).err().unwrap().to_string();
        assert!(err.contains("i.ann.proj") && err.contains("bytes"), "{err}");
    }

    #[test]
    fn a_delta_maps_items_to_rows_masks_the_gone_and_lists_the_new() {
        let items: Vec<u64> = [10, 11, 12, 13].map(|i| key(&i.to_string(), "h")).to_vec();
        // Row order now: 13, 10, 99 (new), 11 with other content, 12 gone.
        let now = [key("13", "h"), key("10", "h"), key("99", "h"), key("11", "changed")];
        let delta = Delta::of(&items, now.into_iter());
        assert_eq!(delta.rows, vec![1, MASKED, MASKED, 0]);
        assert_eq!((delta.added.clone(), delta.masked()), (vec![2, 3], 2));
        assert_eq!(delta.share(), 1.0);
        assert_eq!(Delta::of(&items, items.iter().copied()), Delta::none(4));
    }

    #[test]
    fn auto_follows_the_measured_cost() {
        let cost = |exact_ms, forest_ms, recall_at_10| Cost {
            queries: 64,
            search_k: 1,
            search_k_from: 1,
            exact_ms,
            forest_ms,
            recall_at_10,
        };
        assert!(chooses(SearchMode::Auto, &cost(12.0, 2.0, 0.995)));
        assert!(!chooses(SearchMode::Auto, &cost(12.0, 6.0, 0.995)), "only twice as fast");
        assert!(!chooses(SearchMode::Auto, &cost(12.0, 1.0, 0.95)), "misses too much");
        assert!(chooses(SearchMode::Approx, &cost(1.0, 6.0, 0.5)));
        assert!(!chooses(SearchMode::Exact, &cost(12.0, 1.0, 1.0)));
    }
}
