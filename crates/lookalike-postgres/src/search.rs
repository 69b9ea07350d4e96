//! Searches answered by the database: the query descriptor is made on this machine, the
//! database finds the nearest items of the catalog's set by its HNSW index (or, for exact
//! searches, a full scan), filters and exclusions as SQL conditions, and the candidates
//! are scored again here against the same descriptors, so scores and ties are exactly
//! those of the local indexes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lookalike_core::backend::Opening;
use lookalike_core::config::PostgresConfig;
use lookalike_core::descriptor::Space;
use lookalike_core::index::exact::{dot, Exact};
use lookalike_core::index::{Request, Rows, Scored, VectorIndex};
use lookalike_core::Result;
use pgvector::Vector;
use serde_json::{Map, Value};

use crate::db::{Db, Failure};
use crate::schema;

/// Filtered searches that at most this many items pass are ranked exactly (about 6 ms
/// at 648 dims; an HNSW search takes 2-3).
const FILTERED_EXACT_UP_TO: usize = 1000;

/// A search that takes longer than this is cancelled by the database.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgIndex {
    db: Arc<Db>,
    table: String,
    space: Arc<Space>,
    rows: Arc<Rows>,
    /// The catalog path of every row, to name excluded rows and map answers back.
    rels: Vec<String>,
    exact: bool,
    ef_search: usize,
    /// Searches here when the set was replaced under this node (another machine
    /// published a new fit): the same descriptors, searched exactly, instead of errors.
    fallback: Exact,
    replaced: AtomicBool,
}

impl PgIndex {
    /// The index over the catalog's active set, or why it cannot answer for `space`.
    pub fn open(
        db: Arc<Db>,
        settings: &PostgresConfig,
        snapshot: Opening,
    ) -> Result<std::result::Result<PgIndex, String>> {
        let Opening { catalog, space, rows, store, full_scan: exact } = snapshot;
        let set = db.read("opening the catalog's descriptors", |object| async move {
            schema::check(&**object).await?;
            schema::active_set(&**object, catalog).await
        })?;
        let fit = space.fit_id();
        let set = match set {
            None => return Ok(Err("it holds no descriptors of this catalog yet: run `lookalike db sync`".into())),
            Some(s) if s.fit != fit => {
                return Ok(Err(format!(
                "it holds descriptors of another fit ({}) than this state folder's ({fit}): run `lookalike db sync` \
                     from the newest state",
                s.fit
            )))
            }
            Some(s) => s,
        };
        let rels = store.entries().iter().map(|e| e.path.clone()).collect();
        let fallback = Exact::new(space.clone(), rows.clone());
        let (table, ef_search, replaced) = (set.table(), settings.ef_search, AtomicBool::new(false));
        Ok(Ok(PgIndex { table, db, space, rows, rels, exact, ef_search, fallback, replaced }))
    }
}

impl VectorIndex for PgIndex {
    fn method(&self) -> &'static str {
        if self.replaced.load(Ordering::Relaxed) {
            "exact (the database's set was replaced: restart on the newest state)"
        } else if self.exact {
            "postgres-exact"
        } else {
            "postgres-hnsw"
        }
    }

    fn search(&self, request: &Request) -> Result<Vec<Scored>> {
        if request.k == 0 {
            return Ok(Vec::new());
        }
        if self.replaced.load(Ordering::Relaxed) {
            return Ok(self.fallback.top(request));
        }
        let query = Vector::from(request.vector.to_vec());
        let filters: Vec<Value> = request
            .filters
            .iter()
            .map(|f| {
                let mut m = Map::new();
                m.insert(f.field.column().to_string(), Value::String(f.value.to_ascii_lowercase()));
                Value::Object(m)
            })
            .collect();
        let exclude: Vec<&str> = request.exclude.iter().filter_map(|&r| self.rels.get(r).map(String::as_str)).collect();
        let mut conditions = vec!["rel <> ALL($2)".to_string()];
        conditions.extend((0..filters.len()).map(|i| format!("keys @> ${}", i + 4)));
        let sql = format!(
            "SELECT rel FROM {} WHERE {} ORDER BY descriptor <=> $1 LIMIT $3",
            self.table,
            conditions.join(" AND ")
        );
        // HNSW keeps ef_search candidates: at least k, or it returns fewer than k.
        let mut settings = format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL hnsw.ef_search = {};",
            STATEMENT_TIMEOUT.as_millis(),
            self.ef_search.max(request.k).min(1000)
        );
        // The planner's costs of pgvector's scans mislead it (at 9,583 items: a full scan,
        // 54 ms, over the HNSW index, 2 ms, at ef_search 100; the filter keys' index and a
        // sort, 36 ms, for a filter that half the items pass). The filter's size is known
        // here from the labels: few rows are ranked exactly through the keys' index, many
        // by the HNSW index alone.
        let few =
            || (0..self.rels.len()).filter(|&row| self.rows.keep(request, row)).nth(FILTERED_EXACT_UP_TO).is_none();
        if self.exact {
            settings.push_str("SET LOCAL enable_indexscan = off;");
        } else if !filters.is_empty() && few() {
            settings.push_str("SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = off;");
        } else {
            settings.push_str("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;");
            if !filters.is_empty() {
                // pgvector 0.8: keep scanning the graph until k rows pass the filter.
                settings.push_str("SET LOCAL hnsw.iterative_scan = relaxed_order;");
            }
        }
        let k = request.k as i64;
        let (settings, sql, query, exclude, filters) = (&settings, &sql, &query, &exclude, &filters);
        let found: Option<Vec<String>> = self.db.read("searching", |mut object| async move {
            let client: &mut tokio_postgres::Client = &mut object;
            let tx = client.transaction().await?;
            tx.batch_execute(settings).await?;
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![query, exclude, &k];
            params.extend(filters.iter().map(|f| f as &(dyn tokio_postgres::types::ToSql + Sync)));
            let rows = match tx.query(sql, &params).await {
                // 42P01: the table is gone, dropped by a sync that switched to a new set.
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => return Ok(None),
                rows => rows?,
            };
            tx.commit().await?;
            Ok::<_, Failure>(Some(rows.into_iter().map(|r| r.get(0)).collect()))
        })?;
        let Some(found) = found else {
            self.replaced.store(true, Ordering::Relaxed);
            return Ok(self.fallback.top(request));
        };
        // Rows the database has but this state folder not yet (another machine's newer
        // sync) are left out, and the filters are checked again on this machine's labels.
        let mut top: Vec<Scored> = found
            .iter()
            .filter_map(|rel| self.rels.binary_search(rel).ok())
            .filter(|&row| self.rows.keep(request, row))
            .map(|row| Scored { row, score: dot(self.space.vector(row), request.vector) })
            .collect();
        top.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        Ok(top)
    }
}
