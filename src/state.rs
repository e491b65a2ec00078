//! Shared runtime state handed to every request: the validated configuration, the upstream client,
//! the lifecycle counters and the credential digests. Built once at startup; the only atomics
//! outside the server's own counters live here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::{Config, Provider};
use crate::core::auth::AdminCredential;
use crate::core::credential::digest;
use crate::core::ledger::LedgerRow;
use crate::core::metrics::Registry;
use crate::core::pricing::PriceTable;
use crate::keyring::Keyring;
use crate::lifecycle::Lifecycle;
use crate::store::{Finished, Store};
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
    /// SHA-256 of the SSO proxy's shared secret (`[gateway.sso] proxy_token_env`).
    pub sso_digest: Option<[u8; 32]>,
    /// `[[gateway.admin_tokens]]` as digests (the secrets themselves stay in the config only).
    pub admin_credentials: Vec<AdminCredential>,
    /// The OpenAPI document, serialized once.
    pub openapi: Vec<u8>,
    /// Live metrics. A std `Mutex`: every critical section is a few map operations with no I/O
    /// and no coroutine yield, so holding it never parks a may worker for long.
    metrics: Mutex<Registry>,
    /// State backend failures seen by request handlers (for `prodex_gateway_state_errors_total`).
    pub state_errors: AtomicU64,
    /// Round-robin cursors over the providers' key pools, one per provider (by configuration index).
    key_cursors: Vec<AtomicUsize>,
    /// Unix ms at startup, for `/startupz`.
    pub started_at_ms: u64,
    /// When the last refused-credential call got a ledger row (they are sampled, one a second).
    last_refusal_row_ms: AtomicU64,
    /// Ledger rows whose `finish` failed, retried by `spawn_spool` until the store takes them.
    spool: Mutex<std::collections::VecDeque<Finished>>,
    /// Open windows of identical audit denials (`core::directory::Denials`).
    denials: Mutex<crate::core::directory::Denials>,
    /// This process's random id, its `Via` entry upstream (`core::hops`): a request carrying it
    /// came back to us.
    pub instance: String,
    /// The routing targets' live numbers (calls in flight, time to first byte).
    pub targets: crate::targets::Targets,
}

/// 8 random bytes as hex (the clock's bits if the OS RNG fails: it only has to differ per process).
fn instance_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (u64::from(std::process::id()) << 32 ^ crate::clock::unix_ms()).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Failed finishes kept for retry at most.
const SPOOL_CAP: usize = 100_000;

impl Shared {
    #[must_use]
    pub fn new(parts: Parts, started_at_ms: u64) -> Self {
        let Parts { config, upstream, lifecycle, store, keyring } = parts;
        let key_cursors = (0..config.providers.len()).map(|_| AtomicUsize::new(0)).collect();
        let denial_window_ms = config.audit.collapse_window_seconds.saturating_mul(1000);
        let master_digest = config.gateway_token.as_ref().map(|t| digest(t.expose()));
        let prices = PriceTable::new(&config.pricing);
        let admin_credentials = config
            .admin_tokens
            .iter()
            .map(|t| AdminCredential {
                name: t.name.clone(),
                digest: digest(t.token.expose()),
                role: t.role,
                tenant_id: t.tenant_id.clone(),
                key_prefixes: t.allowed_key_prefixes.clone(),
            })
            .collect();
        let openapi = crate::core::openapi::rendered(env!("CARGO_PKG_VERSION"));
        let sso_digest = config.sso.proxy_token.as_ref().map(|t| digest(t.expose()));
        Self {
            sso_digest,
            admin_credentials,
            openapi,
            metrics: Mutex::new(Registry::new()),
            state_errors: AtomicU64::new(0),
            config,
            upstream,
            lifecycle,
            store,
            keyring,
            prices,
            master_digest,
            key_cursors,
            started_at_ms,
            instance: instance_id(),
            spool: Mutex::default(),
            denials: Mutex::new(crate::core::directory::Denials::new(denial_window_ms)),
            targets: crate::targets::Targets::default(),
            last_refusal_row_ms: AtomicU64::new(0),
        }
    }

    /// The provider for `model` (`core::routing::provider_of`: exact name, else the longest glob,
    /// else the default provider); the default for no model.
    #[must_use]
    pub fn provider_for(&self, model: Option<&str>) -> Option<&Provider> {
        let default = self.config.default_provider_index()?;
        self.config.providers.get(model.map_or(default, |m| self.config.provider_of(m)))
    }

