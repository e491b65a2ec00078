//! Logging: simplelog formats records (text) or a small JSON formatter does (json); a dedicated
//! writer thread puts every line on stderr and in the run's file
//! `$PRODEX_RUNTIME_LOG_DIR/prodex-runtime-<pid>-<unix_ms>.log`, whose path is kept in
//! `prodex-runtime-latest.path`; audit entries also go, as JSON lines, to `prodex-audit.log` there.
//! A run log past `max_bytes` continues in a new file (the pointer follows), and
//! `prodex-audit.log` moves to `prodex-audit.log.1`…`.5`; logs of runs beyond `keep_runs` are
//! removed, and of each run only its newest `SEGMENTS_PER_RUN` files stay.
//! Every file is created 0600 in a 0700 directory: logs name keys, tenants and callers.
//!
//! Invariants: logging never blocks a may worker (lines go through a bounded channel; when it is
//! full, lines are dropped and counted rather than stalling requests); callers never log secrets,
//! prompts or completions (the access line carries ids, counts and timings only).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};
use simplelog::{CombinedLogger, ConfigBuilder, SharedLogger, WriteLogger};

use crate::clock;
use crate::config::{LogConfig, LogFormat};
use crate::core::ledger::AccessValue;

/// The run's line format, once `init` ran (the access line is written as fields in JSON).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// One access line (target `access`, level info): in JSON mode each field is a JSON member; in
/// text mode the line is `name=value` pairs, an absent value as `-`, written into one buffer.
pub fn access(fields: &[(&'static str, AccessValue<'_>)]) {
    use std::fmt::Write as _;
    if !log::log_enabled!(target: "access", log::Level::Info) {
        return;
    }
    if FORMAT.get() == Some(&LogFormat::Json) {
        let mut line = serde_json::Map::new();
        line.insert("ts".into(), crate::core::time::format_rfc3339(clock::unix_ms()).into());
        line.insert("level".into(), "INFO".into());
        line.insert("target".into(), "access".into());
        for (k, v) in fields {
            let value = match *v {
                AccessValue::Str(s) => serde_json::Value::from(s),
                AccessValue::Num(n) => serde_json::Value::from(n),
                AccessValue::Bool(b) => serde_json::Value::from(b),
                AccessValue::None => serde_json::Value::Null,
            };
            line.insert((*k).into(), value);
        }
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        enqueue(bytes);
        return;
    }
    let mut text = String::with_capacity(512);
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        let _ = match *v {
            AccessValue::Str(s) => write!(text, "{k}={s}"),
            AccessValue::Num(n) => write!(text, "{k}={n}"),
            AccessValue::Bool(b) => write!(text, "{k}={b}"),
            AccessValue::None => write!(text, "{k}=-"),
        };
    }
    log::info!(target: "access", "{text}");
}

/// Lines that may wait for the writer thread before new ones are dropped.
const QUEUE_LINES: usize = 8_192;

