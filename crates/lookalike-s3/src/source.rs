//! [`S3Catalog`]: a catalog under an `s3://bucket/prefix`, read with object_store through
//! a [`Client`].

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use futures::StreamExt;
use lookalike_core::catalog::{has_image_extension, CatalogFile, CatalogSource, Fetched, Hashed, Metadata, Scan};
use lookalike_core::config::Config;
use lookalike_core::error::DecodeError;
use lookalike_core::files::MAX_FILE_BYTES;
use lookalike_core::{Error, Result};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt};
use sha2::Digest;

use crate::client::Client;
use crate::error::{io_error, reason};
use crate::location::S3Location;

/// Where the labels of an S3 catalog come from.
#[derive(Debug, Clone)]
enum Labels {
    /// `styles.csv` at the prefix root, when it exists.
    Default,
    Object(S3Location),
    Local(PathBuf),
}

pub struct S3Catalog {
    location: S3Location,
    client: Client,
    labels: Labels,
    /// Whether the default `styles.csv` exists, asked once.
    default_labels: OnceLock<bool>,
    concurrency: usize,
}

impl S3Catalog {
    /// A catalog at `url`, with the S3 settings of [`Client::new`]. Nothing is requested yet.
    pub fn open(url: &str, labels: Option<&str>, config: &Config) -> Result<S3Catalog> {
        let bad = |reason: String| Error::Catalog { catalog: url.to_string(), reason };
        let location = S3Location::parse(url).map_err(bad)?;
        let labels = match labels {
            None => Labels::Default,
            Some(l) if l.starts_with("s3://") => {
                let at = S3Location::parse(l).map_err(bad)?;
                if at.bucket != location.bucket {
                    return Err(bad(format!("labels {l}: they must be in the catalog's bucket {}", location.bucket)));
                }
                Labels::Object(at)
            }
            Some(l) => Labels::Local(PathBuf::from(l)),
        };
        let client = Client::new(&location.bucket, config.fetch).map_err(bad)?;
        Ok(S3Catalog {
            location,
            client,
            labels,
            default_labels: OnceLock::new(),
            concurrency: config.fetch.concurrency.max(1),
        })
    }

    fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.location.bucket)
    }

    /// One object's bytes, refused beyond the file size limit or when empty.
    async fn get(&self, key: &str) -> std::result::Result<Vec<u8>, DecodeError> {
        match self.get_unless(key, None).await? {
            Fetched::Bytes { bytes, .. } => Ok(bytes),
            // Only a broken server answers "not modified" to a plain GET.
            Fetched::Unchanged => Err(DecodeError::Io(std::io::Error::other(format!(
                "GET {}: the server answered 304 Not Modified to an unconditional request",
                self.url_of(key)
            )))),
        }
    }

    /// A GET, conditional on the ETag differing from `cached` (`If-None-Match`) when given.
    async fn get_unless(&self, key: &str, cached: Option<&str>) -> std::result::Result<Fetched, DecodeError> {
        let path = ObjectPath::parse(key).map_err(|e| DecodeError::Io(std::io::Error::other(e.to_string())))?;
        let failed = |e: object_store::Error| DecodeError::Io(io_error("GET", &self.url_of(key), &e));
        let options = GetOptions { if_none_match: cached.map(String::from), ..Default::default() };
        let got = match self.client.store.get_opts(&path, options).await {
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::Unchanged),
            got => got.map_err(failed)?,
        };
        if got.meta.size > MAX_FILE_BYTES {
            return Err(DecodeError::TooLarge { size: got.meta.size, limit: MAX_FILE_BYTES });
        }
        let tag = got.meta.e_tag.clone();
        let bytes = got.bytes().await.map_err(failed)?;
        if bytes.is_empty() {
            return Err(DecodeError::Empty);
        }
        Ok(Fetched::Bytes { bytes: bytes.to_vec(), tag })
    }

    /// Reads an object of the catalog by its catalog-relative key.
    async fn get_rel(&self, rel: &str) -> std::result::Result<Vec<u8>, DecodeError> {
        self.get(&self.location.child(rel)).await
    }

    fn labels_object(&self) -> Option<S3Location> {
        match &self.labels {
            Labels::Object(at) => Some(at.clone()),
            Labels::Local(_) => None,
            Labels::Default => {
                let at = S3Location { bucket: self.location.bucket.clone(), key: self.location.child("styles.csv") };
                let exists = *self.default_labels.get_or_init(|| {
                    let path = ObjectPath::parse(&at.key);
                    path.is_ok_and(|p| self.client.runtime.block_on(self.client.store.head(&p)).is_ok())
                });
                exists.then_some(at)
            }
        }
    }
}

