//! Convolution and max pooling on NHWC activations, as candle custom ops.
//!
//! candle's CPU conv2d copies every input into an im2col matrix, multiplies it with the
//! `gemm` crate (which packs the weights again on every call), transposes the result back
//! to NCHW, and then bias, ReLU and the residual add each make another full pass with a
//! fresh allocation. Here activations stay NHWC, so a pixel's channels are contiguous and
//! a convolution is a matrix product whose left operand (pixels x taps*channels) is never
//! materialised: the micro-kernel reads each pixel's channel run in place, with a zero
//! row standing in for padding. Weights are packed once at load into 16-column panels;
//! bias, residual and ReLU are applied while the output tile is still in registers.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape};
use half::f16;
use rayon::prelude::*;

/// Output rows (pixels) and columns (channels) per micro-kernel tile: 6 x 16 floats are
/// twelve 256-bit accumulators, leaving registers for two weight vectors and a broadcast.
const MR: usize = 6;
const NR: usize = 16;
/// Reduction steps per block: one 16-column weight panel of KC rows is 16 KiB of f16
/// (L1). 512 was 1.6% faster than 256 and level with 1024 (interleaved A/B).
const KC: usize = 512;
/// Column panels per block at a full KC-step reduction block: their weights (128 KiB)
/// stay in L2 while every row tile passes over them. Shorter reductions take
/// proportionally more panels, so that a row tile's output is written in fewer passes.
const NC_PANELS: usize = 8;

/// Inputs with fewer channels (the stem's 3) are padded explicitly so that a whole kernel
/// row is one contiguous run: per-tap runs of 3 floats would leave the kernel in loop
/// overhead.
const THIN_BELOW: usize = 16;

/// Zeros for padding reads: as long as any run read at once (a block's, or a Winograd
/// tile pixel's channels).
static ZEROS: [f32; KC] = [0.0; KC];

/// The Winograd form runs each chunk of tiles through all three steps in one task when
/// its transformed weights are at most this many bytes (re-reading them per chunk, mostly
/// from L2, costs less than moving whole-map intermediates through memory), and sizes
/// chunks so that a chunk's intermediates take this many floats.
const WINOGRAD_FUSED_WEIGHTS: usize = 512 << 10;
const WINOGRAD_CHUNK_FLOATS: usize = 64 << 10;

/// A convolution (square kernel, bias) with its weights packed for the micro-kernel
/// ([`Kernel`]).
#[derive(Debug)]
pub struct Conv {
    c_in: usize,
    c_out: usize,
    size: usize,
    stride: usize,
    pad: usize,
    relu: bool,
    weights: Weights,
    bias: Vec<f32>,
}

#[derive(Debug)]
enum Weights {
    /// `c_out / NR` panels, each `size * size * c_in` rows of NR floats; a row's index is
    /// `(ky * size + kx) * c_in + channel`, the order an NHWC pixel run is read in.
    Direct(Vec<u16>),
    /// Winograd F(m x m, 3x3): the (m + 2)^2 transformed kernels `G g G^T`, each packed
    /// like the weights of a 1x1 convolution (c_in rows per panel).
    Winograd(Winograd, Vec<u16>),
}

/// Packs a `k` x `c_out` matrix, `at(o, row)`, into NR-column panels of `k` rows, as
/// f16: the kernel widens each weight to f32 as it loads it and computes in f32. Half
/// the bytes matter because at batch 1 every weight is read from memory once per image
/// (100 MB in f32, more than the L3 cache); the rounding moves the embedding far less
/// than the ONNX Runtime reference's own differences do (README, Embedding speed).
fn pack(k: usize, c_out: usize, at: impl Fn(usize, usize) -> f32) -> Vec<u16> {
    let mut packed = vec![0u16; c_out * k];
    for o in 0..c_out {
        for row in 0..k {
            packed[(o / NR) * k * NR + row * NR + o % NR] = f16::from_f32(at(o, row)).to_bits();
        }
    }
    packed
}

/// A Winograd F(m x m, 3x3) convolution: each (m + 2) x (m + 2) input tile becomes
/// (m + 2)^2 values per channel (B^T d B), each of those is a matrix product with its
/// transformed kernel (G g G^T), and A^T p A turns the products back into an m x m output
/// tile. F(2x2) does 16 multiplies where direct needs 36 (2.25 times fewer), F(4x4) 36
/// where direct needs 144 (4 times fewer), at the price of larger transforms and larger
/// transformed weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winograd {
    F2,
    F4,
}

/// Kernel transforms G of F(2x2, 3x3) and F(4x4, 3x3) (Lavin and Gray, 2015); the
/// input and output transforms B^T and A^T are written out in [`bt2`], [`at2`], [`bt4`]
/// and [`at4`].
const G2: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
const G4: [[f32; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

impl Winograd {
    /// Output tile side m.
    fn m(self) -> usize {
        match self {
            Winograd::F2 => 2,
            Winograd::F4 => 4,
        }
    }

    /// Transformed values per tile and channel: (m + 2)^2.
    fn values(self) -> usize {
        (self.m() + 2).pow(2)
    }

    /// G g G^T of one 3x3 kernel `g` (row-major), value e at `e / (m + 2), e % (m + 2)`.
    fn kernel(self, g: &[f32]) -> Vec<f32> {
        fn transform<const N: usize>(gm: &[[f32; 3]; N], g: &[f32]) -> Vec<f32> {
            let gg: [[f32; 3]; N] =
                std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| gm[i][k] * g[k * 3 + j]).sum()));
            (0..N * N).map(|e| (0..3).map(|k| gg[e / N][k] * gm[e % N][k]).sum()).collect()
        }
        match self {
            Winograd::F2 => transform(&G2, g),
            Winograd::F4 => transform(&G4, g),
        }
    }
}

