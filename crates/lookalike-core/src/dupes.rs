//! Catalog hygiene: byte-identical photos listed under several keys (the same content
//! hash), grouped with the copy to keep, and collapsed in search results so the top k
//! shows k different photos. Near-identical copies (re-encoded, resized, cropped) are
//! not grouped yet.

use std::collections::HashMap;

use serde::Serialize;

use crate::catalog::{self, Product};
use crate::engine::Engine;
use crate::error::Result;
use crate::index::Scored;
use crate::store::Entry;

/// Photos with the same bytes, as store rows; the keeper first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub rows: Vec<usize>,
}

impl Group {
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
        let mut groups: Vec<Group> = by_hash
            .into_values()
            .filter(|rows| rows.len() > 1)
            .map(|mut rows| {
                rows.sort_by(|&a, &b| {
                    let (a, b) = (&entries[a], &entries[b]);
                    b.size.cmp(&a.size).then(a.mtime_ns.cmp(&b.mtime_ns)).then(a.path.cmp(&b.path))
                });
                Group { rows }
            })
            .collect();
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
    pub metadata: Option<Product>,
}

/// A group of copies as `lookalike dupes` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// How the copies match: "exact" (the same bytes).
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
    let member = |row: usize, keeper: bool| {
        let e = &entries[row];
        let id = catalog::product_id(&e.path).to_string();
        Member { metadata: product(row), id, rel: e.path.clone(), size: e.size, keeper }
    };
    copies
        .groups()
        .iter()
        .map(|g| GroupReport {
            tier: "exact",
            members: g.rows.iter().enumerate().map(|(i, &r)| member(r, i == 0)).collect(),
        })
        .collect()
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
