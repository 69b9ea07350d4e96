//! Exact search with the descriptors resident on a compute device (CUDA): one matrix
//! product scores a batch of queries against every row, filters are a mask added to the
//! scores, and the top k is found in two steps so that only a few thousand scores per
//! query come back to the host. The same code runs on candle's CPU device, where the
//! tests compare it with [`Exact`].

use candle_core::{Device, Tensor, D};

use super::exact::{Exact, TopK};
use super::{Request, Scored, VectorIndex};
use crate::error::{Error, Result};

/// Rows per block of the first step: each block's best score comes back, then the rows of
/// the blocks that can hold a top-k hit. 256 keeps both transfers small at a million rows
/// (4,096 block maxima, and k x 256 scores).
const BLOCK: usize = 256;

/// Exact search with a copy of the descriptors on `device`; the host copy keeps the
/// metadata the filters read.
pub struct DeviceExact {
    exact: Exact,
    /// `(rows rounded up to BLOCK, dims)`; the extra rows are zeros, always masked.
    matrix: Tensor,
    /// `(1, padded rows)`: 0 for a row, minus infinity for padding; the bias of a query
    /// without filters.
    padding: Tensor,
    rows: usize,
    device: Device,
}

impl DeviceExact {
    /// Uploads the descriptors of `exact` to `device`.
    pub fn new(exact: Exact, device: &Device) -> Result<DeviceExact> {
        let space = exact.vectors().clone();
        let (rows, dims) = (space.len(), space.dims());
        let padded = rows.div_ceil(BLOCK).max(1) * BLOCK;
        let mut host = space.vectors().to_vec();
        host.resize(padded * dims, 0.0);
        let on_device =
            |e: candle_core::Error| Error::Model(format!("cannot place {rows} descriptors on the device: {e}"));
        let matrix = Tensor::from_vec(host, (padded, dims), device).map_err(on_device)?;
        let padding = Tensor::from_vec(bias(padded, rows, |_| true), (1, padded), device).map_err(on_device)?;
        Ok(DeviceExact { exact, matrix, padding, rows, device: device.clone() })
    }

