//! Shared search backends: a database that holds the search descriptors of a catalog for
//! many machines (`[index] backend = "postgres"`). Index runs publish to it
//! ([`SharedIndex::sync`]) and query nodes search it through [`SharedIndex::open`], a
//! [`VectorIndex`] like the local ones. The core has no database code: a face registers
//! the backends it links (the binary: `postgres`), as it does URL schemes.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::catalog::Metadata;
use crate::config::{Backend, Config};
use crate::descriptor::Space;
use crate::error::{Error, Result};
use crate::index::{Rows, VectorIndex};
use crate::store::Store;

/// One catalog's descriptors as a backend receives them: the store's entries (paths,
/// content hashes), their descriptors and metadata.
pub struct Published<'a> {
    /// The catalog's key (its name and a hash of where it is): one database holds many.
    pub catalog: &'a str,
    pub store: &'a Store,
    pub space: &'a Space,
    pub labels: &'a Metadata,
}

/// What a sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Where (the database, its password left out).
    pub at: String,
    /// The descriptor set searches use now.
    pub set: i64,
    pub items: usize,
    pub upserted: usize,
    pub deleted: usize,
    /// A new whitening (or other descriptor settings): a complete new set was published
    /// and switched to, and the old one dropped.
    pub new_set: bool,
    /// Unfinished sets of crashed runs that were dropped.
    pub repaired: usize,
}

/// Where a backend's schema stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaStatus {
    pub at: String,
    /// The schema version the database has (0 = none yet) and the one this build wants.
    pub version: u32,
    pub wanted: u32,
    /// Migrations applied by this call (`db migrate`).
    pub applied: Vec<u32>,
    /// The descriptor set searches of this catalog use, with its items, if any.
    pub set: Option<(i64, usize)>,
    /// The TLS version of the connection that answered ("TLSv1.3"); `None` unencrypted.
    pub tls: Option<String>,
}

pub trait SharedIndex: Send + Sync {
    /// Where the backend is, with no secrets: shown in messages and `info`.
    fn at(&self) -> String;

    /// Applies the schema migrations this build knows (idempotent).
    fn migrate(&self, catalog: &str) -> Result<SchemaStatus>;

    /// Refuses a backend that cannot be used as it is (unreachable, schema behind or
    /// ahead of this build), before an index run embeds anything.
    fn check(&self) -> Result<()>;

    /// The schema's version and the catalog's set, without changing anything.
    fn status(&self, catalog: &str) -> Result<SchemaStatus>;

    /// Makes the backend hold exactly these descriptors: only what changed is written; a
    /// new whitening publishes a complete new set that searches switch to at once.
    fn sync(&self, published: &Published) -> Result<SyncReport>;

    /// Stored rows ([`crate::model::row`]) that any machine made with `identity` for
    /// photos of these content hashes.
    fn features(&self, identity: &str, hashes: &[&str]) -> Result<Vec<(String, Vec<f32>)>>;

    /// Lists photos to embed, so that index runs on many machines share the work.
    fn enqueue(&self, identity: &str, hashes: &[&str]) -> Result<()>;

    /// Claims up to `n` of these photos for this process: none is done and no other live
    /// process holds them. The claim ends with [`Claim::done`], or, dropped (or the
    /// process killed), goes back to the queue for another machine.
    fn claim(&self, identity: &str, hashes: &[&str], n: usize) -> Result<Box<dyn Claim>>;

    /// A vector index over the catalog's set in the backend, for a snapshot. The inner
    /// error says why the backend cannot answer for its descriptors (it holds another
    /// set, or none yet); the outer one, that it failed.
    fn open(&self, snapshot: Opening) -> Result<std::result::Result<Box<dyn VectorIndex>, String>>;
}

/// What a snapshot searches a backend with.
pub struct Opening<'a> {
    pub catalog: &'a str,
    /// Its descriptors: the backend must hold the same fit.
    pub space: Arc<Space>,
    pub rows: Arc<Rows>,
    pub store: &'a Store,
    /// Turns the approximate index off: every row is compared.
    pub full_scan: bool,
}

/// Photos one index run holds to embed (see [`SharedIndex::claim`]).
pub trait Claim: Send {
    /// Their content hashes; empty when other machines hold all the rest.
    fn hashes(&self) -> &[String];

    /// Publishes their rows (photos that failed to decode are left out) and ends the claim.
    fn done(self: Box<Self>, rows: &[(String, Vec<f32>)]) -> Result<()>;
}

/// Opens the backend of one kind from the configuration.
pub type Opener = fn(config: &Config) -> Result<Arc<dyn SharedIndex>>;

static BACKENDS: RwLock<Vec<(Backend, Opener)>> = RwLock::new(Vec::new());

/// Makes `[index] backend = <kind>` open with `opener` (the binary registers postgres).
pub fn register(kind: Backend, opener: Opener) {
    let mut backends = BACKENDS.write().unwrap_or_else(|e| e.into_inner());
    backends.retain(|(k, _)| *k != kind);
    backends.push((kind, opener));
}

/// The configured shared backend; `None` for the local one.
pub fn open(config: &Config) -> Result<Option<Arc<dyn SharedIndex>>> {
    let kind = config.index.backend;
    if kind == Backend::Local {
        return Ok(None);
    }
    let opener = BACKENDS.read().unwrap_or_else(|e| e.into_inner()).iter().find(|(k, _)| *k == kind).map(|(_, o)| *o);
    match opener {
        Some(open) => open(config).map(Some),
        None => Err(Error::config(format!("index backend {:?} is not in this build", kind.name()))),
    }
}
