//! The index run and the search service with the fake model: incremental counts, dedup of
//! identical files, journal resume after a failure, cancel, and searches from many
//! threads. Fast, no weights; the real-weight tests are in the binary's tests.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use lookalike_core::catalog::{Filter, Grouping, LocalFolder};
use lookalike_core::config::SearchMode;
use lookalike_core::model::fake::FakeEmbedder;
use lookalike_core::model::{Embedder, ResizePolicy};
use lookalike_core::{
    Config, Crop, Engine, ErrorKind, Feedback, IndexReport, Phase, Progress, Query, SearchService, Steering,
};

/// A picture that differs from its neighbours in colour and in where its bright square is.
fn picture(i: usize) -> image::RgbImage {
    let base = [(i * 37 % 256) as u8, (i * 91 % 256) as u8, (i * 53 % 256) as u8];
    let (cx, cy) = ((i * 7 % 24) as u32, (i * 11 % 24) as u32);
    image::RgbImage::from_fn(32, 32, |x, y| {
        if (cx..cx + 8).contains(&x) && (cy..cy + 8).contains(&y) {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb(base)
        }
    })
}

/// `n` images `images/<i>.png` with a styles.csv that labels them "even" or "odd".
fn catalog(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut csv = String::from("id,articleType\n");
    for i in 0..n {
        picture(i).save(dir.join(format!("images/{i}.png"))).unwrap();
        csv.push_str(&format!("{i},{}\n", if i % 2 == 0 { "even" } else { "odd" }));
    }
    std::fs::write(dir.join("styles.csv"), csv).unwrap();
}

fn engine(dir: &Path, embedder: Arc<dyn Embedder>) -> Engine {
    engine_with(dir, embedder, Config::default())
}

fn engine_with(dir: &Path, embedder: Arc<dyn Embedder>, base: Config) -> Engine {
    let config =
        Config { catalog: dir.join("catalog"), state_dir: Some(dir.join("state")), batch_size: Some(4), ..base };
    let source = Arc::new(LocalFolder::new(config.catalog.clone(), None));
    Engine::with_parts(config, source, Some(embedder)).unwrap()
}

fn index(engine: &Engine) -> IndexReport {
    engine.index(false, &AtomicBool::new(false), &|_| {}).unwrap()
}

/// A catalog of `n` pictures and an engine over it with the fake model (not indexed yet).
fn fake_catalog(n: usize) -> (tempfile::TempDir, Arc<FakeEmbedder>, Engine) {
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), n);
    let fake = Arc::new(FakeEmbedder::new(ResizePolicy::Crop));
    let engine = engine(dir.path(), fake.clone());
    (dir, fake, engine)
}

/// [`fake_catalog`] indexed, and an exact search service over it.
fn exact_service(n: usize) -> (tempfile::TempDir, SearchService) {
    let (dir, _, engine) = fake_catalog(n);
    index(&engine);
    (dir, SearchService::open(Arc::new(engine), Some(SearchMode::Exact)).unwrap())
}

