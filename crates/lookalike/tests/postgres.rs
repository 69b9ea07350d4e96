//! The PostgreSQL + pgvector backend against a real server (see common/postgres.rs), from
//! the real binary on real photos: migrations, syncs that write only what changed, a
//! refit published as a new set, a crashed sync repaired, searches equal to the local
//! ones (exact) or close to them (HNSW), filters, and a database that goes away.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use std::time::Duration;

use common::postgres::{Postgres, PASSWORD};
use common::tmux::{shell_quote, Tmux};
use common::{at, dataset, json};

/// `lookalike --backend postgres --postgres-url URL --catalog C --state-dir S`.
fn on_db(pg: &Postgres, catalog: &Path, state: &Path) -> assert_cmd::Command {
    let mut cmd = at(catalog, state);
    cmd.args(["--backend", "postgres", "--postgres-url", &pg.url()]);
    cmd
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs and returns stdout + stderr, asserting success and that the password never shows.
fn ok(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "lookalike failed: {all}");
    assert!(!all.contains(PASSWORD), "the database password was printed: {all}");
    all
}

/// Each `--item` query's (id, score) hits, by query: one process answers them all.
fn answers(mut cmd: assert_cmd::Command, items: &[String], extra: &[&str]) -> BTreeMap<String, Vec<(String, f64)>> {
    cmd.args(["query", "-k", "10", "--json"]).args(extra);
    for item in items {
        cmd.args(["--item", item]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "query failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let hits = v["hits"].as_array().unwrap_or_else(|| panic!("no hits: {line}"));
            let hits = hits.iter().map(|h| (h["id"].as_str().unwrap().to_string(), h["score"].as_f64().unwrap()));
            (v["query"].as_str().unwrap().to_string(), hits.collect())
        })
        .collect()
}

fn same_answers(a: &BTreeMap<String, Vec<(String, f64)>>, b: &BTreeMap<String, Vec<(String, f64)>>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: query counts");
    for (q, hits) in a {
        let other = &b[q];
        let ids = |h: &[(String, f64)]| h.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(hits), ids(other), "{what}: query {q}");
        for ((_, x), (_, y)) in hits.iter().zip(other) {
            assert!((x - y).abs() < 1e-5, "{what}: query {q}: scores {x} and {y}");
        }
    }
}

fn recall(truth: &BTreeMap<String, Vec<(String, f64)>>, found: &BTreeMap<String, Vec<(String, f64)>>) -> f64 {
    let (mut hit, mut all) = (0, 0);
    for (q, t) in truth {
        all += t.len();
        hit += t.iter().filter(|(id, _)| found[q].iter().any(|(f, _)| f == id)).count();
    }
    hit as f64 / all.max(1) as f64
}

