//! Where the model runs (README, GPU): the device setting from the real binary, and the
//! network on candle's own ops (what a CUDA device runs) against the CPU kernels and the
//! ONNX Runtime reference. Built with `--features cuda` on a GPU machine (gpu/check.sh),
//! the same comparisons run on the GPU.

mod common;

use std::path::Path;

use lookalike_core::model::{self, Device, Embedder, Opened, ResNetEmbedder, ResizePolicy, FEATURE_DIMS, LAYER4_DIMS};

/// In f64, so that the printed distance from 1 is not lost to f32 rounding.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

/// The ONNX Runtime vector of tests/fixtures/shirt.png (layer4's pool).
fn onnx_reference() -> (Vec<u8>, Vec<f32>) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let png = std::fs::read(fixtures.join("shirt.png")).unwrap();
    let theirs = std::fs::read(fixtures.join("shirt.ort.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (png, theirs)
}

/// Six real photos of three classes, preprocessed.
fn photos() -> Vec<Vec<f32>> {
    let dir = tempfile::tempdir().unwrap();
    let files = common::dataset().class_subset(3, 2, dir.path());
    files
        .iter()
        .map(|f| model::input(&std::fs::read(dir.path().join("images").join(f)).unwrap(), ResizePolicy::Crop).unwrap())
        .collect()
}

/// Checks the network on `device` against the NHWC kernels on real photos (every part
/// of every vector) and against the ONNX reference, printing the lowest cosines.
fn agrees_with_the_cpu_and_onnx(device: &Opened) {
    let weights = common::weights();
    let cpu = ResNetEmbedder::load(&weights, ResizePolicy::Crop, Device::Cpu).unwrap();
    let other = ResNetEmbedder::load_on(&weights, ResizePolicy::Crop, device).unwrap();
    let inputs = photos();
    let (ours, theirs) = (cpu.embed(&inputs).unwrap(), other.embed(&inputs).unwrap());
    assert_eq!(theirs.len(), inputs.len() * FEATURE_DIMS);
    let mut lowest = 1f64;
    for (a, b) in ours.chunks(FEATURE_DIMS).zip(theirs.chunks(FEATURE_DIMS)) {
        for (a, b) in [(&a[..LAYER4_DIMS], &b[..LAYER4_DIMS]), (&a[LAYER4_DIMS..], &b[LAYER4_DIMS..])] {
            lowest = lowest.min(cosine(a, b));
        }
    }
    assert!(lowest >= 0.9995, "{}: lowest cosine to the CPU kernels {lowest}", device.name);
    // The reference was made from the stretched photo.
    let (png, reference) = onnx_reference();
    let stretched = ResNetEmbedder::load_on(&weights, ResizePolicy::Stretch, device).unwrap();
    let v = model::embed_bytes(&stretched, &png, "shirt.png").unwrap();
    let onnx = cosine(&v[..LAYER4_DIMS], &reference);
    assert!(onnx >= 0.9998, "{}: cosine to the ONNX reference {onnx}", device.name);
    eprintln!(
        "{}: 1 - cosine at most {:.1e} to the CPU kernels, {:.1e} to ONNX Runtime",
        device.name,
        1.0 - lowest,
        1.0 - onnx
    );
}

#[test]
fn candle_ops_agree_with_the_cpu_kernels_and_the_onnx_reference() {
    agrees_with_the_cpu_and_onnx(&Opened::candle_ops_on_cpu());
}

#[test]
fn the_device_comes_from_the_config_the_environment_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let device = |args: &[&str], env: Option<&str>, config: &str| {
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let mut cmd = common::at(&dir.path().join("catalog"), &dir.path().join("state"));
        cmd.arg("--config").arg(dir.path().join("config.toml")).args(args).args(["info", "--json"]);
        match env {
            Some(v) => cmd.env("LOOKALIKE_DEVICE", v),
            None => cmd.env_remove("LOOKALIKE_DEVICE"),
        };
        common::json(&cmd.output().unwrap())["device"].as_str().unwrap().to_string()
    };
    assert_eq!(device(&[], None, ""), "auto");
    assert_eq!(device(&[], None, "[model]\ndevice = \"cuda:1\"\n"), "cuda:1");
    assert_eq!(device(&[], Some("cpu"), "[model]\ndevice = \"cuda:1\"\n"), "cpu");
    assert_eq!(device(&["--device", "cuda"], Some("cpu"), ""), "cuda:0");

    let out = common::lookalike().args(["--device", "gpu", "info"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("gpu") && err.contains("cuda:N"), "{err}");
    std::fs::write(dir.path().join("config.toml"), "[model]\ndevice = \"tpu\"\n").unwrap();
    let out = common::lookalike().arg("--config").arg(dir.path().join("config.toml")).arg("info").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("\"tpu\""), "{err}");
}

/// A device that is not there fails the run with its name and the reason, before
/// anything is written; `auto` runs on what there is.
#[test]
fn an_absent_device_is_a_clear_error_and_auto_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    common::dataset().subset(2, 0, &catalog);
    let state = dir.path().join("state");
    // Without CUDA in the build no CUDA device opens; with it, no machine has 64 GPUs.
    let absent = if cfg!(feature = "cuda") { "cuda:63" } else { "cuda:0" };
    let out = common::at(&catalog, &state).args(["--device", absent, "index"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("model device \"{absent}\"")), "{err}");
    let why = if cfg!(feature = "cuda") { "did not open" } else { "built without CUDA" };
    assert!(err.contains(why), "{err}");
    assert!(!state.join("store.lks").exists());

    let report = common::run_json(&catalog, &state, &["--device", "auto", "index", "--json"]);
    assert_eq!(report["items"], 2);
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    #[test]
    fn auto_opens_the_gpu() {
        assert_eq!(Device::Auto.open().unwrap().name, "cuda:0 (auto)");
    }

    #[test]
    fn cuda_vectors_agree_with_the_cpu_kernels_and_the_onnx_reference() {
        let gpu = Device::Cuda(0).open().unwrap();
        assert!(gpu.is_gpu() && gpu.name == "cuda:0");
        agrees_with_the_cpu_and_onnx(&gpu);
    }

    #[test]
    fn a_batch_too_large_for_the_gpu_is_a_clear_error() {
        let gpu = ResNetEmbedder::load(&common::weights(), ResizePolicy::Crop, Device::Cuda(0)).unwrap();
        // 16,384 images: about 200 GB of activations, more than any GPU holds.
        let inputs = vec![vec![0.0; (model::INPUT * model::INPUT * 3) as usize]; 16384];
        let err = gpu.embed(&inputs).unwrap_err().to_string();
        assert!(err.contains("cuda:0") && err.contains("out of memory") && err.contains("batch_size"), "{err}");
    }
}
