//! `lookalike serve` as a real process on a free loopback port, stopped by its own PID.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopped by its own PID, whatever the test did.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Starts the server and waits (bounded) for the line with its address.
pub fn start(catalog: &Path, state: &Path, config: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = super::process(catalog, state, config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn(cmd)
}

/// Runs `serve` on a free loopback port with a prepared `lookalike` command.
pub fn spawn(mut cmd: std::process::Command) -> Server {
    let mut child = cmd.args(["serve", "--listen", "127.0.0.1:0"]).stderr(Stdio::piped()).spawn().unwrap();
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
pub fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let response = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no answer: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// The ids of a search answer's hits, in order.
pub fn ids(v: &serde_json::Value) -> Vec<String> {
    v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

/// Sends SIGTERM and expects exit 0 within 20 s.
pub fn stop(mut server: Server) {
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "still running 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
