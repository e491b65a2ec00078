//! Startup and shutdown of `prodex gateway`: configure may before anything spawns, open the logs,
//! bind, serve, and on SIGTERM/SIGINT drain: close the listener, turn `/readyz` 503, give in-flight
//! requests (streams included) up to the grace period, flush the logs, exit 0.
//!
//! Threads this process owns: may's workers (request coroutines), the DNS lookup pool, the log
//! writer, and one signal thread running a tokio current-thread runtime (tokio never touches a may
//! worker). The main thread only waits for the shutdown signal and then for the drain.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::config::Config;
use crate::http::server::{self, Limits};
use crate::keyring::{self, Keyring};
use crate::lifecycle::Lifecycle;
use crate::logs;
use crate::router::Gateway;
use crate::state::{Parts, Shared};
use crate::store::Store;
use crate::upstream::Upstream;

/// Coroutine stack size in words (256 KiB): one ureq call overflows may's 32 KiB default
/// (runtime.md §0.3); stacks are committed lazily, so this does not cost RSS up front.
const STACK_WORDS: usize = 0x8000;

/// Coroutines may keeps ready for reuse. may pre-creates its whole pool at startup (1,000 by
/// default, ~9 MB resident while idle); 256 covers the connection churn of a busy node, and busier
/// moments create coroutines on demand.
const COROUTINE_POOL: usize = 256;

/// A panic inside the coroutine runtime itself (not in a handler, whose panic ends only its
/// coroutine) leaves a worker thread dead and the connections it held stalled until their
/// timeouts: a degraded process that looks alive. It aborts instead, so the supervisor
/// (systemd, Kubernetes, compose `restart:`) starts a whole one; the panic is printed first.
fn abort_on_runtime_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let in_runtime = info.location().is_some_and(|l| {
            let f = l.file().replace('\\', "/");
            f.contains("/may-") || f.contains("/may_queue-") || f.contains("/generator-")
        });
        if in_runtime {
            eprintln!(
                "prodex gateway: the coroutine runtime panicked; aborting so the supervisor restarts the process"
            );
            logs::flush();
            std::process::abort();
        }
    }));
}

/// Runs the gateway until a shutdown signal; returns the process exit code.
#[must_use]
pub fn run(config: Config) -> ExitCode {
    // may must be configured before anything spawns a coroutine.
    may::config().set_workers(config.workers).set_stack_size(STACK_WORDS).set_pool_capacity(COROUTINE_POOL);
    abort_on_runtime_panic();
    let started_at_ms = clock::unix_ms();
    let log_path = match logs::init(&config.logs) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("prodex gateway: {e}");
            return ExitCode::from(1);
        }
    };
    log::info!("prodex gateway {} starting; run log {}", env!("CARGO_PKG_VERSION"), log_path.display());
    for notice in &config.notices {
        log::warn!("{notice}");
    }
    let store = match crate::store::open(&config, config.state.backend) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            logs::flush();
            return ExitCode::from(1);
        }
    };
    let keyring = Arc::new(Keyring::default());
    if let Err(e) = keyring::sync_policy_keys(store.as_ref(), &config.virtual_keys, clock::unix_ms()) {
        log::error!("{e}");
        logs::flush();
        return ExitCode::from(2);
    }
    if let Err(e) = keyring.refresh(store.as_ref()) {
        log::error!("cannot load keys from the {} store: {e}", store.backend());
        logs::flush();
        return ExitCode::from(1);
    }
    log::info!("state: {} store; {} virtual key(s) loaded", store.backend(), keyring.len());
    match keyring::carry_tenant_pools(store.as_ref(), clock::unix_ms()) {
        Ok(0) => {}
        Ok(n) => log::info!("budget pools: {n} tenant pool(s) started from their pre-tenant counters"),
        Err(e) => log::warn!("budget pools: carrying pre-tenant counters failed: {e}"),
    }
    match config.auth_status(keyring.len()) {
        Ok(status) if config.auth_required(keyring.len()) => log::info!("{status}"),
        Ok(status) => log::warn!("{status}"),
        Err(e) => {
            log::error!("{e}");
            logs::flush();
            return ExitCode::from(2);
        }
    }
    raise_fd_limit();
    let listener = match bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", config.listen);
            logs::flush();
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().unwrap_or(config.listen);
    if let Some(e) = self_loop(&config, local) {
        log::error!("{e}");
        logs::flush();
        return ExitCode::from(2);
    }
    let limits = Limits {
        head: server_head_limits(),
        max_body_bytes: config.server.max_body_bytes,
        header_timeout: config.server.header_timeout,
        idle_timeout: config.server.idle_timeout,
        io_timeout: config.server.io_timeout,
        body_timeout: config.server.body_timeout,
        max_connections: config.server.max_connections,
    };
    let grace = config.shutdown_grace;
    let lifecycle = Arc::new(Lifecycle::default());
    let upstream = Upstream::new(&config.upstream, &config.media);
    let default_provider = config.default_provider.clone();
    keyring.spawn_refresher(Arc::clone(&store));
    spawn_state_probe(Arc::clone(&store), Arc::clone(&lifecycle));
    crate::retention::spawn(Arc::clone(&store), config.ledger.retention_days, config.audit.retention_days);
    let parts = Parts { config, upstream, lifecycle: Arc::clone(&lifecycle), store: Arc::clone(&store), keyring };
    let shared = Arc::new(Shared::new(parts, started_at_ms));
    crate::admin::metrics::spawn_restore(&shared, crate::clock::unix_ms());
    spawn_spool(Arc::clone(&shared));
    if let Some(p) = shared.config.provider(&default_provider) {
        log::info!(
            "default provider {} ({}) at {} with {} key(s)",
            p.name,
            p.kind.as_str(),
            crate::config::redact_url(&p.base_url),
            p.api_keys.len()
        );
    }
    let _accept = server::spawn(listener, limits, Arc::new(Gateway { shared }), Arc::clone(&lifecycle));
    log::info!("prodex gateway listening on http://{local}");

    let signal = wait_for_signal();
    log::info!("{signal} received: draining (grace {} s)", grace.as_secs());
    lifecycle.draining.store(true, Ordering::Release);
    wake_listener(local);
    let deadline = clock::now() + grace;
    while lifecycle.in_flight.load(Ordering::Acquire) > 0 && clock::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = lifecycle.in_flight.load(Ordering::Acquire);
    if left > 0 {
        log::warn!("grace period over with {left} request(s) still in flight; exiting");
    } else {
        log::info!("drained; exiting");
    }
    if let Err(e) = store.flush() {
        log::error!("flushing the state store failed: {e}");
    }
    logs::flush();
    ExitCode::SUCCESS
}

