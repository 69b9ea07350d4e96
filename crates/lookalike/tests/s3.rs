//! S3 catalogs against a real SeaweedFS cluster (see common/seaweed.rs), from the real
//! binary on real photos.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::seaweed::Cluster;
use common::{dataset, json, lookalike};

/// `lookalike --catalog URL --state-dir STATE` pointed at the cluster.
fn at_s3(cluster: &Cluster, url: &str, state: &Path) -> assert_cmd::Command {
    let mut cmd = lookalike();
    cmd.envs(cluster.env());
    cmd.arg("--catalog").arg(url).arg("--state-dir").arg(state);
    cmd
}

fn ids_and_scores(v: &serde_json::Value) -> Vec<(String, String)> {
    let hits = v.as_array().map_or_else(|| v["hits"].as_array().unwrap().clone(), Clone::clone);
    hits.iter()
        .map(|h| (h["id"].as_str().unwrap().to_string(), format!("{:.6}", h["score"].as_f64().unwrap())))
        .collect()
}

fn names(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// A cluster holding `n` sample photos (and their styles.csv) under `photos/PREFIX`: the
/// cluster, the folder with the local copy in `catalog/`, and the photos' file names.
fn photos_in_a_bucket(n: usize, offset: usize, prefix: &str) -> (Cluster, tempfile::TempDir, Vec<String>) {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("catalog");
    let files = dataset().subset(n, offset, &local);
    cluster.upload_folder(&cluster.store("photos"), &local, prefix);
    (cluster, dir, files)
}

/// `lookalike --config C --catalog URL --state-dir S` pointed at the cluster, to spawn.
fn s3_process(cluster: &Cluster, url: &str, state: &Path, config: &Path) -> std::process::Command {
    let mut cmd = common::process(Path::new(url), state, config);
    cmd.envs(cluster.env());
    cmd
}

/// Few, short retries, so a lost cluster is an error within seconds.
const QUICK_FETCH: &str = "[catalog]\nfetch_retries = 1\nfetch_timeout_s = 5\n";

#[test]
fn s3_catalog_indexes_and_searches_like_the_same_files_on_disk() {
    let (cluster, dir, files) = photos_in_a_bucket(24, 1, "shop/spring");
    let local = dir.path().join("catalog");
    let url = "s3://photos/shop/spring";

    let s3_state = dir.path().join("s3-state");
    let report = json(&at_s3(&cluster, url, &s3_state).args(["index", "--json"]).output().unwrap());
    assert_eq!(report["catalog"], url);
    assert_eq!(report["embedded"], 24, "{report}");
    let local_state = dir.path().join("local-state");
    json(&common::at(&local, &local_state).args(["index", "--json"]).output().unwrap());

    // The same products, scores and metadata from either catalog; hits are located in S3.
    let probe = dir.path().join("probe.jpg");
    std::fs::copy(local.join("images").join(&files[5]), &probe).unwrap();
    for args in
        [vec!["--item", files[3].trim_end_matches(".jpg").trim_end_matches(".png")], vec![probe.to_str().unwrap()]]
    {
        let query = |cmd: &mut assert_cmd::Command| {
            json(&cmd.arg("query").args(&args).args(["-k", "8", "--json"]).output().unwrap())
        };
        let from_s3 = query(&mut at_s3(&cluster, url, &s3_state));
        let from_disk = query(&mut common::at(&local, &local_state));
        assert_eq!(ids_and_scores(&from_s3), ids_and_scores(&from_disk), "query {args:?}");
        let first = &from_s3.as_array().unwrap()[0];
        assert!(first["path"].as_str().unwrap().starts_with("s3://photos/shop/spring/images/"), "{first}");
        assert!(first["metadata"]["articleType"].is_string(), "labels read from s3: {first}");
    }

    // The server streams a hit's photo from the bucket.
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "").unwrap();
    let server = common::server::spawn(s3_process(&cluster, url, &s3_state, &config));
    let id = files[7].rsplit_once('.').unwrap().0;
    let photo = ureq::get(&server.url(&format!("/v1/items/{id}/image"))).call().unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut photo.into_reader(), &mut bytes).unwrap();
    assert_eq!(bytes, std::fs::read(local.join("images").join(&files[7])).unwrap());
}

