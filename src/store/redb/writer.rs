//! The redb writer thread: the only code that opens write transactions on the file. It drains
//! queued jobs into one `Durability::Immediate` transaction at a time (group commit) and
//! acknowledges each job once its transaction is durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};

use super::{
    by_key_key, corrupt, index, ledger_key, open_file, unavailable, usage_key, Ack, Job, KeyOp, Slot, UsageDelta,
    UsageRow, AUDIT, IDEMPOTENCY, KEYS, KEY_FEED, KEY_HASH, LEDGER, LEDGER_BY_KEY, LEDGER_IDS, SCIM, SCIM_NAME, USAGE,
};
use crate::core::keys::KeyRecord;
use crate::core::ledger::LedgerRow;
use crate::core::time::UnixMs;
use crate::store::{Result, StoreError};

/// The writer's inbox. Rows nobody waits for are queued without waking the writer (it wakes on
/// its own every `ASYNC_WINDOW`); a job somebody waits for wakes it at once. One short mutex
/// section per push, never held across I/O: no per-call futex wake or context switch in async mode.
pub(super) struct JobQueue {
    state: Mutex<Inbox>,
    writer: std::sync::OnceLock<std::thread::Thread>,
}

#[derive(Default)]
struct Inbox {
    jobs: Vec<Job>,
    /// Some queued job has a caller parked on it.
    awaited: bool,
    closed: bool,
}

/// Rows nobody waits for (`ledger.durability = "async"`) are gathered this long per commit.
const ASYNC_WINDOW: Duration = Duration::from_millis(50);

impl JobQueue {
    pub(super) fn new() -> Self {
        Self { state: Mutex::new(Inbox::default()), writer: std::sync::OnceLock::new() }
    }

    /// Queues `job`; wakes the writer when somebody waits for it.
    pub(super) fn push(&self, job: Job) -> Result<()> {
        let awaited = job.is_awaited();
        {
            let mut inbox = self.state.lock().map_err(|_| unavailable("writer queue poisoned"))?;
            if inbox.closed {
                return Err(unavailable("the store is closing"));
            }
            inbox.jobs.push(job);
            inbox.awaited |= awaited;
        }
        if awaited {
            self.wake();
        }
        Ok(())
    }

    /// Everything queued now, without waiting.
    fn take_all(&self) -> Vec<Job> {
        let mut inbox = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inbox.awaited = false;
        std::mem::take(&mut inbox.jobs)
    }

    fn is_closed(&self) -> bool {
        self.state.lock().map_or(true, |i| i.closed)
    }

    /// No more jobs are taken; the writer commits what is queued and exits.
    pub(super) fn close(&self) {
        if let Ok(mut inbox) = self.state.lock() {
            inbox.closed = true;
        }
        self.wake();
    }

    fn wake(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark(); // an atomic swap unless the writer is parked
        }
    }

    /// The next batch: at once when somebody waits or the queue closed, else once the async window
    /// since the last commit has passed. `None` once closed and drained.
    fn next_batch(&self, last_commit: Instant) -> Option<Vec<Job>> {
        loop {
            let wait = {
                let mut inbox = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let due = ASYNC_WINDOW.saturating_sub(crate::clock::now().saturating_duration_since(last_commit));
                if inbox.awaited || inbox.closed || (!inbox.jobs.is_empty() && due.is_zero()) {
                    if inbox.jobs.is_empty() {
                        return None; // closed and drained
                    }
                    inbox.awaited = false;
                    return Some(std::mem::take(&mut inbox.jobs));
                }
                if inbox.jobs.is_empty() {
                    ASYNC_WINDOW
                } else {
                    due
                }
            };
            std::thread::park_timeout(wait);
        }
    }
}

