//! Catalog hygiene: byte-identical photos listed under several keys (the same content
//! hash), grouped with the copy to keep, and collapsed in search results so the top k
//! shows k different photos; and near-identical ones (the same picture re-encoded,
//! resized, cropped, mirrored, turned or brightened, [`crate::near`]) grouped on request.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::{self, Product};
use crate::descriptor::{Fingerprint, Space};
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::index::Scored;
use crate::near::{self, Thumb};
use crate::store::{Entry, Store};

/// The similar tier's default least similarity of two photos' search descriptors
/// (measured on the fashion sample: see the README's duplicates section).
pub const SIMILAR_THRESHOLD: f32 = 0.9;

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
#[derive(Debug, Default, Clone)]
pub struct Copies {
    groups: Vec<Group>,
    group_of: HashMap<usize, usize>,
    /// Rows that are not their group's keeper: what collapsing can hide.
    extra_rows: usize,
}

impl Copies {
    /// The byte-identical groups: rows with the same content hash.
    pub fn exact(entries: &[Entry]) -> Copies {
        let mut by_hash: HashMap<&str, Vec<usize>> = HashMap::new();
        for (row, e) in entries.iter().enumerate() {
            by_hash.entry(e.hash.as_str()).or_default().push(row);
        }
        Copies::of_sets(entries, by_hash.into_values())
    }

    /// These groups joined with near-identical ones (sets of rows that are one picture,
    /// [`SavedNear::row_sets`]); overlapping sets become one group.
    pub fn with_near(&self, entries: &[Entry], near: Vec<Vec<usize>>) -> Copies {
        Copies::of_sets(entries, self.groups.iter().map(|g| g.rows.clone()).chain(near))
    }

