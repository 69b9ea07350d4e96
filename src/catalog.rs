//! The catalog: image files under a folder, and the product metadata in `styles.csv`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use serde::Serialize;

/// Extensions taken as images, compared case-insensitively; the content decides the format.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Opens a file for reading without ever blocking on a FIFO or device that carries an
/// image's name; anything but a regular file is an `InvalidInput` error.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// One image file found in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFile {
    /// Path relative to the catalog root, `/`-separated: the key of the store's manifest.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// A file with an image name that was left out, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Scan {
    /// Sorted by `rel`.
    pub files: Vec<CatalogFile>,
    pub skipped: Vec<Skipped>,
}

/// Walks the catalog recursively, following symlinks (loops are detected, not followed);
/// hidden entries are ignored, and only regular files with an image extension are kept.
pub fn scan(root: &Path) -> Result<Scan> {
    let meta = std::fs::metadata(root).with_context(|| format!("catalog folder {}", root.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("catalog {} is not a folder", root.display());
    }
    let mut scan = Scan::default();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = err.path().map(|p| rel_path(root, p)).unwrap_or_default();
                if err.loop_ancestor().is_some() {
                    // A folder link back to an ancestor: its content is already walked.
                    continue;
                }
                let kind = err.io_error().map(|io| io.kind());
                let denied = kind == Some(std::io::ErrorKind::PermissionDenied);
                if denied || err.path().is_some_and(has_image_extension) {
                    let reason = match kind {
                        Some(std::io::ErrorKind::NotFound) => "dangling symlink".to_string(),
                        _ => err.io_error().map_or_else(|| err.to_string(), |io| io.to_string()),
                    };
                    scan.skipped.push(Skipped { path, reason });
                }
                continue;
            }
        };
        let path = entry.path();
        if entry.file_type().is_dir() || !has_image_extension(path) {
            continue;
        }
        let rel = rel_path(root, path);
        // With follow_links the metadata is the target's.
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(err) => {
                scan.skipped.push(Skipped { path: rel, reason: err.to_string() });
                continue;
            }
        };
        if !meta.is_file() {
            scan.skipped.push(Skipped { path: rel, reason: "not a regular file".into() });
            continue;
        }
        let mtime_ns =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i64);
        scan.files.push(CatalogFile { rel, abs: path.to_path_buf(), size: meta.len(), mtime_ns });
    }
    scan.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    scan.files.dedup_by(|a, b| a.rel == b.rel);
    scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(scan)
}

fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// The product id of a catalog file: its file name without extension (Kaggle layout).
pub fn product_id(rel: &str) -> &str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// One row of a Kaggle-style `styles.csv`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    pub gender: String,
    #[serde(rename = "masterCategory")]
    pub master_category: String,
    #[serde(rename = "subCategory")]
    pub sub_category: String,
    #[serde(rename = "articleType")]
    pub article_type: String,
    #[serde(rename = "baseColour")]
    pub base_colour: String,
    pub season: String,
    pub year: String,
    pub usage: String,
    #[serde(rename = "productDisplayName")]
    pub name: String,
}

/// The metadata columns, by their `styles.csv` names; filters and eval labels use them.
pub const FIELDS: &[&str] = &[
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
];

impl Product {
    /// A field by its `styles.csv` column name, or `None` for an unknown name.
    pub fn field(&self, name: &str) -> Option<&str> {
        Some(match name {
            "id" => &self.id,
            "gender" => &self.gender,
            "masterCategory" => &self.master_category,
            "subCategory" => &self.sub_category,
            "articleType" => &self.article_type,
            "baseColour" => &self.base_colour,
            "season" => &self.season,
            "year" => &self.year,
            "usage" => &self.usage,
            "productDisplayName" => &self.name,
            _ => return None,
        })
    }
}

/// A `styles.csv` row that could not be used.
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Metadata {
    pub products: HashMap<String, Product>,
    pub errors: Vec<RowError>,
    pub source: Option<PathBuf>,
}

