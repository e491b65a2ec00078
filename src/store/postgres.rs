//! The shared backend on Postgres: several gateway nodes, one database. The sync `postgres` client
//! runs on a pool of OS threads (`pool.rs`); the schema is created and migrated at startup under an
//! advisory lock with a `schema_migrations` table.
//!
//! - Admission: each scope's `core::admission::Counters` is one row, locked `FOR UPDATE` while the
//!   pure admission functions run on it, so racing nodes serialize per scope and never overrun a
//!   limit. Open reservations are rows with an expiry: a node that dies mid-call leaves
//!   reservations that the next `reserve` on the scope releases once they expire.
//! - `finish` inserts the ledger row (`ON CONFLICT DO NOTHING` on `(created_at, call_id)`) and, only
//!   if it was new, settles the reservation, in one transaction: a retried finish counts once.
//! - The ledger is partitioned by month; retention drops whole partitions (no row-by-row deletes
//!   except inside the one partition that straddles the cutoff).
//! - Key mutations take a transaction-scoped advisory lock, so the change-feed sequence is committed
//!   in order and a node reading the feed never skips a change.

use std::sync::Arc;

use postgres::{Client, Transaction};

use crate::core::admission::{self, Ask, Counters, Headroom, Refusal};
use crate::core::directory::{AuditEntry, AuditQuery, IdempotencyRecord, ScimUser};
use crate::core::keys::{KeyRecord, Limits, TokenHash};
use crate::core::ledger::{LedgerQuery, LedgerRow};
use crate::core::time::UnixMs;
use crate::store::pool::{Broken, Connect, Pool};
use crate::store::{Finished, KeyChanges, KeyFilter, Reservation, Result, Settlement, Store, StoreError};

/// How long an open reservation may live before another call may release it (a crashed node's).
const RESERVATION_TTL_MS: u64 = 60 * 60 * 1000;
/// Advisory lock ids.
const MIGRATION_LOCK: i64 = 0x7072_6f64_6578_0001;
const KEY_LOCK: i64 = 0x7072_6f64_6578_0002;
const PARTITION_LOCK: i64 = 0x7072_6f64_6578_0003;

mod schema;
pub mod sql;
use schema::{ensure_partition, migrate, partition_name};
use sql::{audit_sql, ledger_sql};

/// A postgres error or one of ours, inside a pool job.
enum Fail {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<Fail> for StoreError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Store(e) => e,
            Fail::Pg(e) => match e.as_db_error() {
                Some(db) => StoreError::Unavailable(format!("postgres: {} ({})", db.message(), db.code().code())),
                None => StoreError::Unavailable(format!("postgres: {e}")),
            },
        }
    }
}

impl Broken for Fail {
    fn is_broken(&self) -> bool {
        match self {
            Fail::Pg(e) => e.is_closed() || e.as_db_error().is_none(),
            Fail::Store(_) => false,
        }
    }
}

type Job<R> = Result<R>;

