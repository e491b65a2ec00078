//! State: one synchronous `Store` trait over keys, admission counters, the billing ledger (and,
//! with the admin and SSO planes, SCIM users, idempotency records and the audit log), with one
//! backend per file. The shell calls it from coroutines, so every backend keeps the runtime rules:
//! reads that are microseconds may run inline; anything that can wait (fsync, network) runs on the
//! backend's own OS threads and the coroutine parks on a may channel.
//!
//! Invariants (every backend, checked by the conformance suite in `tests/store.rs`):
//! - key names are unique case-insensitively; updates and deletes are compare-and-swap on `version`;
//! - `reserve` is atomic per limit scope: committed spend + open reservations never exceed a budget,
//!   however many calls race;
//! - `finish` settles (or releases) a reservation and appends the call's ledger row together, once
//!   per call id: a retried `finish` never double-counts;
//! - SCIM user names are unique case-insensitively and replaced by compare-and-swap on `version`;
//!   an idempotency record, once stored, is never overwritten before it expires;
//! - ledger queries, scans and summaries agree with `core::ledger::LedgerQuery::matches` and
//!   `core::ledger::summarize` over the same rows.

pub mod pool;
pub mod postgres;
pub mod redb;
pub mod redis;
pub mod tls;

use std::fmt;

use crate::core::admission::{Ask, Counters, Headroom, Refusal};
use crate::core::directory::{AuditEntry, AuditQuery, IdempotencyRecord, ScimUser};
use crate::core::keys::{name_has_prefix, KeyRecord, Limits, TokenHash};
use crate::core::ledger::{Bucket, Dimension, LedgerQuery, LedgerRow, Summarizer};
use crate::core::time::UnixMs;

/// A storage failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached or failed; callers answer 503 `state_unavailable`.
    Unavailable(String),
    /// A key with this name (case-insensitively) or token already exists.
    Conflict(String),
    /// Compare-and-swap failed: the record changed; `current` is its version now.
    VersionMismatch {
        current: u64,
    },
    NotFound,
    /// Stored data could not be decoded.
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "state backend unavailable: {why}"),
            Self::Conflict(what) => write!(f, "already exists: {what}"),
            Self::VersionMismatch { current } => write!(f, "version mismatch (current version {current})"),
            Self::NotFound => write!(f, "not found"),
            Self::Corrupt(why) => write!(f, "stored data is corrupt: {why}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Filters for listing keys (all narrow; empty = all).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Any of these name prefixes (empty = any name).
    pub prefixes: Vec<String>,
    pub tenant_id: Option<String>,
    pub disabled: Option<bool>,
}

impl KeyFilter {
    #[must_use]
    pub fn matches(&self, k: &KeyRecord) -> bool {
        (self.prefixes.is_empty() || self.prefixes.iter().any(|p| name_has_prefix(&k.name, p)))
            && self.tenant_id.as_ref().is_none_or(|t| k.tenant_id.as_ref() == Some(t))
            && self.disabled.is_none_or(|d| k.disabled == d)
    }
}

/// Keys changed since a sequence number: the new sequence and the current records of the changed
/// names (a name absent from `upserted` but listed in `deleted` is gone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    pub seq: u64,
    pub upserted: Vec<KeyRecord>,
    /// Lower-cased names of deleted keys.
    pub deleted: Vec<String>,
}

/// A call's hold on a limit scope, from `reserve` to `finish`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub call_id: String,
    /// `key:<id>`, `budget:<tenant>/<budget_id>` or `budget:<budget_id>` (see `KeyRecord::limit_scope`).
    pub scope: String,
    pub limits: Limits,
    pub ask: Ask,
    /// When it was taken.
    pub at: UnixMs,
}

/// How a call ended, for its reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Bill this (cost 0 for unpriced models) and count these tokens.
    Used { cost_microusd: u64, tokens: u64 },
    /// Nothing billable happened: give the reservation back.
    Released,
}

/// Everything `finish` records for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// `None` for calls refused before admission (they still get a ledger row).
    pub reservation: Option<Reservation>,
    pub settlement: Settlement,
    pub row: LedgerRow,
    /// Return only once the row is durable (`ledger.durability = "commit"`).
    pub wait_durable: bool,
    pub now: UnixMs,
}

/// One page of ledger rows, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerPage {
    pub rows: Vec<LedgerRow>,
    /// Present when more rows follow: pass it back as `after`.
    pub next: Option<(UnixMs, String)>,
}

