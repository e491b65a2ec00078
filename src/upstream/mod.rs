//! The upstream client: ureq `Agent`s on may sockets (`transport.rs`), rustls on top, a caching
//! resolver that never blocks a worker (`resolver.rs`), 16 KiB buffers, no gzip, no redirects,
//! upstream statuses returned as responses (never as errors), and `HTTPS_PROXY`/`NO_PROXY` honoured.
//!
//! One agent (one idle-connection pool) per may worker thread: ureq's pool is a mutex-guarded list
//! that every call scans, so one shared pool made the workers contend and scan every idle
//! connection of the process on each call. A coroutine uses the pool of the worker it starts on.
//!
//! Invariants: a call never runs on a std socket; an error is classified once here into the
//! `Failure` the proxy maps to 502/504 and uses to decide whether a retry is allowed.

mod fetch;
mod resolver;
mod transport;

use std::io::Read;
use std::time::Duration;

use ureq::http::{self, Request, Response};
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, RustlsConnector};
use ureq::{Agent, Body, Proxy, SendBody};

use crate::config::{MediaConfig, UpstreamConfig};
pub use fetch::{FetchError, Fetcher};
use resolver::CachingResolver;
use transport::MayTcpConnector;

/// Why an upstream call failed before a response head arrived.
#[derive(Debug)]
pub enum Failure {
    /// Could not connect (refused, unreachable, DNS, TLS handshake). Safe to retry.
    Connect(String),
    /// No response head in time.
    Timeout,
    /// The connection broke or the peer spoke something that is not HTTP.
    Broken(String),
}

impl Failure {
    fn classify(e: ureq::Error) -> Self {
        match e {
            ureq::Error::Timeout(_) => Self::Timeout,
            ureq::Error::HostNotFound => Self::Connect("host not found".into()),
            ureq::Error::ConnectionFailed => Self::Connect("connection failed".into()),
            ureq::Error::Tls(what) => Self::Connect(format!("TLS: {what}")),
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable => Self::Connect(io.kind().to_string()),
                std::io::ErrorKind::TimedOut => Self::Timeout,
                _ => Self::Broken(io.kind().to_string()),
            },
            ureq::Error::Rustls(e) => Self::Connect(format!("TLS: {e}")),
            other => Self::Broken(other.to_string()),
        }
    }
}

/// The request body sent upstream.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Streamed from the client as it arrives (multipart uploads and other passthrough bodies).
    Reader(&'a mut dyn Read),
}

/// The shared upstream client. Cheap to clone (the agents are reference-counted).
#[derive(Clone)]
pub struct Upstream {
    agents: std::sync::Arc<[Agent]>,
    /// The media fetcher, when `[gateway.media] fetch_remote` is on.
    fetcher: Option<Fetcher>,
}

thread_local! {
    /// The agent shard of this OS thread (a may worker), assigned on first use.
    static SHARD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Hands out shards to threads in turn.
static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Upstream {
    /// Builds one agent per may worker. Must run after may is configured (the DNS pool uses may
    /// channels and the shard count is the worker count).
    #[must_use]
    pub fn new(cfg: &UpstreamConfig, media: &MediaConfig) -> Self {
        let shards = may::config().get_workers().max(1);
        let resolver = CachingResolver::start();
        let agents = (0..shards)
            .map(|_| {
                let config = Agent::config_builder()
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .input_buffer_size(16 * 1024)
                    .output_buffer_size(16 * 1024)
                    .max_idle_connections(1024usize.div_ceil(shards))
                    .max_idle_connections_per_host(cfg.max_idle_per_host.div_ceil(shards))
                    .max_idle_age(Duration::from_secs(60))
                    .timeout_connect(Some(cfg.connect_timeout))
                    .timeout_per_read(Some(cfg.idle_timeout))
                    .timeout_per_write(Some(cfg.idle_timeout))
                    .proxy(Proxy::try_from_env())
                    .user_agent(concat!("prodex-gateway/", env!("CARGO_PKG_VERSION")))
                    .build();
                let connector =
                    ().chain(ConnectProxyConnector::default()).chain(MayTcpConnector).chain(RustlsConnector::default());
                Agent::with_parts(config, connector, resolver.clone())
            })
            .collect();
        let fetcher = media.fetch_remote.then(|| Fetcher::new(media, resolver));
        Self { agents, fetcher }
    }

    /// The media fetcher (`None`: remote media URLs are refused).
    #[must_use]
    pub fn fetcher(&self) -> Option<&Fetcher> {
        self.fetcher.as_ref()
    }

    /// The agent of the calling thread's shard.
    fn agent(&self) -> &Agent {
        let shard = SHARD.with(|s| {
            s.get().unwrap_or_else(|| {
                let mine = NEXT_SHARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                s.set(Some(mine));
                mine
            })
        });
        &self.agents[shard % self.agents.len()]
    }

    /// Sends one request and returns the response head with a body still to be read.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        payload: Payload<'_>,
    ) -> Result<UpstreamResponse, Failure> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let agent = self.agent();
        let result = match payload {
            Payload::Empty => builder.body(()).map(|r| agent.run(r)),
            Payload::Bytes(b) => builder.body(b).map(|r| agent.run(r)),
            Payload::Reader(r) => builder.body(SendBody::from_reader(r)).map(|r| agent.run(r)),
        };
        match result {
            Ok(Ok(resp)) => Ok(UpstreamResponse(resp)),
            Ok(Err(ureq::Error::HostNotFound)) => Err(Failure::Connect(format!("cannot resolve {}", host_of(url)))),
            Ok(Err(e)) => Err(Failure::classify(e)),
            Err(e) => Err(Failure::Broken(format!("invalid upstream request: {e}"))),
        }
    }
}