#[test]
fn s3_changes_between_runs_fetch_and_embed_exactly_those_and_a_lost_volume_server_is_survived() {
    let (mut cluster, dir, files) = photos_in_a_bucket(12, 2, "cat");
    let spare = dataset().subset(2, 9, &dir.path().join("spare"));
    let bucket = cluster.store("photos");
    let (url, state) = ("s3://photos/cat", dir.path().join("state"));
    let index = || json(&at_s3(&cluster, url, &state).args(["index", "--json"]).output().unwrap());
    assert_eq!(index()["embedded"], 12);

    // Added, changed (other bytes under the same key), renamed (copied, then the old key
    // deleted: same bytes, so no model call) and deleted.
    let key = |f: &str| format!("cat/images/{f}");
    cluster.put(&bucket, &key(&spare[0]), std::fs::read(dir.path().join("spare/images").join(&spare[0])).unwrap());
    cluster.put(&bucket, &key(&files[0]), std::fs::read(dir.path().join("spare/images").join(&spare[1])).unwrap());
    cluster.copy(&bucket, &key(&files[1]), &key(&format!("renamed-{}", files[1])));
    cluster.delete(&bucket, &key(&files[1]));
    cluster.delete(&bucket, &key(&files[2]));
    // Seen by listing alone: nothing is read before the run.
    let scan = json(&at_s3(&cluster, url, &state).args(["info", "--scan", "--json"]).output().unwrap())["scan"].clone();
    let seen = ["images", "new", "changed", "removed"].map(|k| scan[k].as_u64().unwrap());
    assert_eq!(seen, [12, 2, 1, 2], "{scan}");
    let second = index();
    let rel = |f: &str| format!("images/{f}");
    assert_eq!(names(&second["added"]), BTreeSet::from([rel(&spare[0]), rel(&format!("renamed-{}", files[1]))]));
    assert_eq!(names(&second["updated"]), BTreeSet::from([rel(&files[0])]));
    assert_eq!(names(&second["removed"]), BTreeSet::from([rel(&files[1]), rel(&files[2])]));
    assert_eq!(second["embedded"], 2, "only the new and the changed photo: {second}");
    assert_eq!(second["deduplicated"], 1, "the renamed photo reuses its vector: {second}");
    assert_eq!(second["unchanged"], 9, "{second}");
    let third = index();
    assert_eq!((third["embedded"].as_u64(), third["unchanged"].as_u64()), (Some(0), Some(12)), "{third}");

    // One volume server gone: every object has a replica on the other, so a full run
    // reads them all.
    cluster.kill_volume(0);
    let full = json(&at_s3(&cluster, url, &state).args(["index", "--full", "--json"]).output().unwrap());
    assert_eq!(full["embedded"], 12, "{full}");
    assert_eq!(full["skipped"].as_array().unwrap().len(), 0, "{full}");
}

#[test]
fn s3_wrong_keys_missing_bucket_and_endpoint_down_are_clear_errors_that_lose_nothing() {
    let (mut cluster, dir, _) = photos_in_a_bucket(6, 4, "cat");
    let state = dir.path().join("state");
    let config = dir.path().join("quick.toml");
    std::fs::write(&config, QUICK_FETCH).unwrap();
    json(&at_s3(&cluster, "s3://photos/cat", &state).args(["index", "--json"]).output().unwrap());
    let store = std::fs::read(state.join("store.lks")).unwrap();

    let fails = |cmd: &mut assert_cmd::Command, wanted: &[&str]| {
        let started = std::time::Instant::now();
        let out = cmd.arg("--config").arg(&config).arg("index").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{w:?} not in: {stderr}");
        }
        assert!(!stderr.contains(common::seaweed::SECRET_KEY), "the secret was printed: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
        assert_eq!(std::fs::read(state.join("store.lks")).unwrap(), store, "the store changed");
    };
    let mut wrong = at_s3(&cluster, "s3://photos/cat", &state);
    wrong.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    fails(&mut wrong, &["s3://photos/cat", "403", "credentials"]);
    fails(&mut at_s3(&cluster, "s3://no-such-bucket/cat", &state), &["s3://no-such-bucket/cat", "404"]);
    cluster.stop();
    fails(&mut at_s3(&cluster, "s3://photos/cat", &state), &["s3://photos/cat", "cannot be reached"]);
}

