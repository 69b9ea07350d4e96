//! Annoy files: written in spotify/annoy 1.17's on-disk format and served with the
//! `annoy-rs` crate ([`super::forest`] decides what they are built over and when they are
//! used).
//!
//! No maintained crate builds Annoy files (annoy-rs only loads them), so the builder is
//! here. Format (angular metric, native little-endian, no header): every node is
//! `i32 n_descendants`, `i32 children[2]`, `f32 v[f]` (12 + 4f bytes). Nodes 0..n are the
//! items (n_descendants 1, the squared norm in the first children slot, the vector in v);
//! then each tree's nodes, children before parents; then a copy of every root. Roots carry
//! n_descendants = n. A node with 2..=K = f + 2 descendants is a leaf listing item ids in
//! place of children and v; larger nodes are splits whose v is the hyperplane normal.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::exact::{dot_portable as dot, normalize};
use crate::error::{Error, IoContext, Result};
use crate::files;

/// What an index file was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Built {
    pub items: usize,
    pub dims: usize,
    pub n_trees: usize,
    pub seed: u64,
    /// Checksum of the vectors the trees were built from.
    pub source_crc: u32,
    pub file_len: u64,
    /// CRC-32 of the index file itself, so a damaged file is rebuilt, not served.
    pub file_crc: u32,
}

/// Passes writes through while computing their CRC-32.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// CRC-32 of a whole file, read in 1 MiB pieces.
pub fn file_crc(path: &Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(crc.finalize()),
            n => crc.update(&buf[..n]),
        }
    }
}

/// The seed lookalike builds with: a fixed one keeps index files reproducible.
pub const DEFAULT_SEED: u64 = 1_234_567_890;

pub fn node_size(dims: usize) -> usize {
    12 + 4 * dims
}

/// SplitMix64: small, fast and deterministic; one stream per tree.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn index(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn flip(&mut self) -> usize {
        (self.next() & 1) as usize
    }
}

#[derive(Clone, Copy)]
enum Ref {
    Item(i32),
    Node(usize),
}

enum Node {
    Split { n_descendants: i32, children: [Ref; 2], plane: Vec<f32> },
    Leaf { n_descendants: i32, items: Vec<i32> },
}

struct TreeBuilder<'a> {
    vectors: &'a [f32],
    dims: usize,
    n_items: usize,
    k: usize,
    rng: Rng,
    nodes: Vec<Node>,
}

/// Annoy's angular distance between two vectors given their squared norms.
fn angular_distance(x: &[f32], xx: f32, y: &[f32], yy: f32) -> f32 {
    let ppqq = xx * yy;
    if ppqq > 0.0 {
        2.0 - 2.0 * dot(x, y) / ppqq.sqrt()
    } else {
        2.0
    }
}

fn imbalance(a: usize, b: usize) -> f64 {
    let f = a as f64 / (a as f64 + b as f64 + 1e-9);
    f.max(1.0 - f)
}

