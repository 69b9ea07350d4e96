//! Shared test helpers: the binary, the real weights, and the real photos to test on.
#![allow(dead_code)]

pub mod postgres;
pub mod seaweed;
pub mod server;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root: the clone's folder.
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The real weights; a missing file fails the test with the command that fixes it.
pub fn weights() -> PathBuf {
    let path = std::env::var_os("LOOKALIKE_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("weights/resnet50.safetensors"));
    assert!(path.is_file(), "weights missing at {}: run `cargo run --release -- fetch-weights`", path.display());
    path
}

/// `lookalike` with the real weights and no config file or user environment leaking in.
pub fn lookalike() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("lookalike").unwrap();
    for var in [
        "LOOKALIKE_CONFIG",
        "LOOKALIKE_CATALOG",
        "LOOKALIKE_LABELS",
        "LOOKALIKE_STATE_DIR",
        "LOOKALIKE_PULLED_DIR",
        "LOOKALIKE_THREADS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("LOOKALIKE_WEIGHTS", weights());
    cmd.current_dir(std::env::temp_dir());
    cmd
}

/// `lookalike --config C --catalog X --state-dir S` with the real weights, as a process to
/// spawn (servers, runs killed mid-way).
pub fn process(catalog: &Path, state: &Path, config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("lookalike"));
    // No server token leaks in from the user's environment; tests that want one set it.
    cmd.env_remove("LOOKALIKE_SERVER_TOKEN");
    die_with_test(&mut cmd);
    cmd.env("LOOKALIKE_WEIGHTS", weights());
    cmd.arg("--config").arg(config).arg("--catalog").arg(catalog).arg("--state-dir").arg(state);
    cmd
}

/// Makes a spawned process die when the test thread that started it ends: tests stop
/// what they start by PID, and this also stops it when a failed test's other threads
/// hold the handle past the end of the test process.
pub fn die_with_test(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Stops a child by its PID: `signal`, then SIGKILL after `wait`.
pub fn stop_child(child: &mut Option<std::process::Child>, signal: i32, wait: std::time::Duration) {
    let Some(mut c) = child.take() else { return };
    unsafe { libc::kill(c.id() as i32, signal) };
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if c.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// Real labelled product photos: the fashion sample when present, else the Fashion-MNIST
/// demo catalog. Which one is printed, so a log always says what was tested.
pub struct Dataset {
    pub name: &'static str,
    pub images: PathBuf,
    pub labels: PathBuf,
    /// Rows of styles.csv in id order: (id, file name, full line).
    pub rows: Vec<(String, String, String)>,
    pub header: String,
}

pub fn dataset() -> &'static Dataset {
    static DATASET: OnceLock<Dataset> = OnceLock::new();
    DATASET.get_or_init(|| {
        let sample = std::env::var_os("LOOKALIKE_SAMPLE")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("../shared/fashion-sample"));
        let (name, dir, ext) = if sample.join("styles.csv").is_file() {
            ("fashion-sample", sample, "jpg")
        } else {
            let demo = root().join("target/test-data/fashion-mnist-demo");
            let out = assert_cmd::Command::cargo_bin("lookalike")
                .unwrap()
                .args(["--catalog"])
                .arg(&demo)
                .args(["demo", "--no-index"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "building the Fashion-MNIST demo catalog failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            ("fashion-mnist-demo", demo, "png")
        };
        eprintln!("test data: {name} ({})", dir.display());
        let text = std::fs::read_to_string(dir.join("styles.csv")).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_string();
        let mut rows: Vec<(String, String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let id = l.split(',').next().unwrap().to_string();
                (id.clone(), format!("{id}.{ext}"), l.to_string())
            })
            .filter(|(_, file, _)| dir.join("images").join(file).is_file())
            .collect();
        rows.sort_by_key(|(id, _, _)| id.parse::<u64>().unwrap_or(u64::MAX));
        Dataset { name, images: dir.join("images"), labels: dir.join("styles.csv"), rows, header }
    })
}

impl Dataset {
    /// Copies `n` images spread evenly over the id range into `dir/images`, with their
    /// styles.csv rows; returns their file names.
    pub fn subset(&self, n: usize, offset: usize, dir: &Path) -> Vec<String> {
        let step = (self.rows.len() / n).max(1);
        let picked: Vec<&(String, String, String)> =
            self.rows.iter().skip(offset % step).step_by(step).take(n).collect();
        self.write_subset(&picked, dir)
    }

    /// Copies `per_class` images of each of the `classes` largest articleTypes.
    pub fn class_subset(&self, classes: usize, per_class: usize, dir: &Path) -> Vec<String> {
        let article = |line: &str| line.split(',').nth(4).unwrap_or("").to_string();
        let mut by_class: std::collections::BTreeMap<String, Vec<&(String, String, String)>> = Default::default();
        for row in &self.rows {
            by_class.entry(article(&row.2)).or_default().push(row);
        }
        let mut largest: Vec<_> = by_class.into_values().collect();
        largest.sort_by_key(|rows| std::cmp::Reverse(rows.len()));
        let picked: Vec<&(String, String, String)> = largest
            .iter()
            .take(classes)
            .flat_map(|rows| rows.iter().step_by((rows.len() / per_class).max(1)).take(per_class).copied())
            .collect();
        self.write_subset(&picked, dir)
    }

    fn write_subset(&self, picked: &[&(String, String, String)], dir: &Path) -> Vec<String> {
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let mut csv = format!("{}\n", self.header);
        for (_, file, line) in picked {
            std::fs::copy(self.images.join(file), images.join(file)).unwrap();
            csv.push_str(line);
            csv.push('\n');
        }
        std::fs::write(dir.join("styles.csv"), csv).unwrap();
        picked.iter().map(|(_, f, _)| f.clone()).collect()
    }
}

pub fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "lookalike failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `lookalike --catalog CATALOG --state-dir STATE`, ready for a command.
pub fn at(catalog: &Path, state: &Path) -> assert_cmd::Command {
    let mut cmd = lookalike();
    cmd.arg("--catalog").arg(catalog).arg("--state-dir").arg(state);
    cmd
}

/// Runs `lookalike` at a catalog and state with `args` and parses its JSON output.
pub fn run_json(catalog: &Path, state: &Path, args: &[&str]) -> serde_json::Value {
    json(&at(catalog, state).args(args).output().unwrap())
}

/// A PNG whose header claims 100,000 x 100,000 pixels (a decompression bomb's opening).
pub fn png_claiming_huge_size() -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc32fast::hash(&ihdr).to_be_bytes());
    out
}

/// A copy of the v1 fixture (tests/fixtures/v1: 70 images, their labels and a state
/// folder) in `dir`, where it may be written: (catalog, state).
pub fn fixture_v1_copy(dir: &Path) -> (PathBuf, PathBuf) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let (catalog, state) = (dir.join("catalog"), dir.join("state"));
    for (from, to) in
        [("catalog/images", catalog.join("images")), ("catalog", catalog.clone()), ("state", state.clone())]
    {
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(fixture.join(from)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    (catalog, state)
}
