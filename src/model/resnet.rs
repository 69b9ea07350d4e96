//! The torchvision ResNet50 encoder with batch norm folded into the convolutions at load.
//!
//! candle-transformers' ResNet returns only the final pooled vector; lookalike also needs
//! the layer3 feature map (see README, retrieval quality), so the network is defined here.
//! Folding each eval-mode batch norm into its convolution's weights and bias is exact up
//! to rounding and saves one pass over every activation map.

use candle_core::{Result, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

const BN_EPS: f64 = 1e-5;

/// A convolution followed by an eval-mode batch norm, as one convolution with bias.
fn conv_bn(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
    conv: VarBuilder,
    bn: VarBuilder,
) -> Result<Conv2d> {
    let w = conv.get((c_out, c_in, k, k), "weight")?;
    let gamma = bn.get(c_out, "weight")?;
    let beta = bn.get(c_out, "bias")?;
    let mean = bn.get(c_out, "running_mean")?;
    let var = bn.get(c_out, "running_var")?;
    let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
    let w = w.broadcast_mul(&scale.reshape((c_out, 1, 1, 1))?)?;
    let b = (beta - (mean * &scale)?)?;
    Ok(Conv2d::new(w, Some(b), Conv2dConfig { stride, padding, ..Default::default() }))
}

struct Bottleneck {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    downsample: Option<Conv2d>,
}

impl Bottleneck {
    fn load(c_in: usize, width: usize, stride: usize, vb: VarBuilder) -> Result<Bottleneck> {
        let out = 4 * width;
        let downsample = if stride != 1 || c_in != out {
            Some(conv_bn(c_in, out, 1, stride, 0, vb.pp("downsample.0"), vb.pp("downsample.1"))?)
        } else {
            None
        };
        Ok(Bottleneck {
            conv1: conv_bn(c_in, width, 1, 1, 0, vb.pp("conv1"), vb.pp("bn1"))?,
            conv2: conv_bn(width, width, 3, stride, 1, vb.pp("conv2"), vb.pp("bn2"))?,
            conv3: conv_bn(width, out, 1, 1, 0, vb.pp("conv3"), vb.pp("bn3"))?,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.apply(&self.conv1)?.relu()?.apply(&self.conv2)?.relu()?.apply(&self.conv3)?;
        let shortcut = match &self.downsample {
            Some(d) => x.apply(d)?,
            None => x.clone(),
        };
        (y + shortcut)?.relu()
    }
}

fn stage(c_in: usize, width: usize, stride: usize, blocks: usize, vb: VarBuilder) -> Result<Vec<Bottleneck>> {
    (0..blocks)
        .map(|i| {
            let (c, s) = if i == 0 { (c_in, stride) } else { (4 * width, 1) };
            Bottleneck::load(c, width, s, vb.pp(i))
        })
        .collect()
}

pub struct ResNet50 {
    stem: Conv2d,
    layers: [Vec<Bottleneck>; 4],
}

/// Global average pools of the two last stages: layer4 (2048 channels) and layer3 (1024).
pub struct Pooled {
    pub layer4: Tensor,
    pub layer3: Tensor,
}

impl ResNet50 {
    pub fn load(vb: VarBuilder) -> Result<ResNet50> {
        Ok(ResNet50 {
            stem: conv_bn(3, 64, 7, 2, 3, vb.pp("conv1"), vb.pp("bn1"))?,
            layers: [
                stage(64, 64, 1, 3, vb.pp("layer1"))?,
                stage(256, 128, 2, 4, vb.pp("layer2"))?,
                stage(512, 256, 2, 6, vb.pp("layer3"))?,
                stage(1024, 512, 2, 3, vb.pp("layer4"))?,
            ],
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Pooled> {
        let mut x = x
            .apply(&self.stem)?
            .relu()?
            .pad_with_same(D::Minus1, 1, 1)?
            .pad_with_same(D::Minus2, 1, 1)?
            .max_pool2d_with_stride(3, 2)?;
        for b in self.layers[..3].iter().flatten() {
            x = b.forward(&x)?;
        }
        let layer3 = gap(&x)?;
        for b in &self.layers[3] {
            x = b.forward(&x)?;
        }
        Ok(Pooled { layer4: gap(&x)?, layer3 })
    }
}

fn gap(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}
