//! The shared backend on Redis: several gateway nodes, one Redis. The sync `redis` client runs on a
//! pool of OS threads (`pool.rs`).
//!
//! Layout (all under `prodex:`): keys in the hash `keys` (lower-cased name → record) with the
//! token index `keyhash` and the change feed `keyfeed` (sorted by a sequence from `keyseq`); each
//! limit scope's `core::admission::Counters` in `limit:{scope}` with its open reservations in
//! `resv:{scope}`; ledger rows in the hash `rows`, ordered by the sorted set `ledger` whose members
//! are `{created_at:013}:{call_id}` (all scores 0, so lexicographic ranges are time ranges), plus
//! one such index per key name (`ledger:key:{name}`).
//!
//! Atomicity: `reserve` and `finish` are Lua scripts (`redis.lua`), one atomic round trip each, so
//! racing nodes never overrun a limit and a hot key costs one round trip per call; the script is a
//! port of `core::admission` over the same JSON state, held to the same results by the conformance
//! suite. Key and SCIM compare-and-swaps are optimistic WATCH/MULTI/EXEC transactions.
//!
//! Durability is Redis's: with `appendonly yes` and `appendfsync everysec` (the compose file's
//! setting) a Redis crash can lose up to about a second of ledger rows and usage; without AOF, a
//! restart of Redis loses everything. Use Postgres where the ledger must survive that.

use std::sync::Arc;

use redis::{Commands, Connection};

use crate::core::admission::{self, Counters, Headroom, Refusal};
use crate::core::directory::{AuditEntry, AuditQuery, IdempotencyRecord, ScimUser};
use crate::core::keys::{KeyRecord, Limits, TokenHash};
use crate::core::ledger::{LedgerQuery, LedgerRow};
use crate::core::time::UnixMs;
use crate::store::pool::{Broken, Connect, Pool};
use crate::store::{Finished, KeyChanges, KeyFilter, Reservation, Result, Settlement, Store, StoreError};

/// Admission and settlement as one atomic round trip each (`redis.lua`, a port of
/// `core::admission`; the conformance suite holds it to the same results as the other backends).
static SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("redis.lua")));

/// How long an open reservation may live before another call may release it (a crashed node's).
const RESERVATION_TTL_MS: u64 = 60 * 60 * 1000;

mod tenancy;
use tenancy::{audit_tenant_index, backfill_tenant_indexes, name_ids, put_name_ids, tenant_index};

enum Fail {
    Redis(redis::RedisError),
    Store(StoreError),
}

impl From<redis::RedisError> for Fail {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
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
            Fail::Redis(e) => StoreError::Unavailable(format!("redis: {e}")),
        }
    }
}

impl Broken for Fail {
    fn is_broken(&self) -> bool {
        match self {
            Fail::Redis(e) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
            }
            Fail::Store(_) => false,
        }
    }
}

type Step<T> = std::result::Result<T, Fail>;

