//! The torchvision ResNet50 encoder on NHWC activations, with batch norm folded into the
//! convolutions at load.
//!
//! candle-transformers' ResNet returns only the final pooled vector; lookalike also needs
//! the layer3 feature map (see README, retrieval quality), so the network is defined here.
//! Weights load and fold with candle tensors; the convolutions and the max pool run as the
//! custom ops in [`super::conv`] (README, "Embedding speed", says why and by how much).
//! Folding each eval-mode batch norm into its convolution's weights and bias is exact up
//! to rounding and saves one pass over every activation map.

use std::time::Instant;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::{AvgPool, Conv, MaxPool, Winograd};

const BN_EPS: f64 = 1e-5;

/// A convolution's weights `(c_out, c_in, k, k)` and bias `(c_out)` with the eval-mode
/// batch norm after it folded in; shared by both ways of running the network.
pub(super) fn fold(
    (c_in, c_out, k): (usize, usize, usize),
    conv: VarBuilder,
    bn: VarBuilder,
) -> Result<(Tensor, Tensor)> {
    let w = conv.get((c_out, c_in, k, k), "weight")?;
    let gamma = bn.get(c_out, "weight")?;
    let beta = bn.get(c_out, "bias")?;
    let mean = bn.get(c_out, "running_mean")?;
    let var = bn.get(c_out, "running_var")?;
    let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
    let w = w.broadcast_mul(&scale.reshape((c_out, 1, 1, 1))?)?;
    let b = (beta - (mean * &scale)?)?;
    Ok((w, b))
}

/// A convolution followed by an eval-mode batch norm (and ReLU when `relu`), as one
/// packed convolution with bias; `winograd` as in [`Conv::new`].
fn conv_bn(
    (c_in, c_out, k): (usize, usize, usize),
    stride: usize,
    (relu, winograd): (bool, Option<Winograd>),
    conv: VarBuilder,
    bn: VarBuilder,
) -> Result<Conv> {
    let (w, b) = fold((c_in, c_out, k), conv, bn)?;
    Conv::new(&w.flatten_all()?.to_vec1()?, &b.to_vec1()?, (c_out, c_in, k), (stride, k / 2), relu, winograd)
}

/// Per-layer wall time of one forward pass, for `lookalike bench --layers`.
#[derive(Debug, Default)]
pub struct Profile {
    pub layers: Vec<LayerTime>,
}

#[derive(Debug)]
pub struct LayerTime {
    pub name: String,
    /// Multiply-adds per image (0 for layers that do none).
    pub macs: usize,
    pub seconds: f64,
}

impl Profile {
    /// Runs `f`, recording its time under `name` when profiling.
    fn time<T>(
        profile: &mut Option<&mut Profile>,
        name: &str,
        macs: usize,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let Some(p) = profile else { return f() };
        let started = Instant::now();
        let out = f()?;
        p.layers.push(LayerTime { name: name.to_string(), macs, seconds: started.elapsed().as_secs_f64() });
        Ok(out)
    }
}

struct Bottleneck {
    name: String,
    conv1: Conv,
    conv2: Conv,
    /// Takes the shortcut as its residual operand, added before the final ReLU.
    conv3: Conv,
    downsample: Option<Conv>,
}

