//! Outbound fetches the gateway makes on a client's behalf (remote media for providers that need
//! inline data), when the operator turned them on (`[gateway.media] fetch_remote`).
//!
//! Invariants: https only; every address a connection would use is checked after resolution,
//! in the connector itself, so a name that resolves (or re-resolves) to loopback, private or
//! link-local space is refused unless `allow_private_addresses` (`core::address::is_public`);
//! no proxy (a proxy would resolve the name where the check cannot see it), no redirects, a
//! whole-fetch timeout and a size cap; like every upstream call, on may sockets. Roots: the
//! system's (`SSL_CERT_FILE` replaces them).

use std::io;
use std::time::Duration;

use ureq::unversioned::transport::{ConnectionDetails, Connector, RustlsConnector, Transport};
use ureq::Agent;

use super::resolver::CachingResolver;
use super::transport::MayTcpConnector;
use crate::config::MediaConfig;
use crate::core::address;

/// Why a fetch failed (the message names no secret and no content).
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    NotHttps,
    /// The name resolved to an address outside public unicast space.
    Private,
    TooLarge(u64),
    Status(u16),
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotHttps => write!(f, "only https URLs are fetched"),
            Self::Private => write!(f, "the URL resolves to a loopback, private or link-local address"),
            Self::TooLarge(max) => write!(f, "the media is larger than {max} bytes"),
            Self::Status(s) => write!(f, "the server answered {s}"),
            Self::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// Refuses connections to non-public addresses (the first link of the fetch connector chain).
#[derive(Debug)]
struct PublicOnly {
    allow_private: bool,
}

const REFUSED: &str = "prodex: refused a non-public address";

impl<In: Transport> Connector<In> for PublicOnly {
    type Out = In;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<In>, ureq::Error> {
        if !self.allow_private && details.addrs.iter().any(|a| !address::is_public(a.ip())) {
            return Err(ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, REFUSED)));
        }
        Ok(chained)
    }
}

/// The system's trusted roots (`SSL_CERT_FILE` replaces them, as for the state backends), else
/// Mozilla's bundle.
fn roots() -> ureq::tls::RootCerts {
    let found = rustls_native_certs::load_native_certs();
    let certs: Vec<ureq::tls::Certificate<'static>> =
        found.certs.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect();
    if certs.is_empty() {
        ureq::tls::RootCerts::WebPki
    } else {
        ureq::tls::RootCerts::new_with_certs(&certs)
    }
}

/// The media fetcher.
#[derive(Clone)]
pub struct Fetcher {
    agent: Agent,
    max_bytes: u64,
}

impl Fetcher {
    pub(super) fn new(cfg: &MediaConfig, resolver: CachingResolver) -> Self {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .https_only(true)
            .timeout_global(Some(Duration::from_secs(cfg.timeout_seconds)))
            .max_idle_connections(16)
            .proxy(None)
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots()).build())
            .user_agent(concat!("prodex-gateway/", env!("CARGO_PKG_VERSION")))
            .build();
        let connector =
            ().chain(PublicOnly { allow_private: cfg.allow_private_addresses })
                .chain(MayTcpConnector)
                .chain(RustlsConnector::default());
        Self { agent: Agent::with_parts(config, connector, resolver), max_bytes: cfg.max_bytes }
    }

    /// GETs `url`: its content type (without parameters) and body.
    pub fn get(&self, url: &str) -> Result<(String, Vec<u8>), FetchError> {
        if !url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
            return Err(FetchError::NotHttps);
        }
        let resp = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::Io(io) if io.kind() == io::ErrorKind::PermissionDenied && io.to_string() == REFUSED => {
                FetchError::Private
            }
            ureq::Error::Timeout(_) => FetchError::Failed("the fetch timed out".into()),
            ureq::Error::HostNotFound => FetchError::Failed("the host does not resolve".into()),
            other => FetchError::Failed(format!(
                "the fetch failed: {}",
                other.to_string().chars().take(200).collect::<String>()
            )),
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(FetchError::Status(status));
        }
        let mime = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let body = resp.into_body().into_with_config().limit(self.max_bytes).read_to_vec().map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge(self.max_bytes),
            other => FetchError::Failed(format!("reading the media failed: {other}")),
        })?;
        Ok((mime, body))
    }
}
