//! The on-disk cache of a remote catalog's photos (`[ui] photo_cache_mib`, in the user's
//! cache folder), so a second session over a slow link does not fetch every thumbnail
//! again. A photo is used from the cache after a conditional read says it is unchanged
//! (its ETag), so a replaced photo never shows stale; when the catalog cannot be reached,
//! the cached copy is shown. The least recently used files go when the cache outgrows
//! its bound. Runs on the thumbnail threads, never the UI thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use lookalike_core::catalog::{self, CatalogSource, Fetched};
use lookalike_core::error::DecodeError;
use lookalike_core::files::{self, hex};

/// Where the cache lives: `$XDG_CACHE_HOME/lookalike/photos`.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("lookalike").join("photos"))
}

pub struct PhotoCache {
    dir: PathBuf,
    limit: u64,
    /// Bytes in the folder, as last counted plus what was written since; counted at the
    /// first write, on a thumbnail thread (opening the cache reads nothing).
    used: Mutex<Option<u64>>,
}

/// A cache file: the ETag, a newline, the photo's bytes.
fn parse(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let at = bytes.iter().position(|b| *b == b'\n')?;
    Some((std::str::from_utf8(&bytes[..at]).ok()?, &bytes[at + 1..]))
}

impl PhotoCache {
    /// A cache of at most `limit` bytes in `dir` (created when first written).
    pub fn open(dir: PathBuf, limit: u64) -> PhotoCache {
        PhotoCache { dir, limit, used: Mutex::new(None) }
    }

    fn file_of(&self, locator: &Path) -> PathBuf {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(locator.as_os_str().as_encoded_bytes());
        self.dir.join(hex(&digest[..16]))
    }

    /// The photo `rel` of `source` (found at `locator`), through the cache.
    pub fn read(&self, source: &dyn CatalogSource, rel: &str, locator: &Path) -> Result<Vec<u8>, DecodeError> {
        let file = self.file_of(locator);
        let cached = std::fs::read(&file).ok();
        let entry = cached.as_deref().and_then(parse);
        match (source.read_if_changed(rel, entry.map(|(tag, _)| tag)), entry) {
            (Ok(Fetched::Unchanged), Some((_, bytes))) => {
                // Recently used: the eviction goes by modification time.
                let _ =
                    std::fs::File::options().append(true).open(&file).and_then(|f| f.set_modified(SystemTime::now()));
                Ok(bytes.to_vec())
            }
            (Ok(Fetched::Unchanged), None) => Err(DecodeError::Io(std::io::Error::other(format!(
                "{}: the catalog answered \"unchanged\" to an unconditional read",
                locator.display()
            )))),
            (Ok(Fetched::Bytes { bytes, tag }), _) => {
                if let Some(tag) = tag.filter(|t| !t.contains('\n')) {
                    self.store(&file, &tag, &bytes);
                }
                Ok(bytes)
            }
            (Err(DecodeError::Io(e)), Some((_, bytes))) if catalog::is_outage(&e) => Ok(bytes.to_vec()),
            (Err(e), _) => Err(e),
        }
    }

