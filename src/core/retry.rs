//! When a failed upstream attempt is tried again, and after how long: the retry policy, pure (the
//! shell passes the elapsed time and a jitter draw, and sleeps).
//!
//! Invariants: a 429 on a single provider key is passed through at once (the same key would be
//! refused again, and the client's SDK retries on its own); a 429 with a key pool moves to the
//! next key without waiting; anything else waits a jittered exponential backoff, at least the
//! provider's `retry-after`; no wait runs past the retry budget (then the answer is passed through).

/// Total time one call may spend waiting between attempts.
pub const BUDGET_MS: u64 = 4_000;
/// First backoff step; each later one doubles, up to `MAX_STEP_MS`.
pub const BASE_MS: u64 = 100;
pub const MAX_STEP_MS: u64 = 2_000;

/// What went wrong with one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// The upstream answered this retryable status, with this `retry-after` in milliseconds.
    Status(u16, Option<u64>),
    /// It could not be reached (connect or DNS failure).
    Unreachable,
}

/// The decision after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again after this many milliseconds.
    RetryIn(u64),
    /// Give the client this answer (or error) now.
    GiveUp,
}

/// `attempt` is the 0-based attempt that failed, `keys` the provider's pool size, `waited_ms` the
/// time already spent waiting, `jitter` a draw in `[0, 1)`.
#[must_use]
pub fn next(failed: Failed, attempt: u32, keys: usize, waited_ms: u64, jitter: f64) -> Next {
    let left = BUDGET_MS.saturating_sub(waited_ms);
    let backoff = || {
        let step = BASE_MS.saturating_mul(1 << attempt.min(10)).min(MAX_STEP_MS);
        // "Equal jitter": half the step fixed, half random, so retries spread but never bunch at 0.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let random = (step as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as u64;
        step / 2 + random
    };
    let wait = match failed {
        Failed::Status(429, _) if keys > 1 => 0,
        Failed::Status(429, _) => return Next::GiveUp,
        Failed::Status(_, Some(after)) => after.max(backoff()),
        Failed::Status(_, None) | Failed::Unreachable => backoff(),
    };
    if wait > left {
        Next::GiveUp
    } else {
        Next::RetryIn(wait)
    }
}

/// A `retry-after` header in milliseconds: delta seconds (`2`, `1.5`) or `retry-after-ms`'s
/// milliseconds. HTTP dates are not honoured (they need a clock the core does not have).
#[must_use]
pub fn retry_after_ms(retry_after: Option<&str>, retry_after_ms: Option<&str>) -> Option<u64> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Some(ms.min(3.6e6) as u64);
    }
    let secs = retry_after?.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((secs.min(3600.0) * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_table() {
        let cases = [
            // (failed, attempt, keys, waited, jitter) → next
            (Failed::Status(429, None), 0, 1, 0, 0.5, Next::GiveUp),
            (Failed::Status(429, Some(1_000)), 0, 1, 0, 0.5, Next::GiveUp),
            (Failed::Status(429, Some(9_000)), 0, 3, 0, 0.5, Next::RetryIn(0)),
            (Failed::Status(503, None), 0, 1, 0, 0.0, Next::RetryIn(50)),
            (Failed::Status(503, None), 0, 1, 0, 0.999, Next::RetryIn(99)),
            (Failed::Status(503, None), 1, 1, 0, 0.0, Next::RetryIn(100)),
            (Failed::Status(503, None), 5, 1, 0, 0.0, Next::RetryIn(1_000)),
            (Failed::Status(503, Some(1_500)), 0, 1, 0, 0.5, Next::RetryIn(1_500)),
            (Failed::Status(503, Some(10_000)), 0, 1, 0, 0.5, Next::GiveUp),
            (Failed::Unreachable, 0, 2, 3_990, 0.5, Next::GiveUp),
            (Failed::Unreachable, 1, 2, 3_000, 0.5, Next::RetryIn(150)),
        ];
        for (failed, attempt, keys, waited, jitter, want) in cases {
            assert_eq!(
                next(failed, attempt, keys, waited, jitter),
                want,
                "{failed:?} #{attempt} keys={keys} waited={waited}"
            );
        }
        // Jitter spreads the waits within [step/2, step).
        for j in [0.0, 0.25, 0.5, 0.75, 0.9999] {
            let Next::RetryIn(w) = next(Failed::Unreachable, 2, 1, 0, j) else { panic!() };
            assert!((200..400).contains(&w), "{w}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        assert_eq!(retry_after_ms(Some("2"), None), Some(2_000));
        assert_eq!(retry_after_ms(Some(" 1.5 "), None), Some(1_500));
        assert_eq!(retry_after_ms(Some("2"), Some("250")), Some(250), "retry-after-ms is the finer one");
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT"), None), None);
        assert_eq!(retry_after_ms(Some("-1"), None), None);
        assert_eq!(retry_after_ms(Some("999999"), None), Some(3_600_000));
        assert_eq!(retry_after_ms(None, None), None);
    }
}
