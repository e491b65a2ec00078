//! The redb store's tenant indexes: `ledger_by_tenant` and `audit_by_tenant`, keyed
//! `tenant \0 created_at call_id` with empty values (the row is read from `ledger` / `audit` by the
//! key's tail), so a tenant-scoped query reads that tenant's entries only, never every row.
//!
//! Also the SCIM name index's entries (`NameIds`, read and written in the writer's transaction)
//! and the owners of provider objects (`object_owners`: id → owner, first record wins).
//!
//! Invariants: every ledger row and audit entry with a tenant has exactly one index entry, written
//! in the same transaction as the row (the writer) and removed with it (retention); files made
//! before the indexes existed are backfilled once at open (`META` marks it done).

use redb::{ReadableTable, TableDefinition};

use super::writer::Tables;
use super::{corrupt, unavailable, UsageRow};
use crate::core::directory::{AuditEntry, AuditQuery, NameIds, ScimUser};
use crate::core::ledger::LedgerRow;
use crate::core::time::UnixMs;
use crate::store::Result;

pub(super) const LEDGER_BY_TENANT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ledger_by_tenant");
pub(super) const AUDIT_BY_TENANT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("audit_by_tenant");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Provider object id → owner (`core::objects`).
pub(super) const OBJECTS: TableDefinition<&str, &str> = TableDefinition::new("object_owners");
/// Set in `META` once rows older than the tenant indexes are indexed.
const BACKFILLED: &str = "tenant_indexes";

/// A ledger or audit key: big-endian time, then the id (so ranges are time ranges).
pub(super) fn ledger_key(created_at: UnixMs, call_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + call_id.len());
    k.extend_from_slice(&created_at.to_be_bytes());
    k.extend_from_slice(call_id.as_bytes());
    k
}

/// An index key: the indexed value, a NUL, then the row's ledger key.
pub(super) fn by_key_key(key_name: &str, created_at: UnixMs, call_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key_name.len() + 9 + call_id.len());
    k.extend_from_slice(key_name.as_bytes());
    k.push(0);
    k.extend_from_slice(&ledger_key(created_at, call_id));
    k
}

/// The index entry of a row of `tenant` at `at` with id `id`.
pub(super) fn tenant_key(tenant: &str, at: UnixMs, id: &str) -> Vec<u8> {
    by_key_key(tenant, at, id)
}

/// Opens the index tables and indexes rows written before they existed (once per file).
pub(super) fn prepare(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(OBJECTS).map_err(unavailable)?;
    let mut meta = txn.open_table(META).map_err(unavailable)?;
    let mut ledger_index = txn.open_table(LEDGER_BY_TENANT).map_err(unavailable)?;
    let mut audit_index = txn.open_table(AUDIT_BY_TENANT).map_err(unavailable)?;
    if meta.get(BACKFILLED).map_err(unavailable)?.is_some() {
        return Ok(());
    }
    let ledger = txn.open_table(super::LEDGER).map_err(unavailable)?;
    for entry in ledger.range::<&[u8]>(..).map_err(unavailable)? {
        let (_, v) = entry.map_err(unavailable)?;
        let row: LedgerRow = serde_json::from_slice(v.value()).map_err(corrupt)?;
        if let Some(t) = &row.tenant_id {
            ledger_index
                .insert(tenant_key(t, row.created_at, &row.call_id).as_slice(), [].as_slice())
                .map_err(unavailable)?;
        }
    }
    let audit = txn.open_table(super::AUDIT).map_err(unavailable)?;
    for entry in audit.range::<&[u8]>(..).map_err(unavailable)? {
        let (_, v) = entry.map_err(unavailable)?;
        let e: AuditEntry = serde_json::from_slice(v.value()).map_err(corrupt)?;
        if let Some(t) = &e.tenant_id {
            audit_index.insert(tenant_key(t, e.at, &e.id).as_slice(), [].as_slice()).map_err(unavailable)?;
        }
    }
    meta.insert(BACKFILLED, 1).map_err(unavailable)?;
    Ok(())
}

/// Walks one tenant's entries of `index` from newest to oldest between `lo` (inclusive) and the
/// `hi` row key (exclusive), resolving each in `rows`, until `f` says stop.
pub(super) fn walk_tenant(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    rows: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &str,
    lo: UnixMs,
    hi: &[u8],
    f: &mut dyn FnMut(&[u8]) -> Result<bool>,
) -> Result<()> {
    let start = tenant_key(tenant, lo, "");
    let mut end = tenant_key(tenant, 0, "");
    end.truncate(tenant.len() + 1);
    end.extend_from_slice(hi);
    for entry in index.range(start.as_slice()..end.as_slice()).map_err(unavailable)?.rev() {
        let (k, _) = entry.map_err(unavailable)?;
        let Some(v) = rows.get(&k.value()[tenant.len() + 1..]).map_err(unavailable)? else { continue };
        if !f(v.value())? {
            return Ok(());
        }
    }
    Ok(())
}

