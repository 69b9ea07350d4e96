//! Writing an index run's descriptors to the database. Within one fit an item's descriptor
//! depends only on its photo, so only rows whose photo or metadata changed are upserted
//! and rows gone from the store deleted, in one transaction. A new fit (a refit of the
//! whitening, other descriptor settings) fills a complete new set beside the old one,
//! builds its indexes, then switches the catalog to it in one transaction and drops the
//! old one. Syncs of one catalog take turns (an advisory lock held by the connection, so
//! a crashed run releases it), and a set left unfinished by a crash is dropped by the next
//! sync: running it again is always safe.

use std::collections::HashMap;

use futures::future::try_join_all;
use lookalike_core::backend::{Published, SyncReport};
use lookalike_core::catalog::{self, Field, Product};
use lookalike_core::config::PostgresConfig;
use lookalike_core::Result;
use pgvector::Vector;
use serde_json::{Map, Value};
use sha2::Digest;

use crate::db::{Db, Failure};
use crate::schema::{self, table};

/// Rows written per round trip group (pipelined on one connection).
const BATCH: usize = 512;

/// One item as the database holds it.
struct Item {
    rel: String,
    id: String,
    hash: String,
    metadata: Option<Value>,
    keys: Value,
    digest: String,
    row: usize,
}

fn items(published: &Published) -> Vec<Item> {
    published
        .store
        .entries()
        .iter()
        .enumerate()
        .map(|(row, e)| {
            let id = catalog::product_id(&e.path).to_string();
            let product = published.labels.get(&id);
            let metadata = product.map(|p| serde_json::to_value(p).expect("plain strings serialize"));
            let mut digest = sha2::Sha256::new();
            digest.update(e.hash.as_bytes());
            digest.update(metadata.as_ref().map(Value::to_string).unwrap_or_default());
            let digest = digest.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
            Item { keys: keys(product), rel: e.path.clone(), id, hash: e.hash.clone(), metadata, digest, row }
        })
        .collect()
}

/// What filters match: each metadata value lowercased as the local filters compare them
/// (ASCII case only), so `keys @> '{"articleType": "tshirts"}'` is the same test.
pub fn keys(product: Option<&Product>) -> Value {
    let mut keys = Map::new();
    for &field in Field::ALL {
        if let Some(v) = product.map(|p| p.get(field)).filter(|v| !v.is_empty()) {
            keys.insert(field.column().to_string(), Value::String(v.to_ascii_lowercase()));
        }
    }
    Value::Object(keys)
}

/// Serializes syncs of one catalog across machines.
fn lock_key(catalog: &str) -> i64 {
    let d = sha2::Sha256::digest(format!("lookalike sync {catalog}"));
    i64::from_le_bytes(d[..8].try_into().unwrap())
}