#[test]
fn postgres_backend_syncs_changes_and_searches_like_the_local_backend() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    let state = dir.path().join("state");
    let files = dataset().subset(90, 0, &catalog);
    let images = catalog.join("images");
    // Three photos join later; two leave later.
    let later = dir.path().join("later");
    std::fs::create_dir_all(&later).unwrap();
    for f in &files[..3] {
        std::fs::rename(images.join(f), later.join(f)).unwrap();
    }

    // Before any migration: the index run stops before embedding and says what to run.
    let out = on_db(&pg, &catalog, &state).arg("index").output().unwrap();
    assert!(!out.status.success());
    let all = text(&out);
    assert!(all.contains("run `lookalike db migrate`") && all.contains("127.0.0.1"), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
    assert!(!state.join("store.lks").exists(), "nothing embedded for a database that is not ready");
    let status = ok(on_db(&pg, &catalog, &state).args(["db", "status"]));
    assert!(status.contains("version 0 of 2") && status.contains("behind"), "{status}");

    assert!(ok(on_db(&pg, &catalog, &state).args(["db", "migrate"])).contains("applied migrations 1, 2"));
    assert!(!ok(on_db(&pg, &catalog, &state).args(["db", "migrate"])).contains("applied"), "migrate is idempotent");

    // A sync that fails after the embedding (here: the table its new set needs is taken)
    // keeps the store; the next run syncs without embedding again.
    pg.psql("CREATE TABLE lookalike_items_1 (taken int)");
    let out = on_db(&pg, &catalog, &state).arg("index").output().unwrap();
    assert!(!out.status.success() && text(&out).contains("lookalike_items_1"), "{}", text(&out));
    assert!(state.join("store.lks").is_file(), "the local index run was kept");
    pg.psql("DROP TABLE lookalike_items_1");
    let first = json(&on_db(&pg, &catalog, &state).args(["index", "--json"]).output().unwrap());
    assert_eq!(first["embedded"], 0);
    let synced = &first["synced"];
    assert_eq!((synced["new_set"].as_bool(), synced["items"].as_u64()), (Some(true), Some(87)), "{first}");
    assert_eq!(synced["repaired"], 1, "the failed sync's unfinished set is dropped: {first}");
    let set = synced["set"].as_i64().unwrap();
    let again = json(&on_db(&pg, &catalog, &state).args(["db", "sync", "--json"]).output().unwrap());
    assert_eq!(
        (again["upserted"].as_u64(), again["deleted"].as_u64(), again["set"].as_i64()),
        (Some(0), Some(0), Some(set))
    );
    assert_eq!(pg.psql(&format!("SELECT count(*) FROM lookalike_items_{set}")), "87");

    // Exact search in the database equals the local exact search, with and without a filter.
    let items: Vec<String> = files[6..].iter().step_by(4).map(|f| f.rsplit_once('.').unwrap().0.to_string()).collect();
    let local = answers(at(&catalog, &state), &items, &["--exact"]);
    let mut verbose = on_db(&pg, &catalog, &state);
    verbose.arg("-v");
    let in_db = answers(verbose, &items, &["--exact"]);
    same_answers(&local, &in_db, "exact");
    let out = on_db(&pg, &catalog, &state).args(["-v", "query", "--exact", "--item", &items[0]]).output().unwrap();
    assert!(text(&out).contains("postgres-exact search"), "{}", text(&out));
    let gender = "--filter=gender=Women";
    same_answers(
        &answers(at(&catalog, &state), &items, &["--exact", gender]),
        &answers(on_db(&pg, &catalog, &state), &items, &["--exact", gender]),
        "exact, filtered",
    );
    // HNSW: nearly the exact answers (all of them at this size).
    let hnsw = answers(on_db(&pg, &catalog, &state), &items, &["--approx"]);
    let r = recall(&local, &hnsw);
    assert!(r >= 0.99, "HNSW recall@10 {r}");

    // Three photos added, three removed (the count, and so the whitening, stays): only
    // those rows change, at once visible.
    for f in &files[..3] {
        std::fs::rename(later.join(f), images.join(f)).unwrap();
    }
    for f in &files[3..6] {
        std::fs::remove_file(images.join(f)).unwrap();
    }
    let next = json(&on_db(&pg, &catalog, &state).args(["index", "--json"]).output().unwrap());
    let s = &next["synced"];
    assert_eq!(
        (s["upserted"].as_u64(), s["deleted"].as_u64(), s["new_set"].as_bool()),
        (Some(3), Some(3), Some(false)),
        "{next}"
    );
    assert_eq!(pg.psql(&format!("SELECT count(*) FROM lookalike_items_{set}")), "87");
    let added = files[0].rsplit_once('.').unwrap().0;
    let removed = files[3].rsplit_once('.').unwrap().0;
    let removed_image = later.join(&files[3]);
    std::fs::copy(common::dataset().images.join(&files[3]), &removed_image).unwrap();
    let hits = json(
        &on_db(&pg, &catalog, &state)
            .args(["query", "--exact", "--json", "-k", "3"])
            .arg(&removed_image)
            .output()
            .unwrap(),
    );
    assert_ne!(hits[0]["id"], removed, "a removed item is gone from the database: {hits}");
    let image = images.join(&files[0]);
    let out = ok(on_db(&pg, &catalog, &state).args(["query", "--exact", "--json", "-k", "3"]).arg(&image));
    assert!(out.contains(&format!("\"id\": \"{added}\"")), "an added photo finds itself: {out}");

    // A server running on the current set, to see it through the switch below.
    let exact_config = dir.path().join("exact.toml");
    std::fs::write(&exact_config, "[index]\nmode = \"exact\"\n").unwrap();
    let url = pg.url();
    let env = [("LOOKALIKE_INDEX_BACKEND", "postgres"), ("LOOKALIKE_POSTGRES_URL", url.as_str())];
    let server = common::server::start(&catalog, &state, &exact_config, &env);
    let similar = || {
        let url = server.url(&format!("/v1/items/{}/similar?k=10", items[2]));
        let (status, body) = common::server::answer(ureq::get(&url).call());
        assert_eq!(status, 200, "{body}");
        common::server::ids(&body)
    };
    let before = similar();

    // Other descriptor settings: a complete new set, switched to, the old one dropped.
    let config = dir.path().join("colour.toml");
    std::fs::write(&config, "[search]\ncolour_weight = 0.4\n").unwrap();
    let refit =
        json(&on_db(&pg, &catalog, &state).args(["--config"]).arg(&config).args(["index", "--json"]).output().unwrap());
    let new_set = refit["synced"]["set"].as_i64().unwrap();
    assert_eq!(refit["synced"]["new_set"], true, "{refit}");
    assert_ne!(new_set, set);
    let tables = pg.psql(
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE tablename LIKE 'lookalike_items_%'",
    );
    assert_eq!(tables, format!("lookalike_items_{new_set}"), "only the new set is left");
    // The server whose set was dropped goes on answering from its own descriptors, exactly.
    assert_eq!(similar(), before, "answers through the switch");
    let (_, ready) = common::server::answer(ureq::get(&server.url("/readyz")).call());
    assert!(ready["search"].as_str().unwrap().contains("set was replaced"), "{ready}");
    common::server::stop(server);
    // A database holding another fit (another machine's newer settings) is not searched
    // with this machine's query vectors: it answers alone and says why.
    let fit = pg.psql(&format!("SELECT fit FROM lookalike_sets WHERE id = {new_set}"));
    pg.psql(&format!("UPDATE lookalike_sets SET fit = 'elsewhere' WHERE id = {new_set}"));
    let node = || {
        on_db(&pg, &catalog, &state)
            .args(["--config"])
            .arg(&config)
            .args(["query", "--exact", "--item", &items[1]])
            .output()
            .unwrap()
    };
    let out = node();
    assert!(out.status.success() && text(&out).contains("another fit (elsewhere)"), "{}", text(&out));
    pg.psql(&format!("UPDATE lookalike_sets SET fit = '{fit}' WHERE id = {new_set}"));
    assert!(!text(&node()).contains("another fit"), "the right fit is searched in the database again");

    // A sync that died half-way leaves an unfinished set; the next one drops it.
    let catalog_key = pg.psql("SELECT catalog FROM lookalike_catalogs");
    let crashed = pg.psql(&format!(
        "INSERT INTO lookalike_sets (catalog, fit, dims) VALUES ('{catalog_key}', 'x', 4) RETURNING id"
    ));
    pg.psql(&format!("CREATE TABLE lookalike_items_{crashed} (rel text)"));
    let repaired = json(
        &on_db(&pg, &catalog, &state).args(["--config"]).arg(&config).args(["db", "sync", "--json"]).output().unwrap(),
    );
    assert_eq!((repaired["repaired"].as_u64(), repaired["upserted"].as_u64()), (Some(1), Some(0)), "{repaired}");
    assert_eq!(pg.psql(&format!("SELECT to_regclass('lookalike_items_{crashed}') IS NULL")), "t");

    // info names the database, not its password.
    let info = ok(on_db(&pg, &catalog, &state).arg("info"));
    assert!(info.contains("database:") && info.contains("lookalike@127.0.0.1"), "{info}");

    // The database gone: a clear error naming it, no panic, no password.
    pg.stop();
    let out = on_db(&pg, &catalog, &state)
        .args(["--config"])
        .arg(&config)
        .args(["query", "--item", &items[1]])
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("index backend postgres://lookalike@127.0.0.1") && !all.contains("panicked"), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
}

