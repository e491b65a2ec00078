//! Admission: may this call start, and what does it hold while it runs? Reserve-then-settle: a call
//! that passes holds a reservation of its worst-case cost and tokens; at completion the reservation
//! is replaced by the provider-reported usage (settle) or dropped (release).
//!
//! Pure: `Counters` is the state of one limit scope (a key, or the budget group keys share); the
//! store applies these functions atomically (under its lock, in SQL, or in a Lua script). The
//! rules a store applies — `admit`, `settle`, `settle_expired`, `release`, `sweeps_expired`,
//! `headroom` — run as they are on redb and Postgres and are mirrored in `store/redis.lua`;
//! `tests/rules.rs` runs one scenario table on this module and on every store. `worst_case`,
//! `spend_left_after` and the estimates run in the proxy, before and after the store call, on
//! every backend alike: a store receives their result (the `Ask`) and has nothing to mirror.
//!
//! Invariants: committed spend + open reservations never exceed the budget; a refusal names the
//! first limit that refused, checked in the order of gateway.md §4 (request budget → spend budget →
//! RPM → TPM → parallel); a refused call changes nothing.

use serde::{Deserialize, Serialize};

use crate::core::keys::{BudgetPeriod, Limits};
use crate::core::pricing::{cost, Price};
use crate::core::time::UnixMs;
use crate::core::usage::Usage;

/// Length of the sliding RPM/TPM window.
pub const WINDOW_SECS: u64 = 60;
/// How far ahead of a call's own clock a window is read when a later-stamped call already counted.
pub const MAX_SKEW_SECS: u64 = 5;

/// Per-second counts over the last `WINDOW_SECS` seconds (oldest first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    buckets: Vec<(u64, u64)>,
}

impl Window {
    /// The second the window is read at: `now_sec`, or the newest bucket's second when a call
    /// stamped later already counted. Calls reach a shared store out of order (two nodes, two
    /// workers); read at a stale second, the window would skip the newer bucket and admit past
    /// the limit at a second boundary.
    fn effective(&self, now_sec: u64) -> u64 {
        // At most a few seconds ahead: a node whose clock runs far ahead (or one that stepped
        // back) must not push the window past every new bucket and switch the limit off.
        self.buckets.last().map_or(now_sec, |(sec, _)| (*sec).clamp(now_sec, now_sec + MAX_SKEW_SECS))
    }

    fn prune(&mut self, now_sec: u64) {
        let now = self.effective(now_sec);
        self.buckets.retain(|(sec, _)| sec + WINDOW_SECS > now);
    }

    /// Sum over the window ending at `now_sec` (or at the newest bucket, if that is later).
    #[must_use]
    pub fn sum(&self, now_sec: u64) -> u64 {
        let now = self.effective(now_sec);
        self.buckets.iter().filter(|(sec, _)| sec + WINDOW_SECS > now && *sec <= now).map(|(_, n)| n).sum()
    }

    /// Adds `n` (or removes, for negative) at second `sec`.
    pub fn add(&mut self, sec: u64, n: i64, now_sec: u64) {
        self.prune(now_sec);
        match self.buckets.iter_mut().find(|(s, _)| *s == sec) {
            Some((_, count)) => *count = count.saturating_add_signed(n),
            None if n > 0 => {
                self.buckets.push((sec, n.unsigned_abs()));
                self.buckets.sort_unstable();
            }
            None => {}
        }
    }

    /// Seconds until the window sum drops to `target` or below (0 if it already has).
    #[must_use]
    pub fn seconds_until_at_most(&self, target: u64, now_sec: u64) -> u64 {
        let now = self.effective(now_sec);
        let mut total = self.sum(now);
        for (sec, n) in self.buckets.iter().filter(|(sec, _)| sec + WINDOW_SECS > now) {
            if total <= target {
                break;
            }
            total = total.saturating_sub(*n);
            if total <= target {
                return (sec + WINDOW_SECS).saturating_sub(now).max(1);
            }
        }
        if total <= target {
            0
        } else {
            WINDOW_SECS
        }
    }
}

