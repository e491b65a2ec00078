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
//! - A failed write (disk full, I/O error) never lets calls through unbilled: the writer marks the
//!   store failing (admission then refuses with 503 `state_unavailable`, `ping` fails so
//!   `/readyz` turns 503), answers every waiting caller with the error, keeps the async rows of the
//!   failed commit, reopens the file (redb refuses every operation after an I/O error until it is
//!   reopened) and retries with backoff until a commit succeeds again — no restart needed.
//!
//! Invariant: a second process opening the same file fails with an error naming the file and the
//! process that holds it (redb's exclusive lock, plus an owner note written next to the file).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

mod index;
mod recent;
mod writer;

use recent::RecentIds;
use writer::Tables;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::core::admission::{self, Counters, Headroom, Refusal};
use crate::core::directory::{AuditEntry, AuditQuery, IdempotencyRecord, NameIds, ScimUser};
use crate::core::keys::{KeyRecord, Limits, TokenHash};
use crate::core::ledger::{LedgerQuery, LedgerRow};
use crate::core::time::UnixMs;
use crate::store::{Finished, KeyChanges, KeyFilter, Reservation, Result, Settlement, Store, StoreError};
use index::{by_key_key, ledger_key, name_ids, store_name_ids};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const KEY_HASH: TableDefinition<&[u8], &str> = TableDefinition::new("key_hash");
const KEY_FEED: TableDefinition<u64, &str> = TableDefinition::new("key_feed");
const USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("usage");
const LEDGER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ledger");
const LEDGER_IDS: TableDefinition<&str, u64> = TableDefinition::new("ledger_ids");
const LEDGER_BY_KEY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ledger_by_key");
const SCIM: TableDefinition<&str, &[u8]> = TableDefinition::new("scim_users");
const SCIM_NAME: TableDefinition<&str, &str> = TableDefinition::new("scim_user_names");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
const AUDIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("audit");

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
    /// Any other write: runs inside the batch's transaction.
    Apply(ApplyFn, Ack),
}

type Ack = may::sync::mpsc::Sender<Result<()>>;

/// Async rows allowed in the writer's queue before callers wait for commits.
const MAX_BACKLOG: usize = 50_000;