#[test]
fn postgres_two_servers_and_the_tui_share_one_database_and_a_replica_serves_when_the_primary_stops() {
    let mut primary = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    let files = dataset().subset(70, 1, &catalog);
    let state = dir.path().join("state");
    let config = dir.path().join("exact.toml");
    std::fs::write(&config, "[index]\nmode = \"exact\"\n").unwrap();
    ok(on_db(&primary, &catalog, &state).args(["db", "migrate"]));
    ok(on_db(&primary, &catalog, &state).arg("index"));

    let mut replica = Postgres::replica_of(&primary);
    let set = primary.psql("SELECT active_set FROM lookalike_catalogs");
    replica.wait_for(&format!("SELECT count(*) FROM lookalike_items_{set}"), "70");
    // Both hosts, primary first: a client moves to the replica when the primary is gone.
    let url = format!(
        "postgres://lookalike:{PASSWORD}@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=any",
        primary.port, replica.port
    );
    let env = [("LOOKALIKE_INDEX_BACKEND", "postgres"), ("LOOKALIKE_POSTGRES_URL", url.as_str())];
    let servers = [
        common::server::start(&catalog, &state, &config, &env),
        common::server::start(&catalog, &state, &config, &env),
    ];
    let item = files[10].rsplit_once('.').unwrap().0;
    let local =
        answers(at(&catalog, &state), &[item.to_string(), files[20].rsplit_once('.').unwrap().0.into()], &["--exact"]);
    let similar = |server: &common::server::Server| {
        let (status, body) =
            common::server::answer(ureq::get(&server.url(&format!("/v1/items/{item}/similar?k=10"))).call());
        assert_eq!(status, 200, "{body}");
        common::server::ids(&body)
    };
    let expected: Vec<String> = local[&format!("item {item}")].iter().map(|(id, _)| id.clone()).collect();
    for server in &servers {
        assert_eq!(similar(server), expected, "a server on the database answers as the local exact search");
    }

    // The terminal UI on the same database.
    let command = format!(
        "LOOKALIKE_WEIGHTS={weights} LOOKALIKE_INDEX_BACKEND=postgres LOOKALIKE_POSTGRES_URL='{url}' {bin} --config {config} \
         --catalog {catalog} --state-dir {state} tui --graphics halfblocks {photo}; exec sleep 600",
        weights = shell_quote(&common::weights()),
        bin = shell_quote(&assert_cmd::cargo::cargo_bin("lookalike")),
        config = shell_quote(&config),
        catalog = shell_quote(&catalog),
        state = shell_quote(&state),
        photo = shell_quote(&catalog.join("images").join(&files[10])),
    );
    let tmux = Tmux::start(dir.path(), 140, 40, &command);
    let screen = tmux.wait_for("results from the database", Duration::from_secs(60), |s| {
        s.contains("postgres-exact") && s.contains("Results 1–")
    });
    assert!(!screen.contains(PASSWORD), "{screen}");
    tmux.keys(&["q"]);

    primary.stop();
    for server in &servers {
        assert_eq!(similar(server), expected, "the replica answers once the primary is gone");
    }
    // A write needs the primary, and says so.
    let out =
        at(&catalog, &state).args(["--backend", "postgres", "--postgres-url", &url, "db", "sync"]).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("refuses writes (a read-only replica") && !all.contains(PASSWORD), "{all}");
    for server in servers {
        common::server::stop(server);
    }
    replica.stop();
}