/// B^T d of F(2x2, 3x3): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
#[inline(always)]
fn bt2(d: &[Lanes; 4]) -> [Lanes; 4] {
    [
        lanes(|l| d[0][l] - d[2][l]),
        lanes(|l| d[1][l] + d[2][l]),
        lanes(|l| d[2][l] - d[1][l]),
        lanes(|l| d[1][l] - d[3][l]),
    ]
}

/// A^T m of F(2x2, 3x3): A^T = [1 1 1 0; 0 1 -1 -1].
#[inline(always)]
fn at2(m: &[Lanes; 4]) -> [Lanes; 2] {
    [lanes(|l| m[0][l] + m[1][l] + m[2][l]), lanes(|l| m[1][l] - m[2][l] - m[3][l])]
}

/// B^T d of F(4x4, 3x3): B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
/// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].
#[inline(always)]
fn bt4(d: &[Lanes; 6]) -> [Lanes; 6] {
    let a = lanes(|l| d[4][l] - 4.0 * d[2][l]);
    let b = lanes(|l| d[3][l] - 4.0 * d[1][l]);
    let c = lanes(|l| d[4][l] - d[2][l]);
    let e = lanes(|l| 2.0 * (d[3][l] - d[1][l]));
    [
        lanes(|l| 4.0 * d[0][l] - 5.0 * d[2][l] + d[4][l]),
        lanes(|l| a[l] + b[l]),
        lanes(|l| a[l] - b[l]),
        lanes(|l| c[l] + e[l]),
        lanes(|l| c[l] - e[l]),
        lanes(|l| 4.0 * d[1][l] - 5.0 * d[3][l] + d[5][l]),
    ]
}

/// A^T m of F(4x4, 3x3): A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
#[inline(always)]
fn at4(m: &[Lanes; 6]) -> [Lanes; 4] {
    let (sum12, dif12) = (lanes(|l| m[1][l] + m[2][l]), lanes(|l| m[1][l] - m[2][l]));
    let (sum34, dif34) = (lanes(|l| m[3][l] + m[4][l]), lanes(|l| m[3][l] - m[4][l]));
    [
        lanes(|l| m[0][l] + sum12[l] + sum34[l]),
        lanes(|l| dif12[l] + 2.0 * dif34[l]),
        lanes(|l| sum12[l] + 4.0 * sum34[l]),
        lanes(|l| dif12[l] + 8.0 * dif34[l] + m[5][l]),
    ]
}

/// T x T^T for a transform `t` (x -> T x on vectors): `t` applied to every column of
/// `x`, then to every row of the result.
#[inline(always)]
fn sandwich<const C: usize, const R: usize>(
    t: impl Fn(&[Lanes; C]) -> [Lanes; R],
    x: &[[Lanes; C]; C],
) -> [[Lanes; R]; R] {
    let cols: [[Lanes; R]; C] = build([[0.0; 8]; R], |j| t(&build([0.0; 8], |k| x[k][j])));
    build([[0.0; 8]; R], |i| t(&build([0.0; 8], |j| cols[j][i])))
}

/// Eight channels at a time, so the Winograd transforms compile to vector instructions.
type Lanes = [f32; 8];

#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    build(0.0, f)
}

/// `[f(0), f(1), ...]` by a plain loop: unlike `std::array::from_fn`, the nested arrays
/// of the Winograd transforms then reliably stay in registers instead of going through
/// calls and copies.
#[inline(always)]
fn build<T: Copy, const K: usize>(init: T, f: impl Fn(usize) -> T) -> [T; K] {
    let mut a = [init; K];
    for (i, v) in a.iter_mut().enumerate() {
        *v = f(i);
    }
    a
}

/// The first eight floats of `x` (one bounds check, one vector load).
#[inline(always)]
fn load(x: &[f32]) -> Lanes {
    x[..8].try_into().expect("eight lanes")
}

impl Conv {
    /// Packs `weight` (PyTorch layout: out, in, ky, kx) and `bias`. `winograd` asks for
    /// that Winograd form, used when the convolution is 3x3, stride 1, padding 1, with at
    /// most KC input channels in multiples of 8.
    pub fn new(
        weight: &[f32],
        bias: &[f32],
        (c_out, c_in, size): (usize, usize, usize),
        (stride, pad): (usize, usize),
        relu: bool,
        winograd: Option<Winograd>,
    ) -> Result<Conv> {
        if c_out % NR != 0 || weight.len() != c_out * c_in * size * size || bias.len() != c_out {
            candle_core::bail!("conv weights {c_out}x{c_in}x{size}x{size}: output channels must be a multiple of {NR}");
        }
        let taps = size * size;
        let weights = if let Some(w) =
            winograd.filter(|_| size == 3 && stride == 1 && pad == 1 && c_in % 8 == 0 && c_in <= ZEROS.len())
        {
            let u: Vec<Vec<f32>> = weight.chunks(taps).map(|g| w.kernel(g)).collect();
            Weights::Winograd(w, (0..w.values()).flat_map(|e| pack(c_in, c_out, |o, c| u[o * c_in + c][e])).collect())
        } else {
            Weights::Direct(pack(taps * c_in, c_out, |o, row| weight[(o * c_in + row % c_in) * taps + row / c_in]))
        };
        Ok(Conv { c_in, c_out, size, stride, pad, relu, weights, bias: bias.to_vec() })
    }

