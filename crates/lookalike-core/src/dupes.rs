//! Catalog hygiene: byte-identical photos listed under several keys (the same content
//! hash), grouped with the copy to keep, and collapsed in search results so the top k
//! shows k different photos; and near-identical ones (the same picture re-encoded,
//! resized, cropped, mirrored, turned or brightened, [`crate::near`]) grouped on request.

use std::cmp::Ordering;
use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{self, Product};
use crate::descriptor::Space;
use crate::engine::Engine;
use crate::error::Result;
use crate::index::Scored;
use crate::near::{self, Thumb};
use crate::store::Entry;

/// Photos with the same bytes, as store rows; the keeper first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub rows: Vec<usize>,
}

/// Which of two rows is kept first: the larger file, then the older, then the first by key.
fn keep_first(entries: &[Entry], a: usize, b: usize) -> Ordering {
    let (a, b) = (&entries[a], &entries[b]);
    b.size.cmp(&a.size).then(a.mtime_ns.cmp(&b.mtime_ns)).then(a.path.cmp(&b.path))
}

impl Group {
    /// A group of `rows` with its keeper first.
    fn ordered(mut rows: Vec<usize>, entries: &[Entry]) -> Group {
        rows.sort_by(|&a, &b| keep_first(entries, a, b));
        Group { rows }
    }

    /// The copy to keep: the largest file, then the oldest, then the first by key.
    pub fn keeper(&self) -> usize {
        self.rows[0]
    }
}

/// The groups of byte-identical rows of a store, and each grouped row's group.
#[derive(Debug, Default)]
pub struct Copies {
    groups: Vec<Group>,
    group_of: HashMap<usize, usize>,
    /// Rows that are not their group's keeper: what collapsing can hide.
    extra_rows: usize,
}

impl Copies {
    pub fn exact(entries: &[Entry]) -> Copies {
        let mut by_hash: HashMap<&str, Vec<usize>> = HashMap::new();
        for (row, e) in entries.iter().enumerate() {
            by_hash.entry(e.hash.as_str()).or_default().push(row);
        }
        let mut groups: Vec<Group> =
            by_hash.into_values().filter(|rows| rows.len() > 1).map(|rows| Group::ordered(rows, entries)).collect();
        groups.sort_by(|a, b| entries[a.keeper()].path.cmp(&entries[b.keeper()].path));
        let group_of =
            groups.iter().enumerate().flat_map(|(g, group)| group.rows.iter().map(move |&r| (r, g))).collect();
        let extra_rows = groups.iter().map(|g| g.rows.len() - 1).sum();
        Copies { groups, group_of, extra_rows }
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The rows with the same bytes as `row`, itself included (just `row` when it has none).
    pub fn of(&self, row: usize) -> Vec<usize> {
        self.group_of.get(&row).map_or_else(|| vec![row], |&g| self.groups[g].rows.clone())
    }

    /// The keeper of `row`'s group (`row` itself when it has no copies).
    pub fn keeper_of(&self, row: usize) -> usize {
        self.group_of.get(&row).map_or(row, |&g| self.groups[g].keeper())
    }

    /// Rows that are not their group's keeper: what collapsing can hide.
    pub fn extra_rows(&self) -> usize {
        self.extra_rows
    }

    /// One hit per photo: a row with the bytes of an earlier hit is left out, and a
    /// group's hit is its keeper when the keeper ranked too (copies score the same). At
    /// most `k` hits.
    pub fn collapse(&self, ranked: Vec<Scored>, k: usize) -> Vec<Scored> {
        let mut out: Vec<Scored> = Vec::with_capacity(k);
        let mut hit_of_group: HashMap<usize, usize> = HashMap::new();
        for s in ranked {
            match self.group_of.get(&s.row) {
                None if out.len() < k => out.push(s),
                None => {}
                Some(&g) => match hit_of_group.get(&g) {
                    Some(&h) if s.row == self.groups[g].keeper() => out[h].row = s.row,
                    Some(_) => {}
                    None if out.len() < k => {
                        hit_of_group.insert(g, out.len());
                        out.push(s);
                    }
                    None => {}
                },
            }
        }
        out
    }
}

/// One photo of a group, with what tells "the same photo listed twice" from "the same
/// product shot twice": its metadata.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    /// The key inside the catalog.
    pub rel: String,
    pub size: u64,
    pub keeper: bool,
    /// Near tier: the picture distance ([`near::distance`]) to the keeper (0 for the
    /// keeper and its byte-identical copies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<f32>,
    pub metadata: Option<Product>,
}