#[test]
fn postgres_wrong_password_and_a_newer_schema_are_clear_errors() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    dataset().subset(4, 2, &catalog);
    let state = dir.path().join("state");
    // Passwords checked from now on (SCRAM over loopback TCP).
    pg.psql(&format!("ALTER USER lookalike PASSWORD '{PASSWORD}'"));
    let hba = pg.path().join("data/pg_hba.conf");
    let conf: Vec<String> = std::fs::read_to_string(&hba)
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("host") && l.contains("127.0.0.1/32") && !l.contains("replication") {
            true => l.replace("trust", "scram-sha-256"),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(&hba, conf.join("\n") + "\n").unwrap();
    pg.psql("SELECT pg_reload_conf()");
    let wrong = format!("postgres://lookalike:not-{PASSWORD}@127.0.0.1:{}/postgres", pg.port);
    let out = at(&catalog, &state)
        .args(["--backend", "postgres", "--postgres-url", &wrong, "db", "status"])
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("password authentication failed") && all.contains(&format!("127.0.0.1:{}", pg.port)), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
    // The right password works (psql itself now needs it too).
    ok(on_db(&pg, &catalog, &state).args(["db", "migrate"]));
    // A schema newer than this build: searches and syncs say to upgrade.
    pg.psql("INSERT INTO lookalike_schema (version) VALUES (999)");
    let out = on_db(&pg, &catalog, &state).arg("index").output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("version 999, newer than this build knows") && all.contains("upgrade lookalike"), "{all}");
    pg.stop();
}