    pub fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.pad - self.size) / self.stride + 1
    }

    /// Multiply-adds for one image of `side` x `side` input pixels, as a direct
    /// convolution does them (the Winograd form does fewer).
    pub fn macs(&self, side: usize) -> usize {
        self.out_side(side).pow(2) * self.c_out * self.c_in * self.size * self.size
    }

    /// `x`: n x side x side x c_in, NHWC; `residual`, if any, has the output's shape.
    fn run(&self, x: &[f32], n: usize, side: usize, residual: Option<&[f32]>) -> Vec<f32> {
        match &self.weights {
            Weights::Direct(packed) => self.direct(packed, x, n, side, residual),
            Weights::Winograd(Winograd::F2, packed) => self.winograd(bt2, at2, packed, x, n, side, residual),
            Weights::Winograd(Winograd::F4, packed) => self.winograd(bt4, at4, packed, x, n, side, residual),
        }
    }

    fn direct(&self, packed: &[u16], x: &[f32], n: usize, side: usize, residual: Option<&[f32]>) -> Vec<f32> {
        let out_side = self.out_side(side);
        let m = n * out_side * out_side;
        let padded;
        let (x, geometry) = if self.c_in < THIN_BELOW {
            padded = pad(x, n, side, self.c_in, self.pad);
            let wide = side + 2 * self.pad;
            let run = self.size * self.c_in;
            (
                &padded[..],
                Geometry { side: wide, out_side, stride: self.stride, pad: 0, size: self.size, c_in: self.c_in, run },
            )
        } else {
            let run = self.c_in;
            (x, Geometry { side, out_side, stride: self.stride, pad: self.pad, size: self.size, c_in: self.c_in, run })
        };
        let panels = self.c_out / NR;
        // Split whichever operand is larger across threads, so each thread streams only
        // its share of it: pixels in early layers, output channels in late ones.
        let pieces = rayon::current_num_threads() * 4;
        let tasks: Vec<(Range<usize>, Range<usize>)> = if panels * NR > m {
            let step = panels.div_ceil(pieces).max(1);
            (0..panels).step_by(step).map(|p| (0..m, p..(p + step).min(panels))).collect()
        } else {
            let step = m.div_ceil(pieces).next_multiple_of(MR);
            (0..m).step_by(step).map(|r| (r..(r + step).min(m), 0..panels)).collect()
        };
        let mut out = Uninit::new(m * self.c_out);
        let product = Product {
            x,
            geometry,
            packed,
            bias: &self.bias,
            relu: self.relu,
            residual: residual.map(|r| SendPtr(r.as_ptr() as *mut f32)),
            out: out.ptr(),
            c_out: self.c_out,
        };
        let kernel = kernel_for_cpu();
        tasks.into_par_iter().for_each(|(rows, panels)| product.compute(rows, panels, kernel));
        // SAFETY: the tasks wrote every row x panel of the output.
        unsafe { out.assume_written() }
    }

    /// The Winograd form ([`Winograd`]) with input transform `bt` and output transform
    /// `at`: input tiles of N x N pixels, output tiles of M x M.
    ///
    /// When the transformed weights are small, each task takes a chunk of tiles through
    /// all three steps with the intermediates in its own cache; otherwise each step runs
    /// over all tiles, so the weights are read once.
    #[allow(clippy::too_many_arguments)]
    fn winograd<const N: usize, const M: usize>(
        &self,
        bt: impl Fn(&[Lanes; N]) -> [Lanes; N] + Copy + Sync,
        at: impl Fn(&[Lanes; N]) -> [Lanes; M] + Copy + Sync,
        packed: &[u16],
        x: &[f32],
        n: usize,
        side: usize,
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        let (c_in, c_out, values) = (self.c_in, self.c_out, N * N);
        let per_side = side.div_ceil(M);
        let tiles = Tiles { n, side, per_side, m: M };
        let count = n * per_side * per_side;
        let kernel = kernel_for_cpu();
        let zero_bias = vec![0f32; c_out];
        // Product e: the rows x c_in matrix e of `v` times transformed kernel e, into `m`.
        let product = |v: &[f32], rows: usize, m: SendPtr, e: usize| {
            Product {
                x: &v[e * rows * c_in..][..rows * c_in],
                geometry: Geometry { side: 1, out_side: 1, stride: 1, pad: 0, size: 1, c_in, run: c_in },
                packed: &packed[e * c_in * c_out..][..c_in * c_out],
                bias: &zero_bias,
                relu: false,
                residual: None,
                out: SendPtr(m.get().wrapping_add(e * rows * c_out)),
                c_out,
            }
            .compute(0..rows, 0..c_out / NR, kernel)
        };
        let mut out = Uninit::new(n * side * side * c_out);
        let op = out.ptr();

        if std::mem::size_of_val(packed) <= WINOGRAD_FUSED_WEIGHTS {
            let chunk = (WINOGRAD_CHUNK_FLOATS / (values * (c_in + c_out))).next_multiple_of(MR).max(MR);
            (0..count.div_ceil(chunk)).into_par_iter().for_each(|i| {
                let range = i * chunk..((i + 1) * chunk).min(count);
                let rows = range.len();
                let mut v = Uninit::new(values * rows * c_in);
                self.winograd_in(bt, x, &tiles, range.clone(), v.ptr(), rows);
                // SAFETY: winograd_in wrote every tile's row of all N * N matrices.
                let v = unsafe { v.assume_written() };
                let mut m = Uninit::new(values * rows * c_out);
                for e in 0..values {
                    product(&v, rows, m.ptr(), e);
                }
                // SAFETY: each of the N * N products wrote its whole rows x c_out matrix.
                let m = unsafe { m.assume_written() };
                self.winograd_out(at, &m, &tiles, range, rows, residual, op);
            });
        } else {
            let mut v = Uninit::new(values * count * c_in);
            let vp = v.ptr();
            (0..count).into_par_iter().for_each(|t| {
                self.winograd_in(bt, x, &tiles, t..t + 1, SendPtr(vp.get().wrapping_add(t * c_in)), count)
            });
            // SAFETY: every tile wrote its row of all N * N matrices.
            let v = unsafe { v.assume_written() };
            let mut m = Uninit::new(values * count * c_out);
            let mp = m.ptr();
            (0..values).into_par_iter().for_each(|e| product(&v, count, mp, e));
            // SAFETY: each of the N * N products wrote its whole tiles x c_out matrix.
            let m = unsafe { m.assume_written() };
            (0..count)
                .into_par_iter()
                .for_each(|t| self.winograd_out(at, &m[t * c_out..], &tiles, t..t + 1, count, residual, op));
        }
        // SAFETY: the tiles cover every output pixel (side <= M * per_side).
        unsafe { out.assume_written() }
    }

    /// B^T d B of the tiles `range` into `v`: value e of the range's i-th tile goes to row
    /// `e * stride + i` (rows of c_in floats).
    fn winograd_in<const N: usize>(
        &self,
        bt: impl Fn(&[Lanes; N]) -> [Lanes; N] + Copy,
        x: &[f32],
        tiles: &Tiles,
        range: Range<usize>,
        v: SendPtr,
        stride: usize,
    ) {
        let (c_in, side) = (self.c_in, tiles.side);
        for (i, t) in range.enumerate() {
            let (img, y0, x0) = tiles.origin(t);
            let d: [[&[f32]; N]; N] = build([&[][..]; N], |a| {
                build(&[][..], |b| {
                    let (y, x_) = ((y0 + a).wrapping_sub(1), (x0 + b).wrapping_sub(1));
                    if y < side && x_ < side {
                        &x[((img * side + y) * side + x_) * c_in..][..c_in]
                    } else {
                        &ZEROS[..c_in]
                    }
                })
            });
            for c in (0..c_in).step_by(8) {
                let d: [[Lanes; N]; N] = build([[0.0; 8]; N], |a| build([0.0; 8], |b| load(&d[a][b][c..])));
                for (a, row) in sandwich(bt, &d).iter().enumerate() {
                    for (b, value) in row.iter().enumerate() {
                        // SAFETY: the caller gives each task its own rows of `v`.
                        unsafe { v.write(((a * N + b) * stride + i) * c_in + c, value) };
                    }
                }
            }
        }
    }

    /// A^T p A of the tiles `range` (row `e * stride + i` of `p` for the range's i-th
    /// tile), plus bias, residual and ReLU, into their output pixels.
    #[allow(clippy::too_many_arguments)]
    fn winograd_out<const N: usize, const M: usize>(
        &self,
        at: impl Fn(&[Lanes; N]) -> [Lanes; M] + Copy,
        p: &[f32],
        tiles: &Tiles,
        range: Range<usize>,
        stride: usize,
        residual: Option<&[f32]>,
        out: SendPtr,
    ) {
        let (c_out, side) = (self.c_out, tiles.side);
        for (i, t) in range.enumerate() {
            let (img, y0, x0) = tiles.origin(t);
            for c in (0..c_out).step_by(8) {
                let p: [[Lanes; N]; N] =
                    build([[0.0; 8]; N], |a| build([0.0; 8], |b| load(&p[((a * N + b) * stride + i) * c_out + c..])));
                for (a, row) in sandwich(at, &p).iter().enumerate() {
                    for (b, value) in row.iter().enumerate() {
                        let (y, x_) = (y0 + a, x0 + b);
                        if y < side && x_ < side {
                            let px = ((img * side + y) * side + x_) * c_out + c;
                            let (bias, res) = (load(&self.bias[c..]), residual.map_or([0.0; 8], |r| load(&r[px..])));
                            let mut value = lanes(|l| value[l] + bias[l] + res[l]);
                            if self.relu {
                                value = lanes(|l| value[l].max(0.0));
                            }
                            // SAFETY: tiles cover disjoint output pixels.
                            unsafe { out.write(px, &value) };
                        }
                    }
                }
            }
        }
    }
}