/// A group of copies as `lookalike dupes` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// How the copies match: "exact" (the same bytes) or "near" (the same picture,
    /// edited).
    pub tier: &'static str,
    /// The keeper first.
    pub members: Vec<Member>,
}

/// The byte-identical groups of an indexed catalog, from its store and labels (no model).
pub fn exact_report(engine: &Engine) -> Result<Vec<GroupReport>> {
    let store = engine.open_store()?;
    let labels = engine.source().labels()?;
    let entries = store.entries();
    let product = |row: usize| labels.get(catalog::product_id(&entries[row].path)).cloned();
    Ok(report(entries, &Copies::exact(entries), product))
}

/// The groups of `copies` as reported, each member with its metadata from `product`.
pub fn report(entries: &[Entry], copies: &Copies, product: impl Fn(usize) -> Option<Product>) -> Vec<GroupReport> {
    copies.groups().iter().map(|g| group_report("exact", g, entries, &product, |_| None)).collect()
}

fn group_report(
    tier: &'static str,
    group: &Group,
    entries: &[Entry],
    product: impl Fn(usize) -> Option<Product>,
    distance: impl Fn(usize) -> Option<f32>,
) -> GroupReport {
    let member = |row: usize, keeper: bool| {
        let e = &entries[row];
        let id = catalog::product_id(&e.path).to_string();
        Member { metadata: product(row), id, rel: e.path.clone(), size: e.size, keeper, distance: distance(row) }
    };
    GroupReport { tier, members: group.rows.iter().enumerate().map(|(i, &r)| member(r, i == 0)).collect() }
}

/// What a near-tier run looked at, for its summary line.
#[derive(Debug, Clone)]
pub struct NearRun {
    pub photos: usize,
    /// Pairs of photos whose pixels were compared.
    pub pairs_checked: usize,
    /// Photos that could not be read or decoded (left out of the near tier).
    pub unreadable: Vec<String>,
    pub threshold: f32,
}

