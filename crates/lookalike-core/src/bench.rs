//! Measurements behind `lookalike bench` and `bench-annoy`: embedding throughput at
//! several thread counts, per-layer time, exact query latency, store open time, Annoy
//! build cost and recall, and the process's peak memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{Config, IndexConfig, SearchMode};
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::index::device::DeviceExact;
use crate::index::exact::{exact_top_k, Exact};
use crate::index::forest::{self, Cost, Delta, Forest, TreeFiles, Truth};
use crate::index::{Request, Rows};
use crate::model::{self, Embedder, Opened, ResNetEmbedder};
use crate::near;
use crate::runtime::peak_rss_mib;
use crate::service::Snapshot;
use crate::store::{self, Entry, Identity, Store};

#[derive(Debug, Serialize, Deserialize)]
pub struct EmbedFigure {
    /// Where the model ran, as the device resolved.
    pub device: String,
    pub threads: usize,
    pub batch: usize,
    pub images: usize,
    pub images_per_s: f64,
    pub ms_per_image: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SearchFigure {
    pub vectors: usize,
    /// Dimensions of the default descriptors (the shape part and the colour part).
    pub dims: usize,
    pub query_ms: f64,
    /// The same search over the shape part alone: what colour adds is the difference.
    pub shape_only_query_ms: f64,
    pub store_open_ms: f64,
    pub store_mib: f64,
    /// The same search with the descriptors on the model's GPU, when it runs on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSearchFigure>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GpuSearchFigure {
    pub device: String,
    /// One query per call (median).
    pub query_ms: f64,
    /// Queries per second at [`GPU_QUERY_BATCH`] queries per call.
    pub batched_queries_per_s: f64,
}

/// Queries per call in the batched GPU measurement.
pub const GPU_QUERY_BATCH: usize = 64;

/// The first `n` images of the configured catalog, decoded and preprocessed.
pub fn catalog_inputs(engine: &Engine, n: usize) -> Result<Vec<Vec<f32>>> {
    let source = engine.source();
    let files = source.list()?.files;
    if files.is_empty() {
        return Err(Error::Catalog { catalog: source.name(), reason: "no images to benchmark with".into() });
    }
    let policy = engine.config().resize;
    files
        .iter()
        .take(n.max(1))
        .map(|f| {
            let input = source.read(&f.rel).and_then(|b| model::input(&b, policy));
            input.map_err(|reason| Error::BadImage { what: f.rel.clone(), reason })
        })
        .collect()
}

/// Runs `work` on a pool of `threads` threads (0 = one per core): the model's parallel
/// loops then use exactly that many.
pub fn with_threads<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::failed("starting a thread pool", e))?;
    Ok(pool.install(work))
}

/// Embedding throughput at each thread count, batch 1 and `batch`.
pub fn embed_at_threads(
    embedder: &dyn Embedder,
    inputs: &[Vec<f32>],
    batch: usize,
    thread_counts: &[usize],
) -> Result<Vec<EmbedFigure>> {
    let mut out = Vec::new();
    for &threads in thread_counts {
        let sizes = if batch > 1 { vec![1, batch] } else { vec![1] };
        for size in sizes {
            out.push(with_threads(threads, || embed_throughput(embedder, inputs, size))??);
        }
    }
    Ok(out)
}

