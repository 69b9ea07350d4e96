//! Steering a search: a region of the query photo ("the jacket in this full-body shot"),
//! and relevance feedback from results marked up or down (Rocchio on the descriptors, so a
//! refined search embeds nothing again).

use std::fmt;
use std::str::FromStr;

use image::RgbImage;

use crate::error::{Error, Result};
use crate::index::exact::normalize;

/// The smallest region side, in pixels, that still makes a meaningful network input.
const MIN_SIDE: u32 = 8;

/// A region of the query photo, `x,y,w,h` from its top-left corner: fractions of the
/// photo's width and height when every number is at most 1, whole pixels otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    Fraction { x: f32, y: f32, w: f32, h: f32 },
    Pixels { x: u32, y: u32, w: u32, h: u32 },
}

impl FromStr for Crop {
    type Err = Error;

    fn from_str(text: &str) -> Result<Crop> {
        let bad = |reason: &str| Error::BadCrop { crop: text.to_string(), reason: reason.to_string() };
        let numbers: Vec<f64> = text
            .split(',')
            .map(|n| n.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("expected x,y,w,h: four numbers of 0 or more"))?;
        let [x, y, w, h] = numbers[..] else { return Err(bad("expected x,y,w,h: four numbers of 0 or more")) };
        if w == 0.0 || h == 0.0 {
            return Err(bad("the width and height must be above 0"));
        }
        if numbers.iter().all(|&v| v <= 1.0) {
            // A little slack for fractions that were rounded when printed.
            if x + w > 1.0 + 1e-4 || y + h > 1.0 + 1e-4 {
                return Err(bad("a region in fractions must end inside the photo (x+w and y+h at most 1)"));
            }
            let f = |v: f64| v as f32;
            return Ok(Crop::Fraction { x: f(x), y: f(y), w: f(w), h: f(h) });
        }
        if numbers.iter().any(|v| v.fract() != 0.0 || *v > u32::MAX as f64) {
            return Err(bad("a region in pixels takes whole numbers (fractions are all at most 1)"));
        }
        let p = |v: f64| v as u32;
        Ok(Crop::Pixels { x: p(x), y: p(y), w: p(w), h: p(h) })
    }
}

impl fmt::Display for Crop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Crop::Fraction { x, y, w, h } => write!(f, "{x:.4},{y:.4},{w:.4},{h:.4}"),
            Crop::Pixels { x, y, w, h } => write!(f, "{x},{y},{w},{h}"),
        }
    }
}

impl Crop {
    /// The region in pixels of a `width` x `height` photo, or why it does not fit it.
    pub fn pixels(&self, width: u32, height: u32) -> Result<(u32, u32, u32, u32)> {
        let (x, y, w, h) = match *self {
            Crop::Pixels { x, y, w, h } => {
                if x.saturating_add(w) > width || y.saturating_add(h) > height {
                    return Err(self.bad(format!("it goes outside the {width}x{height} photo")));
                }
                (x, y, w, h)
            }
            Crop::Fraction { x, y, w, h } => {
                let at = |v: f32, side: u32| ((v as f64 * side as f64).round() as u32).min(side);
                let (x0, y0) = (at(x, width), at(y, height));
                (x0, y0, at(x + w, width).saturating_sub(x0), at(y + h, height).saturating_sub(y0))
            }
        };
        if w < MIN_SIDE.min(width) || h < MIN_SIDE.min(height) {
            return Err(
                self.bad(format!("it is {w}x{h} pixels of the {width}x{height} photo, below {MIN_SIDE}x{MIN_SIDE}"))
            );
        }
        Ok((x, y, w, h))
    }

    /// The region of an upright photo.
    pub fn apply(&self, img: &RgbImage) -> Result<RgbImage> {
        let (x, y, w, h) = self.pixels(img.width(), img.height())?;
        Ok(image::imageops::crop_imm(img, x, y, w, h).to_image())
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadCrop { crop: self.to_string(), reason }
    }
}

/// How far relevance feedback moves the query (`[search] feedback_like`,
/// `feedback_unlike`): by `like` times the mean of the results marked up, and by
/// `-unlike` times the mean of those marked down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackWeights {
    pub like: f32,
    pub unlike: f32,
}

impl Default for FeedbackWeights {
    fn default() -> Self {
        FeedbackWeights { like: 2.0, unlike: 1.0 }
    }
}