impl TreeBuilder<'_> {
    fn item(&self, i: i32) -> &[f32] {
        let i = i as usize;
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }

    /// Annoy's `two_means`: two centroids from a random pair, refined by 200 weighted steps;
    /// the split plane is their normalized difference.
    fn create_split(&mut self, indices: &[i32]) -> Vec<f32> {
        let count = indices.len();
        let i = self.rng.index(count);
        let mut j = self.rng.index(count - 1);
        j += usize::from(j >= i);
        let mut p = self.item(indices[i]).to_vec();
        let mut q = self.item(indices[j]).to_vec();
        normalize(&mut p);
        normalize(&mut q);
        let (mut pp, mut qq) = (dot(&p, &p), dot(&q, &q));
        let (mut ic, mut jc) = (1f32, 1f32);
        for _ in 0..200 {
            let k = indices[self.rng.index(count)];
            let v = self.item(k);
            let vv = dot(v, v);
            let di = ic * angular_distance(&p, pp, v, vv);
            let dj = jc * angular_distance(&q, qq, v, vv);
            let norm = vv.sqrt();
            // NaN-safe: a zero or NaN norm skips the point, as in Annoy.
            if norm.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            if di < dj {
                p.iter_mut().zip(v).for_each(|(m, x)| *m = (*m * ic + x / norm) / (ic + 1.0));
                pp = dot(&p, &p);
                ic += 1.0;
            } else if dj < di {
                q.iter_mut().zip(v).for_each(|(m, x)| *m = (*m * jc + x / norm) / (jc + 1.0));
                qq = dot(&q, &q);
                jc += 1.0;
            }
        }
        let mut plane: Vec<f32> = p.iter().zip(&q).map(|(a, b)| a - b).collect();
        normalize(&mut plane);
        plane
    }

    fn side(&mut self, plane: &[f32], item: i32) -> usize {
        let margin = dot(plane, self.item(item));
        if margin != 0.0 {
            usize::from(margin > 0.0)
        } else {
            self.rng.flip()
        }
    }

    fn make_tree(&mut self, indices: Vec<i32>, is_root: bool) -> Ref {
        if indices.len() == 1 && !is_root {
            return Ref::Item(indices[0]);
        }
        let n_descendants = if is_root { self.n_items as i32 } else { indices.len() as i32 };
        if indices.len() <= self.k && (!is_root || self.n_items <= self.k || indices.len() == 1) {
            self.nodes.push(Node::Leaf { n_descendants, items: indices });
            return Ref::Node(self.nodes.len() - 1);
        }
        let mut sides: [Vec<i32>; 2] = [Vec::new(), Vec::new()];
        let mut plane = Vec::new();
        for _ in 0..3 {
            plane = self.create_split(&indices);
            sides = [Vec::new(), Vec::new()];
            for &i in &indices {
                let s = self.side(&plane, i);
                sides[s].push(i);
            }
            if imbalance(sides[0].len(), sides[1].len()) < 0.95 {
                break;
            }
        }
        // No useful hyperplane (e.g. identical vectors): split at random, as Annoy does.
        while imbalance(sides[0].len(), sides[1].len()) > 0.99 {
            plane.iter_mut().for_each(|x| *x = 0.0);
            sides = [Vec::new(), Vec::new()];
            for &i in &indices {
                let s = self.rng.flip();
                sides[s].push(i);
            }
        }
        let flip = usize::from(sides[0].len() > sides[1].len());
        let mut children = [Ref::Item(0); 2];
        let [s0, s1] = sides;
        let mut sides = [Some(s0), Some(s1)];
        // The smaller side first, for Annoy's node order.
        for side in [flip, 1 - flip] {
            let part = sides[side].take().unwrap();
            children[side] = self.make_tree(part, false);
        }
        self.nodes.push(Node::Split { n_descendants, children, plane });
        Ref::Node(self.nodes.len() - 1)
    }
}

/// How a file numbers its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// Item i is row i.
    Rows,
    /// Items in the order of the first tree's leaves, so that neighbours sit side by side
    /// in the file: a search reads its candidates' nodes in id order, and near ones share
    /// pages and cache lines instead of each costing a miss (up to 1.5x the queries/s at
    /// a million items).
    Leaves,
}

/// `n_trees` trees (at least one) over row-major vectors, leaves of at most `leaf` items,
/// in parallel, tree t from its own stream of `seed`.
fn grow(vectors: &[f32], dims: usize, n_trees: usize, leaf: usize, seed: u64) -> Vec<Vec<Node>> {
    let n_items = vectors.len() / dims;
    (0..n_trees.max(1))
        .into_par_iter()
        .map(|t| {
            let mut b = TreeBuilder {
                vectors,
                dims,
                n_items,
                k: leaf,
                rng: Rng(seed ^ (t as u64).wrapping_mul(0xA076_1D64_78BD_642F)),
                nodes: Vec::new(),
            };
            b.make_tree((0..n_items as i32).collect(), true);
            b.nodes
        })
        .collect()
}

