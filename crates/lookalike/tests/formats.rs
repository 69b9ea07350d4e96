//! A state folder written by the binary of version 1 (commit 4e1a1cb, before the workspace
//! split; see tests/fixtures/v1/README.md) opens without embedding again, answers as it
//! did (its store gets colour descriptors from the photos once), and the formats' writers
//! produce the same bytes from the same content.

mod common;

use std::path::{Path, PathBuf};

use common::{at, json};
use lookalike_core::descriptor::Space;
use lookalike_core::store::{self, Store};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// (id, ranking score) of each hit of a `query --json` answer.
fn ranking(hits: &serde_json::Value) -> Vec<(String, f64)> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].as_str().unwrap().to_string(), h["rank_score"].as_f64().unwrap()))
        .collect()
}

/// The same hits in the same order with the same scores, but for the last float bits
/// (dot products are summed in another order where the CPU has AVX2 and FMA).
fn assert_same_ranking(now: &[(String, f64)], then: &[(String, f64)], what: &str) {
    assert_eq!(now.iter().map(|h| &h.0).collect::<Vec<_>>(), then.iter().map(|h| &h.0).collect::<Vec<_>>(), "{what}");
    assert!(now.iter().zip(then).all(|(a, b)| (a.1 - b.1).abs() < 1e-5), "{what}: {now:?} vs {then:?}");
}

/// A recorded answer, from before hits had `rank_score`: their `score` was the ranking's.
fn recorded(name: &str) -> serde_json::Value {
    let mut answer: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture().join(name)).unwrap()).unwrap();
    for hit in answer.as_array_mut().unwrap() {
        if hit.get("rank_score").is_none() {
            hit["rank_score"] = hit["score"].clone();
        }
    }
    answer
}

#[test]
fn a_version_1_state_folder_answers_as_before_and_is_not_embedded_again() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = common::fixture_v1_copy(dir.path());
    for (mode, file) in [("--exact", "item5.json"), ("--approx", "item5-approx.json")] {
        let hits =
            json(&at(&catalog, &state).args(["query", "--item", "5", "-k", "5", mode, "--json"]).output().unwrap());
        assert_same_ranking(&ranking(&hits), &ranking(&recorded(file)), mode);
    }
    let info = json(&at(&catalog, &state).args(["info", "--json"]).output().unwrap());
    assert_eq!(info["items"].as_u64(), Some(70), "{info}");
    // Not outdated: only its colours are missing, and `info` says so.
    assert_eq!((info["stale"].as_bool(), info["colours_pending"].as_bool()), (Some(false), Some(true)), "{info}");

    // The store predates colour descriptors: one pass computes them from the photos and
    // keeps every feature; nothing is embedded. (The checkout gave the images new
    // modification times: they are hashed and found unchanged.)
    let report = json(&at(&catalog, &state).args(["index", "--json"]).output().unwrap());
    assert_eq!((report["embedded"].as_u64(), report["recoloured"].as_u64()), (Some(0), Some(70)), "{report}");
    assert_eq!(report["unchanged"], 70, "{report}");
    // Fashion-MNIST is grey, so colour stays out and the answers are what they were.
    assert!(report["descriptors"].as_str().unwrap().contains("colour unused"), "{report}");
    // (The descriptors were described again, by this build's arithmetic.)
    let hits = json(&at(&catalog, &state).args(["query", "--item", "5", "-k", "5", "--json"]).output().unwrap());
    assert_same_ranking(&ranking(&hits), &ranking(&recorded("item5.json")), "after the colour pass");
    // Once done, an index run leaves everything as it is.
    let before: Vec<Vec<u8>> =
        ["store.lks", "descriptors.lkd", "index.ann"].iter().map(|f| std::fs::read(state.join(f)).unwrap()).collect();
    let again = json(&at(&catalog, &state).args(["index", "--json"]).output().unwrap());
    assert_eq!((again["embedded"].as_u64(), again["recoloured"].as_u64()), (Some(0), Some(0)), "{again}");
    let after: Vec<Vec<u8>> =
        ["store.lks", "descriptors.lkd", "index.ann"].iter().map(|f| std::fs::read(state.join(f)).unwrap()).collect();
    assert!(before == after, "the state was rewritten by a run with nothing to do");
}

#[test]
fn the_writers_produce_version_1_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let old = fixture().join("state");
    let store = Store::open(&old.join("store.lks")).unwrap();
    let rewritten = dir.path().join("store.lks");
    // Version 1 stores did not record devices; recording none writes the same bytes.
    store::write(&rewritten, store.identity(), &[], store.entries(), |i| store.vector(i).into()).unwrap();
    assert!(std::fs::read(&rewritten).unwrap() == std::fs::read(old.join("store.lks")).unwrap(), "store bytes differ");

    let space = Space::open(&old.join("descriptors.lkd")).unwrap();
    assert!(space.matches(&store, space.recipe()));
    let resaved = dir.path().join("descriptors.lkd");
    space.save(&resaved).unwrap();
    let same = std::fs::read(&resaved).unwrap() == std::fs::read(old.join("descriptors.lkd")).unwrap();
    assert!(same, "descriptor bytes differ");

    let built = dir.path().join("index.ann");
    lookalike_core::index::annoy::build(
        space.vectors(),
        space.dims(),
        16,
        lookalike_core::index::annoy::DEFAULT_SEED,
        0,
        &built,
        lookalike_core::index::annoy::Numbering::Rows,
    )
    .unwrap();
    let same = std::fs::read(&built).unwrap() == std::fs::read(old.join("index.ann")).unwrap();
    assert!(same, "Annoy index bytes differ");
}
