//! The web page in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver), against `lookalike serve` over real labelled photos (the fashion sample,
//! else the Fashion-MNIST demo). Upload a photo, see at least 10 results with names and
//! scores, open one with the keyboard and one with a click, narrow by a facet. With
//! `LOOKALIKE_SCREENSHOT=FILE` the results screen is saved there (the README's screenshot).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (bounded) until `check` holds, then returns what it found.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (id, name, score) of every result tile, read in one go (the page may be redrawing).
async fn tiles(c: &Client) -> Vec<(String, String, String)> {
    let js = "return [...document.querySelectorAll('.hit')].map(t => \
              [t.dataset.id, t.querySelector('.name').textContent, t.querySelector('.score').textContent])";
    serde_json::from_value(c.execute(js, vec![]).await.unwrap()).unwrap()
}

async fn status(c: &Client) -> String {
    c.find(Locator::Id("status")).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_searches_by_upload_click_keyboard_and_facet_in_chromium() {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).is_file(),
            "{bin} is needed: `cargo xtask test` installs chromium and chromium-driver"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let data = common::dataset();
    let files = data.class_subset(6, 12, &catalog);
    let indexed = common::at(&catalog, &state).arg("index").output().unwrap();
    assert!(indexed.status.success(), "{}", String::from_utf8_lossy(&indexed.stderr));
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "").unwrap();
    let server = common::server::start(&catalog, &state, &config, &[]);

    let port = free_port();
    let _driver = Driver(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = dir.path().join("chromium-profile");
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1000",
                     format!("--user-data-dir={}", profile.display())]
        }
    });
    let webdriver = format!("http://127.0.0.1:{port}");
    let c = until("chromedriver to start a session", async || {
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps.as_object().unwrap().clone());
        builder.connect(&webdriver).await.ok()
    })
    .await;

    c.goto(&server.url("/")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "lookalike");
    // The facet menus load from /v1/facets.
    until("the facet menus", async || {
        (!c.find_all(Locator::Css("#facets select")).await.ok()?.is_empty()).then_some(())
    })
    .await;

    // Upload a catalog photo: it finds itself first among at least 10 named, scored results.
    let query = catalog.join("images").join(&files[0]);
    c.find(Locator::Id("file")).await.unwrap().send_keys(&query.display().to_string()).await.unwrap();
    let first = until("results for the upload", async || {
        let t = tiles(&c).await;
        (t.len() >= 10).then_some(t)
    })
    .await;
    let query_id = files[0].rsplit_once('.').unwrap().0;
    assert_eq!(first[0].0, query_id, "the photo finds itself first: {first:?}");
    for (id, name, score) in &first {
        assert!(!name.is_empty() && score.ends_with("% similar"), "tile {id}: {name:?} {score:?}");
    }
    assert!(status(&c).await.contains("products like your photo"), "{}", status(&c).await);
    if let Some(path) = std::env::var_os("LOOKALIKE_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }

    // Click a result: the page shows products like it (the item itself left out).
    let picked = first[3].clone();
    c.find(Locator::Css(&format!(".hit[data-id=\"{}\"]", picked.0))).await.unwrap().click().await.unwrap();
    let second = until("results for the clicked item", async || {
        let t = tiles(&c).await;
        (!t.is_empty() && status(&c).await.contains(&picked.1) && t != first).then_some(t)
    })
    .await;
    assert!(second.iter().all(|(id, _, _)| *id != picked.0), "the clicked item is left out: {second:?}");

    // The keyboard: focus a tile and press Enter.
    let target = second[1].clone();
    let tile = c.find(Locator::Css(&format!(".hit[data-id=\"{}\"]", target.0))).await.unwrap();
    tile.send_keys("\u{E007}").await.unwrap();
    until("results for the item chosen with Enter", async || {
        let t = tiles(&c).await;
        (!t.is_empty() && status(&c).await.contains(&target.1) && t.iter().all(|(id, _, _)| *id != target.0))
            .then_some(())
    })
    .await;

    // A facet narrows the results: pick the first value of the type menu.
    let menu = c.find(Locator::Css("#facets select[data-field=\"articleType\"]")).await.unwrap();
    let value = menu.find(Locator::Css("option:nth-child(2)")).await.unwrap().attr("value").await.unwrap().unwrap();
    menu.select_by_value(&value).await.unwrap();
    until("results of one type", async || {
        let js = "return [...document.querySelectorAll('.hit .meta')].map(m => m.textContent)";
        let metas: Vec<String> = serde_json::from_value(c.execute(js, vec![]).await.ok()?).ok()?;
        (!metas.is_empty() && metas.iter().all(|m| m.starts_with(&value))).then_some(())
    })
    .await;
    c.close().await.unwrap();
    common::server::stop(server);
}
