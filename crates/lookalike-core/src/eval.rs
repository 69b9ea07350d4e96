//! Retrieval quality on a labelled catalog, with the fashion-sample protocol: every image
//! whose class has at least `min_class` images queries the whole catalog, itself and its
//! byte-identical duplicates excluded; precision@k and mAP@k, overall and per class.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{self, Field};
use crate::config::{Config, SearchMode};
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::service::Snapshot;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub field: String,
    pub k: usize,
    pub min_class: usize,
}

#[derive(Debug, Serialize)]
pub struct ClassScore {
    pub class: String,
    pub queries: usize,
    pub precision: f64,
    pub map: f64,
}

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub field: String,
    pub k: usize,
    pub catalog_items: usize,
    pub queries: usize,
    pub precision: f64,
    pub map: f64,
    /// Expected precision of a random ranking: the chance a random other item shares the class.
    pub chance: f64,
    pub classes: Vec<ClassScore>,
}

/// Reads a duplicates file: one group of byte-identical ids per line, separated by spaces.
pub fn load_duplicates(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).at("cannot read duplicates", path)?;
    Ok(text
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|g| g.len() > 1)
        .collect())
}

/// Reads a query list: one product id per line.
pub fn load_query_ids(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path).at("cannot read queries", path)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// An evaluation of a catalog and what was evaluated.
#[derive(Debug, Serialize)]
pub struct Evaluated {
    pub report: EvalReport,
    /// The descriptors compared ("layer3, power 0.5, ... (512 dims)").
    pub descriptors: String,
    pub expand: usize,
}

/// Evaluates the indexed catalog of `config` (its descriptor settings may differ from
/// the saved ones: descriptors are then made in memory) with exact search, against the
/// catalog's labels.
pub fn evaluate_catalog(
    config: &Config,
    duplicates: Option<&Path>,
    queries: Option<&Path>,
    opts: &EvalOptions,
) -> Result<Evaluated> {
    let engine = Engine::new(config.clone())?;
    if engine.source().labels_location().is_none() {
        return Err(Error::config("no labels: give --labels CSV or put styles.csv in the catalog folder"));
    }
    let snapshot = Snapshot::open(&engine, Some(SearchMode::Exact))?;
    let dups = duplicates.map(load_duplicates).transpose()?.unwrap_or_default();
    let query_ids = queries.map(load_query_ids).transpose()?;
    let report = evaluate(&snapshot, &dups, query_ids.as_ref(), opts)?;
    let space = snapshot.space();
    Ok(Evaluated {
        report,
        descriptors: format!("{} ({} dims)", space.recipe().describe(), space.dims()),
        expand: snapshot.expand(),
    })
}

/// Precision@k and average precision@k of one ranked relevance list. AP@k averages the
/// precision at each relevant rank over the relevant results found (0 when none).
pub fn precision_and_ap(relevant: &[bool], k: usize) -> (f64, f64) {
    let mut hits = 0usize;
    let mut sum = 0.0;
    for (i, &r) in relevant.iter().take(k).enumerate() {
        if r {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    let ap = if hits == 0 { 0.0 } else { sum / hits as f64 };
    (hits as f64 / k as f64, ap)
}

/// Scores a snapshot's descriptors with its search and query expansion, the way
/// `lookalike query` ranks, against the labels the snapshot holds.
pub fn evaluate(
    snapshot: &Snapshot,
    duplicates: &[Vec<String>],
    query_ids: Option<&HashSet<String>>,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    if opts.k == 0 {
        return Err(Error::config("k must be at least 1"));
    }
    let (store, space) = (snapshot.store(), snapshot.space());
    let field = Field::from_column(&opts.field).ok_or_else(|| {
        Error::config(format!("unknown label field {:?}: use one of {}", opts.field, Field::columns()))
    })?;
    let ids: Vec<&str> = store.entries().iter().map(|e| catalog::product_id(&e.path)).collect();
    let class_of: Vec<Option<&str>> =
        (0..store.len()).map(|r| snapshot.product(r).map(|p| p.get(field)).filter(|v| !v.is_empty())).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for c in class_of.iter().flatten() {
        *counts.entry(c).or_default() += 1;
    }
    let group_of: HashMap<&str, usize> =
        duplicates.iter().enumerate().flat_map(|(g, ids)| ids.iter().map(move |id| (id.as_str(), g))).collect();
    let row_group: Vec<Option<usize>> = ids.iter().map(|id| group_of.get(id).copied()).collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); duplicates.len()];
    for (row, g) in row_group.iter().enumerate() {
        if let Some(g) = g {
            members[*g].push(row);
        }
    }
    let queries: Vec<usize> = (0..store.len())
        .filter(|&r| class_of[r].is_some_and(|c| counts[c] >= opts.min_class))
        .filter(|&r| query_ids.is_none_or(|q| q.contains(ids[r])))
        .collect();
    if queries.is_empty() {
        return Err(Error::config(format!(
            "no queries: no {} class has {} or more labelled images in the store ({} items)",
            opts.field,
            opts.min_class,
            store.len()
        )));
    }
    let scores: Vec<(f64, f64)> = queries
        .par_iter()
        .map(|&q| {
            // The query and its byte-identical copies.
            let exclude = row_group[q].map_or_else(|| vec![q], |g| members[g].clone());
            let vector = snapshot.expanded(space.vector(q).to_vec(), &exclude);
            let top = snapshot.rank(&vector, opts.k, &[], &exclude);
            let relevant: Vec<bool> = top.iter().map(|s| class_of[s.row] == class_of[q]).collect();
            precision_and_ap(&relevant, opts.k)
        })
        .collect();
    let mut per_class: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for (&q, &(p, ap)) in queries.iter().zip(&scores) {
        let e = per_class.entry(class_of[q].unwrap()).or_default();
        e.0 += 1;
        e.1 += p;
        e.2 += ap;
    }
    let n = queries.len() as f64;
    let labelled = class_of.iter().flatten().count() as f64;
    let chance =
        queries.iter().map(|&q| (counts[class_of[q].unwrap()] as f64 - 1.0) / (labelled - 1.0).max(1.0)).sum::<f64>()
            / n;
    Ok(EvalReport {
        field: opts.field.clone(),
        k: opts.k,
        catalog_items: store.len(),
        queries: queries.len(),
        precision: scores.iter().map(|s| s.0).sum::<f64>() / n,
        map: scores.iter().map(|s| s.1).sum::<f64>() / n,
        chance,
        classes: per_class
            .into_iter()
            .map(|(class, (count, p, ap))| ClassScore {
                class: class.to_string(),
                queries: count,
                precision: p / count as f64,
                map: ap / count as f64,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_ap_by_hand() {
        let (p, ap) = precision_and_ap(&[true, false, true, false], 4);
        assert_eq!(p, 0.5);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(precision_and_ap(&[false, false], 2), (0.0, 0.0));
        // Fewer results than k count as misses.
        assert_eq!(precision_and_ap(&[true], 4).0, 0.25);
    }
}
