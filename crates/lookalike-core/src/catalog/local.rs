//! A catalog in a local folder: image files walked recursively, `styles.csv` beside them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{CatalogFile, CatalogSource, Metadata, Scan, Skipped};
use crate::error::DecodeError;
use crate::error::{Error, Result};
use crate::files::{open_regular, read_file};

/// Extensions taken as images, compared case-insensitively; the content decides the format.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// A folder of product photos; labels from `labels`, else `<root>/styles.csv` when present.
#[derive(Debug, Clone)]
pub struct LocalFolder {
    root: PathBuf,
    labels: Option<PathBuf>,
}

impl LocalFolder {
    pub fn new(root: PathBuf, labels: Option<PathBuf>) -> LocalFolder {
        LocalFolder { root, labels }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl CatalogSource for LocalFolder {
    fn name(&self) -> String {
        self.root.display().to_string()
    }

    fn state_key(&self) -> Result<(String, Vec<u8>)> {
        let catalog = std::fs::canonicalize(&self.root)
            .map_err(|e| Error::Catalog { catalog: self.name(), reason: format!("folder not found ({e})") })?;
        let name: String = catalog
            .file_name()
            .map(|n| n.to_string_lossy().chars().filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_').collect())
            .unwrap_or_default();
        Ok((name, catalog.as_os_str().as_encoded_bytes().to_vec()))
    }

    fn list(&self) -> Result<Scan> {
        scan(&self.root)
    }

    fn open(&self, key: &str) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(open_regular(&self.root.join(key))?))
    }

    fn read(&self, key: &str) -> Result<Vec<u8>, DecodeError> {
        read_file(&self.root.join(key))
    }

    fn locator(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The configured styles.csv, else `<root>/styles.csv` when present.
    fn labels_location(&self) -> Option<PathBuf> {
        match &self.labels {
            Some(p) => Some(p.clone()),
            None => Some(self.root.join("styles.csv")).filter(|p| p.is_file()),
        }
    }

    fn labels(&self) -> Result<Metadata> {
        match self.labels_location() {
            Some(path) => Metadata::load(&path),
            None => Ok(Metadata::default()),
        }
    }
}

/// Walks the catalog recursively, following symlinks (loops are detected, not followed);
/// hidden entries are ignored, and only regular files with an image extension are kept.
pub fn scan(root: &Path) -> Result<Scan> {
    let catalog = || root.display().to_string();
    let meta = std::fs::metadata(root).map_err(|e| Error::Catalog { catalog: catalog(), reason: e.to_string() })?;
    if !meta.is_dir() {
        return Err(Error::Catalog { catalog: catalog(), reason: "not a folder".into() });
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
        scan.files.push(CatalogFile { rel, size: meta.len(), mtime_ns });
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
    fn locators_map_back_to_keys() {
        let folder = LocalFolder::new(PathBuf::from("/shop/photos"), None);
        let locator = folder.locator("images/1.jpg");
        assert_eq!(folder.key_of(&locator).as_deref(), Some("images/1.jpg"));
        assert_eq!(folder.key_of(Path::new("/elsewhere/1.jpg")), None);
        assert_eq!(folder.key_of(Path::new("/shop/photos")), None);
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
