//! The core's errors: one enum whose variants a caller can match, each naming the file,
//! item or setting and the reason. What to run about it is the faces' business (the CLI
//! and the TUI word their own advice from [`Error::kind`]).

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("catalog {catalog} is not indexed yet (no {})", store.display())]
    NotIndexed { catalog: String, store: PathBuf },
    #[error("the store {} was made with {found}, the configuration asks for {wanted}", store.display())]
    Outdated { store: PathBuf, found: String, wanted: String },
    #[error("model weights not found at {}", .0.display())]
    WeightsMissing(PathBuf),
    #[error("weights {}: {reason}", path.display())]
    WeightsInvalid { path: PathBuf, reason: String },
    #[error("another lookalike is indexing {} right now", .0.display())]
    Locked(PathBuf),
    #[error("{what}: {reason}")]
    BadImage { what: String, reason: DecodeError },
    /// A region of the query photo that cannot be searched (`--crop`).
    #[error("crop {crop}: {reason}")]
    BadCrop { crop: String, reason: String },
    #[error("no catalog item {0:?}: give a product id or a path relative to the catalog")]
    UnknownItem(String),
    #[error("{item:?} names {} catalog files; give the path instead: {}", candidates.len(), candidates.join(", "))]
    AmbiguousItem { item: String, candidates: Vec<String> },
    #[error("{} is damaged ({reason})", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("catalog {catalog}: {reason}")]
    Catalog { catalog: String, reason: String },
    /// A published state (`lookalike publish`/`pull`): `at` is its URL or a file of it.
    #[error("published state {at}: {reason}")]
    Published { at: String, reason: String },
    #[error("{0}")]
    Config(String),
    /// `device` as configured ("cuda:1", or a name that is none).
    #[error("model device {device:?}: {reason}")]
    Device { device: String, reason: String },
    #[error("the model failed: {0}")]
    Model(String),
    #[error("{what}: {reason}")]
    Failed { what: String, reason: String },
    /// A shared search backend (`at` names it without secrets) failed or refused.
    #[error("index backend {at}: {reason}")]
    Backend { at: String, reason: String },
}

/// What went wrong, for callers that react differently (a face's advice, an HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotIndexed,
    Outdated,
    WeightsMissing,
    WeightsInvalid,
    Locked,
    BadImage,
    BadCrop,
    UnknownItem,
    AmbiguousItem,
    Damaged,
    Io,
    Catalog,
    Published,
    Config,
    Device,
    Model,
    Failed,
    Backend,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotIndexed { .. } => ErrorKind::NotIndexed,
            Error::Outdated { .. } => ErrorKind::Outdated,
            Error::WeightsMissing(_) => ErrorKind::WeightsMissing,
            Error::WeightsInvalid { .. } => ErrorKind::WeightsInvalid,
            Error::Locked(_) => ErrorKind::Locked,
            Error::BadImage { .. } => ErrorKind::BadImage,
            Error::BadCrop { .. } => ErrorKind::BadCrop,
            Error::UnknownItem(_) => ErrorKind::UnknownItem,
            Error::AmbiguousItem { .. } => ErrorKind::AmbiguousItem,
            Error::Damaged { .. } => ErrorKind::Damaged,
            Error::Io { .. } => ErrorKind::Io,
            Error::Catalog { .. } => ErrorKind::Catalog,
            Error::Published { .. } => ErrorKind::Published,
            Error::Config(_) => ErrorKind::Config,
            Error::Device { .. } => ErrorKind::Device,
            Error::Model(_) => ErrorKind::Model,
            Error::Failed { .. } => ErrorKind::Failed,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }

    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io { action, path: path.to_path_buf(), source }
    }

    pub fn damaged(path: &Path, reason: impl std::fmt::Display) -> Error {
        Error::Damaged { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::Config(message.into())
    }

    pub fn failed(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Failed { what: what.into(), reason: reason.to_string() }
    }

    /// The damaged file, for errors about one.
    pub fn damaged_path(&self) -> Option<&Path> {
        match self {
            Error::Damaged { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Why a file could not be used as an image.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file")]
    NotAFile,
    #[error("file is {size} bytes, larger than the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("empty file")]
    Empty,
    #[error("truncated JPEG: no end-of-image marker after the image data")]
    TruncatedJpeg,
    #[error("not a decodable image: {0}")]
    Image(#[from] image::ImageError),
}

impl DecodeError {
    /// An error from opening a file: "not a regular file" has its own variant.
    pub fn from_open(e: std::io::Error) -> DecodeError {
        match e.kind() {
            std::io::ErrorKind::InvalidInput => DecodeError::NotAFile,
            _ => DecodeError::Io(e),
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Error {
        Error::Model(e.to_string())
    }
}

/// `io::Result` with the action and path added.
pub trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

/// Adds what was being done to any error, as [`Error::Failed`].
pub trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::fmt::Display> Doing<T> for std::result::Result<T, E> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::failed(what(), e))
    }
}
