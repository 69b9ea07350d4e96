//! `lookalike serve` as a real process on a free loopback port, over the 70-image v1
//! fixture catalog with the real weights: every endpoint, bad requests answered with the
//! right status and a JSON error, answers equal to the CLI's, concurrent clients, and a
//! clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopped by its own PID, whatever the test did.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server and waits (bounded) for the line with its address.
fn start(catalog: &Path, state: &Path, config: &Path) -> Server {
    let bin = assert_cmd::cargo::cargo_bin("lookalike");
    let mut child = std::process::Command::new(bin)
        .env("LOOKALIKE_WEIGHTS", common::weights())
        .arg("--config")
        .arg(config)
        .arg("--catalog")
        .arg(catalog)
        .arg("--state-dir")
        .arg(state)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut server = Server { child, base: String::new() };
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(url) = line.strip_prefix("listening on ") {
                server.base = url.split_whitespace().next().unwrap().to_string();
                return server;
            }
        }
    }
    panic!("the server did not say where it listens within 60 s");
}

/// Status and JSON body of a response, whatever the status.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let response = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no answer: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_http_api_answers_like_the_cli_and_refuses_bad_requests_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = common::fixture_v1_copy(dir.path());
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[server]\nmax_body_kib = 64\nmax_concurrent = 4\n").unwrap();
    let server = start(&catalog, &state, &config);
    let url = |p: &str| format!("{}{p}", server.base);
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

    // Bad requests: the right status, a JSON error, and the server keeps answering.
    let huge = common::png_claiming_huge_size();
    let image_post =
        |body: &[u8], kind: &str| answer(ureq::post(&url("/v1/search")).set("Content-Type", kind).send_bytes(body));
    let get = |path: &str| answer(ureq::get(&url(path)).call());
    let cases: Vec<(&str, (u16, serde_json::Value), u16, &str)> = vec![
        ("empty body", image_post(b"", "image/jpeg"), 400, "bad_request"),
        ("text saved as .jpg", image_post(b"<html>not a photo</html>", "image/jpeg"), 422, "bad_image"),
        ("PNG claiming 100000x100000", image_post(&huge, "image/png"), 422, "bad_image"),
        ("body over the limit", image_post(&vec![0u8; 100 * 1024], "image/jpeg"), 413, "too_large"),
        ("wrong content type", image_post(b"x", "text/plain"), 415, "unsupported_media_type"),
        ("malformed JSON", image_post(b"{\"item\": ", "application/json"), 400, "bad_request"),
        ("unknown item", get("/v1/items/nope"), 404, "unknown_item"),
        ("malformed filter", get("/v1/items/5/similar?filter=colour"), 400, "bad_request"),
        ("unknown filter field", get("/v1/items/5/similar?filter=colour:red"), 400, "bad_request"),
        ("bad k", get("/v1/items/5/similar?k=lots"), 400, "bad_request"),
        ("unknown endpoint", get("/v1/nothing"), 404, "not_found"),
    ];
    for (name, (status, body), want_status, want_kind) in cases {
        assert_eq!((status, body["error"]["kind"].as_str()), (want_status, Some(want_kind)), "{name}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }
    assert_eq!(answer(ureq::get(&url("/healthz")).call()).0, 200, "the server stopped answering");

    // Concurrent clients get the single-client answers.
    let want = ids(&similar);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let u = url("/v1/items/5/similar?k=4");
            std::thread::spawn(move || (0..5).map(|_| ids(&answer(ureq::get(&u).call()).1)).collect::<Vec<_>>())
        })
        .collect();
    for t in threads {
        for got in t.join().unwrap() {
            // A 503 (busy) answer has no hits field; every answer here must be a result.
            assert_eq!(got, want);
        }
    }

    // SIGTERM: the server finishes and exits 0.
    let mut server = server;
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