/// The writer thread: commits queued jobs in groups, one immediate-durability transaction each.
///
/// A failed commit marks the store failing, answers every waiting job with the error, keeps the
/// batch's async ledger rows for the next attempt, reopens the file and backs off; the first
/// commit that succeeds again clears the flag.
pub(super) fn run(
    slot: &Slot,
    queue: &JobQueue,
    relay: &AckRelay,
    deleted: &Mutex<HashMap<String, KeyRecord>>,
    backlog: &AtomicUsize,
) {
    let _ = queue.writer.set(std::thread::current());
    let mut last_commit = crate::clock::now();
    let mut retry: Vec<Job> = Vec::new();
    let mut failures = 0u32;
    loop {
        let batch = if retry.is_empty() {
            match queue.next_batch(last_commit) {
                Some(b) => b,
                None => return,
            }
        } else {
            let mut b = std::mem::take(&mut retry);
            b.extend(queue.take_all());
            b
        };
        let unawaited = batch.iter().filter(|j| !j.is_awaited()).count();
        let mut drops = Vec::new();
        let mut acks: Vec<(Ack, Result<()>)> = Vec::new();
        let outcome = match slot.current() {
            Some(db) => commit_batch(&db, batch, &mut drops, &mut acks, &mut retry, deleted),
            None => {
                let err = unavailable("the state file is not open (reopening after a write error)");
                fail_jobs(batch, &err, &mut drops, &mut acks, &mut retry);
                Err(err)
            }
        };
        last_commit = crate::clock::now();
        shed_refusals(&mut retry);
        // The backlog counts async rows not yet committed: kept rows stay in it (rows of waiting
        // callers kept after a failed commit join it).
        if retry.len() >= unawaited {
            backlog.fetch_add(retry.len() - unawaited, Ordering::Relaxed);
        } else {
            backlog.fetch_sub(unawaited - retry.len(), Ordering::Relaxed);
        }
        let acks: Vec<(Ack, Result<()>)> = acks
            .into_iter()
            .map(|(ack, result)| {
                let result = match &outcome {
                    Ok(()) => result,
                    Err(e) => Err(e.clone()),
                };
                (ack, result)
            })
            .collect();
        acknowledge(acks, relay);
        match &outcome {
            Ok(()) => {
                if failures > 0 {
                    log::warn!("state file writes succeed again after {failures} failed attempt(s); admitting calls");
                }
                failures = 0;
                slot.failing.store(false, Ordering::Release);
            }
            Err(e) => {
                failures += 1;
                slot.failing.store(true, Ordering::Release);
                if failures == 1 || failures.is_power_of_two() {
                    log::error!(
                        "state file write failed (attempt {failures}): {e}; refusing governed calls with 503 and \
                         keeping {} unwritten ledger row(s) for the next attempt",
                        retry.len()
                    );
                }
                if queue.is_closed() && failures >= 5 {
                    log::error!("shutting down with {} ledger row(s) that could not be written", retry.len());
                    return;
                }
                reopen(slot);
                std::thread::sleep(backoff(failures));
            }
        }
        if let Some(db) = slot.current() {
            for (before, ack) in drops {
                let _ = ack.send(drop_before(&db, before));
            }
        } else {
            for (_, ack) in drops {
                let _ = ack.send(Err(unavailable("the state file is not open")));
            }
        }
    }
}

/// 100 ms, doubling, at most 3 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.saturating_sub(1).min(5))).min(Duration::from_secs(3))
}

/// Closes the database and opens the file again: after an I/O error redb answers every operation
/// with `PreviousIo` until the file is reopened. Readers holding the old handle finish first (a
/// bounded wait; if one outlives it, the next failed attempt reopens again).
fn reopen(slot: &Slot) {
    let old = slot.db.write().ok().and_then(|mut g| g.take());
    if let Some(old) = old {
        let deadline = crate::clock::now() + Duration::from_secs(1);
        while Arc::strong_count(&old) > 1 && crate::clock::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(old);
    }
    match open_file(&slot.path) {
        Ok(db) => {
            if let Ok(mut g) = slot.db.write() {
                *g = Some(Arc::new(db));
            }
        }
        Err(e) => log::warn!("cannot reopen {} yet: {e}", slot.path.display()),
    }
}

/// A batch that never reached a transaction: waiting jobs get `err`, ledger rows are kept.
fn fail_jobs(
    batch: Vec<Job>,
    err: &StoreError,
    drops: &mut Vec<(UnixMs, may::sync::mpsc::Sender<Result<u64>>)>,
    acks: &mut Vec<(Ack, Result<()>)>,
    retry: &mut Vec<Job>,
) {
    for job in batch {
        match job {
            Job::Finish { row, usage, ack } => {
                if let Some(ack) = ack {
                    acks.push((ack, Err(err.clone())));
                }
                retry.push(Job::Finish { row, usage, ack: None });
            }
            Job::Key { ack, .. } | Job::Barrier(ack) | Job::SetUsage { ack, .. } | Job::Apply(_, ack) => {
                acks.push((ack, Err(err.clone())))
            }
            Job::DropBefore { before, ack } => drops.push((before, ack)),
        }
    }
}