/// One random-projection tree's leaves: `groups` lists them, `of[row]` is the leaf of
/// `row`. Rows sharing a leaf are candidates for each other's nearest neighbours, as
/// nearest-neighbour graphs are started from a forest of such trees.
pub struct Leaves {
    pub groups: Vec<Vec<u32>>,
    pub of: Vec<u32>,
}

/// The leaves of `n_trees` trees over row-major vectors, at most `leaf` rows each.
pub fn leaves(vectors: &[f32], dims: usize, n_trees: usize, leaf: usize, seed: u64) -> Vec<Leaves> {
    let n_items = vectors.len() / dims.max(1);
    if n_items == 0 {
        return Vec::new();
    }
    grow(vectors, dims, n_trees, leaf.max(2), seed)
        .into_par_iter()
        .map(|tree| {
            let groups = leaf_groups(&tree);
            let mut of = vec![0u32; n_items];
            for (g, rows) in groups.iter().enumerate() {
                rows.iter().for_each(|&r| of[r as usize] = g as u32);
            }
            Leaves { groups, of }
        })
        .collect()
}

/// The items of one tree, leaf by leaf, depth first (`make_tree` pushes its root last);
/// an item a split left alone is a leaf of one.
fn leaf_groups(tree: &[Node]) -> Vec<Vec<u32>> {
    let mut groups = Vec::new();
    let mut stack = vec![Ref::Node(tree.len() - 1)];
    while let Some(r) = stack.pop() {
        match r {
            Ref::Item(i) => groups.push(vec![i as u32]),
            Ref::Node(n) => match &tree[n] {
                Node::Leaf { items, .. } => groups.push(items.iter().map(|&i| i as u32).collect()),
                Node::Split { children, .. } => stack.extend([children[1], children[0]]),
            },
        }
    }
    groups
}

/// Builds `n_trees` trees over row-major unit vectors and writes the Annoy file atomically,
/// its items numbered as `numbering` says; returns the row of each item. Trees are built
/// in parallel, each from its own seed, so the file depends only on the vectors,
/// `n_trees`, `seed` and `numbering`.
pub fn build(
    vectors: &[f32],
    dims: usize,
    n_trees: usize,
    seed: u64,
    source_crc: u32,
    out: &Path,
    numbering: Numbering,
) -> Result<(Built, Vec<u32>)> {
    let refuse = |reason: String| Err(Error::failed(format!("building Annoy index {}", out.display()), reason));
    if dims == 0 || !vectors.len().is_multiple_of(dims) {
        return refuse(format!("vectors are not a whole number of {dims}-d rows"));
    }
    let n_items = vectors.len() / dims;
    if n_items == 0 {
        return refuse("no vectors".into());
    }
    if n_items >= i32::MAX as usize / 2 {
        return refuse(format!("{n_items} items are more than the Annoy format's 32-bit ids allow"));
    }
    let trees = grow(vectors, dims, n_trees, dims + 2, seed);
    // Item i of the file is row `rows[i]`; `item_of` maps back.
    let rows: Vec<u32> = match numbering {
        Numbering::Rows => (0..n_items as u32).collect(),
        Numbering::Leaves => leaf_groups(&trees[0]).concat(),
    };
    let mut item_of = vec![0i32; n_items];
    rows.iter().enumerate().for_each(|(item, &row)| item_of[row as usize] = item as i32);
    let renumber = |row: i32| item_of[row as usize];

    let mut tmp = files::temp_beside(out, ".index-")?;
    let context = "cannot write Annoy index";
    let size = node_size(dims);
    let mut node = vec![0u8; size];
    let mut roots: Vec<Vec<u8>> = Vec::new();
    let file_crc = {
        let mut w = CrcWriter { inner: BufWriter::with_capacity(1 << 20, tmp.as_file_mut()), crc: Default::default() };
        for v in rows.iter().map(|&row| &vectors[row as usize * dims..(row as usize + 1) * dims]) {
            node.fill(0);
            node[0..4].copy_from_slice(&1i32.to_le_bytes());
            node[4..8].copy_from_slice(&dot(v, v).to_le_bytes());
            node[12..].copy_from_slice(bytemuck::cast_slice(v));
            w.write_all(&node).at(context, out)?;
        }
        let mut base = n_items;
        for tree in &trees {
            let id = |r: Ref| -> i32 {
                match r {
                    Ref::Item(i) => renumber(i),
                    Ref::Node(local) => (base + local) as i32,
                }
            };
            for n in tree {
                node.fill(0);
                match n {
                    Node::Split { n_descendants, children, plane } => {
                        node[0..4].copy_from_slice(&n_descendants.to_le_bytes());
                        node[4..8].copy_from_slice(&id(children[0]).to_le_bytes());
                        node[8..12].copy_from_slice(&id(children[1]).to_le_bytes());
                        node[12..].copy_from_slice(bytemuck::cast_slice(plane));
                    }
                    Node::Leaf { n_descendants, items } => {
                        node[0..4].copy_from_slice(&n_descendants.to_le_bytes());
                        let items: Vec<i32> = items.iter().map(|&i| renumber(i)).collect();
                        node[4..4 + 4 * items.len()].copy_from_slice(bytemuck::cast_slice(&items));
                    }
                }
                w.write_all(&node).at(context, out)?;
            }
            // make_tree pushes the root last.
            roots.push(node.clone());
            base += tree.len();
        }
        for root in &roots {
            w.write_all(root).at(context, out)?;
        }
        w.flush().at(context, out)?;
        w.crc.finalize()
    };
    tmp.as_file().sync_all().at(context, out)?;
    let file_len = tmp.as_file().metadata().at(context, out)?.len();
    files::persist(tmp, out)?;
    Ok((Built { items: n_items, dims, n_trees, seed, source_crc, file_len, file_crc }, rows))
}