/// The groups of near-identical photos (byte-identical ones included, labelled "exact"
/// when a group holds only those) of one version (its rows, their byte-identical groups
/// and descriptors): candidates from the descriptors, verified on the photos read from
/// the catalog.
pub fn near_report(
    engine: &Engine,
    entries: &[Entry],
    exact: &Copies,
    space: &Space,
    threshold: f32,
) -> Result<(Vec<GroupReport>, NearRun)> {
    // One photo per content hash: its copies are identical pixels.
    let reps: Vec<usize> = (0..entries.len()).filter(|&r| exact.keeper_of(r) == r).collect();
    let dims = space.dims();
    let colour = space.colour_dims();
    let pick = |from: usize, to: usize| -> Vec<f32> {
        reps.iter().flat_map(|&r| space.vector(r)[from..to].iter().copied()).collect()
    };
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    let mut add = |vectors: Vec<f32>, width: usize| -> Result<()> {
        for (i, list) in near::neighbours(&vectors, width, near::CANDIDATES)?.into_iter().enumerate() {
            candidates.extend(list.into_iter().map(|s| (i.min(s.row), i.max(s.row))));
        }
        Ok(())
    };
    add(pick(0, dims), dims)?;
    if colour > 0 {
        add(pick(dims - colour, dims), colour)?;
    }
    candidates.sort_unstable();
    candidates.dedup();

    let source = engine.source();
    let thumbs: Vec<std::result::Result<Thumb, String>> = reps
        .par_iter()
        .map(|&r| {
            let key = &entries[r].path;
            let bytes = source.read(key).map_err(|e| format!("{key}: {e}"))?;
            let img = crate::model::decode_bytes(&bytes).map_err(|e| format!("{key}: {e}"))?;
            Ok(Thumb::of(&img))
        })
        .collect();
    let unreadable = thumbs.iter().filter_map(|t| t.as_ref().err().cloned()).collect();
    let thumbs: Vec<Option<Thumb>> = thumbs.into_iter().map(|t| t.ok()).collect();
    let pairs = near::verify(&candidates, &thumbs, threshold);

    // Star groups: a photo joins the group of the first (best-kept) photo it is the same
    // picture as, never through a third one, so look-alikes cannot chain.
    let mut partners: HashMap<usize, Vec<(usize, f32)>> = HashMap::new();
    for &(a, b, d) in &pairs {
        partners.entry(a).or_default().push((b, d));
        partners.entry(b).or_default().push((a, d));
    }
    let mut order: Vec<usize> = (0..reps.len()).collect();
    order.sort_by(|&a, &b| keep_first(entries, reps[a], reps[b]));
    let mut taken = vec![false; reps.len()];
    let mut nearest: HashMap<usize, f32> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for &centre in &order {
        if taken[centre] {
            continue;
        }
        taken[centre] = true;
        let mut set = vec![centre];
        for &(other, d) in partners.get(&centre).map_or(&[][..], |p| p.as_slice()) {
            if !taken[other] {
                taken[other] = true;
                set.push(other);
                nearest.insert(reps[other], d);
            }
        }
        members.push(set);
    }
    let labels = source.labels()?;
    let product = |row: usize| labels.get(catalog::product_id(&entries[row].path)).cloned();
    let mut groups: Vec<(Group, bool)> = members
        .into_iter()
        .map(|set| {
            let edited = set.len() > 1;
            (Group::ordered(set.into_iter().flat_map(|i| exact.of(reps[i])).collect(), entries), edited)
        })
        .filter(|(g, _)| g.rows.len() > 1)
        .collect();
    groups.sort_by(|a, b| entries[a.0.keeper()].path.cmp(&entries[b.0.keeper()].path));
    let reports = groups
        .iter()
        .map(|(g, edited)| {
            // To the keeper's picture: 0 for its byte-identical copies.
            let distance = |row: usize| Some(nearest.get(&exact.keeper_of(row)).copied().unwrap_or(0.0));
            group_report(if *edited { "near" } else { "exact" }, g, entries, product, distance)
        })
        .collect();
    let run = NearRun { photos: entries.len(), pairs_checked: candidates.len(), unreadable, threshold };
    Ok((reports, run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, hash: &str, size: u64, mtime_ns: i64) -> Entry {
        Entry { path: path.into(), size, mtime_ns, hash: hash.into() }
    }

    #[test]
    fn groups_hold_same_bytes_and_keep_the_largest_then_oldest() {
        let entries = vec![
            entry("a.jpg", "h1", 10, 5),
            entry("b.jpg", "h2", 10, 5),
            entry("c.jpg", "h1", 10, 1),
            entry("d.jpg", "h1", 10, 1),
            entry("e.jpg", "h3", 10, 1),
            entry("f.jpg", "h2", 12, 9),
        ];
        let copies = Copies::exact(&entries);
        // h1: c and d are older than a, c before d by key; h2: f is larger.
        assert_eq!(copies.groups(), &[Group { rows: vec![2, 3, 0] }, Group { rows: vec![5, 1] }]);
        assert_eq!(copies.of(0), vec![2, 3, 0]);
        assert_eq!(copies.of(4), vec![4]);
        assert_eq!(copies.extra_rows(), 3);
    }

    #[test]
    fn collapsing_keeps_k_different_photos_and_lists_the_copies_under_the_keeper() {
        let entries = vec![
            entry("a.jpg", "h1", 10, 5),
            entry("b.jpg", "h2", 10, 5),
            entry("c.jpg", "h1", 10, 1),
            entry("d.jpg", "h3", 10, 1),
        ];
        let copies = Copies::exact(&entries);
        let ranked = [(0, 0.9), (2, 0.9), (1, 0.8), (3, 0.7)].map(|(row, score)| Scored { row, score }).to_vec();
        let rows: Vec<usize> = copies.collapse(ranked.clone(), 2).iter().map(|s| s.row).collect();
        // c is a's keeper (older): it stands for both.
        assert_eq!(rows, vec![2, 1]);
        assert_eq!(copies.collapse(ranked, 10).len(), 3);
    }
}