#[test]
fn s3_cluster_stopped_mid_run_is_a_clear_error_and_the_next_run_resumes() {
    let (mut cluster, dir, _) = photos_in_a_bucket(32, 6, "cat");
    let state = dir.path().join("state");
    let config = dir.path().join("small.toml");
    // Nothing kept from hashing: the model's reads meet the stopped cluster.
    std::fs::write(&config, format!("[model]\nbatch_size = 4\n{QUICK_FETCH}fetch_keep_mib = 0\n")).unwrap();
    let child = s3_process(&cluster, "s3://photos/cat", &state, &config)
        .args(["index", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stopped once the run has committed a batch or two.
    let journal = state.join("journal.lkj");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while std::fs::metadata(&journal).map_or(0, |m| m.len()) < 2 * 4 * 12_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the run went on without the cluster: {stderr}");
    // Depending on which server went first: the endpoint is gone, or the gateway failed.
    assert!(stderr.contains("s3://photos/cat: reading images/"), "{stderr}");
    assert!(stderr.contains("cannot be reached") || stderr.contains("the server failed"), "{stderr}");

    cluster.start_servers();
    let mut again = at_s3(&cluster, "s3://photos/cat", &state);
    let last = json(&again.arg("--config").arg(&config).args(["index", "--json"]).output().unwrap());
    assert!(last["resumed"].as_u64().unwrap() >= 8, "the committed batches were embedded again: {last}");
    let accounted = ["embedded", "resumed", "deduplicated"].iter().map(|k| last[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(accounted, 32, "{last}");
    assert_eq!(last["items"], 32);
}

/// The distinct versions under a published prefix.
fn versions_in(cluster: &Cluster, bucket: &object_store::aws::AmazonS3, prefix: &str) -> BTreeSet<String> {
    let under = format!("{prefix}/versions/");
    cluster
        .keys(bucket, &under)
        .iter()
        .filter_map(|k| k.strip_prefix(&under)?.split('/').next().map(String::from))
        .collect()
}

#[test]
fn s3_published_state_is_pulled_whole_while_it_is_republished_checked_and_pruned() {
    let cluster = Cluster::start();
    let bucket = cluster.store("photos");
    let dir = tempfile::tempdir().unwrap();
    // Two states of one shop: 8 products, then 14.
    let (small, large) = (dir.path().join("small"), dir.path().join("large"));
    let large_files = dataset().subset(14, 3, &large);
    std::fs::create_dir_all(small.join("images")).unwrap();
    std::fs::copy(large.join("styles.csv"), small.join("styles.csv")).unwrap();
    for f in &large_files[..8] {
        std::fs::copy(large.join("images").join(f), small.join("images").join(f)).unwrap();
    }
    let (small_state, large_state) = (dir.path().join("small-state"), dir.path().join("large-state"));
    json(&common::at(&small, &small_state).args(["index", "--json"]).output().unwrap());
    json(&common::at(&large, &large_state).args(["index", "--json"]).output().unwrap());
    let url = "s3://photos/published/shop";
    let publish = |catalog: &Path, state: &Path| {
        let mut cmd = common::at(catalog, state);
        json(&cmd.envs(cluster.env()).args(["publish", url, "--keep", "2", "--json"]).output().unwrap())
    };
    let first = publish(&small, &small_state);
    assert_eq!((first["manifest"]["items"].as_u64(), first["manifest"]["sequence"].as_u64()), (Some(8), Some(1)));

    // A query machine: the published state is pulled into its own folder and searched.
    let pulled = dir.path().join("pulled");
    let node = || {
        let mut cmd = lookalike();
        cmd.envs(cluster.env()).env("LOOKALIKE_PULLED_DIR", &pulled);
        cmd.arg("--catalog").arg(&large).arg("--state-dir").arg(url);
        cmd
    };
    let item = large_files[2].rsplit_once('.').unwrap().0.to_string();
    let hits = json(&node().args(["query", "--item", &item, "-k", "5", "--json"]).output().unwrap());
    assert_eq!(hits.as_array().unwrap().len(), 5, "{hits}");
    let info = json(&node().args(["info", "--json"]).output().unwrap());
    assert_eq!(info["items"], 8);
    let version = first["manifest"]["version"].as_str().unwrap();
    assert!(info["published"].as_str().unwrap().starts_with(version), "{info}");
    assert!(info["state_dir"].as_str().unwrap().starts_with(pulled.to_str().unwrap()), "{info}");

    // Republished over and over while the node pulls and queries: every answer comes from
    // one whole version, and versions only move forward.
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut seen, mut reads) = (0u64, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..6 {
                let (catalog, state) = if round % 2 == 0 { (&large, &large_state) } else { (&small, &small_state) };
                publish(catalog, state);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        while !done.load(std::sync::atomic::Ordering::SeqCst) || reads < 3 {
            let info = json(&node().args(["info", "--json"]).output().unwrap());
            assert!([8, 14].contains(&info["items"].as_u64().unwrap()), "{info}");
            let sequence: u64 = info["published"].as_str().unwrap()[1..7].parse().unwrap();
            assert!(sequence >= seen, "went back from version {seen} to {sequence}");
            seen = sequence;
            let hits = json(&node().args(["query", "--item", &item, "-k", "5", "--json"]).output().unwrap());
            assert_eq!(hits.as_array().unwrap().len(), 5, "{hits}");
            reads += 1;
        }
    });
    assert!(reads >= 3 && seen >= 1, "{reads} reads");
    let last = json(&node().args(["info", "--json"]).output().unwrap());
    assert!(last["published"].as_str().unwrap().starts_with("v000007-"), "the node ends at the last version: {last}");
    assert_eq!(versions_in(&cluster, &bucket, "published/shop").len(), 2, "--keep 2 prunes the rest");

    // The pull command says what it did; credentials from a profile file work too.
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    let profile = format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        common::seaweed::ACCESS_KEY,
        common::seaweed::SECRET_KEY
    );
    std::fs::write(home.join(".aws/credentials"), profile).unwrap();
    let mut from_profile = node();
    from_profile.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").env("HOME", &home);
    let again = json(&from_profile.args(["pull", url, "--json"]).output().unwrap());
    assert_eq!((again["downloaded"].as_bool(), again["manifest"]["sequence"].as_u64()), (Some(false), Some(7)));

    // A published state is searched, not indexed.
    let out = node().arg("index").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("searched here, not indexed"), "{out:?}");

    // The server searches it too.
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "").unwrap();
    let mut serve = common::process(&large, Path::new(url), &config);
    serve.envs(cluster.env()).env("LOOKALIKE_PULLED_DIR", &pulled);
    let server = common::server::spawn(serve);
    let similar = ureq::get(&server.url(&format!("/v1/items/{item}/similar?k=3"))).call().unwrap();
    let similar: serde_json::Value = serde_json::from_str(&similar.into_string().unwrap()).unwrap();
    assert_eq!(similar["hits"].as_array().unwrap().len(), 3, "{similar}");
    drop(server);

    // A damaged published file is refused by a fresh node, naming it; a node that holds
    // the version already keeps searching it.
    let current =
        json(&node().args(["pull", "--json"]).output().unwrap())["manifest"]["version"].as_str().unwrap().to_string();
    let damaged = format!("published/shop/versions/{current}/store.lks");
    cluster.put(&bucket, &damaged, b"not the store".to_vec());
    let mut fresh = node();
    let out = fresh.env("LOOKALIKE_PULLED_DIR", dir.path().join("fresh")).args(["pull"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("s3://photos/{damaged}")) && stderr.contains("does not match"), "{stderr}");
    assert!(!stderr.contains(common::seaweed::SECRET_KEY), "{stderr}");
    json(&node().args(["query", "--item", &item, "--json"]).output().unwrap());
}

