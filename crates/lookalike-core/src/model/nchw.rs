//! The same folded ResNet50 on candle's own ops (conv2d on NCHW), for devices the custom
//! NHWC kernels do not run on: CUDA. On the CPU it is slower than the NHWC kernels and
//! not used by the engine; tests run it there against them, so the code a GPU runs is
//! checked on every machine.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::resnet::{fold, Pooled, STAGES};

/// A convolution with its batch norm folded in, weights resident on the device.
struct ConvBn {
    weight: Tensor,
    /// `(1, c_out, 1, 1)`, broadcast over the batch and the map.
    bias: Tensor,
    stride: usize,
    pad: usize,
}

impl ConvBn {
    fn load(
        shape @ (_, c_out, k): (usize, usize, usize),
        stride: usize,
        conv: VarBuilder,
        bn: VarBuilder,
    ) -> Result<Self> {
        let (weight, bias) = fold(shape, conv, bn)?;
        Ok(ConvBn { weight, bias: bias.reshape((1, c_out, 1, 1))?, stride, pad: k / 2 })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.pad, self.stride, 1, 1)?.broadcast_add(&self.bias)
    }
}

struct Bottleneck {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
    downsample: Option<ConvBn>,
}

impl Bottleneck {
    fn load(c_in: usize, width: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let out = 4 * width;
        let downsample = if stride != 1 || c_in != out {
            Some(ConvBn::load((c_in, out, 1), stride, vb.pp("downsample.0"), vb.pp("downsample.1"))?)
        } else {
            None
        };
        Ok(Bottleneck {
            conv1: ConvBn::load((c_in, width, 1), 1, vb.pp("conv1"), vb.pp("bn1"))?,
            conv2: ConvBn::load((width, width, 3), stride, vb.pp("conv2"), vb.pp("bn2"))?,
            conv3: ConvBn::load((width, out, 1), 1, vb.pp("conv3"), vb.pp("bn3"))?,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward(x)?.relu()?;
        let y = self.conv2.forward(&y)?.relu()?;
        let y = self.conv3.forward(&y)?;
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        (y + shortcut)?.relu()
    }
}

pub struct ResNet50 {
    stem: ConvBn,
    layers: Vec<Vec<Bottleneck>>,
}

impl ResNet50 {
    /// Loads on the device `vb` was made for.
    pub fn load(vb: VarBuilder) -> Result<ResNet50> {
        let layers = STAGES
            .iter()
            .map(|stage| {
                stage.inputs().map(|(i, c, s)| Bottleneck::load(c, stage.width, s, vb.pp(stage.name).pp(i))).collect()
            })
            .collect::<Result<_>>()?;
        Ok(ResNet50 { stem: ConvBn::load((3, 64, 7), 2, vb.pp("conv1"), vb.pp("bn1"))?, layers })
    }

    /// `x`: images as NHWC on the device; the whole batch goes through each layer at once.
    pub fn forward(&self, x: &Tensor) -> Result<Pooled> {
        let x = x.permute((0, 3, 1, 2))?.contiguous()?;
        let x = self.stem.forward(&x)?.relu()?;
        // Max pool 3x3, stride 2, padding 1: after the ReLU every value is >= 0, so zero
        // padding gives what torchvision's -inf padding gives.
        let mut x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 2)?;
        let mut layer3 = None;
        for (i, stage) in self.layers.iter().enumerate() {
            for b in stage {
                x = b.forward(&x)?;
            }
            if i == 2 {
                layer3 = Some(x.mean((2, 3))?);
            }
        }
        let layer3 = layer3.expect("ResNet50 has four stages");
        Ok(Pooled { layer4: x.mean((2, 3))?, layer3 })
    }
}