/// Where the m x m output tiles of an n x side x side map start.
struct Tiles {
    n: usize,
    side: usize,
    per_side: usize,
    m: usize,
}

impl Tiles {
    /// Image, row and column of tile `t`'s top-left output pixel.
    fn origin(&self, t: usize) -> (usize, usize, usize) {
        let per_image = self.per_side * self.per_side;
        debug_assert!(t < self.n * per_image);
        (t / per_image, self.m * (t / self.per_side % self.per_side), self.m * (t % self.per_side))
    }
}

/// An output buffer filled by parallel tasks through raw pointers before it is read, so
/// it is not zeroed first (that would be one more pass over it).
struct Uninit(Vec<f32>);

impl Uninit {
    fn new(len: usize) -> Uninit {
        Uninit(Vec::with_capacity(len))
    }

    fn ptr(&mut self) -> SendPtr {
        SendPtr(self.0.spare_capacity_mut().as_mut_ptr().cast())
    }

    /// SAFETY: every element must have been written through [`Uninit::ptr`].
    unsafe fn assume_written(mut self) -> Vec<f32> {
        let len = self.0.capacity();
        self.0.set_len(len);
        self.0
    }
}

/// One matrix product: the rows `geometry` reads from `x` times the `packed` weights,
/// plus bias (and residual, ReLU), into `out` (rows of `c_out`).
struct Product<'a> {
    x: &'a [f32],
    geometry: Geometry,
    packed: &'a [u16],
    bias: &'a [f32],
    relu: bool,
    residual: Option<SendPtr>,
    out: SendPtr,
    c_out: usize,
}