    /// Writes one entry (atomically) and evicts the oldest when over the limit. A cache
    /// that cannot be written is no cache, not an error: the photo is shown anyway.
    fn store(&self, file: &Path, tag: &str, bytes: &[u8]) {
        let mut content = Vec::with_capacity(tag.len() + 1 + bytes.len());
        content.extend_from_slice(tag.as_bytes());
        content.push(b'\n');
        content.extend_from_slice(bytes);
        if content.len() as u64 > self.limit
            || std::fs::create_dir_all(&self.dir).is_err()
            || files::write_atomic(file, &content).is_err()
        {
            return;
        }
        let mut guard = self.used.lock().unwrap_or_else(|e| e.into_inner());
        // The first count already includes this entry.
        let used = guard.get_or_insert_with(|| total_size(&entries(&self.dir)).saturating_sub(content.len() as u64));
        *used += content.len() as u64;
        if *used <= self.limit {
            return;
        }
        // Down to 90% of the limit, so that eviction runs once per many writes.
        let mut all = entries(&self.dir);
        all.sort_by_key(|(_, _, modified)| *modified);
        let mut total = total_size(&all);
        for (path, size, _) in all {
            if total <= self.limit / 10 * 9 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
        *used = total;
    }
}

fn total_size(entries: &[(PathBuf, u64, SystemTime)]) -> u64 {
    entries.iter().map(|(_, size, _)| size).sum()
}

/// The cache's files with their sizes and modification times.
fn entries(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let Ok(listing) = std::fs::read_dir(dir) else { return Vec::new() };
    listing
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (e.path(), meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use lookalike_core::catalog::{Metadata, Scan};

    use super::*;

    /// A catalog whose photo `a.jpg` has a tag and answers conditional reads as S3 does;
    /// `down` makes it unreachable.
    struct Tagged {
        bytes: Mutex<(Vec<u8>, String)>,
        down: std::sync::atomic::AtomicBool,
        full_reads: AtomicUsize,
    }

    impl CatalogSource for Tagged {
        fn name(&self) -> String {
            "s3://b/c".into()
        }
        fn state_key(&self) -> lookalike_core::Result<(String, Vec<u8>)> {
            Ok(("t".into(), vec![]))
        }
        fn list(&self) -> lookalike_core::Result<Scan> {
            Ok(Scan::default())
        }
        fn open(&self, _: &str) -> std::io::Result<Box<dyn std::io::Read + Send + '_>> {
            Err(std::io::Error::other("unused"))
        }
        fn locator(&self, key: &str) -> PathBuf {
            PathBuf::from(format!("s3://b/c/{key}"))
        }
        fn labels(&self) -> lookalike_core::Result<Metadata> {
            Ok(Metadata::default())
        }
        fn labels_location(&self) -> Option<PathBuf> {
            None
        }
        fn read_if_changed(&self, _: &str, cached: Option<&str>) -> Result<Fetched, DecodeError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(DecodeError::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "down")));
            }
            let (bytes, tag) = self.bytes.lock().unwrap().clone();
            if cached == Some(tag.as_str()) {
                return Ok(Fetched::Unchanged);
            }
            self.full_reads.fetch_add(1, Ordering::SeqCst);
            Ok(Fetched::Bytes { bytes, tag: Some(tag) })
        }
    }

    #[test]
    fn photos_are_revalidated_replaced_kept_offline_and_evicted_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let source = Tagged {
            bytes: Mutex::new((b"first photo".to_vec(), "\"e1\"".into())),
            down: Default::default(),
            full_reads: AtomicUsize::new(0),
        };
        let cache = PhotoCache::open(dir.path().join("photos"), 1000);
        let at = source.locator("a.jpg");
        let read = |cache: &PhotoCache| cache.read(&source, "a.jpg", &at).unwrap();
        assert_eq!(read(&cache), b"first photo");
        // A second session: unchanged, so nothing is downloaded again.
        let cache = PhotoCache::open(dir.path().join("photos"), 1000);
        assert_eq!(read(&cache), b"first photo");
        assert_eq!(source.full_reads.load(Ordering::SeqCst), 1);
        // Replaced under the same key: the new photo, never the stale one.
        *source.bytes.lock().unwrap() = (b"second photo".to_vec(), "\"e2\"".into());
        assert_eq!(read(&cache), b"second photo");
        // Unreachable: the cached copy is shown.
        source.down.store(true, Ordering::SeqCst);
        assert_eq!(read(&cache), b"second photo");
        assert!(cache.read(&source, "b.jpg", &source.locator("b.jpg")).is_err(), "nothing cached for b.jpg");
        source.down.store(false, Ordering::SeqCst);

        // Past the bound, the least recently used entries go.
        let small = PhotoCache::open(dir.path().join("small"), 100);
        *source.bytes.lock().unwrap() = (vec![7u8; 30], "\"e3\"".into());
        for i in 0..6 {
            small.read(&source, "a.jpg", &source.locator(&format!("{i}.jpg"))).unwrap();
        }
        let left = total_size(&entries(&dir.path().join("small")));
        assert!(left <= 100 && left > 0, "{left} bytes left");
    }
}
