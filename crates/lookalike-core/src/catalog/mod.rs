//! Catalog sources: where product photos and their metadata come from. The indexer and
//! the search service see only [`CatalogSource`]. [`LocalFolder`] is a folder walked
//! recursively, `styles.csv` beside it; remote catalogs are named by URL
//! (`s3://bucket/prefix`) and opened by the source registered for their scheme
//! ([`crate::schemes`]).

mod local;
pub mod metadata;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use local::{has_image_extension, LocalFolder, IMAGE_EXTENSIONS};
pub use metadata::{Field, Filter, Grouping, Metadata, Product, RowError};

use crate::error::DecodeError;
use crate::error::Result;
use crate::files::read_bounded;

/// One image found in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFile {
    /// The item's key: for folders, the path relative to the root, `/`-separated. The key
    /// of the store's manifest.
    pub rel: String,
    pub size: u64,
    /// Change token: a new value means the content may have changed (for local files,
    /// the modification time in nanoseconds).
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

/// An image's content hash, with its bytes when the source fetched them whole.
#[derive(Debug)]
pub struct Hashed {
    pub hash: String,
    pub bytes: Option<Vec<u8>>,
}

/// What [`CatalogSource::read_if_changed`] found.
#[derive(Debug)]
pub enum Fetched {
    /// The cached copy is current.
    Unchanged,
    /// The bytes, with the tag to ask with next time (an ETag), when the source has one.
    Bytes { bytes: Vec<u8>, tag: Option<String> },
}

/// A catalog: lists its images, reads their bytes, gives their labels and says where a
/// user finds each one. Shared by the indexer's threads and the search service.
pub trait CatalogSource: Send + Sync {
    /// How messages and reports name the catalog (a folder path, a bucket URL).
    fn name(&self) -> String;

    /// A name for the catalog's state folder and bytes that identify the catalog, so that
    /// two catalogs never share a store.
    fn state_key(&self) -> Result<(String, Vec<u8>)>;

    /// Every image with its size and change token, sorted by key, and what was left out.
    fn list(&self) -> Result<Scan>;

    /// A reader over one image's bytes.
    fn open(&self, key: &str) -> std::io::Result<Box<dyn Read + Send + '_>>;

    /// Where a user finds an item: a file path for local folders, a URL for remote ones.
    fn locator(&self, key: &str) -> PathBuf;

    /// The key of one of this catalog's items given its locator (the inverse of
    /// [`locator`](Self::locator)); `None` for anything else.
    fn key_of(&self, locator: &Path) -> Option<String> {
        let rel = locator.strip_prefix(self.locator("")).ok()?;
        let parts: Vec<&str> = rel.components().map(|c| c.as_os_str().to_str()).collect::<Option<_>>()?;
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// The product metadata, empty when the catalog has none.
    fn labels(&self) -> Result<Metadata>;

    /// Where the labels come from, when the catalog has any (without reading them).
    fn labels_location(&self) -> Option<PathBuf>;

    /// One image's bytes, refused beyond [`crate::files::MAX_FILE_BYTES`] or when empty.
    fn read(&self, key: &str) -> Result<Vec<u8>, DecodeError> {
        let reader = self.open(key).map_err(DecodeError::from_open)?;
        read_bounded(reader)
    }

    /// One image's bytes unless the copy tagged `cached` (an earlier answer's tag) is
    /// still current: a conditional read for caches of remote photos. Sources without
    /// change tags (local folders) always read.
    fn read_if_changed(&self, key: &str, cached: Option<&str>) -> Result<Fetched, DecodeError> {
        let _ = cached;
        self.read(key).map(|bytes| Fetched::Bytes { bytes, tag: None })
    }

    /// Many images' bytes, in the order of `keys`; a remote source fetches them
    /// concurrently, a local one on the thread pool.
    fn read_many(&self, keys: &[&str]) -> Vec<Result<Vec<u8>, DecodeError>> {
        use rayon::prelude::*;
        keys.par_iter().map(|k| self.read(k)).collect()
    }

    /// The content hashes ([`crate::store::content_hash`]) of many images, in order. A
    /// source that had to fetch the bytes whole to hash them (a remote one) hands them
    /// back too, so that the index run need not fetch them again for the model; a local
    /// one streams them through the hash and keeps nothing.
    fn hashes(&self, keys: &[&str]) -> Vec<std::io::Result<Hashed>> {
        use rayon::prelude::*;
        keys.par_iter()
            .map(|k| self.open(k).and_then(crate::store::content_hash).map(|hash| Hashed { hash, bytes: None }))
            .collect()
    }
}

/// Whether an error reading from a catalog means the catalog itself cannot be reached (a
/// server down, a network timeout after every retry), not that one image is bad: an index
/// run then stops instead of skipping every image.
pub fn is_outage(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
    )
}

/// The scheme of a catalog location given as a URL (`s3` of `s3://bucket/prefix`).
pub fn url_scheme(location: &Path) -> Option<&str> {
    let text = location.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))).then_some(scheme)
}

/// The product id of a catalog file: its file name without extension (Kaggle layout).
pub fn product_id(rel: &str) -> &str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_have_a_scheme_and_paths_do_not() {
        assert_eq!(url_scheme(Path::new("s3://bucket/prefix")), Some("s3"));
        assert_eq!(url_scheme(Path::new("catalog/images")), None);
        assert_eq!(url_scheme(Path::new("/abs/a://b")), None);
        assert_eq!(url_scheme(Path::new("://x")), None);
    }

    #[test]
    fn product_id_is_the_stem() {
        assert_eq!(product_id("images/15970.jpg"), "15970");
        assert_eq!(product_id("a.b/c.d.png"), "c.d");
    }
}