/// A write run inside the writer's transaction.
type ApplyFn = Box<dyn FnOnce(&mut Tables<'_>) -> Result<()> + Send>;

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

#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
struct UsageRow {
    requests: u64,
    spend_microusd: u64,
}

/// The open database, shared by readers and the writer. The writer swaps it for a freshly opened
/// one after a failed write (redb latches an I/O error until the file is reopened).
pub(super) struct Slot {
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    /// The last write failed and no commit has succeeded since.
    failing: AtomicBool,
}

impl Slot {
    fn current(&self) -> Option<Arc<Database>> {
        self.db.read().ok().and_then(|g| g.clone())
    }
}

/// Opens (or creates) the file. redb's default page cache is 1 GiB; the gateway's hot data (keys,
/// recent rows) is small.
fn open_file(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(32 << 20).create(path)
}

/// The redb store. Cheap to share behind an `Arc`.
pub struct RedbStore {
    slot: Arc<Slot>,
    path: PathBuf,
    /// The writer's inbox; closing it stops the writer after it drains the queue.
    jobs: Arc<writer::JobQueue>,
    /// Async ledger rows queued but not yet committed.
    backlog: Arc<std::sync::atomic::AtomicUsize>,
    writer: Option<std::thread::JoinHandle<()>>,
    counters: Mutex<HashMap<String, Counters>>,
    /// Stored usage of current periods (`scope|period_start` → row) as of open, updated by
    /// `set_counters`: what a scope's first call in a period starts from.
    stored_usage: Mutex<HashMap<String, UsageRow>>,
    /// Periods starting before this (unix ms) are not in `stored_usage` (except `total`, start 0).
    usage_since: UnixMs,
    /// Call ids finished recently (the last 100,000), so a retried `finish` does not settle the
    /// in-memory counters twice. The writer's ledger id table keeps the row and the persisted
    /// usage once per call id whatever its age.
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

fn usage_key(scope: &str, period_start: UnixMs) -> String {
    format!("{scope}|{period_start}")
}

impl RedbStore {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let owner = path.with_extension("redb.owner");
        let db = match open_file(path) {
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
        // The state holds token hashes, spend and identities: owner-only, whatever the umask.
        for f in [path, owner.as_path()] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| unavailable(format!("cannot make {} private: {e}", f.display())))?;
        }
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(KEYS).map_err(unavailable)?;
            txn.open_table(KEY_HASH).map_err(unavailable)?;
            txn.open_table(KEY_FEED).map_err(unavailable)?;
            txn.open_table(USAGE).map_err(unavailable)?;
            txn.open_table(LEDGER).map_err(unavailable)?;
            txn.open_table(LEDGER_IDS).map_err(unavailable)?;
            txn.open_table(LEDGER_BY_KEY).map_err(unavailable)?;
            txn.open_table(SCIM).map_err(unavailable)?;
            txn.open_table(SCIM_NAME).map_err(unavailable)?;
            txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
            txn.open_table(AUDIT).map_err(unavailable)?;
        }
        index::prepare(&txn)?;
        txn.commit().map_err(unavailable)?;
        // The longest calendar period is a month: older periods are never current.
        let usage_since = crate::clock::unix_ms().saturating_sub(32 * 24 * 3600 * 1000);
        let stored_usage = index::recent_usage(&db, usage_since)?;
        let slot = Arc::new(Slot {
            db: RwLock::new(Some(Arc::new(db))),
            path: path.to_path_buf(),
            failing: AtomicBool::new(false),
        });
        let jobs = Arc::new(writer::JobQueue::new());
        let deleted: Arc<Mutex<HashMap<String, KeyRecord>>> = Arc::default();
        let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (writer_slot, writer_jobs, writer_deleted, writer_backlog) =
            (Arc::clone(&slot), Arc::clone(&jobs), Arc::clone(&deleted), Arc::clone(&backlog));
        let relay = writer::start_ack_relay();
        let writer_thread = std::thread::Builder::new()
            .name("prodex-redb-writer".into())
            .spawn(move || {
                crate::background::lower_this_thread();
                writer::run(&writer_slot, &writer_jobs, &relay, &writer_deleted, &writer_backlog);
            })
            .map_err(|e| unavailable(format!("cannot start the redb writer: {e}")))?;
        Ok(Self {
            slot,
            path: path.to_path_buf(),
            jobs,
            backlog,
            writer: Some(writer_thread),
            counters: Mutex::default(),
            stored_usage: Mutex::new(stored_usage),
            usage_since,
            finished: Mutex::default(),
            deleted,
        })
    }

    /// The file this store lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database (unavailable while the writer reopens it after a failed write).
    fn db(&self) -> Result<Arc<Database>> {
        self.slot.current().ok_or_else(|| unavailable("the state file is being reopened after a write error"))
    }

    /// Refuses while writes fail: a call admitted now could not be recorded.
    fn check_writable(&self) -> Result<()> {
        if self.slot.failing.load(Ordering::Acquire) {
            Err(unavailable(
                "writes to the state file are failing (see the run log); refusing calls until one succeeds",
            ))
        } else {
            Ok(())
        }
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs.push(job)
    }

    fn send_and_wait(&self, make: impl FnOnce(Ack) -> Job) -> Result<()> {
        let (tx, rx) = may::sync::mpsc::channel();
        self.send(make(tx))?;
        rx.recv().map_err(|_| unavailable("the redb writer thread has stopped"))?
    }

    /// Runs `f` in the writer's next transaction and waits for the commit.
    fn apply(&self, f: impl FnOnce(&mut Tables<'_>) -> Result<()> + Send + 'static) -> Result<()> {
        self.send_and_wait(|ack| Job::Apply(Box::new(f), ack))
    }

    /// A scope's stored usage for a period: from the snapshot loaded at open (the per-call path
    /// reads nothing from redb, least of all under the counters lock), else the file (a period
    /// older than the snapshot, only when the clock went back).
    fn read_usage(&self, scope: &str, period_start: UnixMs) -> Result<UsageRow> {
        let key = usage_key(scope, period_start);
        if period_start == 0 || period_start >= self.usage_since {
            let snapshot = self.stored_usage.lock().map_err(|_| unavailable("usage snapshot poisoned"))?;
            return Ok(snapshot.get(&key).cloned().unwrap_or_default());
        }
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let table = txn.open_table(USAGE).map_err(unavailable)?;
        match table.get(key.as_str()).map_err(unavailable)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(corrupt),
            None => Ok(UsageRow::default()),
        }
    }

    /// Runs `f` on the scope's counters (loaded from the usage snapshot on first use), under the lock.
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

    fn scan(
        &self,
        q: &LedgerQuery,
        after: Option<&(UnixMs, String)>,
        f: &mut dyn FnMut(LedgerRow) -> bool,
    ) -> Result<()> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
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
                let (k, v) = entry.map_err(unavailable)?;
                let row: LedgerRow = if v.value().is_empty() {
                    // Written before the index carried rows: look the row up.
                    let Some(v) = ledger.get(&k.value()[key.len() + 1..]).map_err(unavailable)? else { continue };
                    serde_json::from_slice(v.value()).map_err(corrupt)?
                } else {
                    serde_json::from_slice(v.value()).map_err(corrupt)?
                };
                if q.matches(&row) && !f(row) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        if let Some(tenant) = q.tenant_id.as_ref().or(q.tenant_scope.as_ref()) {
            let by_tenant = txn.open_table(index::LEDGER_BY_TENANT).map_err(unavailable)?;
            return index::walk_tenant(&by_tenant, &ledger, tenant, lo, &hi_key, &mut |bytes| {
                let row: LedgerRow = serde_json::from_slice(bytes).map_err(corrupt)?;
                Ok(!q.matches(&row) || f(row))
            });
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
        self.jobs.close();
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
        self.check_writable()?;
        self.db()?.begin_read().map(|_| ()).map_err(unavailable)
    }

    fn key_by_hash(&self, hash: &TokenHash) -> Result<Option<KeyRecord>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let index = txn.open_table(KEY_HASH).map_err(unavailable)?;
        let Some(name) = index.get(hash.as_slice()).map_err(unavailable)? else { return Ok(None) };
        let keys = txn.open_table(KEYS).map_err(unavailable)?;
        let found = keys.get(name.value()).map_err(unavailable)?;
        found.map(|v| serde_json::from_slice(v.value()).map_err(corrupt)).transpose()
    }

    fn key(&self, name: &str) -> Result<Option<KeyRecord>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let keys = txn.open_table(KEYS).map_err(unavailable)?;
        let found = keys.get(name.to_ascii_lowercase().as_str()).map_err(unavailable)?;
        found.map(|v| serde_json::from_slice(v.value()).map_err(corrupt)).transpose()
    }

    fn keys(&self, filter: &KeyFilter, after: Option<&str>, limit: usize) -> Result<Vec<KeyRecord>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
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
        let txn = self.db()?.begin_read().map_err(unavailable)?;
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
        self.check_writable()?;
        self.with_counters(&r.scope, &r.limits, r.at, |c| {
            admission::admit(c, &r.limits, r.ask, r.at).map(|()| admission::headroom(c, &r.limits, r.at))
        })
    }

    fn finish(&self, call: &Finished) -> Result<()> {
        {
            let mut recent = self.finished.lock().map_err(|_| unavailable("poisoned"))?;
            // No redb read here: a reader can wait on the page cache's mutex while the writer
            // flushes, and this runs on a may worker for every call. The writer skips an id the
            // ledger already holds, so the row and the persisted usage stay once per call id.
            if !recent.insert(&call.row.call_id) {
                return Ok(());
            }
        }
        let mut usage = None;
        if let Some(r) = &call.reservation {
            let settled = self.with_counters(&r.scope, &r.limits, call.now, |c| match call.settlement {
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
            });
            if let Err(e) = settled {
                // Nothing changed: forget the id so that the spooled retry settles it.
                if let Ok(mut recent) = self.finished.lock() {
                    recent.remove(&call.row.call_id);
                }
                return Err(e);
            }
        }
        let row = Box::new(call.row.clone());
        // Backpressure: when the writer falls behind, async rows wait like durable ones instead of
        // queueing without bound (the caller parks; no worker thread blocks).
        let behind = self.backlog.load(std::sync::atomic::Ordering::Relaxed) >= MAX_BACKLOG;
        if call.wait_durable || behind {
            self.send_and_wait(|ack| Job::Finish { row, usage, ack: Some(ack) })
        } else {
            self.backlog.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.send(Job::Finish { row, usage, ack: None })
        }
    }

    fn counters(&self, scope: &str, limits: &Limits, now: UnixMs) -> Result<Counters> {
        self.with_counters(scope, limits, now, |c| c.clone())
    }

    fn ledger_walk(
        &self,
        q: &LedgerQuery,
        after: Option<&(UnixMs, String)>,
        f: &mut dyn FnMut(LedgerRow) -> bool,
    ) -> Result<()> {
        // A long read (a CSV export) holds the file open; when writes start failing it steps
        // aside so the writer can reopen the file, instead of keeping the store down.
        let (mut seen, mut aborted) = (0u32, false);
        self.scan(q, after, &mut |row| {
            seen = seen.wrapping_add(1);
            if seen % 1024 == 0 && self.slot.failing.load(Ordering::Acquire) {
                aborted = true;
                return false;
            }
            f(row)
        })?;
        if aborted {
            return Err(unavailable(
                "the state file failed a write during this read; it was stopped so the file can be reopened",
            ));
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.send_and_wait(Job::Barrier)
    }

    fn object_owner(&self, id: &str) -> Result<Option<String>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let table = txn.open_table(index::OBJECTS).map_err(unavailable)?;
        let found = table.get(id).map_err(unavailable)?;
        Ok(found.map(|v| v.value().to_string()))
    }

    fn set_object_owner(&self, id: &str, owner: &str, _at: UnixMs) -> Result<()> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.apply(move |t| {
            if t.objects.get(id.as_str()).map_err(unavailable)?.is_none() {
                t.objects.insert(id.as_str(), owner.as_str()).map_err(unavailable)?;
            }
            Ok(())
        })
    }

    fn scim_create(&self, user: &ScimUser) -> Result<()> {
        let user = user.clone();
        self.apply(move |t| {
            let lower = user.user_name.to_ascii_lowercase();
            let mut names = name_ids(t, &lower)?;
            if t.scim.get(user.id.as_str()).map_err(unavailable)?.is_some()
                || !names.claim(user.tenant_id.as_deref(), &user.id)
            {
                return Err(StoreError::Conflict(format!("user `{}`", user.user_name)));
            }
            let bytes = serde_json::to_vec(&user).map_err(corrupt)?;
            t.scim.insert(user.id.as_str(), bytes.as_slice()).map_err(unavailable)?;
            store_name_ids(t, &lower, &names)
        })
    }

    fn scim_get(&self, id: &str) -> Result<Option<ScimUser>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let table = txn.open_table(SCIM).map_err(unavailable)?;
        let found = table.get(id).map_err(unavailable)?;
        found.map(|v| serde_json::from_slice(v.value()).map_err(corrupt)).transpose()
    }

    fn scim_by_user_name(&self, user_name: &str) -> Result<Vec<ScimUser>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let names = txn.open_table(SCIM_NAME).map_err(unavailable)?;
        let users = txn.open_table(SCIM).map_err(unavailable)?;
        let get = |id: &str| -> Result<Option<ScimUser>> {
            let found = users.get(id).map_err(unavailable)?;
            found.map(|v| serde_json::from_slice::<ScimUser>(v.value()).map_err(corrupt)).transpose()
        };
        let raw = names.get(user_name.to_ascii_lowercase().as_str()).map_err(unavailable)?;
        let ids =
            NameIds::parse(raw.as_ref().map(|v| v.value()), |id| Ok::<_, StoreError>(get(id)?.map(|u| u.tenant_id)))?;
        let mut out = Vec::new();
        for id in ids.ids() {
            out.extend(get(id)?);
        }
        Ok(out)
    }

    fn scim_list(&self, tenant: Option<&str>, start: usize, count: usize) -> Result<(Vec<ScimUser>, usize)> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let table = txn.open_table(SCIM).map_err(unavailable)?;
        let mut all = Vec::new();
        for entry in table.range::<&str>(..).map_err(unavailable)? {
            let (_, v) = entry.map_err(unavailable)?;
            let u: ScimUser = serde_json::from_slice(v.value()).map_err(corrupt)?;
            if tenant.is_none_or(|t| u.tenant_id.as_deref() == Some(t)) {
                all.push(u);
            }
        }
        let total = all.len();
        Ok((all.into_iter().skip(start.saturating_sub(1)).take(count).collect(), total))
    }

    fn scim_replace(&self, user: &ScimUser, expected_version: u64) -> Result<()> {
        let user = user.clone();
        self.apply(move |t| {
            let current: ScimUser = match t.scim.get(user.id.as_str()).map_err(unavailable)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(corrupt)?,
                None => return Err(StoreError::NotFound),
            };
            if current.version != expected_version {
                return Err(StoreError::VersionMismatch { current: current.version });
            }
            let (old, new) = (current.user_name.to_ascii_lowercase(), user.user_name.to_ascii_lowercase());
            if old != new || current.tenant_id != user.tenant_id {
                // Every check before any write: a failed job's writes would still commit with
                // the rest of its batch.
                let mut target = name_ids(t, &new)?;
                if old == new {
                    target.release(current.tenant_id.as_deref(), &user.id);
                }
                if !target.claim(user.tenant_id.as_deref(), &user.id) {
                    return Err(StoreError::Conflict(format!("user `{}`", user.user_name)));
                }
                if old != new {
                    let mut before = name_ids(t, &old)?;
                    before.release(current.tenant_id.as_deref(), &user.id);
                    store_name_ids(t, &old, &before)?;
                }
                store_name_ids(t, &new, &target)?;
            }
            let bytes = serde_json::to_vec(&user).map_err(corrupt)?;
            t.scim.insert(user.id.as_str(), bytes.as_slice()).map_err(unavailable)?;
            Ok(())
        })
    }

    fn scim_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.apply(move |t| {
            let current: ScimUser = match t.scim.remove(id.as_str()).map_err(unavailable)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(corrupt)?,
                None => return Err(StoreError::NotFound),
            };
            let lower = current.user_name.to_ascii_lowercase();
            let mut names = name_ids(t, &lower)?;
            names.release(current.tenant_id.as_deref(), &current.id);
            store_name_ids(t, &lower, &names)
        })
    }

    fn idempotency_get(&self, key: &str, now: UnixMs) -> Result<Option<IdempotencyRecord>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let table = txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
        let found = table.get(key).map_err(unavailable)?;
        let record: Option<IdempotencyRecord> =
            found.map(|v| serde_json::from_slice(v.value()).map_err(corrupt)).transpose()?;
        Ok(record.filter(|r| r.expires_at > now))
    }

    fn idempotency_put(&self, record: &IdempotencyRecord, now: UnixMs) -> Result<bool> {
        let record = record.clone();
        let stored = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stored);
        self.apply(move |t| {
            let live = match t.idempotency.get(record.key.as_str()).map_err(unavailable)? {
                Some(v) => serde_json::from_slice::<IdempotencyRecord>(v.value()).map_err(corrupt)?.expires_at > now,
                None => false,
            };
            if !live {
                let bytes = serde_json::to_vec(&record).map_err(corrupt)?;
                t.idempotency.insert(record.key.as_str(), bytes.as_slice()).map_err(unavailable)?;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        })?;
        Ok(stored.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn idempotency_finish(&self, record: &IdempotencyRecord) -> Result<()> {
        let record = record.clone();
        self.apply(move |t| {
            let bytes = serde_json::to_vec(&record).map_err(corrupt)?;
            t.idempotency.insert(record.key.as_str(), bytes.as_slice()).map(|_| ()).map_err(unavailable)
        })
    }

    fn drop_audit_before(&self, before: UnixMs) -> Result<u64> {
        index::drop_audit_before(before, |job| self.apply(job))
    }

    fn idempotency_release(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        self.apply(move |t| t.idempotency.remove(key.as_str()).map(|_| ()).map_err(unavailable))
    }

    fn audit_append(&self, entry: &AuditEntry) -> Result<()> {
        let entry = entry.clone();
        self.apply(move |t| {
            let bytes = serde_json::to_vec(&entry).map_err(corrupt)?;
            t.audit.insert(ledger_key(entry.at, &entry.id).as_slice(), bytes.as_slice()).map_err(unavailable)?;
            if let Some(tenant) = &entry.tenant_id {
                let k = index::tenant_key(tenant, entry.at, &entry.id);
                t.audit_by_tenant.insert(k.as_slice(), [].as_slice()).map_err(unavailable)?;
            }
            Ok(())
        })
    }

    fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let txn = self.db()?.begin_read().map_err(unavailable)?;
        let table = txn.open_table(AUDIT).map_err(unavailable)?;
        if let Some(tenant) = &q.tenant_scope {
            let by_tenant = txn.open_table(index::AUDIT_BY_TENANT).map_err(unavailable)?;
            return index::tenant_audit(&by_tenant, &table, tenant, q);
        }
        let mut out = Vec::new();
        for entry in table.range::<&[u8]>(..).map_err(unavailable)?.rev() {
            let (_, v) = entry.map_err(unavailable)?;
            let e: AuditEntry = serde_json::from_slice(v.value()).map_err(corrupt)?;
            if q.matches(&e) {
                out.push(e);
                if out.len() >= q.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn set_counters(&self, scope: &str, counters: &Counters) -> Result<()> {
        let row = UsageRow { requests: counters.requests, spend_microusd: counters.spend_microusd };
        let key = usage_key(scope, counters.period_start);
        self.send_and_wait(|ack| Job::SetUsage { key: key.clone(), row: row.clone(), ack })?;
        if let Ok(mut snapshot) = self.stored_usage.lock() {
            snapshot.insert(key, row);
        }
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
