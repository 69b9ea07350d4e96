//! The store: embeddings persisted on disk, the source of truth for every search.
//!
//! `store.lks` (all integers little-endian):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic `LKSTORE\0` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | header length H |
//! | 16 | 4 | CRC-32 of the header |
//! | 20 | 4 | zero |
//! | 24 | H | header, JSON: model, preprocessing, dims, count, section offsets and CRCs |
//! | 4096 | count x dims x 4 | f32 vectors, row i = manifest entry i, memory-mapped |
//! | after | M | manifest: one JSON object per line (path, size, mtime_ns, hash), sorted by path |
//!
//! The file is replaced atomically (temp file, fsync, rename). While an index run is
//! embedding, finished batches go to `journal.lkj` (length + CRC framed records, fsynced per
//! batch) so an interrupted run resumes without embedding them again.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::files::{self, Frame, FrameError};

const FRAME: Frame = Frame { magic: b"LKSTORE\0", version: 1 };
const VECTORS_OFFSET: u64 = 4096;
const JOURNAL_MAGIC: &[u8; 8] = b"LKJOURN\0";
const HASH_BYTES: usize = 16;

/// Content hash of a stream: the first 128 bits of its SHA-256, in hex.
pub fn content_hash(mut reader: impl Read) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(files::hex(&hasher.finalize()[..HASH_BYTES]))
}

/// One stored image, keyed by its path relative to the catalog root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: String,
}

/// What produced the vectors; a store whose identity differs from the engine's is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub model: String,
    pub preprocessing: String,
    pub dims: usize,
    /// The colour descriptor after the features ([`crate::colour::COLOUR_ID`]); empty in
    /// stores made before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub colour: String,
}

impl Identity {
    /// Whether a store of `old` becomes one of `self` by computing colours from the photos
    /// (same model and preprocessing, so the same features, which are kept: nothing is
    /// embedded).
    /// One string of everything that makes a row: rows of equal keys are interchangeable
    /// between machines.
    pub fn key(&self) -> String {
        format!("{}|{}|{}|{}", self.model, self.preprocessing, self.colour, self.dims)
    }

    pub fn recolours(&self, old: &Identity) -> bool {
        self.model == old.model
            && self.preprocessing == old.preprocessing
            && self.colour != old.colour
            && !self.colour.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    #[serde(flatten)]
    identity: Identity,
    count: usize,
    vectors_offset: u64,
    vectors_crc: u32,
    manifest_offset: u64,
    manifest_len: u64,
    manifest_crc: u32,
    /// The kinds of device whose model made the rows ("cpu", "cuda"): one store may hold
    /// rows of both (README, GPU); empty in stores made before devices were recorded, all
    /// on the CPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    embedded_on: Vec<String>,
}

/// An open, verified store, its vectors memory-mapped.
pub struct Store {
    path: PathBuf,
    header: Header,
    entries: Vec<Entry>,
    map: Mmap,
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::damaged(path, why)
}

impl Store {
    /// Opens and verifies a store: magic, version, and the CRC of every section.
    pub fn open(path: &Path) -> Result<Store> {
        if cfg!(target_endian = "big") {
            return Err(Error::config("the store format is little-endian; this machine is not"));
        }
        let file = File::open(path).at("cannot open store", path)?;
        // SAFETY: stores are only ever replaced by rename, never written in place.
        let map = unsafe { Mmap::map(&file) }.at("cannot map store", path)?;
        if map.len() < VECTORS_OFFSET as usize {
            return Err(corrupt(path, "shorter than its header"));
        }
        let header_bytes = FRAME.decode(&map, VECTORS_OFFSET as usize).map_err(|e| match e {
            FrameError::Foreign => corrupt(path, "not a lookalike store"),
            FrameError::Version(v) => {
                corrupt(path, format!("format version {v}, this lookalike reads {}", FRAME.version))
            }
            FrameError::Reserved => corrupt(path, "reserved header bytes are not zero"),
            FrameError::Truncated => corrupt(path, "header length out of range"),
            FrameError::Checksum => corrupt(path, "header checksum mismatch"),
        })?;
        let header: Header = serde_json::from_slice(header_bytes).map_err(|e| corrupt(path, e))?;
        let vec_bytes = (header.count as u64)
            .checked_mul(header.identity.dims as u64 * 4)
            .ok_or_else(|| corrupt(path, "count out of range"))?;
        let expected_len = header.vectors_offset + vec_bytes + header.manifest_len;
        if header.vectors_offset != VECTORS_OFFSET
            || header.manifest_offset != header.vectors_offset + vec_bytes
            || map.len() as u64 != expected_len
        {
            return Err(corrupt(path, format!("size {} does not match its header", map.len())));
        }
        let vectors = &map[header.vectors_offset as usize..header.manifest_offset as usize];
        if crc32fast::hash(vectors) != header.vectors_crc {
            return Err(corrupt(path, "vector checksum mismatch"));
        }
        let manifest = &map[header.manifest_offset as usize..];
        if crc32fast::hash(manifest) != header.manifest_crc {
            return Err(corrupt(path, "manifest checksum mismatch"));
        }
        let entries = manifest
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_slice::<Entry>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(path, e))?;
        if entries.len() != header.count {
            return Err(corrupt(path, "manifest and vector counts differ"));
        }
        Ok(Store { path: path.to_path_buf(), header, entries, map })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn identity(&self) -> &Identity {
        &self.header.identity
    }

