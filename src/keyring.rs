//! The in-memory key map every call authenticates against: token hash → key record, an O(1) hit.
//! Built at startup from the store (after policy keys are synced into it) and kept current by a
//! coroutine that reads the store's change feed every second, so a key created, disabled,
//! rotated or deleted on any node takes effect everywhere within about a second.
//!
//! Invariant: the map holds only what the store holds (policy keys included, synced at startup);
//! the lock is held for map operations only, never across I/O or a coroutine yield.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::StaticKey;
use crate::core::credential::digest;
use crate::core::keys::{KeyRecord, KeySource, Limits, TokenHash};
use crate::core::time::UnixMs;
use crate::store::{KeyFilter, Store, StoreError};

/// Pools became tenant-scoped (`budget:<tenant>/<id>`): a tenant's pool that has no counters
/// yet starts from what its old, shared `budget:<id>` scope holds, so an upgrade never resets
/// spend. Two tenants that shared an id both start from the combined figure — more, never less.
pub fn carry_tenant_pools(store: &dyn Store, now: UnixMs) -> Result<usize, StoreError> {
    let mut carried = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store.keys(&KeyFilter::default(), after.as_deref(), 500)?;
        for k in &page {
            let Some(old) = k.legacy_limit_scope() else { continue };
            let new = k.limit_scope();
            let current = store.counters(&new, &k.limits, now)?;
            if current.requests > 0 || current.spend_microusd > 0 {
                continue;
            }
            let legacy = store.counters(&old, &k.limits, now)?;
            if legacy.requests > 0 || legacy.spend_microusd > 0 {
                store.set_counters(&new, &legacy)?;
                carried += 1;
            }
        }
        if page.len() < 500 {
            return Ok(carried);
        }
        after = page.last().map(|k| k.name.to_ascii_lowercase());
    }
}

/// The key map.
#[derive(Default)]
pub struct Keyring {
    by_hash: RwLock<HashMap<TokenHash, Arc<KeyRecord>>>,
    /// Lower-cased name → token hash, to drop a key's old entry when it changes or goes.
    by_name: RwLock<HashMap<String, TokenHash>>,
    seq: AtomicU64,
}

impl Keyring {
    /// The key whose token hashes to `hash`.
    #[must_use]
    pub fn get(&self, hash: &TokenHash) -> Option<Arc<KeyRecord>> {
        self.by_hash.read().ok()?.get(hash).cloned()
    }

    /// How many keys are loaded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_hash.read().map_or(0, |m| m.len())
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn upsert(&self, key: KeyRecord) {
        let lower = key.name.to_ascii_lowercase();
        let (Ok(mut by_hash), Ok(mut by_name)) = (self.by_hash.write(), self.by_name.write()) else { return };
        if let Some(old) = by_name.insert(lower, key.token_hash) {
            by_hash.remove(&old);
        }
        by_hash.insert(key.token_hash, Arc::new(key));
    }

    fn remove(&self, lower: &str) {
        let (Ok(mut by_hash), Ok(mut by_name)) = (self.by_hash.write(), self.by_name.write()) else { return };
        if let Some(old) = by_name.remove(lower) {
            by_hash.remove(&old);
        }
    }

    /// Applies the store's changes since the last refresh.
    pub fn refresh(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let changes = store.key_changes(self.seq.load(Ordering::Acquire))?;
        let n = changes.upserted.len() + changes.deleted.len();
        for name in &changes.deleted {
            self.remove(name);
        }
        for key in changes.upserted {
            self.upsert(key);
        }
        self.seq.store(changes.seq, Ordering::Release);
        Ok(n)
    }

