//! Published states, for many machines searching one index: `publish` uploads a state
//! folder under a remote prefix as a new immutable version (`versions/<v>/...`), then
//! writes the small pointer `CURRENT` naming it, last. `pull` reads the pointer, downloads
//! that version into a local folder, checks every file's size and CRC32 and only then
//! switches the local copy to it. A reader thus never sees a half-published version, and a
//! version pruned while it downloads is noticed (a file is gone) and the pointer read again.
//!
//! The core has no network code: a face registers the [`Remote`] of a URL scheme (the
//! binary: S3) with [`crate::schemes`], which opens and pulls published states by URL.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{self, Config};
use crate::error::{Error, IoContext, Result};
use crate::files::{self, hex};
use crate::state::{StateDir, StateLock, PUBLISHED};

/// The pointer object: the manifest of the current version.
pub const POINTER: &str = "CURRENT";
const VERSIONS: &str = "versions/";
const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;
/// Pulls that find the pointer moved (a version pruned under them) before giving up.
const PULL_TRIES: usize = 5;
/// Versions a publish keeps when not told: the new one and two before it, so a reader
/// that read the pointer just before a publish still finds its files.
pub const DEFAULT_KEEP: usize = 3;
/// The largest pointer or manifest read into memory.
pub const SMALL_OBJECT_BYTES: u64 = 16 << 20;
/// Local versions kept besides the current one, for processes still opening them.
const LOCAL_KEEP: usize = 2;

/// A remote prefix where states are published (an S3 prefix). Keys are relative to it.
pub trait Remote: Send + Sync {
    /// The prefix as a URL, for messages.
    fn name(&self) -> String;
    /// A short name and the bytes that identify the prefix and its endpoint (never
    /// credentials), for the name of its local folder.
    fn local_key(&self) -> (String, Vec<u8>);
    /// A small object's bytes (at most [`SMALL_OBJECT_BYTES`]; a larger one is an error),
    /// or `None` when there is no such object.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()>;
    /// Streams a local file up to `key`.
    fn upload(&self, key: &str, file: &Path) -> Result<()>;
    /// Streams `key` into a new local file; `Ok(false)` when there is no such object.
    fn download(&self, key: &str, file: &Path) -> Result<bool>;
    /// Every key under `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    fn delete(&self, key: &str) -> Result<()>;
}

/// One published version: what the pointer and `versions/<v>/manifest.json` hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub version: String,
    /// One more than the version the pointer named when this one was published.
    pub sequence: u64,
    /// Seconds since the Unix epoch.
    pub published_at: u64,
    /// The catalog the store indexes (its locators are relative to it).
    pub catalog: String,
    pub items: usize,
    pub files: Vec<PublishedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedFile {
    pub name: String,
    pub size: u64,
    pub crc32: u32,
}

impl Manifest {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// A manifest from the remote, refused unless every name in it is one lookalike
    /// publishes (so a hostile pointer cannot name a path outside the local folder).
    fn parse(bytes: &[u8], at: &str) -> Result<Manifest> {
        let bad = |reason: String| Error::Published { at: at.to_string(), reason };
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a lookalike manifest: {e}")))?;
        if m.format != FORMAT {
            return Err(bad(format!("manifest format {} (this lookalike reads {FORMAT})", m.format)));
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-';
        if m.version.is_empty() || !m.version.chars().all(plain) {
            return Err(bad(format!("version {:?} is not a version name", m.version)));
        }
        if let Some(f) = m.files.iter().find(|f| !PUBLISHED.contains(&f.name.as_str())) {
            return Err(bad(format!("the manifest names {:?}, not a file of a state folder", f.name)));
        }
        let store = PUBLISHED[0];
        if !m.files.iter().any(|f| f.name == store) {
            return Err(bad("the manifest names no store".into()));
        }
        Ok(m)
    }
}

/// What `publish` did.
#[derive(Debug, Serialize)]
pub struct PublishReport {
    pub to: String,
    pub manifest: Manifest,
    /// Older versions deleted.
    pub pruned: Vec<String>,
}

/// What `pull` did.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub from: String,
    pub manifest: Manifest,
    /// The local state folder of the version.
    pub dir: PathBuf,
    /// Whether it was downloaded now (`false`: the local copy was current).
    pub downloaded: bool,
}