    /// Groups from sets of rows that are the same photo, merged where they share a row.
    fn of_sets(entries: &[Entry], sets: impl IntoIterator<Item = Vec<usize>>) -> Copies {
        fn root(parent: &HashMap<usize, usize>, mut row: usize) -> usize {
            while let Some(&up) = parent.get(&row).filter(|&&up| up != row) {
                row = up;
            }
            row
        }
        let mut parent: HashMap<usize, usize> = HashMap::new();
        for set in sets {
            for pair in set.windows(2) {
                let (a, b) = (root(&parent, pair[0]), root(&parent, pair[1]));
                parent.entry(a).or_insert(a);
                parent.insert(b, a);
            }
        }
        let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
        for &row in parent.keys() {
            by_root.entry(root(&parent, row)).or_default().push(row);
        }
        let mut groups: Vec<Group> =
            by_root.into_values().filter(|rows| rows.len() > 1).map(|rows| Group::ordered(rows, entries)).collect();
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

    /// One hit per photo: a row of an earlier hit's group is left out, and a group's hit
    /// is its keeper when the keeper ranked with the same score (a byte-identical copy;
    /// an edited copy keeps its own place). At most `k` hits.
    pub fn collapse(&self, ranked: Vec<Scored>, k: usize) -> Vec<Scored> {
        let mut out: Vec<Scored> = Vec::with_capacity(k);
        let mut hit_of_group: HashMap<usize, usize> = HashMap::new();
        for s in ranked {
            match self.group_of.get(&s.row) {
                None if out.len() < k => out.push(s),
                None => {}
                Some(&g) => match hit_of_group.get(&g) {
                    Some(&h) if s.row == self.groups[g].keeper() && s.score == out[h].score => out[h].row = s.row,
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
    /// Similar tier: the similarity of its descriptor to the keeper's (1 for the keeper and
    /// its byte-identical copies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    pub metadata: Option<Product>,
}

/// A group of copies as `lookalike dupes` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// How the copies match: "exact" (the same bytes), "near" (the same picture, edited)
    /// or "similar" (descriptors at least the similar tier's threshold alike).
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
    copies.groups().iter().map(|g| group_report("exact", g, entries, &product)).collect()
}

fn group_report(
    tier: &'static str,
    group: &Group,
    entries: &[Entry],
    product: impl Fn(usize) -> Option<Product>,
) -> GroupReport {
    let members = group.rows.iter().enumerate().map(|(i, &r)| member(entries, r, i == 0, &product)).collect();
    GroupReport { tier, members }
}

/// A group's photo without how it matches the keeper (the tiers that measure it set that).
fn member(entries: &[Entry], row: usize, keeper: bool, product: impl Fn(usize) -> Option<Product>) -> Member {
    let e = &entries[row];
    let id = catalog::product_id(&e.path).to_string();
    Member { metadata: product(row), id, rel: e.path.clone(), size: e.size, keeper, distance: None, similarity: None }
}

/// The groups a near-tier run found, saved in the state folder: searches collapse them
/// and the review steps through them without reading every photo again. Each member is
/// saved with its content hash, so after an index run the groups whose photos are
/// unchanged still hold; a member that changed or left is dropped, and a group without
/// its keeper is dropped whole (its members were each matched to the keeper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedNear {
    /// The store the run looked at: another one means photos added since were not checked.
    source: Fingerprint,
    pub threshold: f32,
    groups: Vec<SavedGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedGroup {
    tier: String,
    /// The keeper first.
    members: Vec<SavedMember>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedMember {
    key: String,
    hash: String,
    /// To the keeper's picture.
    distance: f32,
}

impl SavedNear {
    pub fn new(store: &Store, threshold: f32, reports: &[GroupReport]) -> SavedNear {
        let entries = store.entries();
        let saved = |m: &Member| {
            let hash = store.find(&m.rel).map(|row| entries[row].hash.clone()).unwrap_or_default();
            SavedMember { key: m.rel.clone(), hash, distance: m.distance.unwrap_or(0.0) }
        };
        let groups = reports
            .iter()
            .map(|g| SavedGroup { tier: g.tier.to_string(), members: g.members.iter().map(saved).collect() })
            .collect();
        SavedNear { source: Fingerprint::of(store), threshold, groups }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::failed("saving near-identical groups", e))?;
        crate::files::write_atomic(path, &json)
    }

    /// The groups saved at `path` that still hold in `store` (`None` when none are saved).
    pub fn load(path: &Path, store: &Store) -> Result<Option<SavedNear>> {
        let bytes = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            read => read.at("cannot read", path)?,
        };
        let mut saved: SavedNear = serde_json::from_slice(&bytes).map_err(|e| Error::damaged(path, e))?;
        let entries = store.entries();
        let unchanged = |m: &SavedMember| store.find(&m.key).is_some_and(|row| entries[row].hash == m.hash);
        for group in &mut saved.groups {
            if !group.members.first().is_some_and(unchanged) {
                group.members.clear();
            }
            group.members.retain(unchanged);
        }
        saved.groups.retain(|g| g.members.len() > 1);
        Ok(Some(saved))
    }

    /// Whether the run looked at this very store: otherwise photos indexed since then
    /// were not compared.
    pub fn is_current(&self, store: &Store) -> bool {
        self.source == Fingerprint::of(store)
    }

    /// Each group's rows (every member is in the store: [`SavedNear::load`] kept only those).
    pub fn row_sets(&self, store: &Store) -> Vec<Vec<usize>> {
        self.groups.iter().map(|g| g.members.iter().filter_map(|m| store.find(&m.key)).collect()).collect()
    }

    /// The groups as `lookalike dupes --tier near` reported them, with today's metadata.
    pub fn reports(&self, store: &Store, product: impl Fn(usize) -> Option<Product>) -> Vec<GroupReport> {
        let entries = store.entries();
        let report = |g: &SavedGroup| GroupReport {
            tier: if g.tier == "near" { "near" } else { "exact" },
            members: g
                .members
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    let found = member(entries, store.find(&m.key)?, i == 0, &product);
                    Some(Member { distance: Some(m.distance), ..found })
                })
                .collect(),
        };
        self.groups.iter().map(report).collect()
    }
}

/// The duplicate groups known without reading photos: a saved near run's, as they hold
/// for one version, or else the byte-identical ones.
#[derive(Debug, Clone)]
pub struct KnownGroups {
    pub groups: Vec<GroupReport>,
    /// The near run they come from: its threshold, and whether it looked at this very
    /// version (false: photos indexed since were not compared). `None`: byte-identical only.
    pub near: Option<(f32, bool)>,
}

impl KnownGroups {
    /// Where the groups come from, in a line for people.
    pub fn describe(&self) -> String {
        match self.near {
            None => "byte-identical photos only: `lookalike dupes --tier near` finds edited copies too".into(),
            Some((threshold, true)) => {
                format!("byte-identical and edited copies (the last near run, threshold {threshold})")
            }
            Some((threshold, false)) => format!(
                "byte-identical and edited copies (the last near run, threshold {threshold}); photos indexed since \
                 were not compared: run `lookalike dupes --tier near` again"
            ),
        }
    }
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
    /// Where the groups were saved for searches to collapse, or why they were not
    /// (`None`: not asked to save them).
    pub saved: Option<std::result::Result<std::path::PathBuf, String>>,
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
    let reps = representatives(entries, exact);
    let dims = space.dims();
    let colour = space.colour_dims();
    let mut candidates: Vec<(usize, usize)> =
        descriptor_pairs(&reps, space, 0, dims)?.into_iter().map(|(a, b, _)| (a, b)).collect();
    if colour > 0 {
        candidates.extend(descriptor_pairs(&reps, space, dims - colour, dims)?.into_iter().map(|(a, b, _)| (a, b)));
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
    let labels = source.labels()?;
    let product = |row: usize| labels.get(catalog::product_id(&entries[row].path)).cloned();
    let reports = star_reports(Tier::Near, &pairs, &reps, entries, exact, product);
    let run = NearRun { photos: entries.len(), pairs_checked: candidates.len(), unreadable, threshold, saved: None };
    Ok((reports, run))
}

/// The groups of visually similar photos: pairs whose search descriptors are at least
/// `threshold` similar (cosine), grouped around the keeper like the near tier, from the
/// descriptors alone (no photo is read). Similar is not the same picture: the same
/// product shot twice, or look-alikes; each member carries its similarity to the keeper.
pub fn similar_report(
    entries: &[Entry],
    exact: &Copies,
    space: &Space,
    threshold: f32,
    product: impl Fn(usize) -> Option<Product>,
) -> Result<Vec<GroupReport>> {
    let reps = representatives(entries, exact);
    let pairs: Vec<(usize, usize, f32)> =
        descriptor_pairs(&reps, space, 0, space.dims())?.into_iter().filter(|&(_, _, s)| s >= threshold).collect();
    Ok(star_reports(Tier::Similar, &pairs, &reps, entries, exact, product))
}

/// One row per content hash: its copies are identical pixels.
fn representatives(entries: &[Entry], exact: &Copies) -> Vec<usize> {
    (0..entries.len()).filter(|&r| exact.keeper_of(r) == r).collect()
}

/// Each representative's nearest ones by columns `from..to` of the descriptors, as pairs
/// of indices into `reps` (lower first, each once) with their similarity.
fn descriptor_pairs(reps: &[usize], space: &Space, from: usize, to: usize) -> Result<Vec<(usize, usize, f32)>> {
    let vectors: Vec<f32> = reps.iter().flat_map(|&r| space.vector(r)[from..to].iter().copied()).collect();
    let mut pairs: Vec<(usize, usize, f32)> = near::neighbours(&vectors, to - from, near::CANDIDATES)?
        .into_iter()
        .enumerate()
        .flat_map(|(i, list)| list.into_iter().map(move |s| (i.min(s.row), i.max(s.row), s.score)))
        .collect();
    pairs.sort_unstable_by_key(|a| (a.0, a.1));
    pairs.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    Ok(pairs)
}

/// How the members of a non-exact group match their keeper.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// The same picture: the value is the picture distance.
    Near,
    /// Similar descriptors: the value is the similarity.
    Similar,
}

/// Star groups from matched pairs of representatives (`(a, b, value)`): a photo joins the
/// group of the first (best-kept) photo it matched, never through a third one, so
/// look-alikes cannot chain; each representative brings its byte-identical copies.
fn star_reports(
    tier: Tier,
    pairs: &[(usize, usize, f32)],
    reps: &[usize],
    entries: &[Entry],
    exact: &Copies,
    product: impl Fn(usize) -> Option<Product>,
) -> Vec<GroupReport> {
    let mut partners: HashMap<usize, Vec<(usize, f32)>> = HashMap::new();
    for &(a, b, v) in pairs {
        partners.entry(a).or_default().push((b, v));
        partners.entry(b).or_default().push((a, v));
    }
    let mut order: Vec<usize> = (0..reps.len()).collect();
    order.sort_by(|&a, &b| keep_first(entries, reps[a], reps[b]));
    let mut taken = vec![false; reps.len()];
    let mut to_keeper: HashMap<usize, f32> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for &centre in &order {
        if taken[centre] {
            continue;
        }
        taken[centre] = true;
        let mut set = vec![centre];
        for &(other, v) in partners.get(&centre).map_or(&[][..], |p| p.as_slice()) {
            if !taken[other] {
                taken[other] = true;
                set.push(other);
                to_keeper.insert(reps[other], v);
            }
        }
        members.push(set);
    }
    let mut groups: Vec<(Group, bool)> = members
        .into_iter()
        .map(|set| {
            let matched = set.len() > 1;
            (Group::ordered(set.into_iter().flat_map(|i| exact.of(reps[i])).collect(), entries), matched)
        })
        .filter(|(g, _)| g.rows.len() > 1)
        .collect();
    groups.sort_by(|a, b| entries[a.0.keeper()].path.cmp(&entries[b.0.keeper()].path));
    groups
        .iter()
        .map(|(g, matched)| {
            // To the keeper's picture (its byte-identical copies: distance 0, similarity 1).
            let value = |row: usize| to_keeper.get(&exact.keeper_of(row)).copied();
            let label = match (matched, tier) {
                (false, _) => "exact",
                (true, Tier::Near) => "near",
                (true, Tier::Similar) => "similar",
            };
            let mut report = group_report(label, g, entries, &product);
            for (m, &row) in report.members.iter_mut().zip(&g.rows) {
                match tier {
                    Tier::Near => m.distance = Some(value(row).unwrap_or(0.0)),
                    Tier::Similar => m.similarity = Some(value(row).unwrap_or(1.0)),
                }
            }
            report
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

    #[test]
    fn near_groups_join_byte_identical_ones_and_collapse_edited_copies_in_place() {
        let entries = vec![
            entry("a.jpg", "h1", 10, 5),
            entry("b.jpg", "h1", 10, 1),
            entry("c.jpg", "h2", 30, 1),
            entry("d.jpg", "h3", 10, 1),
            entry("e.jpg", "h4", 10, 1),
            entry("f.jpg", "h5", 10, 1),
        ];
        let exact = Copies::exact(&entries);
        // Near sets: a's picture edited as c; d and e one picture; f alone.
        let copies = exact.with_near(&entries, vec![vec![0, 2], vec![3, 4], vec![5]]);
        // a, b (same bytes) and c (edited, largest: the keeper) are one group.
        assert_eq!(copies.groups(), &[Group { rows: vec![2, 1, 0] }, Group { rows: vec![3, 4] }]);
        assert_eq!(copies.extra_rows(), 3);
        assert_eq!(exact.groups().len(), 1, "the byte-identical groups are unchanged");
        // The keeper stands in for a byte-identical copy's hit only at the same score: an
        // edited keeper further down does not take the first place.
        let ranked =
            [(0, 0.99), (3, 0.8), (2, 0.7), (4, 0.75), (5, 0.5)].map(|(row, score)| Scored { row, score }).to_vec();
        let hits: Vec<usize> = copies.collapse(ranked, 10).iter().map(|s| s.row).collect();
        assert_eq!(hits, vec![0, 3, 5]);
    }
}