    /// The plan for a requested model or alias (`core::routing::plan`), with the live numbers
    /// the stateful strategies read; `cost` estimates this request's cost at a model.
    #[must_use]
    pub fn plan(&self, requested: &str, cost: impl Fn(&str) -> Option<u64>) -> Option<crate::core::routing::Plan> {
        let default = self.config.default_provider_index()?;
        let globs = crate::config::model_globs(&self.config.providers);
        let turn = if self.config.route_aliases.is_empty() { 0 } else { self.targets.turn() };
        Some(crate::core::routing::plan(requested, &self.config.route_aliases, &globs, default, turn, |t| {
            self.targets.live(t, cost(&t.model))
        }))
    }

    /// Whether to write the audit denial `e` now (`false`: folded into an open window).
    pub fn admit_denial(&self, e: &crate::core::directory::AuditEntry) -> bool {
        self.denials.lock().map_or(true, |mut d| d.admit(e, e.at))
    }

    /// Summaries of the denial windows that ended by `now`.
    pub fn expired_denials(&self, now: u64) -> Vec<crate::core::directory::AuditEntry> {
        self.denials.lock().map(|mut d| d.expired(now)).unwrap_or_default()
    }

    /// A state operation succeeded: the backend is ready again at once, without waiting for the
    /// next readiness ping.
    pub fn note_state_ok(&self) {
        self.lifecycle.state_ok_at.store(crate::clock::unix_ms(), Ordering::Release);
        if self.lifecycle.state_down.load(Ordering::Acquire) && self.lifecycle.state_down.swap(false, Ordering::AcqRel)
        {
            log::info!("state backend {} answers again (a call's state operation succeeded)", self.store.backend());
        }
    }

    /// Counts a state backend failure.
    pub fn note_state_error(&self) {
        self.state_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `f` on the live metrics registry.
    pub fn with_metrics<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        let mut guard = self.metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Feeds one recorded call into the metrics (and the key's last known budget headroom).
    pub fn observe(&self, row: &LedgerRow, budget_remaining: Option<Option<u64>>) {
        let sample = crate::core::ledger::sample(row);
        self.with_metrics(|m| {
            m.observe(&sample);
            if let Some(left) = budget_remaining {
                m.set_budget_remaining(row.tenant_id.as_deref(), &row.key_name, left);
            }
        });
    }

    /// Keeps a call whose `finish` failed, to be retried until the store takes it (the upstream
    /// was called: the row and the spend must land). Past `SPOOL_CAP` the oldest is dropped, loudly.
    pub fn retry_finish(&self, mut f: Finished) {
        f.wait_durable = true;
        let mut q = self.spool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() >= SPOOL_CAP {
            if let Some(lost) = q.pop_front() {
                log::error!("finish retry queue full: the ledger row of call {} is lost", lost.row.call_id);
            }
        }
        q.push_back(f);
    }

    /// Retries spooled finishes, oldest first, until one fails (that one moves to the back, so
    /// a row that can never land does not block the others); returns how many landed.
    pub fn drain_spool(&self) -> usize {
        let spool = || self.spool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut landed = 0;
        let waiting = spool().len(); // (a guard in the `for` expression would live for the whole loop)
        for _ in 0..waiting {
            let Some(f) = spool().front().cloned() else { break };
            let ok = self.store.finish(&f).is_ok();
            let mut q = spool();
            // Found by id: `retry_finish` may have evicted the front meanwhile.
            if let Some(at) = q.iter().position(|x| x.row.call_id == f.row.call_id) {
                let entry = q.remove(at);
                if ok {
                    landed += 1;
                } else if let Some(entry) = entry {
                    q.push_back(entry);
                    break;
                }
            }
        }
        landed
    }

    /// Finishes waiting for a retry.
    #[must_use]
    pub fn spooled(&self) -> usize {
        self.spool.lock().map_or(0, |q| q.len())
    }

    /// Whether a call refused for its credential at `now` gets a ledger row (one a second).
    pub fn sample_refusal(&self, now: u64) -> bool {
        let last = self.last_refusal_row_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= 1000
            && self.last_refusal_row_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// The next key of `provider`'s pool to try (each provider rotates its own pool).
    pub fn next_key_index(&self, provider: &crate::config::Provider) -> usize {
        let at = self.config.providers.iter().position(|p| p.name == provider.name).unwrap_or(0);
        self.key_cursors.get(at).map_or(0, |c| c.fetch_add(1, Ordering::Relaxed))
    }
}
