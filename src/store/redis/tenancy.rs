//! The Redis store's tenant-partitioned structures: per-tenant ledger and audit indexes (sorted
//! sets with the members of `LEDGER` / `AUDIT`, so a tenant-scoped query reads only its tenant's
//! entries) and the SCIM name index (one hash field per lower-cased `userName`, holding the ids
//! by tenant: names are unique per tenant, see `core::directory::NameIds`).
//!
//! Also the ledger scan over those indexes (`RedisStore::scan`).
//!
//! Invariants: a ledger row or audit entry with a tenant is in its tenant's index from the write
//! that adds it (the `finish` script, `audit_append`) until retention drops it; databases made
//! before the indexes existed are backfilled once at connect.

use redis::{Commands, Connection};

use super::{key_index, member, parse, Step, AUDIT, AUDIT_ROWS, LEDGER, ROWS, SCIM, SCIM_NAMES};
use crate::core::directory::{NameIds, ScimUser};
use crate::core::ledger::{LedgerQuery, LedgerRow};
use crate::core::time::UnixMs;
use crate::store::{Result, StoreError};

/// One tenant's ledger rows (members as in `LEDGER`): tenant-scoped queries read only these.
pub(super) fn tenant_index(tenant: &str) -> String {
    format!("prodex:ledger:tenant:{tenant}")
}

/// One tenant's audit entries (members as in `AUDIT`).
pub(super) fn audit_tenant_index(tenant: &str) -> String {
    format!("prodex:audit:tenant:{tenant}")
}

/// Set once rows written before the tenant indexes existed are indexed.
const TENANT_INDEXES: &str = "prodex:meta:tenant-indexes";

/// Indexes rows and audit entries older than the tenant indexes (once per database; several
/// nodes doing it at once add the same members).
pub(super) fn backfill_tenant_indexes(c: &mut Connection) -> Step<()> {
    if c.exists::<_, bool>(TENANT_INDEXES)? {
        return Ok(());
    }
    for (hash, index) in [(ROWS, tenant_index as fn(&str) -> String), (AUDIT_ROWS, audit_tenant_index)] {
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<(String, String)>) =
                redis::cmd("HSCAN").arg(hash).arg(cursor).arg("COUNT").arg(1000).query(c)?;
            let mut pipe = redis::pipe();
            let mut queued = 0usize;
            for (m, doc) in &batch {
                let tenant = serde_json::from_str::<serde_json::Value>(doc)
                    .ok()
                    .and_then(|v| v["tenant_id"].as_str().map(String::from));
                if let Some(t) = tenant {
                    pipe.zadd(index(&t), m, 0).ignore();
                    queued += 1;
                }
            }
            if queued > 0 {
                pipe.query::<()>(c)?;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    let _: () = c.set(TENANT_INDEXES, 1)?;
    Ok(())
}

/// The SCIM name-index entry of `lower` (a legacy bare id is filed under its user's tenant).
pub(super) fn name_ids(c: &mut Connection, lower: &str) -> redis::RedisResult<NameIds> {
    let raw: Option<String> = c.hget(SCIM_NAMES, lower)?;
    NameIds::parse(raw.as_deref(), |id| {
        let doc: Option<String> = c.hget(SCIM, id)?;
        Ok(doc.and_then(|d| serde_json::from_str::<ScimUser>(&d).ok()).map(|u| u.tenant_id))
    })
}

/// Queues the write of a name-index entry (its removal once no user holds the name).
pub(super) fn put_name_ids(pipe: &mut redis::Pipeline, lower: &str, names: &NameIds) {
    match names.render() {
        Some(v) => pipe.hset(SCIM_NAMES, lower, v).ignore(),
        None => pipe.hdel(SCIM_NAMES, lower).ignore(),
    };
}

/// Drops audit entries whose member sorts before `end` (retention), with their tenant index
/// entries, 10,000 at a time; returns how many.
pub(super) fn drop_audit_before(c: &mut Connection, end: &str) -> Step<u64> {
    let mut total = 0u64;
    let end = format!("({end}");
    loop {
        let members: Vec<String> =
            redis::cmd("ZRANGEBYLEX").arg(AUDIT).arg("-").arg(&end).arg("LIMIT").arg(0).arg(10_000).query(c)?;
        if members.is_empty() {
            return Ok(total);
        }
        let docs: Vec<Option<String>> = redis::cmd("HMGET").arg(AUDIT_ROWS).arg(&members).query(c)?;
        let mut pipe = redis::pipe();
        for (m, doc) in members.iter().zip(docs) {
            let tenant = doc
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|v| v["tenant_id"].as_str().map(String::from));
            if let Some(t) = tenant {
                pipe.zrem(audit_tenant_index(&t), m).ignore();
            }
        }
        pipe.hdel(AUDIT_ROWS, &members).ignore().zrem(AUDIT, &members).ignore();
        pipe.query::<()>(c)?;
        total += members.len() as u64;
    }
}