/// Hands a commit's acknowledgements to a coroutine that delivers them on a may worker.
///
/// A may channel send from this OS thread wakes the waiting coroutine's worker through its eventfd:
/// one `write` plus the worker's `read` and epoll wakeup per waiting call. Sent from a coroutine,
/// the same acknowledgement is a push onto that worker's run queue. So a commit that releases many
/// callers crosses threads once; a single acknowledgement goes directly (no extra hop).
pub(super) type AckRelay = may::sync::mpsc::Sender<Vec<(Ack, Result<()>)>>;

/// Starts the relay coroutine; it ends when the writer drops the sender.
pub(super) fn start_ack_relay() -> AckRelay {
    let (tx, rx) = may::sync::mpsc::channel::<Vec<(Ack, Result<()>)>>();
    may::go!(move || {
        while let Ok(acks) = rx.recv() {
            for (ack, result) in acks {
                let _ = ack.send(result);
            }
        }
    });
    tx
}

fn acknowledge(mut acks: Vec<(Ack, Result<()>)>, relay: &AckRelay) {
    if acks.len() > 1 {
        match relay.send(acks) {
            Ok(()) => return,
            Err(std::sync::mpsc::SendError(back)) => acks = back,
        }
    }
    for (ack, result) in acks {
        let _ = ack.send(result);
    }
}

/// Commits `batch` in one transaction. The ledger rows it wrote are moved to `written` (as async
/// rows), so that a failed commit can hand them to the next attempt; they are dropped on success.
fn commit_batch(
    db: &Database,
    batch: Vec<Job>,
    drops: &mut Vec<(UnixMs, may::sync::mpsc::Sender<Result<u64>>)>,
    acks: &mut Vec<(Ack, Result<()>)>,
    written: &mut Vec<Job>,
    deleted: &Mutex<HashMap<String, KeyRecord>>,
) -> Result<()> {
    let begun = db.begin_write().map_err(unavailable).and_then(|mut t| {
        t.set_durability(redb::Durability::Immediate).map_err(unavailable)?;
        Ok(t)
    });
    let mut txn = match begun {
        Ok(t) => t,
        Err(err) => {
            fail_jobs(batch, &err, drops, acks, written);
            return Err(err);
        }
    };
    let kept_from = written.len();
    let result =
        write_jobs(&mut txn, batch, drops, acks, written, deleted).and_then(|()| txn.commit().map_err(unavailable));
    if result.is_ok() {
        written.truncate(kept_from);
    }
    result
}

