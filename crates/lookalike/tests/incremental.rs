//! Incremental indexing and crash safety, from the real binary on real photos.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{at, dataset, json, run_json};

fn index(catalog: &Path, state: &Path, extra: &[&str]) -> serde_json::Value {
    json(&at(catalog, state).args(extra).args(["index", "--json"]).output().unwrap())
}

fn names(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| format!("images/{s}")).collect()
}

#[test]
fn only_new_and_changed_files_are_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let files = dataset().subset(12, 3, &catalog);
    let first = index(&catalog, &state, &[]);
    assert_eq!(first["embedded"], 12);
    assert_eq!(first["items"], 12);
    assert_eq!(first["annoy_built"], true);

    // A new batch of 3, 2 photos replaced by other content, 2 removed.
    let images = catalog.join("images");
    let spare = dataset().subset(3, 5, &dir.path().join("spare"));
    for f in &spare {
        std::fs::copy(dir.path().join("spare/images").join(f), images.join(f)).unwrap();
    }
    // The same product listed twice: one more file, no more model calls.
    std::fs::copy(images.join(&spare[0]), images.join(format!("copy-{}", spare[0]))).unwrap();
    for f in &files[..2] {
        let img = image::open(images.join(f)).unwrap().fliph();
        img.save_with_format(images.join(f), image::ImageFormat::Png).unwrap();
    }
    for f in &files[2..4] {
        std::fs::remove_file(images.join(f)).unwrap();
    }
    let second = index(&catalog, &state, &[]);
    let spare_refs: Vec<&str> = spare.iter().map(String::as_str).collect();
    let mut added = spare_refs.clone();
    let copy = format!("copy-{}", spare[0]);
    added.push(&copy);
    assert_eq!(names(&second["added"]), set(&added));
    assert_eq!(names(&second["updated"]), set(&[&files[0], &files[1]]));
    assert_eq!(names(&second["removed"]), set(&[&files[2], &files[3]]));
    assert_eq!(second["embedded"], 5, "{second}");
    assert_eq!(second["deduplicated"], 1);
    assert_eq!(second["unchanged"], 8);
    assert_eq!(second["items"], 14);
    assert_eq!(second["annoy_built"], true);

    // Nothing changed: nothing embedded, and the store is not rewritten.
    let store = state.join("store.lks");
    let before = std::fs::metadata(&store).unwrap().modified().unwrap();
    let third = index(&catalog, &state, &[]);
    assert_eq!((third["embedded"].as_u64(), third["unchanged"].as_u64()), (Some(0), Some(14)));
    assert_eq!(third["annoy_built"], false, "the Annoy index was rebuilt for an unchanged store");

    // A truncated or stale Annoy index is detected, rebuilt, and answers like exact search.
    let ann = state.join("index.ann");
    let bytes = std::fs::read(&ann).unwrap();
    std::fs::write(&ann, &bytes[..bytes.len() / 2]).unwrap();
    let item = spare[0].split('.').next().unwrap();
    let search = |mode: &str| run_json(&catalog, &state, &["query", "--item", item, "-k", "5", "--json", mode]);
    assert_eq!(search("--approx"), search("--exact"));
    assert_eq!(std::fs::read(&ann).unwrap().len(), bytes.len());
    std::fs::write(state.join("index.ann.json"), "{").unwrap();
    let info = run_json(&catalog, &state, &["info", "--json"]);
    assert_eq!(info["annoy_current"], false);
    assert_eq!(search("--approx"), search("--exact"));
    let info = run_json(&catalog, &state, &["info", "--json"]);
    assert_eq!(info["annoy_current"], true);
    // A flipped byte inside the trees (same length) fails the file checksum.
    let mut bytes = std::fs::read(&ann).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&ann, &bytes).unwrap();
    let info = run_json(&catalog, &state, &["info", "--json"]);
    assert_eq!(info["annoy_current"], false);
    assert_eq!(search("--approx"), search("--exact"));
    assert_eq!(run_json(&catalog, &state, &["info", "--json"])["annoy_current"], true);
    // A sidecar from before the trees recorded their projection and cost is stale, not
    // misread: the next search rebuilds the trees and measures them.
    let sidecar = state.join("index.ann.json");
    let mut old: serde_json::Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    for key in ["descriptor_dims", "projection_crc", "cost"] {
        assert!(old.as_object_mut().unwrap().remove(key).is_some(), "{key} missing from the sidecar");
    }
    std::fs::write(&sidecar, old.to_string()).unwrap();
    let info = run_json(&catalog, &state, &["info", "--json"]);
    assert_eq!((info["annoy_current"].as_bool(), info["annoy_cost"].is_null()), (Some(false), true));
    assert_eq!(search("--approx"), search("--exact"));
    let info = run_json(&catalog, &state, &["info", "--json"]);
    assert_eq!(info["annoy_current"], true);
    assert!(info["annoy_cost"]["recall_at_10"].as_f64().unwrap() > 0.0, "{info}");
    assert_eq!(std::fs::metadata(&store).unwrap().modified().unwrap(), before);

    // A touched but identical file is recognised by its content hash.
    let touched = std::fs::File::options().write(true).open(images.join(&files[5])).unwrap();
    touched.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
    let fourth = index(&catalog, &state, &[]);
    assert_eq!((fourth["embedded"].as_u64(), fourth["unchanged"].as_u64()), (Some(0), Some(14)));

    // Another preprocessing invalidates the store: everything is embedded again, with a reason.
    let config = dir.path().join("pad.toml");
    std::fs::write(&config, "[model]\nresize = \"pad\"\n").unwrap();
    let cfg = config.to_str().unwrap();
    let query = at(&catalog, &state).args(["--config", cfg, "query", "--item", "x"]).output().unwrap();
    assert!(String::from_utf8_lossy(&query.stderr).contains("run `lookalike index`"));
    let fifth = index(&catalog, &state, &["--config", cfg]);
    assert!(fifth["rebuilt"].as_str().unwrap().contains("pad-white"), "{fifth}");
    assert_eq!(fifth["embedded"], 13, "byte-identical files are embedded once");
    assert_eq!(fifth["items"], 14);
}