/// Times the model alone on already-decoded inputs, after one warm-up batch, on the
/// current thread pool.
pub fn embed_throughput(embedder: &dyn Embedder, inputs: &[Vec<f32>], batch: usize) -> Result<EmbedFigure> {
    let threads = rayon::current_num_threads();
    embedder.embed(&inputs[..batch.min(inputs.len())])?;
    let started = Instant::now();
    for chunk in inputs.chunks(batch) {
        embedder.embed(chunk)?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(EmbedFigure {
        device: embedder.device().to_string(),
        threads,
        batch,
        images: inputs.len(),
        images_per_s: inputs.len() as f64 / secs,
        ms_per_image: secs * 1000.0 / inputs.len() as f64,
    })
}

#[derive(Debug, Serialize)]
pub struct LayerFigure {
    pub layer: String,
    /// Multiply-adds per image.
    pub macs: usize,
    /// Mean wall time per image at batch 1 and at the batched size.
    pub ms_per_image: [f64; 2],
}

/// Per-layer wall time at batch 1 and at `batch`, over all `images` after a warm-up pass.
pub fn layer_profile(embedder: &ResNetEmbedder, inputs: &[Vec<f32>], batch: usize) -> Result<Vec<LayerFigure>> {
    embedder.embed(&inputs[..batch.min(inputs.len())])?;
    let mut figures: Vec<LayerFigure> = Vec::new();
    for (column, size) in [1, batch].into_iter().enumerate() {
        for chunk in inputs.chunks(size) {
            // Batched, the early layers run once per image: sum by name.
            for layer in embedder.profile(chunk)?.layers {
                let i = match figures.iter().position(|f| f.layer == layer.name) {
                    Some(i) => i,
                    None => {
                        figures.push(LayerFigure { layer: layer.name, macs: layer.macs, ms_per_image: [0.0; 2] });
                        figures.len() - 1
                    }
                };
                figures[i].ms_per_image[column] += layer.seconds * 1000.0 / inputs.len() as f64;
            }
        }
    }
    Ok(figures)
}

/// Deterministic pseudo-random numbers in [0, 1) (xorshift): benchmark data here, and
/// test data for the unit tests that need reproducible noise.
pub fn pseudo_uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Random unit vectors from a fixed-seed generator (the search cost does not depend on
/// where vectors come from).
fn random_unit_vectors(n: usize, dims: usize, seed: u64) -> Vec<f32> {
    let mut out: Vec<f32> = pseudo_uniform(seed, n * dims).into_iter().map(|v| v - 0.5).collect();
    out.chunks_mut(dims).for_each(model::normalize);
    out
}

/// Exact top-10 latency (median of `repeats`) over `n` descriptors of the default size,
/// and the open time and size of a store of `n` rows (features and colour); on `gpu`
/// too when given.
pub fn search_latency(n: usize, repeats: usize, scratch: &Path, gpu: Option<&Opened>) -> Result<SearchFigure> {
    let row = model::ROW_DIMS;
    let features = random_unit_vectors(n, row, 0x9E3779B97F4A7C15 ^ n as u64);
    let entries: Vec<Entry> =
        (0..n).map(|i| Entry { path: format!("{i:09}.jpg"), size: 0, mtime_ns: 0, hash: String::new() }).collect();
    let colour = crate::colour::COLOUR_ID.to_string();
    let identity = Identity { model: "bench".into(), preprocessing: "bench".into(), dims: row, colour };
    let path = scratch.join(format!("bench-{n}.lks"));
    store::write(&path, &identity, &[], &entries, |i| features[i * row..][..row].into())?;
    drop(features);
    let started = Instant::now();
    let opened = Store::open(&path)?;
    let store_open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let store_mib = opened.file_size() as f64 / (1 << 20) as f64;
    drop(opened);
    std::fs::remove_file(&path).at("cannot remove", &path)?;
    let default = crate::descriptor::Recipe::DEFAULT;
    let shape = default.whiten;
    let dims = shape + if default.colour > 0.0 { crate::colour::COLOUR_DIMS } else { 0 };
    let median_ms = |dims: usize| {
        let descriptors = random_unit_vectors(n, dims, 7 ^ n as u64);
        let queries = random_unit_vectors(repeats, dims, 42);
        let mut times: Vec<f64> = queries
            .chunks(dims)
            .map(|q| {
                let started = Instant::now();
                let top = exact_top_k(&descriptors, dims, q, 10, |_| true);
                assert_eq!(top.len(), 10.min(n));
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let (query_ms, shape_only_query_ms) = (median_ms(dims), median_ms(shape));
    let gpu = gpu.map(|gpu| gpu_search(n, dims, repeats, gpu)).transpose()?;
    Ok(SearchFigure { vectors: n, dims, query_ms, shape_only_query_ms, store_open_ms, store_mib, gpu })
}

/// [`search_latency`]'s exact search with the descriptors resident on `gpu`: one query
/// per call, then [`GPU_QUERY_BATCH`] per call.
fn gpu_search(n: usize, dims: usize, repeats: usize, gpu: &Opened) -> Result<GpuSearchFigure> {
    let space = Arc::new(crate::descriptor::Space::from_rows(random_unit_vectors(n, dims, 7 ^ n as u64), dims));
    let index = DeviceExact::new(Exact::new(space, Arc::new(Rows::default())), &gpu.candle)?;
    let queries = random_unit_vectors(repeats.max(GPU_QUERY_BATCH), dims, 42);
    let requests: Vec<Request> =
        queries.chunks(dims).map(|vector| Request { vector, k: 10, filters: &[], exclude: &[] }).collect();
    index.search_batch(&requests[..1])?;
    let mut times = Vec::new();
    for r in &requests[..repeats] {
        let started = Instant::now();
        assert_eq!(index.search_batch(std::slice::from_ref(r))?[0].len(), 10.min(n));
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let started = Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        index.search_batch(&requests[..GPU_QUERY_BATCH])?;
    }
    let batched_queries_per_s = (rounds * GPU_QUERY_BATCH) as f64 / started.elapsed().as_secs_f64();
    Ok(GpuSearchFigure { device: gpu.name.clone(), query_ms: times[times.len() / 2], batched_queries_per_s })
}

#[derive(Debug, Serialize)]
pub struct AnnoyFigure {
    pub search_k: usize,
    /// The row of the `search_k` an index run's probe chooses with these settings.
    pub default: bool,
    /// Re-ranked top 10 against exact search's.
    pub recall_at_10: f64,
    pub queries_per_s: f64,
}

/// What `bench-annoy` measured.
#[derive(Debug, Serialize)]
pub struct AnnoyBench {
    pub items: usize,
    pub dims: usize,
    /// Dimensions the trees are built over (`dims` when not projected).
    pub tree_dims: usize,
    pub trees: usize,
    /// Projection, trees and file, as an index run builds them (its cost probe aside).
    pub build_s: f64,
    pub file_mib: f64,
    pub peak_rss_mib: f64,
    /// What the index run's probe measured, which `auto` goes by.
    pub cost: Cost,
    pub auto_chooses_annoy: bool,
    pub exact_queries_per_s: f64,
    pub search: Vec<AnnoyFigure>,
    /// With `--delta`: what adding and removing photos after the build cost.
    pub delta: Option<DeltaFigure>,
    /// With `--neighbours`: the nearest-neighbour lists `dupes` draws candidates from.
    pub neighbours: Option<NeighboursFigure>,
}

/// Every item's [`near::CANDIDATES`] nearest items, both ways `dupes` can list them.
#[derive(Debug, Serialize)]
pub struct NeighboursFigure {
    pub k: usize,
    pub trees_s: f64,
    /// The matrix product, measured up to [`PRODUCT_MEASURED_UP_TO`] items.
    pub product_s: Option<f64>,
    /// The share of the product's (exact) pairs that the trees' lists hold.
    pub trees_hold: Option<f64>,
}

/// Above this many items the matrix product is not timed (it grows with the square).
pub const PRODUCT_MEASURED_UP_TO: usize = 200_000;

fn neighbours_figure(vectors: &[f32], dims: usize) -> Result<NeighboursFigure> {
    let k = near::CANDIDATES;
    let pairs = |lists: Vec<Vec<crate::index::Scored>>| -> std::collections::HashSet<(usize, usize)> {
        lists
            .into_iter()
            .enumerate()
            .flat_map(|(i, l)| l.into_iter().map(move |s| (i.min(s.row), i.max(s.row))))
            .collect()
    };
    let started = Instant::now();
    let by_trees = pairs(near::neighbours_by_trees(vectors, dims, k)?);
    let trees_s = started.elapsed().as_secs_f64();
    let (mut product_s, mut trees_hold) = (None, None);
    if vectors.len() / dims <= PRODUCT_MEASURED_UP_TO {
        let started = Instant::now();
        let exact = pairs(near::neighbours_by_product(vectors, dims, k)?);
        product_s = Some(started.elapsed().as_secs_f64());
        trees_hold = Some(exact.iter().filter(|p| by_trees.contains(p)).count() as f64 / exact.len().max(1) as f64);
    }
    Ok(NeighboursFigure { k, trees_s, product_s, trees_hold })
}

/// Photos added and removed after the trees were built (the figures of `search` are
/// then with this delta in place).
#[derive(Debug, Serialize)]
pub struct DeltaFigure {
    pub added: usize,
    pub removed: usize,
    /// Matching the trees' items with the new rows by key, as opening a snapshot does.
    pub apply_ms: f64,
    pub share: f64,
}

/// Where `bench-annoy` takes its vectors from.
pub enum AnnoyInput<'a> {
    /// The catalog's search descriptors.
    Catalog(&'a Engine),
    /// A raw little-endian f32 file of `dims`-d unit rows.
    File { path: &'a Path, dims: usize },
    /// [`clustered`] vectors made in memory.
    Synthetic { items: usize, dims: usize },
}

/// Vectors per cluster in [`clustered`] sets, at every size: a bigger catalog has more
/// kinds of product, not more copies of each.
const CLUSTER_SIZE: usize = 100;
/// How fast the variance of [`clustered`] sets falls over the dimensions.
const DECAY: f32 = 0.5;

/// Synthetic descriptors: unit vectors in clusters of about [`CLUSTER_SIZE`], centres and
/// the spread around them both with variance falling as `(i + 1)^-DECAY` over dimension i,
/// so that, as in real descriptors, no few directions tell neighbours apart.
pub fn clustered(items: usize, dims: usize, seed: u64) -> Vec<f32> {
    use rayon::prelude::*;
    let scale: Vec<f32> = (0..dims).map(|i| ((i + 1) as f32).powf(-DECAY / 2.0)).collect();
    // Roughly normal: the sum of four uniforms, centred.
    let normal = |seed: u64| -> Vec<f32> {
        pseudo_uniform(seed, 4 * dims).chunks_exact(4).map(|u| u.iter().sum::<f32>() - 2.0).collect()
    };
    let clusters = items.div_ceil(CLUSTER_SIZE).max(1);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|c| normal(seed ^ ((c as u64) << 32))).collect();
    let mut out = vec![0f32; items * dims];
    out.par_chunks_mut(dims).enumerate().for_each(|(i, row)| {
        let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
        h ^= h >> 29;
        let centre = &centres[(h % centres.len() as u64) as usize];
        let spread = normal(h.wrapping_add(seed));
        for (j, x) in row.iter_mut().enumerate() {
            *x = (centre[j] + 0.7 * spread[j]) * scale[j];
        }
        model::normalize(row);
    });
    out
}

/// Builds the trees over the input as an index run would with `config` (kept at `out`
/// when given), then measures recall@10 against exact search and queries/s at each
/// `search_ks` (none: the probe's [`forest::ladder`]), with `queries` stored items as queries (each one's own item left out).
/// With `delta` > 0 the trees are built without the last `delta` vectors, then those are
/// added and `delta` others removed, and everything is measured on the result. With
/// `neighbours`, also the nearest-neighbour lists of `dupes` both ways.
pub fn annoy(
    input: AnnoyInput,
    config: &IndexConfig,
    search_ks: &[usize],
    queries: usize,
    delta: usize,
    out: Option<&Path>,
    neighbours: bool,
) -> Result<AnnoyBench> {
    let scratch = tempfile::tempdir().map_err(|e| Error::io("cannot create", &std::env::temp_dir(), e))?;
    let path: PathBuf = out.map_or_else(|| scratch.path().join("bench.ann"), Path::to_path_buf);
    let files = TreeFiles::beside(&path);
    let mut made = Vec::new();
    let (space, raw, dims) = match input {
        AnnoyInput::Synthetic { items, dims } => {
            made = clustered(items, dims, 1);
            (None, None, dims)
        }
        AnnoyInput::Catalog(engine) => {
            let space = Snapshot::open(engine, Some(SearchMode::Exact))?.space_arc();
            let dims = space.dims();
            (Some(space), None, dims)
        }
        AnnoyInput::File { path: file, dims } => {
            let f = std::fs::File::open(file).at("cannot open", file)?;
            // SAFETY: a benchmark input, only read.
            let map = unsafe { memmap2::Mmap::map(&f) }.at("cannot map", file)?;
            if dims == 0 || map.is_empty() || map.len() % (4 * dims) != 0 {
                return Err(Error::damaged(file, format!("not a whole number of {dims}-d f32 rows")));
            }
            (None, Some(map), dims)
        }
    };
    let vectors: &[f32] = match (&space, &raw) {
        (Some(space), _) => space.vectors(),
        (None, Some(map)) => bytemuck::try_cast_slice(map).map_err(|e| Error::failed("reading vectors", e))?,
        (None, None) => &made,
    };
    let items = vectors.len() / dims;
    if delta > 0 && delta >= items / 2 {
        return Err(Error::failed("bench-annoy --delta", format!("{delta} of {items} vectors is not a delta")));
    }
    let base = items - delta;
    let started = Instant::now();
    let (sidecar, rows) = forest::build_trees(&vectors[..base * dims], dims, config, 0, &files)?;
    let build_s = started.elapsed().as_secs_f64();
    let peak_rss_mib = peak_rss_mib();
    let mut trees = Forest::open_at(&files, &sidecar)?;
    let (current, delta) = match delta {
        0 => (std::borrow::Cow::Borrowed(vectors), None),
        _ => {
            // Rows spread over the built ones are removed; keys stand in for photos.
            let removed: std::collections::HashSet<usize> = (0..delta).map(|i| i * base / delta).collect();
            let kept = || (0..items).filter(|r| !removed.contains(r));
            let current: Vec<f32> = kept().flat_map(|r| &vectors[r * dims..(r + 1) * dims]).copied().collect();
            let keys: Vec<u64> = rows.iter().map(|r| forest::key(&r.to_string(), "")).collect();
            let started = Instant::now();
            let map = Delta::of(&keys, kept().map(|r| forest::key(&r.to_string(), "")));
            let apply_ms = started.elapsed().as_secs_f64() * 1000.0;
            let figure = DeltaFigure { added: map.added(), removed: map.masked(), apply_ms, share: map.share() };
            trees = trees.with_delta(map);
            (std::borrow::Cow::Owned(current), Some(figure))
        }
    };
    let vectors: &[f32] = &current;
    let cost = forest::probe(vectors, dims, &mut trees, config.search_k);
    let truth = Truth::of(vectors, dims, queries);
    let ladder = forest::ladder(config.search_k);
    let search_ks = if search_ks.is_empty() { &ladder[..] } else { search_ks };
    let search = search_ks
        .iter()
        .map(|&search_k| {
            trees.set_search_k(search_k);
            let at = truth.cost(vectors, dims, &trees);
            AnnoyFigure {
                search_k,
                default: search_k == cost.search_k,
                recall_at_10: at.recall_at_10,
                queries_per_s: 1000.0 / at.forest_ms.max(1e-9),
            }
        })
        .collect();
    let neighbours = if neighbours { Some(neighbours_figure(vectors, dims)?) } else { None };
    Ok(AnnoyBench {
        items: vectors.len() / dims,
        dims,
        tree_dims: sidecar.file.dims,
        trees: sidecar.file.n_trees,
        build_s,
        file_mib: sidecar.file.file_len as f64 / 1048576.0,
        peak_rss_mib,
        auto_chooses_annoy: cost.pays(),
        cost,
        exact_queries_per_s: 1000.0 / truth.exact_ms().max(1e-9),
        search,
        delta,
        neighbours,
    })
}

/// `lookalike bench` without the layer table: embedding at each thread count, then exact
/// search latency and store open time at each size.
pub fn run(
    config: &Config,
    images: usize,
    batch: usize,
    thread_counts: &[usize],
    sizes: &[usize],
    embed: bool,
) -> Result<Bench> {
    let mut out = Bench::default();
    if embed {
        let engine = Engine::new(config.clone())?;
        let inputs = catalog_inputs(&engine, images)?;
        out.embed = embed_at_threads(engine.embedder()?.as_ref(), &inputs, batch, thread_counts)?;
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::io("cannot create", &std::env::temp_dir(), e))?;
    let gpu = match sizes.is_empty() {
        true => None,
        false => Some(config.device.open()?).filter(Opened::is_gpu),
    };
    for &n in sizes {
        out.search.push(search_latency(n, 21, scratch.path(), gpu.as_ref())?);
    }
    Ok(out)
}

#[derive(Debug, Default, Serialize)]
pub struct Bench {
    pub embed: Vec<EmbedFigure>,
    pub search: Vec<SearchFigure>,
}

/// The per-layer profile of the configured catalog's first `images` images.
pub fn layers(config: &Config, images: usize, batch: usize) -> Result<Vec<LayerFigure>> {
    let engine = Engine::new(config.clone())?;
    let inputs = catalog_inputs(&engine, images)?;
    let embedder = ResNetEmbedder::load(&config.weights, config.resize, config.device)?;
    layer_profile(&embedder, &inputs, batch)
}
