//! The only place that reads the clock, and the source of call ids.
//!
//! Invariant: nothing under `core/` reads time; the shell calls these functions and passes the
//! results in. Keeping every clock read here makes the time-dependent code easy to find and test.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (wall clock, for timestamps that leave the process).
#[must_use]
#[expect(clippy::disallowed_methods, reason = "clock.rs is the one place that reads the clock")]
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A monotonic instant, for measuring latencies.
#[must_use]
#[expect(clippy::disallowed_methods, reason = "clock.rs is the one place that reads the clock")]
pub fn now() -> Instant {
    Instant::now()
}

/// Time elapsed since `since`, in whole microseconds.
#[must_use]
pub fn micros_since(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Duration elapsed since `since`.
#[must_use]
pub fn elapsed(since: Instant) -> Duration {
    since.elapsed()
}

/// A new call id: `prodex-<UUIDv7>`. UUIDv7 is time-ordered, so ids sort by creation time.
#[must_use]
pub fn call_id() -> String {
    format!("prodex-{}", uuid::Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_prefixed_uuid_v7_and_sort_by_time() {
        let a = call_id();
        let b = call_id();
        assert!(a.starts_with("prodex-"));
        assert_eq!(a.len(), "prodex-".len() + 36);
        assert_eq!(&a[7 + 14..7 + 15], "7", "version nibble is 7: {a}");
        assert!(a <= b);
    }
}
