//! The process's lifecycle counters, shared by the server (connections, in-flight requests,
//! draining), the health routes and the state probe (whether the state backend answers).
//!
//! Invariant: atomics only — read on every health check and by the drain loop, never locked.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

/// Shared lifecycle counters. Atomics only: read by health checks and the drain loop.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Set on SIGTERM/SIGINT: the listener closes and new requests get 503 `draining`.
    pub draining: AtomicBool,
    pub open_connections: AtomicUsize,
    /// Requests whose response has not finished yet (streams included).
    pub in_flight: AtomicUsize,
    /// Set while the state backend does not answer (`/readyz` turns 503).
    pub state_down: AtomicBool,
    /// When a state operation last succeeded (unix ms): a ping that failed before it does not
    /// mark the backend down.
    pub state_ok_at: AtomicU64,
}