/// An index run cancelled once the first batch of `phase` is done.
fn index_cancelled_after_first_batch(engine: &Engine, phase: Phase) -> IndexReport {
    let cancel = AtomicBool::new(false);
    let progress = |p: Progress| {
        if p.phase == phase && p.done > 0 {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let report = engine.index(false, &cancel, &progress).unwrap();
    assert!(report.cancelled, "{report:?}");
    report
}

#[test]
fn only_new_changed_and_removed_images_are_work() {
    let (dir, fake, engine) = fake_catalog(12);
    let first = index(&engine);
    assert_eq!((first.items, first.added.len(), first.embedded), (12, 12, 12));
    assert_eq!(fake.embedded(), 12);

    let again = index(&engine);
    assert_eq!((again.unchanged, again.embedded, again.annoy_built), (12, 0, false));

    let images = dir.path().join("catalog/images");
    picture(100).save(images.join("3.png")).unwrap();
    std::fs::remove_file(images.join("4.png")).unwrap();
    std::fs::copy(images.join("5.png"), images.join("copy-of-5.png")).unwrap();
    picture(200).save(images.join("new-a.png")).unwrap();
    std::fs::copy(images.join("new-a.png"), images.join("new-b.png")).unwrap();
    let third = index(&engine);
    assert_eq!(third.updated, ["images/3.png"]);
    assert_eq!(third.removed, ["images/4.png"]);
    assert_eq!(third.added, ["images/copy-of-5.png", "images/new-a.png", "images/new-b.png"]);
    // The changed image and one of the two identical new ones; the copies reuse vectors.
    assert_eq!((third.embedded, third.deduplicated), (2, 2), "{third:?}");
    assert_eq!(fake.embedded(), 14);
}

/// The fake model, failing after `ok_batches` batches (as a killed run stops).
struct FailsAfter {
    inner: FakeEmbedder,
    ok_batches: usize,
    calls: AtomicUsize,
}

impl Embedder for FailsAfter {
    fn policy(&self) -> ResizePolicy {
        self.inner.policy()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn embed(&self, inputs: &[Vec<f32>]) -> lookalike_core::Result<Vec<f32>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.ok_batches {
            return Err(lookalike_core::Error::Model("stopped on purpose".into()));
        }
        self.inner.embed(inputs)
    }
}

#[test]
fn a_failed_run_resumes_from_its_journal_and_a_cancelled_one_keeps_its_batches() {
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), 10);
    let failing = Arc::new(FailsAfter {
        inner: FakeEmbedder::new(ResizePolicy::Crop),
        ok_batches: 2,
        calls: AtomicUsize::new(0),
    });
    let err = engine(dir.path(), failing).index(false, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Model, "{err}");
    assert!(dir.path().join("state/journal.lkj").is_file());

    let fake = Arc::new(FakeEmbedder::new(ResizePolicy::Crop));
    let resumed = index(&engine(dir.path(), fake.clone()));
    assert_eq!((resumed.resumed, resumed.embedded, resumed.items), (8, 2, 10), "{resumed:?}");
    assert!(!dir.path().join("state/journal.lkj").exists());

    // Cancelled after the first batch: that batch is stored, the next run does the rest.
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), 10);
    let engine = engine(dir.path(), Arc::new(FakeEmbedder::new(ResizePolicy::Crop)));
    let cancelled = index_cancelled_after_first_batch(&engine, Phase::Embedding);
    assert_eq!((cancelled.items, cancelled.embedded), (4, 4), "{cancelled:?}");
    let rest = index(&engine);
    assert_eq!((rest.items, rest.embedded, rest.unchanged), (10, 6, 4), "{rest:?}");
}

