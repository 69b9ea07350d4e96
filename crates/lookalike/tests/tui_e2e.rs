//! The TUI end to end: the release binary in a real terminal (tmux), driven with
//! `send-keys` and read with `capture-pane`, locally and through a real SSH session.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tmux::{shell_quote, Tmux};
use common::{at, dataset, weights};

/// A catalog of 12 indexed photos, a folder of 2 query photos, and 4 photos to add later.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    catalog: PathBuf,
    state: PathBuf,
    photos: PathBuf,
    spare: Vec<String>,
    article_types: Vec<String>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (catalog, state) = (root.join("catalog"), root.join("state"));
    dataset().subset(12, 0, &catalog);
    dataset().subset(2, 7, &root.join("query"));
    let spare = dataset().subset(4, 3, &root.join("spare"));
    let out = at(&catalog, &state).args(["index"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let styles = std::fs::read_to_string(catalog.join("styles.csv")).unwrap();
    let article_types = styles.lines().skip(1).filter_map(|l| l.split(',').nth(4)).map(String::from).collect();
    Fixture { photos: root.join("query/images"), _dir: dir, root, catalog, state, spare, article_types }
}

/// The command line tmux runs: lookalike, then what the shell looks like afterwards.
fn tui_command(f: &Fixture, graphics: Option<&str>) -> String {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_lookalike"));
    let graphics = graphics.map(|g| format!("--graphics {g}")).unwrap_or_default();
    format!(
        "cd {root} && LOOKALIKE_WEIGHTS={weights} {bin} --catalog {catalog} --state-dir {state} {graphics} {photos}; \
         echo \"lookalike exited $?\"; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; \
         echo; exec sleep 600",
        root = shell_quote(&f.root),
        weights = shell_quote(&weights()),
        bin = shell_quote(&bin),
        catalog = shell_quote(&f.catalog),
        state = shell_quote(&f.state),
        photos = shell_quote(&f.photos),
    )
}

/// The shared part of both runs: pick a photo, see results, reindex after adding files, quit.
fn drive(tmux: &Tmux, f: &Fixture, first_wait: Duration) {
    let photo = std::fs::read_dir(&f.photos).unwrap().next().unwrap().unwrap().file_name();
    let photo = photo.to_string_lossy().into_owned();
    tmux.wait_for("the file picker with 12 catalog items", first_wait, |s| {
        s.contains("12 items") && s.contains(&photo)
    });

    // Too small a terminal is a message, not a crash; growing it back restores the layout.
    tmux.cmd().args(["resize-window", "-t", "e2e", "-x", "50", "-y", "12"]).status().unwrap();
    tmux.wait_for("the too-small message", Duration::from_secs(10), |s| s.contains("Terminal too small"));
    tmux.cmd().args(["resize-window", "-t", "e2e", "-x", "100", "-y", "30"]).status().unwrap();
    tmux.wait_for("the picker again", Duration::from_secs(10), |s| s.contains("Files:"));

    // Type to filter, Enter queries the photo.
    let stem = photo.split('.').next().unwrap();
    tmux.keys(&["/"]);
    tmux.keys(&["-l", stem]);
    tmux.keys(&["Enter"]);
    // Over SSH a frame can arrive in pieces, so wait for the details pane too.
    let screen = tmux.wait_for("results with scores and the selected product's type", Duration::from_secs(60), |s| {
        s.contains("Results 1–")
            && s.contains("· 12 items")
            && f.article_types.iter().any(|t| s.contains(&format!("type: {t}")))
    });
    assert!(screen.contains('%'), "no similarity scores:\n{screen}");
    assert!(screen.contains(&photo), "the query pane does not name {photo}:\n{screen}");

    // Feedback: mark the first result up and the second down, then search again.
    tmux.keys(&["+"]);
    tmux.keys(&["l"]);
    tmux.keys(&["-l", "-"]);
    tmux.wait_for("both marks", Duration::from_secs(10), |s| s.contains("marked 1 up, 1 down"));
    tmux.keys(&["s"]);
    tmux.wait_for("results searched with the feedback", Duration::from_secs(60), |s| {
        s.contains("feedback 1 up, 1 down") && s.contains("Results 1–")
    });
    // A region: c, make it narrower and shorter twice, Enter searches with it.
    tmux.keys(&["c"]);
    tmux.wait_for("the region box", Duration::from_secs(10), |s| s.contains("choose a region"));
    tmux.keys(&["H", "H", "K", "K", "Enter"]);
    tmux.wait_for("results searched with the region", Duration::from_secs(60), |s| {
        s.contains("region 0% 0%, 90%x90%") && s.contains("Results 1–") && !s.contains("choose a region")
    });
    // Zoom in on the selected result and back.
    tmux.keys(&["z"]);
    tmux.wait_for("the zoomed result", Duration::from_secs(10), |s| s.contains("zoomed (Esc: back)"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the grid again", Duration::from_secs(10), |s| !s.contains("zoomed (Esc: back)"));

    // Any colour and back: each searches again, the title says which.
    tmux.keys(&["a"]);
    tmux.wait_for("results in any colour", Duration::from_secs(60), |s| {
        s.contains("· any colour") && s.contains("Results 1–")
    });
    tmux.keys(&["a"]);
    tmux.wait_for("results in the query's colours", Duration::from_secs(60), |s| {
        s.contains("in the query's colours") && !s.contains("· any colour")
    });

    // A new batch arrives; r reindexes it and the item count grows.
    let images = f.catalog.join("images");
    for name in &f.spare {
        std::fs::copy(f.root.join("spare/images").join(name), images.join(name)).unwrap();
    }
    // While another run (here: this test, holding the state lock as `lookalike index`
    // would) indexes the same state, r says so and changes nothing.
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(f.state.join("lock")).unwrap();
    lock.try_lock().unwrap();
    tmux.keys(&["r"]);
    tmux.wait_for("the lock message", Duration::from_secs(60), |s| s.contains("another lookalike is indexing"));
    drop(lock);
    tmux.keys(&["r"]);
    tmux.wait_for("the reindexed catalog", Duration::from_secs(120), |s| s.contains("16 items"));

    // Help opens and closes; q quits and the shell gets its terminal back.
    tmux.keys(&["?"]);
    tmux.wait_for("the help overlay", Duration::from_secs(10), |s| s.contains("Keys (? or Esc closes)"));
    tmux.keys(&["Escape"]);
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell after quitting", Duration::from_secs(30), |s| s.contains("lookalike exited"));
    assert!(screen.contains("lookalike exited 0"), "{screen}");
    assert!(screen.contains("icanon") && !screen.contains("-icanon"), "terminal left in raw mode:\n{screen}");
    assert!(screen.contains("echo") && !screen.contains("-echo"), "terminal left without echo:\n{screen}");
    assert_eq!(tmux.display("#{alternate_on}"), "0", "still on the alternate screen");
}

#[test]
fn tui_in_tmux_picks_searches_reindexes_and_quits_cleanly() {
    let f = fixture();
    // No --graphics: auto-detection must settle (here on halfblocks) within its timeout.
    let tmux = Tmux::start(&f.root, 100, 30, &tui_command(&f, None));
    drive(&tmux, &f, Duration::from_secs(20));
}

/// An OpenSSH server on a loopback port with throwaway keys, for as long as it lives.
struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd(dir: &Path) -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(sshd.is_file(), "OpenSSH server missing: apt-get install openssh-server (.ci/run does)");
    let keygen = |path: &Path| {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .expect("ssh-keygen missing: apt-get install openssh-client");
        assert!(ok.success());
    };
    let (host_key, key) = (dir.join("host_key"), dir.join("user_key"));
    keygen(&host_key);
    keygen(&key);
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    // sshd refuses to start as root without its privilege separation folder.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n",
            host = host_key.display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    let server = Sshd { child, port, key };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sshd did not listen: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn tui_over_ssh_in_tmux() {
    let f = fixture();
    let ssh_dir = f.root.join("ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let server = sshd(&ssh_dir);
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let remote = tui_command(&f, None);
    let command = format!(
        "ssh -t -p {port} -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o BatchMode=yes -o LogLevel=ERROR {user}@127.0.0.1 {remote}",
        port = server.port,
        key = shell_quote(&server.key),
        user = user.trim(),
        remote = shell_quote(Path::new(&remote)),
    );
    let tmux = Tmux::start(&f.root, 100, 30, &format!("{command}; exec sleep 600"));
    // Over SSH `o` cannot open a local viewer: the TUI says so instead of trying.
    let photo = std::fs::read_dir(&f.photos).unwrap().next().unwrap().unwrap().file_name();
    tmux.wait_for("the picker over SSH", Duration::from_secs(30), |s| s.contains(&*photo.to_string_lossy()));
    tmux.keys(&["o"]);
    tmux.wait_for("the remote-session notice", Duration::from_secs(10), |s| s.contains("remote session"));
    tmux.keys(&["k"]);
    drive(&tmux, &f, Duration::from_secs(10));
}

#[test]
fn tui_reviews_duplicates_and_dupes_exports_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (catalog, state) = (root.join("catalog"), root.join("state"));
    let files = dataset().subset(4, 1, &catalog);
    let images = catalog.join("images");
    // A later byte-identical copy: the original is the older file, so the suggested keeper.
    let ext = Path::new(&files[0]).extension().unwrap().to_string_lossy().into_owned();
    std::fs::copy(images.join(&files[0]), images.join(format!("900001.{ext}"))).unwrap();
    let out = at(&catalog, &state).args(["index"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let f = Fixture { photos: images, _dir: dir, root, catalog, state, spare: Vec::new(), article_types: Vec::new() };
    let tmux = Tmux::start(&f.root, 100, 30, &tui_command(&f, Some("halfblocks")));
    tmux.wait_for("the picker with 5 catalog items", Duration::from_secs(20), |s| s.contains("5 items"));

    tmux.keys(&["D"]);
    tmux.wait_for("the first group of the review", Duration::from_secs(20), |s| {
        s.contains("Duplicates 1/1") && s.contains("1 keeper") && s.contains("900001")
    });
    tmux.keys(&["A"]);
    tmux.wait_for("the decided group", Duration::from_secs(10), |s| s.contains("1 of 1 groups decided"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the picker again", Duration::from_secs(10), |s| s.contains("Files:"));
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell after quitting", Duration::from_secs(30), |s| s.contains("lookalike exited"));
    assert!(screen.contains("lookalike exited 0"), "{screen}");

    let out = at(&f.catalog, &f.state).args(["dupes", "--decisions", "--json"]).output().unwrap();
    let decisions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let original = Path::new(&files[0]).file_stem().unwrap().to_string_lossy().into_owned();
    let mut found: Vec<(String, String, String)> = decisions
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().into(),
                d["rel"].as_str().unwrap().into(),
                d["decision"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    let mut want = vec![
        (original, format!("images/{}", files[0]), "keep".to_string()),
        ("900001".to_string(), format!("images/900001.{ext}"), "drop".to_string()),
    ];
    want.sort();
    assert_eq!(found, want, "{decisions}");
    let out = at(&f.catalog, &f.state).args(["dupes", "--decisions", "--csv"]).output().unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().next(), Some("id,path,decision"), "{csv}");
    assert!(csv.contains(&format!("900001,images/900001.{ext},drop")), "{csv}");
}