#[test]
fn postgres_index_workers_share_the_embedding_and_a_killed_one_loses_nothing() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    dataset().subset(48, 3, &catalog);
    // Small claims (4 x batch size), so that a worker is killed between two of them.
    let config = dir.path().join("small.toml");
    std::fs::write(&config, "[model]\nbatch_size = 2\n").unwrap();
    let (state_a, state_b) = (dir.path().join("a"), dir.path().join("b"));
    ok(on_db(&pg, &catalog, &state_a).args(["db", "migrate"]));
    let worker = |state: &Path| {
        let mut cmd = common::process(&catalog, state, &config);
        cmd.args(["--backend", "postgres", "--postgres-url", &pg.url(), "index", "--json"]);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd
    };
    let done =
        || pg.psql("SELECT count(*) FROM lookalike_embeddings WHERE features IS NOT NULL").parse::<usize>().unwrap();

    // Worker A is killed once it has published at least one claim.
    let mut a = worker(&state_a).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while done() < 8 {
        assert!(std::time::Instant::now() < deadline && a.try_wait().unwrap().is_none(), "worker A published nothing");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(a.id() as i32, libc::SIGKILL) };
    a.wait().unwrap();
    let by_a: usize = pg
        .psql(&format!("SELECT count(*) FROM lookalike_embeddings WHERE embedded_by LIKE '%:{}'", a.id()))
        .parse()
        .unwrap();
    assert!((8..48).contains(&by_a), "A published {by_a} before it was killed");

    // Worker B takes A's photos from the database, A's unfinished claim back from the
    // queue, and embeds only the rest.
    let b = json(&worker(&state_b).output().unwrap());
    assert_eq!(b["items"], 48, "{b}");
    assert_eq!(b["shared"].as_u64().unwrap() as usize, by_a, "{b}");
    assert_eq!(b["embedded"].as_u64().unwrap() as usize, 48 - by_a, "{b}");
    assert_eq!(done(), 48);
    assert_eq!(pg.psql("SELECT count(*) FROM lookalike_embeddings WHERE features IS NULL"), "0");

    // A restarted embeds nothing: its journal and the database hold every photo.
    let again = json(&worker(&state_a).output().unwrap());
    assert_eq!((again["items"].as_u64(), again["embedded"].as_u64()), (Some(48), Some(0)), "{again}");
    assert_eq!(again["resumed"].as_u64().unwrap() + again["shared"].as_u64().unwrap(), 48, "{again}");
    // Both machines search the same descriptors: one set, synced by the first, unchanged by the second.
    assert_eq!(again["synced"]["upserted"], 0, "{again}");
}