#[test]
fn a_service_shared_by_four_threads_gives_the_single_thread_results() {
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), 80);
    let engine = Arc::new(engine(dir.path(), Arc::new(FakeEmbedder::new(ResizePolicy::Crop))));
    index(&engine);
    let images = dir.path().join("catalog/images");
    let queries: Vec<(Query, Vec<Filter>)> = (0..24)
        .map(|i| {
            let query = match i % 3 {
                0 => Query::Item(format!("{i}")),
                1 => Query::Image(images.join(format!("{i}.png"))),
                _ => Query::Bytes {
                    name: format!("upload {i}"),
                    bytes: std::fs::read(images.join(format!("{i}.png"))).unwrap(),
                },
            };
            let filters = if i % 4 == 0 { vec!["articleType=odd".parse().unwrap()] } else { Vec::new() };
            (query, filters)
        })
        .collect();
    for mode in [SearchMode::Exact, SearchMode::Approx] {
        let service = Arc::new(SearchService::open(engine.clone(), Some(mode)).unwrap());
        assert_eq!(service.snapshot().method(), if mode == SearchMode::Exact { "exact" } else { "annoy" });
        let ids = |hits: Vec<lookalike_core::Hit>| hits.into_iter().map(|h| (h.id, h.score)).collect::<Vec<_>>();
        let single: Vec<_> = queries.iter().map(|(q, f)| ids(service.search(q, 7, f).unwrap())).collect();
        assert!(single.iter().all(|hits| hits.len() == 7));
        for (i, (q, f)) in queries.iter().enumerate() {
            // An image finds itself; an item query leaves the item out.
            let found = single[i].iter().any(|(id, _)| *id == i.to_string());
            match q {
                Query::Item(_) => assert!(!found, "query {i}"),
                _ if f.is_empty() => assert!(found, "query {i}"),
                _ => {}
            }
            if !f.is_empty() {
                assert!(single[i].iter().all(|(id, _)| id.parse::<usize>().unwrap() % 2 == 1));
            }
        }
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (service, queries) = (service.clone(), queries.clone());
                std::thread::spawn(move || {
                    // Each thread takes the queries in its own order.
                    (0..queries.len())
                        .map(|j| (j * 5 + t * 7) % queries.len())
                        .map(|j| (j, ids(service.search(&queries[j].0, 7, &queries[j].1).unwrap())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in threads {
            for (j, hits) in handle.join().unwrap() {
                assert_eq!(hits, single[j], "query {j} differs across threads ({mode:?})");
            }
        }
    }
}

#[test]
fn a_reload_after_reindex_keeps_the_model_and_sees_new_items() {
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), 10);
    let fake = Arc::new(FakeEmbedder::new(ResizePolicy::Crop));
    let engine = Arc::new(engine(dir.path(), fake.clone()));
    index(&engine);
    let service = SearchService::open(engine.clone(), None).unwrap();
    let old = service.snapshot();
    picture(300).save(dir.path().join("catalog/images/extra.png")).unwrap();
    index(&engine);
    assert_eq!(service.snapshot().len(), 10, "a service serves its snapshot until reloaded");
    service.reload().unwrap();
    assert_eq!((old.len(), service.snapshot().len()), (10, 11));
    let hits = service.search(&Query::Item("extra".into()), 3, &[]).unwrap();
    assert_eq!(hits.len(), 3);
    assert!(Arc::ptr_eq(&engine.embedder().unwrap(), &engine.embedder().unwrap()));
    let err = service.search(&Query::Item("nope".into()), 3, &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownItem);
    let err = service.search(&Query::Bytes { name: "upload".into(), bytes: b"<html>".to_vec() }, 3, &[]).unwrap_err();
    assert!(err.kind() == ErrorKind::BadImage && err.to_string().starts_with("upload: "), "{err}");
}

#[test]
fn a_region_and_feedback_steer_a_search_and_scores_stay_honest() {
    let (dir, service) = exact_service(24);
    let photo = Query::Image(dir.path().join("catalog/images/5.png"));
    let plain = service.search(&photo, 5, &[]).unwrap();
    // The photo is 100% like itself, whatever query expansion did to the ranking (which
    // here, on 24 unwhitened fake descriptors, need not even put it first).
    let own = plain.iter().find(|h| h.id == "5").expect("the photo finds itself");
    assert!((own.score - 1.0).abs() < 1e-4, "{}", own.score);
    assert!(plain.iter().all(|h| h.score <= own.score + 1e-6));
    assert!(plain.windows(2).all(|w| w[0].rank_score >= w[1].rank_score));

    // The whole photo as a region is the photo; a corner of it is another picture.
    let steer = |crop: &str| Steering { crop: Some(crop.parse().unwrap()), ..Default::default() };
    let whole = service.search_steered(&photo, &steer("0,0,1,1"), 5, &[]).unwrap();
    assert_eq!(whole.iter().map(|h| &h.id).collect::<Vec<_>>(), plain.iter().map(|h| &h.id).collect::<Vec<_>>());
    let corner = service.search_steered(&photo, &steer("0,0,0.4,0.4"), 5, &[]).unwrap();
    assert!(corner[0].score < 0.999 || corner[0].id != "5", "a region searched the whole photo");
    // A region of an item's photo is embedded, and the item is still left out.
    let item = Query::Item("5".into());
    let cropped_item = service.search_steered(&item, &steer("0,0,0.4,0.4"), 5, &[]).unwrap();
    assert!(cropped_item.iter().all(|h| h.id != "5"));
    // A region outside the photo (32x32 pixels) is refused with a reason.
    let err = service.search_steered(&photo, &steer("20,20,30,30"), 5, &[]).unwrap_err();
    assert!(err.kind() == ErrorKind::BadCrop && err.to_string().contains("outside the 32x32 photo"), "{err}");

    // Feedback: liking the 4th hit brings items like it up; the unliked item is left out.
    let liked = plain[3].id.clone();
    let unliked = plain[1].id.clone();
    let feedback = Steering {
        feedback: Feedback { like: vec![liked.clone()], unlike: vec![unliked.clone()] },
        ..Default::default()
    };
    let refined = service.search_steered(&photo, &feedback, 23, &[]).unwrap();
    assert!(refined.iter().all(|h| h.id != unliked) && refined.iter().any(|h| h.id == liked));
    let liked_row = service.snapshot().find_item(&liked).unwrap();
    let near_liked = |hits: &[lookalike_core::Hit], n: usize| -> f32 {
        let s = service.snapshot();
        let v = s.space().vector(liked_row);
        hits.iter()
            .take(n)
            .map(|h| lookalike_core::index::exact::dot(v, s.space().vector(s.find_item(&h.id).unwrap())))
            .sum::<f32>()
            / n as f32
    };
    let others = |hits: &[lookalike_core::Hit]| -> Vec<lookalike_core::Hit> {
        hits.iter().filter(|h| h.id != liked && h.id != unliked).cloned().collect()
    };
    assert!(
        near_liked(&others(&refined), 3) > near_liked(&others(&plain), 3),
        "feedback did not move towards the liked item"
    );
    // Scores stay the similarity to the photo itself.
    let own = refined.iter().find(|h| h.id == "5").expect("the photo is still found");
    assert!((own.score - 1.0).abs() < 1e-4);
    let unknown = Steering { feedback: Feedback { like: vec!["nope".into()], unlike: vec![] }, ..Default::default() };
    assert_eq!(service.search_steered(&photo, &unknown, 5, &[]).unwrap_err().kind(), ErrorKind::UnknownItem);
    assert!(matches!("1,2".parse::<Crop>(), Err(lookalike_core::Error::BadCrop { .. })));
}

#[test]
fn grouping_keeps_at_most_n_hits_per_value() {
    let (_dir, service) = exact_service(24);
    let qv = service.query_vector(&Query::Item("5".into()), &Steering::default()).unwrap();
    let types = |hits: &[lookalike_core::Hit]| -> Vec<String> {
        hits.iter().map(|h| h.metadata.as_ref().unwrap().article_type.clone()).collect()
    };
    // Two values (even, odd): one hit each, however many are asked for.
    let one = Grouping::new("articleType", 1).unwrap();
    let mut found = types(&service.search_grouped(&qv, 10, &[], Some(one)).unwrap());
    found.sort();
    assert_eq!(found, ["even", "odd"]);
    let three = service.search_grouped(&qv, 10, &[], Some(Grouping::new("articleType", 3).unwrap())).unwrap();
    assert_eq!(three.len(), 6);
    let plain = service.search_vector(&qv, 23, &[]).unwrap();
    // The kept hits are the best of each value, in the ranking's order.
    let best: Vec<&str> = {
        let mut n = std::collections::HashMap::new();
        plain
            .iter()
            .filter(|h| {
                let c = n.entry(h.metadata.as_ref().unwrap().article_type.clone()).or_insert(0);
                *c += 1;
                *c <= 3
            })
            .map(|h| h.id.as_str())
            .collect()
    };
    assert_eq!(three.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), best);
    assert!(Grouping::new("nope", 1).unwrap_err().contains("unknown field"));
    assert!(Grouping::new("articleType", 0).is_err());
}