fn write_jobs(
    txn: &mut redb::WriteTransaction,
    batch: Vec<Job>,
    drops: &mut Vec<(UnixMs, may::sync::mpsc::Sender<Result<u64>>)>,
    acks: &mut Vec<(Ack, Result<()>)>,
    written: &mut Vec<Job>,
    deleted: &Mutex<HashMap<String, KeyRecord>>,
) -> Result<()> {
    let mut tables = match Tables::open(txn) {
        Ok(t) => t,
        Err(e) => {
            fail_jobs(batch, &e, drops, acks, written);
            return Err(e);
        }
    };
    {
        let mut usage_sums: HashMap<String, (u64, u64)> = HashMap::new();
        for job in batch {
            match job {
                Job::Finish { row, usage, ack } => {
                    let result = tables.finish(&row, usage.as_ref(), &mut usage_sums);
                    match ack {
                        Some(ack) => acks.push((ack, result)),
                        None => {
                            if let Err(e) = result {
                                log::error!("ledger write failed for {}: {e}", row.call_id);
                            }
                        }
                    }
                    // Kept until the commit succeeds: a failed commit retries every row (a waiting
                    // caller is told, but the upstream was called, so the row must still land).
                    written.push(Job::Finish { row, usage, ack: None });
                }
                Job::Key { op, ack } => {
                    let result = tables.key_op(op, deleted);
                    acks.push((ack, result));
                }
                Job::DropBefore { before, ack } => drops.push((before, ack)),
                Job::Barrier(ack) => acks.push((ack, Ok(()))),
                Job::Apply(f, ack) => {
                    let result = f(&mut tables);
                    acks.push((ack, result));
                }
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
    Ok(())
}

/// Kept rows of calls that were refused before any upstream work (no settlement, no cost) kept
/// at most, beyond the bound on the whole backlog.
const MAX_KEPT_REFUSALS: usize = 10_000;

/// Bounds what a long outage keeps: while writes fail, every call is refused with 503 and still
/// leaves a ledger row. Rows that carry money (a settlement or a cost) are all kept — admission is
/// refused while the file fails, so only calls in flight when it began make them. Refusal rows
/// past `MAX_KEPT_REFUSALS` (once the retry holds more than `MAX_BACKLOG` rows) are dropped,
/// newest first, and counted in the log: they bill nothing and the metrics counted them.
fn shed_refusals(retry: &mut Vec<Job>) {
    if retry.len() <= super::MAX_BACKLOG {
        return;
    }
    let mut refusals = 0usize;
    let before = retry.len();
    retry.retain(|job| match job {
        Job::Finish { row, usage: None, ack: None } if row.cost_microusd.is_none_or(|c| c == 0) => {
            refusals += 1;
            refusals <= MAX_KEPT_REFUSALS
        }
        _ => true,
    });
    if retry.len() < before {
        log::warn!(
            "state file still failing: dropped {} ledger row(s) of refused calls (no cost) to bound memory; {} row(s) kept",
            before - retry.len(),
            retry.len()
        );
    }
}

/// The tables of one write transaction.
pub(crate) struct Tables<'t> {
    pub(super) keys: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) key_hash: redb::Table<'t, &'static [u8], &'static str>,
    pub(super) key_feed: redb::Table<'t, u64, &'static str>,
    pub(super) usage: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) ledger: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) ledger_ids: redb::Table<'t, &'static str, u64>,
    pub(super) by_key: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) scim: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) scim_name: redb::Table<'t, &'static str, &'static str>,
    pub(super) idempotency: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) audit: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) by_tenant: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) audit_by_tenant: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) objects: redb::Table<'t, &'static str, &'static str>,
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
            scim: txn.open_table(SCIM).map_err(unavailable)?,
            scim_name: txn.open_table(SCIM_NAME).map_err(unavailable)?,
            idempotency: txn.open_table(IDEMPOTENCY).map_err(unavailable)?,
            audit: txn.open_table(AUDIT).map_err(unavailable)?,
            by_tenant: txn.open_table(index::LEDGER_BY_TENANT).map_err(unavailable)?,
            audit_by_tenant: txn.open_table(index::AUDIT_BY_TENANT).map_err(unavailable)?,
            objects: txn.open_table(index::OBJECTS).map_err(unavailable)?,
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
        // The key index carries the row itself: a one-key query is one sequential range read.
        self.by_key.insert(bk.as_slice(), bytes.as_slice()).map_err(unavailable)?;
        if let Some(tenant) = &row.tenant_id {
            let tk = index::tenant_key(tenant, row.created_at, &row.call_id);
            self.by_tenant.insert(tk.as_slice(), [].as_slice()).map_err(unavailable)?;
        }
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
                victims.push((row.created_at, row.call_id, row.key_name, row.tenant_id));
            }
            for (at, id, key, tenant) in &victims {
                tables.ledger.remove(ledger_key(*at, id).as_slice()).map_err(unavailable)?;
                tables.ledger_ids.remove(id.as_str()).map_err(unavailable)?;
                tables.by_key.remove(by_key_key(key, *at, id).as_slice()).map_err(unavailable)?;
                if let Some(t) = tenant {
                    tables.by_tenant.remove(index::tenant_key(t, *at, id).as_slice()).map_err(unavailable)?;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(cost: Option<u64>, settled: bool) -> Job {
        let usage =
            settled.then(|| UsageDelta { scope: "key:k".into(), period_start: 0, requests: 1, spend_microusd: 1 });
        Job::Finish { row: Box::new(LedgerRow { cost_microusd: cost, ..LedgerRow::default() }), usage, ack: None }
    }

    #[test]
    fn a_long_outage_keeps_every_billed_row_and_a_bounded_number_of_refusals() {
        let mut retry: Vec<Job> = (0..100).map(|i| finish(Some(i + 1), i % 2 == 0)).collect();
        retry.extend((0..super::super::MAX_BACKLOG).map(|_| finish(None, false)));
        retry.extend((0..10).map(|_| finish(Some(0), false)));
        shed_refusals(&mut retry);
        assert_eq!(retry.len(), 100 + MAX_KEPT_REFUSALS);
        let billed =
            retry.iter().filter(|j| matches!(j, Job::Finish { row, .. } if row.cost_microusd.unwrap_or(0) > 0));
        assert_eq!(billed.count(), 100, "no row that carries money is dropped");
        // Below the backlog bound nothing is dropped.
        let mut small: Vec<Job> = (0..1_000).map(|_| finish(None, false)).collect();
        shed_refusals(&mut small);
        assert_eq!(small.len(), 1_000);
    }
}
