//! The engine end to end from the real binary, on the real weights and real photos.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{dataset, json};

/// Ten of the largest classes, 24 images each: every query has same-class neighbours.
const CLASSES: usize = 10;
const PER_CLASS: usize = 24;
const SUBSET: usize = CLASSES * PER_CLASS;

/// One indexed catalog of real photos shared by the tests of this file.
struct Indexed {
    _dir: tempfile::TempDir,
    catalog: PathBuf,
    state: PathBuf,
    files: Vec<String>,
}

fn indexed() -> &'static Indexed {
    static INDEXED: OnceLock<Indexed> = OnceLock::new();
    INDEXED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("catalog");
        let state = dir.path().join("state");
        let files = dataset().class_subset(CLASSES, PER_CLASS, &catalog);
        let report = common::run_json(&catalog, &state, &["index", "--json"]);
        assert_eq!(report["items"], SUBSET);
        assert_eq!(report["embedded"].as_u64().unwrap() + report["deduplicated"].as_u64().unwrap(), SUBSET as u64);
        Indexed { _dir: dir, catalog, state, files }
    })
}

fn query(args: &[&str], image: Option<&Path>) -> serde_json::Value {
    let ix = indexed();
    let mut cmd = common::at(&ix.catalog, &ix.state);
    cmd.arg("query");
    if let Some(image) = image {
        cmd.arg(image);
    }
    json(&cmd.args(args).arg("--json").output().unwrap())
}

#[test]
fn model_matches_an_independent_onnx_runtime_embedding() {
    // tests/fixtures/make_reference.py made the image and its ONNX Runtime vector.
    let fixtures = common::root().join("tests/fixtures");
    let embedder =
        lookalike::model::Embedder::load(&common::weights(), lookalike::model::ResizePolicy::Stretch).unwrap();
    let ours = embedder.embed_file(&fixtures.join("shirt.png")).unwrap();
    let theirs: Vec<f32> = std::fs::read(fixtures.join("shirt.ort.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(ours.len(), 2048);
    let cosine = lookalike::index::dot(&ours, &theirs);
    assert!(cosine >= 0.9998, "cosine to the reference {cosine}");
}

#[test]
fn stored_vectors_are_finite_and_unit_norm() {
    let ix = indexed();
    let store = lookalike::store::Store::open(&ix.state.join("store.lks")).unwrap();
    assert_eq!(store.len(), SUBSET);
    for i in 0..store.len() {
        let v = store.vector(i);
        assert!(v.iter().all(|x| x.is_finite()), "row {i} not finite");
        let norm = lookalike::index::dot(v, v).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "row {i} norm {norm}");
    }
}

#[test]
fn an_image_finds_itself_first() {
    let ix = indexed();
    for file in ix.files.iter().step_by(60) {
        let path = ix.catalog.join("images").join(file);
        let hits = query(&["-k", "3"], Some(&path));
        let top = &hits[0];
        // A byte-identical duplicate may tie; then both score 1.
        assert!(top["score"].as_f64().unwrap() > 0.9999, "{file}: {top}");
        let same = hits.as_array().unwrap().iter().any(|h| h["rel"] == format!("images/{file}"));
        assert!(same, "{file} not in its own top 3: {hits}");
    }
}

#[test]
fn a_resized_reencoded_copy_finds_its_original() {
    let ix = indexed();
    let dir = tempfile::tempdir().unwrap();
    for file in ix.files.iter().skip(7).step_by(50) {
        let original = image::open(ix.catalog.join("images").join(file)).unwrap();
        // Shrink photos; enlarge 28-pixel Fashion-MNIST images, which shrinking would erase.
        let scale = if original.width() < 100 { 1.5 } else { 0.75 };
        let resized = original.resize_exact(
            (original.width() as f64 * scale) as u32 + 1,
            (original.height() as f64 * scale) as u32 + 1,
            image::imageops::FilterType::CatmullRom,
        );
        let copy = dir.path().join(format!("{file}.copy.jpg"));
        let mut out = std::fs::File::create(&copy).unwrap();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70).encode_image(&resized.to_rgb8()).unwrap();
        let hits = query(&["-k", "1"], Some(&copy));
        assert_eq!(hits[0]["rel"], format!("images/{file}"), "copy of {file} found {}", hits[0]);
    }
}

#[test]
fn item_queries_leave_the_item_out_and_filters_apply() {
    let ix = indexed();
    let id = ix.files[3].split('.').next().unwrap();
    let hits = query(&["--item", id, "-k", "5"], None);
    assert_eq!(hits.as_array().unwrap().len(), 5);
    assert!(hits.as_array().unwrap().iter().all(|h| h["id"] != id));
    let scores: Vec<f64> = hits.as_array().unwrap().iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "not sorted: {scores:?}");
    let class = hits[0]["metadata"]["articleType"].as_str().unwrap().to_string();
    let filtered = query(&["--item", id, "-k", "50", "--filter", &format!("articleType={class}")], None);
    assert!(!filtered.as_array().unwrap().is_empty());
    for h in filtered.as_array().unwrap() {
        assert_eq!(h["metadata"]["articleType"], class.as_str());
    }
    let none = query(&["--item", id, "--filter", "articleType=no such type", "--filter", "gender=Men"], None);
    assert!(none.as_array().unwrap().is_empty());
}

#[test]
fn precision_at_10_is_far_above_chance() {
    let ix = indexed();
    let ds = dataset();
    let report = common::run_json(&ix.catalog, &ix.state, &["eval", "--json"]);
    let p = report["precision"].as_f64().unwrap();
    let chance = report["chance"].as_f64().unwrap();
    eprintln!("{}: P@10 {p:.3} (chance {chance:.3}) over {} queries", ds.name, report["queries"]);
    // 10 classes x 24 images: random ranking scores the chance rate (about 0.1 here). The
    // plain pipeline measured 0.39 on this fashion-sample subset (0.55 on the full sample,
    // where queries have far more same-class neighbours). A broken model or tensor layout
    // ranks near chance, so 0.30 and 3x chance catch it with room for subset noise.
    // Fashion-MNIST (28-pixel grayscale, far from ImageNet photos) measured 0.48 on its
    // 10 x 24 subset, against the same chance rate.
    let floor = if ds.name == "fashion-sample" { 0.30 } else { 0.35 };
    assert!(p > floor && p > 3.0 * chance, "P@10 {p} (chance {chance})");
}

#[test]
fn bad_query_files_are_clear_errors() {
    let ix = indexed();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "<html>").unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, "").unwrap();
    for (path, reason) in
        [(&text, "not a decodable image"), (&empty, "empty file"), (&dir.path().join("missing.jpg"), "cannot read")]
    {
        let out = common::at(&ix.catalog, &ix.state).arg("query").arg(path).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&*path.to_string_lossy()) && err.contains(reason), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