/// The fake model, held at its next call until the test lets it go.
struct Gated {
    inner: FakeEmbedder,
    entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    gate: AtomicBool,
}

impl Embedder for Gated {
    fn policy(&self) -> ResizePolicy {
        self.inner.policy()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn embed(&self, inputs: &[Vec<f32>]) -> lookalike_core::Result<Vec<f32>> {
        if self.gate.swap(false, Ordering::SeqCst) {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
        self.inner.embed(inputs)
    }
}

#[test]
fn the_batcher_gathers_concurrent_queries_into_few_model_calls_and_refuses_when_full() {
    use lookalike_core::batcher::{Batcher, Full, Reply};
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), 40);
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gated = Arc::new(Gated {
        inner: FakeEmbedder::new(ResizePolicy::Crop),
        entered: entered_tx.into(),
        release: release_rx.into(),
        gate: AtomicBool::new(false),
    });
    let engine = Arc::new(engine(dir.path(), gated.clone()));
    index(&engine);
    let service = Arc::new(SearchService::open(engine, Some(SearchMode::Exact)).unwrap());
    let images = dir.path().join("catalog/images");
    let upload = |i: usize| Query::Bytes {
        name: format!("upload {i}"),
        bytes: std::fs::read(images.join(format!("{i}.png"))).unwrap(),
    };
    let ids = |hits: Vec<lookalike_core::Hit>| hits.into_iter().map(|h| (h.id, h.score)).collect::<Vec<_>>();
    let single: Vec<_> = (0..16).map(|i| ids(service.search(&upload(i), 5, &[]).unwrap())).collect();

