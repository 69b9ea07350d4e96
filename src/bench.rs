//! `lookalike bench`: embedding throughput, exact query latency and store open time.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::descriptor::Space;
use crate::index::annoy::Annoy;
use crate::model::{self, Embedder};
use crate::store::{self, Entry, Identity, Store};

#[derive(Debug, Serialize, Deserialize)]
pub struct EmbedFigure {
    pub threads: usize,
    pub batch: usize,
    pub images: usize,
    pub images_per_s: f64,
    pub ms_per_image: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SearchFigure {
    pub vectors: usize,
    pub query_ms: f64,
    pub store_open_ms: f64,
    pub store_mib: f64,
}

fn load_inputs(embedder: &Embedder, images: &[&Path]) -> Result<Vec<Vec<f32>>> {
    if images.is_empty() {
        bail!("no images to benchmark with");
    }
    images
        .iter()
        .map(|p| model::load_input(p, embedder.policy()).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())))
        .collect()
}

/// Times the model alone on already-decoded inputs, after one warm-up batch.
pub fn embed_throughput(embedder: &Embedder, images: &[&Path], batch: usize, threads: usize) -> Result<EmbedFigure> {
    let inputs = load_inputs(embedder, images)?;
    embedder.embed_inputs(&inputs[..batch.min(inputs.len())])?;
    let started = Instant::now();
    for chunk in inputs.chunks(batch) {
        embedder.embed_inputs(chunk)?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(EmbedFigure {
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
pub fn layer_profile(embedder: &Embedder, images: &[&Path], batch: usize) -> Result<Vec<LayerFigure>> {
    let inputs = load_inputs(embedder, images)?;
    embedder.embed_inputs(&inputs[..batch.min(inputs.len())])?;
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
/// and the open time and size of a store of `n` feature rows.
pub fn search_latency(n: usize, repeats: usize, scratch: &Path) -> Result<SearchFigure> {
    let features = random_unit_vectors(n, model::FEATURE_DIMS, 0x9E3779B97F4A7C15 ^ n as u64);
    let entries: Vec<Entry> =
        (0..n).map(|i| Entry { path: format!("{i:09}.jpg"), size: 0, mtime_ns: 0, hash: String::new() }).collect();
    let identity = Identity { model: "bench".into(), preprocessing: "bench".into(), dims: model::FEATURE_DIMS };
    let path = scratch.join(format!("bench-{n}.lks"));
    store::write(&path, &identity, &entries, |i| features[i * model::FEATURE_DIMS..][..model::FEATURE_DIMS].into())?;
    drop(features);
    let started = Instant::now();
    let opened = Store::open(&path)?;
    let store_open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let store_mib = opened.file_size() as f64 / (1 << 20) as f64;
    drop(opened);
    std::fs::remove_file(&path)?;
    let dims = crate::descriptor::Recipe::DEFAULT.whiten;
    let descriptors = random_unit_vectors(n, dims, 7 ^ n as u64);
    let queries = random_unit_vectors(repeats, dims, 42);
    let mut times: Vec<f64> = queries
        .chunks(dims)
        .map(|q| {
            let started = Instant::now();
            let top = crate::index::exact_top_k(&descriptors, dims, q, 10, |_| true);
            assert_eq!(top.len(), 10.min(n));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Ok(SearchFigure { vectors: n, query_ms: times[times.len() / 2], store_open_ms, store_mib })
}

#[derive(Debug, Serialize)]
pub struct AnnoyFigure {
    pub search_k: usize,
    /// Annoy's own top 10.
    pub recall_at_10: f64,
    /// Top 10 of all `search_k` candidates re-ranked by exact cosine from the store.
    pub recall_at_10_reranked: f64,
    pub queries_per_s: f64,
    pub queries_per_s_reranked: f64,
}

/// Exact search throughput, and recall@10 of Annoy against exact search with its query
/// throughput, using `queries` stored vectors (spread over the store) as queries; each
/// query's own row is left out.
pub fn annoy_recall(space: &Space, annoy: &Annoy, search_ks: &[usize], queries: usize) -> (f64, Vec<AnnoyFigure>) {
    let n = space.len();
    let rows: Vec<usize> = (0..queries.min(n)).map(|i| i * n / queries.min(n)).collect();
    let started = Instant::now();
    let exact: Vec<Vec<usize>> = rows
        .iter()
        .map(|&q| {
            let top = crate::index::exact_top_k(space.vectors(), space.dims(), space.vector(q), 10, |r| r != q);
            top.iter().map(|s| s.row).collect()
        })
        .collect();
    let exact_qps = rows.len() as f64 / started.elapsed().as_secs_f64();
    let recall = |found: &[Vec<usize>]| -> f64 {
        let hits: usize =
            found.iter().zip(&exact).map(|(f, e)| f.iter().take(10).filter(|r| e.contains(r)).count()).sum();
        hits as f64 / exact.iter().map(Vec::len).sum::<usize>().max(1) as f64
    };
    let figures = search_ks
        .iter()
        .map(|&search_k| {
            let started = Instant::now();
            let plain: Vec<Vec<usize>> = rows
                .iter()
                .map(|&q| annoy.candidates(space.vector(q), 11, search_k).into_iter().filter(|&r| r != q).collect())
                .collect();
            let plain_s = started.elapsed().as_secs_f64();
            let started = Instant::now();
            let reranked: Vec<Vec<usize>> = rows
                .iter()
                .map(|&q| {
                    let v = space.vector(q);
                    let mut c: Vec<(f32, usize)> = annoy
                        .candidates(v, search_k, search_k)
                        .into_iter()
                        .filter(|&r| r != q)
                        .map(|r| (crate::index::dot(space.vector(r), v), r))
                        .collect();
                    c.sort_by(|a, b| b.0.total_cmp(&a.0));
                    c.into_iter().take(10).map(|(_, r)| r).collect()
                })
                .collect();
            let reranked_s = started.elapsed().as_secs_f64();
            AnnoyFigure {
                search_k,
                recall_at_10: recall(&plain),
                recall_at_10_reranked: recall(&reranked),
                queries_per_s: rows.len() as f64 / plain_s,
                queries_per_s_reranked: rows.len() as f64 / reranked_s,
            }
        })
        .collect();
    (exact_qps, figures)
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}