#[test]
fn photos_added_or_removed_after_the_trees_were_built_are_found_or_gone_at_once() {
    // 100 photos: one added and one removed is a delta of 2%, within what the trees absorb.
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let files = dataset().subset(101, 1, &catalog);
    let images = catalog.join("images");
    let (new, gone) = (&files[100], &files[0]);
    std::fs::rename(images.join(new), dir.path().join(new)).unwrap();
    assert_eq!(index(&catalog, &state, &[])["annoy_built"], true);
    let built = std::fs::read(state.join("index.ann")).unwrap();

    std::fs::rename(dir.path().join(new), images.join(new)).unwrap();
    std::fs::remove_file(images.join(gone)).unwrap();
    let second = index(&catalog, &state, &[]);
    assert_eq!((second["embedded"].as_u64(), second["items"].as_u64()), (Some(1), Some(100)));
    assert_eq!(second["annoy_built"], false, "a 2% delta rebuilt the trees: {second}");
    assert_eq!(std::fs::read(state.join("index.ann")).unwrap(), built);
    assert_eq!(run_json(&catalog, &state, &["info", "--json"])["annoy_current"], true);

    let id = |file: &str| file.split('.').next().unwrap().to_string();
    let ids = |hits: &serde_json::Value| -> Vec<String> {
        hits.as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
    };
    // The added photo is found first by its own image; the removed one is never a hit.
    let photo = images.join(new);
    let found =
        json(&at(&catalog, &state).arg("query").arg(&photo).args(["-k", "3", "--json", "--approx"]).output().unwrap());
    assert_eq!(ids(&found)[0], id(new));
    for item in [&files[1], &files[50], new] {
        let search =
            |mode: &str| run_json(&catalog, &state, &["query", "--item", &id(item), "-k", "99", "--json", mode]);
        let (approx, exact) = (search("--approx"), search("--exact"));
        assert!(!ids(&approx).contains(&id(gone)), "the removed photo was found");
        // Every item is a candidate here, so the trees with their delta rank exactly.
        assert_eq!(ids(&approx), ids(&exact));
    }
}