/// Checks what annoy-rs does not: the size and the root and item nodes of an index file.
pub fn validate(path: &Path, dims: usize, items: usize) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let size = node_size(dims) as u64;
    let mut file = std::fs::File::open(path).at("cannot open", path)?;
    let len = file.metadata().at("cannot read", path)?.len();
    let damaged = |reason: String| Err(Error::damaged(path, reason));
    if len == 0 || len % size != 0 {
        return damaged(format!(
            "{len} bytes, not a whole number of {size}-byte nodes (truncated, or not {dims}-d angular)"
        ));
    }
    let nodes = len / size;
    if nodes < items as u64 + 2 {
        return damaged(format!("{nodes} nodes, too few for {items} items"));
    }
    let mut read_i32 = |node: u64| -> Result<i32> {
        let mut b = [0u8; 4];
        file.seek(SeekFrom::Start(node * size)).and_then(|_| file.read_exact(&mut b)).at("cannot read", path)?;
        Ok(i32::from_le_bytes(b))
    };
    let root = read_i32(nodes - 1)?;
    if root != items as i32 {
        return damaged(format!("roots for {root} items, the store has {items}"));
    }
    for i in [0, items as u64 / 2, items as u64 - 1] {
        if read_i32(i)? != 1 {
            return damaged(format!("node {i} is not an item node"));
        }
    }
    Ok(())
}

/// annoy-rs's index holds an `Rc` to its file map and clones it while it searches, so one
/// value must never be used by two threads at once. A `Served` is only ever used by the
/// thread that took it out of the pool, and between searches no clone of the `Rc` exists
/// (every node a search makes is dropped before it returns), so handing the whole value
/// to another thread is sound.
struct Served(annoy_rs::AnnoyIndex);

// SAFETY: see above; the pool gives each value to one thread at a time.
unsafe impl Send for Served {}

/// An index file opened for searching: a pool of annoy-rs handles over the same file,
/// one per concurrent search, all loaded (and validated) when it opens.
pub struct Annoy {
    path: PathBuf,
    pool: Mutex<Vec<Served>>,
    returned: Condvar,
}