    /// Starts the coroutine that refreshes the map every second.
    pub fn spawn_refresher(self: &Arc<Self>, store: Arc<dyn Store>) {
        let ring = Arc::clone(self);
        // During a backend outage this fails every second: say so once, then once a minute, and
        // when it works again (newcomer finding F21).
        may::go!(move || {
            let mut failing = 0u64;
            loop {
                may::coroutine::sleep(Duration::from_secs(1));
                match ring.refresh(store.as_ref()) {
                    Ok(_) if failing > 0 => {
                        log::warn!("key refresh works again after {failing} failed attempt(s)");
                        failing = 0;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failing += 1;
                        if failing == 1 || failing % 60 == 0 {
                            log::warn!("key refresh failed ({failing} in a row; key changes wait until it works): {e}");
                        }
                    }
                }
            }
        });
    }
}

/// The stored form of a `[[gateway.virtual_keys]]` entry.
fn policy_record(k: &StaticKey, id: String, created_at: UnixMs, now: UnixMs, version: u64) -> KeyRecord {
    let token = k.token.expose();
    KeyRecord {
        id,
        name: k.name.clone(),
        token_hash: digest(token),
        token_hint: crate::core::keys::token_hint(token),
        tenant_id: k.tenant_id.clone(),
        team_id: k.team_id.clone(),
        project_id: k.project_id.clone(),
        user_id: k.user_id.clone(),
        budget_id: k.budget_id.clone(),
        allowed_models: k.allowed_models.clone(),
        limits: Limits {
            budget_microusd: k.budget_microusd,
            budget_period: k.budget_period,
            request_budget: k.request_budget,
            rpm_limit: k.rpm_limit,
            tpm_limit: k.tpm_limit,
            max_parallel_requests: k.max_parallel_requests,
        },
        expires_at: k.expires_at,
        disabled: false,
        metadata: Default::default(),
        source: KeySource::Policy,
        created_at,
        updated_at: now,
        last_used_at: None,
        version,
    }
}

/// Creates or updates one policy key in the store.
fn sync_one(store: &dyn Store, k: &StaticKey, now: UnixMs) -> Result<(), StoreError> {
    match store.key(&k.name)? {
        Some(existing) if existing.source != KeySource::Policy => Err(StoreError::Conflict(format!(
            "[[gateway.virtual_keys]] `{}` has the name of a key created through the admin API",
            k.name
        ))),
        Some(existing) => {
            let mut wanted =
                policy_record(k, existing.id.clone(), existing.created_at, existing.updated_at, existing.version);
            wanted.last_used_at = existing.last_used_at;
            if wanted != existing {
                wanted.updated_at = now;
                wanted.version = existing.version + 1;
                store.update_key(&wanted, existing.version)?;
            }
            Ok(())
        }
        None => store.create_key(&policy_record(k, uuid::Uuid::now_v7().to_string(), now, now, 1)),
    }
}

/// Makes the store's policy keys match `[[gateway.virtual_keys]]`: creates new ones, updates
/// changed ones (keeping their id), deletes ones no longer declared. A policy key may not take the
/// name of an admin-created key.
pub fn sync_policy_keys(store: &dyn Store, declared: &[StaticKey], now: UnixMs) -> Result<(), String> {
    let fail = |e: StoreError| format!("syncing policy keys with the {} store: {e}", store.backend());
    for k in declared {
        // Several nodes may start at once: a lost creation race is retried as an update.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match sync_one(store, k, now) {
                Err(StoreError::Conflict(_) | StoreError::VersionMismatch { .. }) if attempts < 5 => {}
                other => {
                    other.map_err(fail)?;
                    break;
                }
            }
        }
    }
    let mut after: Option<String> = None;
    loop {
        let page = store.keys(&KeyFilter::default(), after.as_deref(), 500).map_err(fail)?;
        for key in &page {
            let declared_here = declared.iter().any(|d| d.name.eq_ignore_ascii_case(&key.name));
            if key.source == KeySource::Policy && !declared_here {
                store.delete_key(&key.name, Some(key.version)).map_err(fail)?;
            }
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.name.to_ascii_lowercase()),
            _ => return Ok(()),
        }
    }
}
