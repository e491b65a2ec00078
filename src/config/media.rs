//! `[gateway.media]`: whether the gateway fetches remote media URLs (https images in a chat or
//! Responses request) for providers that need inline data, and the bounds on each fetch.
//!
//! Invariant: off by default — an air-gapped install makes no outbound request a client asks for;
//! when on, fetches are https only, to public addresses unless `allow_private_addresses`, capped
//! in size and time.

use super::policy::{Diagnostics, Section};

/// `[gateway.media]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaConfig {
    /// Fetch https media URLs and send them inline (default false: such URLs are a 400).
    pub fetch_remote: bool,
    /// Largest media body fetched (default 10 MiB).
    pub max_bytes: u64,
    /// Time allowed for one fetch, connect to last byte (default 10 s).
    pub timeout_seconds: u64,
    /// Allow fetches to loopback, private and link-local addresses (default false).
    pub allow_private_addresses: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self { fetch_remote: false, max_bytes: 10 * 1024 * 1024, timeout_seconds: 10, allow_private_addresses: false }
    }
}

/// Reads `[gateway.media]`.
pub(super) fn read(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>) -> MediaConfig {
    let mut cfg = MediaConfig::default();
    if let Some(mut s) = gw.table(d, "media") {
        cfg.fetch_remote = s.boolean(d, "fetch_remote").unwrap_or(cfg.fetch_remote);
        cfg.max_bytes = s.uint(d, "max_bytes").unwrap_or(cfg.max_bytes);
        cfg.timeout_seconds = s.uint(d, "timeout_seconds").unwrap_or(cfg.timeout_seconds).max(1);
        cfg.allow_private_addresses = s.boolean(d, "allow_private_addresses").unwrap_or(false);
        s.finish(d);
    }
    cfg
}