impl Bottleneck {
    fn load(
        name: String,
        c_in: usize,
        width: usize,
        stride: usize,
        winograd: Option<Winograd>,
        vb: VarBuilder,
    ) -> Result<Bottleneck> {
        let out = 4 * width;
        let downsample = if stride != 1 || c_in != out {
            Some(conv_bn((c_in, out, 1), stride, (false, None), vb.pp("downsample.0"), vb.pp("downsample.1"))?)
        } else {
            None
        };
        Ok(Bottleneck {
            name,
            conv1: conv_bn((c_in, width, 1), 1, (true, None), vb.pp("conv1"), vb.pp("bn1"))?,
            conv2: conv_bn((width, width, 3), stride, (true, winograd), vb.pp("conv2"), vb.pp("bn2"))?,
            conv3: conv_bn((width, out, 1), 1, (true, None), vb.pp("conv3"), vb.pp("bn3"))?,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor, profile: &mut Option<&mut Profile>) -> Result<Tensor> {
        let side = x.dim(1)?;
        let mid = self.conv2.out_side(side);
        let n = &self.name;
        let y =
            Profile::time(profile, &format!("{n}.conv1"), self.conv1.macs(side), || x.apply_op1_no_bwd(&self.conv1))?;
        let y =
            Profile::time(profile, &format!("{n}.conv2"), self.conv2.macs(side), || y.apply_op1_no_bwd(&self.conv2))?;
        let shortcut = match &self.downsample {
            Some(d) => Profile::time(profile, &format!("{n}.downsample"), d.macs(side), || x.apply_op1_no_bwd(d))?,
            None => x.clone(),
        };
        Profile::time(profile, &format!("{n}.conv3"), self.conv3.macs(mid), || {
            y.apply_op2_no_bwd(&shortcut, &self.conv3)
        })
    }
}

/// `winograd`: which Winograd form the stride-1 3x3 convolutions take (interleaved A/B,
/// batch 1, time per image). layer1: F(2x2), 2.8% faster than direct (F(4x4) 1.6%).
/// layer2: F(4x4), 0.7% faster than F(2x2) (its 28x28 maps are 7x7 whole tiles). layer3:
/// F(2x2); F(4x4) no gain measured (its 14x14 maps leave a quarter of the 4x4 tiles'
/// outputs unused, and the transformed weights, 36 values per 9, are 4.7 MB per
/// convolution). Not in layer4: its 7x7 maps leave a third of the 2x2 tiles' outputs
/// unused, and the transformed weights are read once per image at batch 1 (no gain
/// measured).
fn stage(stage: &Stage, winograd: Option<Winograd>, vb: VarBuilder) -> Result<Vec<Bottleneck>> {
    let name = stage.name;
    stage
        .inputs()
        .map(|(i, c, s)| Bottleneck::load(format!("{name}.{i}"), c, stage.width, s, winograd, vb.pp(i)))
        .collect()
}

/// One stage of torchvision's ResNet50: `blocks` bottlenecks of `width` (4 x width out).
pub(super) struct Stage {
    pub name: &'static str,
    pub c_in: usize,
    pub width: usize,
    pub stride: usize,
    pub blocks: usize,
}

impl Stage {
    /// Each block's index, input channels and stride: only the first one changes either.
    pub fn inputs(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..self.blocks).map(|i| if i == 0 { (i, self.c_in, self.stride) } else { (i, 4 * self.width, 1) })
    }
}

pub(super) const STAGES: [Stage; 4] = [
    Stage { name: "layer1", c_in: 64, width: 64, stride: 1, blocks: 3 },
    Stage { name: "layer2", c_in: 256, width: 128, stride: 2, blocks: 4 },
    Stage { name: "layer3", c_in: 512, width: 256, stride: 2, blocks: 6 },
    Stage { name: "layer4", c_in: 1024, width: 512, stride: 2, blocks: 3 },
];

/// The Winograd form of each stage's 3x3 convolutions (see [`stage`]).
const WINOGRAD: [Option<Winograd>; 4] = [Some(Winograd::F2), Some(Winograd::F4), Some(Winograd::F2), None];

pub struct ResNet50 {
    stem: Conv,
    layers: [Vec<Bottleneck>; 4],
}

/// Global average pools of the two last stages: layer4 (2048 channels) and layer3 (1024).
pub struct Pooled {
    pub layer4: Tensor,
    pub layer3: Tensor,
}

impl ResNet50 {
    pub fn load(vb: VarBuilder) -> Result<ResNet50> {
        let [l1, l2, l3, l4] = [0, 1, 2, 3].map(|i| stage(&STAGES[i], WINOGRAD[i], vb.pp(STAGES[i].name)));
        Ok(ResNet50 {
            stem: conv_bn((3, 64, 7), 2, (true, None), vb.pp("conv1"), vb.pp("bn1"))?,
            layers: [l1?, l2?, l3?, l4?],
        })
    }

    /// `x`: images as NHWC; records per-layer times into `profile` when given.
    ///
    /// Images go through the stem and the first three stages one at a time, so their
    /// activations stay in cache (batched, layer1 alone is 13 MB per image and tensor);
    /// layer4 runs on the whole batch, whose large weights are then read once per batch.
    pub fn forward(&self, x: &Tensor, mut profile: Option<&mut Profile>) -> Result<Pooled> {
        let p = &mut profile;
        let side = x.dim(1)?;
        let (mut maps, mut pools) = (Vec::new(), Vec::new());
        for i in 0..x.dim(0)? {
            let x = x.narrow(0, i, 1)?;
            let x = Profile::time(p, "stem", self.stem.macs(side), || x.apply_op1_no_bwd(&self.stem))?;
            let mut x = Profile::time(p, "maxpool", 0, || x.apply_op1_no_bwd(&MaxPool))?;
            for b in self.layers[..3].iter().flatten() {
                x = b.forward(&x, p)?;
            }
            pools.push(Profile::time(p, "layer3.pool", 0, || x.apply_op1_no_bwd(&AvgPool))?);
            maps.push(x);
        }
        let mut x = Tensor::cat(&maps, 0)?;
        for b in &self.layers[3] {
            x = b.forward(&x, p)?;
        }
        let layer4 = Profile::time(p, "layer4.pool", 0, || x.apply_op1_no_bwd(&AvgPool))?;
        Ok(Pooled { layer4, layer3: Tensor::cat(&pools, 0)? })
    }
}
