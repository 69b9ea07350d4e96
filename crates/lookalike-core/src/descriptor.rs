//! Search descriptors: what searches compare, derived from the stored features without
//! embedding anything again.
//!
//! A [`Recipe`] picks the pooled layers and a power normalisation; PCA-whitening is fit on
//! the catalog's own vectors (no labels), and queries go through the same transform. The
//! result, a [`Space`], is saved next to the store in `descriptors.lkd` with the recipe and
//! a fingerprint of the store it came from, so a changed setting or store is noticed and
//! the space is rebuilt, never mixed.
//!
//! `descriptors.lkd` (little-endian): magic `LKDESCR\0`, u32 version, u32 header length H,
//! u32 CRC-32 of the header, u32 zero, H bytes of JSON header (recipe, fingerprint, dims,
//! fit bookkeeping, section lengths and CRCs), then the f32 sections: whitening mean,
//! whitening projection (in x out, row-major), descriptors (items x out).

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::colour::COLOUR_DIMS;
use crate::error::{Error, IoContext, Result};
use crate::files::{self, Frame};
use crate::index::Scored;
use crate::model::{normalize, FEATURE_DIMS, LAYER4_DIMS};
use crate::store::{self, Store};

const FRAME: Frame = Frame { magic: b"LKDESCR\0", version: 1 };
/// Changes whenever the arithmetic below changes meaning; part of every saved space.
const TRANSFORM_VERSION: u32 = 1;
/// Share of the colour descriptors' mass in coloured (not grey) bins below which a
/// catalog counts as greyscale: "the same colour" then means nothing and colour stays out
/// (the Fashion-MNIST demo is such a catalog).
const MIN_CHROMA_SHARE: f64 = 0.02;
/// Below this many items a covariance says little; such catalogs are not whitened.
pub const MIN_FIT_ITEMS: usize = 64;
/// Whitening keeps at most one dimension per this many items, so small catalogs never fit
/// noise directions (measured on subsets of the sample, README).
const ITEMS_PER_DIM: usize = 4;
/// Share of the fitted items that may change before the whitening is fit again.
const REFIT_SHARE: f64 = 0.10;
/// Query-expansion weight: neighbour similarity to this power.
const EXPAND_POWER: i32 = 3;

/// Which global-average pools a descriptor is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layers {
    /// layer4 (2048-d), the reference design's embedding.
    #[serde(rename = "layer4")]
    Layer4,
    /// layer3 (1024-d): mid-level shape and texture.
    #[serde(rename = "layer3")]
    Layer3,
    /// Both, each part unit length, concatenated.
    #[serde(rename = "layer3+layer4")]
    Both,
}

impl Layers {
    pub const ALL: [Layers; 3] = [Layers::Layer4, Layers::Layer3, Layers::Both];

    pub fn name(self) -> &'static str {
        match self {
            Layers::Layer4 => "layer4",
            Layers::Layer3 => "layer3",
            Layers::Both => "layer3+layer4",
        }
    }
}

impl std::str::FromStr for Layers {
    type Err = String;
    fn from_str(s: &str) -> Result<Layers, String> {
        Layers::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown descriptor {s:?}: use {}", Layers::ALL.map(Layers::name).join(", ")))
    }
}

/// Everything that decides the descriptors of a store.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub layers: Layers,
    /// Element-wise power of the (non-negative) pooled features before whitening; 1 = none.
    pub power: f32,
    /// PCA-whitening output dimensions; 0 = no whitening.
    pub whiten: usize,
    /// Eigenvalue regularisation: each eigenvalue gets `shrink` x their mean added.
    pub shrink: f32,
    /// Share of the similarity that is colour (0 = none): the descriptor is the whitened
    /// CNN part times `sqrt(1 - colour)` followed by the colour descriptor times
    /// `sqrt(colour)`, so a dot product is `(1 - colour) cnn + colour colour`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub colour: f32,
}