/// State of one limit scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Start of the budget period the period counters belong to.
    pub period_start: UnixMs,
    /// Admitted requests in the period (released ones are given back).
    pub requests: u64,
    /// Settled spend in the period, micro-USD.
    pub spend_microusd: u64,
    /// Open reservations, micro-USD.
    pub reserved_microusd: u64,
    /// Calls running now.
    pub in_flight: u64,
    /// Requests per second over the last minute.
    pub minute_requests: Window,
    /// Tokens per second over the last minute (reserved, then corrected to actual at settle).
    pub minute_tokens: Window,
}

/// What a call asks to hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ask {
    /// Worst-case cost, micro-USD (0 when the model has no price and the key no spend budget).
    pub cost_microusd: u64,
    /// Tokens counted against TPM until settle (input estimate + requested output).
    pub tokens: u64,
}

/// Which limit refused, and when retrying makes sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    RequestBudget,
    SpendBudget,
    Rpm { retry_after_secs: u64 },
    Tpm { retry_after_secs: u64 },
    Parallel,
}

impl Refusal {
    /// The stable error code (gateway.md §3).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::RequestBudget => "request_budget_exceeded",
            Self::SpendBudget => "budget_exceeded",
            Self::Rpm { .. } => "rpm_limit_exceeded",
            Self::Tpm { .. } => "tpm_limit_exceeded",
            Self::Parallel => "parallel_limit_exceeded",
        }
    }
}

/// The start of the calendar period containing `now` (UTC; weeks start on Monday).
#[must_use]
pub fn period_start(period: BudgetPeriod, now: UnixMs) -> UnixMs {
    const DAY: u64 = 86_400_000;
    match period {
        BudgetPeriod::Total => 0,
        BudgetPeriod::Daily => now - now % DAY,
        BudgetPeriod::Weekly => {
            let days = now / DAY;
            // 1970-01-01 was a Thursday: days since the previous Monday = (days + 3) % 7.
            (days - (days + 3) % 7) * DAY
        }
        BudgetPeriod::Monthly => {
            let date = crate::core::time::format_rfc3339(now);
            crate::core::time::parse_rfc3339(&format!("{}-01T00:00:00Z", &date[..7])).unwrap_or(0)
        }
    }
}

/// The start of the period after the one containing `now` (`None` for `Total`).
#[must_use]
pub fn period_end(period: BudgetPeriod, now: UnixMs) -> Option<UnixMs> {
    const DAY: u64 = 86_400_000;
    match period {
        BudgetPeriod::Total => None,
        BudgetPeriod::Daily => Some(period_start(period, now) + DAY),
        BudgetPeriod::Weekly => Some(period_start(period, now) + 7 * DAY),
        BudgetPeriod::Monthly => Some(period_start(period, period_start(period, now) + 32 * DAY)),
    }
}

/// Moves the period counters to the period containing `now`.
pub fn roll_period(c: &mut Counters, period: BudgetPeriod, now: UnixMs) {
    let start = period_start(period, now);
    if c.period_start != start {
        c.period_start = start;
        c.requests = 0;
        c.spend_microusd = 0;
    }
}

/// Admits a call against `limits`, recording its reservation in `c`, or refuses it (changing nothing).
pub fn admit(c: &mut Counters, limits: &Limits, ask: Ask, now: UnixMs) -> Result<(), Refusal> {
    roll_period(c, limits.budget_period, now);
    let sec = now / 1000;
    if limits.request_budget.is_some_and(|max| c.requests >= max) {
        return Err(Refusal::RequestBudget);
    }
    if let Some(budget) = limits.budget_microusd {
        let held = c.spend_microusd.saturating_add(c.reserved_microusd);
        if held.saturating_add(ask.cost_microusd) > budget || held >= budget {
            return Err(Refusal::SpendBudget);
        }
    }
    if let Some(rpm) = limits.rpm_limit {
        if c.minute_requests.sum(sec) >= rpm {
            return Err(Refusal::Rpm {
                retry_after_secs: c.minute_requests.seconds_until_at_most(rpm.saturating_sub(1), sec),
            });
        }
    }
    if let Some(tpm) = limits.tpm_limit {
        let used = c.minute_tokens.sum(sec);
        // One call bigger than the whole limit may still run alone, or it could never run at all.
        if used > 0 && used.saturating_add(ask.tokens) > tpm {
            let target = tpm.saturating_sub(ask.tokens.min(tpm));
            return Err(Refusal::Tpm { retry_after_secs: c.minute_tokens.seconds_until_at_most(target, sec) });
        }
    }
    if limits.max_parallel_requests.is_some_and(|max| c.in_flight >= max) {
        return Err(Refusal::Parallel);
    }
    c.requests += 1;
    c.reserved_microusd = c.reserved_microusd.saturating_add(ask.cost_microusd);
    c.in_flight += 1;
    c.minute_requests.add(sec, 1, sec);
    c.minute_tokens.add(sec, i64::try_from(ask.tokens).unwrap_or(i64::MAX), sec);
    Ok(())
}