/// One tenant's audit entries matching `q`, newest first.
pub(super) fn tenant_audit(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    audit: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &str,
    q: &AuditQuery,
) -> Result<Vec<AuditEntry>> {
    let mut out = Vec::new();
    let hi = ledger_key(u64::MAX, "");
    walk_tenant(index, audit, tenant, 0, &hi, &mut |bytes| {
        let e: AuditEntry = serde_json::from_slice(bytes).map_err(corrupt)?;
        if q.matches(&e) {
            out.push(e);
        }
        Ok(out.len() < q.limit)
    })?;
    Ok(out)
}

/// The name-index entry of `lower` (legacy bare ids filed under their user's tenant).
pub(super) fn name_ids(t: &Tables<'_>, lower: &str) -> Result<NameIds> {
    let raw = t.scim_name.get(lower).map_err(unavailable)?.map(|v| v.value().to_string());
    NameIds::parse(raw.as_deref(), |id| {
        let found = t.scim.get(id).map_err(unavailable)?;
        Ok(found
            .map(|v| serde_json::from_slice::<ScimUser>(v.value()).map_err(corrupt))
            .transpose()?
            .map(|u| u.tenant_id))
    })
}

pub(super) fn store_name_ids(t: &mut Tables<'_>, lower: &str, names: &NameIds) -> Result<()> {
    match names.render() {
        Some(v) => t.scim_name.insert(lower, v.as_str()).map(|_| ()),
        None => t.scim_name.remove(lower).map(|_| ()),
    }
    .map_err(unavailable)
}

/// Stored usage rows (`scope|period_start` → row) of periods starting at `since` or later, and of
/// `total` budgets (start 0): the current periods, read once at open.
pub(super) fn recent_usage(db: &redb::Database, since: UnixMs) -> Result<std::collections::HashMap<String, UsageRow>> {
    use redb::ReadableDatabase;
    let txn = db.begin_read().map_err(unavailable)?;
    let table = txn.open_table(super::USAGE).map_err(unavailable)?;
    let mut out = std::collections::HashMap::new();
    for entry in table.range::<&str>(..).map_err(unavailable)? {
        let (k, v) = entry.map_err(unavailable)?;
        let key = k.value();
        let start: UnixMs = key.rsplit('|').next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if start == 0 || start >= since {
            out.insert(key.to_string(), serde_json::from_slice(v.value()).map_err(corrupt)?);
        }
    }
    Ok(out)
}

/// A job for the writer's next transaction.
pub(super) type TableJob = Box<dyn FnOnce(&mut Tables<'_>) -> Result<()> + Send>;

/// Drops audit entries older than `before` through `apply` (the writer), a chunk per transaction.
pub(super) fn drop_audit_before(before: UnixMs, apply: impl Fn(TableJob) -> Result<()>) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = std::sync::Arc::clone(&dropped);
        apply(Box::new(move |t| drop_audit_chunk(t, before, &count)))?;
        let n = dropped.load(std::sync::atomic::Ordering::Acquire);
        total += n;
        if n < AUDIT_CHUNK {
            return Ok(total);
        }
    }
}

/// Audit entries dropped per retention transaction.
pub(super) const AUDIT_CHUNK: u64 = 10_000;

/// Drops up to `AUDIT_CHUNK` audit entries older than `before` (and their tenant index entries);
/// adds how many to `dropped`.
fn drop_audit_chunk(t: &mut Tables<'_>, before: UnixMs, dropped: &std::sync::atomic::AtomicU64) -> Result<()> {
    let end = ledger_key(before, "");
    let mut victims = Vec::new();
    for entry in t.audit.range(..end.as_slice()).map_err(unavailable)?.take(AUDIT_CHUNK as usize) {
        let (_, v) = entry.map_err(unavailable)?;
        let e: AuditEntry = serde_json::from_slice(v.value()).map_err(corrupt)?;
        victims.push((e.at, e.id, e.tenant_id));
    }
    for (at, id, tenant) in &victims {
        t.audit.remove(ledger_key(*at, id).as_slice()).map_err(unavailable)?;
        if let Some(tenant) = tenant {
            t.audit_by_tenant.remove(tenant_key(tenant, *at, id).as_slice()).map_err(unavailable)?;
        }
    }
    dropped.fetch_add(victims.len() as u64, std::sync::atomic::Ordering::AcqRel);
    Ok(())
}
