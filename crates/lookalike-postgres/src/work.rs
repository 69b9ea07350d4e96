//! Index runs on many machines embedding one catalog together, with the database as the
//! only coordinator. `lookalike_embeddings` has one row per photo content and model:
//! index runs list the photos they need (`INSERT ... ON CONFLICT DO NOTHING`), take rows
//! other machines finished, and claim unfinished ones with `SELECT ... FOR UPDATE SKIP
//! LOCKED` in a transaction held while they embed them. Finishing writes the features and
//! commits; a run that is killed drops its connection, the database rolls the claim back
//! and the rows are claimable again at once. A run that hangs loses its claim after
//! [`IDLE_TIMEOUT`] without a statement.

use std::sync::Arc;

use futures::future::try_join_all;
use lookalike_core::backend::Claim;
use lookalike_core::Result;

use crate::db::{Db, Failure};

/// Hashes per statement.
const CHUNK: usize = 1000;
/// A claim whose holder sends nothing for this long is rolled back by the server.
pub const IDLE_TIMEOUT: &str = "10min";

fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    (bytes.len().is_multiple_of(4) && !bytes.is_empty())
        .then(|| bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

fn encode(row: &[f32]) -> Vec<u8> {
    row.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn features(db: &Db, identity: &str, hashes: &[&str]) -> Result<Vec<(String, Vec<f32>)>> {
    let mut out = Vec::new();
    for chunk in hashes.chunks(CHUNK) {
        let rows = db.read("reading shared features", |object| async move {
            let rows = object
                .query(
                    "SELECT hash, features FROM lookalike_embeddings
                     WHERE identity = $1 AND hash = ANY($2) AND features IS NOT NULL",
                    &[&identity, &chunk],
                )
                .await?;
            Ok::<_, Failure>(rows)
        })?;
        out.extend(rows.into_iter().filter_map(|r| decode(r.get(1)).map(|f| (r.get::<_, String>(0), f))));
    }
    Ok(out)
}

pub fn enqueue(db: &Db, identity: &str, hashes: &[&str]) -> Result<()> {
    for chunk in hashes.chunks(CHUNK) {
        db.run("listing photos to embed", |object| async move {
            object
                .execute(
                    "INSERT INTO lookalike_embeddings (identity, hash) SELECT $1, unnest($2::text[])
                     ON CONFLICT DO NOTHING",
                    &[&identity, &chunk],
                )
                .await?;
            Ok::<_, Failure>(())
        })?;
    }
    Ok(())
}

/// Photos held by this process: a pooled connection with the claiming transaction open.
pub struct PgClaim {
    db: Arc<Db>,
    identity: String,
    hashes: Vec<String>,
    client: Option<deadpool_postgres::Object>,
    by: String,
}

pub fn claim(db: &Arc<Db>, identity: &str, hashes: &[&str], n: usize) -> Result<PgClaim> {
    let (client, claimed) = db.run("claiming photos to embed", |object| async move {
        object
            .batch_execute(&format!("BEGIN; SET LOCAL idle_in_transaction_session_timeout = '{IDLE_TIMEOUT}'"))
            .await?;
        let rows = object
            .query(
                "SELECT hash FROM lookalike_embeddings
                 WHERE identity = $1 AND hash = ANY($2) AND features IS NULL
                 ORDER BY hash LIMIT $3 FOR UPDATE SKIP LOCKED",
                &[&identity, &hashes, &(n as i64)],
            )
            .await?;
        Ok::<_, Failure>((object, rows.into_iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()))
    })?;
    let by = format!("{}:{}", hostname(), std::process::id());
    Ok(PgClaim { db: db.clone(), identity: identity.to_string(), hashes: claimed, client: Some(client), by })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "?".into())
}

impl Claim for PgClaim {
    fn hashes(&self) -> &[String] {
        &self.hashes
    }

    fn done(mut self: Box<Self>, rows: &[(String, Vec<f32>)]) -> Result<()> {
        let client = self.client.take().expect("a claim is done once");
        let (identity, by) = (&self.identity, &self.by);
        let encoded: Vec<(&String, Vec<u8>)> = rows.iter().map(|(h, r)| (h, encode(r))).collect();
        self.db.block("publishing embedded features", async move {
            let statement = client
                .prepare(
                    "UPDATE lookalike_embeddings SET features = $3, embedded_by = $4, embedded_at = now()
                     WHERE identity = $1 AND hash = $2",
                )
                .await?;
            type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
            let params: Vec<[Param; 4]> = encoded.iter().map(|(h, f)| [identity as Param, *h, f, by]).collect();
            try_join_all(params.iter().map(|p| client.execute(&statement, p))).await?;
            client.batch_execute("COMMIT").await?;
            Ok::<_, Failure>(())
        })
    }
}

impl Drop for PgClaim {
    fn drop(&mut self) {
        // Not done: the connection is closed rather than returned to the pool, so the
        // server rolls the claim back and other machines can take the photos.
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}
