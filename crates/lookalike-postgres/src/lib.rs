//! lookalike's PostgreSQL backend (`[index] backend = "postgres"`): the search descriptors
//! of every catalog in one database with pgvector, so that many query nodes (CLI, TUI,
//! `lookalike serve`) search one copy and index runs on any machine keep it current.
//!
//! - [`schema`]: versioned migrations (`lookalike db migrate`), checked before every use.
//! - [`sync`]: an index run's descriptors written to the database, only what changed; a
//!   new whitening publishes a complete new set that searches switch to atomically.
//! - [`work`]: index runs on many machines sharing the embedding of one catalog.
//! - [`search`]: a [`VectorIndex`](lookalike_core::index::VectorIndex) answered by the
//!   database's HNSW index (or its exact scan), filters as SQL conditions.
//! - [`tls`]: TLS with libpq's `sslmode` meanings, through rustls.
//!
//! The client is rust-postgres's async one in a private runtime (the core is synchronous,
//! as with the S3 source); several hosts and `target_session_attrs` in the URL give
//! failover to a read replica for searches.

mod db;
pub mod schema;
pub mod search;
pub mod sync;
pub mod tls;
pub mod work;

use std::sync::Arc;

use lookalike_core::backend::{self, Claim, Opening, Published, SchemaStatus, SharedIndex, SyncReport};
use lookalike_core::config::{Backend, Config, PostgresConfig};
use lookalike_core::index::VectorIndex;
use lookalike_core::{Error, Result};

pub use db::Db;

/// Makes `[index] backend = "postgres"` work in this process.
pub fn register() {
    backend::register(Backend::Postgres, |config| Ok(Arc::new(Postgres::connect(config)?)));
}

/// The backend: a connection pool and the HNSW settings.
pub struct Postgres {
    db: Arc<Db>,
    settings: PostgresConfig,
}

impl Postgres {
    /// A pool for the configured URL; nothing connects until the first use.
    pub fn connect(config: &Config) -> Result<Postgres> {
        let url = config.postgres.url.as_ref().ok_or_else(|| {
            Error::config("index backend postgres needs a database: set [index] postgres_url or LOOKALIKE_POSTGRES_URL")
        })?;
        Ok(Postgres {
            db: Arc::new(Db::connect(url.expose(), config.postgres.pool_size)?),
            settings: config.postgres.clone(),
        })
    }
}

impl SharedIndex for Postgres {
    fn at(&self) -> String {
        self.db.at().to_string()
    }

    fn migrate(&self, catalog: &str) -> Result<SchemaStatus> {
        let applied = schema::migrate(&self.db)?;
        Ok(SchemaStatus { applied, ..self.status(catalog)? })
    }

    fn check(&self) -> Result<()> {
        self.db.read("checking the schema", |object| async move { schema::check(&**object).await })
    }

    fn status(&self, catalog: &str) -> Result<SchemaStatus> {
        schema::status(&self.db, catalog)
    }

    fn sync(&self, published: &Published) -> Result<SyncReport> {
        sync::sync(&self.db, &self.settings, published)
    }

    fn features(&self, identity: &str, hashes: &[&str]) -> Result<Vec<(String, Vec<f32>)>> {
        work::features(&self.db, identity, hashes)
    }

    fn enqueue(&self, identity: &str, hashes: &[&str]) -> Result<()> {
        work::enqueue(&self.db, identity, hashes)
    }

    fn claim(&self, identity: &str, hashes: &[&str], n: usize) -> Result<Box<dyn Claim>> {
        Ok(Box::new(work::claim(&self.db, identity, hashes, n)?))
    }

    fn open(&self, snapshot: Opening) -> Result<std::result::Result<Box<dyn VectorIndex>, String>> {
        search::PgIndex::open(self.db.clone(), &self.settings, snapshot)
            .map(|found| found.map(|index| Box::new(index) as Box<dyn VectorIndex>))
    }
}