/// Replaces a reservation made at `reserved_at` with what the call really cost and used.
pub fn settle(
    c: &mut Counters,
    limits: &Limits,
    ask: Ask,
    reserved_at: UnixMs,
    cost_microusd: u64,
    tokens: u64,
    now: UnixMs,
) {
    c.reserved_microusd = c.reserved_microusd.saturating_sub(ask.cost_microusd);
    c.in_flight = c.in_flight.saturating_sub(1);
    roll_period(c, limits.budget_period, now);
    c.spend_microusd = c.spend_microusd.saturating_add(cost_microusd);
    let delta = i64::try_from(tokens).unwrap_or(i64::MAX) - i64::try_from(ask.tokens).unwrap_or(i64::MAX);
    c.minute_tokens.add(reserved_at / 1000, delta, now / 1000);
}

/// Whether a call arriving at `now` sweeps the scope's expired reservations first (shared
/// backends, where a reservation older than its time to live belongs to a dead holder). Sweeping
/// costs a query, so it happens now and then — one call in 16 by its millisecond — and always when
/// the call would otherwise be refused while calls are in flight: a call is never refused because
/// of a dead holder's reservation.
#[must_use]
pub fn sweeps_expired(c: &Counters, limits: &Limits, ask: Ask, now: UnixMs) -> bool {
    c.in_flight > 0 && (now % 16 == 0 || admit(&mut c.clone(), limits, ask, now).is_err())
}

/// Settles a call whose reservation already expired and was released (a shared backend lets
/// another call release a reservation older than its time to live, taking its holder for dead):
/// the spend is still billed and the call still counts, in the period it ends in; the
/// reservation, the in-flight slot and its tokens were given back when it expired.
pub fn settle_expired(c: &mut Counters, limits: &Limits, cost_microusd: u64, now: UnixMs) {
    roll_period(c, limits.budget_period, now);
    c.spend_microusd = c.spend_microusd.saturating_add(cost_microusd);
    c.requests += 1;
}

/// Drops a reservation without usage (the call failed before producing anything billable).
pub fn release(c: &mut Counters, limits: &Limits, ask: Ask, reserved_at: UnixMs, now: UnixMs) {
    c.reserved_microusd = c.reserved_microusd.saturating_sub(ask.cost_microusd);
    c.in_flight = c.in_flight.saturating_sub(1);
    if period_start(limits.budget_period, reserved_at) == c.period_start {
        c.requests = c.requests.saturating_sub(1);
    }
    c.minute_tokens.add(reserved_at / 1000, -i64::try_from(ask.tokens).unwrap_or(i64::MAX), now / 1000);
}

/// What is left of each limit, for the `x-ratelimit-*` headers and the usage API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Headroom {
    pub requests: Option<(u64, u64, u64)>,
    pub tokens: Option<(u64, u64, u64)>,
    pub spend_remaining_microusd: Option<u64>,
}

/// Limit, remaining and seconds-to-reset for requests (RPM) and tokens (TPM).
#[must_use]
pub fn headroom(c: &Counters, limits: &Limits, now: UnixMs) -> Headroom {
    let sec = now / 1000;
    let requests = limits.rpm_limit.map(|l| {
        let used = c.minute_requests.sum(sec);
        (l, l.saturating_sub(used), c.minute_requests.seconds_until_at_most(0, sec))
    });
    let tokens = limits.tpm_limit.map(|l| {
        let used = c.minute_tokens.sum(sec);
        (l, l.saturating_sub(used), c.minute_tokens.seconds_until_at_most(0, sec))
    });
    let spend_remaining_microusd =
        limits.budget_microusd.map(|b| b.saturating_sub(c.spend_microusd.saturating_add(c.reserved_microusd)));
    Headroom { requests, tokens, spend_remaining_microusd }
}