/// The storage interface. Every method is synchronous and may be called from a coroutine.
pub trait Store: Send + Sync {
    /// `redb`, `postgres` or `redis`.
    fn backend(&self) -> &'static str;

    /// Succeeds when the backend answers (readiness).
    fn ping(&self) -> Result<()>;

    /// The key whose token hashes to `hash`.
    fn key_by_hash(&self, hash: &TokenHash) -> Result<Option<KeyRecord>>;

    /// The key named `name` (case-insensitively).
    fn key(&self, name: &str) -> Result<Option<KeyRecord>>;

    /// Keys matching `filter`, ordered by lower-cased name, starting after `after` (a lower-cased
    /// name from a previous page), at most `limit`.
    fn keys(&self, filter: &KeyFilter, after: Option<&str>, limit: usize) -> Result<Vec<KeyRecord>>;

    /// Inserts a new key. `Conflict` when the name (case-insensitively) or token hash exists.
    fn create_key(&self, key: &KeyRecord) -> Result<()>;

    /// Replaces a key if its stored version is `expected_version`; the caller sets the new version.
    /// Renames are not allowed (the name is the identity).
    fn update_key(&self, key: &KeyRecord, expected_version: u64) -> Result<()>;

    /// Deletes a key (if `expected_version` matches, when given) and returns what it was.
    fn delete_key(&self, name: &str, expected_version: Option<u64>) -> Result<KeyRecord>;

    /// Keys changed after sequence `since` (0 = everything), for refreshing in-memory key maps.
    fn key_changes(&self, since: u64) -> Result<KeyChanges>;

    /// Atomically checks every limit of `r.scope` and holds the reservation, or says which limit
    /// refused. The counters returned are after the reservation.
    fn reserve(&self, r: &Reservation) -> Result<std::result::Result<Headroom, Refusal>>;

    /// Settles or releases the call's reservation and appends its ledger row, together and at most
    /// once per call id.
    fn finish(&self, call: &Finished) -> Result<()>;

    /// The scope's counters at `now` (period rolled over if it ended).
    fn counters(&self, scope: &str, limits: &Limits, now: UnixMs) -> Result<Counters>;

    /// Replaces a scope's period counters (spend and requests of `counters.period_start`); used
    /// when state is imported or migrated. Open reservations and rate windows are not copied.
    fn set_counters(&self, scope: &str, counters: &Counters) -> Result<()>;

    /// Calls `f` with every row matching `q`, newest first, strictly older than `after` (a
    /// previous page's `next`), until `f` returns false. The one ledger read each backend implements.
    fn ledger_walk(
        &self,
        q: &LedgerQuery,
        after: Option<&(UnixMs, String)>,
        f: &mut dyn FnMut(LedgerRow) -> bool,
    ) -> Result<()>;