impl Recipe {
    /// The reference design: layer4 average pool, L2, cosine.
    pub const PLAIN: Recipe = Recipe { layers: Layers::Layer4, power: 1.0, whiten: 0, shrink: 0.0, colour: 0.0 };
    /// lookalike's default, chosen by the measurements in the README.
    pub const DEFAULT: Recipe = Recipe { layers: Layers::Layer3, power: 0.5, whiten: 512, shrink: 0.1, colour: 0.15 };

    /// The settings of the shape part alone (what the whitening depends on).
    pub fn shape(&self) -> Recipe {
        Recipe { colour: 0.0, ..*self }
    }

    pub fn input_dims(&self) -> usize {
        match self.layers {
            Layers::Layer4 => LAYER4_DIMS,
            Layers::Layer3 => crate::model::LAYER3_DIMS,
            Layers::Both => crate::model::FEATURE_DIMS,
        }
    }

    /// Whitening dimensions used for a catalog of `items`; 0 = none.
    pub fn whiten_dims(&self, items: usize) -> usize {
        if self.whiten == 0 || items < MIN_FIT_ITEMS {
            return 0;
        }
        self.whiten.min(items / ITEMS_PER_DIM).min(self.input_dims())
    }

    /// One stored row (`[layer4 | layer3 | colour]`) as the unit vector that is whitened.
    pub fn base(&self, features: &[f32]) -> Vec<f32> {
        let (l4, l3) = features[..FEATURE_DIMS].split_at(LAYER4_DIMS);
        let parts: &[&[f32]] = match self.layers {
            Layers::Layer4 => &[l4],
            Layers::Layer3 => &[l3],
            Layers::Both => &[l4, l3],
        };
        let mut out = Vec::with_capacity(self.input_dims());
        for part in parts {
            let start = out.len();
            out.extend(part.iter().map(|&x| if self.power == 1.0 { x } else { x.max(0.0).powf(self.power) }));
            normalize(&mut out[start..]);
        }
        normalize(&mut out);
        out
    }

    pub fn describe(&self) -> String {
        let mut s = self.layers.name().to_string();
        if self.power != 1.0 {
            s += &format!(", power {}", self.power);
        }
        if self.whiten > 0 {
            s += &format!(", PCA-whitened (at most {} dims, shrink {})", self.whiten, self.shrink);
        }
        if self.colour > 0.0 {
            s += &format!(", colour {}", self.colour);
        }
        s
    }
}

/// PCA-whitening fit on a catalog: `y = normalize((x - mean) * proj)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    pub mean: Vec<f32>,
    /// `in_dims x out_dims`, row-major.
    pub proj: Vec<f32>,
    pub in_dims: usize,
    pub out_dims: usize,
}

impl Whitening {
    /// Fits on `rows` (n x `in_dims`): the top `out_dims` principal directions, each scaled
    /// by `1 / sqrt(eigenvalue + shrink * mean eigenvalue)`.
    pub fn fit(rows: &[f32], in_dims: usize, out_dims: usize, shrink: f32) -> Result<Whitening> {
        Self::principal(rows, in_dims, out_dims, Some(shrink))
    }

    /// Plain PCA: the top `out_dims` principal directions, unscaled, so distances keep
    /// their proportions (what trees over a projection need).
    pub fn pca(rows: &[f32], in_dims: usize, out_dims: usize) -> Result<Whitening> {
        Self::principal(rows, in_dims, out_dims, None)
    }