    let sizes_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sizes_seen.clone();
    let batcher = Arc::new(
        Batcher::start(
            service.clone(),
            8,
            std::time::Duration::from_millis(200),
            64,
            Box::new(move |n| seen.lock().unwrap().push(n)),
        )
        .unwrap(),
    );
    // Photos are decoded by their askers and only embedded by the worker.
    let input = |i: usize| service.prepare(&upload(i), None).unwrap().unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..16 {
        let tx = tx.clone();
        batcher
            .submit(input(i), Box::new(move |f: lookalike_core::Result<Vec<f32>>| tx.send((i, f)).unwrap()))
            .unwrap();
    }
    for _ in 0..16 {
        let (i, features) = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        let qv = service.image_vector(&upload(i), &Steering::default(), features.unwrap()).unwrap();
        assert_eq!(ids(service.search_vector(&qv, 5, &[]).unwrap()), single[i], "query {i}");
    }
    let sizes = sizes_seen.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 16);
    assert!(sizes.iter().all(|&n| n <= 8) && sizes.len() <= 4, "16 queued queries in batches of at most 8: {sizes:?}");
    assert_eq!(batcher.depth(), 0);

    // An input the model refuses (the wrong size) fails its batch with a model error, and
    // the worker goes on.
    let (tx2, rx2) = mpsc::channel();
    let wrong = lookalike_core::model::Photo { input: vec![0.0; 7], colour: Vec::new() };
    batcher.submit(wrong, Box::new(move |f: lookalike_core::Result<Vec<f32>>| tx2.send(f.is_err()).unwrap())).unwrap();
    assert!(rx2.recv_timeout(std::time::Duration::from_secs(30)).unwrap());

    // A query no one waits for any more (its client hung up) is dropped, not embedded.
    struct Gone;
    impl Reply for Gone {
        fn send(self: Box<Self>, _: lookalike_core::Result<Vec<f32>>) {
            panic!("a query no one waits for was answered");
        }
        fn wanted(&self) -> bool {
            false
        }
    }
    let before: usize = sizes_seen.lock().unwrap().iter().sum();
    batcher.submit(input(2), Box::new(Gone)).unwrap();
    let (tx4, rx4) = mpsc::channel();
    batcher
        .submit(input(3), Box::new(move |f: lookalike_core::Result<Vec<f32>>| tx4.send(f.is_ok()).unwrap()))
        .unwrap();
    assert!(rx4.recv_timeout(std::time::Duration::from_secs(30)).unwrap());
    assert_eq!(sizes_seen.lock().unwrap().iter().sum::<usize>(), before + 1, "only the wanted query was embedded");
    assert_eq!(batcher.depth(), 0);

    // The model held on one batch: the queue (capacity 2 here) fills, then refuses at once.
    let small = Batcher::start(service.clone(), 1, std::time::Duration::ZERO, 2, Box::new(|_| {})).unwrap();
    gated.gate.store(true, Ordering::SeqCst);
    let (tx3, rx3) = mpsc::channel();
    let reply = |tx: &mpsc::Sender<bool>| {
        let tx = tx.clone();
        Box::new(move |f: lookalike_core::Result<Vec<f32>>| tx.send(f.is_ok()).unwrap()) as Box<dyn Reply>
    };
    small.submit(input(0), reply(&tx3)).unwrap();
    entered.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    small.submit(input(1), reply(&tx3)).unwrap();
    small.submit(input(2), reply(&tx3)).unwrap();
    assert_eq!(small.submit(input(3), reply(&tx3)), Err(Full));
    assert_eq!(small.depth(), 3);
    release.send(()).unwrap();
    for _ in 0..3 {
        assert!(rx3.recv_timeout(std::time::Duration::from_secs(30)).unwrap());
    }
}

