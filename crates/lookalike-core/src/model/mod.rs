//! The embedding model: the [`Embedder`] seam, the ResNet50 encoder behind it on a
//! [`Device`], and (in `decode`) image decoding and preprocessing.

use std::path::Path;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

mod conv;
pub mod decode;
pub mod fake;
mod resnet;

pub use crate::error::DecodeError;
pub use decode::{decode, decode_bytes, input, preprocess, thumbnail, ResizePolicy};
pub use resnet::{LayerTime, Profile};

use crate::error::{Error, Result};
pub use crate::index::exact::normalize;

/// The reference design's embedding: layer4's global average pool, unit length.
pub const LAYER4_DIMS: usize = 2048;
/// layer3's global average pool, unit length; the default search descriptor builds on it.
pub const LAYER3_DIMS: usize = 1024;
/// What the store keeps per image: `[layer4 | layer3]`, each part unit length.
pub const FEATURE_DIMS: usize = LAYER4_DIMS + LAYER3_DIMS;
/// What the store keeps per image: the features, then the colour descriptor (computed
/// from the pixels, not by the network).
pub const ROW_DIMS: usize = FEATURE_DIMS + crate::colour::COLOUR_DIMS;
/// Side of the square the network sees.
pub const INPUT: u32 = 224;
/// Names the weights and the stored features; stored in every store header.
pub const MODEL_ID: &str = "resnet50/imgsim-0.1.2/gap-layer4+gap-layer3/l2-each/v2";

/// Turns preprocessed images into stored features. Shared by the indexer and the search
/// service of one engine (one copy of the weights per process).
pub trait Embedder: Send + Sync {
    /// How photos become this model's input.
    fn policy(&self) -> ResizePolicy;

    /// Names the features; a store made by another model is rebuilt, never mixed.
    fn model_id(&self) -> &str;

    /// Embeds preprocessed inputs (from [`preprocess`]); returns `n * FEATURE_DIMS` floats,
    /// per image `[layer4 | layer3]` with each part scaled to unit length.
    fn embed(&self, inputs: &[Vec<f32>]) -> Result<Vec<f32>>;
}

/// Where the model runs: `[model] device` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
        }
    }

    fn candle(self) -> candle_core::Device {
        match self {
            Device::Cpu => candle_core::Device::Cpu,
        }
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            other => Err(Error::Device(other.to_string())),
        }
    }
}

/// The ResNet50 encoder up to global average pooling.
pub struct ResNetEmbedder {
    net: resnet::ResNet50,
    device: candle_core::Device,
    policy: ResizePolicy,
}

impl ResNetEmbedder {
    /// Memory-maps the safetensors weights written by `lookalike fetch-weights`.
    pub fn load(weights: &Path, policy: ResizePolicy, device: Device) -> Result<ResNetEmbedder> {
        if !weights.is_file() {
            return Err(Error::WeightsMissing(weights.to_path_buf()));
        }
        let invalid = |reason: String| Error::WeightsInvalid { path: weights.to_path_buf(), reason };
        let device = device.candle();
        // SAFETY: the file is only read; fetch-weights replaces it by rename, never in place.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| invalid(format!("cannot read them ({e})")))?;
        let net = resnet::ResNet50::load(vb)
            .map_err(|e| invalid(format!("they do not hold a torchvision ResNet50 ({e})")))?;
        Ok(ResNetEmbedder { net, device, policy })
    }

    /// [`Embedder::embed`], also timing every layer.
    pub fn profile(&self, inputs: &[Vec<f32>]) -> Result<Profile> {
        let mut profile = Profile::default();
        self.run(inputs, Some(&mut profile))?;
        Ok(profile)
    }

    fn run(&self, inputs: &[Vec<f32>], profile: Option<&mut Profile>) -> Result<Vec<f32>> {
        let n = inputs.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        check_inputs(inputs)?;
        let flat: Vec<f32> = inputs.concat();
        let side = INPUT as usize;
        let x = Tensor::from_vec(flat, (n, side, side, 3), &self.device)?;
        // One hand-over to the thread pool for the whole pass: the layers' parallel loops
        // then start from a pool thread instead of each waking the pool from outside.
        let pooled = rayon::scope(|_| self.net.forward(&x, profile))?;
        let mut out = Tensor::cat(&[&pooled.layer4, &pooled.layer3], 1)?.flatten_all()?.to_vec1::<f32>()?;
        out.chunks_mut(FEATURE_DIMS).for_each(normalize_parts);
        Ok(out)
    }
}

impl Embedder for ResNetEmbedder {
    fn policy(&self) -> ResizePolicy {
        self.policy
    }

    fn model_id(&self) -> &str {
        MODEL_ID
    }

    fn embed(&self, inputs: &[Vec<f32>]) -> Result<Vec<f32>> {
        self.run(inputs, None)
    }
}

/// Refuses a batch holding an input that is not one preprocessed image.
pub fn check_inputs(inputs: &[Vec<f32>]) -> Result<()> {
    let want = (INPUT * INPUT * 3) as usize;
    match inputs.iter().find(|x| x.len() != want) {
        Some(x) => Err(Error::Model(format!("an input of {} values, not {want} ({INPUT}x{INPUT}x3)", x.len()))),
        None => Ok(()),
    }
}

/// What one decode of a photo gives: the network's input and the colour descriptor.
pub struct Photo {
    pub input: Vec<f32>,
    pub colour: Vec<f32>,
}

impl Photo {
    pub fn of(img: &image::RgbImage, policy: ResizePolicy) -> Photo {
        Photo { input: preprocess(img, policy), colour: crate::colour::describe(img) }
    }

    pub fn decode(bytes: &[u8], policy: ResizePolicy) -> Result<Photo, DecodeError> {
        Ok(Photo::of(&decode_bytes(bytes)?, policy))
    }
}

/// The stored row of a photo: its features (from the model), then its colour.
pub fn row(features: &[f32], colour: &[f32]) -> Vec<f32> {
    [features, colour].concat()
}

/// Decodes, preprocesses and embeds one image's bytes; `what` names it in errors.
pub fn embed_bytes(embedder: &dyn Embedder, bytes: &[u8], what: &str) -> Result<Vec<f32>> {
    let x = input(bytes, embedder.policy()).map_err(|reason| Error::BadImage { what: what.to_string(), reason })?;
    embedder.embed(&[x])
}

/// Scales each part of a feature row (`[layer4 | layer3]`) to unit length.
pub fn normalize_parts(v: &mut [f32]) {
    let (l4, l3) = v.split_at_mut(LAYER4_DIMS);
    normalize(l4);
    normalize(l3);
}