#[test]
fn s3_listing_100000_objects_takes_bounded_time_and_memory() {
    let cluster = Cluster::start();
    let bucket = cluster.store("photos");
    let keys: Vec<String> = (0..100_000).map(|i| format!("many/{:03}/{i:06}.jpg", i / 1000)).collect();
    let started = std::time::Instant::now();
    cluster.put_many(&bucket, &keys, b"tiny");
    cluster.put_many(&bucket, &["many/notes.txt".to_string(), "many/.hidden/x.jpg".to_string()], b"tiny");
    eprintln!("uploaded 100,002 objects in {:.0} s", started.elapsed().as_secs_f64());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let mut cmd = s3_process(&cluster, "s3://photos/many", &dir.path().join("state"), &config);
    // Reaped by wait4 below, which also gives its peak memory.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.args(["info", "--scan", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    let pid = child.id() as i32;
    let stdout = std::thread::spawn({
        let mut pipe = child.stdout.take().unwrap();
        move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut text).unwrap();
            text
        }
    });
    // wait4 gives this child's own peak memory (other tests' processes do not count).
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let took = started.elapsed();
    let scan = serde_json::from_str::<serde_json::Value>(&stdout.join().unwrap()).unwrap()["scan"].clone();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "info --scan failed");
    let peak_mib = usage.ru_maxrss as f64 / 1024.0;
    eprintln!(
        "listed {} objects in {:.1} s ({took:.1?} for the command), peak memory {peak_mib:.0} MiB",
        scan["images"],
        scan["seconds"].as_f64().unwrap()
    );
    assert_eq!(scan["images"], 100_000, "only the image objects, hidden ones left out: {scan}");
    assert_eq!(scan["new"], 100_000);
    // Bounds far above what a streamed listing needs (about 60 MiB, a few seconds), far
    // below what keeping every page would take at 100x the objects.
    assert!(peak_mib < 400.0, "listing 100,000 objects took {peak_mib:.0} MiB");
    assert!(took < Duration::from_secs(240), "listing took {took:?}");
}