impl super::RedisStore {
    /// Pages through the ledger newest first from the narrowest index the query allows: one key's,
    /// one tenant's, else the whole ledger.
    pub(super) fn scan(
        &self,
        q: &LedgerQuery,
        after: Option<(UnixMs, String)>,
        max: usize,
        f: &mut dyn FnMut(LedgerRow) -> bool,
    ) -> Result<()> {
        let index = match (&q.key, q.tenant_id.as_ref().or(q.tenant_scope.as_ref())) {
            (Some(k), _) => key_index(k),
            (None, Some(t)) => tenant_index(t),
            (None, None) => LEDGER.to_string(),
        };
        let low = format!("[{}", member(q.from.unwrap_or(0), ""));
        let mut high = match (&after, q.to) {
            (Some((ms, id)), to) if to.is_none_or(|t| *ms < t) => format!("({}", member(*ms, id)),
            (_, Some(to)) => format!("({}", member(to, "")),
            (_, None) => "+".to_string(),
        };
        let mut taken = 0usize;
        loop {
            let (idx, lo, hi) = (index.clone(), low.clone(), high.clone());
            let page: Vec<(String, Option<String>)> = self.call(move |c| {
                let members: Vec<String> =
                    redis::cmd("ZREVRANGEBYLEX").arg(&idx).arg(&hi).arg(&lo).arg("LIMIT").arg(0).arg(1000).query(c)?;
                if members.is_empty() {
                    return Ok(Vec::new());
                }
                let rows: Vec<Option<String>> = redis::cmd("HMGET").arg(ROWS).arg(&members).query(c)?;
                Ok(members.into_iter().zip(rows).collect())
            })?;
            let n = page.len();
            for (m, row) in page {
                high = format!("({m}");
                let Some(text) = row else { continue };
                let row: LedgerRow = parse(&text).map_err(StoreError::from)?;
                if q.matches(&row) {
                    taken += 1;
                    if !f(row) || taken >= max {
                        return Ok(());
                    }
                }
            }
            if n < 1000 {
                return Ok(());
            }
        }
    }
}

impl super::RedisStore {
    /// Warns when Redis keeps nothing on disk (no AOF and no RDB snapshots): a Redis restart would
    /// then lose every key, budget and ledger row. Managed services that refuse `CONFIG` are not
    /// judged.
    pub(super) fn warn_without_persistence(&self) {
        let read = self.call(|c| {
            let aof: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("appendonly").query(c)?;
            let save: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("save").query(c)?;
            Ok((aof.get(1).cloned().unwrap_or_default(), save.get(1).cloned().unwrap_or_default()))
        });
        if let Ok((aof, save)) = read {
            if aof == "no" && save.trim().is_empty() {
                log::warn!(
                    "redis keeps nothing on disk (appendonly no, no save rules): a Redis restart loses every key, \
                     budget and ledger row; run it with appendonly yes"
                );
            }
        }
    }
}