pub fn sync(db: &Db, settings: &PostgresConfig, published: &Published) -> Result<SyncReport> {
    let (catalog, space) = (published.catalog, published.space);
    let (fit, dims) = (space.fit_id(), space.dims());
    let all = items(published);
    let vector = |item: &Item| Vector::from(space.vector(item.row).to_vec());
    db.run("syncing the descriptors", |mut object| async move {
        let client: &mut tokio_postgres::Client = &mut object;
        schema::check(&*client).await?;
        let lock = lock_key(catalog);
        client.execute("SELECT pg_advisory_lock($1)", &[&lock]).await?;
        let result = async {
            let mut report = SyncReport { items: all.len(), ..Default::default() };
            client
                .execute("INSERT INTO lookalike_catalogs (catalog) VALUES ($1) ON CONFLICT DO NOTHING", &[&catalog])
                .await?;
            report.repaired = drop_sets(client, catalog, "NOT complete").await?;
            match schema::active_set(&*client, catalog).await? {
                Some(set) if set.fit == fit && set.dims == dims => {
                    let tx = client.transaction().await?;
                    let stored: HashMap<String, String> = tx
                        .query(&format!("SELECT rel, digest FROM {}", set.table()), &[])
                        .await?
                        .into_iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect();
                    let changed: Vec<&Item> = all.iter().filter(|i| stored.get(&i.rel) != Some(&i.digest)).collect();
                    let local: std::collections::HashSet<&str> = all.iter().map(|i| i.rel.as_str()).collect();
                    let gone: Vec<&str> = stored.keys().map(String::as_str).filter(|r| !local.contains(r)).collect();
                    write_items(&tx, &set.table(), &changed, &vector, true).await?;
                    if !gone.is_empty() {
                        tx.execute(&format!("DELETE FROM {} WHERE rel = ANY($1)", set.table()), &[&gone]).await?;
                    }
                    tx.commit().await?;
                    (report.set, report.upserted, report.deleted) = (set.id, changed.len(), gone.len());
                }
                _ => {
                    let id: i64 = client
                        .query_one(
                            "INSERT INTO lookalike_sets (catalog, fit, dims) VALUES ($1, $2, $3) RETURNING id",
                            &[&catalog, &fit, &(dims as i32)],
                        )
                        .await?
                        .get(0);
                    let t = table(id);
                    client
                        .batch_execute(&format!(
                            "CREATE TABLE {t} (
                                 rel text PRIMARY KEY,
                                 id text NOT NULL,
                                 content_hash text NOT NULL,
                                 metadata jsonb,
                                 keys jsonb NOT NULL,
                                 digest text NOT NULL,
                                 descriptor vector({dims}) NOT NULL
                             )"
                        ))
                        .await?;
                    let every: Vec<&Item> = all.iter().collect();
                    let tx = client.transaction().await?;
                    write_items(&tx, &t, &every, &vector, false).await?;
                    tx.commit().await?;
                    // Indexes after the rows: HNSW builds faster over a full table.
                    client
                        .batch_execute(&format!(
                            "SET maintenance_work_mem = '512MB';
                             CREATE INDEX {t}_hnsw ON {t} USING hnsw (descriptor vector_cosine_ops)
                                 WITH (m = {m}, ef_construction = {ef});
                             CREATE INDEX {t}_keys ON {t} USING gin (keys jsonb_path_ops);
                             CREATE INDEX {t}_id ON {t} (id);
                             ANALYZE {t};",
                            m = settings.m,
                            ef = settings.ef_construction
                        ))
                        .await?;
                    let tx = client.transaction().await?;
                    tx.execute("UPDATE lookalike_sets SET complete = true WHERE id = $1", &[&id]).await?;
                    tx.execute("UPDATE lookalike_catalogs SET active_set = $2 WHERE catalog = $1", &[&catalog, &id])
                        .await?;
                    tx.commit().await?;
                    // Searches still on the old set finish first (DROP waits for them).
                    drop_sets(client, catalog, &format!("id <> {id}")).await?;
                    (report.set, report.upserted, report.new_set) = (id, all.len(), true);
                }
            }
            Ok::<_, Failure>(report)
        }
        .await;
        client.execute("SELECT pg_advisory_unlock($1)", &[&lock]).await?;
        result
    })
    .map(|r| SyncReport { at: db.at().to_string(), ..r })
}

/// Drops the catalog's sets that match `condition` (SQL over `lookalike_sets`), tables
/// first; gives how many.
async fn drop_sets(
    client: &tokio_postgres::Client,
    catalog: &str,
    condition: &str,
) -> std::result::Result<usize, Failure> {
    let ids: Vec<i64> = client
        .query(&format!("SELECT id FROM lookalike_sets WHERE catalog = $1 AND {condition}"), &[&catalog])
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    for id in &ids {
        client.batch_execute(&format!("DROP TABLE IF EXISTS {}", table(*id))).await?;
        client.execute("DELETE FROM lookalike_sets WHERE id = $1", &[id]).await?;
    }
    Ok(ids.len())
}

/// Inserts (or, with `upsert`, inserts or replaces) items, pipelined in batches.
async fn write_items(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    items: &[&Item],
    vector: &(impl Fn(&Item) -> Vector + Sync),
    upsert: bool,
) -> std::result::Result<(), Failure> {
    let conflict = if upsert {
        " ON CONFLICT (rel) DO UPDATE SET id = excluded.id, content_hash = excluded.content_hash,
          metadata = excluded.metadata, keys = excluded.keys, digest = excluded.digest,
          descriptor = excluded.descriptor"
    } else {
        ""
    };
    let statement = tx
        .prepare(&format!(
            "INSERT INTO {table} (rel, id, content_hash, metadata, keys, digest, descriptor)
             VALUES ($1, $2, $3, $4, $5, $6, $7){conflict}"
        ))
        .await?;
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    for batch in items.chunks(BATCH) {
        let vectors: Vec<Vector> = batch.iter().map(|i| vector(i)).collect();
        let params: Vec<[Param; 7]> = batch
            .iter()
            .zip(&vectors)
            .map(|(i, v)| [&i.rel as Param, &i.id, &i.hash, &i.metadata, &i.keys, &i.digest, v])
            .collect();
        try_join_all(params.iter().map(|p| tx.execute(&statement, p))).await?;
    }
    Ok(())
}
