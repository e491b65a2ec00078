//! A pool of OS threads, each owning one blocking client (a Postgres or Redis connection), reached
//! from coroutines through may channels: the coroutine parks, the worker thread never blocks
//! (runtime.md §4: inline sync calls pinned both workers at 96 ops/s; a pool of 32 gave 1,122).
//!
//! Invariants: a job that panics or fails with a broken connection drops that thread's client,
//! and the next job reconnects, so the gateway recovers by itself when the backend comes back;
//! a caller never waits longer than `CALL_TIMEOUT` for an answer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Result, StoreError};

/// Longest a caller waits for a pool thread's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

type Job<C> = Box<dyn FnOnce(&mut Option<C>) + Send>;

/// Opens a new client.
pub type Connect<C> = Arc<dyn Fn() -> std::result::Result<C, String> + Send + Sync>;

/// The pool: cheap to clone.
pub struct Pool<C> {
    jobs: may::sync::mpmc::Sender<Job<C>>,
    connect: Connect<C>,
}

impl<C> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self { jobs: self.jobs.clone(), connect: Arc::clone(&self.connect) }
    }
}

/// Whether an error means the connection itself is unusable (so the client is replaced).
pub trait Broken {
    fn is_broken(&self) -> bool;
}

impl<C: Send + 'static> Pool<C> {
    /// Starts `threads` threads named `name-N`; each connects on its first job.
    pub fn start(threads: usize, name: &str, connect: Connect<C>) -> Result<Self> {
        let (tx, rx) = may::sync::mpmc::channel::<Job<C>>();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    let mut client: Option<C> = None;
                    while let Ok(job) = rx.recv() {
                        job(&mut client);
                    }
                })
                .map_err(|e| StoreError::Unavailable(format!("cannot start {name} threads: {e}")))?;
        }
        Ok(Self { jobs: tx, connect })
    }

    /// Runs `f` with a connected client on a pool thread and waits (parking the coroutine).
    pub fn call<R, E>(&self, f: impl FnOnce(&mut C) -> std::result::Result<R, E> + Send + 'static) -> Result<R>
    where
        R: Send + 'static,
        E: Into<StoreError> + Broken + Send + 'static,
    {
        let (reply, answer) = may::sync::mpsc::channel::<Result<R>>();
        let connect = Arc::clone(&self.connect);
        let job: Job<C> = Box::new(move |slot: &mut Option<C>| {
            if slot.is_none() {
                match connect() {
                    Ok(c) => *slot = Some(c),
                    Err(e) => {
                        let _ = reply.send(Err(StoreError::Unavailable(e)));
                        return;
                    }
                }
            }
            let Some(client) = slot.as_mut() else { return };
            let outcome = catch_unwind(AssertUnwindSafe(|| f(client)));
            let result = match outcome {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => {
                    if e.is_broken() {
                        *slot = None;
                    }
                    Err(e.into())
                }
                Err(_) => {
                    *slot = None;
                    Err(StoreError::Unavailable("a storage call panicked".into()))
                }
            };
            let _ = reply.send(result);
        });
        self.jobs.send(job).map_err(|_| StoreError::Unavailable("the storage pool has stopped".into()))?;
        answer
            .recv_timeout(CALL_TIMEOUT)
            .map_err(|_| StoreError::Unavailable("the state backend did not answer in time".into()))?
    }
}