fn json<T: serde::Serialize>(v: &T) -> Step<String> {
    serde_json::to_string(v).map_err(|e| Fail::Store(StoreError::Corrupt(e.to_string())))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Step<T> {
    serde_json::from_str(s).map_err(|e| Fail::Store(StoreError::Corrupt(e.to_string())))
}

fn hex(hash: &TokenHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn member(created_at: UnixMs, call_id: &str) -> String {
    format!("{created_at:013}:{call_id}")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Held {
    ask_cost: u64,
    ask_tokens: u64,
    at: UnixMs,
    expires_at: UnixMs,
    limits: Limits,
}

const KEYS: &str = "prodex:keys";
const KEYHASH: &str = "prodex:keyhash";
const KEYFEED: &str = "prodex:keyfeed";
const KEYSEQ: &str = "prodex:keyseq";
const ROWS: &str = "prodex:rows";
const LEDGER: &str = "prodex:ledger";
const SCIM: &str = "prodex:scim";
const SCIM_NAMES: &str = "prodex:scimname";
/// Provider object id → owner (`core::objects`).
const OBJECTS: &str = "prodex:objects";
const AUDIT: &str = "prodex:audit";
const AUDIT_ROWS: &str = "prodex:auditrows";

fn limit_key(scope: &str) -> String {
    format!("prodex:limit:{scope}")
}

fn resv_key(scope: &str) -> String {
    format!("prodex:resv:{scope}")
}

fn key_index(name: &str) -> String {
    format!("prodex:ledger:key:{name}")
}

/// The Redis store.
pub struct RedisStore {
    pool: Pool<Connection>,
}

impl RedisStore {
    /// Connects (lazily, per pool thread) to `url` with `threads` pool threads, and checks it answers.
    pub fn open(url: &str, threads: usize) -> Result<Self> {
        Self::open_with_root(url, threads, None)
    }

    /// As [`open`](Self::open), trusting `root_pem` (PEM CA certificates) for `rediss://` instead
    /// of the system roots (which `SSL_CERT_FILE` overrides).
    pub fn open_with_root(url: &str, threads: usize, root_pem: Option<Vec<u8>>) -> Result<Self> {
        let invalid = |e: redis::RedisError| StoreError::Unavailable(format!("invalid redis URL: {e}"));
        let client = match root_pem {
            None => redis::Client::open(url).map_err(invalid)?,
            Some(pem) => {
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(url, certs).map_err(invalid)?
            }
        };
        let connect: Connect<Connection> = Arc::new(move || {
            let con = client
                .get_connection_with_timeout(std::time::Duration::from_secs(3))
                .map_err(|e| format!("cannot connect to redis: {e}"))?;
            con.set_read_timeout(Some(std::time::Duration::from_secs(8))).map_err(|e| e.to_string())?;
            con.set_write_timeout(Some(std::time::Duration::from_secs(8))).map_err(|e| e.to_string())?;
            Ok(con)
        });
        let store = Self { pool: Pool::start(threads, "prodex-redis", connect)? };
        store.ping()?;
        store.call(backfill_tenant_indexes)?;
        store.warn_without_persistence();
        Ok(store)
    }

    fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Connection) -> Step<R> + Send + 'static) -> Result<R> {
        self.pool.call(f)
    }
}

fn counters_of(c: &mut Connection, scope: &str) -> Step<Counters> {
    let state: Option<String> = c.get(limit_key(scope))?;
    state.map_or(Ok(Counters::default()), |s| parse(&s))
}

impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn ping(&self) -> Result<()> {
        self.call(|c| redis::cmd("PING").query::<String>(c).map(|_| ()).map_err(Fail::from))
    }

    fn key_by_hash(&self, hash: &TokenHash) -> Result<Option<KeyRecord>> {
        let h = hex(hash);
        self.call(move |c| {
            let Some(name): Option<String> = c.hget(KEYHASH, &h)? else { return Ok(None) };
            let record: Option<String> = c.hget(KEYS, &name)?;
            record.map(|r| parse(&r)).transpose()
        })
    }

    fn key(&self, name: &str) -> Result<Option<KeyRecord>> {
        let lower = name.to_ascii_lowercase();
        self.call(move |c| {
            let record: Option<String> = c.hget(KEYS, &lower)?;
            record.map(|r| parse(&r)).transpose()
        })
    }

    fn keys(&self, filter: &KeyFilter, after: Option<&str>, limit: usize) -> Result<Vec<KeyRecord>> {
        let (filter, after) = (filter.clone(), after.unwrap_or("").to_string());
        self.call(move |c| {
            let all: Vec<(String, String)> = c.hgetall(KEYS)?;
            let mut keys: Vec<(String, KeyRecord)> = Vec::new();
            for (name, text) in all {
                if name.as_str() > after.as_str() {
                    keys.push((name, parse(&text)?));
                }
            }
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(keys.into_iter().map(|(_, k)| k).filter(|k| filter.matches(k)).take(limit).collect())
        })
    }

    fn create_key(&self, key: &KeyRecord) -> Result<()> {
        let key = key.clone();
        self.call(move |c| {
            let lower = key.name.to_ascii_lowercase();
            let record = json(&key)?;
            let h = hex(&key.token_hash);
            let mut outcome: Step<()> = Ok(());
            redis::transaction(c, &[KEYS, KEYHASH], |c, pipe| {
                outcome = Ok(());
                let taken: bool = c.hexists(KEYS, &lower)?;
                let hash_taken: bool = c.hexists(KEYHASH, &h)?;
                if taken || hash_taken {
                    outcome = Err(Fail::Store(StoreError::Conflict(format!("key `{}` or its token", key.name))));
                    return Ok(Some(()));
                }
                let seq: u64 = c.incr(KEYSEQ, 1)?;
                pipe.hset(KEYS, &lower, &record)
                    .ignore()
                    .hset(KEYHASH, &h, &lower)
                    .ignore()
                    .zadd(KEYFEED, format!("{seq}:{lower}"), seq)
                    .ignore();
                pipe.query::<Option<()>>(c)
            })?;
            outcome
        })
    }

    fn update_key(&self, key: &KeyRecord, expected_version: u64) -> Result<()> {
        let key = key.clone();
        self.call(move |c| {
            let lower = key.name.to_ascii_lowercase();
            let record = json(&key)?;
            let h = hex(&key.token_hash);
            let mut outcome: Step<()> = Ok(());
            redis::transaction(c, &[KEYS, KEYHASH], |c, pipe| {
                outcome = Ok(());
                let current: Option<String> = c.hget(KEYS, &lower)?;
                let Some(current) = current else {
                    outcome = Err(Fail::Store(StoreError::NotFound));
                    return Ok(Some(()));
                };
                let current: KeyRecord = match parse(&current) {
                    Ok(k) => k,
                    Err(e) => {
                        outcome = Err(e);
                        return Ok(Some(()));
                    }
                };
                if current.version != expected_version {
                    outcome = Err(Fail::Store(StoreError::VersionMismatch { current: current.version }));
                    return Ok(Some(()));
                }
                if current.token_hash != key.token_hash {
                    if c.hexists::<_, _, bool>(KEYHASH, &h)? {
                        outcome = Err(Fail::Store(StoreError::Conflict("token".into())));
                        return Ok(Some(()));
                    }
                    pipe.hdel(KEYHASH, hex(&current.token_hash)).ignore();
                }
                let seq: u64 = c.incr(KEYSEQ, 1)?;
                pipe.hset(KEYS, &lower, &record)
                    .ignore()
                    .hset(KEYHASH, &h, &lower)
                    .ignore()
                    .zadd(KEYFEED, format!("{seq}:{lower}"), seq)
                    .ignore();
                pipe.query::<Option<()>>(c)
            })?;
            outcome
        })
    }

    fn delete_key(&self, name: &str, expected_version: Option<u64>) -> Result<KeyRecord> {
        let lower = name.to_ascii_lowercase();
        self.call(move |c| {
            let mut outcome: Step<KeyRecord> = Err(Fail::Store(StoreError::NotFound));
            redis::transaction(c, &[KEYS, KEYHASH], |c, pipe| {
                let current: Option<String> = c.hget(KEYS, &lower)?;
                let Some(current) = current else {
                    outcome = Err(Fail::Store(StoreError::NotFound));
                    return Ok(Some(()));
                };
                let current: KeyRecord = match parse(&current) {
                    Ok(k) => k,
                    Err(e) => {
                        outcome = Err(e);
                        return Ok(Some(()));
                    }
                };
                if expected_version.is_some_and(|v| v != current.version) {
                    outcome = Err(Fail::Store(StoreError::VersionMismatch { current: current.version }));
                    return Ok(Some(()));
                }
                let seq: u64 = c.incr(KEYSEQ, 1)?;
                pipe.hdel(KEYS, &lower)
                    .ignore()
                    .hdel(KEYHASH, hex(&current.token_hash))
                    .ignore()
                    .zadd(KEYFEED, format!("{seq}:{lower}"), seq)
                    .ignore();
                outcome = Ok(current);
                pipe.query::<Option<()>>(c)
            })?;
            outcome
        })
    }

    fn key_changes(&self, since: u64) -> Result<KeyChanges> {
        self.call(move |c| {
            let feed: Vec<(String, f64)> = c.zrangebyscore_withscores(KEYFEED, format!("({since}"), "+inf")?;
            let mut changes = KeyChanges { seq: since, ..KeyChanges::default() };
            let mut names: Vec<String> = Vec::new();
            for (m, score) in feed {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let seq = score as u64;
                changes.seq = changes.seq.max(seq);
                let name = m.split_once(':').map_or(m.clone(), |(_, n)| n.to_string());
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            for name in names {
                let record: Option<String> = c.hget(KEYS, &name)?;
                match record {
                    Some(r) => changes.upserted.push(parse(&r)?),
                    None => changes.deleted.push(name),
                }
            }
            Ok(changes)
        })
    }

    fn reserve(&self, r: &Reservation) -> Result<std::result::Result<Headroom, Refusal>> {
        let r = r.clone();
        self.call(move |c| {
            let held = json(&Held {
                ask_cost: r.ask.cost_microusd,
                ask_tokens: r.ask.tokens,
                at: r.at,
                expires_at: r.at + RESERVATION_TTL_MS,
                limits: r.limits.clone(),
            })?;
            let limit = |v: Option<u64>| v.map_or(-1i128, i128::from).to_string();
            // Expired reservations are swept by `core::admission::sweeps_expired`'s rule: the script
            // sweeps on the sampled calls (flag 1) and whenever it would refuse with calls in flight.
            let sweep = u8::from(r.at % 16 == 0);
            let (refusal, state): (i64, String) = SCRIPT
                .key(limit_key(&r.scope))
                .key(resv_key(&r.scope))
                .arg("reserve")
                .arg(r.at)
                .arg(admission::period_start(r.limits.budget_period, r.at))
                .arg(limit(r.limits.budget_microusd))
                .arg(limit(r.limits.request_budget))
                .arg(limit(r.limits.rpm_limit))
                .arg(limit(r.limits.tpm_limit))
                .arg(limit(r.limits.max_parallel_requests))
                .arg(r.ask.cost_microusd)
                .arg(r.ask.tokens)
                .arg(&r.call_id)
                .arg(held)
                .arg(sweep)
                .invoke(c)?;
            let counters: Counters = parse(&state)?;
            let sec = r.at / 1000;
            Ok(match refusal {
                0 => Ok(admission::headroom(&counters, &r.limits, r.at)),
                1 => Err(Refusal::RequestBudget),
                2 => Err(Refusal::SpendBudget),
                3 => Err(Refusal::Rpm {
                    retry_after_secs: counters
                        .minute_requests
                        .seconds_until_at_most(r.limits.rpm_limit.unwrap_or(1).saturating_sub(1), sec),
                }),
                4 => {
                    let tpm = r.limits.tpm_limit.unwrap_or(0);
                    Err(Refusal::Tpm {
                        retry_after_secs: counters
                            .minute_tokens
                            .seconds_until_at_most(tpm.saturating_sub(r.ask.tokens.min(tpm)), sec),
                    })
                }
                _ => Err(Refusal::Parallel),
            })
        })
    }

    fn finish(&self, call: &Finished) -> Result<()> {
        let call = call.clone();
        self.call(move |c| {
            let row = &call.row;
            let (scope, limits, at, ask) = match &call.reservation {
                Some(r) => (r.scope.clone(), r.limits.clone(), r.at, r.ask),
                None => (String::new(), Limits::default(), 0, admission::Ask::default()),
            };
            let (used, cost, tokens) = match call.settlement {
                Settlement::Used { cost_microusd, tokens } => (1, cost_microusd, tokens),
                Settlement::Released => (0, 0, 0),
            };
            let _: i64 = SCRIPT
                .key(ROWS)
                .key(LEDGER)
                .key(key_index(&row.key_name))
                .key(limit_key(&scope))
                .key(resv_key(&scope))
                .key(row.tenant_id.as_deref().map(tenant_index).unwrap_or_default())
                .arg("finish")
                .arg(member(row.created_at, &row.call_id))
                .arg(json(row)?)
                .arg(&row.call_id)
                .arg(i32::from(call.reservation.is_some()))
                .arg(used)
                .arg(cost)
                .arg(tokens)
                .arg(call.now)
                .arg(admission::period_start(limits.budget_period, call.now))
                .arg(at)
                .arg(ask.cost_microusd)
                .arg(ask.tokens)
                .invoke(c)?;
            Ok(())
        })
    }

    fn counters(&self, scope: &str, limits: &Limits, now: UnixMs) -> Result<Counters> {
        let (scope, limits) = (scope.to_string(), limits.clone());
        self.call(move |c| {
            let mut counters = counters_of(c, &scope)?;
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
        self.call(move |c| {
            let mut total = 0u64;
            let end = format!("({}", member(before, ""));
            loop {
                let members: Vec<String> = redis::cmd("ZRANGEBYLEX")
                    .arg(LEDGER)
                    .arg("-")
                    .arg(&end)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(10_000)
                    .query(c)?;
                if members.is_empty() {
                    return Ok(total);
                }
                let rows: Vec<Option<String>> = redis::cmd("HMGET").arg(ROWS).arg(&members).query(c)?;
                let mut pipe = redis::pipe();
                for (m, row) in members.iter().zip(rows) {
                    if let Some(row) = row.and_then(|r| serde_json::from_str::<LedgerRow>(&r).ok()) {
                        pipe.zrem(key_index(&row.key_name), m).ignore();
                        if let Some(t) = &row.tenant_id {
                            pipe.zrem(tenant_index(t), m).ignore();
                        }
                    }
                }
                pipe.hdel(ROWS, &members).ignore().zrem(LEDGER, &members).ignore();
                pipe.query::<()>(c)?;
                total += members.len() as u64;
            }
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(()) // every write is acknowledged by Redis before its call returns
    }

    fn object_owner(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_string();
        self.call(move |c| Ok(c.hget(OBJECTS, &id)?))
    }

    fn set_object_owner(&self, id: &str, owner: &str, _at: UnixMs) -> Result<()> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.call(move |c| {
            let _: bool = c.hset_nx(OBJECTS, &id, &owner)?;
            Ok(())
        })
    }

    fn scim_create(&self, user: &ScimUser) -> Result<()> {
        let user = user.clone();
        self.call(move |c| {
            let doc = json(&user)?;
            let lower = user.user_name.to_ascii_lowercase();
            let mut outcome: Step<()> = Ok(());
            redis::transaction(c, &[SCIM, SCIM_NAMES], |c, pipe| {
                outcome = Ok(());
                let mut names = name_ids(c, &lower)?;
                if c.hexists::<_, _, bool>(SCIM, &user.id)? || !names.claim(user.tenant_id.as_deref(), &user.id) {
                    outcome = Err(Fail::Store(StoreError::Conflict(format!("user `{}`", user.user_name))));
                    return Ok(Some(()));
                }
                pipe.hset(SCIM, &user.id, &doc).ignore();
                put_name_ids(pipe, &lower, &names);
                pipe.query::<Option<()>>(c)
            })?;
            outcome
        })
    }

    fn scim_get(&self, id: &str) -> Result<Option<ScimUser>> {
        let id = id.to_string();
        self.call(move |c| {
            let doc: Option<String> = c.hget(SCIM, &id)?;
            doc.map(|d| parse(&d)).transpose()
        })
    }

    fn scim_by_user_name(&self, user_name: &str) -> Result<Vec<ScimUser>> {
        let lower = user_name.to_ascii_lowercase();
        self.call(move |c| {
            let names = name_ids(c, &lower)?;
            let ids: Vec<&str> = names.ids().collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let docs: Vec<Option<String>> = redis::cmd("HMGET").arg(SCIM).arg(&ids).query(c)?;
            docs.into_iter().flatten().map(|d| parse(&d)).collect()
        })
    }

    fn scim_list(&self, tenant: Option<&str>, start: usize, count: usize) -> Result<(Vec<ScimUser>, usize)> {
        let tenant = tenant.map(String::from);
        self.call(move |c| {
            let all: Vec<(String, String)> = c.hgetall(SCIM)?;
            let mut users = Vec::new();
            for (_, doc) in all {
                let u: ScimUser = parse(&doc)?;
                if tenant.as_ref().is_none_or(|t| u.tenant_id.as_ref() == Some(t)) {
                    users.push(u);
                }
            }
            users.sort_by(|a, b| a.id.cmp(&b.id));
            let total = users.len();
            Ok((users.into_iter().skip(start.saturating_sub(1)).take(count).collect(), total))
        })
    }

    fn scim_replace(&self, user: &ScimUser, expected_version: u64) -> Result<()> {
        let user = user.clone();
        self.call(move |c| {
            let doc = json(&user)?;
            let lower = user.user_name.to_ascii_lowercase();
            let mut outcome: Step<()> = Ok(());
            redis::transaction(c, &[SCIM, SCIM_NAMES], |c, pipe| {
                outcome = Ok(());
                let current: Option<String> = c.hget(SCIM, &user.id)?;
                let Some(current) = current.and_then(|d| serde_json::from_str::<ScimUser>(&d).ok()) else {
                    outcome = Err(Fail::Store(StoreError::NotFound));
                    return Ok(Some(()));
                };
                if current.version != expected_version {
                    outcome = Err(Fail::Store(StoreError::VersionMismatch { current: current.version }));
                    return Ok(Some(()));
                }
                let old = current.user_name.to_ascii_lowercase();
                if old != lower || current.tenant_id != user.tenant_id {
                    let mut target = name_ids(c, &lower)?;
                    if old == lower {
                        target.release(current.tenant_id.as_deref(), &user.id);
                    }
                    if !target.claim(user.tenant_id.as_deref(), &user.id) {
                        outcome = Err(Fail::Store(StoreError::Conflict(format!("user `{}`", user.user_name))));
                        return Ok(Some(()));
                    }
                    if old != lower {
                        let mut before = name_ids(c, &old)?;
                        before.release(current.tenant_id.as_deref(), &user.id);
                        put_name_ids(pipe, &old, &before);
                    }
                    put_name_ids(pipe, &lower, &target);
                }
                pipe.hset(SCIM, &user.id, &doc).ignore();
                pipe.query::<Option<()>>(c)
            })?;
            outcome
        })
    }

    fn scim_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.call(move |c| {
            let mut outcome: Step<()> = Ok(());
            redis::transaction(c, &[SCIM, SCIM_NAMES], |c, pipe| {
                outcome = Ok(());
                let doc: Option<String> = c.hget(SCIM, &id)?;
                let Some(user) = doc.and_then(|d| serde_json::from_str::<ScimUser>(&d).ok()) else {
                    outcome = Err(Fail::Store(StoreError::NotFound));
                    return Ok(Some(()));
                };
                let lower = user.user_name.to_ascii_lowercase();
                let mut names = name_ids(c, &lower)?;
                names.release(user.tenant_id.as_deref(), &id);
                pipe.hdel(SCIM, &id).ignore();
                put_name_ids(pipe, &lower, &names);
                pipe.query::<Option<()>>(c)
            })?;
            outcome
        })
    }

    fn idempotency_get(&self, key: &str, now: UnixMs) -> Result<Option<IdempotencyRecord>> {
        let key = format!("prodex:idem:{key}");
        self.call(move |c| {
            let doc: Option<String> = c.get(&key)?;
            Ok(doc.map(|d| parse::<IdempotencyRecord>(&d)).transpose()?.filter(|r| r.expires_at > now))
        })
    }

    fn idempotency_put(&self, record: &IdempotencyRecord, now: UnixMs) -> Result<bool> {
        let record = record.clone();
        self.call(move |c| {
            let ttl = record.expires_at.saturating_sub(now).max(1);
            let stored: Option<String> = redis::cmd("SET")
                .arg(format!("prodex:idem:{}", record.key))
                .arg(json(&record)?)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query(c)?;
            Ok(stored.is_some())
        })
    }

    fn idempotency_finish(&self, record: &IdempotencyRecord) -> Result<()> {
        let record = record.clone();
        self.call(move |c| {
            let ttl = record.expires_at.saturating_sub(crate::clock::unix_ms()).max(1);
            let _: () = redis::cmd("SET")
                .arg(format!("prodex:idem:{}", record.key))
                .arg(json(&record)?)
                .arg("PX")
                .arg(ttl)
                .query(c)?;
            Ok(())
        })
    }

    fn drop_audit_before(&self, before: UnixMs) -> Result<u64> {
        self.call(move |c| tenancy::drop_audit_before(c, &member(before, "")))
    }

    fn idempotency_release(&self, key: &str) -> Result<()> {
        let key = format!("prodex:idem:{key}");
        self.call(move |c| {
            let _: i64 = c.del(&key)?;
            Ok(())
        })
    }

    fn audit_append(&self, entry: &AuditEntry) -> Result<()> {
        let entry = entry.clone();
        self.call(move |c| {
            let m = member(entry.at, &entry.id);
            let mut pipe = redis::pipe();
            pipe.atomic().hset(AUDIT_ROWS, &m, json(&entry)?).ignore().zadd(AUDIT, &m, 0).ignore();
            if let Some(t) = &entry.tenant_id {
                pipe.zadd(audit_tenant_index(t), &m, 0).ignore();
            }
            pipe.query::<()>(c)?;
            Ok(())
        })
    }

    fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let q = q.clone();
        self.call(move |c| {
            let mut high = match &q.after {
                Some((at, id)) => format!("({}", member(*at, id)),
                None => "+".to_string(),
            };
            let index = q.tenant_scope.as_deref().map_or_else(|| AUDIT.to_string(), audit_tenant_index);
            let mut out = Vec::new();
            loop {
                let members: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                    .arg(&index)
                    .arg(&high)
                    .arg("-")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(500)
                    .query(c)?;
                if members.is_empty() {
                    return Ok(out);
                }
                let docs: Vec<Option<String>> = redis::cmd("HMGET").arg(AUDIT_ROWS).arg(&members).query(c)?;
                let n = members.len();
                for (m, doc) in members.into_iter().zip(docs) {
                    high = format!("({m}");
                    let Some(doc) = doc else { continue };
                    let e: AuditEntry = parse(&doc)?;
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
            let lk = limit_key(&scope);
            redis::transaction(c, &[lk.as_str()], |c, pipe| {
                let mut current = counters_of(c, &scope).map_err(to_redis)?;
                current.period_start = state.period_start;
                current.requests = state.requests;
                current.spend_microusd = state.spend_microusd;
                let text = serde_json::to_string(&current)
                    .map_err(|e| redis::RedisError::from((redis::ErrorKind::Client, "encode", e.to_string())))?;
                pipe.set(&lk, text).ignore();
                pipe.query::<Option<()>>(c)
            })?;
            Ok(())
        })
    }
}

fn to_redis(f: Fail) -> redis::RedisError {
    match f {
        Fail::Redis(e) => e,
        Fail::Store(e) => redis::RedisError::from((redis::ErrorKind::Client, "store", e.to_string())),
    }
}