    pub fn dims(&self) -> usize {
        self.header.identity.dims
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The kinds of device whose model made the rows, in the order first used.
    pub fn embedded_on(&self) -> Vec<String> {
        match self.header.embedded_on.is_empty() {
            true => vec!["cpu".to_string()],
            false => self.header.embedded_on.clone(),
        }
    }

    /// CRC-32 of all vectors: changes whenever the searchable content changes.
    pub fn vectors_crc(&self) -> u32 {
        self.header.vectors_crc
    }

    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }

    /// All vectors, row-major.
    pub fn vectors(&self) -> &[f32] {
        bytemuck::cast_slice(&self.map[self.header.vectors_offset as usize..self.header.manifest_offset as usize])
    }

    pub fn vector(&self, i: usize) -> &[f32] {
        let d = self.dims();
        &self.vectors()[i * d..(i + 1) * d]
    }

    /// Row of a catalog path, if stored.
    pub fn find(&self, path: &str) -> Option<usize> {
        self.entries.binary_search_by(|e| e.path.as_str().cmp(path)).ok()
    }
}

/// Writes a store atomically: entries must be sorted by path, `vector(i)` gives row i;
/// `embedded_on` as [`Store::embedded_on`].
pub fn write<'a>(
    path: &Path,
    identity: &Identity,
    embedded_on: &[String],
    entries: &[Entry],
    vector: impl Fn(usize) -> Cow<'a, [f32]>,
) -> Result<()> {
    debug_assert!(entries.windows(2).all(|w| w[0].path < w[1].path));
    let mut tmp = files::temp_beside(path, ".store-")?;
    let context = "cannot write store";
    let mut manifest = Vec::new();
    for e in entries {
        manifest.extend_from_slice(&json(e));
        manifest.push(b'\n');
    }
    let mut vectors_crc = crc32fast::Hasher::new();
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        w.write_all(&[0u8; VECTORS_OFFSET as usize]).at(context, path)?;
        for i in 0..entries.len() {
            let v = vector(i);
            if v.len() != identity.dims {
                let reason = format!("vector {i} has {} dims, expected {}", v.len(), identity.dims);
                return Err(Error::failed(format!("writing store {}", path.display()), reason));
            }
            let bytes: &[u8] = bytemuck::cast_slice(&v);
            vectors_crc.update(bytes);
            w.write_all(bytes).at(context, path)?;
        }
        w.write_all(&manifest).at(context, path)?;
        w.flush().at(context, path)?;
    }
    let vec_bytes = (entries.len() * identity.dims * 4) as u64;
    let header = Header {
        identity: identity.clone(),
        count: entries.len(),
        vectors_offset: VECTORS_OFFSET,
        vectors_crc: vectors_crc.finalize(),
        manifest_offset: VECTORS_OFFSET + vec_bytes,
        manifest_len: manifest.len() as u64,
        manifest_crc: crc32fast::hash(&manifest),
        embedded_on: embedded_on.to_vec(),
    };
    let head = FRAME.encode(&json(&header));
    let file = tmp.as_file_mut();
    file.seek(SeekFrom::Start(0)).at(context, path)?;
    file.write_all(&head).at(context, path)?;
    file.sync_all().at(context, path)?;
    files::persist(tmp, path)
}

