//! A stand-in model for tests of the indexing and search logic: no weights, deterministic,
//! and similar pictures still get similar features (the input pooled to 32 x 32 x 3 cells,
//! whose 3,072 values fill the feature row). Never used by the binary's commands.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{normalize_parts, Embedder, ResizePolicy, FEATURE_DIMS, INPUT};
use crate::error::Result;

const CELLS: usize = 32;

#[derive(Debug)]
pub struct FakeEmbedder {
    policy: ResizePolicy,
    /// Images embedded so far, so tests can count the work an index run did.
    embedded: AtomicUsize,
}

impl FakeEmbedder {
    pub fn new(policy: ResizePolicy) -> FakeEmbedder {
        FakeEmbedder { policy, embedded: AtomicUsize::new(0) }
    }

    pub fn embedded(&self) -> usize {
        self.embedded.load(Ordering::SeqCst)
    }
}

impl Embedder for FakeEmbedder {
    fn policy(&self) -> ResizePolicy {
        self.policy
    }

    fn model_id(&self) -> &str {
        "fake/pooled-32x32x3/v1"
    }

    fn embed(&self, inputs: &[Vec<f32>]) -> Result<Vec<f32>> {
        super::check_inputs(inputs)?;
        let side = INPUT as usize;
        let cell = side.div_ceil(CELLS);
        let mut out = Vec::with_capacity(inputs.len() * FEATURE_DIMS);
        for input in inputs {
            let mut row = vec![0f32; FEATURE_DIMS];
            for (i, px) in input.chunks_exact(3).enumerate() {
                let (y, x) = (i / side / cell, i % side / cell);
                for (c, v) in px.iter().enumerate() {
                    // Shifted positive: descriptors take a power of non-negative features.
                    row[(y * CELLS + x) * 3 + c] += v + 3.0;
                }
            }
            normalize_parts(&mut row);
            out.extend(row);
        }
        self.embedded.fetch_add(inputs.len(), Ordering::SeqCst);
        Ok(out)
    }
}