impl Product<'_> {
    /// Output rows `rows` x column panels `panels`, on the calling thread.
    fn compute(&self, rows: Range<usize>, panels: Range<usize>, kernel: Kernel) {
        let g = &self.geometry;
        let k_total = g.taps() * g.run;
        let blocks = g.blocks();
        let block_len = blocks[0].taps.len() * blocks[0].run.len();
        let nc = NC_PANELS * KC / block_len;
        let mut segments: Vec<[*const f32; MR]> = Vec::with_capacity(g.taps());
        for panel_block in panels.clone().step_by(nc) {
            let panel_block = panel_block..(panel_block + nc).min(panels.end);
            for (b, block) in blocks.iter().enumerate() {
                let k0 = block.taps.start * g.run + block.run.start;
                let epilogue = Epilogue {
                    first: b == 0,
                    last: b + 1 == blocks.len(),
                    relu: self.relu,
                    residual: self.residual.is_some(),
                };
                for r0 in rows.clone().step_by(MR) {
                    let live = (rows.end - r0).min(MR);
                    g.rows(self.x, r0, live, block, &mut segments);
                    let (p, at) = (panel_block.start, r0 * self.c_out + panel_block.start * NR);
                    let tile = Tile {
                        segments: &segments,
                        len: block.run.len(),
                        weights: self.packed[p * k_total * NR + k0 * NR..].as_ptr(),
                        panel_stride: k_total * NR,
                        panels: panel_block.len(),
                        bias: self.bias[p * NR..].as_ptr(),
                        residual: self.residual.map_or(std::ptr::null(), |r| r.get().wrapping_add(at)),
                        out: self.out.get().wrapping_add(at),
                        ldc: self.c_out,
                        live,
                        epilogue,
                    };
                    // SAFETY: callers hand disjoint rows x panels of `out` to each task;
                    // the segment pointers address `x` or ZEROS for the block.
                    unsafe { kernel(&tile) }
                }
            }
        }
    }
}

/// `x` (n x side x side x c) with `pad` zero pixels around each image.
fn pad(x: &[f32], n: usize, side: usize, c: usize, pad: usize) -> Vec<f32> {
    let wide = side + 2 * pad;
    let mut out = vec![0f32; n * wide * wide * c];
    for (i, src) in x.chunks(side * c).enumerate() {
        let (img, y) = (i / side, i % side);
        out[((img * wide + y + pad) * wide + pad) * c..][..side * c].copy_from_slice(src);
    }
    out
}

struct Block {
    taps: Range<usize>,
    /// Floats within each tap's run.
    run: Range<usize>,
}

struct Geometry {
    side: usize,
    out_side: usize,
    stride: usize,
    pad: usize,
    size: usize,
    c_in: usize,
    /// Floats read contiguously per tap: a pixel's channels, or a whole kernel row of
    /// pixels when the input was padded explicitly (then a tap is a kernel row).
    run: usize,
}

impl Geometry {
    /// Reduction blocks: groups of whole taps when a tap's run fits in KC, otherwise
    /// KC-float slices of one tap; either way a contiguous range of packed rows. Whole
    /// taps are shared out evenly and a block may exceed KC by a quarter: a 3x3 kernel
    /// over 64 channels is one block, not 8 taps and then a second pass for the ninth.
    fn blocks(&self) -> Vec<Block> {
        let (taps, run) = (self.taps(), self.run);
        if run >= KC {
            (0..taps)
                .flat_map(|t| (0..run).step_by(KC).map(move |c0| Block { taps: t..t + 1, run: c0..(c0 + KC).min(run) }))
                .collect()
        } else {
            let blocks = (taps * run).div_ceil(KC + KC / 4);
            let per = taps.div_ceil(blocks);
            (0..taps).step_by(per).map(|t0| Block { taps: t0..(t0 + per).min(taps), run: 0..run }).collect()
        }
    }

    fn taps(&self) -> usize {
        self.size * self.size * self.c_in / self.run
    }

    /// For output pixels `r0..r0 + live`, one pointer per row and tap of `block` to the
    /// run it reads; padding and rows past the end read zeros.
    fn rows(&self, x: &[f32], r0: usize, live: usize, block: &Block, segments: &mut Vec<[*const f32; MR]>) {
        segments.clear();
        if self.size == 1 && self.stride == 1 && self.pad == 0 {
            // A pointwise convolution's rows are the input's pixels: no index arithmetic.
            let mut seg = [ZEROS.as_ptr(); MR];
            for (r, ptr) in seg.iter_mut().enumerate().take(live) {
                *ptr = x[(r0 + r) * self.c_in + block.run.start..].as_ptr();
            }
            segments.push(seg);
            return;
        }
        let per_image = self.out_side * self.out_side;
        let taps_per_row = self.taps() / self.size;
        for t in block.taps.clone() {
            let (ky, kx) = (t / taps_per_row, t % taps_per_row);
            let mut seg = [ZEROS.as_ptr(); MR];
            for (r, ptr) in seg.iter_mut().enumerate().take(live) {
                let q = r0 + r;
                let (img, pix) = (q / per_image, q % per_image);
                let iy = (pix / self.out_side * self.stride + ky) as isize - self.pad as isize;
                let ix = (pix % self.out_side * self.stride + kx) as isize - self.pad as isize;
                if (0..self.side as isize).contains(&iy) && (0..self.side as isize).contains(&ix) {
                    let pixel = (img * self.side + iy as usize) * self.side + ix as usize;
                    *ptr = x[pixel * self.c_in + block.run.start..].as_ptr();
                }
            }
            segments.push(seg);
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint tiles of one buffer to rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    // A method, so closures capture the wrapper rather than its raw pointer field.
    fn get(self) -> *mut f32 {
        self.0
    }

    /// SAFETY: `at..at + 8` must be inside the buffer and written by no other task.
    unsafe fn write(self, at: usize, value: &Lanes) {
        std::ptr::copy_nonoverlapping(value.as_ptr(), self.0.add(at), value.len());
    }
}

#[derive(Clone, Copy)]
pub struct Epilogue {
    /// Start from the bias instead of the partial sums already in the tile.
    first: bool,
    /// Add the residual and apply ReLU after this block.
    last: bool,
    relu: bool,
    residual: bool,
}

/// One row tile's share of a reduction block: `live` output rows times `panels` column
/// panels. Each panel's MR x NR tile accumulates over `segments` (MR row pointers each,
/// reading `len` floats) against `len * segments.len()` packed weight rows; the kernel
/// writes `live` rows of it. The panels are looped inside the kernel, so that a row tile
/// costs one call rather than one per panel.
struct Tile<'a> {
    segments: &'a [[*const f32; MR]],
    len: usize,
    /// The first panel's weight rows for this block; the next panel's are `panel_stride`
    /// further.
    weights: *const u16,
    panel_stride: usize,
    panels: usize,
    /// The first panel's bias, residual (null without one) and output; the next panel's
    /// are NR floats further, a row's `ldc` floats further.
    bias: *const f32,
    residual: *const f32,
    out: *mut f32,
    ldc: usize,
    live: usize,
    epilogue: Epilogue,
}

impl Tile<'_> {
    /// Panel `p`'s weight rows, bias, residual and output.
    ///
    /// SAFETY: `p` must be below `panels`.
    unsafe fn panel(&self, p: usize) -> (*const u16, *const f32, *const f32, *mut f32) {
        let at = p * NR;
        (self.weights.add(p * self.panel_stride), self.bias.add(at), self.residual.wrapping_add(at), self.out.add(at))
    }
}

