//! Name resolution that never blocks a may worker: literal IPs are used as they are, names are
//! looked up by `getaddrinfo` on a small pool of OS threads, and answers are cached.
//!
//! Invariants: a coroutine only ever waits on a may channel; a failed refresh keeps serving the
//! last good answer (stale-if-error), so a DNS blip does not take the upstream down with it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::Error;

/// How long an answer is fresh. getaddrinfo does not report TTLs; one minute bounds staleness.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// Lookup threads. Lookups are rare (one per host per minute), so two are plenty.
const LOOKUP_THREADS: usize = 2;

type Job = (String, may::sync::mpsc::Sender<std::io::Result<Vec<SocketAddr>>>);

/// The caching resolver handed to ureq.
/// Host:port → (addresses, when they were looked up).
type Cache = HashMap<String, (Vec<SocketAddr>, Instant)>;

#[derive(Debug, Clone)]
pub struct CachingResolver {
    cache: Arc<Mutex<Cache>>,
    jobs: may::sync::mpmc::Sender<Job>,
}

impl CachingResolver {
    /// Starts the lookup threads.
    #[must_use]
    pub fn start() -> Self {
        let (tx, rx) = may::sync::mpmc::channel::<Job>();
        for i in 0..LOOKUP_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("prodex-dns-{i}")).spawn(move || {
                while let Ok((host_port, reply)) = rx.recv() {
                    let result = host_port.to_socket_addrs().map(Iterator::collect);
                    let _ = reply.send(result);
                }
            });
            if let Err(e) = spawned {
                log::error!("could not start DNS thread: {e}");
            }
        }
        Self { cache: Arc::default(), jobs: tx }
    }

    fn lookup(&self, host_port: &str, timeout: Duration) -> std::io::Result<Vec<SocketAddr>> {
        let (tx, rx) = may::sync::mpsc::channel();
        self.jobs.send((host_port.to_string(), tx)).map_err(|_| std::io::Error::other("DNS pool stopped"))?;
        rx.recv_timeout(timeout)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "DNS lookup timed out"))?
    }
}

fn addrs_of(list: &[SocketAddr], resolver: &dyn Resolver) -> Result<ResolvedSocketAddrs, Error> {
    let mut out = resolver.empty();
    for a in list.iter().take(16) {
        out.push(*a);
    }
    if out.is_empty() {
        Err(Error::HostNotFound)
    } else {
        Ok(out)
    }
}

impl Resolver for CachingResolver {
    fn resolve(&self, uri: &Uri, _config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, Error> {
        let host = uri.host().ok_or(Error::HostNotFound)?;
        let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return addrs_of(&[SocketAddr::new(ip, port)], self);
        }
        let key = format!("{bare}:{port}");
        let cached = self.cache.lock().ok().and_then(|c| c.get(&key).cloned());
        if let Some((addrs, at)) = &cached {
            if at.elapsed() < FRESH_FOR {
                return addrs_of(addrs, self);
            }
        }
        let wait = timeout.not_zero().map_or(Duration::from_secs(5), |d| *d).min(Duration::from_secs(10));
        match self.lookup(&key, wait) {
            Ok(addrs) if !addrs.is_empty() => {
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(key, (addrs.clone(), clock::now()));
                }
                addrs_of(&addrs, self)
            }
            result => match cached {
                Some((addrs, _)) => {
                    log::warn!("DNS refresh for {key} failed; using the last good answer");
                    addrs_of(&addrs, self)
                }
                None => {
                    // Every lookup failure (NXDOMAIN, no resolver, a timeout) is "cannot resolve":
                    // getaddrinfo's own errors arrive as uncategorized io errors.
                    match result {
                        Err(e) => log::warn!("cannot resolve {bare}: {e}"),
                        Ok(_) => log::warn!("cannot resolve {bare}: no addresses"),
                    }
                    Err(Error::HostNotFound)
                }
            },
        }
    }
}
