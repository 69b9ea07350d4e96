//! Property-based fuzzing of the on-disk formats: the store (header, vectors, manifest),
//! the descriptors file and the journal. Random byte flips, overwrites and truncations of
//! valid files must give either a clear error naming the file or, for the journal, a
//! valid prefix of its records; never a panic and never different data. A bounded number
//! of cases runs in every `cargo test`; failures are kept in `proptest-regressions/` and
//! replayed first on every later run.

use std::path::Path;

use lookalike_core::descriptor::{Recipe, Space};
use lookalike_core::model::FEATURE_DIMS;
use lookalike_core::store::{self, Entry, Identity, Journal, Store};
use proptest::prelude::*;

const ITEMS: usize = 70;

fn identity() -> Identity {
    Identity { model: "fuzz".into(), preprocessing: "fuzz".into(), dims: FEATURE_DIMS, colour: String::new() }
}

fn entries() -> Vec<Entry> {
    (0..ITEMS)
        .map(|i| Entry {
            path: format!("images/{i:03} ü,\"x\".jpg"),
            size: i as u64,
            mtime_ns: -(i as i64),
            hash: format!("{i:032x}"),
        })
        .collect()
}

fn rows() -> Vec<f32> {
    (0..ITEMS * FEATURE_DIMS).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 + 0.001).collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Vec<u8>,
    descriptors: Vec<u8>,
    journal: Vec<u8>,
    space_vectors: Vec<f32>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (rows, entries) = (rows(), entries());
        let path = dir.path().join("store.lks");
        store::write(&path, &identity(), &[], &entries, |i| rows[i * FEATURE_DIMS..][..FEATURE_DIMS].into()).unwrap();
        let opened = Store::open(&path).unwrap();
        let space = Space::fit(&opened, Recipe::DEFAULT).unwrap();
        let dpath = dir.path().join("descriptors.lkd");
        space.save(&dpath).unwrap();
        let jpath = dir.path().join("journal.lkj");
        let (mut journal, _) = Journal::open(&jpath, &identity()).unwrap();
        for chunk in (0..6).collect::<Vec<_>>().chunks(2) {
            let batch: Vec<(Entry, &[f32])> =
                chunk.iter().map(|&i| (entries[i].clone(), &rows[i * FEATURE_DIMS..][..FEATURE_DIMS])).collect();
            journal.append(&batch).unwrap();
        }
        drop(journal);
        Fixture {
            store: std::fs::read(&path).unwrap(),
            descriptors: std::fs::read(&dpath).unwrap(),
            journal: std::fs::read(&jpath).unwrap(),
            space_vectors: space.vectors().to_vec(),
            _dir: dir,
        }
    })
}

/// A damaging edit: flip bits, overwrite a run of bytes, or truncate.
#[derive(Debug, Clone)]
enum Edit {
    Flip { at: f64, mask: u8 },
    Overwrite { at: f64, bytes: Vec<u8> },
    Truncate { keep: f64 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0.0..1.0f64, 1..=255u8).prop_map(|(at, mask)| Edit::Flip { at, mask }),
        (0.0..1.0f64, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Overwrite { at, bytes }),
        (0.0..1.0f64).prop_map(|keep| Edit::Truncate { keep }),
    ]
}

/// Edits aimed at the first 4 KiB (headers) half of the time, anywhere otherwise.
fn apply(bytes: &[u8], edits: &[Edit], head_bias: bool) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for e in edits {
        let span = if head_bias { out.len().min(4096) } else { out.len() };
        let pos = |f: f64| ((f * span as f64) as usize).min(span.saturating_sub(1));
        match e {
            Edit::Flip { at, mask } if !out.is_empty() => {
                let p = pos(*at);
                out[p] ^= mask;
            }
            Edit::Overwrite { at, bytes } if !out.is_empty() => {
                let p = pos(*at);
                let end = (p + bytes.len()).min(out.len());
                out[p..end].copy_from_slice(&bytes[..end - p]);
            }
            Edit::Truncate { keep } => out.truncate((keep * out.len() as f64) as usize),
            _ => {}
        }
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 1000, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn damaged_stores_are_refused_or_unchanged(edits in proptest::collection::vec(edit(), 1..4), head in any::<bool>()) {
        let f = fixture();
        let bytes = apply(&f.store, &edits, head);
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "store.lks", &bytes);
        match Store::open(&path) {
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains(&*path.to_string_lossy()), "{}", msg);
            }
            // Only bytes no reader looks at (padding before the vectors) may change.
            Ok(s) => {
                let expected = entries();
                prop_assert_eq!(s.entries(), expected.as_slice());
                prop_assert!(s.vectors() == rows().as_slice());
            }
        }
    }

    #[test]
    fn damaged_descriptors_are_refused_or_unchanged(edits in proptest::collection::vec(edit(), 1..4), head in any::<bool>()) {
        let f = fixture();
        let bytes = apply(&f.descriptors, &edits, head);
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "descriptors.lkd", &bytes);
        match Space::open(&path) {
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains(&*path.to_string_lossy()), "{}", msg);
                prop_assert!(e.kind() == lookalike_core::ErrorKind::Damaged, "{}", msg);
            }
            Ok(s) => prop_assert!(s.vectors() == f.space_vectors.as_slice()),
        }
    }

    #[test]
    fn damaged_journals_keep_a_valid_prefix(edits in proptest::collection::vec(edit(), 1..4), head in any::<bool>()) {
        let f = fixture();
        let bytes = apply(&f.journal, &edits, head);
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "journal.lkj", &bytes);
        let (journal, records) = Journal::open(&path, &identity()).unwrap();
        let (rows, entries) = (rows(), entries());
        prop_assert!(records.len() <= 6);
        let vectors = journal.vectors().unwrap();
        for (i, r) in records.iter().enumerate() {
            prop_assert_eq!(&r.entry, &entries[i]);
            prop_assert!(vectors.get(r.vector_at).as_slice() == &rows[i * FEATURE_DIMS..][..FEATURE_DIMS]);
        }
    }
}
