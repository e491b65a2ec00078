//! The embedded single-node backend: one redb file in `PRODEX_HOME`.
//!
//! - Reads run inline on the caller's coroutine (redb readers are MVCC and never block).
//! - Every write goes to one writer thread that group-commits: it drains whatever jobs are queued
//!   into one `Durability::Immediate` transaction (one fsync for many calls), then acknowledges
//!   each job. Callers that must wait (`ledger.durability = "commit"`, key mutations) park on a may
//!   channel; nobody else ever calls `begin_write`, so a may worker never blocks on redb's lock.
//! - Admission counters live in memory under one mutex (held for microseconds, never across I/O):
//!   this process is the only writer of the file, so memory is the truth and redb its durable
//!   copy. Settled spend and request counts are persisted per scope and period in the same
//!   transaction as the ledger row, so after a crash usage always equals the ledger's sums. Open
//!   reservations and RPM/TPM windows are not persisted: they expire with the process.
//!
//! Invariant: a second process opening the same file fails with an error naming the file and the
//! process that holds it (redb's exclusive lock, plus an owner note written next to the file).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::core::admission::{self, Counters, Headroom, Refusal};
use crate::core::keys::{KeyRecord, Limits, TokenHash};
use crate::core::ledger::{summarize, Bucket, Dimension, LedgerQuery, LedgerRow};
use crate::core::time::UnixMs;
use crate::store::{Finished, KeyChanges, KeyFilter, LedgerPage, Reservation, Result, Settlement, Store, StoreError};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const KEY_HASH: TableDefinition<&[u8], &str> = TableDefinition::new("key_hash");
const KEY_FEED: TableDefinition<u64, &str> = TableDefinition::new("key_feed");
const USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("usage");
const LEDGER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ledger");
const LEDGER_IDS: TableDefinition<&str, u64> = TableDefinition::new("ledger_ids");
const LEDGER_BY_KEY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ledger_by_key");