type Kernel = unsafe fn(&Tile);

fn kernel_for_cpu() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
    {
        return kernel_avx2;
    }
    kernel_portable
}

/// The reference micro-kernel, for CPUs without AVX2 + FMA (and to test the fast one).
unsafe fn kernel_portable(t: &Tile) {
    let e = t.epilogue;
    for p in 0..t.panels {
        let (mut b, bias, residual, c) = t.panel(p);
        let mut acc = [[0f32; NR]; MR];
        for (r, row) in acc.iter_mut().enumerate().take(t.live) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if e.first { *bias.add(j) } else { *c.add(r * t.ldc + j) };
            }
        }
        for seg in t.segments {
            for i in 0..t.len {
                let w: [f32; NR] = std::array::from_fn(|j| f16::from_bits(*b.add(j)).to_f32());
                for (r, row) in acc.iter_mut().enumerate() {
                    let a = *seg[r].add(i);
                    for (v, w) in row.iter_mut().zip(&w) {
                        *v += a * w;
                    }
                }
                b = b.add(NR);
            }
        }
        for (r, row) in acc.iter().enumerate().take(t.live) {
            for (j, &v) in row.iter().enumerate() {
                let mut v = v;
                if e.last && e.residual {
                    v += *residual.add(r * t.ldc + j);
                }
                if e.last && e.relu {
                    v = v.max(0.0);
                }
                *c.add(r * t.ldc + j) = v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kernel_avx2(t: &Tile) {
    // A tile with fewer live rows (the last one of a map, e.g. row 49 of a 7x7 one) does
    // only their multiply-adds instead of a full tile's.
    match t.live {
        1 => tile_avx2::<1>(t),
        2 => tile_avx2::<2>(t),
        3 => tile_avx2::<3>(t),
        4 => tile_avx2::<4>(t),
        5 => tile_avx2::<5>(t),
        _ => tile_avx2::<MR>(t),
    }
}

/// [`kernel_avx2`] for `R` live rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_avx2<const R: usize>(t: &Tile) {
    use std::arch::x86_64::*;
    let (e, ldc) = (t.epilogue, t.ldc);
    let zero = _mm256_setzero_ps();
    for p in 0..t.panels {
        let (mut b, bias, residual, c) = t.panel(p);
        // The residual and the output lines are touched only after the reduction: ask
        // for them now, so that their misses overlap it instead of stalling the store.
        if e.last {
            for r in 0..R {
                if e.residual {
                    _mm_prefetch::<_MM_HINT_T0>(residual.add(r * ldc).cast());
                }
                _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc).cast());
            }
        }
        let mut acc: [[__m256; 2]; R] = std::array::from_fn(|r| {
            let src = if e.first { bias } else { c.add(r * ldc) };
            [_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8))]
        });
        for seg in t.segments {
            let a: [*const f32; R] = std::array::from_fn(|r| seg[r]);
            for i in 0..t.len {
                let w0 = _mm256_cvtph_ps(_mm_loadu_si128(b.cast()));
                let w1 = _mm256_cvtph_ps(_mm_loadu_si128(b.add(8).cast()));
                b = b.add(NR);
                for (row, a) in acc.iter_mut().zip(&a) {
                    let v = _mm256_broadcast_ss(&*a.add(i));
                    row[0] = _mm256_fmadd_ps(v, w0, row[0]);
                    row[1] = _mm256_fmadd_ps(v, w1, row[1]);
                }
            }
        }
        for (r, row) in acc.iter_mut().enumerate() {
            if e.last && e.residual {
                row[0] = _mm256_add_ps(row[0], _mm256_loadu_ps(residual.add(r * ldc)));
                row[1] = _mm256_add_ps(row[1], _mm256_loadu_ps(residual.add(r * ldc + 8)));
            }
            if e.last && e.relu {
                row[0] = _mm256_max_ps(row[0], zero);
                row[1] = _mm256_max_ps(row[1], zero);
            }
            _mm256_storeu_ps(c.add(r * ldc), row[0]);
            _mm256_storeu_ps(c.add(r * ldc + 8), row[1]);
        }
    }
}

/// The slice of a contiguous f32 tensor with its dims.
fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<(&'a [f32], Vec<usize>)> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{what}: expected f32") };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what}: expected a contiguous tensor")
    };
    Ok((&data[start..end], layout.dims().to_vec()))
}

