//! Exact search: every row scored, in parallel.

use std::sync::Arc;

use rayon::prelude::*;

use super::{Request, Rows, Scored, VectorIndex};
use crate::descriptor::Space;

/// The descriptors an in-memory index searches, shared with the search service.
type Vectors = Arc<Space>;

/// Dot product: AVX2 + FMA where the CPU has them (detected once, at run time, so one
/// binary runs everywhere), else eight independent accumulators the compiler vectorizes.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has both features, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// The same bits on every CPU: what files are built with, so that one set of vectors and
/// one seed give one Annoy file everywhere.
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
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

/// Four 8-lane FMA accumulators: 32 products per step, enough to hide FMA latency.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 floats below `n`, inside both slices.
    unsafe {
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let at = i + 8 * j;
                *acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(at)), _mm256_loadu_ps(pb.add(at)), *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum::<f32>() + a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum::<f32>()
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot_portable(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Keeps the k best hits; ties go to the lower row so results are deterministic.
pub(crate) struct TopK {
    k: usize,
    pub(crate) hits: Vec<Scored>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK { k, hits: Vec::with_capacity(k + 1) }
    }

    fn better(a: &Scored, b: &Scored) -> bool {
        a.score > b.score || (a.score == b.score && a.row < b.row)
    }

    pub(crate) fn push(&mut self, hit: Scored) {
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
#[derive(Clone)]
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
    fn dot_matches_naive_at_every_length() {
        // Lengths around each step of the SIMD loop: 32-wide, 8-wide and the scalar tail.
        for len in 0..80 {
            let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.1 - 2.0).collect();
            let b: Vec<f32> = (0..len).map(|i| 1.0 - i as f32 * 0.01).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-3, "length {len}");
            assert!((dot_portable(&a, &b) as f64 - naive).abs() < 1e-3, "length {len}");
        }
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