/// A bounded set of recently seen call ids.
#[derive(Default)]
struct RecentIds {
    set: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl RecentIds {
    const CAP: usize = 100_000;

    /// Inserts `id`; false when it was already there.
    fn insert(&mut self, id: &str) -> bool {
        if !self.set.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Jobs the writer thread commits in groups.
enum Job {
    Finish {
        row: Box<LedgerRow>,
        usage: Option<UsageDelta>,
        ack: Option<Ack>,
    },
    Key {
        op: KeyOp,
        ack: Ack,
    },
    DropBefore {
        before: UnixMs,
        ack: may::sync::mpsc::Sender<Result<u64>>,
    },
    /// Acknowledged once every job queued before it is committed.
    Barrier(Ack),
    SetUsage {
        key: String,
        row: UsageRow,
        ack: Ack,
    },
}

type Ack = may::sync::mpsc::Sender<Result<()>>;

impl Job {
    /// Someone is parked until this job is committed.
    fn is_awaited(&self) -> bool {
        !matches!(self, Job::Finish { ack: None, .. })
    }
}

enum KeyOp {
    Create(Box<KeyRecord>),
    Update(Box<KeyRecord>, u64),
    Delete(String, Option<u64>),
}

/// Persisted period counters of a scope change by this much.
struct UsageDelta {
    scope: String,
    period_start: UnixMs,
    requests: u64,
    spend_microusd: u64,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct UsageRow {
    requests: u64,
    spend_microusd: u64,
}

/// The redb store. Cheap to share behind an `Arc`.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    /// `None` once closing; dropping the sender stops the writer after it drains the queue.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    counters: Mutex<HashMap<String, Counters>>,
    /// Call ids finished recently, so a retried `finish` is not applied twice (older ones are
    /// caught by the ledger's id table).
    finished: Mutex<RecentIds>,
    /// Results of `delete_key` waiting for their job (keyed by lower-cased name).
    deleted: Arc<Mutex<HashMap<String, KeyRecord>>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn ledger_key(created_at: UnixMs, call_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + call_id.len());
    k.extend_from_slice(&created_at.to_be_bytes());
    k.extend_from_slice(call_id.as_bytes());
    k
}

fn by_key_key(key_name: &str, created_at: UnixMs, call_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key_name.len() + 9 + call_id.len());
    k.extend_from_slice(key_name.as_bytes());
    k.push(0);
    k.extend_from_slice(&ledger_key(created_at, call_id));
    k
}

fn usage_key(scope: &str, period_start: UnixMs) -> String {
    format!("{scope}|{period_start}")
}

impl RedbStore {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let owner = path.with_extension("redb.owner");
        // redb's default page cache is 1 GiB; the gateway's hot data (keys, recent rows) is small.
        let db = match Database::builder().set_cache_size(32 << 20).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                let holder = std::fs::read_to_string(&owner).unwrap_or_else(|_| "an unknown process".into());
                return Err(unavailable(format!(
                    "{} is already open in another process ({}); the embedded store allows one gateway per file — use postgres or redis to run several",
                    path.display(),
                    holder.trim()
                )));
            }
            Err(e) => return Err(unavailable(format!("cannot open {}: {e}", path.display()))),
        };
        let _ = std::fs::write(&owner, format!("pid {}\n", std::process::id()));
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(KEYS).map_err(unavailable)?;
            txn.open_table(KEY_HASH).map_err(unavailable)?;
            txn.open_table(KEY_FEED).map_err(unavailable)?;
            txn.open_table(USAGE).map_err(unavailable)?;
            txn.open_table(LEDGER).map_err(unavailable)?;
            txn.open_table(LEDGER_IDS).map_err(unavailable)?;
            txn.open_table(LEDGER_BY_KEY).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let deleted: Arc<Mutex<HashMap<String, KeyRecord>>> = Arc::default();
        let (writer_db, writer_deleted) = (Arc::clone(&db), Arc::clone(&deleted));
        let writer_thread = std::thread::Builder::new()
            .name("prodex-redb-writer".into())
            .spawn(move || writer(&writer_db, &rx, &writer_deleted))
            .map_err(|e| unavailable(format!("cannot start the redb writer: {e}")))?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
            jobs: Mutex::new(Some(tx)),
            writer: Some(writer_thread),
            counters: Mutex::default(),
            finished: Mutex::default(),
            deleted,
        })
    }

    /// The file this store lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, job: Job) -> Result<()> {
        let jobs = self.jobs.lock().map_err(|_| unavailable("writer queue poisoned"))?;
        let sender = jobs.as_ref().ok_or_else(|| unavailable("the store is closing"))?;
        sender.send(job).map_err(|_| unavailable("the redb writer thread has stopped"))
    }

    fn send_and_wait(&self, make: impl FnOnce(Ack) -> Job) -> Result<()> {
        let (tx, rx) = may::sync::mpsc::channel();
        self.send(make(tx))?;
        rx.recv().map_err(|_| unavailable("the redb writer thread has stopped"))?
    }

    fn read_usage(&self, scope: &str, period_start: UnixMs) -> Result<UsageRow> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(USAGE).map_err(unavailable)?;
        match table.get(usage_key(scope, period_start).as_str()).map_err(unavailable)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(corrupt),
            None => Ok(UsageRow::default()),
        }
    }

    /// Runs `f` on the scope's counters (loaded from the file on first use), under the lock.
    fn with_counters<T>(
        &self,
        scope: &str,
        limits: &Limits,
        now: UnixMs,
        f: impl FnOnce(&mut Counters) -> T,
    ) -> Result<T> {
        let mut map = self.counters.lock().map_err(|_| unavailable("counters poisoned"))?;
        if !map.contains_key(scope) {
            let start = admission::period_start(limits.budget_period, now);
            let stored = self.read_usage(scope, start)?;
            let c = Counters {
                period_start: start,
                requests: stored.requests,
                spend_microusd: stored.spend_microusd,
                ..Counters::default()
            };
            map.insert(scope.to_string(), c);
        }
        let c = map.get_mut(scope).ok_or_else(|| unavailable("counters vanished"))?;
        let before = c.period_start;
        admission::roll_period(c, limits.budget_period, now);
        if c.period_start != before {
            // A new period: pick up what other writes already stored for it (normally nothing).
            let stored = self.read_usage(scope, c.period_start)?;
            c.requests = stored.requests;
            c.spend_microusd = stored.spend_microusd;
        }
        Ok(f(c))
    }

    fn ledger_has(&self, call_id: &str) -> Result<bool> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let ids = txn.open_table(LEDGER_IDS).map_err(unavailable)?;
        Ok(ids.get(call_id).map_err(unavailable)?.is_some())
    }

    fn scan(
        &self,
        q: &LedgerQuery,
        after: Option<&(UnixMs, String)>,
        f: &mut dyn FnMut(LedgerRow) -> bool,
    ) -> Result<()> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let ledger = txn.open_table(LEDGER).map_err(unavailable)?;
        let lo = q.from.unwrap_or(0);
        let mut hi_ms = q.to.unwrap_or(u64::MAX);
        let mut hi_key = ledger_key(hi_ms, "");
        if let Some((ms, id)) = after {
            if *ms <= hi_ms {
                hi_ms = *ms;
                hi_key = ledger_key(hi_ms, id);
            }
        }
        if let Some(key) = &q.key {
            let index = txn.open_table(LEDGER_BY_KEY).map_err(unavailable)?;
            let start = by_key_key(key, lo, "");
            let mut end = by_key_key(key, 0, "");
            end.truncate(key.len() + 1);
            end.extend_from_slice(&hi_key);
            for entry in index.range(start.as_slice()..end.as_slice()).map_err(unavailable)?.rev() {
                let (k, _) = entry.map_err(unavailable)?;
                let row_key = &k.value()[key.len() + 1..];
                let Some(v) = ledger.get(row_key).map_err(unavailable)? else { continue };
                let row: LedgerRow = serde_json::from_slice(v.value()).map_err(corrupt)?;
                if q.matches(&row) && !f(row) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let start = ledger_key(lo, "");
        for entry in ledger.range(start.as_slice()..hi_key.as_slice()).map_err(unavailable)?.rev() {
            let (_, v) = entry.map_err(unavailable)?;
            let row: LedgerRow = serde_json::from_slice(v.value()).map_err(corrupt)?;
            if q.matches(&row) && !f(row) {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl Drop for RedbStore {
    /// Flushes queued writes and releases the file: the writer drains its queue, commits, exits.
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Store for RedbStore {
    fn backend(&self) -> &'static str {
        "redb"
    }

    fn ping(&self) -> Result<()> {
        self.db.begin_read().map(|_| ()).map_err(unavailable)
    }

    fn key_by_hash(&self, hash: &TokenHash) -> Result<Option<KeyRecord>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let index = txn.open_table(KEY_HASH).map_err(unavailable)?;
        let Some(name) = index.get(hash.as_slice()).map_err(unavailable)? else { return Ok(None) };
        let keys = txn.open_table(KEYS).map_err(unavailable)?;
        let found = keys.get(name.value()).map_err(unavailable)?;
        found.map(|v| serde_json::from_slice(v.value()).map_err(corrupt)).transpose()
    }

    fn key(&self, name: &str) -> Result<Option<KeyRecord>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let keys = txn.open_table(KEYS).map_err(unavailable)?;
        let found = keys.get(name.to_ascii_lowercase().as_str()).map_err(unavailable)?;
        found.map(|v| serde_json::from_slice(v.value()).map_err(corrupt)).transpose()
    }

    fn keys(&self, filter: &KeyFilter, after: Option<&str>, limit: usize) -> Result<Vec<KeyRecord>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let keys = txn.open_table(KEYS).map_err(unavailable)?;
        let mut out = Vec::new();
        let iter = match after {
            Some(a) => keys.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => keys.range::<&str>(..),
        }
        .map_err(unavailable)?;
        for entry in iter {
            let (_, v) = entry.map_err(unavailable)?;
            let k: KeyRecord = serde_json::from_slice(v.value()).map_err(corrupt)?;
            if filter.matches(&k) {
                out.push(k);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn create_key(&self, key: &KeyRecord) -> Result<()> {
        let key = Box::new(key.clone());
        self.send_and_wait(|ack| Job::Key { op: KeyOp::Create(key), ack })
    }

    fn update_key(&self, key: &KeyRecord, expected_version: u64) -> Result<()> {
        let key = Box::new(key.clone());
        self.send_and_wait(|ack| Job::Key { op: KeyOp::Update(key, expected_version), ack })
    }

    fn delete_key(&self, name: &str, expected_version: Option<u64>) -> Result<KeyRecord> {
        let lower = name.to_ascii_lowercase();
        self.send_and_wait(|ack| Job::Key { op: KeyOp::Delete(lower.clone(), expected_version), ack })?;
        let mut deleted = self.deleted.lock().map_err(|_| unavailable("poisoned"))?;
        deleted.remove(&lower).ok_or(StoreError::NotFound)
    }

    fn key_changes(&self, since: u64) -> Result<KeyChanges> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let feed = txn.open_table(KEY_FEED).map_err(unavailable)?;
        let keys = txn.open_table(KEYS).map_err(unavailable)?;
        let mut names = BTreeSet::new();
        let mut seq = since;
        for entry in feed.range(since.saturating_add(1)..).map_err(unavailable)? {
            let (s, name) = entry.map_err(unavailable)?;
            seq = s.value();
            names.insert(name.value().to_string());
        }
        let mut changes = KeyChanges { seq, ..KeyChanges::default() };
        for name in names {
            match keys.get(name.as_str()).map_err(unavailable)? {
                Some(v) => changes.upserted.push(serde_json::from_slice(v.value()).map_err(corrupt)?),
                None => changes.deleted.push(name),
            }
        }
        Ok(changes)
    }

    fn reserve(&self, r: &Reservation) -> Result<std::result::Result<Headroom, Refusal>> {
        self.with_counters(&r.scope, &r.limits, r.at, |c| {
            admission::admit(c, &r.limits, r.ask, r.at).map(|()| admission::headroom(c, &r.limits, r.at))
        })
    }

    fn finish(&self, call: &Finished) -> Result<()> {
        {
            let mut recent = self.finished.lock().map_err(|_| unavailable("poisoned"))?;
            if !recent.insert(&call.row.call_id) || self.ledger_has(&call.row.call_id)? {
                return Ok(());
            }
        }
        let mut usage = None;
        if let Some(r) = &call.reservation {
            self.with_counters(&r.scope, &r.limits, call.now, |c| match call.settlement {
                Settlement::Used { cost_microusd, tokens } => {
                    admission::settle(c, &r.limits, r.ask, r.at, cost_microusd, tokens, call.now);
                    usage = Some(UsageDelta {
                        scope: r.scope.clone(),
                        period_start: c.period_start,
                        requests: 1,
                        spend_microusd: cost_microusd,
                    });
                }
                Settlement::Released => admission::release(c, &r.limits, r.ask, r.at, call.now),
            })?;
        }
        let row = Box::new(call.row.clone());
        if call.wait_durable {
            self.send_and_wait(|ack| Job::Finish { row, usage, ack: Some(ack) })
        } else {
            self.send(Job::Finish { row, usage, ack: None })
        }
    }

    fn counters(&self, scope: &str, limits: &Limits, now: UnixMs) -> Result<Counters> {
        self.with_counters(scope, limits, now, |c| c.clone())
    }

    fn ledger_page(&self, q: &LedgerQuery, after: Option<&(UnixMs, String)>, limit: usize) -> Result<LedgerPage> {
        let mut rows = Vec::with_capacity(limit.min(1024) + 1);
        self.scan(q, after, &mut |row| {
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

    fn ledger_scan(&self, q: &LedgerQuery, f: &mut dyn FnMut(&LedgerRow) -> bool) -> Result<()> {
        self.scan(q, None, &mut |row| f(&row))
    }

    fn ledger_summary(&self, q: &LedgerQuery, dims: &[Dimension]) -> Result<(Vec<Bucket>, Bucket)> {
        let mut rows = Vec::new();
        self.scan(q, None, &mut |row| {
            rows.push(row);
            true
        })?;
        Ok(summarize(rows.iter(), dims))
    }

    fn flush(&self) -> Result<()> {
        self.send_and_wait(Job::Barrier)
    }

    fn set_counters(&self, scope: &str, counters: &Counters) -> Result<()> {
        let row = UsageRow { requests: counters.requests, spend_microusd: counters.spend_microusd };
        let key = usage_key(scope, counters.period_start);
        self.send_and_wait(|ack| Job::SetUsage { key, row, ack })?;
        let mut map = self.counters.lock().map_err(|_| unavailable("counters poisoned"))?;
        map.remove(scope); // reloaded from the file on next use
        Ok(())
    }

    fn drop_ledger_before(&self, before: UnixMs) -> Result<u64> {
        let (tx, rx) = may::sync::mpsc::channel();
        self.send(Job::DropBefore { before, ack: tx })?;
        rx.recv().map_err(|_| unavailable("the redb writer thread has stopped"))?
    }
}

/// The writer thread: drains queued jobs into one immediate-durability transaction at a time.
fn writer(db: &Database, rx: &mpsc::Receiver<Job>, deleted: &Mutex<HashMap<String, KeyRecord>>) {
    const MAX_BATCH: usize = 4096;
    /// Rows nobody waits for (`ledger.durability = "async"`) are gathered this long per commit.
    const ASYNC_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let mut waiting = batch.iter().any(Job::is_awaited);
        let window_end = crate::clock::now() + ASYNC_WINDOW;
        while batch.len() < MAX_BATCH {
            let next = if waiting {
                rx.try_recv().ok()
            } else {
                let left = window_end.saturating_duration_since(crate::clock::now());
                if left.is_zero() {
                    None
                } else {
                    rx.recv_timeout(left).ok()
                }
            };
            let Some(job) = next else { break };
            waiting |= job.is_awaited();
            batch.push(job);
        }
        let mut drops = Vec::new();
        let mut acks: Vec<(Ack, Result<()>)> = Vec::new();
        let outcome = commit_batch(db, batch, &mut drops, &mut acks, deleted);
        for (ack, result) in acks {
            let _ = ack.send(match &outcome {
                Ok(()) => result,
                Err(e) => Err(e.clone()),
            });
        }
        for (before, ack) in drops {
            let _ = ack.send(drop_before(db, before));
        }
    }
}

fn commit_batch(
    db: &Database,
    batch: Vec<Job>,
    drops: &mut Vec<(UnixMs, may::sync::mpsc::Sender<Result<u64>>)>,
    acks: &mut Vec<(Ack, Result<()>)>,
    deleted: &Mutex<HashMap<String, KeyRecord>>,
) -> Result<()> {
    let mut txn = db.begin_write().map_err(unavailable)?;
    txn.set_durability(redb::Durability::Immediate).map_err(unavailable)?;
    {
        let mut tables = Tables::open(&txn)?;
        let mut usage_sums: HashMap<String, (u64, u64)> = HashMap::new();
        for job in batch {
            match job {
                Job::Finish { row, usage, ack } => {
                    let result = tables.finish(&row, usage.as_ref(), &mut usage_sums);
                    if let Some(ack) = ack {
                        acks.push((ack, result));
                    } else if let Err(e) = result {
                        log::error!("ledger write failed for {}: {e}", row.call_id);
                    }
                }
                Job::Key { op, ack } => {
                    let result = tables.key_op(op, deleted);
                    acks.push((ack, result));
                }
                Job::DropBefore { before, ack } => drops.push((before, ack)),
                Job::Barrier(ack) => acks.push((ack, Ok(()))),
                Job::SetUsage { key, row, ack } => {
                    let result = serde_json::to_vec(&row).map_err(corrupt).and_then(|bytes| {
                        tables.usage.insert(key.as_str(), bytes.as_slice()).map(|_| ()).map_err(unavailable)
                    });
                    acks.push((ack, result));
                }
            }
        }
        tables.add_usage(usage_sums)?;
    }
    txn.commit().map_err(unavailable)
}

/// The tables of one write transaction.
struct Tables<'t> {
    keys: redb::Table<'t, &'static str, &'static [u8]>,
    key_hash: redb::Table<'t, &'static [u8], &'static str>,
    key_feed: redb::Table<'t, u64, &'static str>,
    usage: redb::Table<'t, &'static str, &'static [u8]>,
    ledger: redb::Table<'t, &'static [u8], &'static [u8]>,
    ledger_ids: redb::Table<'t, &'static str, u64>,
    by_key: redb::Table<'t, &'static [u8], &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Self> {
        Ok(Self {
            keys: txn.open_table(KEYS).map_err(unavailable)?,
            key_hash: txn.open_table(KEY_HASH).map_err(unavailable)?,
            key_feed: txn.open_table(KEY_FEED).map_err(unavailable)?,
            usage: txn.open_table(USAGE).map_err(unavailable)?,
            ledger: txn.open_table(LEDGER).map_err(unavailable)?,
            ledger_ids: txn.open_table(LEDGER_IDS).map_err(unavailable)?,
            by_key: txn.open_table(LEDGER_BY_KEY).map_err(unavailable)?,
        })
    }

    fn finish(
        &mut self,
        row: &LedgerRow,
        usage: Option<&UsageDelta>,
        sums: &mut HashMap<String, (u64, u64)>,
    ) -> Result<()> {
        if self.ledger_ids.insert(row.call_id.as_str(), row.created_at).map_err(unavailable)?.is_some() {
            return Ok(()); // already recorded: exactly one row and one usage update per call
        }
        let bytes = serde_json::to_vec(row).map_err(corrupt)?;
        let lk = ledger_key(row.created_at, &row.call_id);
        self.ledger.insert(lk.as_slice(), bytes.as_slice()).map_err(unavailable)?;
        let bk = by_key_key(&row.key_name, row.created_at, &row.call_id);
        self.by_key.insert(bk.as_slice(), &[][..]).map_err(unavailable)?;
        if let Some(u) = usage {
            let sum = sums.entry(usage_key(&u.scope, u.period_start)).or_default();
            sum.0 += u.requests;
            sum.1 += u.spend_microusd;
        }
        Ok(())
    }

    /// Adds a batch's usage, one read-modify-write per scope and period.
    fn add_usage(&mut self, sums: HashMap<String, (u64, u64)>) -> Result<()> {
        for (key, (requests, spend)) in sums {
            let mut current: UsageRow = match self.usage.get(key.as_str()).map_err(unavailable)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(corrupt)?,
                None => UsageRow::default(),
            };
            current.requests += requests;
            current.spend_microusd += spend;
            let bytes = serde_json::to_vec(&current).map_err(corrupt)?;
            self.usage.insert(key.as_str(), bytes.as_slice()).map_err(unavailable)?;
        }
        Ok(())
    }

    fn next_seq(&self) -> Result<u64> {
        Ok(self.key_feed.last().map_err(unavailable)?.map_or(0, |(k, _)| k.value()) + 1)
    }

    fn current(&self, lower: &str) -> Result<Option<KeyRecord>> {
        let found = self.keys.get(lower).map_err(unavailable)?;
        found.map(|v| serde_json::from_slice(v.value()).map_err(corrupt)).transpose()
    }

    fn key_op(&mut self, op: KeyOp, deleted: &Mutex<HashMap<String, KeyRecord>>) -> Result<()> {
        match op {
            KeyOp::Create(key) => {
                let lower = key.name.to_ascii_lowercase();
                if self.current(&lower)?.is_some() {
                    return Err(StoreError::Conflict(format!("key `{}`", key.name)));
                }
                if self.key_hash.get(key.token_hash.as_slice()).map_err(unavailable)?.is_some() {
                    return Err(StoreError::Conflict("token".into()));
                }
                self.put_key(&lower, &key)
            }
            KeyOp::Update(key, expected) => {
                let lower = key.name.to_ascii_lowercase();
                let Some(current) = self.current(&lower)? else { return Err(StoreError::NotFound) };
                if current.version != expected {
                    return Err(StoreError::VersionMismatch { current: current.version });
                }
                if current.token_hash != key.token_hash {
                    if self.key_hash.get(key.token_hash.as_slice()).map_err(unavailable)?.is_some() {
                        return Err(StoreError::Conflict("token".into()));
                    }
                    self.key_hash.remove(current.token_hash.as_slice()).map_err(unavailable)?;
                }
                self.put_key(&lower, &key)
            }
            KeyOp::Delete(lower, expected) => {
                let Some(current) = self.current(&lower)? else { return Err(StoreError::NotFound) };
                if expected.is_some_and(|v| v != current.version) {
                    return Err(StoreError::VersionMismatch { current: current.version });
                }
                self.keys.remove(lower.as_str()).map_err(unavailable)?;
                self.key_hash.remove(current.token_hash.as_slice()).map_err(unavailable)?;
                let seq = self.next_seq()?;
                self.key_feed.insert(seq, lower.as_str()).map_err(unavailable)?;
                if let Ok(mut d) = deleted.lock() {
                    d.insert(lower, current);
                }
                Ok(())
            }
        }
    }

    fn put_key(&mut self, lower: &str, key: &KeyRecord) -> Result<()> {
        let bytes = serde_json::to_vec(key).map_err(corrupt)?;
        self.keys.insert(lower, bytes.as_slice()).map_err(unavailable)?;
        self.key_hash.insert(key.token_hash.as_slice(), lower).map_err(unavailable)?;
        let seq = self.next_seq()?;
        self.key_feed.insert(seq, lower).map_err(unavailable)?;
        Ok(())
    }
}

/// Deletes ledger rows older than `before` in chunks of their own transactions.
fn drop_before(db: &Database, before: UnixMs) -> Result<u64> {
    const CHUNK: usize = 10_000;
    let end = ledger_key(before, "");
    let mut total = 0u64;
    loop {
        let txn = db.begin_write().map_err(unavailable)?;
        let removed;
        {
            let mut tables = Tables::open(&txn)?;
            let mut victims = Vec::new();
            for entry in tables.ledger.range(..end.as_slice()).map_err(unavailable)?.take(CHUNK) {
                let (_, v) = entry.map_err(unavailable)?;
                let row: LedgerRow = serde_json::from_slice(v.value()).map_err(corrupt)?;
                victims.push((row.created_at, row.call_id, row.key_name));
            }
            for (at, id, key) in &victims {
                tables.ledger.remove(ledger_key(*at, id).as_slice()).map_err(unavailable)?;
                tables.ledger_ids.remove(id.as_str()).map_err(unavailable)?;
                tables.by_key.remove(by_key_key(key, *at, id).as_slice()).map_err(unavailable)?;
            }
            removed = victims.len();
        }
        txn.commit().map_err(unavailable)?;
        total += removed as u64;
        if removed < CHUNK {
            return Ok(total);
        }
    }
}