fn version_key(version: &str, name: &str) -> String {
    format!("{VERSIONS}{version}/{name}")
}

fn read_pointer(remote: &dyn Remote) -> Result<Option<Manifest>> {
    let at = format!("{}/{POINTER}", remote.name());
    remote.get(POINTER)?.map(|bytes| Manifest::parse(&bytes, &at)).transpose()
}

/// CRC32 and size of a local file, read in chunks.
fn checksum(path: &Path) -> Result<(u64, u32)> {
    let mut file = std::fs::File::open(path).at("cannot open", path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).at("cannot read", path)?;
        if n == 0 {
            return Ok((size, hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// Uploads a state folder as a new version of `catalog`'s state (`items` in its store),
/// moves the pointer to it, then deletes all but the newest `keep` versions. Needs the
/// folder's lock, so no index run changes a file while it is read
/// (`Engine::publish` takes it and checks the store first).
pub fn publish(
    state: &StateDir,
    _lock: &StateLock,
    catalog: String,
    items: usize,
    remote: &dyn Remote,
    keep: usize,
) -> Result<PublishReport> {
    let mut files = Vec::new();
    for name in PUBLISHED {
        let path = state.path().join(name);
        if path.is_file() {
            let (size, crc32) = checksum(&path)?;
            files.push(PublishedFile { name: name.to_string(), size, crc32 });
        }
    }
    let sequence = read_pointer(remote)?.map_or(1, |m| m.sequence + 1);
    let published_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // The suffix keeps two publishers that read the same pointer from writing one version.
    let nonce = {
        use sha2::Digest;
        let seed = format!("{:?}{}{:?}", std::time::SystemTime::now(), std::process::id(), files);
        hex(&sha2::Sha256::digest(seed.as_bytes())[..4])
    };
    let version = format!("v{sequence:06}-{nonce}");
    for f in &files {
        remote.upload(&version_key(&version, &f.name), &state.path().join(&f.name))?;
    }
    let manifest = Manifest { format: FORMAT, version: version.clone(), sequence, published_at, catalog, items, files };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::failed("cannot write the manifest", e))?;
    remote.put(&version_key(&version, MANIFEST), json.clone())?;
    // Last: from here on readers see the new version, whole.
    remote.put(POINTER, json)?;
    let pruned = prune(remote, keep.max(1), &version)?;
    Ok(PublishReport { to: remote.name(), manifest, pruned })
}

/// Deletes every version but the newest `keep` (and `current`), oldest first.
fn prune(remote: &dyn Remote, keep: usize, current: &str) -> Result<Vec<String>> {
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in remote.list(VERSIONS)? {
        if let Some((version, _)) = key.strip_prefix(VERSIONS).and_then(|rest| rest.split_once('/')) {
            versions.entry(version.to_string()).or_default().push(key.clone());
        }
    }
    // Names sort by sequence (zero-padded); the nonce orders two of one sequence.
    let old: Vec<String> = versions.keys().rev().skip(keep).filter(|v| *v != current).cloned().collect();
    for version in old.iter().rev() {
        for key in &versions[version] {
            remote.delete(key)?;
        }
    }
    Ok(old)
}

/// The local folder of a remote's pulled versions: `<pulled dir>/<name>-<hash>`.
pub fn local_folder(remote: &dyn Remote, config: &Config) -> Result<PathBuf> {
    let base = match &config.pulled_dir {
        Some(dir) => dir.clone(),
        None => config::data_dir()
            .map(|d| d.join("pulled"))
            .ok_or_else(|| Error::config("no data folder: set LOOKALIKE_PULLED_DIR or [store] pulled_dir"))?,
    };
    let (name, key) = remote.local_key();
    Ok(base.join(files::keyed_name(&name, &key)))
}

/// Brings the local copy of `remote` to the version its pointer names (see the module
/// docs) and returns that version's state folder. Pulls into one folder take turns.
pub fn pull(remote: &dyn Remote, local: &Path) -> Result<PullReport> {
    std::fs::create_dir_all(local.join(VERSIONS)).at("cannot create folder", local)?;
    let lock_path = local.join("lock");
    let lock = files::lock_file(&lock_path)?;
    lock.lock().at("cannot lock", &lock_path)?;
    // Under the lock, any download folder is a killed pull's.
    for entry in std::fs::read_dir(local).at("cannot list", local)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(files::TEMP_PREFIX) {
            std::fs::remove_dir_all(entry.path()).at("cannot remove", &entry.path())?;
        }
    }
    let current_file = local.join(POINTER);
    for _ in 0..PULL_TRIES {
        let manifest = read_pointer(remote)?.ok_or_else(|| Error::Published {
            at: remote.name(),
            reason: format!("nothing is published there (no {POINTER} pointer): run `lookalike publish` first"),
        })?;
        let dir = local.join(VERSIONS).join(&manifest.version);
        let done =
            |downloaded| PullReport { from: remote.name(), manifest: manifest.clone(), dir: dir.clone(), downloaded };
        let current = std::fs::read_to_string(&current_file).ok();
        if current.as_deref() == Some(manifest.version.as_str()) && dir.is_dir() {
            return Ok(done(false));
        }
        // Versions are immutable: a folder that exists was checked when it was pulled.
        let downloaded = !dir.is_dir();
        if downloaded && !download(remote, &manifest, local, &dir)? {
            continue;
        }
        files::write_atomic(&current_file, manifest.version.as_bytes())?;
        prune_local(local, &manifest.version)?;
        return Ok(done(downloaded));
    }
    Err(Error::Published {
        at: remote.name(),
        reason: format!("the published version changed under every one of {PULL_TRIES} downloads; try again"),
    })
}

/// Downloads a version into a temp folder, checks it and renames it to `dir`; `false`
/// when a file of it is gone (the version was pruned: read the pointer again).
fn download(remote: &dyn Remote, manifest: &Manifest, local: &Path, dir: &Path) -> Result<bool> {
    let tmp = tempfile::Builder::new()
        .prefix(files::TEMP_PREFIX)
        .tempdir_in(local)
        .at("cannot create a download folder in", local)?;
    for f in &manifest.files {
        let key = version_key(&manifest.version, &f.name);
        let path = tmp.path().join(&f.name);
        if !remote.download(&key, &path)? {
            return Ok(false);
        }
        let (size, crc32) = checksum(&path)?;
        if (size, crc32) != (f.size, f.crc32) {
            return Err(Error::Published {
                at: format!("{}/{key}", remote.name()),
                reason: format!(
                    "the download does not match the manifest ({size} bytes, CRC32 {crc32:08x}; published: {} bytes, CRC32 {:08x}); the local copy is unchanged",
                    f.size, f.crc32
                ),
            });
        }
        std::fs::File::open(&path).and_then(|file| file.sync_all()).at("cannot sync", &path)?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dir).at("cannot move the download to", dir)?;
    Ok(true)
}

/// Removes local versions older than the newest [`LOCAL_KEEP`] besides `current`.
fn prune_local(local: &Path, current: &str) -> Result<()> {
    let versions_dir = local.join(VERSIONS);
    let mut names: Vec<String> = std::fs::read_dir(&versions_dir)
        .at("cannot list", &versions_dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != current)
        .collect();
    names.sort();
    for name in names.iter().rev().skip(LOCAL_KEEP) {
        let path = versions_dir.join(name);
        std::fs::remove_dir_all(&path).at("cannot remove", &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str, names: &[&str]) -> Vec<u8> {
        let files: Vec<PublishedFile> =
            names.iter().map(|n| PublishedFile { name: n.to_string(), size: 1, crc32: 2 }).collect();
        let m = Manifest {
            format: FORMAT,
            version: version.into(),
            sequence: 1,
            published_at: 0,
            catalog: "c".into(),
            items: 1,
            files,
        };
        serde_json::to_vec(&m).unwrap()
    }

    #[test]
    fn a_hostile_manifest_is_refused() {
        assert!(Manifest::parse(&manifest("v000001-ab", &["store.lks", "index.ann"]), "p").is_ok());
        let refused = |bytes: Vec<u8>| Manifest::parse(&bytes, "s3://b/p/CURRENT").unwrap_err().to_string();
        assert!(refused(manifest("../../etc", &["store.lks"])).contains("not a version name"));
        assert!(refused(manifest("v1", &["store.lks", "../../.bashrc"])).contains("not a file of a state folder"));
        assert!(refused(manifest("v1", &["index.ann"])).contains("names no store"));
        assert!(refused(b"<html>".to_vec()).contains("s3://b/p/CURRENT: not a lookalike manifest"));
    }
}