impl Annoy {
    pub fn open(path: &Path, dims: usize, items: usize) -> Result<Annoy> {
        validate(path, dims, items)?;
        let text = path
            .to_str()
            .ok_or_else(|| Error::failed(format!("opening {}", path.display()), "the path is not UTF-8"))?;
        let handles = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let mut pool = Vec::with_capacity(handles);
        for _ in 0..handles {
            let index = annoy_rs::AnnoyIndex::load(dims, text, annoy_rs::IndexType::Angular)
                .map_err(|e| Error::damaged(path, format!("annoy-rs cannot load it: {e}")))?;
            if index.size != items {
                return Err(Error::damaged(path, format!("holds {} items, expected {items}", index.size)));
            }
            pool.push(Served(index));
        }
        Ok(Annoy { path: path.to_path_buf(), pool: Mutex::new(pool), returned: Condvar::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Item ids of up to `n` approximate neighbours, after inspecting `search_k` candidates.
    pub fn candidates(&self, query: &[f32], n: usize, search_k: usize) -> Vec<usize> {
        use annoy_rs::AnnoyIndexSearchApi;
        let served = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match pool.pop() {
                    Some(s) => break s,
                    None => pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        let search_k = search_k.min(i32::MAX as usize) as i32;
        let ids = served.0.get_nearest(query, n, search_k, false).id_list;
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(served);
        self.returned.notify_one();
        ids.into_iter().map(|i| i as usize).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clustered(n: usize, dims: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        let mut unit = || (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let centres: Vec<Vec<f32>> = (0..8).map(|_| (0..dims).map(|_| unit()).collect()).collect();
        let mut out = Vec::with_capacity(n * dims);
        for i in 0..n {
            let mut v: Vec<f32> = centres[i % 8].iter().map(|c| c + 0.3 * unit()).collect();
            normalize(&mut v);
            out.extend(v);
        }
        out
    }

    #[test]
    fn same_seed_same_file_and_annoy_rs_finds_items() {
        let dims = 16;
        let vectors = clustered(500, dims, 1);
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.ann"), dir.path().join("b.ann"));
        build(&vectors, dims, 5, 42, 0, &a, Numbering::Rows).unwrap();
        build(&vectors, dims, 5, 42, 0, &b, Numbering::Rows).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let index = Annoy::open(&a, dims, 500).unwrap();
        for i in [0usize, 123, 499] {
            let got = index.candidates(&vectors[i * dims..(i + 1) * dims], 1, 500);
            assert_eq!(got, vec![i]);
        }
    }

    #[test]
    fn truncated_or_mismatched_files_are_refused() {
        let dims = 8;
        let vectors = clustered(100, dims, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ann");
        build(&vectors, dims, 3, 1, 0, &path, Numbering::Rows).unwrap();
        assert!(Annoy::open(&path, dims, 100).is_ok());
        assert!(Annoy::open(&path, dims, 99).is_err());
        assert!(Annoy::open(&path, 16, 100).is_err());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Annoy::open(&path, dims, 100).is_err());
        std::fs::write(&path, &bytes[..node_size(dims) * 50]).unwrap();
        assert!(Annoy::open(&path, dims, 100).is_err());
        std::fs::write(&path, b"").unwrap();
        assert!(Annoy::open(&path, dims, 100).is_err());
    }

    #[test]
    fn identical_vectors_still_split() {
        let dims = 4;
        let vectors: Vec<f32> = std::iter::repeat_n([0.5f32, 0.5, 0.5, 0.5], 200).flatten().collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("same.ann");
        build(&vectors, dims, 2, 7, 0, &path, Numbering::Rows).unwrap();
        let index = Annoy::open(&path, dims, 200).unwrap();
        assert_eq!(index.candidates(&[0.5; 4], 200, 10_000).len(), 200);
    }
}
