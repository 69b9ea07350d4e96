//! The colour descriptor: what colours the product itself has, computed from the pixels
//! at index time (no model), so searches can prefer the same look in the same colour.
//!
//! The photo is shrunk to 64x64 and taken to CIELAB. The background is what a flood fill
//! from the border reaches through pixels close to the border's median colour, so a white
//! shirt on a white backdrop keeps its inside; a photo that is all "background" (a crop
//! inside the product) is described whole. Pixels are weighted towards the centre and
//! away from skin tones (models wear the clothes), then soft-binned: 8 lightness bins for
//! the neutral greys, and 16 hues x 4 lightness x 2 chroma bins for coloured pixels. The
//! descriptor is the square root of the normalised histogram (Hellinger), unit length, so
//! the dot product of two is their Bhattacharyya coefficient.
//!
//! Every choice here was measured on the fashion sample (README, "Colour"); any change to
//! the arithmetic must change [`COLOUR_ID`], which stores record.

use image::RgbImage;

/// Names the descriptor's arithmetic; part of every store's identity.
pub const COLOUR_ID: &str = "lab64/flood4/centre0.3/skin0.2/lch8+16x4x2/hellinger/v1";
/// The first bins of a descriptor: grey levels, black to white.
pub const NEUTRAL_BINS: usize = 8;
const HUES: usize = 16;
const HUE_LIGHTNESS: usize = 4;
const CHROMAS: usize = 2;
/// Dimensions of a colour descriptor.
pub const COLOUR_DIMS: usize = NEUTRAL_BINS + HUES * HUE_LIGHTNESS * CHROMAS;
const SIDE: u32 = 64;
/// CIELAB distance to the border colour under which a pixel can be background.
const FLOOD_TOLERANCE: f32 = 4.0;
/// A foreground smaller than this share of the photo is not believed.
const MIN_FOREGROUND: f32 = 0.03;
/// Gaussian centre weighting, as a share of the side.
const CENTRE_SIGMA: f32 = 0.3;
/// Weight of skin-toned pixels, unless they are most of the product.
const SKIN_WEIGHT: f32 = 0.2;
/// Chroma below which a pixel is fully neutral, and above twice which fully coloured.
const NEUTRAL_CHROMA: f32 = 5.0;
const MAX_CHROMA: f32 = 60.0;

/// The colour descriptor of a photo (`COLOUR_DIMS` values, unit length).
pub fn describe(img: &RgbImage) -> Vec<f32> {
    let small = image::imageops::thumbnail(img, SIDE, SIDE);
    let (w, h) = small.dimensions();
    let lab: Vec<[f32; 3]> = small.pixels().map(|p| srgb_to_lab(p.0)).collect();
    let weights = weights(&lab, w as usize, h as usize);
    let mut hist = [0f32; COLOUR_DIMS];
    for (px, &wt) in lab.iter().zip(&weights) {
        if wt > 0.0 {
            add_soft(&mut hist, *px, wt);
        }
    }
    // The square roots of a histogram that sums to 1 are unit length already. (Some pixel
    // always has weight: an all-background photo is described whole.)
    let total: f32 = hist.iter().sum();
    hist.iter().map(|&x| (x / total.max(f32::MIN_POSITIVE)).sqrt()).collect()
}

/// Per pixel: foreground (flood fill), times centre weight, with skin turned down.
fn weights(lab: &[[f32; 3]], w: usize, h: usize) -> Vec<f32> {
    let background = flood_background(lab, w, h);
    let foreground = background.iter().filter(|&&b| !b).count();
    let believed = foreground as f32 >= MIN_FOREGROUND * (w * h) as f32;
    let mut out: Vec<f32> = (0..w * h)
        .map(|i| {
            if believed && background[i] {
                return 0.0;
            }
            let (x, y) = ((i % w) as f32 / (w - 1).max(1) as f32 - 0.5, (i / w) as f32 / (h - 1).max(1) as f32 - 0.5);
            (-(x * x + y * y) / (2.0 * CENTRE_SIGMA * CENTRE_SIGMA)).exp()
        })
        .collect();
    let before: f32 = out.iter().sum();
    let turned: Vec<f32> =
        out.iter().zip(lab).map(|(&wt, px)| if is_skin(*px) { wt * SKIN_WEIGHT } else { wt }).collect();
    // A product that is mostly skin-toned (beige, tan) keeps its colour.
    if turned.iter().sum::<f32>() > 0.3 * before {
        out = turned;
    }
    out
}

/// Pixels a flood fill from the border reaches through near-border-colour pixels.
fn flood_background(lab: &[[f32; 3]], w: usize, h: usize) -> Vec<bool> {
    let mut border: Vec<[f32; 3]> = Vec::with_capacity(2 * (w + h));
    for x in 0..w {
        border.push(lab[x]);
        border.push(lab[(h - 1) * w + x]);
    }
    for y in 0..h {
        border.push(lab[y * w]);
        border.push(lab[y * w + w - 1]);
    }
    let bg: [f32; 3] = std::array::from_fn(|c| median(border.iter().map(|p| p[c]).collect()));
    let near: Vec<bool> = lab.iter().map(|p| distance(*p, bg) < FLOOD_TOLERANCE).collect();
    let mut reached = vec![false; w * h];
    let mut stack: Vec<usize> =
        (0..w * h).filter(|&i| (i % w == 0 || i % w == w - 1 || i / w == 0 || i / w == h - 1) && near[i]).collect();
    stack.iter().for_each(|&i| reached[i] = true);
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        let around =
            [(x > 0).then(|| i - 1), (x + 1 < w).then(|| i + 1), (y > 0).then(|| i - w), (y + 1 < h).then(|| i + w)];
        for j in around.into_iter().flatten() {
            if near[j] && !reached[j] {
                reached[j] = true;
                stack.push(j);
            }
        }
    }
    reached
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

