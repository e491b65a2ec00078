//! Dedicated database servers for tests that stop and restart them (R4): a Redis and a
//! PostgreSQL of their own, in temp dirs on free ports, so the shared servers other tests use are
//! never disturbed. A missing server binary fails the test loudly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() != up {
        assert!(Instant::now() < deadline, "port {port} never became {}", if up { "open" } else { "closed" });
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server a test can take down and bring back.
pub trait Outage {
    fn stop(&mut self);
    fn resume(&mut self);
}

impl Outage for RedisServer {
    fn stop(&mut self) {
        RedisServer::stop(self);
    }
    fn resume(&mut self) {
        RedisServer::resume(self);
    }
}

impl Outage for PgServer {
    fn stop(&mut self) {
        PgServer::stop(self);
    }
    fn resume(&mut self) {
        PgServer::resume(self);
    }
}

pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// With TLS: (certificate, key) files; the server then listens with TLS only.
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut s = RedisServer { port: free_port(), dir: TempDir::new("redis-own"), child: None, tls: None };
        s.resume();
        s
    }

    /// A Redis that speaks only TLS with this certificate (on 127.0.0.1 and 127.0.0.2).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> RedisServer {
        let tls = Some((cert.to_path_buf(), key.to_path_buf()));
        let mut s = RedisServer { port: free_port(), dir: TempDir::new("redis-tls"), child: None, tls };
        s.resume();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port and data dir; AOF keeps the data across restarts.
    pub fn resume(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &port, "--bind", "127.0.0.1"]),
            Some((cert, key)) => cmd
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "127.0.0.2",
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key),
        };
        let child = cmd
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir.0)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is required (apt-get install redis-server)");
        self.child = Some(child);
        wait_for_port(self.port, true);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_for_port(self.port, false);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct PgServer {
    pub port: u16,
    dir: TempDir,
    bin: String,
    running: bool,
    /// Extra `-c name=value` settings.
    settings: Vec<String>,
}

fn as_postgres(program: &str) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries are required (apt-get install postgresql)")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("no initdb under /usr/lib/postgresql")
            .display()
            .to_string();
        let dir = TempDir::new("pg-own");
        let data = dir.0.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let _ = Command::new("chown").args(["-R", "postgres"]).arg(&dir.0).status();
        let _ = Command::new("chmod").arg("755").arg(&dir.0).status();
        let ok = as_postgres(&format!("{bin}/initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        let mut s = PgServer { port: free_port(), dir, bin, running: false, settings: Vec::new() };
        s.resume();
        s
    }

    /// A Postgres with TLS on (this certificate and key), listening on 127.0.0.1 and 127.0.0.2.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> PgServer {
        let mut s = PgServer::start();
        s.stop();
        let data = s.dir.0.join("data");
        std::fs::copy(cert, data.join("server.crt")).unwrap();
        std::fs::copy(key, data.join("server.key")).unwrap();
        let _ =
            Command::new("chown").arg("postgres").arg(data.join("server.crt")).arg(data.join("server.key")).status();
        let _ = Command::new("chmod").arg("600").arg(data.join("server.key")).status();
        s.settings =
            ["ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key", "listen_addresses=127.0.0.1,127.0.0.2"]
                .iter()
                .map(|v| (*v).to_string())
                .collect();
        s.resume();
        s
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn resume(&mut self) {
        let data = self.dir.0.join("data");
        let mut opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, data.display());
        for setting in &self.settings {
            opts.push_str(&format!(" -c {setting}"));
        }
        let ok = as_postgres(&format!("{}/pg_ctl", self.bin))
            .arg("-D")
            .arg(&data)
            .args(["-w", "-l"])
            .arg(data.join("server.log"))
            .args(["-o", &opts, "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl start failed");
        self.running = true;
        wait_for_port(self.port, true);
    }

    pub fn stop(&mut self) {
        if self.running {
            let data = self.dir.0.join("data");
            let _ = as_postgres(&format!("{}/pg_ctl", self.bin))
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .status();
            self.running = false;
            wait_for_port(self.port, false);
        }
    }
}

impl PgServer {
    /// Sends `sig` to the postmaster and every backend it forked (SIGSTOP freezes the server
    /// with its sockets open: a hung database, not a stopped one).
    pub fn signal_all(&self, sig: i32) {
        let pidfile = std::fs::read_to_string(self.dir.0.join("data/postmaster.pid")).unwrap();
        let postmaster: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in pids {
            // SAFETY: signalling processes of the server this test started.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
