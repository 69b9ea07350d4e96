//! From bytes to network input: decoding any supported format safely, and preprocessing.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

use super::INPUT;
use crate::error::DecodeError;

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
const MAX_SIDE: u32 = 20_000;
const MAX_DECODE_BYTES: u64 = 512 << 20;

/// How a photo of any shape becomes the 224x224 network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizePolicy {
    /// Resize to 224x224, ignoring the aspect ratio.
    Stretch,
    /// Keep the aspect ratio: pad to a square with white, then resize.
    Pad,
    /// Resize the short side to 256 and take the centre 224x224 (torchvision's eval transform).
    Crop,
}

impl ResizePolicy {
    /// Identifies the whole preprocessing; a store made with another one is rebuilt.
    pub fn preprocessing_id(self) -> String {
        let name = match self {
            ResizePolicy::Stretch => "stretch",
            ResizePolicy::Pad => "pad-white",
            ResizePolicy::Crop => "resize256-crop224",
        };
        format!("{name}/bilinear/{INPUT}/imagenet-norm/v1")
    }
}

/// Decodes any supported format (sniffed from the content, not the name) to upright RGB:
/// EXIF orientation applied, alpha composited on white, first frame of animations.
pub fn decode(path: &Path) -> Result<RgbImage, DecodeError> {
    decode_bytes(&crate::files::read_file(path)?)
}

pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && jpeg_is_truncated(bytes) {
        return Err(DecodeError::TruncatedJpeg);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    Ok(flatten_on_white(img))
}

/// A JPEG of the image scaled to fit a `size` x `size` box (never enlarged), decoded with
/// the same limits as indexing: for thumbnails in result lists and web pages.
pub fn thumbnail(bytes: &[u8], size: u32) -> Result<Vec<u8>, DecodeError> {
    let img = decode_bytes(bytes)?;
    let (w, h) = img.dimensions();
    let scale = (size as f32 / w.max(h) as f32).min(1.0);
    let (tw, th) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
    let small = image::imageops::resize(&img, tw, th, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&small)?;
    Ok(out)
}

/// The JPEG decoder fills a cut-off file with grey and succeeds; such a half photo would
/// be indexed as if whole. Entropy-coded data never holds 0xFFD9, so a complete file has
/// the end-of-image marker after its last start-of-scan (an EXIF thumbnail's markers come
/// before the main image's scans).
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi < sos,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn flatten_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let blend = |c: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

/// Larger images are scaled down before padding, which bounds the square canvas.
const MAX_PAD_SIDE: u32 = 2048;

/// Turns an upright RGB image into the normalized input of the network: 224 x 224 pixels
/// of 3 channels (HWC, the layout the network computes in).
pub fn preprocess(img: &RgbImage, policy: ResizePolicy) -> Vec<f32> {
    use image::imageops::{self, FilterType};
    let (w, h) = img.dimensions();
    // An extreme aspect ratio (a 19000x1 strip) would make the intermediate images below
    // gigabytes; only the centre matters for crop, and pad ends at 224 px anyway. Normal
    // photos are below both bounds and take the exact path.
    let bounded;
    let img = match policy {
        ResizePolicy::Crop if w.max(h) > 2 * w.min(h) => {
            let (cw, ch) = (w.min(2 * h), h.min(2 * w));
            bounded = imageops::crop_imm(img, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image();
            &bounded
        }
        ResizePolicy::Pad if w.max(h) > MAX_PAD_SIDE => {
            let scale = MAX_PAD_SIDE as f64 / w.max(h) as f64;
            let (nw, nh) = (((w as f64 * scale) as u32).max(1), ((h as f64 * scale) as u32).max(1));
            bounded = imageops::resize(img, nw, nh, FilterType::Triangle);
            &bounded
        }
        _ => img,
    };
    let (w, h) = img.dimensions();
    let square = match policy {
        ResizePolicy::Stretch => imageops::resize(img, INPUT, INPUT, FilterType::Triangle),
        ResizePolicy::Pad => {
            let side = w.max(h);
            let mut canvas = RgbImage::from_pixel(side, side, image::Rgb([255, 255, 255]));
            imageops::overlay(&mut canvas, img, ((side - w) / 2) as i64, ((side - h) / 2) as i64);
            imageops::resize(&canvas, INPUT, INPUT, FilterType::Triangle)
        }
        ResizePolicy::Crop => {
            let short = 256.0 / w.min(h) as f64;
            let (nw, nh) =
                (((w as f64 * short).round() as u32).max(INPUT), ((h as f64 * short).round() as u32).max(INPUT));
            let resized = imageops::resize(img, nw, nh, FilterType::Triangle);
            imageops::crop_imm(&resized, (nw - INPUT) / 2, (nh - INPUT) / 2, INPUT, INPUT).to_image()
        }
    };
    square.pixels().flat_map(|px| (0..3).map(|c| (px.0[c] as f32 / 255.0 - MEAN[c]) / STD[c])).collect()
}

/// An image file's bytes as the network's input: decoded and preprocessed.
pub fn input(bytes: &[u8], policy: ResizePolicy) -> Result<Vec<f32>, DecodeError> {
    Ok(preprocess(&decode_bytes(bytes)?, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]))
    }

    #[test]
    fn every_policy_gives_network_input() {
        for policy in [ResizePolicy::Stretch, ResizePolicy::Pad, ResizePolicy::Crop] {
            for (w, h) in [(1, 1), (1000, 3), (3, 1000), (300, 400)] {
                let x = preprocess(&gradient(w, h), policy);
                assert_eq!(x.len(), 3 * 224 * 224, "{policy:?} {w}x{h}");
                assert!(x.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn alpha_is_composited_on_white() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0])));
        assert_eq!(flatten_on_white(img).get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn thumbnails_fit_the_box_and_never_grow() {
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(gradient(300, 120))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let small = decode_bytes(&thumbnail(&png, 100).unwrap()).unwrap();
        assert_eq!(small.dimensions(), (100, 40));
        let same = decode_bytes(&thumbnail(&png, 1000).unwrap()).unwrap();
        assert_eq!(same.dimensions(), (300, 120));
        assert!(thumbnail(b"not an image", 100).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(decode_bytes(b"<html>not an image</html>"), Err(DecodeError::Image(_))));
    }

    #[test]
    fn huge_claimed_dimensions_are_refused() {
        // A valid PNG header claiming 100000x100000 pixels, and nothing else.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32fast::hash(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        assert!(decode_bytes(&png).is_err());
    }
}
