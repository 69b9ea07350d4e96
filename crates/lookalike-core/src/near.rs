//! Near-identical photos: the same picture after re-encoding, resizing, cropping (up to
//! about 10%), mirroring, a small rotation or a brightness change.
//!
//! The network's descriptors cannot tell these from a different product shot the same
//! way (in the fashion sample, a copy's whitened descriptor is often further from its
//! original than a look-alike product is; `bench/dupes/`), so candidates come from the
//! descriptors and each candidate pair is verified on the pixels: the second photo is
//! warped onto the first (mirror, scale, rotation, shift: coarse search at 16x16, refined
//! at 32 and 64), its brightness matched, and the pair is near-identical when the mean
//! colour difference over the product (pixels that differ from the backdrop in either
//! photo) stays under a threshold measured on generated copies.

use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use image::RgbImage;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::index::Scored;

/// The mean colour difference (0-1 per channel) over the product under which two aligned
/// photos are the same picture; measured in `bench/dupes/` (README "Duplicates"): the
/// same model in the same pose in another garment starts near 0.035.
pub const THRESHOLD: f32 = 0.035;
/// Neighbours per photo that are verified, by the whole descriptor and by colour alone
/// (a mirrored or cropped copy is often far in one and near in the other).
pub const CANDIDATES: usize = 12;

const SIDES: [usize; 3] = [16, 32, 64];
/// A pixel belongs to the product when its colour differs from the corner's by this much
/// (summed over channels, 0-3).
const FOREGROUND: f32 = 0.12;
/// The share of the first photo the warped second must cover to be compared at all.
const MIN_OVERLAP: f32 = 0.7;
/// A channel this bright may have been clipped by a brightness edit.
const CLIPPED: f32 = 0.94;
/// At 16 pixels, the mean differences over the whole photo and over the product above
/// which a pair is not refined (well above the threshold, which is met at 64 pixels).
const COARSE_REJECT: f32 = 0.06;
const COARSE_PRODUCT_REJECT: f32 = 3.0 * THRESHOLD;

/// A photo shrunk to 16, 32 and 64 pixels square, RGB bytes (16 KB a photo, so a
/// catalog's thumbnails fit in memory).
#[derive(Debug, Clone)]
pub struct Thumb {
    levels: [Vec<[u8; 3]>; 3],
}

/// A thumbnail's levels in 0-1, as the comparison reads them.
struct Levels([Vec<[f32; 3]>; 3]);

impl Thumb {
    fn levels(&self) -> Levels {
        Levels(std::array::from_fn(|l| self.levels[l].iter().map(|p| p.map(|c| c as f32 / 255.0)).collect()))
    }

    pub fn of(img: &RgbImage) -> Thumb {
        // An area-averaging shrink first (cheap on large photos), then each level.
        let base = image::imageops::thumbnail(img, 128, 128);
        let level = |side: usize| {
            let small = image::imageops::resize(&base, side as u32, side as u32, FilterType::Triangle);
            small.pixels().map(|p| p.0).collect()
        };
        Thumb { levels: SIDES.map(level) }
    }
}

/// How the second photo is laid onto the first: a mirror, then scale, rotation and shift,
/// in coordinates from -1 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pose {
    mirror: bool,
    scale: f32,
    angle: f32,
    tx: f32,
    ty: f32,
}

