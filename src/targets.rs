//! The live numbers of the routing targets (provider, model): calls in flight, a decaying
//! average of time to first byte and the round-robin turn (what the stateful alias strategies
//! read), each target's circuit breaker (`core::routing::Breaker`), and the upstream attempt and
//! error counters the metrics show.
//!
//! Invariants: every `begin` is paired with one end (the guard ends it when dropped), so
//! in-flight counts return to zero; the numbers are a snapshot for `core::routing::plan`, never
//! held across a call; the lock is held for a few map operations, never across I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::core::metrics::Upstream;
use crate::core::routing::{decay, Breaker, Gate, Live, Target};

#[derive(Clone, Copy, Debug, Default)]
struct Stat {
    in_flight: u64,
    ttfb_us: Option<u64>,
    breaker: Breaker,
}

#[derive(Debug, Default)]
struct Counts {
    /// (provider, outcome `ok` | `failed`) → attempts
    attempts: HashMap<(usize, &'static str), u64>,
    /// (provider, error code) → failed calls at it
    errors: HashMap<(usize, String), u64>,
}

/// Live numbers per target.
#[derive(Debug, Default)]
pub struct Targets {
    stats: Mutex<HashMap<(usize, String), Stat>>,
    counts: Mutex<Counts>,
    turn: AtomicU64,
}

impl Targets {
    /// The next round-robin turn.
    pub fn turn(&self) -> u64 {
        self.turn.fetch_add(1, Ordering::Relaxed)
    }

    /// What the strategies read about `t` now (`cost` is the caller's estimate there).
    pub fn live(&self, t: &Target, cost_microusd: Option<u64>) -> Live {
        let stat =
            self.stats.lock().ok().and_then(|s| s.get(&(t.provider, t.model.clone())).copied()).unwrap_or_default();
        Live { in_flight: stat.in_flight, ttfb_us: stat.ttfb_us, cost_microusd }
    }

    /// Whether a plan tries `t` now (its circuit's gate; a `Probe` is this call's alone).
    pub fn gate(&self, t: &Target, now: u64) -> Gate {
        self.stats
            .lock()
            .map_or(Gate::Closed, |mut s| s.entry((t.provider, t.model.clone())).or_default().breaker.gate(now))
    }

    /// The call at `t` ended after `attempts` upstream requests: served, or failed with `error`.
    pub fn outcome(&self, t: &Target, attempts: u64, error: Option<&str>, now: u64) {
        if let Ok(mut s) = self.stats.lock() {
            s.entry((t.provider, t.model.clone())).or_default().breaker.record(error.is_none(), now);
        }
        if let Ok(mut c) = self.counts.lock() {
            let failed = if error.is_some() { attempts } else { attempts.saturating_sub(1) };
            *c.attempts.entry((t.provider, "failed")).or_default() += failed;
            if error.is_none() {
                *c.attempts.entry((t.provider, "ok")).or_default() += 1;
            }
            if let Some(code) = error {
                *c.errors.entry((t.provider, code.to_string())).or_default() += 1;
            }
        }
    }

    /// Every target seen, with its circuit state, and the attempt and error counters, for the
    /// metrics (`names` turns a provider index into its name).
    pub fn upstream(&self, now: u64, names: impl Fn(usize) -> String) -> Upstream {
        let mut out = Upstream::default();
        if let Ok(s) = self.stats.lock() {
            out.health = s.iter().map(|((p, m), st)| (names(*p), m.clone(), st.breaker.state(now))).collect();
        }
        if let Ok(c) = self.counts.lock() {
            out.attempts = c.attempts.iter().map(|((p, o), n)| (names(*p), *o, *n)).collect();
            out.errors = c.errors.iter().map(|((p, k), n)| (names(*p), k.clone(), *n)).collect();
        }
        out.health.sort();
        out.attempts.sort();
        out.errors.sort();
        out
    }

    /// A call starts at `t`; the guard ends it.
    pub fn begin<'a>(&'a self, t: &Target) -> InFlight<'a> {
        if let Ok(mut s) = self.stats.lock() {
            s.entry((t.provider, t.model.clone())).or_default().in_flight += 1;
        }
        InFlight { targets: self, key: (t.provider, t.model.clone()), ttfb_us: None }
    }
}

/// A call in flight at a target; dropping it ends the call (recording its time to first byte).
pub struct InFlight<'a> {
    targets: &'a Targets,
    key: (usize, String),
    /// Set when the target answered, for the latency average.
    pub ttfb_us: Option<u64>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.targets.stats.lock() {
            let stat = s.entry(self.key.clone()).or_default();
            stat.in_flight = stat.in_flight.saturating_sub(1);
            if let Some(t) = self.ttfb_us {
                stat.ttfb_us = Some(decay(stat.ttfb_us, t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_return_to_zero_and_latency_decays() {
        let targets = Targets::default();
        let t = Target { provider: 1, model: "m".into() };
        {
            let mut a = targets.begin(&t);
            let _b = targets.begin(&t);
            assert_eq!(targets.live(&t, Some(5)).in_flight, 2);
            a.ttfb_us = Some(1000);
        }
        let live = targets.live(&t, Some(5));
        assert_eq!((live.in_flight, live.ttfb_us, live.cost_microusd), (0, Some(1000), Some(5)));
        assert_eq!((targets.turn(), targets.turn()), (0, 1));
    }
}