/// Results marked up and down, each by product id or catalog path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    pub like: Vec<String>,
    pub unlike: Vec<String>,
}

impl Feedback {
    pub fn is_empty(&self) -> bool {
        self.like.is_empty() && self.unlike.is_empty()
    }
}

/// Whether results should share the query's colours (`[search] colour_weight` of the
/// similarity) or ignore them ("this shape in other colours").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColourMode {
    #[default]
    Same,
    Any,
}

impl ColourMode {
    pub fn name(self) -> &'static str {
        match self {
            ColourMode::Same => "same",
            ColourMode::Any => "any",
        }
    }
}

impl FromStr for ColourMode {
    type Err = Error;

    fn from_str(text: &str) -> Result<ColourMode> {
        match text {
            "same" => Ok(ColourMode::Same),
            "any" => Ok(ColourMode::Any),
            other => Err(Error::config(format!("colour {other:?}: use same or any"))),
        }
    }
}

/// How one search is steered: a region of the query photo, feedback, and colour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Steering {
    pub crop: Option<Crop>,
    pub feedback: Feedback,
    pub colour: ColourMode,
}

/// Rocchio's update of a unit query vector: towards the mean of `like`, away from the
/// mean of `unlike`, unit length again.
pub fn rocchio(query: &[f32], like: &[&[f32]], unlike: &[&[f32]], weights: FeedbackWeights) -> Vec<f32> {
    let mut q = query.to_vec();
    for (vectors, weight) in [(like, weights.like), (unlike, -weights.unlike)] {
        let w = weight / vectors.len().max(1) as f32;
        for v in vectors {
            q.iter_mut().zip(v.iter()).for_each(|(a, &b)| *a += w * b);
        }
    }
    normalize(&mut q);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_parse_as_fractions_or_pixels() {
        assert_eq!("0.1,0.2,0.5,0.5".parse::<Crop>().unwrap(), Crop::Fraction { x: 0.1, y: 0.2, w: 0.5, h: 0.5 });
        assert_eq!("10, 20, 300, 400".parse::<Crop>().unwrap(), Crop::Pixels { x: 10, y: 20, w: 300, h: 400 });
        for bad in ["", "1,2,3", "1,2,3,4,5", "a,b,c,d", "0,0,0,0.5", "0.6,0,0.5,0.5", "-1,0,10,10", "1.5,0,10,10"] {
            let err = bad.parse::<Crop>().unwrap_err();
            assert!(matches!(err, Error::BadCrop { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn regions_map_to_pixels_and_must_fit() {
        let half = Crop::Fraction { x: 0.5, y: 0.0, w: 0.5, h: 1.0 };
        assert_eq!(half.pixels(200, 100).unwrap(), (100, 0, 100, 100));
        let img = RgbImage::from_fn(200, 100, |x, _| image::Rgb([x as u8, 0, 0]));
        let right = half.apply(&img).unwrap();
        assert_eq!((right.dimensions(), right.get_pixel(0, 0).0[0]), ((100, 100), 100));
        let outside = Crop::Pixels { x: 150, y: 0, w: 100, h: 50 };
        assert!(outside.pixels(200, 100).unwrap_err().to_string().contains("outside the 200x100 photo"));
        let tiny = Crop::Fraction { x: 0.0, y: 0.0, w: 0.01, h: 0.01 };
        assert!(tiny.pixels(200, 100).unwrap_err().to_string().contains("below 8x8"));
        // A photo smaller than the minimum can still be taken whole.
        assert_eq!(Crop::Fraction { x: 0.0, y: 0.0, w: 1.0, h: 1.0 }.pixels(4, 4).unwrap(), (0, 0, 4, 4));
    }

    #[test]
    fn feedback_moves_towards_likes_and_away_from_unlikes() {
        let q = [1.0, 0.0, 0.0];
        let (up, down) = ([0.0f32, 1.0, 0.0], [0.0f32, 0.0, 1.0]);
        let moved = rocchio(&q, &[&up], &[&down], FeedbackWeights::default());
        assert!(moved[1] > 0.0 && moved[2] < 0.0, "{moved:?}");
        assert!((moved.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        let none = rocchio(&q, &[], &[], FeedbackWeights::default());
        assert_eq!(none, q.to_vec());
    }
}