fn sample(img: &[[f32; 3]], side: usize, x: f32, y: f32) -> [f32; 3] {
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |x: usize, y: usize| img[y * side + x];
    let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
    std::array::from_fn(|k| (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy)
}

/// The second photo warped onto the first's pixel grid at one level; `None` where it
/// falls outside.
fn warp(b: &[[f32; 3]], side: usize, pose: Pose) -> Vec<Option<[f32; 3]>> {
    let (sin, cos) = pose.angle.sin_cos();
    let half = side as f32 / 2.0;
    (0..side * side)
        .map(|i| {
            let u = ((i % side) as f32 + 0.5) / half - 1.0;
            let v = ((i / side) as f32 + 0.5) / half - 1.0;
            let u = if pose.mirror { -u } else { u };
            let qx = pose.scale * (cos * u - sin * v) + pose.tx;
            let qy = pose.scale * (sin * u + cos * v) + pose.ty;
            let (px, py) = ((qx + 1.0) * half - 0.5, (qy + 1.0) * half - 0.5);
            let inside = (-0.5..=side as f32 - 0.5).contains(&px) && (-0.5..=side as f32 - 0.5).contains(&py);
            inside.then(|| sample(b, side, px.clamp(0.0, (side - 1) as f32), py.clamp(0.0, (side - 1) as f32)))
        })
        .collect()
}

/// The brightness gain that best maps the warped photo onto the first (least squares
/// over the pixels that neither photo clips at white: a brightened backdrop stays white),
/// within what a brightness edit does.
fn gain(a: &[[f32; 3]], w: &[Option<[f32; 3]>]) -> f32 {
    let (mut num, mut den) = (0.0, 0.0);
    for (p, q) in a.iter().zip(w) {
        if let Some(q) = q {
            if p.iter().chain(q).any(|&c| c > CLIPPED) {
                continue;
            }
            for k in 0..3 {
                num += p[k] * q[k];
                den += q[k] * q[k];
            }
        }
    }
    if den < 1e-3 {
        return 1.0;
    }
    (num / den).clamp(0.7, 1.4)
}

/// The mean colour difference of the aligned pair over all covered pixels (`all`) or over
/// the product only; `None` when too little of the first photo is covered.
fn difference(a: &[[f32; 3]], w: &[Option<[f32; 3]>], product_only: bool) -> Option<f32> {
    let covered = w.iter().filter(|q| q.is_some()).count();
    if (covered as f32) < MIN_OVERLAP * a.len() as f32 {
        return None;
    }
    let g = gain(a, w);
    let corner_a = a[0];
    let corner_w = w.iter().flatten().next().copied().unwrap_or(corner_a);
    let off = |p: [f32; 3], c: [f32; 3]| (0..3).map(|k| (p[k] - c[k]).abs()).sum::<f32>() > FOREGROUND;
    let (mut sum, mut n) = (0.0, 0usize);
    for (p, q) in a.iter().zip(w) {
        let Some(q) = q else { continue };
        if product_only && !off(*p, corner_a) && !off(*q, corner_w) {
            continue;
        }
        sum += (0..3).map(|k| (p[k] - (g * q[k]).min(1.0)).abs()).sum::<f32>() / 3.0;
        n += 1;
    }
    // A photo with (almost) no product is compared over everything.
    if product_only && n < 20 {
        return difference(a, w, false);
    }
    Some(sum / n.max(1) as f32)
}

fn cost(a: &Levels, b: &Levels, level: usize, pose: Pose) -> f32 {
    let side = SIDES[level];
    difference(&a.0[level], &warp(&b.0[level], side, pose), false).unwrap_or(f32::INFINITY)
}

/// How different two photos are as pictures: the mean colour difference over the product
/// once the second is laid onto the first as well as it goes (0 for the same pixels).
pub fn distance(a: &Thumb, b: &Thumb) -> f32 {
    let (a, b) = (&a.levels(), &b.levels());
    let mut start = (f32::INFINITY, Pose { mirror: false, scale: 1.0, angle: 0.0, tx: 0.0, ty: 0.0 });
    for mirror in [false, true] {
        for scale in [0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.13] {
            for tx in [-0.1, -0.05, 0.0, 0.05, 0.1] {
                for ty in [-0.1, -0.05, 0.0, 0.05, 0.1] {
                    let pose = Pose { mirror, scale, angle: 0.0, tx, ty };
                    let c = cost(a, b, 0, pose);
                    if c < start.0 {
                        start = (c, pose);
                    }
                }
            }
        }
    }
    // Most candidates are other products: far apart over the product already at 16
    // pixels, where blurring only makes photos more alike.
    let coarse = difference(&a.0[0], &warp(&b.0[0], SIDES[0], start.1), true);
    if start.0 > COARSE_REJECT || coarse.is_none_or(|d| d > COARSE_PRODUCT_REJECT) {
        return f32::INFINITY;
    }
    let mut pose = start.1;
    // Coordinate descent at 32, then 64 pixels: a pixel's shift, 2% of scale, 1.5
    // degrees of rotation per step.
    for level in [1, 2] {
        let step = 1.0 / SIDES[level] as f32;
        let mut best = cost(a, b, level, pose);
        for _ in 0..4 {
            let mut moved = false;
            for (d, which) in
                [(step, 0), (-step, 0), (step, 1), (-step, 1), (0.02, 2), (-0.02, 2), (0.026, 3), (-0.026, 3)]
            {
                let mut p = pose;
                match which {
                    0 => p.tx += d,
                    1 => p.ty += d,
                    2 => p.scale += d,
                    _ => p.angle += d,
                }
                let c = cost(a, b, level, p);
                if c < best {
                    (best, pose, moved) = (c, p, true);
                }
            }
            if !moved {
                break;
            }
        }
    }
    difference(&a.0[2], &warp(&b.0[2], SIDES[2], pose), true).unwrap_or(f32::INFINITY)
}

/// [`distance`] both ways (either photo may be the cropped one), the second only when
/// the first comes close.
pub fn pair_distance(a: &Thumb, b: &Thumb, threshold: f32) -> f32 {
    let d = distance(a, b);
    if d <= threshold || d > 2.0 * threshold {
        return d;
    }
    d.min(distance(b, a))
}

/// Up to this many rows, [`neighbours`] come from a matrix product, exact, in time that
/// grows with the square of the rows (8.5 s at 30,000, 98 s at 100,000 here); above it,
/// from trees, about linear (5.6 s and 35 s) and nearly exact.
pub const PRODUCT_UP_TO: usize = 30_000;

/// Each row's `k` nearest rows by dot product over `vectors` (`dims` wide, unit rows),
/// itself left out, nearest first: exact up to [`PRODUCT_UP_TO`] rows, else approximate.
pub fn neighbours(vectors: &[f32], dims: usize, k: usize) -> Result<Vec<Vec<Scored>>> {
    match vectors.len() / dims.max(1) {
        n if n <= PRODUCT_UP_TO => neighbours_by_product(vectors, dims, k),
        _ => neighbours_by_trees(vectors, dims, k),
    }
}

/// Trees whose leaves propose [`neighbours_by_trees`]' candidates, and rows per leaf: on
/// the sample's descriptors the lists hold 0.98 of the exact ones' pairs (16 trees of 64:
/// 0.955), on 100,000 synthetic ones 0.998 (README "Duplicates", `bench-annoy --neighbours`).
const GRAPH_TREES: usize = 32;
const GRAPH_LEAF: usize = 100;

/// [`neighbours`] from a forest of random-projection trees (over the projection an index
/// run's trees use): each row's candidates are the rows that share a leaf with it in any
/// tree, ranked exactly; then once more with the neighbours of its neighbours added, which
/// finds most of what the leaves split apart. Time n x trees x leaf (about linear),
/// where the product's is n².
pub fn neighbours_by_trees(vectors: &[f32], dims: usize, k: usize) -> Result<Vec<Vec<Scored>>> {
    use crate::config::IndexConfig;
    use crate::index::annoy;
    use crate::index::exact::dot;
    use crate::index::forest;
    let n = vectors.len() / dims.max(1);
    let projected = forest::tree_vectors(vectors, dims, &IndexConfig::default())?;
    let (tree_vectors, tree_dims) = projected.as_ref().map_or((vectors, dims), |(v, d)| (v.as_slice(), *d));
    let forest = annoy::leaves(tree_vectors, tree_dims, GRAPH_TREES, GRAPH_LEAF, annoy::DEFAULT_SEED);
    drop(projected);
    let row_of = |r: usize| &vectors[r * dims..(r + 1) * dims];
    let rank = |row: usize, mut mates: Vec<u32>| {
        mates.sort_unstable();
        mates.dedup();
        let query = row_of(row);
        let scored = mates.into_iter().map(|m| m as usize).filter(|&m| m != row);
        nearest_first(scored.map(|m| Scored { row: m, score: dot(query, row_of(m)) }).collect(), k)
    };
    let first: Vec<Vec<Scored>> = (0..n)
        .into_par_iter()
        .map(|row| rank(row, forest.iter().flat_map(|t| t.groups[t.of[row] as usize].iter().copied()).collect()))
        .collect();
    Ok((0..n)
        .into_par_iter()
        .map(|row| {
            let near = first[row].iter().flat_map(|s| std::iter::once(s.row).chain(first[s.row].iter().map(|t| t.row)));
            rank(row, near.map(|m| m as u32).collect())
        })
        .collect())
}

/// The `k` best of `best`, best first.
fn nearest_first(mut best: Vec<Scored>, k: usize) -> Vec<Scored> {
    if best.len() > k {
        best.select_nth_unstable_by(k, |a, b| b.score.total_cmp(&a.score));
        best.truncate(k);
    }
    best.shrink_to_fit();
    best.sort_by(|a, b| b.score.total_cmp(&a.score));
    best
}

/// [`neighbours`] exactly: blocks of rows against all of them as one matrix product.
pub fn neighbours_by_product(vectors: &[f32], dims: usize, k: usize) -> Result<Vec<Vec<Scored>>> {
    let n = vectors.len() / dims.max(1);
    let k = k.min(n.saturating_sub(1));
    let tensor = |e: candle_core::Error| Error::Model(format!("neighbour search: {e}"));
    let all = Tensor::from_slice(vectors, (n, dims), &Device::Cpu).map_err(tensor)?;
    let all_t = all.t().map_err(tensor)?;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(512) {
        let len = 512.min(n - start);
        let block = all.narrow(0, start, len).map_err(tensor)?.matmul(&all_t).map_err(tensor)?;
        let scores: Vec<Vec<f32>> = block.to_vec2().map_err(tensor)?;
        out.par_extend(scores.into_par_iter().enumerate().map(|(i, row)| {
            let best = row.into_iter().enumerate().filter(|&(r, _)| r != start + i);
            // Shrunk to k, else every row keeps room for all rows: memory quadratic.
            nearest_first(best.map(|(row, score)| Scored { row, score }).collect(), k)
        }));
    }
    Ok(out)
}

/// The pairs of `candidates` (row pairs, each once) whose photos are near-identical, with
/// their distance; a pair with a photo missing from `thumbs` is left out.
pub fn verify(candidates: &[(usize, usize)], thumbs: &[Option<Thumb>], threshold: f32) -> Vec<(usize, usize, f32)> {
    candidates
        .par_iter()
        .filter_map(|&(a, b)| {
            let (ta, tb) = (thumbs[a].as_ref()?, thumbs[b].as_ref()?);
            let d = pair_distance(ta, tb, threshold);
            (d <= threshold).then_some((a, b, d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A product photo: a white backdrop, a shape with a pattern that is not symmetric.
    fn photo(seed: u32) -> RgbImage {
        RgbImage::from_fn(200, 200, |x, y| {
            let inside = (40..160).contains(&x) && (30..170).contains(&y) && !(x > 120 && y < 70);
            if !inside {
                return Rgb([255, 255, 255]);
            }
            let stripe = ((x / 12 + y / 20 + seed) % 3) as u8;
            Rgb([60 + 60 * stripe, (30 + seed * 40) as u8, 200 - 50 * stripe])
        })
    }

    #[test]
    fn a_mirrored_cropped_brighter_copy_is_near_and_another_pattern_is_not() {
        let original = photo(0);
        let mirrored = image::imageops::flip_horizontal(&original);
        let cropped = image::imageops::crop_imm(&mirrored, 12, 6, 182, 182).to_image();
        let brighter = RgbImage::from_fn(182, 182, |x, y| {
            Rgb(cropped.get_pixel(x, y).0.map(|c| (c as f32 * 1.1).min(255.0) as u8))
        });
        let a = Thumb::of(&original);
        let copy = pair_distance(&a, &Thumb::of(&brighter), THRESHOLD);
        let other = distance(&a, &Thumb::of(&photo(1)));
        assert!(copy <= THRESHOLD, "copy at {copy}");
        assert!(other > THRESHOLD, "a different pattern at {other}");
        assert_eq!(distance(&a, &a), 0.0);
    }

    #[test]
    fn neighbours_are_nearest_first_and_leave_the_row_out() {
        let v = [1.0, 0.0, 0.8, 0.6, 0.0, 1.0];
        let n = neighbours(&v, 2, 1).unwrap();
        assert_eq!(n.iter().map(|s| s[0].row).collect::<Vec<_>>(), vec![1, 0, 1]);
    }

    #[test]
    fn the_trees_list_nearly_the_neighbours_the_product_lists() {
        let (n, dims, k) = (4000, 64, CANDIDATES);
        let vectors = crate::bench::clustered(n, dims, 5);
        let (exact, trees) =
            (neighbours_by_product(&vectors, dims, k).unwrap(), neighbours_by_trees(&vectors, dims, k).unwrap());
        assert_eq!(trees.len(), n);
        let mut held = 0;
        for (row, (e, t)) in exact.iter().zip(&trees).enumerate() {
            assert_eq!(t.len(), k);
            assert!(t.iter().all(|s| s.row != row), "row {row} lists itself");
            assert!(t.windows(2).all(|w| w[0].score >= w[1].score), "row {row} not nearest first");
            held += e.iter().filter(|s| t.iter().any(|x| x.row == s.row)).count();
        }
        let share = held as f64 / (n * k) as f64;
        assert!(share >= 0.97, "the trees list {share} of the exact neighbours");
    }
}