impl Conv {
    fn check(&self, dims: &[usize]) -> Result<(usize, usize)> {
        match *dims {
            [n, h, w, c] if h == w && c == self.c_in && h + 2 * self.pad >= self.size => Ok((n, h)),
            _ => candle_core::bail!(
                "conv {}x{}: input {dims:?} is not square NHWC with {} channels",
                self.size,
                self.size,
                self.c_in
            ),
        }
    }

    fn output(&self, out: Vec<f32>, n: usize, side: usize) -> (CpuStorage, Shape) {
        let s = self.out_side(side);
        (CpuStorage::F32(out), Shape::from((n, s, s, self.c_out)))
    }
}

impl CustomOp1 for Conv {
    fn name(&self) -> &'static str {
        "conv-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, dims) = contiguous(storage, layout, "conv input")?;
        let (n, side) = self.check(&dims)?;
        Ok(self.output(self.run(x, n, side, None), n, side))
    }
}

/// The convolution with a residual (second operand, the output's shape) added before ReLU.
impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv-nhwc-residual"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, dims) = contiguous(s1, l1, "conv input")?;
        let (n, side) = self.check(&dims)?;
        let (residual, r_dims) = contiguous(s2, l2, "conv residual")?;
        let s = self.out_side(side);
        if r_dims != [n, s, s, self.c_out] {
            candle_core::bail!("conv residual {r_dims:?} does not match the output {:?}", [n, s, s, self.c_out]);
        }
        Ok(self.output(self.run(x, n, side, Some(residual)), n, side))
    }
}

/// 3x3 max pooling, stride 2, padding 1 (padding never wins), on NHWC.
#[derive(Debug)]
pub struct MaxPool;

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool-3x3s2-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, dims) = contiguous(storage, layout, "max pool input")?;
        let [n, side, w, c] = dims[..] else { candle_core::bail!("max pool: input {dims:?} is not NHWC") };
        if side != w || side == 0 {
            candle_core::bail!("max pool: input {dims:?} is not square");
        }
        let out_side = (side - 1) / 2 + 1;
        let mut out = vec![0f32; n * out_side * out_side * c];
        out.par_chunks_mut(out_side * c).enumerate().for_each(|(row, dst)| {
            let (img, oy) = (row / out_side, row % out_side);
            let window = |o: usize| (2 * o).saturating_sub(1)..(2 * o + 2).min(side);
            let pixel = |iy: usize, ix: usize| &x[((img * side + iy) * side + ix) * c..][..c];
            for (ox, px) in dst.chunks_mut(c).enumerate() {
                px.copy_from_slice(pixel(window(oy).start, window(ox).start));
                for iy in window(oy) {
                    for ix in window(ox) {
                        // A plain comparison, not f32::max, so it compiles to one vector max.
                        px.iter_mut().zip(pixel(iy, ix)).for_each(|(d, &s)| *d = if s > *d { s } else { *d });
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, out_side, out_side, c))))
    }
}