    /// Rows matching `q`, newest first, strictly older than `after`, at most `limit`.
    fn ledger_page(&self, q: &LedgerQuery, after: Option<&(UnixMs, String)>, limit: usize) -> Result<LedgerPage> {
        let mut rows = Vec::with_capacity(limit.min(1024) + 1);
        self.ledger_walk(q, after, &mut |row| {
            rows.push(row);
            rows.len() <= limit
        })?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| (r.created_at, r.call_id.clone()))
        } else {
            None
        };
        Ok(LedgerPage { rows, next })
    }

    /// Calls `f` with every matching row, newest first, until it returns false (streamed exports).
    fn ledger_scan(&self, q: &LedgerQuery, f: &mut dyn FnMut(&LedgerRow) -> bool) -> Result<()> {
        self.ledger_walk(q, None, &mut |row| f(&row))
    }

    /// Matching rows grouped by `dims`, plus the totals.
    fn ledger_summary(&self, q: &LedgerQuery, dims: &[Dimension]) -> Result<(Vec<Bucket>, Bucket)> {
        let mut summary = Summarizer::new(dims);
        self.ledger_walk(q, None, &mut |row| {
            summary.add(&row);
            true
        })?;
        Ok(summary.finish())
    }

    /// Drops rows created before `before`, in bulk; returns how many.
    fn drop_ledger_before(&self, before: UnixMs) -> Result<u64>;

    /// Returns once every write accepted so far is durable (used at shutdown).
    fn flush(&self) -> Result<()>;

    /// The owner recorded for a provider object id (`core::objects::owner_of`), if any.
    fn object_owner(&self, id: &str) -> Result<Option<String>>;

    /// Records who created a provider object. The first record wins: an id never changes owner.
    fn set_object_owner(&self, id: &str, owner: &str, at: UnixMs) -> Result<()>;

    /// Inserts a SCIM user. `Conflict` when the id exists, or the user name (case-insensitively)
    /// within the user's tenant: names are unique per tenant, so a 409 never tells one tenant
    /// about another's users.
    fn scim_create(&self, user: &ScimUser) -> Result<()>;

    /// The SCIM user with this id.
    fn scim_get(&self, id: &str) -> Result<Option<ScimUser>>;

    /// The SCIM users with this user name (case-insensitively), at most one per tenant.
    fn scim_by_user_name(&self, user_name: &str) -> Result<Vec<ScimUser>>;

    /// Users ordered by id, optionally only one tenant's; SCIM paging (1-based `start`); also
    /// returns how many match in all.
    fn scim_list(&self, tenant: Option<&str>, start: usize, count: usize) -> Result<(Vec<ScimUser>, usize)>;

    /// Replaces a user (PUT or an applied PATCH) if its stored version is `expected_version`.
    fn scim_replace(&self, user: &ScimUser, expected_version: u64) -> Result<()>;

    /// Deletes a user.
    fn scim_delete(&self, id: &str) -> Result<()>;

    /// The record stored under `key`, if it has not expired at `now`.
    fn idempotency_get(&self, key: &str, now: UnixMs) -> Result<Option<IdempotencyRecord>>;

    /// Stores a record unless a live one exists under its key; false when one did (first wins).
    /// Admin mutations claim their key with a pending record (`status` 0) this way first.
    fn idempotency_put(&self, record: &IdempotencyRecord, now: UnixMs) -> Result<bool>;

    /// Replaces the record under its key (a claim's final reply).
    fn idempotency_finish(&self, record: &IdempotencyRecord) -> Result<()>;

    /// Drops audit entries older than `before` (retention); returns how many.
    fn drop_audit_before(&self, before: UnixMs) -> Result<u64>;

    /// Removes the record under `key` (a claim whose mutation failed: a retry runs it again).
    fn idempotency_release(&self, key: &str) -> Result<()>;

    /// Appends an audit entry.
    fn audit_append(&self, entry: &AuditEntry) -> Result<()>;

    /// Audit entries matching `q`, newest first, at most `q.limit`.
    fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

/// Opens the configured store for a command-line tool (`keys`, `state`): as `open`, and when a
/// running gateway holds the embedded file, says what to do instead (F4).
pub fn open_for_cli(config: &crate::config::Config) -> std::result::Result<std::sync::Arc<dyn Store>, String> {
    open(config, config.state.backend).map_err(|e| {
        if e.contains("already open in another process") {
            format!(
                "{e}. A running gateway holds it: stop that gateway first, or make the change through its admin API \
                 (`/v1/prodex/gateway/keys`, with an admin token)"
            )
        } else {
            e
        }
    })
}

/// Opens `backend` as configured (`[gateway.state]` and its environment variables).
pub fn open(
    config: &crate::config::Config,
    backend: crate::config::Backend,
) -> std::result::Result<std::sync::Arc<dyn Store>, String> {
    use crate::config::Backend;
    match backend {
        Backend::Redb => {
            let store = redb::RedbStore::open(&config.state.redb_path)
                .map_err(|e| format!("cannot open the state store: {e}"))?;
            Ok(std::sync::Arc::new(store))
        }
        Backend::Postgres => {
            let url = config
                .state
                .postgres_url
                .as_ref()
                .ok_or("the postgres backend needs PRODEX_GATEWAY_POSTGRES_URL (or postgres_url_env)")?;
            let store = postgres::PgStore::open(url.expose(), 16)
                .map_err(|e| format!("cannot open the postgres state store: {e}"))?;
            Ok(std::sync::Arc::new(store))
        }
        Backend::Redis => {
            let url = config
                .state
                .redis_url
                .as_ref()
                .ok_or("the redis backend needs PRODEX_GATEWAY_REDIS_URL (or redis_url_env)")?;
            let store = redis::RedisStore::open(url.expose(), 16)
                .map_err(|e| format!("cannot open the redis state store: {e}"))?;
            Ok(std::sync::Arc::new(store))
        }
    }
}
