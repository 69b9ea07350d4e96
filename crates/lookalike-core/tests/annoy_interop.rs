//! The Annoy index against the real Python `annoy` 1.17.3, both ways.

use std::path::Path;
use std::process::Command;

use lookalike_core::config::IndexConfig;
use lookalike_core::index::annoy::{self, Annoy};
use lookalike_core::index::forest::{self, Forest, TreeFiles, Truth};

const DIMS: usize = 64;
const ITEMS: usize = 3000;
const TREES: usize = 10;
const SEARCH_K: usize = 600;

/// `n` clustered unit vectors from a fixed-seed generator; row i is in cluster i % clusters.
fn clustered(n: usize, dims: usize, clusters: usize, noise: f32, seed: u64) -> Vec<f32> {
    let mut numbers = lookalike_core::bench::pseudo_uniform(seed, (clusters + n) * dims).into_iter();
    let mut unit = || numbers.next().expect("enough numbers") - 0.5;
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..dims).map(|_| unit()).collect()).collect();
    let mut out = Vec::with_capacity(n * dims);
    for i in 0..n {
        let mut v: Vec<f32> = centres[i % clusters].iter().map(|c| c + noise * unit()).collect();
        lookalike_core::model::normalize(&mut v);
        out.extend(v);
    }
    out
}

fn vectors() -> Vec<f32> {
    clustered(ITEMS, DIMS, 20, 0.4, 0x5EED)
}

fn queries(vectors: &[f32]) -> Vec<Vec<f32>> {
    (0..25).map(|i| vectors[(i * 117 % ITEMS) * DIMS..][..DIMS].iter().map(|x| x + 0.01).collect()).collect()
}

/// The Python with annoy: `LOOKALIKE_PYTHON` (`cargo xtask test` sets its virtual
/// environment's), else `python3`.
fn python3() -> Command {
    Command::new(std::env::var_os("LOOKALIKE_PYTHON").unwrap_or_else(|| "python3".into()))
}

