//! Test support: start the real `prodex` binary on a free port in a temp home, a scripted mock
//! upstream (`mock.rs`), and a small raw HTTP/1.1 client that shows exactly what went on the wire.

#![allow(dead_code)]

pub mod admin;
pub mod client;
pub mod https;
pub mod mock;
pub mod servers;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("prodex-test-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_prodex")
}

/// `prodex gateway providers --json` with no configuration: the built-in providers.
pub fn providers_json() -> serde_json::Value {
    let home = TempDir::new("providers");
    let out = Command::new(bin())
        .args(["gateway", "providers", "--json"])
        .env_clear()
        .env("HOME", std::env::temp_dir())
        .env("PRODEX_HOME", &home.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A running gateway process.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub home: TempDir,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// How to start a gateway.
#[derive(Default)]
pub struct Opts<'a> {
    pub base_url: Option<String>,
    pub env: Vec<(&'a str, String)>,
    pub args: Vec<&'a str>,
    pub policy: Option<&'a str>,
    /// Use this home (e.g. one seeded with state) instead of a fresh one.
    pub home: Option<TempDir>,
}

impl Gateway {
    /// A gateway in front of `mock` with no auth.
    pub fn in_front_of(mock: &mock::Mock) -> Gateway {
        Self::start(Opts { base_url: Some(mock.base_url()), ..Opts::default() })
    }

    pub fn start(opts: Opts<'_>) -> Gateway {
        let home = opts.home.unwrap_or_else(|| TempDir::new("home"));
        if let Some(policy) = opts.policy {
            std::fs::write(home.0.join("policy.toml"), policy).unwrap();
        }
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home.0)
            .env("PRODEX_HOME", &home.0)
            .args(["gateway", "--listen", "127.0.0.1:0", "--workers", "2"]);
        if let Some(url) = &opts.base_url {
            cmd.args(["--base-url", url]);
        }
        cmd.args(&opts.args);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, home)
    }

    /// Runs a prepared `prodex gateway …` command and waits until it is ready.
    pub fn spawn(mut cmd: Command, home: TempDir) -> Gateway {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn prodex");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let addr: String = addr
                        .chars()
                        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                        .collect();
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(20)).ok().and_then(|a| a.parse().ok()) {
            Some(a) => a,
            None => {
                let _ = child.kill();
                panic!("gateway did not start; stderr:\n{}", stderr.lock().unwrap().join("\n"));
            }
        };
        let mut gw = Gateway { child, addr, home, stderr };
        if gw.addr.ip().is_unspecified() {
            gw.addr.set_ip([127, 0, 0, 1].into());
        }
        gw.wait_ready();
        gw
    }

    /// Polls `/readyz` until it answers 200 (never sleeps a fixed time).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = client::try_request(self.addr, "GET", "/readyz", &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "gateway never became ready");
            std::thread::yield_now();
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until the stderr log contains `needle` (bounded).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr_text();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "log never contained {needle:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "gateway did not exit in {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn get(&self, path: &str) -> client::Response {
        client::request(self.addr, "GET", path, &[], b"")
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> client::Response {
        client::request(self.addr, "GET", path, headers, b"")
    }

    pub fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> client::Response {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        client::request(self.addr, "POST", path, &h, body.to_string().as_bytes())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