#[test]
fn byte_identical_copies_collapse_into_their_keepers_hit_and_dupes_groups_them() {
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), 20);
    let images = dir.path().join("catalog/images");
    for (from, to) in [(3, 30), (3, 31), (5, 50)] {
        std::fs::copy(images.join(format!("{from}.png")), images.join(format!("{to}.png"))).unwrap();
    }
    // Same size, so the oldest is kept: 31, then 3, then 30.
    let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for (name, age) in [("31", 0), ("3", 10), ("30", 20)] {
        let f = std::fs::File::options().write(true).open(images.join(format!("{name}.png"))).unwrap();
        f.set_modified(t0 + std::time::Duration::from_secs(age)).unwrap();
    }
    let fake = Arc::new(FakeEmbedder::new(ResizePolicy::Crop));
    let engine = Arc::new(engine(dir.path(), fake.clone()));
    index(&engine);

    let groups = lookalike_core::dupes::exact_report(&engine).unwrap();
    let ids: Vec<Vec<(&str, bool)>> =
        groups.iter().map(|g| g.members.iter().map(|m| (m.id.as_str(), m.keeper)).collect()).collect();
    assert_eq!(ids, vec![vec![("31", true), ("3", false), ("30", false)], vec![("5", true), ("50", false)]]);

    let service = SearchService::open(engine.clone(), Some(SearchMode::Exact)).unwrap();
    let hits = service.search(&Query::Image(images.join("3.png")), 5, &[]).unwrap();
    assert_eq!((hits[0].id.as_str(), hits[0].copies.clone()), ("31", vec!["3".to_string(), "30".to_string()]));
    assert_eq!(hits.len(), 5);
    let copies_shown = hits.iter().filter(|h| ["3", "30", "31"].contains(&h.id.as_str())).count();
    assert_eq!(copies_shown, 1, "one hit for the three copies: {hits:?}");
    // More like this item: neither the item nor its copies.
    let hits = service.search(&Query::Item("3".into()), 20, &[]).unwrap();
    assert!(hits.iter().all(|h| !["3", "30", "31"].contains(&h.id.as_str())), "{hits:?}");
    assert_eq!(hits.len(), 19, "20 photos are 20 - 1 (5 and 50 are one) less the query's own");

    // Collapsing off: every copy is a hit of its own.
    let plain = engine_with(dir.path(), fake, Config { collapse: false, ..Config::default() });
    let service = SearchService::open(Arc::new(plain), Some(SearchMode::Exact)).unwrap();
    let hits = service.search(&Query::Image(images.join("3.png")), 5, &[]).unwrap();
    let mut top: Vec<&str> = hits[..3].iter().map(|h| h.id.as_str()).collect();
    top.sort();
    assert_eq!(top, ["3", "30", "31"]);
}