/// `lookalike index` in the background, quiet, with a config file.
fn spawn_index(catalog: &Path, state: &Path, config: &Path) -> std::process::Child {
    common::process(catalog, state, config)
        .arg("index")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_runs_lose_nothing_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let files = dataset().subset(40, 7, &catalog);
    let config = dir.path().join("small-batches.toml");
    std::fs::write(&config, "[model]\nbatch_size = 4\n").unwrap();
    // Fixed-seed delays, so the kill points are the same in every run.
    let delays = lookalike_core::bench::pseudo_uniform(20261127, 8);
    for delay in delays {
        let mut child = spawn_index(&catalog, &state, &config);
        // Kill at a random point after the run has committed a new batch, so the test does
        // not depend on how fast this machine is; a run that finishes first is fine too.
        let journal = state.join("journal.lkj");
        let size = || std::fs::metadata(&journal).map_or(0, |m| m.len());
        let start = size();
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while size() <= start.max(1024) && child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis((delay * 1500.0) as u64));
        child.kill().unwrap(); // SIGKILL: no cleanup runs
        child.wait().unwrap();
        // Whatever the kill point, a store on disk is whole and readable.
        if state.join("store.lks").exists() {
            lookalike_core::store::Store::open(&state.join("store.lks")).unwrap();
        }
    }
    // What the killed runs committed (store and journal), by content hash.
    let mut committed: BTreeSet<String> = BTreeSet::new();
    if state.join("store.lks").exists() {
        let store = lookalike_core::store::Store::open(&state.join("store.lks")).unwrap();
        committed.extend(store.entries().iter().map(|e| e.hash.clone()));
    }
    if state.join("journal.lkj").exists() {
        let identity = lookalike_core::store::Identity {
            model: lookalike_core::model::MODEL_ID.into(),
            preprocessing: lookalike_core::model::ResizePolicy::Crop.preprocessing_id(),
            dims: lookalike_core::model::ROW_DIMS,
            colour: lookalike_core::colour::COLOUR_ID.into(),
        };
        let (_, journaled) = lookalike_core::store::Journal::open(&state.join("journal.lkj"), &identity).unwrap();
        committed.extend(journaled.into_iter().map(|r| r.entry.hash));
    }
    let last = index(&catalog, &state, &["--config", config.to_str().unwrap()]);
    let accounted =
        ["embedded", "resumed", "unchanged", "deduplicated"].iter().map(|k| last[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(accounted, 40, "{last}");
    assert!(last["embedded"].as_u64().unwrap() < 40, "the killed runs kept nothing: {last}");
    let store = lookalike_core::store::Store::open(&state.join("store.lks")).unwrap();
    let stored: Vec<String> = store.entries().iter().map(|e| e.path.clone()).collect();
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), unique.len(), "an image is stored twice");
    let expected: BTreeSet<String> = files.iter().map(|f| format!("images/{f}")).collect();
    assert_eq!(unique, expected);
    // Nothing committed was embedded again: the last run embedded exactly the rest.
    let contents: BTreeSet<&str> = store.entries().iter().map(|e| e.hash.as_str()).collect();
    assert!(!committed.is_empty(), "no kill landed after a committed batch");
    assert_eq!(last["embedded"].as_u64().unwrap() as usize, contents.len() - committed.len(), "{last}");
    assert!(!state.join("journal.lkj").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".store-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_second_index_run_is_refused_and_queries_see_the_old_store() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let first = dataset().subset(12, 100, &catalog);
    index(&catalog, &state, &[]);
    let more = dir.path().join("more");
    let added = dataset().subset(24, 200, &more);
    for f in &added {
        std::fs::rename(more.join("images").join(f), catalog.join("images").join(f)).unwrap();
    }
    let config = dir.path().join("small-batches.toml");
    std::fs::write(&config, "[model]\nbatch_size = 2\n").unwrap();
    let mut running = spawn_index(&catalog, &state, &config);
    // Wait until it is embedding (its journal has a committed batch).
    let journal = state.join("journal.lkj");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while std::fs::metadata(&journal).map_or(0, |m| m.len()) < 1024 && std::time::Instant::now() < deadline {
        assert!(running.try_wait().unwrap().is_none(), "the run ended before embedding 24 images");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = at(&catalog, &state).arg("index").output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("another lookalike is indexing") && err.contains("wait for it"), "{err}");
    // Meanwhile searches answer from the last complete store: the 12 old items only.
    let item = first[0].split('.').next().unwrap();
    let hits = run_json(&catalog, &state, &["query", "--item", item, "-k", "50", "--json"]);
    let old: BTreeSet<String> = first.iter().map(|f| format!("images/{f}")).collect();
    let found: BTreeSet<String> = hits.as_array().unwrap().iter().map(|h| h["rel"].as_str().unwrap().into()).collect();
    assert_eq!(found.len(), 11, "{hits}");
    assert!(found.is_subset(&old), "a search saw a half-indexed store: {found:?}");
    assert!(running.wait().unwrap().success());
    let hits = run_json(&catalog, &state, &["query", "--item", item, "-k", "50", "--json"]);
    assert_eq!(hits.as_array().unwrap().len(), 35);
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_old_store_keeps_working() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let first = dataset().subset(12, 300, &catalog);
    index(&catalog, &state, &[]);
    let more = dir.path().join("more");
    for f in dataset().subset(12, 400, &more) {
        std::fs::rename(more.join("images").join(&f), catalog.join("images").join(&f)).unwrap();
    }
    // RLIMIT_FSIZE makes writes past 200 KB fail with EFBIG, as a full disk would: the
    // journal of 12 new vectors (about 150 KB) fits, the new store (about 300 KB) does not.
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("lookalike"));
    cmd.env("LOOKALIKE_WEIGHTS", common::weights()).arg("--catalog").arg(&catalog).arg("--state-dir").arg(&state);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: 200 << 10, rlim_max: 200 << 10 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.arg("index").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&*state.to_string_lossy()) && err.contains("too large"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The previous store is untouched and answers; no temporary file is left behind.
    let item = first[0].split('.').next().unwrap();
    let hits = run_json(&catalog, &state, &["query", "--item", item, "-k", "50", "--json"]);
    assert_eq!(hits.as_array().unwrap().len(), 11);
    let temps: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    // With space again, the embedded batches are resumed from the journal, not redone.
    let again = index(&catalog, &state, &[]);
    assert_eq!((again["embedded"].as_u64(), again["items"].as_u64()), (Some(0), Some(24)), "{again}");
}

#[test]
fn an_unusable_state_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    dataset().subset(2, 0, &catalog);
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    let state = blocker.join("state");
    let out = at(&catalog, &state).arg("index").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot create state folder") && err.contains(&*state.to_string_lossy()), "{err}");
}