    /// Many searches with one matrix product; answers in the order asked, each as
    /// [`Exact`] would give it (up to the last bits of the scores).
    pub fn search_batch(&self, requests: &[Request]) -> Result<Vec<Vec<Scored>>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.run(requests).map_err(|e| Error::Model(format!("exact search on the device: {e}")))
    }

    fn run(&self, requests: &[Request]) -> candle_core::Result<Vec<Vec<Scored>>> {
        let (padded, dims) = self.matrix.dims2()?;
        let queries: Vec<f32> = requests.iter().flat_map(|r| r.vector.iter().copied()).collect();
        let queries = Tensor::from_vec(queries, (requests.len(), dims), &self.device)?;
        let biases = requests
            .iter()
            .map(|r| match r.filters.is_empty() {
                true => Ok(self.padding.clone()),
                false => {
                    let keep = |row| self.exact.rows().passes(r.filters, row);
                    Tensor::from_vec(bias(padded, self.rows, keep), (1, padded), &self.device)
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let scores = queries.matmul(&self.matrix.t()?)?.broadcast_add(&Tensor::cat(&biases, 0)?)?;
        let blocks = scores.reshape((requests.len(), padded / BLOCK, BLOCK))?;
        let maxima: Vec<Vec<f32>> = blocks.max(D::Minus1)?.to_vec2()?;
        requests
            .iter()
            .zip(maxima)
            .enumerate()
            .map(|(q, (request, maxima))| {
                // Exclusions are few (the query's own row): asked for as extra hits, dropped here.
                let want = request.k + request.exclude.len();
                let chosen = best_blocks(&maxima, want);
                if chosen.is_empty() {
                    return Ok(Vec::new());
                }
                let ids = Tensor::from_vec(chosen.iter().map(|&b| b as u32).collect(), chosen.len(), &self.device)?;
                let picked: Vec<Vec<f32>> = blocks.get(q)?.index_select(&ids, 0)?.to_vec2()?;
                let mut top = TopK::new(request.k);
                for (&block, scores) in chosen.iter().zip(&picked) {
                    for (i, &score) in scores.iter().enumerate() {
                        let row = block * BLOCK + i;
                        if score.is_finite() && !request.exclude.contains(&row) {
                            top.push(Scored { row, score });
                        }
                    }
                }
                Ok(top.hits)
            })
            .collect()
    }
}

/// 0 for rows that `keep`, minus infinity for the others and for padding.
fn bias(padded: usize, rows: usize, keep: impl Fn(usize) -> bool) -> Vec<f32> {
    (0..padded).map(|row| if row < rows && keep(row) { 0.0 } else { f32::NEG_INFINITY }).collect()
}

/// The blocks that can hold one of the `want` best rows: those whose best score is at
/// least the `want`-th best block maximum. A block holding a top row scores at least
/// that row's score, and fewer than `want` blocks can beat it (each would hold a better
/// row), so it is among them; ties at the boundary are all kept.
fn best_blocks(maxima: &[f32], want: usize) -> Vec<usize> {
    let mut finite: Vec<f32> = maxima.iter().copied().filter(|m| m.is_finite()).collect();
    if finite.is_empty() || want == 0 {
        return Vec::new();
    }
    let nth = want.min(finite.len()) - 1;
    let (_, &mut bar, _) = finite.select_nth_unstable_by(nth, |a, b| b.total_cmp(a));
    (0..maxima.len()).filter(|&b| maxima[b].is_finite() && maxima[b] >= bar).collect()
}

impl VectorIndex for DeviceExact {
    fn method(&self) -> &'static str {
        "exact-device"
    }

    fn search(&self, request: &Request) -> Result<Vec<Scored>> {
        Ok(self.search_batch(std::slice::from_ref(request))?.pop().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::{Filter, Product};
    use crate::descriptor::Space;
    use crate::index::Rows;

    #[test]
    fn best_blocks_keep_every_block_that_can_hold_a_top_row() {
        let inf = f32::NEG_INFINITY;
        assert_eq!(best_blocks(&[0.1, 0.9, 0.5, inf, 0.5], 2), vec![1, 2, 4]);
        assert_eq!(best_blocks(&[0.1, 0.9, 0.5], 10), vec![0, 1, 2]);
        assert!(best_blocks(&[inf, inf], 3).is_empty());
        assert!(best_blocks(&[0.3], 0).is_empty());
    }

    /// Rows spread over several blocks, with products whose colour a filter reads.
    fn index(n: usize, dims: usize) -> (Exact, Vec<Vec<f32>>) {
        let mut state = 12345u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let vectors: Vec<f32> = (0..n * dims).map(|_| next()).collect();
        let space = Arc::new(Space::from_rows(vectors, dims));
        let products = (0..n)
            .map(|i| Some(Product { base_colour: ["Red", "Blue", "Black"][i % 3].to_string(), ..Product::default() }))
            .collect();
        let queries = (0..6).map(|_| (0..dims).map(|_| next()).collect()).collect();
        (Exact::new(space, Arc::new(Rows { products })), queries)
    }

    #[test]
    fn the_device_search_matches_the_exact_scan_with_filters_and_exclusions() {
        matches_the_exact_scan(&Device::Cpu);
    }

    /// Built with `--features cuda`, on a GPU machine (gpu/check.sh).
    #[cfg(feature = "cuda")]
    #[test]
    fn on_the_gpu_the_device_search_matches_the_exact_scan() {
        matches_the_exact_scan(&Device::new_cuda(0).unwrap());
    }

    fn matches_the_exact_scan(on: &Device) {
        let (exact, queries) = index(3 * BLOCK + 17, 24);
        let host = exact.clone();
        let device = DeviceExact::new(exact, on).unwrap();
        let red: Vec<Filter> = vec!["baseColour=Red".parse().unwrap()];
        let none = "baseColour=Green".parse::<Filter>().unwrap();
        let mut requests = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let exclude: &[usize] = if i % 2 == 0 { &[] } else { &[3, 700] };
            for (k, filters) in [(10, &[][..]), (25, &red[..]), (1, &[][..]), (5000, &red[..])] {
                requests.push(Request { vector: q, k, filters, exclude });
            }
        }
        let unmatched = [none];
        requests.push(Request { vector: &queries[0], k: 10, filters: &unmatched, exclude: &[] });
        let batched = device.search_batch(&requests).unwrap();
        for (request, got) in requests.iter().zip(&batched) {
            let want = host.top(request);
            assert_eq!(got.len(), want.len(), "k {} filters {}", request.k, request.filters.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.row, w.row, "k {}: {got:?} against {want:?}", request.k);
                assert!((g.score - w.score).abs() < 1e-5);
            }
            let single = device.search(request).unwrap();
            assert_eq!(single.iter().map(|h| h.row).collect::<Vec<_>>(), got.iter().map(|h| h.row).collect::<Vec<_>>());
        }
        assert!(batched.last().unwrap().is_empty());
    }
}