/// JSON of a plain data type (no maps with non-string keys), which cannot fail.
pub(crate) fn json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain data serializes")
}

/// [`json`], indented, for files people read.
pub(crate) fn json_pretty(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("plain data serializes")
}

/// Embeddings finished by an index run that has not yet rewritten the store.
///
/// Vectors stay in the file: an index run keeps only where each one lies, so its memory
/// does not grow with the number of images it embeds.
pub struct Journal {
    path: PathBuf,
    file: File,
    dims: usize,
    /// Bytes of whole records, where the next one goes.
    len: u64,
}

/// One journal record: its entry and the file offset of its vector.
pub struct Journaled {
    pub entry: Entry,
    pub vector_at: u64,
}

/// A read-only view of a journal's vectors, by the offsets [`Journal::open`] and
/// [`Journal::append`] give.
pub struct JournalVectors {
    map: Mmap,
    dims: usize,
}

impl JournalVectors {
    pub fn get(&self, at: u64) -> Vec<f32> {
        self.map[at as usize..][..self.dims * 4]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

impl Journal {
    /// Opens the journal, keeping the valid records of a run with the same identity
    /// (a torn last record is cut off) and discarding one made by another model.
    pub fn open(path: &Path, identity: &Identity) -> Result<(Journal, Vec<Journaled>)> {
        let context = "cannot open journal";
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(context, path)?;
        let id = json(identity);
        let mut head = JOURNAL_MAGIC.to_vec();
        head.extend_from_slice(&(id.len() as u32).to_le_bytes());
        head.extend_from_slice(&id);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).at(context, path)?;
        let mut records = Vec::new();
        let mut valid = head.len();
        if bytes.starts_with(&head) {
            let mut at = head.len();
            while let Some(rec) = bytes.get(at..at + 8) {
                let len = u32::from_le_bytes(rec[..4].try_into().unwrap()) as usize;
                let crc = u32::from_le_bytes(rec[4..8].try_into().unwrap());
                let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
                    break;
                };
                if crc32fast::hash(payload) != crc {
                    break;
                }
                match decode_entry(payload, identity.dims) {
                    Some(entry) => records.push(Journaled { entry, vector_at: vector_at(at, len, identity.dims) }),
                    None => break,
                }
                at += 8 + len;
                valid = at;
            }
        } else {
            file.set_len(0).at(context, path)?;
            file.seek(SeekFrom::Start(0)).at(context, path)?;
            file.write_all(&head).at(context, path)?;
        }
        file.set_len(valid as u64).at(context, path)?;
        file.seek(SeekFrom::Start(valid as u64)).at(context, path)?;
        file.sync_all().at(context, path)?;
        Ok((Journal { path: path.to_path_buf(), file, dims: identity.dims, len: valid as u64 }, records))
    }

    /// Appends a batch and makes it durable before returning; gives where each vector
    /// lies in the file.
    pub fn append(&mut self, batch: &[(Entry, &[f32])]) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut offsets = Vec::with_capacity(batch.len());
        for (entry, vector) in batch {
            if vector.len() != self.dims {
                let reason = format!("{} dims, expected {}", vector.len(), self.dims);
                return Err(Error::failed(format!("journal record for {}", entry.path), reason));
            }
            let payload = encode_record(entry, vector);
            offsets.push(vector_at(self.len as usize + out.len(), payload.len(), self.dims));
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
        }
        self.file.write_all(&out).at("cannot append to", &self.path)?;
        self.file.sync_data().at("cannot sync", &self.path)?;
        self.len += out.len() as u64;
        Ok(offsets)
    }

    /// Maps the journal's records for reading their vectors.
    pub fn vectors(&self) -> Result<JournalVectors> {
        // SAFETY: only this process writes the journal (the state folder is locked), and
        // only by appending, which leaves mapped records in place.
        let map = unsafe { Mmap::map(&self.file) }.at("cannot map", &self.path)?;
        Ok(JournalVectors { map, dims: self.dims })
    }
}

