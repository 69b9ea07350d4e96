//! File primitives every persisted format shares: atomic replacement, the framed header
//! of `store.lks` and `descriptors.lkd`, regular-file opening, hex.

use std::fs::File;
use std::path::Path;

use std::io::Read;

use crate::error::{DecodeError, Error, IoContext, Result};

/// Prefix of the temp files `write_atomic` leaves behind if the process dies mid-write.
pub const TEMP_PREFIX: &str = ".tmp-";

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<name>-<hash of key>`: a folder name that keeps apart two things of one name.
pub fn keyed_name(name: &str, key: &[u8]) -> String {
    use sha2::Digest;
    format!("{name}-{}", hex(&sha2::Sha256::digest(key)[..6]))
}

/// Opens a file for reading without ever blocking on a FIFO or device that carries an
/// image's name; anything but a regular file is an `InvalidInput` error.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
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

/// Photos larger than this are refused before decoding.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads at most [`MAX_FILE_BYTES`]; more is an error, not a silent cut.
pub fn read_bounded(reader: impl Read) -> Result<Vec<u8>, DecodeError> {
    let mut bytes = Vec::new();
    reader.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DecodeError::TooLarge { size: bytes.len() as u64, limit: MAX_FILE_BYTES });
    }
    Ok(bytes)
}

/// An image file's bytes: regular files only (never blocking on a FIFO), refused beyond
/// [`MAX_FILE_BYTES`] before reading.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DecodeError> {
    let file = open_regular(path).map_err(DecodeError::from_open)?;
    let len = file.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Err(DecodeError::TooLarge { size: len, limit: MAX_FILE_BYTES });
    }
    read_bounded(file)
}

/// The folder a file goes in; `.` for a bare file name.
pub fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A temp file next to `path`, for an atomic replacement of it.
pub fn temp_beside(path: &Path, prefix: &str) -> Result<tempfile::NamedTempFile> {
    let dir = folder_of(path);
    tempfile::Builder::new().prefix(prefix).tempfile_in(dir).map_err(|e| Error::Io {
        action: "cannot create a temporary file in",
        path: dir.to_path_buf(),
        source: e,
    })
}

/// Writes a small file so that readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_beside(path, TEMP_PREFIX)?;
    std::fs::write(tmp.path(), bytes).at("cannot write", path)?;
    persist(tmp, path)
}

/// Renames a finished temp file over `path` and makes the rename durable.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    // Temp files are created private; the result is an ordinary readable file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).at("cannot write", path)?;
    }
    tmp.persist(path).map_err(|e| e.error).at("cannot replace", path)?;
    let dir = folder_of(path);
    File::open(dir).and_then(|d| d.sync_all()).at("cannot sync", dir)
}

/// Opens (creating) a lock file, unlocked; the caller takes the kind of lock it needs.
pub fn lock_file(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).at("cannot open lock file", path)
}

pub fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("cannot remove", path, e)),
        _ => Ok(()),
    }
}

/// The frame at the start of `store.lks` and `descriptors.lkd` (little-endian): 8 bytes of
/// magic, u32 format version, u32 header length H, u32 CRC-32 of the header, u32 zero,
/// then H bytes of JSON header.
pub struct Frame {
    pub magic: &'static [u8; 8],
    pub version: u32,
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Too short or another magic: not this kind of file.
    Foreign,
    Version(u32),
    Reserved,
    /// The header would not fit in `max_end` bytes, or the file ends inside it.
    Truncated,
    Checksum,
}

impl Frame {
    pub const PREFIX: usize = 24;

    pub fn encode(&self, json: &[u8]) -> Vec<u8> {
        let mut head = Vec::with_capacity(Self::PREFIX + json.len());
        head.extend_from_slice(self.magic);
        head.extend_from_slice(&self.version.to_le_bytes());
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&crc32fast::hash(json).to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(json);
        head
    }

    /// The JSON header of `bytes`, which must end by `max_end`.
    pub fn decode<'a>(&self, bytes: &'a [u8], max_end: usize) -> Result<&'a [u8], FrameError> {
        if bytes.len() < Self::PREFIX || &bytes[..8] != self.magic {
            return Err(FrameError::Foreign);
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        if word(8) != self.version {
            return Err(FrameError::Version(word(8)));
        }
        if word(20) != 0 {
            return Err(FrameError::Reserved);
        }
        let end = Self::PREFIX + word(12) as usize;
        let json = bytes.get(Self::PREFIX..end).filter(|_| end <= max_end).ok_or(FrameError::Truncated)?;
        if crc32fast::hash(json) != word(16) {
            return Err(FrameError::Checksum);
        }
        Ok(json)
    }
}
