//! The state folder of one catalog: every file name in it, the lock that keeps two index
//! runs apart, and the cleanup of what an interrupted run left behind.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::files::{self, remove_if_present};

const STORE: &str = "store.lks";
const JOURNAL: &str = "journal.lkj";
const DESCRIPTORS: &str = "descriptors.lkd";
const ANNOY: &str = "index.ann";
const ANNOY_SIDECAR: &str = "index.ann.json";
const ANNOY_PATHS: &str = "index.ann.paths";
const ANNOY_PROJECTION: &str = "index.ann.proj";
const ANNOY_KEYS: &str = "index.ann.keys";
const ANNOY_ROWS: &str = "index.ann.rows";
const NEAR_DUPES: &str = "near-dupes.json";
const REVIEW: &str = "review.json";
const LOCK: &str = "lock";
/// What `lookalike publish` uploads: everything a search reads (not the journal of an
/// unfinished run, not the lock, not the review's decisions). The store comes first.
pub const PUBLISHED: [&str; 9] =
    [STORE, DESCRIPTORS, ANNOY, ANNOY_PROJECTION, ANNOY_KEYS, ANNOY_ROWS, ANNOY_SIDECAR, ANNOY_PATHS, NEAR_DUPES];
/// Prefixes of the temp files of atomic writes (store, Annoy index, small files).
const TEMP_PREFIXES: [&str; 3] = [".store-", ".index-", files::TEMP_PREFIX];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
}

/// A held lock on a state folder; released on drop or when the process dies.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateDir {
    pub fn new(dir: PathBuf) -> StateDir {
        StateDir { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The store: every image's features, the source of truth for every search.
    pub fn store(&self) -> PathBuf {
        self.dir.join(STORE)
    }

    /// Batches an unfinished index run has embedded.
    pub fn journal(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    /// The search descriptors derived from the store.
    pub fn descriptors(&self) -> PathBuf {
        self.dir.join(DESCRIPTORS)
    }

    /// The Annoy index over the descriptors, readable by Python's `annoy` (angular;
    /// dimensions in its sidecar).
    pub fn annoy(&self) -> PathBuf {
        self.dir.join(ANNOY)
    }

    /// What the Annoy index was built from.
    pub fn annoy_sidecar(&self) -> PathBuf {
        self.dir.join(ANNOY_SIDECAR)
    }

    /// The projection the Annoy trees are built over (absent when they are built over the
    /// descriptors themselves).
    pub fn annoy_projection(&self) -> PathBuf {
        self.dir.join(ANNOY_PROJECTION)
    }

    /// The identity of each item in the Annoy trees (path and content), so photos added
    /// or removed since they were built are told apart.
    pub fn annoy_keys(&self) -> PathBuf {
        self.dir.join(ANNOY_KEYS)
    }

    /// The store row of each Annoy item when the trees were built.
    pub fn annoy_rows(&self) -> PathBuf {
        self.dir.join(ANNOY_ROWS)
    }

    /// For users of the Annoy file outside lookalike: line i is the catalog path of item i.
    pub fn annoy_paths(&self) -> PathBuf {
        self.dir.join(ANNOY_PATHS)
    }

    /// The near-identical groups the last `dupes --tier near` found, for the store it
    /// looked at: searches collapse them, the review steps through them.
    pub fn near_dupes(&self) -> PathBuf {
        self.dir.join(NEAR_DUPES)
    }

    /// Keep and drop decisions recorded while reviewing duplicates (by catalog key).
    pub fn review(&self) -> PathBuf {
        self.dir.join(REVIEW)
    }

    /// Takes the folder's lock (creating the folder), or says who holds it.
    pub fn lock(&self) -> Result<StateLock> {
        std::fs::create_dir_all(&self.dir).at("cannot create state folder", &self.dir)?;
        let path = self.dir.join(LOCK);
        let file = files::lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(self.dir.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("cannot lock", &path, e)),
        }
    }

    /// Removes temp files of writes that a crash interrupted; needs the lock.
    pub fn remove_stale_temp_files(&self, _lock: &StateLock) -> Result<()> {
        let listing = std::fs::read_dir(&self.dir).at("cannot list", &self.dir)?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            if TEMP_PREFIXES.iter().any(|p| name.to_string_lossy().starts_with(p)) {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_temp_files_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("s"));
        let lock = state.lock().unwrap();
        assert!(matches!(state.lock(), Err(Error::Locked(_))));
        for name in [".store-x", ".index-y", ".tmp-z", "store.lks"] {
            std::fs::write(state.path().join(name), b"x").unwrap();
        }
        state.remove_stale_temp_files(&lock).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["lock", "store.lks"]);
        drop(lock);
        assert!(state.lock().is_ok());
    }
}
