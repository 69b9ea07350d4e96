//! Catalog sources: where product photos and their metadata come from. The indexer and
//! the search service see only [`CatalogSource`]; [`LocalFolder`] is today's
//! implementation (a folder walked recursively, `styles.csv` beside it).

mod local;
pub mod metadata;

use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;

pub use local::{has_image_extension, LocalFolder, IMAGE_EXTENSIONS};
pub use metadata::{Field, Filter, Metadata, Product, RowError};

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

    /// The product metadata, empty when the catalog has none.
    fn labels(&self) -> Result<Metadata>;

    /// Where the labels come from, when the catalog has any (without reading them).
    fn labels_location(&self) -> Option<PathBuf>;

    /// One image's bytes, refused beyond [`crate::files::MAX_FILE_BYTES`] or when empty.
    fn read(&self, key: &str) -> Result<Vec<u8>, DecodeError> {
        let reader = self.open(key).map_err(DecodeError::from_open)?;
        read_bounded(reader)
    }
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
    fn product_id_is_the_stem() {
        assert_eq!(product_id("images/15970.jpg"), "15970");
        assert_eq!(product_id("a.b/c.d.png"), "c.d");
    }
}