/// File offset of the vector of the record at `record`: the last part of its payload.
fn vector_at(record: usize, payload_len: usize, dims: usize) -> u64 {
    (record + 8 + payload_len - dims * 4) as u64
}

fn encode_record(e: &Entry, v: &[f32]) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + e.path.len() + 16 + 2 + e.hash.len() + v.len() * 4);
    p.extend_from_slice(&(e.path.len() as u16).to_le_bytes());
    p.extend_from_slice(e.path.as_bytes());
    p.extend_from_slice(&e.size.to_le_bytes());
    p.extend_from_slice(&e.mtime_ns.to_le_bytes());
    p.extend_from_slice(&(e.hash.len() as u16).to_le_bytes());
    p.extend_from_slice(e.hash.as_bytes());
    p.extend_from_slice(bytemuck::cast_slice(v));
    p
}

/// The entry of a record payload, which must end with exactly `dims` floats.
fn decode_entry(p: &[u8], dims: usize) -> Option<Entry> {
    let mut at = 0;
    let mut take = |n: usize| {
        let s = p.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let path_len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
    let path = String::from_utf8(take(path_len)?.to_vec()).ok()?;
    let size = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let mtime_ns = i64::from_le_bytes(take(8)?.try_into().ok()?);
    let hash_len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
    let hash = String::from_utf8(take(hash_len)?.to_vec()).ok()?;
    take(dims * 4)?;
    (at == p.len()).then_some(Entry { path, size, mtime_ns, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity { model: "m".into(), preprocessing: "p".into(), dims: 4, colour: String::new() }
    }

    fn entry(path: &str) -> Entry {
        Entry { path: path.into(), size: 1, mtime_ns: 2, hash: "ab".into() }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.lks");
        let vecs = [[1.0f32, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]];
        write(&path, &identity(), &["cpu".into(), "cuda".into()], &[entry("a"), entry("b")], |i| {
            vecs[i].as_slice().into()
        })
        .unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.vector(1), &vecs[1]);
        assert_eq!(store.find("b"), Some(1));
        assert_eq!(store.identity(), &identity());
        assert_eq!(store.embedded_on(), ["cpu", "cuda"]);
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.lks");
        let vecs = [[0.5f32; 4]];
        write(&path, &identity(), &[], &[entry("a")], |i| vecs[i].as_slice().into()).unwrap();
        // Stores made before devices were recorded were made on the CPU.
        assert_eq!(Store::open(&path).unwrap().embedded_on(), ["cpu"]);
        let good = std::fs::read(&path).unwrap();
        let header_len = 24 + u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
        let meaningful = (0..header_len).chain(VECTORS_OFFSET as usize..good.len());
        for at in meaningful {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(Store::open(&path).is_err(), "flip at {at} not detected");
        }
        for len in [0, 100, 4096, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            let err = Store::open(&path).err().expect("truncation not detected");
            assert_eq!(err.damaged_path(), Some(path.as_path()), "{err}");
        }
    }

    #[test]
    fn journal_keeps_whole_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.lkj");
        let (mut j, recs) = Journal::open(&path, &identity()).unwrap();
        assert!(recs.is_empty());
        j.append(&[(entry("a"), &[1.0; 4]), (entry("b"), &[2.0; 4])]).unwrap();
        drop(j);
        let full = std::fs::metadata(&path).unwrap().len();
        // Tear the last record, as a kill during a write would.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(full - 3).unwrap();
        let (mut j, recs) = Journal::open(&path, &identity()).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].entry, entry("a"));
        assert_eq!(j.vectors().unwrap().get(recs[0].vector_at), vec![1.0; 4]);
        let appended = j.append(&[(entry("c"), &[3.0; 4])]).unwrap();
        assert_eq!(j.vectors().unwrap().get(appended[0]), vec![3.0; 4]);
        drop(j);
        let (j, recs) = Journal::open(&path, &identity()).unwrap();
        assert_eq!(recs.iter().map(|r| r.entry.path.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(recs[1].vector_at, appended[0]);
        assert_eq!(j.vectors().unwrap().get(recs[1].vector_at), vec![3.0; 4]);
        // Another model's journal is discarded, not reused.
        let other = Identity { model: "other".into(), ..identity() };
        let (_, recs) = Journal::open(&path, &other).unwrap();
        assert!(recs.is_empty());
    }
}