fn json<T: serde::Serialize>(v: &T) -> std::result::Result<String, Fail> {
    serde_json::to_string(v).map_err(|e| Fail::Store(StoreError::Corrupt(e.to_string())))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, Fail> {
    serde_json::from_str(s).map_err(|e| Fail::Store(StoreError::Corrupt(e.to_string())))
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The Postgres store.
pub struct PgStore {
    pool: Pool<Client>,
    /// Ledger partitions known to exist (checked before each insert, created once).
    partitions: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl PgStore {
    /// Connects, migrates the schema, and starts `threads` pool threads.
    pub fn open(url: &str, threads: usize) -> Result<Self> {
        let tls = super::tls::split_pg(url).map_err(|e| StoreError::Unavailable(format!("postgres URL: {e}")))?;
        let tls_config = tls.client_config().map_err(|e| StoreError::Unavailable(format!("postgres TLS: {e}")))?;
        let make_tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
        let connect: Connect<Client> = Arc::new(move || {
            let mut config: postgres::Config = tls.conn.parse().map_err(|e| format!("invalid postgres URL: {e}"))?;
            config.connect_timeout(std::time::Duration::from_secs(3));
            config.keepalives(true);
            config.application_name("prodex-gateway");
            config.ssl_mode(tls.driver_mode());
            let mut client =
                config.connect(make_tls.clone()).map_err(|e| format!("cannot connect to postgres: {e}"))?;
            client.batch_execute("SET statement_timeout = '8s'").map_err(|e| e.to_string())?;
            Ok(client)
        });
        let pool = Pool::start(threads, "prodex-pg", connect)?;
        let store = Self { pool, partitions: Arc::default() };
        store.pool.call(|c: &mut Client| migrate(c))?;
        Ok(store)
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> std::result::Result<R, Fail> + Send + 'static,
    ) -> Job<R> {
        self.pool.call(f)
    }
}

/// Creates the scope's row if needed and locks it, in one round trip.
fn lock_counters(tx: &mut Transaction<'_>, scope: &str) -> std::result::Result<Counters, Fail> {
    let state: String = tx
        .query_one(
            "INSERT INTO prodex_limits (scope, state) VALUES ($1, '{}') ON CONFLICT (scope) DO UPDATE SET scope = EXCLUDED.scope RETURNING state",
            &[&scope],
        )?
        .get(0);
    parse(&state)
}

fn save_counters(tx: &mut Transaction<'_>, scope: &str, c: &Counters) -> std::result::Result<(), Fail> {
    tx.execute("UPDATE prodex_limits SET state = $2 WHERE scope = $1", &[&scope, &json(c)?])?;
    Ok(())
}

/// Releases reservations of `scope` that outlived their holder.
fn expire_reservations(
    tx: &mut Transaction<'_>,
    scope: &str,
    c: &mut Counters,
    now: UnixMs,
) -> std::result::Result<(), Fail> {
    let rows = tx.query(
        "DELETE FROM prodex_reservations WHERE scope = $1 AND expires_at < $2 RETURNING ask_cost, ask_tokens, at, limits",
        &[&scope, &i(now)],
    )?;
    for r in rows {
        let limits: Limits = parse(&r.get::<_, String>(3))?;
        let ask = Ask { cost_microusd: u(r.get(0)), tokens: u(r.get(1)) };
        admission::release(c, &limits, ask, u(r.get(2)), now);
    }
    Ok(())
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> Result<()> {
        self.call(|c| c.simple_query("SELECT 1").map(|_| ()).map_err(Fail::from))
    }

    fn key_by_hash(&self, hash: &TokenHash) -> Result<Option<KeyRecord>> {
        let hash = hash.to_vec();
        self.call(move |c| {
            let row = c.query_opt("SELECT record FROM prodex_keys WHERE token_hash = $1", &[&hash])?;
            row.map(|r| parse(&r.get::<_, String>(0))).transpose()
        })
    }

    fn key(&self, name: &str) -> Result<Option<KeyRecord>> {
        let lower = name.to_ascii_lowercase();
        self.call(move |c| {
            let row = c.query_opt("SELECT record FROM prodex_keys WHERE name_lower = $1", &[&lower])?;
            row.map(|r| parse(&r.get::<_, String>(0))).transpose()
        })
    }

    fn keys(&self, filter: &KeyFilter, after: Option<&str>, limit: usize) -> Result<Vec<KeyRecord>> {
        let (filter, after) = (filter.clone(), after.unwrap_or("").to_string());
        self.call(move |c| {
            let mut out = Vec::new();
            let mut cursor = after;
            loop {
                let rows = c.query(
                    "SELECT name_lower, record FROM prodex_keys WHERE name_lower > $1 ORDER BY name_lower LIMIT 500",
                    &[&cursor],
                )?;
                let n = rows.len();
                for r in rows {
                    cursor = r.get(0);
                    let k: KeyRecord = parse(&r.get::<_, String>(1))?;
                    if filter.matches(&k) {
                        out.push(k);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                if n < 500 {
                    return Ok(out);
                }
            }
        })
    }

    fn create_key(&self, key: &KeyRecord) -> Result<()> {
        let key = key.clone();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])?;
            let lower = key.name.to_ascii_lowercase();
            let taken = tx.query_opt(
                "SELECT 1 FROM prodex_keys WHERE name_lower = $1 OR token_hash = $2",
                &[&lower, &key.token_hash.to_vec()],
            )?;
            if taken.is_some() {
                return Err(Fail::Store(StoreError::Conflict(format!("key `{}` or its token", key.name))));
            }
            tx.execute(
                "INSERT INTO prodex_keys (name_lower, token_hash, version, record) VALUES ($1, $2, $3, $4)",
                &[&lower, &key.token_hash.to_vec(), &i(key.version), &json(&key)?],
            )?;
            tx.execute("INSERT INTO prodex_key_feed (name_lower) VALUES ($1)", &[&lower])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn update_key(&self, key: &KeyRecord, expected_version: u64) -> Result<()> {
        let key = key.clone();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])?;
            let lower = key.name.to_ascii_lowercase();
            let Some(current) = tx
                .query_opt("SELECT version, token_hash FROM prodex_keys WHERE name_lower = $1 FOR UPDATE", &[&lower])?
            else {
                return Err(Fail::Store(StoreError::NotFound));
            };
            let version = u(current.get(0));
            if version != expected_version {
                return Err(Fail::Store(StoreError::VersionMismatch { current: version }));
            }
            if current.get::<_, Vec<u8>>(1) != key.token_hash.to_vec()
                && tx
                    .query_opt("SELECT 1 FROM prodex_keys WHERE token_hash = $1", &[&key.token_hash.to_vec()])?
                    .is_some()
            {
                return Err(Fail::Store(StoreError::Conflict("token".into())));
            }
            tx.execute(
                "UPDATE prodex_keys SET token_hash = $2, version = $3, record = $4 WHERE name_lower = $1",
                &[&lower, &key.token_hash.to_vec(), &i(key.version), &json(&key)?],
            )?;
            tx.execute("INSERT INTO prodex_key_feed (name_lower) VALUES ($1)", &[&lower])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn delete_key(&self, name: &str, expected_version: Option<u64>) -> Result<KeyRecord> {
        let lower = name.to_ascii_lowercase();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])?;
            let Some(row) =
                tx.query_opt("SELECT version, record FROM prodex_keys WHERE name_lower = $1 FOR UPDATE", &[&lower])?
            else {
                return Err(Fail::Store(StoreError::NotFound));
            };
            let version = u(row.get(0));
            if expected_version.is_some_and(|v| v != version) {
                return Err(Fail::Store(StoreError::VersionMismatch { current: version }));
            }
            let record: KeyRecord = parse(&row.get::<_, String>(1))?;
            tx.execute("DELETE FROM prodex_keys WHERE name_lower = $1", &[&lower])?;
            tx.execute("INSERT INTO prodex_key_feed (name_lower) VALUES ($1)", &[&lower])?;
            tx.commit()?;
            Ok(record)
        })
    }

    fn key_changes(&self, since: u64) -> Result<KeyChanges> {
        self.call(move |c| {
            let feed =
                c.query("SELECT seq, name_lower FROM prodex_key_feed WHERE seq > $1 ORDER BY seq", &[&i(since)])?;
            let mut changes = KeyChanges { seq: since, ..KeyChanges::default() };
            let mut names: Vec<String> = Vec::new();
            for r in feed {
                changes.seq = u(r.get(0));
                let name: String = r.get(1);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            for name in names {
                match c.query_opt("SELECT record FROM prodex_keys WHERE name_lower = $1", &[&name])? {
                    Some(r) => changes.upserted.push(parse(&r.get::<_, String>(0))?),
                    None => changes.deleted.push(name),
                }
            }
            Ok(changes)
        })
    }

    fn reserve(&self, r: &Reservation) -> Result<std::result::Result<Headroom, Refusal>> {
        let r = r.clone();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let mut counters = lock_counters(&mut tx, &r.scope)?;
            if admission::sweeps_expired(&counters, &r.limits, r.ask, r.at) {
                expire_reservations(&mut tx, &r.scope, &mut counters, r.at)?;
            }
            let outcome = admission::admit(&mut counters, &r.limits, r.ask, r.at);
            if outcome.is_ok() {
                tx.execute(
                    "WITH held AS (INSERT INTO prodex_reservations (call_id, scope, ask_cost, ask_tokens, at, expires_at, limits) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING) UPDATE prodex_limits SET state = $8 WHERE scope = $2",
                    &[&r.call_id, &r.scope, &i(r.ask.cost_microusd), &i(r.ask.tokens), &i(r.at), &i(r.at + RESERVATION_TTL_MS), &json(&r.limits)?, &json(&counters)?],
                )?;
            } else {
                save_counters(&mut tx, &r.scope, &counters)?;
            }
            tx.commit()?;
            Ok(outcome.map(|()| admission::headroom(&counters, &r.limits, r.at)))
        })
    }

    fn finish(&self, call: &Finished) -> Result<()> {
        let call = call.clone();
        let partition = partition_name(call.row.created_at);
        let known = self.partitions.lock().map(|p| p.contains(&partition)).unwrap_or(false);
        if !known {
            let at = call.row.created_at;
            self.call(move |c| ensure_partition(c, at))?;
            if let Ok(mut p) = self.partitions.lock() {
                p.insert(partition);
            }
        }
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let row = &call.row;
            // The row and the reservation's removal in one round trip; the reservation is only
            // removed when the row is new, so a retried finish changes nothing.
            let counts = tx.query_one(
                "WITH l AS (INSERT INTO prodex_ledger (call_id, created_at, key_name, tenant_id, model, provider, status, row_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING 1), \
                 d AS (DELETE FROM prodex_reservations WHERE call_id = $1 AND EXISTS (SELECT 1 FROM l) RETURNING 1) \
                 SELECT (SELECT COUNT(*) FROM l), (SELECT COUNT(*) FROM d)",
                &[&row.call_id, &i(row.created_at), &row.key_name, &row.tenant_id, &row.model, &row.provider, &i32::from(row.status), &json(row)?],
            )?;
            let (inserted, held): (i64, i64) = (counts.get(0), counts.get(1));
            if inserted == 1 {
                if let Some(r) = &call.reservation {
                    let held = held == 1;
                    let mut counters = lock_counters(&mut tx, &r.scope)?;
                    match (call.settlement, held) {
                        (Settlement::Used { cost_microusd, tokens }, true) => admission::settle(&mut counters, &r.limits, r.ask, r.at, cost_microusd, tokens, call.now),
                        (Settlement::Released, true) => admission::release(&mut counters, &r.limits, r.ask, r.at, call.now),
                        (Settlement::Used { cost_microusd, .. }, false) => {
                            admission::settle_expired(&mut counters, &r.limits, cost_microusd, call.now);
                        }
                        (Settlement::Released, false) => {}
                    }
                    save_counters(&mut tx, &r.scope, &counters)?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn counters(&self, scope: &str, limits: &Limits, now: UnixMs) -> Result<Counters> {
        let (scope, limits) = (scope.to_string(), limits.clone());
        self.call(move |c| {
            let row = c.query_opt("SELECT state FROM prodex_limits WHERE scope = $1", &[&scope])?;
            let mut counters: Counters = match row {
                Some(r) => parse(&r.get::<_, String>(0))?,
                None => Counters::default(),
            };
            admission::roll_period(&mut counters, limits.budget_period, now);
            Ok(counters)
        })
    }

    fn ledger_walk(
        &self,
        q: &LedgerQuery,
        after: Option<&(UnixMs, String)>,
        f: &mut dyn FnMut(LedgerRow) -> bool,
    ) -> Result<()> {
        self.scan(q, after.cloned(), usize::MAX, f)
    }

    fn drop_ledger_before(&self, before: UnixMs) -> Result<u64> {
        let (total, dropped) = self.call(move |c| {
            let mut total = 0u64;
            let mut dropped: Vec<String> = Vec::new();
            // Whole partitions that end at or before the cutoff are dropped outright.
            let parts = c.query(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'prodex_ledger'",
                &[],
            )?;
            for p in parts {
                let name: String = p.get(0);
                let bound: String = p.get(1);
                let end: Option<u64> = bound.rsplit("TO ('").next().and_then(|s| s.split('\'').next()).and_then(|s| s.parse().ok());
                if end.is_some_and(|e| e <= before) {
                    let n: i64 = c.query_one(&format!("SELECT COUNT(*) FROM {name}"), &[])?.get(0);
                    c.batch_execute(&format!("DROP TABLE {name}"))?;
                    total += u(n);
                    dropped.push(name);
                }
            }
            // The partition straddling the cutoff: bounded deletes.
            loop {
                let n = c.execute(
                    "DELETE FROM prodex_ledger WHERE (created_at, call_id) IN (SELECT created_at, call_id FROM prodex_ledger WHERE created_at < $1 LIMIT 10000)",
                    &[&i(before)],
                )?;
                total += n;
                if n < 10_000 {
                    return Ok((total, dropped));
                }
            }
        })?;
        if let Ok(mut known) = self.partitions.lock() {
            for name in dropped {
                known.remove(&name);
            }
        }
        Ok(total)
    }

    fn flush(&self) -> Result<()> {
        Ok(()) // every write is committed before its call returns
    }

    fn object_owner(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_string();
        self.call(move |c| Ok(c.query_opt("SELECT owner FROM prodex_objects WHERE id = $1", &[&id])?.map(|r| r.get(0))))
    }

    fn set_object_owner(&self, id: &str, owner: &str, at: UnixMs) -> Result<()> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.call(move |c| {
            c.execute(
                "INSERT INTO prodex_objects (id, owner, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&id, &owner, &i(at)],
            )?;
            Ok(())
        })
    }

    fn scim_create(&self, user: &ScimUser) -> Result<()> {
        let user = user.clone();
        self.call(move |c| {
            let n = c.execute(
                "INSERT INTO prodex_scim_users (id, user_name_lower, tenant_id, version, doc) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&user.id, &user.user_name.to_ascii_lowercase(), &user.tenant_id, &i(user.version), &json(&user)?],
            )?;
            if n == 0 {
                return Err(Fail::Store(StoreError::Conflict(format!("user `{}`", user.user_name))));
            }
            Ok(())
        })
    }

    fn scim_get(&self, id: &str) -> Result<Option<ScimUser>> {
        let id = id.to_string();
        self.call(move |c| {
            c.query_opt("SELECT doc FROM prodex_scim_users WHERE id = $1", &[&id])?
                .map(|r| parse(&r.get::<_, String>(0)))
                .transpose()
        })
    }

    fn scim_by_user_name(&self, user_name: &str) -> Result<Vec<ScimUser>> {
        let lower = user_name.to_ascii_lowercase();
        self.call(move |c| {
            let rows = c.query(
                "SELECT doc FROM prodex_scim_users WHERE user_name_lower = $1 ORDER BY COALESCE(tenant_id, '')",
                &[&lower],
            )?;
            rows.iter().map(|r| parse(&r.get::<_, String>(0))).collect()
        })
    }

    fn scim_list(&self, tenant: Option<&str>, start: usize, count: usize) -> Result<(Vec<ScimUser>, usize)> {
        let tenant = tenant.map(String::from);
        self.call(move |c| {
            let total: i64 = c.query_one("SELECT COUNT(*) FROM prodex_scim_users WHERE ($1::text IS NULL OR tenant_id = $1)", &[&tenant])?.get(0);
            let rows = c.query(
                "SELECT doc FROM prodex_scim_users WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY id OFFSET $2 LIMIT $3",
                &[&tenant, &i(start.saturating_sub(1) as u64), &i(count as u64)],
            )?;
            let users = rows.iter().map(|r| parse(&r.get::<_, String>(0))).collect::<std::result::Result<Vec<ScimUser>, Fail>>()?;
            Ok((users, usize::try_from(total).unwrap_or(0)))
        })
    }

    fn scim_replace(&self, user: &ScimUser, expected_version: u64) -> Result<()> {
        let user = user.clone();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt("SELECT version FROM prodex_scim_users WHERE id = $1 FOR UPDATE", &[&user.id])? else {
                return Err(Fail::Store(StoreError::NotFound));
            };
            let current = u(row.get(0));
            if current != expected_version {
                return Err(Fail::Store(StoreError::VersionMismatch { current }));
            }
            let lower = user.user_name.to_ascii_lowercase();
            let taken = "SELECT 1 FROM prodex_scim_users WHERE user_name_lower = $1 AND id <> $2 AND COALESCE(tenant_id, '') = COALESCE($3, '')";
            if tx.query_opt(taken, &[&lower, &user.id, &user.tenant_id])?.is_some() {
                return Err(Fail::Store(StoreError::Conflict(format!("user `{}`", user.user_name))));
            }
            tx.execute(
                "UPDATE prodex_scim_users SET user_name_lower = $2, tenant_id = $3, version = $4, doc = $5 WHERE id = $1",
                &[&user.id, &lower, &user.tenant_id, &i(user.version), &json(&user)?],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn scim_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.call(move |c| {
            if c.execute("DELETE FROM prodex_scim_users WHERE id = $1", &[&id])? == 0 {
                return Err(Fail::Store(StoreError::NotFound));
            }
            Ok(())
        })
    }

    fn idempotency_get(&self, key: &str, now: UnixMs) -> Result<Option<IdempotencyRecord>> {
        let key = key.to_string();
        self.call(move |c| {
            let row =
                c.query_opt("SELECT doc FROM prodex_idempotency WHERE key = $1 AND expires_at > $2", &[&key, &i(now)])?;
            row.map(|r| parse(&r.get::<_, String>(0))).transpose()
        })
    }

    fn idempotency_put(&self, record: &IdempotencyRecord, now: UnixMs) -> Result<bool> {
        let record = record.clone();
        self.call(move |c| {
            let n = c.execute(
                "INSERT INTO prodex_idempotency (key, expires_at, doc) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, doc = EXCLUDED.doc WHERE prodex_idempotency.expires_at <= $4",
                &[&record.key, &i(record.expires_at), &json(&record)?, &i(now)],
            )?;
            Ok(n == 1)
        })
    }

    fn idempotency_finish(&self, record: &IdempotencyRecord) -> Result<()> {
        let record = record.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO prodex_idempotency (key, expires_at, doc) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, doc = EXCLUDED.doc",
                &[&record.key, &i(record.expires_at), &json(&record)?],
            )?;
            Ok(())
        })
    }

    fn drop_audit_before(&self, before: UnixMs) -> Result<u64> {
        self.call(move |c| Ok(c.execute("DELETE FROM prodex_audit WHERE at < $1", &[&i(before)])?))
    }

    fn idempotency_release(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        self.call(move |c| {
            c.execute("DELETE FROM prodex_idempotency WHERE key = $1", &[&key])?;
            Ok(())
        })
    }

    fn audit_append(&self, entry: &AuditEntry) -> Result<()> {
        let entry = entry.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO prodex_audit (at, id, tenant_id, doc) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&i(entry.at), &entry.id, &entry.tenant_id, &json(&entry)?],
            )?;
            Ok(())
        })
    }

    fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let q = q.clone();
        self.call(move |c| {
            let (hi_at, hi_id) = q.after.clone().unwrap_or((q.to.unwrap_or(u64::MAX >> 1), String::new()));
            let mut out = Vec::new();
            let mut cursor = (i(hi_at), hi_id);
            let mut first = q.after.is_none() && q.to.is_none();
            loop {
                let (sql, params) = audit_sql((!first).then(|| cursor.clone()), q.tenant_scope.clone());
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
                let rows = c.query(sql.as_str(), &refs)?;
                first = false;
                let n = rows.len();
                for r in rows {
                    let e: AuditEntry = parse(&r.get::<_, String>(0))?;
                    cursor = (i(e.at), e.id.clone());
                    if q.matches(&e) {
                        out.push(e);
                        if out.len() >= q.limit {
                            return Ok(out);
                        }
                    }
                }
                if n < 500 {
                    return Ok(out);
                }
            }
        })
    }

    fn set_counters(&self, scope: &str, counters: &Counters) -> Result<()> {
        let (scope, state) = (scope.to_string(), counters.clone());
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let mut current = lock_counters(&mut tx, &scope)?;
            current.period_start = state.period_start;
            current.requests = state.requests;
            current.spend_microusd = state.spend_microusd;
            save_counters(&mut tx, &scope, &current)?;
            tx.commit()?;
            Ok(())
        })
    }
}