fn is_skin([l, a, b]: [f32; 3]) -> bool {
    (30.0..85.0).contains(&l) && (5.0..30.0).contains(&a) && (10.0..40.0).contains(&b) && b > 0.7 * a
}

/// Adds a pixel to the histogram, split linearly between neighbouring bins.
fn add_soft(hist: &mut [f32; COLOUR_DIMS], [l, a, b]: [f32; 3], weight: f32) {
    let chroma = a.hypot(b);
    let neutral = ((2.0 * NEUTRAL_CHROMA - chroma) / NEUTRAL_CHROMA).clamp(0.0, 1.0);
    let split = |v: f32, bins: usize| {
        let v = v.clamp(0.0, (bins - 1) as f32);
        let i = (v.floor() as usize).min(bins - 1);
        (i, (i + 1).min(bins - 1), v - i as f32)
    };
    if neutral > 0.0 {
        let (i, j, f) = split(l / 100.0 * NEUTRAL_BINS as f32 - 0.5, NEUTRAL_BINS);
        hist[i] += weight * neutral * (1.0 - f);
        hist[j] += weight * neutral * f;
    }
    let coloured = weight * (1.0 - neutral);
    if coloured <= 0.0 {
        return;
    }
    let hue = (b.atan2(a) / std::f32::consts::TAU * HUES as f32).rem_euclid(HUES as f32);
    let h0 = (hue.floor() as usize) % HUES;
    let (h1, fh) = ((h0 + 1) % HUES, hue - hue.floor());
    let (l0, l1, fl) = split(l / 100.0 * HUE_LIGHTNESS as f32 - 0.5, HUE_LIGHTNESS);
    let scaled = (chroma - 2.0 * NEUTRAL_CHROMA) / (MAX_CHROMA - 2.0 * NEUTRAL_CHROMA) * CHROMAS as f32 - 0.5;
    let (c0, c1, fc) = split(scaled, CHROMAS);
    for (hh, wh) in [(h0, 1.0 - fh), (h1, fh)] {
        for (ll, wl) in [(l0, 1.0 - fl), (l1, fl)] {
            for (cc, wc) in [(c0, 1.0 - fc), (c1, fc)] {
                hist[NEUTRAL_BINS + (hh * HUE_LIGHTNESS + ll) * CHROMAS + cc] += coloured * wh * wl * wc;
            }
        }
    }
}

/// sRGB (D65) to CIELAB.
fn srgb_to_lab(rgb: [u8; 3]) -> [f32; 3] {
    let lin = rgb.map(|c| {
        let c = c as f32 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    let [r, g, b] = lin;
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f32| if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::exact::dot;

    /// A product-like photo: a coloured blob with a darker stripe on a light backdrop.
    fn photo(colour: [u8; 3]) -> RgbImage {
        RgbImage::from_fn(200, 240, |x, y| {
            let (dx, dy) = (x as f32 - 100.0, y as f32 - 120.0);
            if dx * dx / 3600.0 + dy * dy / 6400.0 < 1.0 {
                if (y / 20) % 4 == 0 {
                    image::Rgb(colour.map(|c| c / 2))
                } else {
                    image::Rgb(colour)
                }
            } else {
                image::Rgb([246, 246, 246])
            }
        })
    }

    #[test]
    fn unit_length_and_the_right_size() {
        for img in [photo([200, 30, 40]), RgbImage::from_pixel(5, 3, image::Rgb([255, 255, 255])), RgbImage::new(1, 1)]
        {
            let d = describe(&img);
            assert_eq!(d.len(), COLOUR_DIMS);
            assert!((dot(&d, &d) - 1.0).abs() < 1e-5);
            assert!(d.iter().all(|x| x.is_finite() && *x >= 0.0));
        }
    }

    #[test]
    fn a_red_and_a_blue_copy_differ_and_a_reencoded_copy_matches() {
        let red = photo([200, 30, 40]);
        let blue = photo([40, 60, 190]);
        let (r, b) = (describe(&red), describe(&blue));
        assert!(dot(&r, &b) < 0.2, "red vs blue {}", dot(&r, &b));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 40).encode_image(&red).unwrap();
        let again = crate::model::decode_bytes(&jpeg).unwrap();
        let smaller = image::imageops::resize(&again, 100, 120, image::imageops::FilterType::Triangle);
        assert!(dot(&r, &describe(&smaller)) > 0.95, "re-encoded {}", dot(&r, &describe(&smaller)));
    }

    #[test]
    fn the_backdrop_does_not_count() {
        // The same red product on white and on light grey is the same colour.
        let on_grey = RgbImage::from_fn(200, 240, |x, y| {
            let p = *photo([200, 30, 40]).get_pixel(x, y);
            if p.0 == [246, 246, 246] {
                image::Rgb([215, 215, 215])
            } else {
                p
            }
        });
        let (a, b) = (describe(&photo([200, 30, 40])), describe(&on_grey));
        assert!(dot(&a, &b) > 0.97, "{}", dot(&a, &b));
    }

    #[test]
    fn white_on_white_keeps_its_inside() {
        // A white shirt outlined in grey on a white backdrop: white, not the outline's grey.
        let shirt = RgbImage::from_fn(100, 100, |x, y| {
            let inside = (20..80).contains(&x) && (20..80).contains(&y);
            let edge = inside && !((22..78).contains(&x) && (22..78).contains(&y));
            image::Rgb(if edge { [120, 120, 120] } else { [250, 250, 250] })
        });
        let d = describe(&shirt);
        let white_bin = NEUTRAL_BINS - 1;
        assert!(d[white_bin] > 0.85, "{d:?}");
    }
}