#[test]
fn s3_tui_in_tmux_searches_a_published_state_with_photos_from_the_bucket() {
    use common::tmux::{shell_quote, Tmux};
    let (cluster, dir, files) = photos_in_a_bucket(12, 5, "cat");
    let (url, published) = ("s3://photos/cat", "s3://photos/published/tui");
    let state = dir.path().join("state");
    json(&at_s3(&cluster, url, &state).args(["index", "--json"]).output().unwrap());
    json(&at_s3(&cluster, url, &state).args(["publish", published, "--json"]).output().unwrap());
    let probe = dir.path().join("probe.jpg");
    std::fs::copy(dir.path().join("catalog/images").join(&files[4]), &probe).unwrap();

    // The query machine: only the bucket, the published state and a photo of its own.
    let cache = dir.path().join("cache");
    let env: String = cluster.env().iter().map(|(k, v)| format!("{k}={} ", shell_quote(Path::new(v)))).collect();
    let command = format!(
        "{env}XDG_CACHE_HOME={cache} LOOKALIKE_PULLED_DIR={pulled} LOOKALIKE_WEIGHTS={weights} {bin} \
         --catalog {url} --state-dir {published} --graphics halfblocks {probe}; echo \"lookalike exited $?\"; exec sleep 600",
        cache = shell_quote(&cache),
        pulled = shell_quote(&dir.path().join("pulled")),
        weights = shell_quote(&common::weights()),
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_lookalike"))),
        probe = shell_quote(&probe),
    );
    let tmux = Tmux::start(dir.path(), 160, 40, &command);
    tmux.wait_for("results from the published state", Duration::from_secs(90), |s| {
        s.contains("Results 1–") && s.contains("· 12 items")
    });
    // The hits' photos come from the bucket through the on-disk cache.
    let photos = cache.join("lookalike/photos");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&photos).map_or(0, |d| d.count()) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::read_dir(&photos).map_or(0, |d| d.count()) >= 3, "no photos cached in {}", photos.display());
    tmux.keys(&["r"]);
    tmux.wait_for("the read-only notice", Duration::from_secs(30), |s| s.contains("searched here, not indexed"));
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell", Duration::from_secs(30), |s| s.contains("lookalike exited"));
    assert!(screen.contains("lookalike exited 0"), "{screen}");
}
