//! The embedding model: the [`Embedder`] seam, the ResNet50 encoder behind it on a
//! [`Device`], and (in `decode`) image decoding and preprocessing.

use std::path::Path;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

mod conv;
pub mod decode;
pub mod fake;
mod nchw;
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

    /// Where it runs, as the configured device resolved ("cpu (auto: ...)", "cuda:0").
    fn device(&self) -> &str {
        "cpu"
    }

    /// The kind of device it runs on ([`Opened::kind`]).
    fn device_kind(&self) -> &'static str {
        "cpu"
    }
}

/// Where the model runs: `[model] device` in the configuration, `--device` on the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA device 0 when this build has CUDA and the device opens; the CPU otherwise.
    #[default]
    Auto,
    Cpu,
    /// A CUDA device by ordinal; an error where this build has no CUDA or it does not open.
    Cuda(usize),
}

impl Device {
    /// Photos per model call when `[model] batch_size` is not set: a GPU needs larger
    /// batches to be kept busy than the CPU kernels, whose speed per image is flat from
    /// batch 8 on (README, Embedding speed).
    pub fn default_batch(self) -> usize {
        if self != Device::Cpu && candle_core::utils::cuda_is_available() {
            64
        } else {
            16
        }
    }

    /// Opens the device; `auto` falls back to the CPU, saying why in the name.
    pub fn open(self) -> Result<Opened> {
        let cuda = |n| {
            candle_core::Device::new_cuda(n).map_err(|e| match e {
                candle_core::Error::NotCompiledWithCudaSupport => {
                    "this lookalike was built without CUDA (build with --features cuda; README, GPU)".to_string()
                }
                e => format!("it did not open ({e})"),
            })
        };
        let opened = |candle, name: String| Opened { candle, name, cpu_kernels: true };
        match self {
            Device::Cpu => Ok(opened(candle_core::Device::Cpu, "cpu".into())),
            Device::Cuda(n) => match cuda(n) {
                Ok(d) => Ok(opened(d, self.to_string())),
                Err(reason) => Err(Error::Device { device: self.to_string(), reason }),
            },
            Device::Auto if !candle_core::utils::cuda_is_available() => {
                Ok(opened(candle_core::Device::Cpu, "cpu (auto: built without CUDA)".into()))
            }
            Device::Auto => match cuda(0) {
                Ok(d) => Ok(opened(d, "cuda:0 (auto)".into())),
                Err(reason) => Ok(opened(candle_core::Device::Cpu, format!("cpu (auto: cuda:0 {reason})"))),
            },
        }
    }
}

/// A device opened for the model and the searches of one engine.
#[derive(Clone)]
pub struct Opened {
    pub candle: candle_core::Device,
    /// As the configured device resolved: "cpu", "cuda:0", "cpu (auto: ...)".
    pub name: String,
    /// On the CPU, whether the network runs on the custom NHWC kernels (always, but in
    /// tests that check candle's own ops there).
    cpu_kernels: bool,
}

impl Opened {
    /// candle's own ops on the CPU: what a CUDA device runs, for tests that compare it
    /// with the NHWC kernels on machines without a GPU.
    pub fn candle_ops_on_cpu() -> Opened {
        Opened { candle: candle_core::Device::Cpu, name: "cpu (candle ops)".into(), cpu_kernels: false }
    }

    /// A GPU rather than the CPU.
    pub fn is_gpu(&self) -> bool {
        !self.candle.is_cpu()
    }

    /// The kind stores record rows as made on: "cpu" or "cuda".
    pub fn kind(&self) -> &'static str {
        if self.candle.is_cuda() {
            "cuda"
        } else {
            "cpu"
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        let ordinal = match s {
            "auto" => return Ok(Device::Auto),
            "cpu" => return Ok(Device::Cpu),
            "cuda" => Some(0),
            _ => s.strip_prefix("cuda:").and_then(|n| n.parse().ok()),
        };
        ordinal.map(Device::Cuda).ok_or_else(|| Error::Device {
            device: s.to_string(),
            reason: "not a device; use \"auto\", \"cpu\" or \"cuda:N\"".into(),
        })
    }
}

/// How a device runs the network: the custom NHWC kernels on the CPU, candle's own ops
/// elsewhere.
enum Net {
    Nhwc(resnet::ResNet50),
    Candle(nchw::ResNet50),
}

/// The ResNet50 encoder up to global average pooling.
pub struct ResNetEmbedder {
    net: Net,
    device: Opened,
    policy: ResizePolicy,
}

impl ResNetEmbedder {
    /// Memory-maps the safetensors weights written by `lookalike fetch-weights` and loads
    /// them onto `device`.
    pub fn load(weights: &Path, policy: ResizePolicy, device: Device) -> Result<ResNetEmbedder> {
        ResNetEmbedder::load_on(weights, policy, &device.open()?)
    }

    /// [`ResNetEmbedder::load`] on a device already opened.
    pub fn load_on(weights: &Path, policy: ResizePolicy, device: &Opened) -> Result<ResNetEmbedder> {
        if !weights.is_file() {
            return Err(Error::WeightsMissing(weights.to_path_buf()));
        }
        let invalid = |reason: String| Error::WeightsInvalid { path: weights.to_path_buf(), reason };
        // SAFETY: the file is only read; fetch-weights replaces it by rename, never in place.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device.candle) }
            .map_err(|e| invalid(format!("cannot read them ({e})")))?;
        let not_resnet = |e| invalid(format!("they do not hold a torchvision ResNet50 ({e})"));
        let net = if device.candle.is_cpu() && device.cpu_kernels {
            Net::Nhwc(resnet::ResNet50::load(vb).map_err(not_resnet)?)
        } else {
            Net::Candle(nchw::ResNet50::load(vb).map_err(not_resnet)?)
        };
        Ok(ResNetEmbedder { net, device: device.clone(), policy })
    }

    /// A failed pass names the device, and says what to do when it ran out of memory.
    fn device_failed(&self, batch: usize, e: candle_core::Error) -> Error {
        let e = e.to_string();
        if e.contains("OUT_OF_MEMORY") {
            Error::Model(format!(
                "{} ran out of memory at a batch of {batch}; lower [model] batch_size ({e})",
                self.device.name
            ))
        } else {
            Error::Model(format!("on {}: {e}", self.device.name))
        }
    }

    /// [`Embedder::embed`], also timing every layer (the NHWC kernels only; other devices
    /// run asynchronously, so a layer's wall time would not be its own).
    pub fn profile(&self, inputs: &[Vec<f32>]) -> Result<Profile> {
        if !matches!(self.net, Net::Nhwc(_)) {
            return Err(Error::Model(format!(
                "per-layer times are measured on the CPU only, not on {}",
                self.device.name
            )));
        }
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
        let x = Tensor::from_vec(flat, (n, side, side, 3), &self.device.candle)?;
        let pooled = match &self.net {
            // One hand-over to the thread pool for the whole pass: the layers' parallel
            // loops then start from a pool thread instead of each waking the pool from outside.
            Net::Nhwc(net) => rayon::scope(|_| net.forward(&x, profile))?,
            Net::Candle(net) => net.forward(&x).map_err(|e| self.device_failed(n, e))?,
        };
        let out = Tensor::cat(&[&pooled.layer4, &pooled.layer3], 1).and_then(|t| t.flatten_all()?.to_vec1::<f32>());
        let mut out = out.map_err(|e| self.device_failed(n, e))?;
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

    fn device(&self) -> &str {
        &self.device.name
    }

    fn device_kind(&self) -> &'static str {
        self.device.kind()
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