fn into_io(e: DecodeError) -> std::io::Error {
    match e {
        DecodeError::Io(io) => io,
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// A listed object's change token: its ETag (or, without one, its modification time)
/// folded to the 64 bits the store keeps.
fn change_token(meta: &object_store::ObjectMeta) -> i64 {
    let tag = meta.e_tag.clone().unwrap_or_else(|| meta.last_modified.to_rfc3339());
    let digest = sha2::Sha256::digest(tag.as_bytes());
    i64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

impl CatalogSource for S3Catalog {
    fn name(&self) -> String {
        self.location.to_string()
    }

    fn state_key(&self) -> Result<(String, Vec<u8>)> {
        Ok(self.client.local_key(&self.location))
    }

    /// Pages through the listing as a stream: memory grows with the images kept, not with
    /// the listing's pages.
    fn list(&self) -> Result<Scan> {
        let prefix = match self.location.key.as_str() {
            "" => None,
            key => Some(
                ObjectPath::parse(key).map_err(|e| Error::Catalog { catalog: self.name(), reason: e.to_string() })?,
            ),
        };
        let strip = if self.location.key.is_empty() { String::new() } else { format!("{}/", self.location.key) };
        let mut scan = Scan::default();
        self.client.runtime.block_on(async {
            let mut listing = self.client.store.list(prefix.as_ref());
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| Error::Catalog {
                    catalog: self.name(),
                    reason: format!("LIST {}: {}", self.location, reason(&e)),
                })?;
                let Some(rel) = meta.location.as_ref().strip_prefix(strip.as_str()) else { continue };
                let hidden = rel.split('/').any(|part| part.starts_with('.'));
                if hidden || !has_image_extension(Path::new(rel)) {
                    continue;
                }
                scan.files.push(CatalogFile { rel: rel.to_string(), size: meta.size, mtime_ns: change_token(&meta) });
            }
            Ok::<(), Error>(())
        })?;
        scan.files.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(scan)
    }

    fn open(&self, key: &str) -> std::io::Result<Box<dyn Read + Send + '_>> {
        let bytes = self.client.runtime.block_on(self.get_rel(key)).map_err(into_io)?;
        Ok(Box::new(Cursor::new(bytes)))
    }

    fn read(&self, key: &str) -> std::result::Result<Vec<u8>, DecodeError> {
        self.client.runtime.block_on(self.get_rel(key))
    }

    fn read_if_changed(&self, key: &str, cached: Option<&str>) -> std::result::Result<Fetched, DecodeError> {
        self.client.runtime.block_on(self.get_unless(&self.location.child(key), cached))
    }

    /// Up to `[catalog] fetch_concurrency` requests in flight, answers in order.
    fn read_many(&self, keys: &[&str]) -> Vec<std::result::Result<Vec<u8>, DecodeError>> {
        self.client
            .runtime
            .block_on(futures::stream::iter(keys).map(|k| self.get_rel(k)).buffered(self.concurrency).collect())
    }

    /// Hashing needs the whole object, so its bytes come back for the model too.
    fn hashes(&self, keys: &[&str]) -> Vec<std::io::Result<Hashed>> {
        let hash = |bytes: std::result::Result<Vec<u8>, DecodeError>| {
            let bytes = bytes.map_err(into_io)?;
            let hash = lookalike_core::store::content_hash(bytes.as_slice())?;
            Ok(Hashed { hash, bytes: Some(bytes) })
        };
        self.read_many(keys).into_iter().map(hash).collect()
    }

    fn locator(&self, key: &str) -> PathBuf {
        PathBuf::from(self.url_of(&self.location.child(key)))
    }

    fn labels_location(&self) -> Option<PathBuf> {
        match &self.labels {
            Labels::Local(p) => Some(p.clone()),
            _ => self.labels_object().map(|at| PathBuf::from(at.to_string())),
        }
    }

    fn labels(&self) -> Result<Metadata> {
        match &self.labels {
            Labels::Local(p) => Metadata::load(p),
            _ => match self.labels_object() {
                None => Ok(Metadata::default()),
                Some(at) => {
                    let bytes = self.client.runtime.block_on(self.get(&at.key)).map_err(|e| Error::Catalog {
                        catalog: at.to_string(),
                        reason: format!("cannot read the labels: {e}"),
                    })?;
                    Metadata::parse(bytes.as_slice(), Path::new(&at.to_string()))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_are_s3_urls_and_map_back_to_keys() {
        // Opening asks nothing of the network.
        let catalog = S3Catalog::open("s3://shop/spring/", None, &Config::default()).unwrap();
        assert_eq!(catalog.name(), "s3://shop/spring");
        let locator = catalog.locator("images/15970.jpg");
        assert_eq!(locator, PathBuf::from("s3://shop/spring/images/15970.jpg"));
        assert_eq!(catalog.key_of(&locator).as_deref(), Some("images/15970.jpg"));
        assert_eq!(catalog.key_of(Path::new("s3://shop/autumn/a.jpg")), None);
        assert_eq!(catalog.key_of(Path::new("/home/me/a.jpg")), None);
        let (name, key) = catalog.state_key().unwrap();
        assert_eq!(name, "s3-spring");
        assert!(!String::from_utf8(key).unwrap().contains("SECRET"));
    }

    #[test]
    fn labels_elsewhere_must_be_in_the_same_bucket() {
        let err = S3Catalog::open("s3://shop/spring", Some("s3://other/styles.csv"), &Config::default()).err().unwrap();
        assert!(err.to_string().contains("must be in the catalog's bucket shop"), "{err}");
    }

    #[test]
    fn change_tokens_follow_the_etag() {
        let meta = |tag: &str| object_store::ObjectMeta {
            location: ObjectPath::from("a.jpg"),
            last_modified: Default::default(),
            size: 1,
            e_tag: Some(tag.into()),
            version: None,
        };
        assert_eq!(change_token(&meta("\"abc\"")), change_token(&meta("\"abc\"")));
        assert_ne!(change_token(&meta("\"abc\"")), change_token(&meta("\"abd\"")));
    }
}
