//! `lookalike serve` as a real process on a free loopback port, over the 70-image v1
//! fixture catalog with the real weights: every endpoint, bad requests answered with the
//! right status and a JSON error, answers equal to the CLI's, 32 concurrent clients across
//! a reindex, a full queue, the write token, schemathesis over the OpenAPI document, and a
//! clean stop on SIGTERM.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{answer, ids, start, stop, Server};

const TOKEN: &str = "test-token-0123456789";

fn post_json(server: &Server, path: &str, json: &str) -> (u16, serde_json::Value) {
    answer(ureq::post(&server.url(path)).set("Content-Type", "application/json").send_string(json))
}

/// Polls a job until it ends (bounded) and returns its last state.
fn finished(server: &Server, id: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = answer(ureq::get(&server.url(&format!("/v1/jobs/{id}"))).call());
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still running after 120 s: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A search whose Content-Length is over the 64 KiB limit, on a raw connection: the server
/// answers before the body is sent (an HTTP client writing the whole body may instead see
/// the connection closed under it).
fn over_the_limit(server: &Server) -> (u16, serde_json::Value) {
    use std::io::Write;
    let addr = server.base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = "POST /v1/search HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\nContent-Length: 102400\r\nConnection: close\r\n\r\n";
    conn.write_all(head.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn bytes_of(r: ureq::Response) -> Vec<u8> {
    let mut bytes = Vec::new();
    r.into_reader().read_to_end(&mut bytes).unwrap();
    bytes
}

/// A copy of the v1 fixture served with the `[server]` settings given: its catalog,
/// state folder and server.
fn serve_fixture(dir: &Path, settings: &str, env: &[(&str, &str)]) -> (PathBuf, PathBuf, Server) {
    let (catalog, state) = common::fixture_v1_copy(dir);
    let config = dir.join("server.toml");
    std::fs::write(&config, format!("[server]\n{settings}")).unwrap();
    let server = start(&catalog, &state, &config, env);
    (catalog, state, server)
}

#[test]
fn the_http_api_answers_like_the_cli_and_refuses_bad_requests_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let settings = "max_body_kib = 64\nmax_concurrent = 4\nallow_url_fetch = true\nurl_max_kib = 4\n";
    let (catalog, state, server) = serve_fixture(dir.path(), settings, &[("LOOKALIKE_SERVER_TOKEN", TOKEN)]);
    let url = |p: &str| server.url(p);
    let photo = std::fs::read(catalog.join("images/3.png")).unwrap();

    assert_eq!(answer(ureq::get(&url("/healthz")).call()).0, 200);
    let (status, ready) = answer(ureq::get(&url("/readyz")).call());
    assert_eq!((status, ready["items"].as_u64()), (200, Some(70)));

    // Photo search equals `lookalike query` on the same file.
    let (status, found) =
        answer(ureq::post(&url("/v1/search?k=5")).set("Content-Type", "image/png").send_bytes(&photo));
    assert_eq!(status, 200, "{found}");
    let cli = common::json(
        &common::at(&catalog, &state)
            .arg("query")
            .arg(catalog.join("images/3.png"))
            .args(["-k", "5", "--json"])
            .output()
            .unwrap(),
    );
    let cli_ids: Vec<String> = cli.as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids(&found), cli_ids);
    assert!(found["hits"][0].get("path").is_none(), "server paths leak: {found}");
    assert_eq!(found["hits"][0]["image_url"], format!("/v1/items/{}/image", cli_ids[0]));

    // The same photo as a multipart field, and by URL (the server's own image endpoint).
    let form = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"3.png\"\r\nContent-Type: image/png\r\n\r\n";
    let body = [&form[..], &photo, b"\r\n--XyZ--\r\n"].concat();
    let (status, multipart) = answer(
        ureq::post(&url("/v1/search?k=5")).set("Content-Type", "multipart/form-data; boundary=XyZ").send_bytes(&body),
    );
    assert_eq!((status, ids(&multipart)), (200, cli_ids.clone()), "{multipart}");
    let (status, by_url) =
        post_json(&server, "/v1/search?k=5", &format!(r#"{{"url": "{}"}}"#, url("/v1/items/3/image")));
    assert_eq!((status, ids(&by_url)), (200, cli_ids.clone()), "{by_url}");
    assert!(
        found["embed_ms"].as_f64().unwrap() > 0.0
            && found["took_ms"].as_f64().unwrap() >= found["embed_ms"].as_f64().unwrap()
    );

    // Item search, paging and filters.
    let (_, item) = answer(
        ureq::post(&url("/v1/search?k=4")).set("Content-Type", "application/json").send_string(r#"{"item": "5"}"#),
    );
    let (_, similar) = answer(ureq::get(&url("/v1/items/5/similar?k=4")).call());
    assert_eq!(ids(&item), ids(&similar));
    assert!(!ids(&item).contains(&"5".to_string()));
    let (_, page2) = answer(ureq::get(&url("/v1/items/5/similar?k=2&offset=2")).call());
    assert_eq!(ids(&page2), ids(&item)[2..4]);
    assert_eq!(page2["hits"][0]["rank"], 3);
    let (_, bags) = answer(ureq::get(&url("/v1/items/5/similar?k=3&filter=articleType:Bag")).call());
    assert!(bags["hits"].as_array().unwrap().iter().all(|h| h["metadata"]["articleType"] == "Bag"), "{bags}");

    // A region, feedback and colour answer as the CLI's --crop, --like, --unlike and
    // --colour do.
    let steer = ["--crop", "0.1,0.1,0.6,0.7", "--like", "7", "--unlike", "9", "--colour", "any"];
    let cli = common::json(
        &common::at(&catalog, &state)
            .arg("query")
            .arg(catalog.join("images/3.png"))
            .args(["-k", "5", "--json"])
            .args(steer)
            .output()
            .unwrap(),
    );
    let cli_ids: Vec<String> = cli.as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    let (status, steered) = answer(
        ureq::post(&url("/v1/search?k=5&crop=0.1,0.1,0.6,0.7&like=7&unlike=9&colour=any"))
            .set("Content-Type", "image/png")
            .send_bytes(&photo),
    );
    assert_eq!((status, ids(&steered)), (200, cli_ids), "{steered}");
    assert!(!ids(&steered).contains(&"9".to_string()), "the unliked item is left out: {steered}");
    assert!(steered.get("strong").is_some(), "{steered}");
    let (status, grouped) = answer(ureq::get(&url("/v1/items/5/similar?k=3&group_by=articleType")).call());
    let kinds: Vec<&str> =
        grouped["hits"].as_array().unwrap().iter().map(|h| h["metadata"]["articleType"].as_str().unwrap()).collect();
    assert_eq!(status, 200, "{grouped}");
    assert!(kinds.iter().enumerate().all(|(i, k)| !kinds[..i].contains(k)), "one hit per type: {grouped}");
    let (status, item_region) = answer(ureq::get(&url("/v1/items/5/similar?k=4&crop=0,0,0.5,0.5")).call());
    assert_eq!(status, 200, "{item_region}");
    assert!(!ids(&item_region).contains(&"5".to_string()) && ids(&item_region) != ids(&item), "{item_region}");

    // Items, photos, facets.
    let (status, one) = answer(ureq::get(&url("/v1/items/5")).call());
    assert_eq!((status, one["rel"].as_str()), (200, Some("images/5.png")));
    let image = ureq::get(&url("/v1/items/5/image")).call().unwrap();
    assert_eq!(image.header("Content-Type"), Some("image/png"));
    let mut bytes = Vec::new();
    image.into_reader().read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, std::fs::read(catalog.join("images/5.png")).unwrap());
    let (_, facets) = answer(ureq::get(&url("/v1/facets")).call());
    let article = facets.as_array().unwrap().iter().find(|f| f["field"] == "articleType").unwrap();
    assert_eq!(article["values"].as_array().unwrap().len(), 10, "{article}");
    assert_eq!(article["values"].as_array().unwrap().iter().map(|v| v["count"].as_u64().unwrap()).sum::<u64>(), 70);

    // Thumbnails: JPEG, within the size, the same bytes from the cache.
    let thumb = ureq::get(&url("/v1/items/5/thumbnail?size=16")).call().unwrap();
    assert_eq!(thumb.header("Content-Type"), Some("image/jpeg"));
    let small = bytes_of(thumb);
    let decoded = image::load_from_memory(&small).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (16, 16), "28x28 photo scaled into 16 px");
    assert_eq!(bytes_of(ureq::get(&url("/v1/items/5/thumbnail?size=16")).call().unwrap()), small);
    let full = image::load_from_memory(&bytes_of(ureq::get(&url("/v1/items/5/thumbnail")).call().unwrap())).unwrap();
    assert_eq!((full.width(), full.height()), (28, 28), "never enlarged");

    // The index job: the token is needed; the job reports its counts.
    let index = |auth: Option<&str>| {
        let mut r = ureq::post(&url("/v1/index"));
        if let Some(a) = auth {
            r = r.set("Authorization", a);
        }
        answer(r.call())
    };
    for auth in [None, Some("Bearer wrong-token-000000000"), Some(TOKEN)] {
        let (status, body) = index(auth);
        assert_eq!((status, body["error"]["kind"].as_str()), (401, Some("unauthorized")), "{auth:?}: {body}");
    }
    // A byte-identical copy arrives: the reindex embeds nothing, and /v1/dupes lists the
    // pair as `lookalike dupes` does.
    assert_eq!(answer(ureq::get(&url("/v1/dupes")).call()).1["groups"], serde_json::json!([]));
    std::fs::copy(catalog.join("images/3.png"), catalog.join("images/3b.png")).unwrap();
    let (status, job) = index(Some(&format!("Bearer {TOKEN}")));
    assert_eq!((status, job["state"].as_str()), (202, Some("running")), "{job}");
    let done = finished(&server, job["id"].as_u64().unwrap());
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!((done["report"]["items"].as_u64(), done["report"]["embedded"].as_u64()), (Some(71), Some(0)), "{done}");
    let (status, dupes) = answer(ureq::get(&url("/v1/dupes")).call());
    let cli = common::json(&common::at(&catalog, &state).args(["dupes", "--json"]).output().unwrap());
    assert_eq!((status, &dupes["groups"]), (200, &cli), "{dupes}");
    let ids: Vec<&str> =
        dupes["groups"][0]["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{dupes}");
    assert!(ids.contains(&"3") && ids.contains(&"3b"), "{dupes}");
    // The near tier is a scan of the photos: started by the first request, polled.
    let (status, first) = answer(ureq::get(&url("/v1/dupes?tier=near")).call());
    assert_eq!((status, first["tier"].as_str()), (200, Some("near")), "{first}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let near = loop {
        let (_, body) = answer(ureq::get(&url("/v1/dupes?tier=near")).call());
        if body["status"] == "done" {
            break body;
        }
        assert!(body["status"] == "running" && Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let cli = common::json(&common::at(&catalog, &state).args(["dupes", "--tier", "near", "--json"]).output().unwrap());
    assert_eq!(near["groups"], cli, "{near}");
    let (status, bad) = answer(ureq::get(&url("/v1/dupes?tier=fuzzy")).call());
    assert_eq!((status, bad["error"]["kind"].as_str()), (400, Some("bad_request")), "{bad}");
    // The similar tier answers at once, as the CLI lists it.
    let (status, similar) = answer(ureq::get(&url("/v1/dupes?tier=similar&threshold=0.5")).call());
    assert_eq!((status, similar["status"].as_str()), (200, Some("done")), "{similar}");
    let args = ["dupes", "--tier", "similar", "--threshold", "0.5", "--json"];
    assert_eq!(similar["groups"], common::json(&common::at(&catalog, &state).args(args).output().unwrap()));
    let (status, bad) = answer(ureq::get(&url("/v1/dupes?tier=similar&threshold=7")).call());
    assert_eq!((status, bad["error"]["kind"].as_str()), (400, Some("bad_request")), "{bad}");

    // The OpenAPI document names every endpoint; metrics count what happened.
    let (_, doc) = answer(ureq::get(&url("/v1/openapi.json")).call());
    for path in [
        "/v1/search",
        "/v1/items/{id}",
        "/v1/items/{id}/similar",
        "/v1/items/{id}/image",
        "/v1/items/{id}/thumbnail",
        "/v1/facets",
        "/v1/index",
        "/v1/jobs/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/dupes",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    let metrics = ureq::get(&url("/metrics")).call().unwrap().into_string().unwrap();
    for line in [
        "lookalike_http_requests_total{route=\"/v1/search\",method=\"POST\",status=\"200\"} 5",
        "lookalike_http_requests_total{route=\"/v1/index\",method=\"POST\",status=\"401\"} 3",
        "lookalike_catalog_items 71",
        "lookalike_query_batch_size_count 5",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no line {line:?} in\n{metrics}");
    }

    // Bad requests: the right status, a JSON error, and the server keeps answering.
    let huge = common::png_claiming_huge_size();
    let image_post =
        |body: &[u8], kind: &str| answer(ureq::post(&url("/v1/search")).set("Content-Type", kind).send_bytes(body));
    let get = |path: &str| answer(ureq::get(&url(path)).call());
    let cases: Vec<(&str, (u16, serde_json::Value), u16, &str)> = vec![
        ("empty body", image_post(b"", "image/jpeg"), 400, "bad_request"),
        ("text saved as .jpg", image_post(b"<html>not a photo</html>", "image/jpeg"), 422, "bad_image"),
        ("PNG claiming 100000x100000", image_post(&huge, "image/png"), 422, "bad_image"),
        ("body over the limit", over_the_limit(&server), 413, "too_large"),
        ("wrong content type", image_post(b"x", "text/plain"), 415, "unsupported_media_type"),
        ("malformed JSON", image_post(b"{\"item\": ", "application/json"), 400, "bad_request"),
        ("JSON with neither item nor url", image_post(b"{}", "application/json"), 400, "bad_request"),
        ("JSON with an unknown field", image_post(b"{\"id\": \"5\"}", "application/json"), 400, "bad_request"),
        (
            "multipart without image",
            image_post(
                b"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--B--\r\n",
                "multipart/form-data; boundary=B",
            ),
            400,
            "bad_request",
        ),
        ("URL not http", post_json(&server, "/v1/search", r#"{"url": "file:///etc/passwd"}"#), 400, "bad_request"),
        (
            "URL unreachable",
            post_json(&server, "/v1/search", r#"{"url": "http://127.0.0.1:9/x.jpg"}"#),
            502,
            "url_fetch_failed",
        ),
        (
            "URL photo over the cap",
            post_json(&server, "/v1/search", &format!(r#"{{"url": "{}"}}"#, url("/v1/openapi.json"))),
            413,
            "too_large",
        ),
        (
            "URL not an image",
            post_json(&server, "/v1/search", &format!(r#"{{"url": "{}"}}"#, url("/healthz"))),
            422,
            "bad_image",
        ),
        ("thumbnail size too small", get("/v1/items/5/thumbnail?size=5"), 400, "bad_request"),
        ("thumbnail size not a number", get("/v1/items/5/thumbnail?size=big"), 400, "bad_request"),
        ("unknown job", get("/v1/jobs/999"), 404, "unknown_job"),
        ("job id not a number", get("/v1/jobs/first"), 400, "bad_request"),
        ("unknown item", get("/v1/items/nope"), 404, "unknown_item"),
        ("malformed filter", get("/v1/items/5/similar?filter=colour"), 400, "bad_request"),
        ("unknown filter field", get("/v1/items/5/similar?filter=colour:red"), 400, "bad_request"),
        ("bad k", get("/v1/items/5/similar?k=lots"), 400, "bad_request"),
        ("malformed crop", get("/v1/items/5/similar?crop=1,2"), 400, "bad_request"),
        ("unknown colour mode", get("/v1/items/5/similar?colour=red"), 400, "bad_request"),
        ("unknown group field", get("/v1/items/5/similar?group_by=colour"), 400, "bad_request"),
        ("zero per group", get("/v1/items/5/similar?group_by=articleType&per_group=0"), 400, "bad_request"),
        ("crop outside the photo", get("/v1/items/5/similar?crop=0,0,5000,5000"), 400, "bad_crop"),
        ("unknown liked item", get("/v1/items/5/similar?like=nope"), 404, "unknown_item"),
        ("unknown endpoint", get("/v1/nothing"), 404, "not_found"),
    ];
    for (name, (status, body), want_status, want_kind) in cases {
        assert_eq!((status, body["error"]["kind"].as_str()), (want_status, Some(want_kind)), "{name}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }

    assert_eq!(answer(ureq::get(&url("/healthz")).call()).0, 200, "the server stopped answering");
    stop(server);
}

#[test]
fn a_saved_near_run_answers_the_near_tier_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = common::fixture_v1_copy(dir.path());
    let args = ["dupes", "--tier", "near", "--json"];
    let cli = common::json(&common::at(&catalog, &state).args(args).output().unwrap());
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[server]\n").unwrap();
    let server = start(&catalog, &state, &config, &[]);
    let (status, near) = answer(ureq::get(&server.url("/v1/dupes?tier=near")).call());
    assert_eq!((status, near["status"].as_str()), (200, Some("done")), "no scan needed: {near}");
    assert_eq!(near["groups"], cli);
}

#[test]
fn thirty_two_clients_get_single_client_answers_while_a_reindex_switches_versions() {
    let dir = tempfile::tempdir().unwrap();
    let settings = "max_queue = 64\nbatch_wait_ms = 5\n";
    let (catalog, _, server) = serve_fixture(dir.path(), settings, &[("LOOKALIKE_SERVER_TOKEN", TOKEN)]);
    let server = Arc::new(server);
    let photos: Vec<Vec<u8>> =
        (0..8).map(|i| std::fs::read(catalog.join(format!("images/{i}.png"))).unwrap()).collect();
    // Queries 0-7 are photos, 8-15 items.
    let ask = move |server: &Server, q: usize| -> (u64, Vec<String>) {
        let (status, body) = if q < 8 {
            answer(ureq::post(&server.url("/v1/search?k=6")).set("Content-Type", "image/png").send_bytes(&photos[q]))
        } else {
            answer(ureq::get(&server.url(&format!("/v1/items/{}/similar?k=6", q + 2))).call())
        };
        assert_eq!(status, 200, "query {q}: {body}");
        (body["items"].as_u64().unwrap(), ids(&body))
    };
    let ask = Arc::new(ask);
    let old: Vec<_> = (0..16).map(|q| ask(&server, q)).collect();
    assert!(old.iter().all(|(items, _)| *items == 70));

    let answered = Arc::new(AtomicUsize::new(0));
    let switched = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..32)
        .map(|t| {
            let (server, ask, answered, switched) = (server.clone(), ask.clone(), answered.clone(), switched.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                // At least 8 requests each, and on until the new version has answered too.
                let mut j = 0;
                while j < 8
                    || !switched.load(Ordering::SeqCst)
                    || got.last().is_some_and(|(_, (items, _))| *items == 70)
                {
                    let q = (t * 7 + j) % 16;
                    got.push((q, ask(&server, q)));
                    answered.fetch_add(1, Ordering::SeqCst);
                    j += 1;
                    assert!(j < 400, "client {t} never saw the new version");
                }
                got
            })
        })
        .collect();
    // Mid-run: a byte copy (reuses its vector) and a mirrored photo (embedded) join the catalog.
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.load(Ordering::SeqCst) < 64 {
        assert!(Instant::now() < deadline, "the clients made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::copy(catalog.join("images/3.png"), catalog.join("images/copy3.png")).unwrap();
    image::open(catalog.join("images/4.png")).unwrap().fliph().save(catalog.join("images/mirror4.png")).unwrap();
    let (status, job) =
        answer(ureq::post(&server.url("/v1/index")).set("Authorization", &format!("Bearer {TOKEN}")).call());
    assert_eq!(status, 202, "{job}");
    let done = finished(&server, job["id"].as_u64().unwrap());
    assert_eq!((done["state"].as_str(), done["report"]["added"].as_u64()), (Some("done"), Some(2)), "{done}");
    assert_eq!(done["report"]["embedded"].as_u64(), Some(1), "the byte copy reuses its original's vector: {done}");
    switched.store(true, Ordering::SeqCst);
    let results: Vec<_> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();

    let new: Vec<_> = (0..16).map(|q| ask(&server, q)).collect();
    assert!(new.iter().all(|(items, _)| *items == 72));
    assert_ne!(new[3].1, old[3].1, "the copy of photo 3 is among its results now");
    let (mut before, mut after) = (0, 0);
    for (q, (items, hits)) in &results {
        match items {
            70 => (before += 1, assert_eq!(*hits, old[*q].1, "query {q} on the old version")).1,
            72 => (after += 1, assert_eq!(*hits, new[*q].1, "query {q} on the new version")).1,
            n => panic!("query {q} answered from {n} items: a mixed version"),
        }
    }
    assert!(before >= 64 && after >= 32, "{before} answers before the switch, {after} after");

    // Concurrent photos shared model calls: on average more than one photo per call.
    let metrics = ureq::get(&server.url("/metrics")).call().unwrap().into_string().unwrap();
    let value = |name: &str| -> f64 {
        metrics.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap()
    };
    let (photos, calls) = (value("lookalike_query_batch_size_sum"), value("lookalike_query_batch_size_count"));
    assert!(photos > calls * 1.5, "{photos} photos in {calls} model calls");
    stop(Arc::into_inner(server).unwrap());
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_writes_and_urls_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, _, server) = serve_fixture(dir.path(), "max_concurrent = 1\nmax_queue = 1\nbatch_size = 1\n", &[]);
    let server = Arc::new(server);
    let photo = Arc::new(std::fs::read(catalog.join("images/3.png")).unwrap());
    let (_, want) =
        answer(ureq::post(&server.url("/v1/search?k=3")).set("Content-Type", "image/png").send_bytes(&photo));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (server, photo) = (server.clone(), photo.clone());
            std::thread::spawn(move || {
                match ureq::post(&server.url("/v1/search?k=3")).set("Content-Type", "image/png").send_bytes(&photo) {
                    Ok(r) => (200, None, r.into_string().unwrap()),
                    Err(ureq::Error::Status(code, r)) => {
                        (code, r.header("Retry-After").map(str::to_string), r.into_string().unwrap())
                    }
                    Err(e) => panic!("no answer: {e}"),
                }
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for c in clients {
        let (status, retry, body) = c.join().unwrap();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        match status {
            200 => (ok += 1, assert_eq!(ids(&body), ids(&want))).1,
            503 => {
                busy += 1;
                assert_eq!((retry.as_deref(), body["error"]["kind"].as_str()), (Some("1"), Some("busy")), "{body}");
            }
            other => panic!("status {other}: {body}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} answered, {busy} refused");

    let (status, body) =
        answer(ureq::post(&server.url("/v1/index")).set("Authorization", "Bearer anything-at-all-00").call());
    assert_eq!((status, body["error"]["kind"].as_str()), (403, Some("writes_disabled")), "{body}");
    let (status, body) = post_json(&server, "/v1/search", r#"{"url": "http://127.0.0.1:9/x.jpg"}"#);
    assert_eq!((status, body["error"]["kind"].as_str()), (403, Some("url_fetch_disabled")), "{body}");
    assert_eq!(answer(ureq::get(&server.url("/readyz")).call()).0, 200);
    stop(Arc::into_inner(server).unwrap());
}

/// schemathesis from the test virtual environment (`cargo xtask test` installs it).
fn schemathesis() -> std::path::PathBuf {
    let venv_bin = std::env::var_os("LOOKALIKE_PYTHON").map(|p| Path::new(&p).with_file_name("schemathesis"));
    let bin = venv_bin.unwrap_or_else(|| "schemathesis".into());
    let version = std::process::Command::new(&bin).arg("--version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "schemathesis is needed at {}: `cargo xtask test` installs it",
        bin.display()
    );
    bin
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_openapi_document() {
    let bin = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let (_, _, server) = serve_fixture(dir.path(), "max_queue = 64\n", &[("LOOKALIKE_SERVER_TOKEN", TOKEN)]);
    let out = std::process::Command::new(bin)
        .current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .arg("run")
        .arg(server.url("/v1/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "30", "--workers", "2", "--seed", "17"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}"), "--request-timeout", "30"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("passed") && !text.contains(" 0 generated"), "{text}");
    stop(server);
}
