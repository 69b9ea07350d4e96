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
use crate::steer::ColourMode;
use crate::strength;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub field: String,
    pub k: usize,
    pub min_class: usize,
    /// Queries prefer their own colours, or ignore colour.
    pub colour: ColourMode,
    /// Score the first page as searches show it, copies collapsed into one hit
    /// ([`Snapshot::rank_distinct`]).
    pub collapse: bool,
}

#[derive(Debug, Serialize)]
pub struct ClassScore {
    pub class: String,
    pub queries: usize,
    pub precision: f64,
    pub map: f64,
}

/// The simulated shopper: on every query's first page the results of the right class are
/// marked up and the others down, once, and the search runs again with that feedback.
#[derive(Debug, Serialize)]
pub struct FeedbackReport {
    /// Precision@k of the refined results as shown: the unliked left out, the liked kept.
    pub precision: f64,
    /// Precision@k and mAP@k of new items only (every first-page result left out).
    pub new_precision: f64,
    pub new_map: f64,
    /// The same page of new items without feedback (ranks k+1 to 2k), for comparison.
    pub unsteered_new_precision: f64,
}

/// How the adaptive cut ("N strong matches") sorts the first page.
#[derive(Debug, Serialize)]
pub struct CutReport {
    /// Share of queries whose scores drop sharply somewhere in the first page.
    pub share: f64,
    /// Strong matches per query that has a cut.
    pub mean_strong: f64,
    /// Share of the right class among the strong matches, and among the results below the cut.
    pub precision_above: f64,
    pub precision_below: f64,
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
    pub feedback: FeedbackReport,
    pub cut: CutReport,
    pub classes: Vec<ClassScore>,
}

/// One query's outcome.
struct Scored1 {
    precision: f64,
    ap: f64,
    shown: f64,
    new: (f64, f64),
    unsteered_new: f64,
    /// The cut (if any) and the relevance of the first page.
    cut: Option<usize>,
    relevant: Vec<bool>,
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
    Ok(Evaluated { report, descriptors: space.summary(), expand: snapshot.expand() })
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
    // Fields joined by `+` make one class of their values ("Tshirts|Blue").
    let fields: Vec<Field> = opts
        .field
        .split('+')
        .map(|name| {
            Field::from_column(name.trim()).ok_or_else(|| {
                Error::config(format!("unknown label field {name:?}: use one of {} (join with +)", Field::columns()))
            })
        })
        .collect::<Result<_>>()?;
    let ids: Vec<&str> = store.entries().iter().map(|e| catalog::product_id(&e.path)).collect();
    let class_of: Vec<Option<String>> = (0..store.len())
        .map(|r| {
            let p = snapshot.product(r)?;
            let values: Vec<&str> = fields.iter().map(|&f| p.get(f)).collect();
            (!values.iter().any(|v| v.is_empty())).then(|| values.join("|"))
        })
        .collect();
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
        .filter(|&r| class_of[r].as_deref().is_some_and(|c| counts[c] >= opts.min_class))
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
    let scores: Vec<Scored1> = queries
        .par_iter()
        .map(|&q| -> Result<Scored1> {
            // The query and its byte-identical copies.
            let exclude = row_group[q].map_or_else(|| vec![q], |g| members[g].clone());
            let (_, vector) = snapshot.prepared(space.vector(q).to_vec(), &exclude, opts.colour)?;
            let top = match opts.collapse {
                true => snapshot.rank_distinct(&vector, opts.k, &[], &exclude)?,
                false => snapshot.rank(&vector, opts.k, &[], &exclude)?,
            };
            let relevant: Vec<bool> = top.iter().map(|s| class_of[s.row] == class_of[q]).collect();
            let (precision, ap) = precision_and_ap(&relevant, opts.k);
            let marked = |up: bool| top.iter().zip(&relevant).filter(move |(_, &r)| r == up).map(|(s, _)| s.row);
            let (like, unlike): (Vec<usize>, Vec<usize>) = (marked(true).collect(), marked(false).collect());
            let steered = snapshot.steered(&vector, &like, &unlike, opts.colour);
            let judged = |vector: &[f32], exclude: &[usize]| -> Result<(f64, f64)> {
                let found = snapshot.rank(vector, opts.k, &[], exclude)?;
                Ok(precision_and_ap(&found.iter().map(|s| class_of[s.row] == class_of[q]).collect::<Vec<_>>(), opts.k))
            };
            let without_unliked: Vec<usize> = exclude.iter().chain(&unlike).copied().collect();
            let seen: Vec<usize> = exclude.iter().copied().chain(top.iter().map(|s| s.row)).collect();
            let cut = strength::strong_matches(&top.iter().map(|s| s.score).collect::<Vec<_>>());
            Ok(Scored1 {
                precision,
                ap,
                shown: judged(&steered, &without_unliked)?.0,
                new: judged(&steered, &seen)?,
                unsteered_new: judged(&vector, &seen)?.0,
                cut,
                relevant,
            })
        })
        .collect::<Result<_>>()?;
    let mut per_class: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for (&q, s) in queries.iter().zip(&scores) {
        let e = per_class.entry(class_of[q].as_deref().unwrap()).or_default();
        e.0 += 1;
        e.1 += s.precision;
        e.2 += s.ap;
    }
    let n = queries.len() as f64;
    let labelled = class_of.iter().flatten().count() as f64;
    let chance = queries
        .iter()
        .map(|&q| (counts[class_of[q].as_deref().unwrap()] as f64 - 1.0) / (labelled - 1.0).max(1.0))
        .sum::<f64>()
        / n;
    let mean = |f: &dyn Fn(&Scored1) -> f64| scores.iter().map(f).sum::<f64>() / n;
    let precision = mean(&|s| s.precision);
    let (mut above, mut below) = ((0usize, 0usize), (0usize, 0usize));
    for s in &scores {
        if let Some(cut) = s.cut {
            let (a, b) = s.relevant.split_at(cut.min(s.relevant.len()));
            above = (above.0 + a.iter().filter(|&&r| r).count(), above.1 + a.len());
            below = (below.0 + b.iter().filter(|&&r| r).count(), below.1 + b.len());
        }
    }
    let with_cut = scores.iter().filter(|s| s.cut.is_some()).count();
    let share = |(right, all): (usize, usize)| right as f64 / all.max(1) as f64;
    Ok(EvalReport {
        field: opts.field.clone(),
        k: opts.k,
        catalog_items: store.len(),
        queries: queries.len(),
        precision,
        map: mean(&|s| s.ap),
        chance,
        feedback: FeedbackReport {
            precision: mean(&|s| s.shown),
            new_precision: mean(&|s| s.new.0),
            new_map: mean(&|s| s.new.1),
            unsteered_new_precision: mean(&|s| s.unsteered_new),
        },
        cut: CutReport {
            share: with_cut as f64 / n,
            mean_strong: scores.iter().filter_map(|s| s.cut).sum::<usize>() as f64 / with_cut.max(1) as f64,
            precision_above: share(above),
            precision_below: share(below),
        },
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