/// The host of `url` (no scheme, userinfo, port or path), for error messages.
fn host_of(url: &str) -> &str {
    let host_port = host_port(url);
    if host_port.starts_with('[') {
        return host_port.split_once(']').map_or(host_port, |(h, _)| h).trim_start_matches('[');
    }
    host_port.split(':').next().unwrap_or(host_port)
}

/// The `host[:port]` of `url`: no scheme, userinfo, path, query or fragment.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Whether `url` reaches the gateway's own `listen` address: the same port on a loopback address,
/// on the listener's own address, or on any address when it listens on all of them. Resolves
/// names with a blocking lookup: only for startup and `check`, never on a may worker.
#[must_use]
pub fn points_at(url: &str, listen: std::net::SocketAddr) -> bool {
    use std::net::ToSocketAddrs;
    let Some((scheme, _)) = url.split_once("://") else { return false };
    let host_port = host_port(url);
    let default_port = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
            (h, p.parse().unwrap_or(0))
        }
        _ => (host_port, default_port),
    };
    if port != listen.port() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(addrs) = (host, port).to_socket_addrs() else { return false };
    addrs.into_iter().any(|a| {
        let ip = a.ip();
        ip.is_loopback() || ip.is_unspecified() || ip == listen.ip() || listen.ip().is_unspecified() && ip.is_loopback()
    })
}

/// An upstream response: its head, with the body still to be read. ureq's types stop here.
pub struct UpstreamResponse(Response<Body>);

impl UpstreamResponse {
    #[must_use]
    pub fn status(&self) -> u16 {
        self.0.status().as_u16()
    }

    /// A header's value, when it is text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The headers worth passing on to the client (`relayed_headers`).
    #[must_use]
    pub fn relayed_headers(&self) -> Vec<(String, String)> {
        relayed_headers(self.0.headers())
    }

    /// Whether the body is an SSE stream.
    #[must_use]
    pub fn is_event_stream(&self) -> bool {
        self.header("content-type").is_some_and(|ct| ct.starts_with("text/event-stream"))
    }

    /// The body as a reader with no size cap (streams can be long).
    pub fn into_reader(self) -> impl Read {
        self.0.into_body().into_with_config().limit(u64::MAX).reader()
    }

    /// The whole body, at most `limit` bytes.
    pub fn read_to_vec(self, limit: u64) -> Result<Vec<u8>, String> {
        self.0.into_body().into_with_config().limit(limit).read_to_vec().map_err(|e| e.to_string())
    }
}

/// Upstream response headers worth passing to the client: everything but framing, hop-by-hop
/// headers and anything that pretends to be ours.
#[must_use]
pub fn relayed_headers(head: &http::HeaderMap) -> Vec<(String, String)> {
    head.iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            !matches!(
                n,
                "connection"
                    | "keep-alive"
                    | "transfer-encoding"
                    | "content-length"
                    | "te"
                    | "trailer"
                    | "upgrade"
                    | "proxy-authenticate"
                    | "set-cookie"
                    | "alt-svc"
            ) && !n.starts_with("x-prodex-")
        })
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str().to_string(), v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{host_of, points_at};

    #[test]
    fn a_base_url_on_our_own_listener_is_a_loop() {
        let listen: std::net::SocketAddr = "127.0.0.1:4003".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:4000".parse().unwrap();
        for (url, at, want) in [
            ("http://127.0.0.1:4003/v1", listen, true),
            ("http://localhost:4003/v1", listen, true),
            ("http://127.0.0.2:4003", listen, true),
            ("http://[::1]:4003/v1", listen, true),
            ("http://user:pw@127.0.0.1:4003/v1", listen, true),
            ("http://127.0.0.1:4004/v1", listen, false),
            ("http://127.0.0.1/v1", listen, false),
            ("http://127.0.0.1:4000/v1", any, true),
            ("http://0.0.0.0:4000/v1", any, true),
            ("https://10.1.2.3:4000/v1", any, false),
            ("http://no-such-host.invalid:4003/v1", listen, false),
            ("not a url", listen, false),
        ] {
            assert_eq!(points_at(url, at), want, "{url} vs {at}");
        }
    }

    #[test]
    fn host_of_drops_everything_but_the_host() {
        for (url, host) in [
            ("https://api.openai.com/v1/chat/completions", "api.openai.com"),
            ("http://no-such-host.invalid/v1", "no-such-host.invalid"),
            ("http://user:pa55@host.example:8080/v1", "host.example"),
            ("http://[::1]:4000/v1", "::1"),
            ("http://10.0.0.1", "10.0.0.1"),
        ] {
            assert_eq!(host_of(url), host, "{url}");
        }
    }
}