impl PgStore {
    /// Streams matching rows newest first in pages of 1,000, stopping when `f` returns false.
    fn scan(
        &self,
        q: &LedgerQuery,
        after: Option<(UnixMs, String)>,
        max: usize,
        f: &mut dyn FnMut(LedgerRow) -> bool,
    ) -> Result<()> {
        let has_after = after.is_some();
        let mut cursor = after.unwrap_or((q.to.unwrap_or(u64::MAX >> 1), String::new()));
        let mut first = true;
        let mut taken = 0usize;
        loop {
            let (q2, cur, inclusive_hi) = (q.clone(), cursor.clone(), first && q.to.is_none() && !has_after);
            let page: Vec<LedgerRow> = self.call(move |c| {
                let tenant = q2.tenant_id.clone().or(q2.tenant_scope.clone());
                let (sql, params) =
                    ledger_sql(i(q2.from.unwrap_or(0)), (!inclusive_hi).then(|| (i(cur.0), cur.1)), q2.key, tenant);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
                let rows = c.query(sql.as_str(), &refs)?;
                rows.iter().map(|r| parse::<LedgerRow>(&r.get::<_, String>(0))).collect()
            })?;
            first = false;
            let n = page.len();
            for row in page {
                cursor = (row.created_at, row.call_id.clone());
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