/// A certificate authority and a server certificate it signs, made with the openssl
/// command: EC keys (fast), the server's name `db.example` only, so that connecting to
/// 127.0.0.1 passes the chain check and fails the name check.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for ca in ["ca", "other-ca"] {
        let (key, pem, subj) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=lookalike test {ca}"));
        openssl(&[&["req", "-x509"][..], &ec, &["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]].concat());
    }
    openssl(&[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=db.example"]].concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:db.example\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[test]
fn postgres_over_tls_encrypts_and_checks_the_server_as_sslmode_says() {
    let pg = Postgres::start_with_tls_support();
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    for (name, file) in [("server.pem", "server.pem"), ("server.key", "server.key")] {
        pg.write_private(name, &std::fs::read(dir.path().join(file)).unwrap());
    }
    pg.psql("ALTER SYSTEM SET ssl = on");
    pg.psql("ALTER SYSTEM SET ssl_cert_file = 'server.pem'");
    pg.psql("ALTER SYSTEM SET ssl_key_file = 'server.key'");
    // TCP connections must be encrypted from now on; psql (sslmode=prefer) encrypts.
    std::fs::write(
        pg.path().join("data/pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    pg.psql("SELECT pg_reload_conf()");
    pg.wait_for("SHOW ssl", "on");

    let catalog = dir.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    let state = dir.path().join("state");
    let ca = dir.path().join("ca.pem");
    let other = dir.path().join("other-ca.pem");
    let status = |query: &str| {
        let url = format!("{}{query}", pg.url());
        let out = at(&catalog, &state).args(["--backend", "postgres", "--postgres-url", &url, "db", "status"]).output();
        let out = out.unwrap();
        let all = text(&out);
        assert!(!all.contains(PASSWORD), "the database password was printed: {all}");
        (out.status.success(), all)
    };
    let file = |p: &Path| p.to_str().unwrap().replace('/', "%2F");
    // Encrypted without a check (libpq's default, prefer; and require), and with the
    // chain checked against the right authority (verify-ca).
    for query in [String::new(), "?sslmode=require".into(), format!("?sslmode=verify-ca&sslrootcert={}", file(&ca))] {
        let (ok, all) = status(&query);
        assert!(ok && all.contains("encrypted, TLSv1."), "{query}: {all}");
    }
    let url = format!("{}?sslmode=require", pg.url());
    let json = json(
        &at(&catalog, &state)
            .args(["--backend", "postgres", "--postgres-url", &url, "db", "status", "--json"])
            .output()
            .unwrap(),
    );
    assert!(json["tls"].as_str().unwrap().starts_with("TLSv1."), "{json}");
    // The server refuses unencrypted connections, and says so.
    let (ok, all) = status("?sslmode=disable");
    assert!(!ok && all.contains("no encryption") && all.contains(&format!("127.0.0.1:{}", pg.port)), "{all}");
    // verify-full: the certificate names db.example, not 127.0.0.1.
    let (ok, all) = status(&format!("?sslmode=verify-full&sslrootcert={}", file(&ca)));
    assert!(!ok && all.contains("not valid for name \"127.0.0.1\""), "{all}");
    // Another authority: the chain check fails.
    let (ok, all) = status(&format!("?sslmode=verify-ca&sslrootcert={}", file(&other)));
    assert!(!ok && all.contains("UnknownIssuer"), "{all}");
    // A root certificate file that is not there is named.
    let (ok, all) = status("?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem");
    assert!(!ok && all.contains("/nonexistent/ca.pem"), "{all}");
}
