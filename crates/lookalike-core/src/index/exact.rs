//! Exact search: every row scored, in parallel.

use std::sync::Arc;

use rayon::prelude::*;

use super::{Request, Rows, Scored, VectorIndex};
use crate::descriptor::Space;

/// The descriptors an in-memory index searches, shared with the search service.
type Vectors = Arc<Space>;

/// Dot product with eight independent accumulators so the compiler can vectorize it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Keeps the k best hits; ties go to the lower row so results are deterministic.
struct TopK {
    k: usize,
    hits: Vec<Scored>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK { k, hits: Vec::with_capacity(k + 1) }
    }

    fn better(a: &Scored, b: &Scored) -> bool {
        a.score > b.score || (a.score == b.score && a.row < b.row)
    }

    fn push(&mut self, hit: Scored) {
        if self.hits.len() == self.k {
            match self.hits.last() {
                Some(worst) if Self::better(&hit, worst) => {}
                _ => return,
            }
            self.hits.pop();
        }
        let at = self.hits.partition_point(|h| Self::better(h, &hit));
        self.hits.insert(at, hit);
    }

    fn merge(mut self, other: TopK) -> TopK {
        for hit in other.hits {
            self.push(hit);
        }
        self
    }
}

/// Exact top-k by cosine (vectors are unit length), in parallel over rows;
/// `keep(row)` filters rows out before they compete.
pub fn exact_top_k(
    vectors: &[f32],
    dims: usize,
    query: &[f32],
    k: usize,
    keep: impl Fn(usize) -> bool + Sync,
) -> Vec<Scored> {
    if k == 0 || dims == 0 {
        return Vec::new();
    }
    const CHUNK: usize = 1024;
    vectors
        .par_chunks(dims * CHUNK)
        .enumerate()
        .fold(
            || TopK::new(k),
            |mut top, (c, block)| {
                for (i, v) in block.chunks_exact(dims).enumerate() {
                    let row = c * CHUNK + i;
                    if keep(row) {
                        top.push(Scored { row, score: dot(v, query) });
                    }
                }
                top
            },
        )
        .reduce(|| TopK::new(k), TopK::merge)
        .hits
}

/// Exact search over the descriptors of a store.
pub struct Exact {
    vectors: Vectors,
    rows: Arc<Rows>,
}

impl Exact {
    pub fn new(vectors: Vectors, rows: Arc<Rows>) -> Exact {
        Exact { vectors, rows }
    }

    pub(crate) fn rows(&self) -> &Rows {
        &self.rows
    }

    pub(crate) fn vectors(&self) -> &Vectors {
        &self.vectors
    }
}

impl Exact {
    /// The search itself, which cannot fail.
    pub fn top(&self, request: &Request) -> Vec<Scored> {
        let space = &self.vectors;
        exact_top_k(space.vectors(), space.dims(), request.vector, request.k, |row| self.rows.keep(request, row))
    }
}

impl VectorIndex for Exact {
    fn method(&self) -> &'static str {
        "exact"
    }

    fn search(&self, request: &Request) -> crate::error::Result<Vec<Scored>> {
        Ok(self.top(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.01).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn top_k_matches_sorting_everything() {
        let dims = 5;
        let n = 3000;
        let noise = crate::bench::pseudo_uniform(7, n * dims + dims);
        let (vectors, query) = noise.split_at(n * dims);
        let keep = |row: usize| !row.is_multiple_of(3);
        let got = exact_top_k(vectors, dims, query, 7, keep);
        let mut all: Vec<Scored> = (0..n)
            .filter(|r| keep(*r))
            .map(|row| Scored { row, score: dot(&vectors[row * dims..(row + 1) * dims], query) })
            .collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        assert_eq!(got, all[..7].to_vec());
        assert!(exact_top_k(vectors, dims, query, 0, keep).is_empty());
        assert_eq!(exact_top_k(&vectors[..2 * dims], dims, query, 10, |_| true).len(), 2);
    }
}
