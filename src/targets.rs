//! The live numbers of the routing targets (provider, model) the stateful alias strategies read:
//! calls in flight, a decaying average of time to first byte, and the round-robin turn.
//!
//! Invariants: every `begin` is paired with one `end` (the guard ends it when dropped), so
//! in-flight counts return to zero; the numbers are a snapshot for `core::routing::plan`, never
//! held across a call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::core::routing::{decay, Live, Target};

#[derive(Clone, Copy, Debug, Default)]
struct Stat {
    in_flight: u64,
    ttfb_us: Option<u64>,
}

/// Live numbers per target.
#[derive(Debug, Default)]
pub struct Targets {
    stats: Mutex<HashMap<(usize, String), Stat>>,
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