/// A provider whose base URL is this gateway's own listener would send every call back to itself.
#[must_use]
pub fn self_loop(config: &Config, listen: std::net::SocketAddr) -> Option<String> {
    let p = config.providers.iter().find(|p| crate::upstream::points_at(&p.base_url, listen))?;
    Some(format!(
        "provider {}: base URL {} is this gateway's own listener {listen}: every call would loop back \
         (is OPENAI_BASE_URL set for the SDK in this shell?)",
        p.name,
        crate::config::redact_url(&p.base_url)
    ))
}

/// Every second: retries failed finishes until the store takes them, and writes the summaries of
/// audit denial windows that ended.
fn spawn_spool(shared: Arc<Shared>) {
    may::go!(move || loop {
        may::coroutine::sleep(Duration::from_secs(1));
        crate::admin::auth::flush_denials(&shared);
        let waiting = shared.spooled();
        if waiting > 0 {
            let landed = shared.drain_spool();
            if landed > 0 {
                log::warn!(
                    "recorded {landed} ledger row(s) whose first write had failed; {} still waiting",
                    waiting - landed
                );
            }
        }
    });
}

/// How long a readiness ping may take: a hung backend (SIGSTOPped, a black-holed network) is not
/// ready.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Pings the state backend every second (every 250 ms while it is down); `/readyz` reports what
/// it last saw, and a call's successful state operation (`Shared::note_state_ok`) marks it ready
/// at once. A failed ping counts only if nothing succeeded since it was sent.
fn spawn_state_probe(store: Arc<dyn Store>, lifecycle: Arc<Lifecycle>) {
    may::go!(move || loop {
        let (tx, rx) = may::sync::mpsc::channel();
        let probe = Arc::clone(&store);
        let sent = clock::unix_ms();
        may::go!(move || {
            let _ = tx.send(probe.ping().is_ok());
        });
        let failed = !rx.recv_timeout(PING_TIMEOUT).unwrap_or(false);
        let down = failed && lifecycle.state_ok_at.load(Ordering::Acquire) < sent;
        let was = lifecycle.state_down.swap(down, Ordering::AcqRel);
        if down != was {
            if down {
                log::error!("state backend {} is not answering: /readyz is 503", store.backend());
            } else {
                log::info!("state backend {} answers again", store.backend());
            }
        }
        may::coroutine::sleep(if down { Duration::from_millis(250) } else { Duration::from_secs(1) });
    });
}

fn server_head_limits() -> crate::http::codec::HeadLimits {
    crate::http::codec::HeadLimits::default()
}

/// Blocks the calling (main) thread until SIGTERM or SIGINT; returns the signal's name.
fn wait_for_signal() -> &'static str {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("prodex-signals".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build();
        let Ok(runtime) = runtime else {
            let _ = tx.send("signal setup failure");
            return;
        };
        let name = runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return "signal setup failure";
            };
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        });
        let _ = tx.send(name);
    });
    if spawned.is_err() {
        return "signal thread failure";
    }
    rx.recv().unwrap_or("signal channel closed")
}

/// Wakes the accept loop (blocked in `accept`) so it sees the draining flag and closes the listener.
fn wake_listener(local: std::net::SocketAddr) {
    let mut target = local;
    if target.ip().is_unspecified() {
        target.set_ip(if target.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let _ = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1));
}

/// Binds the listening socket. std's bind (SO_REUSEADDR only) instead of may's, which also sets
/// SO_REUSEPORT and would let a second gateway silently share the port with this one.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<may::net::TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let std_listener = std::net::TcpListener::bind(addr)?;
    let fd = std_listener.into_raw_fd();
    // SAFETY: `fd` is a listening socket we own; listen() again only raises the accept backlog,
    // and from_raw_fd takes ownership of it exactly once.
    unsafe {
        libc::listen(fd, 4096);
        Ok(may::net::TcpListener::from_raw_fd(fd))
    }
}

/// Raises the soft open-files limit to the hard limit: every connection is a descriptor.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