enum Msg {
    Line(Vec<u8>),
    /// A JSON line for `prodex-audit.log` only (not stderr).
    Audit(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

static QUEUE: OnceLock<SyncSender<Msg>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn enqueue(line: Vec<u8>) {
    if let Some(tx) = QUEUE.get() {
        match tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Appends one audit entry (a JSON object, no newline) to `prodex-audit.log`.
pub fn audit(mut json: Vec<u8>) {
    json.push(b'\n');
    if let Some(tx) = QUEUE.get() {
        if tx.try_send(Msg::Audit(json)).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Appends one audit entry (a JSON object, no newline) to `dir/prodex-audit.log` directly, for
/// processes that run no log writer (the `keys` CLI). One `write` of one line in append mode, so
/// it interleaves whole lines with a running gateway's writer.
pub fn audit_to_file(dir: &Path, mut json: Vec<u8>) -> io::Result<()> {
    private_dir(dir)?;
    json.push(b'\n');
    private_append(&dir.join(AUDIT_LOG))?.write_all(&json)
}

/// Creates `dir` (mode 0700 when new).
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Opens `path` for appending, created with mode 0600: logs name keys, tenants and callers.
fn private_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// A `Write` that collects one formatted record and queues it at each newline.
#[derive(Default)]
struct LineSink {
    buf: Vec<u8>,
}

impl Write for LineSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        for &b in data {
            self.buf.push(b);
            if b == b'\n' {
                enqueue(std::mem::take(&mut self.buf));
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// JSON-lines formatter (`PRODEX_RUNTIME_LOG_FORMAT=json`).
struct JsonLogger {
    level: LevelFilter,
    config: simplelog::Config,
}

impl Log for JsonLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) || record.target().starts_with("may") {
            return;
        }
        let line = serde_json::json!({
            "ts": crate::core::time::format_rfc3339(clock::unix_ms()),
            "level": record.level().as_str(),
            "target": record.target(),
            "message": record.args().to_string(),
        });
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        enqueue(bytes);
    }

    fn flush(&self) {}
}

impl SharedLogger for JsonLogger {
    fn level(&self) -> LevelFilter {
        self.level
    }
    fn config(&self) -> Option<&simplelog::Config> {
        Some(&self.config)
    }
    fn as_log(self: Box<Self>) -> Box<dyn Log> {
        Box::new(*self)
    }
}

/// Opens this run's log file, starts the writer thread and installs the logger.
/// Returns the run log's path.
pub fn init(cfg: &LogConfig) -> Result<PathBuf, String> {
    private_dir(&cfg.dir).map_err(|e| format!("cannot create log directory {}: {e}", cfg.dir.display()))?;
    prune_old_runs(&cfg.dir, cfg.keep_runs.saturating_sub(1));
    let files = Files::open(cfg)?;
    let path = files.run_path.clone();
    let (tx, rx) = sync_channel(QUEUE_LINES);
    let _ = QUEUE.set(tx);
    std::thread::Builder::new()
        .name("prodex-log".into())
        .spawn(move || {
            crate::background::lower_this_thread();
            writer(&rx, files);
        })
        .map_err(|e| format!("cannot start the log thread: {e}"))?;

    // may logs every epoll registration at info; only its warnings matter to operators.
    let config = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Error)
        .add_filter_ignore_str("may")
        .build();
    let inner: Box<dyn Log> = match cfg.format {
        LogFormat::Text => WriteLogger::new(cfg.level, config.clone(), LineSink::default()),
        LogFormat::Json => Box::new(JsonLogger { level: cfg.level, config: config.clone() }),
    };
    let _ = FORMAT.set(cfg.format);
    let logger = Box::new(Capped { level: cfg.level, inner, config });
    CombinedLogger::init(vec![logger]).map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(path)
}

/// The most a third-party crate may log, whatever `PRODEX_LOG` says: their debug and trace
/// output carries wire bytes (ureq_proto hex-dumps every request, credential headers included),
/// so only their warnings and errors reach the run log.
const THIRD_PARTY_MAX: LevelFilter = LevelFilter::Warn;

/// Whether `target` is this crate's own (module paths under `prodex`, or the `access` line).
fn own_target(target: &str) -> bool {
    target == "prodex" || target.starts_with("prodex::") || target == "access"
}

/// The level a record of `target` is allowed at.
fn level_for(target: &str, configured: LevelFilter) -> LevelFilter {
    if own_target(target) {
        configured
    } else {
        configured.min(THIRD_PARTY_MAX)
    }
}

/// Applies the per-target cap in front of the formatter.
struct Capped {
    level: LevelFilter,
    inner: Box<dyn Log>,
    config: simplelog::Config,
}

impl Log for Capped {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= level_for(metadata.target(), self.level) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() <= level_for(record.target(), self.level) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

impl SharedLogger for Capped {
    fn level(&self) -> LevelFilter {
        self.level
    }
    fn config(&self) -> Option<&simplelog::Config> {
        Some(&self.config)
    }
    fn as_log(self: Box<Self>) -> Box<dyn Log> {
        self
    }
}

/// How often the writer thread drains the queue. Polling (instead of blocking on the channel)
/// means a logging coroutine never pays for waking this thread: sending is a lock-free push.
const WRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// The files the writer thread owns, and how much it has written to each since it opened them.
struct Files {
    dir: PathBuf,
    keep_runs: usize,
    max_bytes: u64,
    run: File,
    run_path: PathBuf,
    run_bytes: u64,
    audit: File,
    audit_bytes: u64,
}

impl Files {
    fn open(cfg: &LogConfig) -> Result<Self, String> {
        let (run, run_path) = new_run_file(&cfg.dir)?;
        let audit_path = cfg.dir.join(AUDIT_LOG);
        let audit =
            private_append(&audit_path).map_err(|e| format!("cannot open audit log {}: {e}", audit_path.display()))?;
        let audit_bytes = audit.metadata().map_or(0, |m| m.len());
        Ok(Self {
            dir: cfg.dir.clone(),
            keep_runs: cfg.keep_runs,
            max_bytes: cfg.max_bytes,
            run,
            run_path,
            run_bytes: 0,
            audit,
            audit_bytes,
        })
    }

    fn write_run(&mut self, bytes: &[u8]) {
        if self.run_bytes > 0 && self.run_bytes + bytes.len() as u64 > self.max_bytes {
            match new_run_file(&self.dir) {
                Ok((file, path)) => {
                    let note = format!("log continues in {}\n", path.display());
                    let _ = self.run.write_all(note.as_bytes());
                    (self.run, self.run_path, self.run_bytes) = (file, path, 0);
                    prune_old_runs(&self.dir, self.keep_runs.max(1));
                }
                Err(e) => {
                    let _ = io::stderr().lock().write_all(format!("log rotation failed: {e}\n").as_bytes());
                }
            }
        }
        let _ = self.run.write_all(bytes);
        self.run_bytes += bytes.len() as u64;
    }

    /// Past `max_bytes`, `prodex-audit.log` becomes `.1` (`.1` becomes `.2`, … up to
    /// `AUDIT_GENERATIONS`; the oldest is dropped: the store keeps the whole audit trail).
    fn write_audit(&mut self, bytes: &[u8]) {
        if self.audit_bytes > 0 && self.audit_bytes + bytes.len() as u64 > self.max_bytes {
            let path = self.dir.join(AUDIT_LOG);
            for n in (1..AUDIT_GENERATIONS).rev() {
                let _ = fs::rename(
                    self.dir.join(format!("{AUDIT_LOG}.{n}")),
                    self.dir.join(format!("{AUDIT_LOG}.{}", n + 1)),
                );
            }
            let _ = fs::rename(&path, self.dir.join(format!("{AUDIT_LOG}.1")));
            if let Ok(f) = private_append(&path) {
                self.audit = f;
            }
            // Reset even when the new file could not be opened (the old handle keeps writing to
            // `.1`): rotating again on every batch would push every generation off the end.
            self.audit_bytes = 0;
        }
        let _ = self.audit.write_all(bytes);
        self.audit_bytes += bytes.len() as u64;
    }
}

const AUDIT_LOG: &str = "prodex-audit.log";
/// Rotated audit files kept beside the live one.
const AUDIT_GENERATIONS: usize = 5;

/// Creates a new run log (0600) and points `prodex-runtime-latest.path` at it.
fn new_run_file(dir: &Path) -> Result<(File, PathBuf), String> {
    let path = dir.join(format!("prodex-runtime-{}-{}.log", std::process::id(), clock::unix_ms()));
    let file = private_append(&path).map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
    let latest = dir.join("prodex-runtime-latest.path");
    let tmp = dir.join(format!(".prodex-runtime-latest.path.{}", std::process::id()));
    private_append(&tmp)
        .and_then(|mut f| f.set_len(0).and_then(|()| f.write_all(format!("{}\n", path.display()).as_bytes())))
        .and_then(|()| fs::rename(&tmp, &latest))
        .map_err(|e| format!("cannot write {}: {e}", latest.display()))?;
    Ok((file, path))
}

fn writer(rx: &Receiver<Msg>, mut files: Files) {
    let stderr = io::stderr();
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut audit_batch = Vec::new();
    let mut reported = 0u64;
    loop {
        let mut acks = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(Msg::Line(line)) => batch.extend_from_slice(&line),
                Ok(Msg::Audit(line)) => audit_batch.extend_from_slice(&line),
                Ok(Msg::Flush(ack)) => acks.push(ack),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
            if batch.len() >= 256 * 1024 {
                break;
            }
        }
        let dropped = DROPPED.load(Ordering::Relaxed);
        if dropped > reported {
            batch.extend_from_slice(format!("log queue full: {} lines dropped\n", dropped - reported).as_bytes());
            reported = dropped;
        }
        if !batch.is_empty() {
            let _ = stderr.lock().write_all(&batch);
            files.write_run(&batch);
            batch.clear();
        }
        if !audit_batch.is_empty() {
            files.write_audit(&audit_batch);
            audit_batch.clear();
        }
        for ack in acks {
            let _ = ack.send(());
        }
        std::thread::sleep(WRITE_EVERY);
    }
}

/// Waits until every line logged so far has been written (used at shutdown).
pub fn flush() {
    if let Some(tx) = QUEUE.get() {
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        if tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// Segments of one run's log kept at most (each up to `max_bytes`).
const SEGMENTS_PER_RUN: usize = 5;

/// Removes run logs so that at most `keep` runs remain (a run is one process: its
/// `prodex-runtime-<pid>-<ms>.log` segments), each with at most `SEGMENTS_PER_RUN` segments.
fn prune_old_runs(dir: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let files: Vec<(u32, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (pid, stamp) = name.strip_prefix("prodex-runtime-")?.strip_suffix(".log")?.split_once('-')?;
            Some((pid.parse().ok()?, stamp.parse().ok()?, e.path()))
        })
        .collect();
    for path in runs_to_remove(files, keep, SEGMENTS_PER_RUN) {
        let _ = fs::remove_file(path);
    }
}

/// Of `(pid, stamp, path)` segments, those to remove: runs are ordered by their newest segment,
/// the newest `keep_runs` stay, and of each the newest `keep_segments` segments.
fn runs_to_remove(mut files: Vec<(u32, u64, PathBuf)>, keep_runs: usize, keep_segments: usize) -> Vec<PathBuf> {
    files.sort_by_key(|f| std::cmp::Reverse(f.1)); // newest first
    let mut runs: Vec<u32> = Vec::new();
    let mut kept_of: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut remove = Vec::new();
    for (pid, _, path) in files {
        if !runs.contains(&pid) {
            runs.push(pid);
        }
        let kept = kept_of.entry(pid).or_default();
        let run_index = runs.iter().position(|p| *p == pid).unwrap_or(usize::MAX);
        if run_index < keep_runs && *kept < keep_segments {
            *kept += 1;
        } else {
            remove.push(path);
        }
    }
    remove
}

#[cfg(test)]
mod tests {
    use super::{level_for, runs_to_remove, LevelFilter};

    #[test]
    fn pruning_counts_runs_not_segments() {
        let seg = |pid: u32, stamp: u64| (pid, stamp, std::path::PathBuf::from(format!("{pid}-{stamp}")));
        // Run 1 (old, 2 segments), run 2 (3 segments), run 3 (the current one, 7 segments).
        let mut files = vec![seg(1, 10), seg(1, 11), seg(2, 20), seg(2, 21), seg(2, 22)];
        files.extend((0..7).map(|i| seg(3, 30 + i)));
        let mut removed: Vec<String> =
            runs_to_remove(files.clone(), 2, 5).iter().map(|p| p.display().to_string()).collect();
        removed.sort();
        // The current run's rotation keeps run 2 whole and drops only its own oldest segments.
        assert_eq!(removed, ["1-10", "1-11", "3-30", "3-31"]);
        assert_eq!(runs_to_remove(files.clone(), 3, 5).len(), 2, "three runs kept, run 3 trimmed to 5");
        assert!(runs_to_remove(files, 0, 5).len() == 12, "keep nothing");
    }

    #[test]
    fn third_party_crates_never_log_below_warn() {
        for (target, configured, allowed) in [
            ("prodex::proxy", LevelFilter::Trace, LevelFilter::Trace),
            ("access", LevelFilter::Trace, LevelFilter::Trace),
            ("prodex", LevelFilter::Debug, LevelFilter::Debug),
            ("ureq_proto::util", LevelFilter::Trace, LevelFilter::Warn),
            ("ureq", LevelFilter::Debug, LevelFilter::Warn),
            ("rustls::client", LevelFilter::Trace, LevelFilter::Warn),
            ("tokio_postgres::connection", LevelFilter::Info, LevelFilter::Warn),
            ("prodexfoo", LevelFilter::Trace, LevelFilter::Warn),
            ("redis", LevelFilter::Error, LevelFilter::Error),
        ] {
            assert_eq!(level_for(target, configured), allowed, "{target}");
        }
    }
}