/// Runs Python with the real annoy package; a missing package fails the test, never skips it.
fn python(script: &str, args: &[&Path]) -> serde_json::Value {
    let check = python3()
        .args(["-c", "import importlib.metadata as m; print(m.version('annoy'))"])
        .output()
        .expect("python3 is needed for the Annoy interoperability tests");
    let version = String::from_utf8_lossy(&check.stdout).trim().to_string();
    assert_eq!(version, "1.17.3", "Python annoy 1.17.3 is needed: `cargo xtask test` installs it");
    let out = python3().arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

const PY_PRELUDE: &str = r#"
import sys, json, struct
from annoy import AnnoyIndex
DIMS, ITEMS, TREES, SEARCH_K = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
def rows(path):
    data = open(path, 'rb').read()
    flat = struct.unpack('<%df' % (len(data) // 4), data)
    return [list(flat[i:i + DIMS]) for i in range(0, len(flat), DIMS)]
"#;

fn write_f32(path: &Path, rows: impl IntoIterator<Item = f32>) {
    let bytes: Vec<u8> = rows.into_iter().flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes).unwrap();
}

fn numbers() -> [String; 4] {
    [DIMS.to_string(), ITEMS.to_string(), TREES.to_string(), SEARCH_K.to_string()]
}

#[test]
fn python_annoy_reads_our_index_and_agrees_with_annoy_rs() {
    let dir = tempfile::tempdir().unwrap();
    let (vecs, qs) = (vectors(), queries(&vectors()));
    let ann = dir.path().join("ours.ann");
    annoy::build(&vecs, DIMS, TREES, 99, 0, &ann, annoy::Numbering::Rows).unwrap();
    let (vf, qf) = (dir.path().join("v.f32"), dir.path().join("q.f32"));
    write_f32(&vf, vecs.iter().copied());
    write_f32(&qf, qs.iter().flatten().copied());
    let script = format!(
        "{PY_PRELUDE}
u = AnnoyIndex(DIMS, 'angular'); u.load(sys.argv[1])
vs = rows(sys.argv[2])
worst = max(abs(a - b) for i in range(0, ITEMS, 97) for a, b in zip(u.get_item_vector(i), vs[i]))
print(json.dumps({{'items': u.get_n_items(), 'trees': u.get_n_trees(), 'worst': worst,
  'nns': [u.get_nns_by_vector(q, 10, search_k=SEARCH_K) for q in rows(sys.argv[3])]}}))"
    );
    let n = numbers();
    let n: Vec<&Path> = n.iter().map(Path::new).collect();
    let got = python(&script, &[&ann, &vf, &qf, n[0], n[1], n[2], n[3]]);
    assert_eq!(got["items"], ITEMS);
    assert_eq!(got["trees"], TREES);
    assert!(got["worst"].as_f64().unwrap() < 1e-6);
    let ours = Annoy::open(&ann, DIMS, ITEMS).unwrap();
    for (q, theirs) in qs.iter().zip(got["nns"].as_array().unwrap()) {
        let theirs: Vec<usize> = theirs.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(ours.candidates(q, 10, SEARCH_K), theirs);
    }
}

#[test]
fn an_index_written_by_python_annoy_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (vecs, qs) = (vectors(), queries(&vectors()));
    let (vf, qf, ann) = (dir.path().join("v.f32"), dir.path().join("q.f32"), dir.path().join("theirs.ann"));
    write_f32(&vf, vecs.iter().copied());
    write_f32(&qf, qs.iter().flatten().copied());
    let script = format!(
        "{PY_PRELUDE}
u = AnnoyIndex(DIMS, 'angular'); u.set_seed(7)
for i, v in enumerate(rows(sys.argv[2])): u.add_item(i, v)
u.build(TREES); u.save(sys.argv[1])
print(json.dumps([u.get_nns_by_vector(q, 10, search_k=SEARCH_K) for q in rows(sys.argv[3])]))"
    );
    let n = numbers();
    let n: Vec<&Path> = n.iter().map(Path::new).collect();
    let theirs = python(&script, &[&ann, &vf, &qf, n[0], n[1], n[2], n[3]]);
    let served = Annoy::open(&ann, DIMS, ITEMS).unwrap();
    let mut recall_hits = 0;
    for (q, theirs) in qs.iter().zip(theirs.as_array().unwrap()) {
        let theirs: Vec<usize> = theirs.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let ours = served.candidates(q, 10, SEARCH_K);
        assert_eq!(ours, theirs);
        let exact: Vec<usize> =
            lookalike_core::index::exact::exact_top_k(&vecs, DIMS, q, 10, |_| true).iter().map(|s| s.row).collect();
        recall_hits += ours.iter().filter(|r| exact.contains(r)).count();
    }
    let recall = recall_hits as f64 / (10 * qs.len()) as f64;
    assert!(recall > 0.8, "recall@10 of the Python-built index through our serving path: {recall}");
    // A file for other dimensions or item counts is refused, not misread.
    assert!(Annoy::open(&ann, DIMS * 2, ITEMS).is_err());
    assert!(Annoy::open(&ann, DIMS, ITEMS + 1).is_err());
}

#[test]
fn default_trees_reach_the_recall_goal_on_100k_clustered_descriptors_and_python_reads_them() {
    // 100,000 synthetic clustered 512-d descriptors (as `bench-annoy --synthetic`), with the
    // shipped defaults: trees over the PCA projection, candidates re-ranked at 512-d.
    let (items, dims) = (100_000, 512);
    let config = IndexConfig::default();
    let vecs = lookalike_core::bench::clustered(items, dims, 1);
    let dir = tempfile::tempdir().unwrap();
    let files = TreeFiles::beside(&dir.path().join("d.ann"));
    let (sidecar, rows) = forest::build(&vecs, dims, &config, 0, &files).unwrap();
    assert_eq!((sidecar.file.dims, sidecar.descriptor_dims), (config.project_dims, dims));
    // At the search_k the build's probe chose, which searches use.
    let trees = Forest::open_at(&files, &sidecar).unwrap();
    let cost = Truth::of(&vecs, dims, 300).cost(&vecs, dims, &trees);
    eprintln!("defaults on {items} x {dims}: {cost:?} (probe at build: {:?})", sidecar.cost);
    assert!(cost.recall_at_10 >= 0.99, "recall@10 {}", cost.recall_at_10);

    // The file is a plain Annoy index of the projected vectors, which Python's annoy loads
    // with the dimensions the sidecar records; each item is its own nearest neighbour.
    // The projection file is as the README describes it: the mean, then the
    // descriptor_dims x dims basis; projecting item 7's descriptor (row rows[7], as
    // index.ann.rows records it) gives its stored vector.
    let item = dir.path().join("item7.json");
    let row = rows[7] as usize;
    std::fs::write(&item, serde_json::to_vec(&vecs[row * dims..(row + 1) * dims]).unwrap()).unwrap();
    let found = python(
        "import sys, json, struct, math
from annoy import AnnoyIndex
d, f = int(sys.argv[3]), int(sys.argv[2])
u = AnnoyIndex(f, 'angular'); u.load(sys.argv[1])
raw = open(sys.argv[1] + '.proj', 'rb').read()
floats = struct.unpack('<%df' % (len(raw) // 4), raw)
mean, basis = floats[:d], floats[d:]
v = json.load(open(sys.argv[4]))
p = [sum((v[i] - mean[i]) * basis[i * f + j] for i in range(d)) for j in range(f)]
norm = math.sqrt(sum(x * x for x in p))
print(json.dumps({'items': u.get_n_items(), 'trees': u.get_n_trees(), 'floats': len(floats),
  'gap': max(abs(a / norm - b) for a, b in zip(p, u.get_item_vector(7))),
  'first': [u.get_nns_by_item(i, 1)[0] for i in range(0, 100000, 9973)]}))",
        &[&files.ann, Path::new(&sidecar.file.dims.to_string()), Path::new(&dims.to_string()), &item],
    );
    assert_eq!(found["items"], items);
    assert_eq!(found["trees"], config.n_trees);
    assert_eq!(found["floats"], dims + dims * sidecar.file.dims);
    assert!(found["gap"].as_f64().unwrap() < 1e-4, "{found}");
    let expected: Vec<usize> = (0..items).step_by(9973).collect();
    assert_eq!(found["first"], serde_json::json!(expected));
}
