//! The demo catalog: a balanced subset of Fashion-MNIST (Zalando Research, MIT), read from
//! Debian's `dataset-fashion-mnist` package and written as PNG files plus a `styles.csv`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Doing, Error, Result};

pub const DATASET_DIR: &str = "/usr/share/datasets/fashion-mnist";
const IMAGES: &str = "t10k-images-idx3-ubyte.gz";
const LABELS: &str = "t10k-labels-idx1-ubyte.gz";
pub const CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
const MASTER: [&str; 10] = [
    "Apparel",
    "Apparel",
    "Apparel",
    "Apparel",
    "Apparel",
    "Footwear",
    "Apparel",
    "Footwear",
    "Accessories",
    "Footwear",
];

fn read_gz(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).doing(|| {
        format!(
            "cannot open {}: install the Fashion-MNIST package with `sudo apt-get install dataset-fashion-mnist`",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .doing(|| format!("{} is not a valid gzip file", path.display()))?;
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Parses IDX image (magic 2051) and label (magic 2049) files into 28x28 images and labels.
pub fn parse_idx(images: &[u8], labels: &[u8]) -> Result<Vec<(Vec<u8>, u8)>> {
    if images.len() < 16 || be_u32(images, 0) != 2051 || labels.len() < 8 || be_u32(labels, 0) != 2049 {
        return Err(fail("not Fashion-MNIST IDX files".to_string()));
    }
    let (n, rows, cols) = (be_u32(images, 4) as usize, be_u32(images, 8) as usize, be_u32(images, 12) as usize);
    if rows != 28
        || cols != 28
        || be_u32(labels, 4) as usize != n
        || images.len() != 16 + n * 784
        || labels.len() != 8 + n
    {
        return Err(fail("Fashion-MNIST IDX files have unexpected sizes".to_string()));
    }
    Ok((0..n)
        .map(|i| (images[16 + i * 784..16 + (i + 1) * 784].to_vec(), labels[8 + i]))
        .filter(|(_, l)| (*l as usize) < CLASSES.len())
        .collect())
}

/// Writes `per_class` images of each class (the first ones of the test split) into
/// `out/images/<id>.png` and `out/styles.csv`; returns how many images the catalog has.
/// Already complete: nothing is rewritten.
pub fn build(out: &Path, per_class: usize, source: &Path) -> Result<usize> {
    let styles = out.join("styles.csv");
    let expected = per_class * CLASSES.len();
    if let Ok(text) = std::fs::read_to_string(&styles) {
        let rows = text.lines().skip(1).filter(|l| !l.is_empty()).count();
        let images = out.join("images");
        if rows == expected
            && text.lines().skip(1).all(|l| images.join(format!("{}.png", l.split(',').next().unwrap_or(""))).is_file())
        {
            return Ok(expected);
        }
    }
    let data = parse_idx(&read_gz(&source.join(IMAGES))?, &read_gz(&source.join(LABELS))?)?;
    let images = out.join("images");
    std::fs::create_dir_all(&images).doing(|| format!("cannot create {}", images.display()))?;
    let mut taken = [0usize; 10];
    let mut csv = String::from(
        "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n",
    );
    for (i, (pixels, label)) in data.iter().enumerate() {
        let c = *label as usize;
        if taken[c] == per_class {
            continue;
        }
        taken[c] += 1;
        // Fashion-MNIST is white-on-black; product photos are dark-on-white.
        let inverted: Vec<u8> = pixels.iter().map(|p| 255 - p).collect();
        let img = image::GrayImage::from_raw(28, 28, inverted).ok_or_else(|| fail("bad image size".into()))?;
        let path = images.join(format!("{i}.png"));
        img.save(&path).doing(|| format!("cannot write {}", path.display()))?;
        csv.push_str(&format!(
            "{i},Unisex,{},{},{},,,,,\"Fashion-MNIST {} #{i}\"\n",
            MASTER[c], CLASSES[c], CLASSES[c], CLASSES[c]
        ));
    }
    if taken.iter().any(|&t| t < per_class) {
        return Err(fail(format!("the test split has fewer than {per_class} images of some class")));
    }
    crate::files::write_atomic(&styles, csv.as_bytes())?;
    Ok(expected)
}

/// The dataset folder: `LOOKALIKE_FASHION_MNIST` or Debian's install location.
pub fn source_dir() -> PathBuf {
    std::env::var_os("LOOKALIKE_FASHION_MNIST").map_or_else(|| PathBuf::from(DATASET_DIR), PathBuf::from)
}

/// Installs Debian's `dataset-fashion-mnist` when it is missing from its default place and
/// this process runs as root; otherwise leaves it to `build`'s error, which says how.
pub fn install_if_missing(source: &Path) -> Result<()> {
    #[cfg(unix)]
    let root = unsafe { libc::geteuid() } == 0;
    #[cfg(not(unix))]
    let root = false;
    if source != Path::new(DATASET_DIR) || source.join(IMAGES).is_file() || !root {
        return Ok(());
    }
    eprintln!("installing Debian's dataset-fashion-mnist package with apt-get (running as root)");
    let apt = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    // A fresh machine may have no package lists yet.
    let install = || apt(&["install", "-y", "-q", "dataset-fashion-mnist"]);
    let installed = install() || (apt(&["update", "-q"]) && install());
    if !installed {
        return Err(fail(
            "apt-get could not install dataset-fashion-mnist; install it by hand and run again".to_string(),
        ));
    }
    Ok(())
}

/// What went wrong, as the core's error.
fn fail(reason: String) -> Error {
    Error::failed("building the demo catalog", reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_round_trip_and_bad_magic() {
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28];
        images.extend(std::iter::repeat_n(7u8, 2 * 784));
        let labels = vec![0, 0, 8, 1, 0, 0, 0, 2, 9, 3];
        let parsed = parse_idx(&images, &labels).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].1, 9);
        assert!(parse_idx(&labels, &images).is_err());
        assert!(parse_idx(&images[..100], &labels).is_err());
    }
}
