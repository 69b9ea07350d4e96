//! The database schema, as numbered migrations applied in order by `lookalike db migrate`
//! (each once, in one transaction, under an advisory lock so two machines never apply one
//! twice). Every other use checks the version first and says what to run when behind.
//!
//! Per catalog, searches use one *set* of descriptors: a table `lookalike_items_<set>` of
//! one whitening's descriptors, made and filled by [`crate::sync`]. A refit makes a new
//! set and switches `lookalike_catalogs.active_set` to it in one transaction, so a search
//! never compares vectors of two fits.

use lookalike_core::backend::SchemaStatus;
use lookalike_core::Result;
use tokio_postgres::GenericClient;

use crate::db::{Db, Failure};

/// The migrations this build knows, oldest first; the last one's number is the version
/// it needs.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        "CREATE EXTENSION IF NOT EXISTS vector;
     CREATE TABLE lookalike_schema (
         version integer PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE TABLE lookalike_catalogs (
         catalog text PRIMARY KEY,
         active_set bigint
     );
     CREATE TABLE lookalike_sets (
         id bigserial PRIMARY KEY,
         catalog text NOT NULL REFERENCES lookalike_catalogs ON DELETE CASCADE,
         fit text NOT NULL,
         dims integer NOT NULL,
         complete boolean NOT NULL DEFAULT false,
         created_at timestamptz NOT NULL DEFAULT now()
     );",
    ),
    (
        2,
        // Index runs on many machines share the embedding: one row per photo content and
        // model; features NULL while it waits to be embedded (see crate::work).
        "CREATE TABLE lookalike_embeddings (
             identity text NOT NULL,
             hash text NOT NULL,
             features bytea,
             embedded_by text,
             embedded_at timestamptz,
             PRIMARY KEY (identity, hash)
         );",
    ),
];

/// Serializes migrations across machines (any constant; `lookalike` in ASCII).
const MIGRATION_LOCK: i64 = 0x6c6f_6f6b_616c_696b;

pub fn wanted() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The version of the schema in the database (0 = none).
pub async fn version(client: &impl GenericClient) -> std::result::Result<u32, Failure> {
    let exists: bool = client.query_one("SELECT to_regclass('lookalike_schema') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client.query_one("SELECT max(version) FROM lookalike_schema", &[]).await?.get(0);
    Ok(v.unwrap_or(0) as u32)
}

/// Refuses a database whose schema is not the one this build needs.
pub async fn check(client: &impl GenericClient) -> std::result::Result<(), Failure> {
    let (have, want) = (version(client).await?, wanted());
    if have < want {
        return Err(Failure::Refused(format!(
            "its schema is at version {have}, this build needs {want}: run `lookalike db migrate`"
        )));
    }
    if have > want {
        return Err(Failure::Refused(format!(
            "its schema is at version {have}, newer than this build knows ({want}): upgrade lookalike"
        )));
    }
    Ok(())
}

/// Applies the migrations the database lacks; gives their numbers.
pub fn migrate(db: &Db) -> Result<Vec<u32>> {
    db.run("migrating the schema", |mut object| async move {
        let client: &mut tokio_postgres::Client = &mut object;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        let have = version(&tx).await?;
        let mut applied = Vec::new();
        for &(number, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO lookalike_schema (version) VALUES ($1)", &[&(number as i32)]).await?;
            applied.push(number);
        }
        tx.commit().await?;
        Ok(applied)
    })
}

/// The schema's version and the catalog's active set with its item count.
pub fn status(db: &Db, catalog: &str) -> Result<SchemaStatus> {
    db.read("reading the schema", |object| async move {
        let client: &tokio_postgres::Client = &object;
        let have = version(client).await?;
        let set = if have == wanted() { active_set(client, catalog).await? } else { None };
        let set = match set {
            Some(s) => {
                let n: i64 = client.query_one(&format!("SELECT count(*) FROM {}", s.table()), &[]).await?.get(0);
                Some((s.id, n as usize))
            }
            None => None,
        };
        let tls = client
            .query_opt("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl", &[])
            .await?
            .map(|r| r.get(0));
        Ok(SchemaStatus { at: String::new(), version: have, wanted: wanted(), applied: Vec::new(), set, tls })
    })
    .map(|s| SchemaStatus { at: db.at().to_string(), ..s })
}

/// A catalog's set of descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub id: i64,
    pub fit: String,
    pub dims: usize,
}

impl Set {
    /// Its items table (set ids are numbers the database made: safe in SQL text).
    pub fn table(&self) -> String {
        table(self.id)
    }
}

pub fn table(set: i64) -> String {
    format!("lookalike_items_{set}")
}

/// The set searches of `catalog` use now, if any.
pub async fn active_set(client: &impl GenericClient, catalog: &str) -> std::result::Result<Option<Set>, Failure> {
    let row = client
        .query_opt(
            "SELECT s.id, s.fit, s.dims FROM lookalike_catalogs c JOIN lookalike_sets s ON s.id = c.active_set
             WHERE c.catalog = $1 AND s.complete",
            &[&catalog],
        )
        .await?;
    Ok(row.map(|r| Set { id: r.get(0), fit: r.get(1), dims: r.get::<_, i32>(2) as usize }))
}