/// A fast upper-bound estimate of a request's input tokens from its body size. BPE tokenizers
/// produce at least one byte per token and about four for English text; counting one token per two
/// bytes over-reserves roughly 2× for typical text (JSON syntax included), and settle corrects it.
/// It under-estimates only for text averaging under two bytes per token, which real prompts do not.
#[must_use]
pub fn estimate_input_tokens(body_bytes: usize) -> u64 {
    (body_bytes as u64).div_ceil(2)
}

/// Output tokens reserved when neither the request nor the catalog bounds the completion.
pub const DEFAULT_MAX_OUTPUT: u64 = 4_096;

/// A call's worst case and what it asks of the limits: every choice running to the request's
/// output bound (else the model's maximum output, else `DEFAULT_MAX_OUTPUT`) on `input` tokens,
/// priced at `price` (0 when the model has none). TPM counts only the output the request bounds.
#[must_use]
pub fn worst_case(input: u64, max_output: Option<u64>, choices: u64, price: Option<&Price>) -> (Usage, Ask) {
    let output = max_output
        .or(price.map(|p| p.max_output_tokens).filter(|m| *m > 0))
        .unwrap_or(DEFAULT_MAX_OUTPUT)
        .saturating_mul(choices);
    let worst = Usage { input_tokens: input, output_tokens: output, ..Usage::default() };
    let ask = Ask {
        cost_microusd: price.map_or(0, |p| cost(&worst, p)),
        tokens: input.saturating_add(max_output.unwrap_or(0).saturating_mul(choices)),
    };
    (worst, ask)
}

/// The spend left once a call settles at `spent`, from the headroom its reservation saw (the
/// reservation itself already taken out of it).
#[must_use]
pub fn spend_left_after(headroom_remaining: Option<u64>, reserved: u64, spent: u64) -> Option<u64> {
    headroom_remaining.map(|r| r.saturating_add(reserved).saturating_sub(spent))
}

/// Why a spend budget refused `ask`, with the numbers: either the budget is used up, or — the
/// common surprise — what is left is less than this call's worst case, which `max_tokens` lowers.
#[must_use]
pub fn spend_refusal_message(c: &Counters, budget_microusd: u64, ask: Ask) -> String {
    use crate::core::pricing::usd_text;
    let held = c.spend_microusd.saturating_add(c.reserved_microusd);
    if held >= budget_microusd {
        return format!(
            "this key's spend budget is used up: ${} spent and ${} held by calls in flight, of ${}",
            usd_text(c.spend_microusd),
            usd_text(c.reserved_microusd),
            usd_text(budget_microusd)
        );
    }
    format!(
        "the worst-case cost of this call (${}) exceeds the ${} left of this key's ${} spend budget \
         (${} spent, ${} held by calls in flight); set max_tokens (or max_completion_tokens / \
         max_output_tokens) to reserve less",
        usd_text(ask.cost_microusd),
        usd_text(budget_microusd - held),
        usd_text(budget_microusd),
        usd_text(c.spend_microusd),
        usd_text(c.reserved_microusd)
    )
}

