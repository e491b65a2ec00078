//! Shared runtime state handed to every request: the validated configuration, the upstream client,
//! the lifecycle counters and the credential digests. Built once at startup; the only atomics
//! outside the server's own counters live here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{Config, Provider};
use crate::core::credential::digest;
use crate::core::model_matches;
use crate::core::pricing::PriceTable;
use crate::http::server::Lifecycle;
use crate::keyring::Keyring;
use crate::store::Store;
use crate::upstream::Upstream;

/// What `Shared` is built from.
pub struct Parts {
    pub config: Config,
    pub upstream: Upstream,
    pub lifecycle: Arc<Lifecycle>,
    pub store: Arc<dyn Store>,
    pub keyring: Arc<Keyring>,
}

/// Everything a request handler needs.
pub struct Shared {
    pub config: Config,
    pub upstream: Upstream,
    pub lifecycle: Arc<Lifecycle>,
    pub store: Arc<dyn Store>,
    pub keyring: Arc<Keyring>,
    pub prices: PriceTable,
    /// SHA-256 of `PRODEX_GATEWAY_TOKEN`; the token itself is not kept beyond the config.
    pub master_digest: Option<[u8; 32]>,
    /// Round-robin cursor over provider key pools.
    key_cursor: AtomicUsize,
    /// Unix ms at startup, for `/startupz`.
    pub started_at_ms: u64,
}

impl Shared {
    #[must_use]
    pub fn new(parts: Parts, started_at_ms: u64) -> Self {
        let Parts { config, upstream, lifecycle, store, keyring } = parts;
        let master_digest = config.gateway_token.as_ref().map(|t| digest(t.expose()));
        let overrides: Vec<(String, f64, f64, Option<f64>)> =
            config.pricing.iter().map(|p| (p.model.clone(), p.input, p.output, p.cached_input)).collect();
        let prices = PriceTable::new(&overrides);
        Self {
            config,
            upstream,
            lifecycle,
            store,
            keyring,
            prices,
            master_digest,
            key_cursor: AtomicUsize::new(0),
            started_at_ms,
        }
    }

    /// The provider for `model`: the first whose `models` globs match, else the default provider.
    #[must_use]
    pub fn provider_for(&self, model: Option<&str>) -> Option<&Provider> {
        let by_glob =
            model.and_then(|m| self.config.providers.iter().find(|p| p.models.iter().any(|g| model_matches(g, m))));
        by_glob.or_else(|| self.config.provider(&self.config.default_provider))
    }

    /// Where to start in a provider's key pool for this call (round-robin across calls).
    #[must_use]
    pub fn next_key_index(&self) -> usize {
        self.key_cursor.fetch_add(1, Ordering::Relaxed)
    }
}