/// Global average pool of NHWC activations: (n, c).
#[derive(Debug)]
pub struct AvgPool;

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "global-avg-pool-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, dims) = contiguous(storage, layout, "average pool input")?;
        let [n, h, w, c] = dims[..] else { candle_core::bail!("average pool: input {dims:?} is not NHWC") };
        let mut out = vec![0f32; n * c];
        for (img, sums) in out.chunks_mut(c).enumerate() {
            for px in x[img * h * w * c..][..h * w * c].chunks(c) {
                sums.iter_mut().zip(px).for_each(|(s, &v)| *s += v);
            }
            sums.iter_mut().for_each(|s| *s /= (h * w) as f32);
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Uniform in [-0.5, 0.5).
    fn random(len: usize, seed: u64) -> Vec<f32> {
        crate::bench::pseudo_uniform(seed, len).into_iter().map(|v| v - 0.5).collect()
    }

    fn nchw(x: &Tensor) -> Tensor {
        x.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap()
    }

    fn nhwc(x: &Tensor) -> Tensor {
        x.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// The packed NHWC convolution against candle's conv2d + bias + residual + ReLU.
    fn check(
        n: usize,
        (c_in, c_out): (usize, usize),
        side: usize,
        (size, stride, pad): (usize, usize, usize),
        residual: bool,
    ) {
        for winograd in [None, Some(Winograd::F2), Some(Winograd::F4)] {
            check_form(n, (c_in, c_out), side, (size, stride, pad), residual, winograd);
        }
    }

    fn check_form(
        n: usize,
        (c_in, c_out): (usize, usize),
        side: usize,
        (size, stride, pad): (usize, usize, usize),
        residual: bool,
        winograd: Option<Winograd>,
    ) {
        let dev = Device::Cpu;
        // Weights already at f16 precision, so the direct form must match candle's f32
        // convolution up to summation order.
        let w: Vec<f32> =
            random(c_out * c_in * size * size, 1 + c_in as u64).iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        let b = random(c_out, 2 + c_out as u64);
        let x = Tensor::from_vec(random(n * side * side * c_in, 3), (n, side, side, c_in), &dev).unwrap();
        let conv = Conv::new(&w, &b, (c_out, c_in, size), (stride, pad), true, winograd).unwrap();
        let wt = Tensor::from_vec(w, (c_out, c_in, size, size), &dev).unwrap();
        let bt = Tensor::from_vec(b, (1, c_out, 1, 1), &dev).unwrap();
        let mut expected = nchw(&x).conv2d(&wt, pad, stride, 1, 1).unwrap().broadcast_add(&bt).unwrap();
        let got = if residual {
            let s = conv.out_side(side);
            let r = Tensor::from_vec(random(n * s * s * c_out, 4), (n, s, s, c_out), &dev).unwrap();
            expected = (expected + nchw(&r)).unwrap();
            x.apply_op2_no_bwd(&r, &conv).unwrap()
        } else {
            x.apply_op1_no_bwd(&conv).unwrap()
        };
        let expected = nhwc(&expected.relu().unwrap());
        assert_eq!(got.dims(), expected.dims());
        let scale = (c_in * size * size) as f32;
        let diff = max_abs_diff(&got, &expected);
        // Direct: about 1e-6 here. Winograd also rounds its transformed weights to f16:
        // F(2x2) uses up to 0.4e-5 x scale (0.0022 for 64 -> 32), F(4x4)'s larger
        // transforms amplify the rounding about 15 times (up to 8.5e-5 x scale, 0.018
        // for 24 -> 16, where outputs reach 3.7). On real weights and images the embedding
        // still agrees with the f32 reference to 0.999999 (README, Embedding speed).
        let bound = if winograd == Some(Winograd::F4) { 1.5e-4 } else { 1e-5 } * scale;
        assert!(diff < bound, "{c_in}->{c_out} {size}x{size}/{stride} {winograd:?}: max difference {diff}");
    }

    #[test]
    fn matches_candle_conv2d() {
        check(1, (3, 64), 23, (7, 2, 3), false); // the stem: whole kernel rows
        check(2, (64, 32), 9, (3, 1, 1), true); // several taps per block, odd side (Winograd edge tiles, two chunks)
        check(1, (256, 256), 5, (3, 1, 1), true); // Winograd weights too large to fuse: three steps
        check(1, (24, 16), 14, (3, 1, 1), false); // Winograd, even side
        check(1, (600, 48), 7, (3, 2, 1), false); // channels split across blocks
        check(2, (40, 16), 8, (1, 2, 0), false); // strided 1x1 (downsample)
        check(3, (1024, 64), 3, (1, 1, 0), true); // two full blocks, residual on the last
    }

    #[test]
    fn winograd_form_is_taken_for_3x3_stride_1() {
        let conv = |size, stride| {
            Conv::new(
                &vec![0.0; 16 * 8 * size * size],
                &[0.0; 16],
                (16, 8, size),
                (stride, size / 2),
                true,
                Some(Winograd::F4),
            )
        };
        assert!(matches!(conv(3, 1).unwrap().weights, Weights::Winograd(Winograd::F4, _)));
        assert!(matches!(conv(3, 2).unwrap().weights, Weights::Direct(_)));
        assert!(matches!(conv(1, 1).unwrap().weights, Weights::Direct(_)));
    }

    #[test]
    fn portable_kernel_matches_the_dispatched_one() {
        // Two panels of two taps each, in rows wider than the two panels.
        let (len, panels, ldc) = (37, 2, 2 * NR + 8);
        let panel_stride = 2 * len * NR;
        let a = random(MR * len, 5);
        let w: Vec<u16> = random(panels * panel_stride, 6).iter().map(|&v| f16::from_f32(v).to_bits()).collect();
        let bias = random(panels * NR, 7);
        let residual = random(MR * ldc, 8);
        // The two taps read the rows in opposite orders; row 4 is padding.
        let segments: Vec<[*const f32; MR]> = (0..2)
            .map(|s| {
                std::array::from_fn(|r| match (r, s) {
                    (4, _) => ZEROS.as_ptr(),
                    (_, 0) => a[r * len..].as_ptr(),
                    _ => a[(MR - 1 - r) * len..].as_ptr(),
                })
            })
            .collect();
        let epilogues = [
            Epilogue { first: true, last: false, relu: false, residual: false },
            Epilogue { first: false, last: true, relu: true, residual: true },
        ];
        for (epilogue, live) in epilogues.into_iter().flat_map(|e| (1..=MR).map(move |live| (e, live))) {
            let before = random(MR * ldc, 9);
            let (mut fast, mut slow) = (before.clone(), before.clone());
            for (out, k) in [(&mut fast, kernel_for_cpu()), (&mut slow, kernel_portable as Kernel)] {
                let tile = Tile {
                    segments: &segments,
                    len,
                    weights: w.as_ptr(),
                    panel_stride,
                    panels,
                    bias: bias.as_ptr(),
                    residual: residual.as_ptr(),
                    out: out.as_mut_ptr(),
                    ldc,
                    live,
                    epilogue,
                };
                unsafe { k(&tile) };
            }
            for (f, s) in fast.iter().zip(&slow) {
                assert!((f - s).abs() < 1e-4, "{live} rows: {f} vs {s}");
            }
            for r in 0..MR {
                let untouched = if r < live { r * ldc + panels * NR } else { r * ldc };
                assert_eq!(
                    fast[untouched..(r + 1) * ldc],
                    before[untouched..(r + 1) * ldc],
                    "row {r}: beyond the tile"
                );
            }
        }
    }

    #[test]
    fn average_pool_matches_candle() {
        let x = Tensor::from_vec(random(3 * 7 * 7 * 32, 11), (3, 7, 7, 32), &Device::Cpu).unwrap();
        let expected = nchw(&x).mean(3).unwrap().mean(2).unwrap();
        assert!(max_abs_diff(&x.apply_op1_no_bwd(&AvgPool).unwrap(), &expected) < 1e-6);
    }

    #[test]
    fn max_pool_matches_candle() {
        let dev = Device::Cpu;
        for side in [7, 8, 112] {
            let x = Tensor::from_vec(random(2 * side * side * 16, side as u64), (2, side, side, 16), &dev).unwrap();
            let expected = nhwc(
                &nchw(&x)
                    .pad_with_same(3, 1, 1)
                    .unwrap()
                    .pad_with_same(2, 1, 1)
                    .unwrap()
                    .max_pool2d_with_stride(3, 2)
                    .unwrap(),
            );
            let got = x.apply_op1_no_bwd(&MaxPool).unwrap();
            assert_eq!(max_abs_diff(&got, &expected), 0.0);
        }
    }
}