/// Rewrites the state's store as one made before colours existed: features only.
fn strip_colours(dir: &Path) {
    use lookalike_core::model::FEATURE_DIMS;
    use lookalike_core::store::{self, Identity, Store};
    let path = dir.join("state/store.lks");
    let store = Store::open(&path).unwrap();
    let old = Identity { dims: FEATURE_DIMS, colour: String::new(), ..store.identity().clone() };
    store::write(&path, &old, &store.embedded_on(), store.entries(), |i| {
        store.vector(i)[..FEATURE_DIMS].to_vec().into()
    })
    .unwrap();
}

#[test]
fn a_store_made_before_colours_gets_them_from_its_photos_without_the_model() {
    use lookalike_core::model::FEATURE_DIMS;
    use lookalike_core::store::Store;
    let (dir, fake, engine) = fake_catalog(10);
    index(&engine);
    let path = dir.path().join("state/store.lks");
    let made = Store::open(&path).unwrap();
    let rows: Vec<Vec<f32>> = (0..made.len()).map(|r| made.vector(r).to_vec()).collect();
    drop(made);
    strip_colours(dir.path());

    // Cancelled after the first batch: the old store stays whole, the batch is journaled.
    let cancelled = index_cancelled_after_first_batch(&engine, Phase::Colours);
    assert_eq!((cancelled.recoloured, cancelled.embedded), (4, 0), "{cancelled:?}");
    assert_eq!(Store::open(&path).unwrap().dims(), FEATURE_DIMS, "a half-coloured store was written");

    let done = index(&engine);
    assert_eq!((done.recoloured, done.resumed, done.embedded), (6, 4, 0), "{done:?}");
    assert_eq!((done.unchanged, done.updated.len(), done.rebuilt.as_deref()), (10, 0, None), "{done:?}");
    assert_eq!(fake.embedded(), 10, "the model ran again");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.identity(), &engine.identity());
    for (r, row) in rows.iter().enumerate() {
        // Features kept, colours computed from the photo as at first indexing.
        assert_eq!(store.vector(r), row.as_slice(), "row {r}");
    }
    assert!(!dir.path().join("state/journal.lkj").exists());
}

#[test]
fn colour_any_ranks_by_shape_alone_and_same_adds_the_colour_share() {
    use lookalike_core::colour::COLOUR_DIMS;
    use lookalike_core::model::FEATURE_DIMS;
    use lookalike_core::ColourMode;
    let dir = tempfile::tempdir().unwrap();
    catalog(&dir.path().join("catalog"), 16);
    let fake: Arc<dyn Embedder> = Arc::new(FakeEmbedder::new(ResizePolicy::Crop));
    let weighted = |w: f32| {
        let mut config = Config::default();
        config.descriptor.colour = w;
        engine_with(dir.path(), fake.clone(), config)
    };
    index(&weighted(0.5));
    let coloured = SearchService::open(Arc::new(weighted(0.5)), Some(SearchMode::Exact)).unwrap();
    let plain = SearchService::open(Arc::new(weighted(0.0)), Some(SearchMode::Exact)).unwrap();
    let query = Query::Item("3".into());
    let any = Steering { colour: ColourMode::Any, ..Default::default() };
    let (by_shape, without) =
        (coloured.search_steered(&query, &any, 15, &[]).unwrap(), plain.search(&query, 15, &[]).unwrap());
    let ids = |hits: &[lookalike_core::Hit]| hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&by_shape), ids(&without));
    for (a, b) in by_shape.iter().zip(&without) {
        assert!((a.score - b.score).abs() < 1e-4, "{} vs {}", a.score, b.score);
    }
    // Feedback weighs shape as a space without colour would.
    let like = Feedback { like: vec!["5".into()], unlike: vec!["6".into()] };
    let steered = coloured.search_steered(&query, &Steering { feedback: like.clone(), ..any }, 15, &[]).unwrap();
    let plain_steered = plain.search_steered(&query, &Steering { feedback: like, ..Default::default() }, 15, &[]);
    assert_eq!(ids(&steered), ids(&plain_steered.unwrap()));
    // Same colour: each score is half shape, half colour.
    let snapshot = coloured.snapshot();
    let colour_of = |item: &str| {
        let row = snapshot.find_item(item).unwrap();
        snapshot.store().vector(row)[FEATURE_DIMS..FEATURE_DIMS + COLOUR_DIMS].to_vec()
    };
    let q = colour_of("3");
    let same = coloured.search(&query, 15, &[]).unwrap();
    assert_ne!(ids(&same), ids(&without), "colour changed nothing");
    for hit in &same {
        let shape = without.iter().find(|h| h.id == hit.id).unwrap().score;
        let colour: f32 = q.iter().zip(colour_of(&hit.id)).map(|(a, b)| a * b).sum();
        assert!((hit.score - (0.5 * shape + 0.5 * colour)).abs() < 1e-4, "{}: {}", hit.id, hit.score);
    }
}