impl Metadata {
    pub fn get(&self, id: &str) -> Option<&Product> {
        self.products.get(id)
    }

    /// Reads a `styles.csv`; a malformed row is recorded with its line number and skipped.
    pub fn load(path: &Path) -> Result<Metadata> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open labels {}", path.display()))?;
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(std::io::BufReader::new(file));
        let headers =
            reader.headers().with_context(|| format!("cannot read the header row of {}", path.display()))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let id_col = col("id").with_context(|| format!("{} has no `id` column", path.display()))?;
        let columns: Vec<Option<usize>> = FIELDS.iter().map(|f| col(f)).collect();
        let mut meta = Metadata { source: Some(path.to_path_buf()), ..Default::default() };
        for (i, record) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let record = match record {
                Ok(r) => r,
                Err(err) => {
                    let line = err.position().map_or(line, |p| p.line());
                    meta.errors.push(RowError { line, reason: err.to_string() });
                    continue;
                }
            };
            let line = record.position().map_or(line, |p| p.line());
            if record.len() != headers.len() {
                meta.errors.push(RowError {
                    line,
                    reason: format!("{} fields, the header has {}", record.len(), headers.len()),
                });
                continue;
            }
            let get = |k: usize| columns[k].and_then(|c| record.get(c)).unwrap_or("").trim().to_string();
            let id = record.get(id_col).unwrap_or("").trim().to_string();
            if id.is_empty() {
                meta.errors.push(RowError { line, reason: "empty id".into() });
                continue;
            }
            let product = Product {
                id: id.clone(),
                gender: get(1),
                master_category: get(2),
                sub_category: get(3),
                article_type: get(4),
                base_colour: get(5),
                season: get(6),
                year: get(7),
                usage: get(8),
                name: get(9),
            };
            meta.products.insert(id, product);
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_case_insensitive() {
        assert!(has_image_extension(Path::new("a/B.JPG")));
        assert!(has_image_extension(Path::new("x.Tiff")));
        assert!(!has_image_extension(Path::new("styles.csv")));
        assert!(!has_image_extension(Path::new("noext")));
    }

    #[test]
    fn product_id_is_the_stem() {
        assert_eq!(product_id("images/15970.jpg"), "15970");
        assert_eq!(product_id("a.b/c.d.png"), "c.d");
    }

    #[test]
    fn quoted_commas_and_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("styles.csv");
        std::fs::write(
            &csv,
            "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n\
             1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,\"Shirt, blue\"\n\
             2,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Shirt, blue, extra\n\
             3,Women,Footwear,Shoes,Heels,Red,Summer,2012,Party,Heels\n",
        )
        .unwrap();
        let meta = Metadata::load(&csv).unwrap();
        assert_eq!(meta.products.len(), 2);
        assert_eq!(meta.get("1").unwrap().name, "Shirt, blue");
        assert_eq!(meta.get("3").unwrap().field("articleType"), Some("Heels"));
        assert_eq!(meta.errors.len(), 1);
        assert_eq!(meta.errors[0].line, 3);
    }

    #[cfg(unix)]
    #[test]
    fn scan_survives_links_and_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("a.JPG"), b"x").unwrap();
        std::fs::write(root.join("sub/deeper/b.png"), b"x").unwrap();
        std::fs::write(root.join("notes.txt"), b"x").unwrap();
        std::fs::create_dir(root.join("folder.jpg")).unwrap();
        std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("missing.jpg"), root.join("dangling.jpg")).unwrap();
        let fifo = std::ffi::CString::new(root.join("pipe.jpg").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let scan = scan(root).unwrap();
        let rels: Vec<_> = scan.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a.JPG", "sub/deeper/b.png"]);
        let skipped: Vec<_> = scan.skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str())).collect();
        assert_eq!(skipped, [("dangling.jpg", "dangling symlink"), ("pipe.jpg", "not a regular file")]);
    }
}