    fn principal(rows: &[f32], in_dims: usize, out_dims: usize, shrink: Option<f32>) -> Result<Whitening> {
        let n = rows.len() / in_dims.max(1);
        if n < 2 || out_dims == 0 || out_dims > in_dims {
            let reason =
                format!("needs at least 2 vectors and 1 to {in_dims} dims, has {n} vectors for {out_dims} dims");
            return Err(Error::failed("fitting the whitening", reason));
        }
        let mut mean = vec![0f64; in_dims];
        for row in rows.chunks(in_dims) {
            mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
        }
        let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
        let centred = centre(rows, &mean)?;
        let cov = centred.t()?.matmul(&centred)?.to_vec2::<f32>()?;
        let cov = nalgebra::DMatrix::from_fn(in_dims, in_dims, |i, j| cov[i][j] as f64 / n as f64);
        let eigen = nalgebra::SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..in_dims).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        order.truncate(out_dims);
        let kept: Vec<f64> = order.iter().map(|&i| eigen.eigenvalues[i].max(0.0)).collect();
        let floor = shrink.map(|s| s as f64 * kept.iter().sum::<f64>() / out_dims as f64);
        let mut proj = vec![0f32; in_dims * out_dims];
        for (j, (&col, &lambda)) in order.iter().zip(&kept).enumerate() {
            let scale = floor.map_or(1.0, |floor| 1.0 / (lambda + floor).max(1e-12).sqrt());
            for i in 0..in_dims {
                proj[i * out_dims + j] = (eigen.eigenvectors[(i, col)] * scale) as f32;
            }
        }
        Ok(Whitening { mean, proj, in_dims, out_dims })
    }

    /// One row, without tensors: the per-query path, where building tensors for a single
    /// row would cost more than the product itself.
    pub fn apply_one(&self, row: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.out_dims];
        for ((x, m), weights) in row.iter().zip(&self.mean).zip(self.proj.chunks_exact(self.out_dims)) {
            let c = x - m;
            out.iter_mut().zip(weights).for_each(|(o, w)| *o += c * w);
        }
        normalize(&mut out);
        out
    }

    /// Transforms rows (n x `in_dims`) to unit-length rows of `out_dims`.
    pub fn apply(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let proj = Tensor::from_slice(&self.proj, (self.in_dims, self.out_dims), &Device::Cpu)?;
        let mut out = centre(rows, &self.mean)?.matmul(&proj)?.flatten_all()?.to_vec1::<f32>()?;
        out.chunks_mut(self.out_dims).for_each(normalize);
        Ok(out)
    }
}

fn centre(rows: &[f32], mean: &[f32]) -> Result<Tensor> {
    let d = mean.len();
    let x = Tensor::from_slice(rows, (rows.len() / d, d), &Device::Cpu)?;
    Ok(x.broadcast_sub(&Tensor::from_slice(mean, (1, d), &Device::Cpu)?)?)
}

/// Settings that are off are left out of headers, so files without colour keep the bytes
/// of the versions before it.
fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Which store a space was derived from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub items: usize,
    pub features_crc: u32,
}

