//! The Postgres store's schema: the numbered migrations (applied once each, under an advisory
//! lock, in `schema_migrations`) and the ledger's monthly partitions.
//!
//! Invariant: migrations only ever append; a database is at the version of the last one applied.

use postgres::Client;

use super::{i, Fail, MIGRATION_LOCK, PARTITION_LOCK};
use crate::core::admission;
use crate::core::time::{format_rfc3339, parse_rfc3339, UnixMs};

const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE IF NOT EXISTS prodex_keys (
    name_lower TEXT PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    version BIGINT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prodex_key_feed (seq BIGSERIAL PRIMARY KEY, name_lower TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prodex_limits (scope TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prodex_reservations (
    call_id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    ask_cost BIGINT NOT NULL,
    ask_tokens BIGINT NOT NULL,
    at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    limits TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS prodex_reservations_scope ON prodex_reservations (scope, expires_at);
CREATE TABLE IF NOT EXISTS prodex_ledger (
    call_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    key_name TEXT NOT NULL,
    tenant_id TEXT,
    model TEXT,
    provider TEXT,
    status INT NOT NULL,
    row_json TEXT NOT NULL,
    PRIMARY KEY (created_at, call_id)
) PARTITION BY RANGE (created_at);
CREATE INDEX IF NOT EXISTS prodex_ledger_key ON prodex_ledger (key_name, created_at DESC);
CREATE INDEX IF NOT EXISTS prodex_ledger_tenant ON prodex_ledger (tenant_id, created_at DESC);
",
    r"
CREATE TABLE IF NOT EXISTS prodex_scim_users (
    id TEXT PRIMARY KEY,
    user_name_lower TEXT NOT NULL UNIQUE,
    tenant_id TEXT,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prodex_idempotency (key TEXT PRIMARY KEY, expires_at BIGINT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prodex_audit (at BIGINT NOT NULL, id TEXT NOT NULL, tenant_id TEXT, doc TEXT NOT NULL, PRIMARY KEY (at, id));
",
    // SCIM user names are unique per tenant (a 409 never reveals another tenant's users), and
    // tenant-scoped audit reads use an index.
    r"
ALTER TABLE prodex_scim_users DROP CONSTRAINT IF EXISTS prodex_scim_users_user_name_lower_key;
CREATE UNIQUE INDEX IF NOT EXISTS prodex_scim_users_tenant_name ON prodex_scim_users ((COALESCE(tenant_id, '')), user_name_lower);
CREATE INDEX IF NOT EXISTS prodex_scim_users_name ON prodex_scim_users (user_name_lower);
CREATE INDEX IF NOT EXISTS prodex_audit_tenant ON prodex_audit (tenant_id, at DESC);
",
    // Owners of provider objects created through virtual keys (`core::objects`).
    r"
CREATE TABLE IF NOT EXISTS prodex_objects (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at BIGINT NOT NULL);
",
];

pub(super) fn migrate(c: &mut Client) -> std::result::Result<(), Fail> {
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let result = (|| -> std::result::Result<(), Fail> {
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )?;
        let done: i32 = c.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])?.get(0);
        for (n, sql) in MIGRATIONS.iter().enumerate() {
            let version = i32::try_from(n + 1).unwrap_or(i32::MAX);
            if version <= done {
                continue;
            }
            let mut tx = c.transaction()?;
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &i(crate::clock::unix_ms())],
            )?;
            tx.commit()?;
            log::info!("postgres: applied schema migration {version}");
        }
        Ok(())
    })();
    c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
    result
}

/// The name of the monthly partition holding `at`.
pub(super) fn partition_name(at: UnixMs) -> String {
    let date = format_rfc3339(at);
    format!("prodex_ledger_{}{}", &date[..4], &date[5..7])
}

/// Creates the monthly partition holding `at` if it is missing. Concurrent creators (other pool
/// threads, other nodes) are serialized by an advisory lock, since `CREATE TABLE IF NOT EXISTS`
/// alone races in the catalog.
pub(super) fn ensure_partition(c: &mut Client, at: UnixMs) -> std::result::Result<(), Fail> {
    let date = format_rfc3339(at);
    let start = parse_rfc3339(&format!("{}-01T00:00:00Z", &date[..7])).unwrap_or(0);
    let end = admission::period_end(crate::core::keys::BudgetPeriod::Monthly, at).unwrap_or(u64::MAX);
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])?;
    let name = partition_name(at);
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF prodex_ledger FOR VALUES FROM ({start}) TO ({end})"
    ))?;
    tx.commit()?;
    Ok(())
}