#[test]
fn a_joint_field_eval_needs_every_field_to_match() {
    use lookalike_core::eval::{evaluate, EvalOptions};
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    catalog(&cat, 16);
    let mut csv = String::from("id,articleType,baseColour\n");
    for i in 0..16 {
        csv.push_str(&format!("{i},{},{}\n", ["even", "odd"][i % 2], ["Red", "Blue"][i / 2 % 2]));
    }
    std::fs::write(cat.join("styles.csv"), csv).unwrap();
    let engine = engine(dir.path(), Arc::new(FakeEmbedder::new(ResizePolicy::Crop)));
    index(&engine);
    let snapshot = lookalike_core::Snapshot::open(&engine, Some(SearchMode::Exact)).unwrap();
    let eval = |field: &str| {
        let opts = EvalOptions { field: field.into(), k: 3, min_class: 2, colour: Default::default(), collapse: false };
        evaluate(&snapshot, &[], None, &opts)
    };
    let (kind, colour, joint) =
        (eval("articleType").unwrap(), eval("baseColour").unwrap(), eval("articleType + baseColour").unwrap());
    let classes: Vec<&str> = joint.classes.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(classes, ["even|Blue", "even|Red", "odd|Blue", "odd|Red"]);
    assert_eq!(joint.queries, 16);
    // Four classes of four: a random other item shares the class 3 times in 15.
    assert!((joint.chance - 3.0 / 15.0).abs() < 1e-9, "{}", joint.chance);
    // A result right on both counts is right on each.
    assert!(joint.precision <= kind.precision.min(colour.precision) + 1e-12, "{joint:?}");
    let err = eval("articleType+colour").unwrap_err().to_string();
    assert!(err.contains("\"colour\"") && err.contains("join with +"), "{err}");
}

#[test]
fn eval_with_collapse_scores_the_results_as_searches_show_them() {
    use lookalike_core::eval::{evaluate, EvalOptions};
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    catalog(&cat, 16);
    // Three later byte-identical copies of photo 0, labelled a class of their own: photo 0
    // (the oldest) is their keeper.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut csv = std::fs::read_to_string(cat.join("styles.csv")).unwrap();
    for id in [100, 101, 102] {
        std::fs::copy(cat.join("images/0.png"), cat.join(format!("images/{id}.png"))).unwrap();
        csv.push_str(&format!("{id},dup\n"));
    }
    std::fs::write(cat.join("styles.csv"), csv).unwrap();
    let engine = engine(dir.path(), Arc::new(FakeEmbedder::new(ResizePolicy::Crop)));
    index(&engine);
    let snapshot = lookalike_core::Snapshot::open(&engine, Some(SearchMode::Exact)).unwrap();
    let dup_precision = |collapse: bool| {
        let opts =
            EvalOptions { field: "articleType".into(), k: 3, min_class: 2, colour: Default::default(), collapse };
        let report = evaluate(&snapshot, &[], None, &opts).unwrap();
        report.classes.iter().find(|c| c.class == "dup").unwrap().precision
    };
    // As they come, a copy's first page is photo 0 and the two other copies (same
    // vector); collapsed, those are one hit, photo 0's, and two other photos.
    assert!((dup_precision(false) - 2.0 / 3.0).abs() < 1e-9, "{}", dup_precision(false));
    assert_eq!(dup_precision(true), 0.0);
}