impl Fingerprint {
    pub fn of(store: &Store) -> Fingerprint {
        Fingerprint { items: store.len(), features_crc: store.vectors_crc() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    recipe: Recipe,
    transform_version: u32,
    source: Fingerprint,
    dims: usize,
    /// Items the whitening was fit on (0 = not whitened) and items changed since.
    fitted_on: usize,
    changed_since_fit: usize,
    in_dims: usize,
    /// Colour dimensions at the end of each descriptor (0 = none).
    #[serde(default, skip_serializing_if = "is_zero")]
    colour_dims: usize,
    sections: [(usize, u32); 3],
}

/// The descriptors of every stored item plus the transform that made them.
pub struct Space {
    recipe: Recipe,
    whitening: Option<Whitening>,
    vectors: Vec<f32>,
    dims: usize,
    source: Fingerprint,
    fitted_on: usize,
    changed_since_fit: usize,
    colour_dims: usize,
}

impl Space {
    /// Descriptors given as they are (unit length), for benchmarks and tests of the
    /// indexes over them.
    pub fn from_rows(vectors: Vec<f32>, dims: usize) -> Space {
        let source = Fingerprint { items: vectors.len() / dims, features_crc: 0 };
        Space {
            recipe: Recipe::DEFAULT,
            whitening: None,
            vectors,
            dims,
            source,
            fitted_on: 0,
            changed_since_fit: 0,
            colour_dims: 0,
        }
    }

    /// Fits the recipe's whitening on `store` and describes every item.
    pub fn fit(store: &Store, recipe: Recipe) -> Result<Space> {
        let base = base_rows(store, &recipe);
        let out = recipe.whiten_dims(store.len());
        let whitening =
            if out == 0 { None } else { Some(Whitening::fit(&base, recipe.input_dims(), out, recipe.shrink)?) };
        Space::with(store, recipe, whitening, base, store.len(), 0)
    }

    /// Brings `previous` (from an older version of the store) up to date after `changed`
    /// items were added, updated or removed: the whitening is kept until more than 10% of
    /// the items it was fit on have changed or the recipe asks for other dimensions, then
    /// fit again. Never embeds. The flag says whether a whitening was fit in this call.
    pub fn update(store: &Store, recipe: Recipe, previous: Option<Space>, changed: usize) -> Result<(Space, bool)> {
        // The whitening is of the shape part only: a new colour weight keeps it.
        if let Some(p) = previous.filter(|p| p.recipe.shape() == recipe.shape()) {
            if p.matches(store, &recipe) {
                return Ok((p, false));
            }
            let changed = p.changed_since_fit + changed;
            let dims_now = p.whitening.as_ref().map_or(0, |w| w.out_dims);
            if dims_now == recipe.whiten_dims(store.len()) && changed as f64 <= REFIT_SHARE * p.fitted_on as f64 {
                let base = base_rows(store, &recipe);
                return Ok((Space::with(store, recipe, p.whitening, base, p.fitted_on, changed)?, false));
            }
        }
        let space = Space::fit(store, recipe)?;
        let fitted = space.fitted_on > 0;
        Ok((space, fitted))
    }

    fn with(
        store: &Store,
        recipe: Recipe,
        whitening: Option<Whitening>,
        base: Vec<f32>,
        fitted_on: usize,
        changed_since_fit: usize,
    ) -> Result<Space> {
        let (vectors, dims) = match &whitening {
            Some(w) => (w.apply(&base)?, w.out_dims),
            None => (base, recipe.input_dims()),
        };
        let fitted_on = if whitening.is_some() { fitted_on } else { 0 };
        // Colour joins when it is asked for, the store has it (stores of tests and
        // benchmarks may hold features only) and the catalog has colours at all.
        let colour_dims = if recipe.colour > 0.0 && takes_colour(store) { COLOUR_DIMS } else { 0 };
        let mut space = Space {
            recipe,
            whitening,
            vectors,
            dims,
            source: Fingerprint::of(store),
            fitted_on,
            changed_since_fit,
            colour_dims,
        };
        if colour_dims > 0 {
            let cnn = std::mem::take(&mut space.vectors);
            space.vectors = cnn.chunks(dims).enumerate().flat_map(|(r, v)| space.fuse(v, store.vector(r))).collect();
            space.dims = dims + colour_dims;
        }
        Ok(space)
    }

    /// The CNN part of a descriptor joined by a stored row's colour part.
    fn fuse(&self, cnn: &[f32], row: &[f32]) -> Vec<f32> {
        let (a, b) = ((1.0 - self.recipe.colour).sqrt(), self.recipe.colour.sqrt());
        let colour = &row[FEATURE_DIMS..FEATURE_DIMS + self.colour_dims];
        cnn.iter().map(|x| x * a).chain(colour.iter().map(|x| x * b)).collect()
    }

    /// Dimensions of the colour part at the end of each descriptor (0 = none).
    pub fn colour_dims(&self) -> usize {
        self.colour_dims
    }

    /// The recipe and the dimensions, for reports: "layer3, ..., colour 0.15 (648 dims)".
    pub fn summary(&self) -> String {
        let unused =
            if self.recipe.colour > 0.0 && self.colour_dims == 0 { "; colour unused: the photos are grey" } else { "" };
        format!("{} ({} dims{unused})", self.recipe.describe(), self.dims)
    }

    /// Share of the similarity that is colour (0 when the descriptors have none).
    pub fn colour_share(&self) -> f32 {
        if self.colour_dims > 0 {
            self.recipe.colour
        } else {
            0.0
        }
    }

    /// A query that ignores colour ("this shape in any colour"): the colour part zeroed and
    /// the rest scaled so that its dot product with a descriptor is their CNN similarity.
    pub fn colourless(&self, query: &[f32]) -> Vec<f32> {
        if self.colour_dims == 0 {
            return query.to_vec();
        }
        let cnn = self.dims - self.colour_dims;
        let mut q = query.to_vec();
        normalize(&mut q[..cnn]);
        let scale = 1.0 / (1.0 - self.recipe.colour).sqrt();
        q[..cnn].iter_mut().for_each(|x| *x *= scale);
        q[cnn..].iter_mut().for_each(|x| *x = 0.0);
        q
    }

    /// True when this space was made from exactly `store` with `recipe` (or with a recipe
    /// that differs only in a colour weight neither can use: the store has no colours).
    pub fn matches(&self, store: &Store, recipe: &Recipe) -> bool {
        let same = self.recipe == *recipe
            || (self.colour_dims == 0 && !takes_colour(store) && self.recipe.shape() == recipe.shape());
        same && self.source == Fingerprint::of(store)
    }

    /// A query's row (`[layer4 | layer3 | colour]`) as a descriptor.
    pub fn describe(&self, features: &[f32]) -> Result<Vec<f32>> {
        if features.len() < FEATURE_DIMS + self.colour_dims {
            let reason =
                format!("a row of {} values, the descriptors need {}", features.len(), FEATURE_DIMS + self.colour_dims);
            return Err(Error::failed("describing a query", reason));
        }
        let base = self.recipe.base(features);
        let cnn = match &self.whitening {
            Some(w) => w.apply(&base)?,
            None => base,
        };
        Ok(if self.colour_dims > 0 { self.fuse(&cnn, features) } else { cnn })
    }

    /// Query expansion: the query plus its nearest neighbours weighted by similarity
    /// cubed, unit length. Neighbours come from whichever search the caller uses.
    pub fn expand(&self, query: &[f32], neighbours: &[Scored]) -> Vec<f32> {
        let mut q = query.to_vec();
        for n in neighbours {
            let w = n.score.max(0.0).powi(EXPAND_POWER);
            q.iter_mut().zip(self.vector(n.row)).for_each(|(a, &b)| *a += w * b);
        }
        normalize(&mut q);
        q
    }

    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn len(&self) -> usize {
        self.vectors.len() / self.dims
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    pub fn vector(&self, row: usize) -> &[f32] {
        &self.vectors[row * self.dims..][..self.dims]
    }

    /// CRC-32 of the descriptors, the Annoy index's source fingerprint.
    pub fn crc(&self) -> u32 {
        crc32fast::hash(bytemuck::cast_slice(&self.vectors))
    }

    /// What makes a stored row into a descriptor (settings, whitening, colour part), as a
    /// short key: two spaces with one fit give an item the same descriptor, so a shared
    /// backend updates only changed items within a fit and publishes a new set otherwise.
    pub fn fit_id(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(store::json(&self.recipe));
        if let Some(w) = &self.whitening {
            h.update(bytemuck::cast_slice::<f32, u8>(&w.mean));
            h.update(bytemuck::cast_slice::<f32, u8>(&w.proj));
        }
        let digest: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("v{TRANSFORM_VERSION}-{}d-{}c-{digest}", self.dims, self.colour_dims)
    }

    /// Items the whitening was fit on (0 = not whitened).
    pub fn fitted_on(&self) -> usize {
        self.fitted_on
    }

    /// Writes the space atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let (mean, proj) = match &self.whitening {
            Some(w) => (w.mean.as_slice(), w.proj.as_slice()),
            None => (&[][..], &[][..]),
        };
        let sections = [mean, proj, self.vectors.as_slice()];
        let header = Header {
            recipe: self.recipe,
            transform_version: TRANSFORM_VERSION,
            source: self.source,
            dims: self.dims,
            fitted_on: self.fitted_on,
            changed_since_fit: self.changed_since_fit,
            in_dims: self.recipe.input_dims(),
            colour_dims: self.colour_dims,
            sections: sections.map(|s| (s.len(), crc32fast::hash(bytemuck::cast_slice(s)))),
        };
        let mut bytes = FRAME.encode(&store::json(&header));
        bytes.reserve(4 * sections.iter().map(|s| s.len()).sum::<usize>());
        for s in sections {
            s.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
        }
        files::write_atomic(path, &bytes)
    }

    /// Reads and verifies a saved space; damage is an error that names the file.
    pub fn open(path: &Path) -> Result<Space> {
        let bytes = std::fs::read(path).at("cannot read", path)?;
        let damaged = |why: &str| Error::damaged(path, why);
        let json = FRAME.decode(&bytes, bytes.len()).map_err(|e| {
            damaged(match e {
                files::FrameError::Foreign => "not a lookalike descriptors file",
                files::FrameError::Version(_) => "unknown format version",
                files::FrameError::Reserved => "reserved header bytes are not zero",
                files::FrameError::Truncated => "truncated header",
                files::FrameError::Checksum => "header checksum mismatch",
            })
        })?;
        let len = json.len();
        let h: Header = serde_json::from_slice(json).map_err(|_| damaged("unreadable header"))?;
        if h.dims == 0 {
            return Err(damaged("zero dimensions"));
        }
        if h.transform_version != TRANSFORM_VERSION || h.in_dims != h.recipe.input_dims() {
            return Err(damaged("made by another version of lookalike"));
        }
        let mut at = Frame::PREFIX + len;
        let mut sections = Vec::with_capacity(3);
        for (n, crc) in h.sections {
            let raw = bytes.get(at..at.saturating_add(n.saturating_mul(4))).ok_or_else(|| damaged("truncated"))?;
            if crc32fast::hash(raw) != crc {
                return Err(damaged("checksum mismatch"));
            }
            sections.push(raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>());
            at += raw.len();
        }
        let vectors = sections.pop().unwrap();
        let proj = sections.pop().unwrap();
        let mean = sections.pop().unwrap();
        let whitening = if mean.is_empty() {
            None
        } else {
            if mean.len() != h.in_dims || h.dims <= h.colour_dims || proj.len() != h.in_dims * (h.dims - h.colour_dims)
            {
                return Err(damaged("inconsistent whitening sizes"));
            }
            Some(Whitening { mean, proj, in_dims: h.in_dims, out_dims: h.dims - h.colour_dims })
        };
        if h.colour_dims != 0 && h.colour_dims != COLOUR_DIMS {
            return Err(damaged("unknown colour dimensions"));
        }
        let expected_dims = whitening.as_ref().map_or(h.in_dims, |w| w.out_dims) + h.colour_dims;
        if h.dims != expected_dims || vectors.len() != h.source.items * h.dims || at != bytes.len() {
            return Err(damaged("inconsistent sizes"));
        }
        Ok(Space {
            recipe: h.recipe,
            whitening,
            vectors,
            dims: h.dims,
            source: h.source,
            fitted_on: h.fitted_on,
            changed_since_fit: h.changed_since_fit,
            colour_dims: h.colour_dims,
        })
    }
}

/// Whether descriptors of `store` can have a colour part: it holds colour descriptors and
/// its photos are not grey.
fn takes_colour(store: &Store) -> bool {
    store.dims() >= FEATURE_DIMS + COLOUR_DIMS && chroma_share(store) >= MIN_CHROMA_SHARE
}

/// Mean share of the colour descriptors' mass (squares: they are square roots of
/// histograms) outside the grey bins.
fn chroma_share(store: &Store) -> f64 {
    let grey = crate::colour::NEUTRAL_BINS;
    let coloured = |r: usize| -> f64 {
        store.vector(r)[FEATURE_DIMS + grey..FEATURE_DIMS + COLOUR_DIMS].iter().map(|&x| (x * x) as f64).sum()
    };
    (0..store.len()).map(coloured).sum::<f64>() / store.len().max(1) as f64
}

fn base_rows(store: &Store, recipe: &Recipe) -> Vec<f32> {
    use rayon::prelude::*;
    (0..store.len()).into_par_iter().flat_map_iter(|r| recipe.base(store.vector(r))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::pseudo_uniform as uniform;
    use crate::model::{FEATURE_DIMS, LAYER3_DIMS};
    use crate::store::{Entry, Identity};

    /// Non-negative feature rows (like pooled ReLU maps) with correlated, unequal variances.
    fn features(n: usize, seed: u64) -> Vec<f32> {
        let noise = uniform(seed, n * 8);
        let mut rows = Vec::with_capacity(n * FEATURE_DIMS);
        for r in 0..n {
            let z = &noise[r * 8..][..8];
            let mut row: Vec<f32> =
                (0..FEATURE_DIMS).map(|i| 0.1 + z[i % 8] * (1.0 + (i % 5) as f32) + z[(i * 7) % 8]).collect();
            let (l4, l3) = row.split_at_mut(LAYER4_DIMS);
            normalize(l4);
            normalize(l3);
            rows.extend(row);
        }
        rows
    }

    fn store_of(rows: &[f32], dir: &Path, name: &str) -> Store {
        let n = rows.len() / FEATURE_DIMS;
        let entries: Vec<Entry> =
            (0..n).map(|i| Entry { path: format!("{i:05}.jpg"), size: 1, mtime_ns: 0, hash: format!("{i}") }).collect();
        let identity =
            Identity { model: "test".into(), preprocessing: "test".into(), dims: FEATURE_DIMS, colour: String::new() };
        let path = dir.join(name);
        store::write(&path, &identity, &[], &entries, |i| rows[i * FEATURE_DIMS..][..FEATURE_DIMS].into()).unwrap();
        Store::open(&path).unwrap()
    }

    #[test]
    fn whitened_data_has_identity_covariance() {
        let (n, d, out) = (2000, 12, 6);
        let z = uniform(7, n * d);
        // Mix the coordinates so the data is correlated and anisotropic.
        let x: Vec<f32> = z
            .chunks(d)
            .flat_map(|r| (0..d).map(move |i| (0..=i).map(|j| r[j] * (j + 1) as f32).sum::<f32>()).collect::<Vec<_>>())
            .collect();
        let w = Whitening::fit(&x, d, out, 0.0).unwrap();
        let y: Vec<f32> = centre(&x, &w.mean)
            .unwrap()
            .matmul(&Tensor::from_slice(&w.proj, (d, out), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for a in 0..out {
            for b in 0..out {
                let c: f64 = y.chunks(out).map(|r| r[a] as f64 * r[b] as f64).sum::<f64>() / n as f64;
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((c - want).abs() < 1e-3, "cov[{a}][{b}] = {c}");
            }
        }
        // Shrinkage damps the small directions: their variance falls below one.
        let shrunk = Whitening::fit(&x, d, out, 1.0).unwrap();
        assert!(shrunk.proj.iter().map(|p| p.abs()).sum::<f32>() < w.proj.iter().map(|p| p.abs()).sum::<f32>());
    }

    #[test]
    fn power_one_on_layer4_is_the_plain_average_pool() {
        let same = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let rows = features(3, 1);
        for row in rows.chunks(FEATURE_DIMS) {
            assert!(same(&Recipe::PLAIN.base(row), &row[..LAYER4_DIMS]));
        }
        let layer3 = Recipe { layers: Layers::Layer3, power: 1.0, whiten: 0, shrink: 0.0, colour: 0.0 };
        assert!(same(&layer3.base(&rows[..FEATURE_DIMS]), &rows[LAYER4_DIMS..FEATURE_DIMS]));
        let both = Recipe { layers: Layers::Both, ..layer3 }.base(&rows[..FEATURE_DIMS]);
        assert_eq!(both.len(), FEATURE_DIMS);
        assert!((crate::index::exact::dot(&both, &both) - 1.0).abs() < 1e-5);
        // A power below one keeps unit length and order of the coordinates.
        let sq = Recipe { power: 0.5, ..layer3 }.base(&rows[..FEATURE_DIMS]);
        assert_eq!(sq.len(), LAYER3_DIMS);
        assert!((crate::index::exact::dot(&sq, &sq) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn small_catalogs_whiten_less_or_not_at_all() {
        let r = Recipe::DEFAULT;
        assert_eq!(r.whiten_dims(MIN_FIT_ITEMS - 1), 0);
        assert_eq!(r.whiten_dims(400), 100);
        assert_eq!(r.whiten_dims(100_000), 512);
        assert_eq!(Recipe::PLAIN.whiten_dims(100_000), 0);
    }

    #[test]
    fn saved_space_round_trips_and_describes_queries_like_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(&features(300, 3), dir.path(), "a.lks");
        let (space, refit) = Space::update(&store, Recipe::DEFAULT, None, 0).unwrap();
        assert!(refit);
        assert_eq!(space.dims(), 75);
        let path = dir.path().join("descriptors.lkd");
        space.save(&path).unwrap();
        let back = Space::open(&path).unwrap();
        assert!(back.matches(&store, &Recipe::DEFAULT));
        assert_eq!(back.vectors(), space.vectors());
        assert_eq!(back.whitening, space.whitening);
        // A query's features go through the very transform the items went through.
        let q = back.describe(store.vector(17)).unwrap();
        assert!(crate::index::exact::dot(&q, back.vector(17)) > 0.9999);
        // Another recipe or another store does not match.
        assert!(!back.matches(&store, &Recipe { whiten: 256, ..Recipe::DEFAULT }));
        let other = store_of(&features(300, 4), dir.path(), "b.lks");
        assert!(!back.matches(&other, &Recipe::DEFAULT));
    }

    #[test]
    fn damaged_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_of(&features(100, 5), dir.path(), "a.lks");
        let path = dir.path().join("descriptors.lkd");
        Space::fit(&store, Recipe::DEFAULT).unwrap().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let at = good.len() - 5;
        flipped[at] ^= 0x10;
        for (name, bytes) in [("flipped", flipped), ("truncated", good[..good.len() / 2].to_vec()), ("empty", vec![])] {
            std::fs::write(&path, &bytes).unwrap();
            let err = Space::open(&path).err().unwrap_or_else(|| panic!("{name} accepted"));
            assert_eq!(err.damaged_path(), Some(path.as_path()), "{name}: {err}");
        }
    }

    #[test]
    fn whitening_is_refit_only_when_enough_has_changed() {
        let dir = tempfile::tempdir().unwrap();
        let rows = features(460, 9);
        let row = |n: usize| &rows[..n * FEATURE_DIMS];
        let recipe = Recipe { whiten: 64, ..Recipe::DEFAULT };
        let (first, refit) = Space::update(&store_of(row(400), dir.path(), "a.lks"), recipe, None, 0).unwrap();
        assert!(refit && first.fitted_on() == 400);
        let w = first.whitening.clone();
        // 20 new items (5%): the whitening stays, the new items are described with it.
        let grown = store_of(row(420), dir.path(), "b.lks");
        let (second, refit) = Space::update(&grown, recipe, Some(first), 20).unwrap();
        assert!(!refit && second.whitening == w && second.len() == 420 && second.matches(&grown, &recipe));
        // 40 more (15% in all since the fit): fit again.
        let (third, refit) = Space::update(&store_of(row(460), dir.path(), "c.lks"), recipe, Some(second), 40).unwrap();
        assert!(refit && third.fitted_on() == 460 && third.whitening != w);
        // Another colour weight keeps the whitening (it is of the shape part only)...
        let w = third.whitening.clone();
        let (fourth, refit) = Space::update(&grown, Recipe { colour: 0.3, ..recipe }, Some(third), 0).unwrap();
        assert!(!refit && fourth.whitening == w);
        // ...another shape recipe always fits again.
        let (_, refit) = Space::update(&grown, Recipe { shrink: 0.5, ..recipe }, Some(fourth), 0).unwrap();
        assert!(refit);
    }
}