/// Output tokens to bill for `content_bytes` of generated text when the provider reported no
/// usage (a stream cut short): about 4 bytes per token, rounded up.
#[must_use]
pub fn estimate_output_tokens(content_bytes: u64) -> u64 {
    content_bytes.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::parse_rfc3339;

    #[test]
    fn spend_refusals_say_whether_the_budget_or_the_worst_case_is_the_problem() {
        let c =
            |spend, reserved| Counters { spend_microusd: spend, reserved_microusd: reserved, ..Counters::default() };
        let ask = |cost| Ask { cost_microusd: cost, tokens: 0 };
        assert_eq!(
            spend_refusal_message(&c(0, 0), 5_000, ask(9_830)),
            "the worst-case cost of this call ($0.00983) exceeds the $0.005 left of this key's $0.005 spend budget \
             ($0 spent, $0 held by calls in flight); set max_tokens (or max_completion_tokens / max_output_tokens) \
             to reserve less"
        );
        assert_eq!(
            spend_refusal_message(&c(4_000, 1_000), 5_000, ask(1)),
            "this key's spend budget is used up: $0.004 spent and $0.001 held by calls in flight, of $0.005"
        );
        assert!(spend_refusal_message(&c(1_000_000, 0), 2_500_000, ask(2_000_000))
            .contains("the $1.5 left of this key's $2.5"));
    }

    fn t(s: &str) -> UnixMs {
        parse_rfc3339(s).unwrap()
    }

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn calendar_periods_in_utc() {
        let now = t("2026-11-28T13:45:10.5Z"); // a Saturday
        assert_eq!(period_start(BudgetPeriod::Total, now), 0);
        assert_eq!(period_start(BudgetPeriod::Daily, now), t("2026-11-28T00:00:00Z"));
        assert_eq!(period_start(BudgetPeriod::Weekly, now), t("2026-11-23T00:00:00Z"));
        assert_eq!(period_start(BudgetPeriod::Monthly, now), t("2026-11-01T00:00:00Z"));
        assert_eq!(period_end(BudgetPeriod::Monthly, now), Some(t("2026-12-01T00:00:00Z")));
        assert_eq!(period_end(BudgetPeriod::Monthly, t("2026-12-31T23:59:59Z")), Some(t("2027-01-01T00:00:00Z")));
        assert_eq!(period_end(BudgetPeriod::Weekly, now), Some(t("2026-11-30T00:00:00Z")));
        assert_eq!(period_start(BudgetPeriod::Weekly, t("2026-11-30T00:00:00Z")), t("2026-11-30T00:00:00Z"));
    }

    #[test]
    fn refusals_come_in_the_documented_order() {
        let now = t("2026-11-28T12:00:00Z");
        let all = Limits {
            budget_microusd: Some(100),
            budget_period: BudgetPeriod::Total,
            request_budget: Some(1),
            rpm_limit: Some(1),
            tpm_limit: Some(10),
            max_parallel_requests: Some(1),
        };
        let mut c = Counters::default();
        assert_eq!(admit(&mut c, &all, Ask { cost_microusd: 10, tokens: 5 }, now), Ok(()));
        let before = c.clone();
        assert_eq!(admit(&mut c, &all, Ask { cost_microusd: 10, tokens: 5 }, now), Err(Refusal::RequestBudget));
        let no_req = Limits { request_budget: None, ..all.clone() };
        assert_eq!(admit(&mut c, &no_req, Ask { cost_microusd: 91, tokens: 5 }, now), Err(Refusal::SpendBudget));
        assert!(matches!(admit(&mut c, &no_req, Ask { cost_microusd: 1, tokens: 5 }, now), Err(Refusal::Rpm { .. })));
        let no_rpm = Limits { rpm_limit: None, ..no_req.clone() };
        assert!(matches!(admit(&mut c, &no_rpm, Ask { cost_microusd: 1, tokens: 6 }, now), Err(Refusal::Tpm { .. })));
        let no_tpm = Limits { tpm_limit: None, ..no_rpm.clone() };
        assert_eq!(admit(&mut c, &no_tpm, Ask { cost_microusd: 1, tokens: 6 }, now), Err(Refusal::Parallel));
        assert_eq!(c, before, "refusals change nothing");
    }

    #[test]
    fn spend_plus_reservations_never_exceed_the_budget() {
        let now = 1_000_000;
        let l = Limits { budget_microusd: Some(1000), ..limits() };
        let mut c = Counters::default();
        let ask = Ask { cost_microusd: 300, tokens: 0 };
        let mut admitted = 0;
        for _ in 0..10 {
            if admit(&mut c, &l, ask, now).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3);
        assert_eq!(c.reserved_microusd, 900);
        settle(&mut c, &l, ask, now, 50, 0, now);
        assert_eq!((c.spend_microusd, c.reserved_microusd, c.in_flight), (50, 600, 2));
        assert!(admit(&mut c, &l, ask, now).is_ok(), "settling below the reservation frees budget");
        release(&mut c, &l, ask, now, now);
        assert_eq!((c.reserved_microusd, c.requests), (600, 3));
        let exhausted = Limits { budget_microusd: Some(650), ..limits() };
        assert_eq!(
            admit(&mut c, &exhausted, Ask::default(), now),
            Err(Refusal::SpendBudget),
            "a full budget refuses even free calls"
        );
    }

    #[test]
    fn periods_reset_period_counters() {
        let l = Limits { request_budget: Some(1), budget_period: BudgetPeriod::Daily, ..limits() };
        let mut c = Counters::default();
        let day1 = t("2026-11-28T23:59:59Z");
        assert!(admit(&mut c, &l, Ask::default(), day1).is_ok());
        settle(&mut c, &l, Ask::default(), day1, 0, 0, day1);
        assert_eq!(admit(&mut c, &l, Ask::default(), day1 + 500), Err(Refusal::RequestBudget));
        assert!(admit(&mut c, &l, Ask::default(), t("2026-11-29T00:00:00Z")).is_ok());
    }

    #[test]
    fn sliding_windows_and_retry_after() {
        let l = Limits { rpm_limit: Some(2), ..limits() };
        let mut c = Counters::default();
        let t0 = 1_000_000_000;
        assert!(admit(&mut c, &l, Ask::default(), t0).is_ok());
        assert!(admit(&mut c, &l, Ask::default(), t0 + 10_000).is_ok());
        assert_eq!(admit(&mut c, &l, Ask::default(), t0 + 20_000), Err(Refusal::Rpm { retry_after_secs: 40 }));
        assert!(admit(&mut c, &l, Ask::default(), t0 + 60_000).is_ok(), "the first call left the window");
        let h = headroom(&c, &l, t0 + 60_000);
        assert_eq!(h.requests, Some((2, 0, 60)), "full reset once the newest call leaves the window");

        let l = Limits { tpm_limit: Some(100), ..limits() };
        let mut c = Counters::default();
        assert!(admit(&mut c, &l, Ask { cost_microusd: 0, tokens: 500 }, t0).is_ok(), "a lone big call may run");
        settle(&mut c, &l, Ask { cost_microusd: 0, tokens: 500 }, t0, 0, 40, t0 + 1000);
        assert_eq!(c.minute_tokens.sum(t0 / 1000 + 1), 40, "settle corrects reserved tokens to actual");
        assert!(admit(&mut c, &l, Ask { cost_microusd: 0, tokens: 60 }, t0 + 1000).is_ok());
        assert!(matches!(
            admit(&mut c, &l, Ask { cost_microusd: 0, tokens: 1 }, t0 + 2000),
            Err(Refusal::Tpm { retry_after_secs: 58 })
        ));
    }

    #[test]
    fn estimator_is_an_upper_bound_for_text() {
        assert_eq!(estimate_input_tokens(0), 0);
        assert_eq!(estimate_input_tokens(1001), 501);
    }

    #[test]
    fn expired_reservations_are_swept_when_they_would_refuse_and_settled_anyway() {
        let limits = Limits { max_parallel_requests: Some(1), budget_microusd: Some(1_000), ..Limits::default() };
        let ask = Ask { cost_microusd: 100, tokens: 0 };
        let mut c = Counters::default();
        assert!(!sweeps_expired(&c, &limits, ask, 1_600), "nothing in flight: nothing to sweep");
        admit(&mut c, &limits, ask, 1_000).unwrap();
        assert!(sweeps_expired(&c, &limits, ask, 1_601), "refused while a call is in flight: sweep first");
        assert!(sweeps_expired(&c, &limits, ask, 1_616), "one call in 16 sweeps anyway");
        let roomy = Limits { max_parallel_requests: Some(5), ..limits.clone() };
        assert!(!sweeps_expired(&c, &roomy, ask, 1_601), "admitted anyway: no sweep");
        // The sweep released it; the call ends later and is still billed.
        release(&mut c, &limits, ask, 1_000, 5_000);
        assert_eq!((c.in_flight, c.requests, c.reserved_microusd), (0, 0, 0));
        settle_expired(&mut c, &limits, 250, 6_000);
        assert_eq!((c.in_flight, c.requests, c.spend_microusd), (0, 1, 250));
    }
}
