//! Model routing across providers: a requested model (or alias) becomes a plan — the ordered
//! targets (provider, upstream model) a call may try, and how many attempts it may make.
//!
//! Invariants: a requested name that is an alias takes the alias's targets, ordered by its
//! strategy (the live numbers the stateful strategies read are passed in: no clock, no locks);
//! a model goes to the provider whose `models` names it exactly, else whose longest trailing-`*`
//! glob matches it, else the default provider — never to two (`ambiguities` finds the globs that
//! would tie, for `check`); `first` plans one target, every other strategy keeps the rest as
//! fallbacks in its order.

use crate::core::model_matches;

/// How an alias orders its targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// In the order listed.
    Fallback,
    /// Starting one further along on every call.
    RoundRobin,
    /// The first only (no fallback).
    First,
    /// Fewest calls in flight first.
    LeastBusy,
    /// Cheapest for this request's estimate first (unpriced last).
    LowestCost,
    /// Shortest recent time to first byte first (a target not yet measured first, so it is).
    LowestLatency,
}

impl Strategy {
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fallback" => Self::Fallback,
            "round-robin" => Self::RoundRobin,
            "first" => Self::First,
            "least-busy" => Self::LeastBusy,
            "lowest-cost" => Self::LowestCost,
            "lowest-latency" => Self::LowestLatency,
            _ => return None,
        })
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fallback => "fallback",
            Self::RoundRobin => "round-robin",
            Self::First => "first",
            Self::LeastBusy => "least-busy",
            Self::LowestCost => "lowest-cost",
            Self::LowestLatency => "lowest-latency",
        }
    }
}

/// Attempts a call makes in all when its alias does not say (first try included).
pub const DEFAULT_ATTEMPTS: usize = 3;

/// An alias as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub models: Vec<String>,
    pub strategy: Strategy,
    /// Attempts in all, across its targets (default `DEFAULT_ATTEMPTS`).
    pub max_attempts: Option<usize>,
}

/// One place a call can go: a provider (by its index in the configuration) and the model name
/// it is asked for there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub provider: usize,
    pub model: String,
}

/// What the stateful strategies read about a target, from the shell's live numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub in_flight: u64,
    /// A decaying average of time to first byte, once measured.
    pub ttfb_us: Option<u64>,
    /// This request's estimated cost there (`None`: the model has no price).
    pub cost_microusd: Option<u64>,
}

/// The targets a call tries, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The alias the requested name was, if it was one.
    pub alias: Option<String>,
    pub targets: Vec<Target>,
    pub max_attempts: usize,
}

/// The provider `model` goes to: the one naming it exactly, else the one with the longest
/// matching glob, else `default`. `providers` is each provider's `models` in configuration order.
#[must_use]
pub fn provider_of(providers: &[&[String]], default: usize, model: &str) -> usize {
    if let Some(i) = providers.iter().position(|globs| globs.iter().any(|g| !g.contains('*') && g == model)) {
        return i;
    }
    providers
        .iter()
        .enumerate()
        .flat_map(|(i, globs)| {
            globs.iter().filter(|g| g.contains('*') && model_matches(g, model)).map(move |g| (g.len(), i))
        })
        // The longest glob; the first configured among equals (which `ambiguities` reports).
        .fold(None, |best: Option<(usize, usize)>, (len, i)| match best {
            Some((l, _)) if l >= len => best,
            _ => Some((len, i)),
        })
        .map_or(default, |(_, i)| i)
}

/// Names or globs two providers both claim (a model they match could go to either), as
/// `(name or glob, first provider, second provider)` by configuration index.
#[must_use]
pub fn ambiguities(providers: &[&[String]]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (i, a) in providers.iter().enumerate() {
        for (j, b) in providers.iter().enumerate().skip(i + 1) {
            out.extend(a.iter().filter(|g| b.contains(g)).map(|g| (g.clone(), i, j)));
        }
    }
    out
}

/// The plan for `requested`: an alias's targets in its strategy's order, or the one target its
/// model routes to. `turn` advances round-robin; `live` gives the stateful strategies their
/// numbers.
pub fn plan(
    requested: &str,
    aliases: &[Alias],
    providers: &[&[String]],
    default: usize,
    turn: u64,
    live: impl Fn(&Target) -> Live,
) -> Plan {
    let Some(alias) = aliases.iter().find(|a| a.name == requested) else {
        let target = Target { provider: provider_of(providers, default, requested), model: requested.to_string() };
        return Plan { alias: None, targets: vec![target], max_attempts: DEFAULT_ATTEMPTS };
    };
    let mut targets: Vec<Target> = alias
        .models
        .iter()
        .map(|m| Target { provider: provider_of(providers, default, m), model: m.clone() })
        .collect();
    match alias.strategy {
        Strategy::Fallback => {}
        Strategy::First => targets.truncate(1),
        Strategy::RoundRobin if !targets.is_empty() => {
            let n = targets.len();
            targets.rotate_left(usize::try_from(turn % n as u64).unwrap_or(0));
        }
        Strategy::RoundRobin => {}
        Strategy::LeastBusy => targets.sort_by_key(|t| live(t).in_flight),
        Strategy::LowestCost => targets.sort_by_key(|t| live(t).cost_microusd.unwrap_or(u64::MAX)),
        Strategy::LowestLatency => targets.sort_by_key(|t| live(t).ttfb_us.unwrap_or(0)),
    }
    Plan {
        alias: Some(alias.name.clone()),
        targets,
        max_attempts: alias.max_attempts.unwrap_or(DEFAULT_ATTEMPTS).max(1),
    }
}

/// Consecutive failures that open a target's circuit.
pub const BREAKER_FAILURES: u32 = 5;

/// How long an open circuit keeps a target out of plans before one probe call may try it.
pub const BREAKER_COOLDOWN_MS: u64 = 30_000;

/// A target's circuit: its consecutive failures, and while open, until when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breaker {
    pub failures: u32,
    pub open_until: Option<u64>,
    /// A probe call is out (half-open): other calls still skip the target.
    pub probing: bool,
}

/// What a plan does with a target now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Healthy: try it.
    Closed,
    /// Skip it (cooling down, or a probe is already out).
    Open,
    /// The cool-down is over: this call is the one probe.
    Probe,
}

impl Breaker {
    /// The gate at `now` (a `Probe` answer marks the probe as out).
    pub fn gate(&mut self, now: u64) -> Gate {
        match self.open_until {
            None => Gate::Closed,
            Some(until) if now < until || self.probing => Gate::Open,
            Some(_) => {
                self.probing = true;
                Gate::Probe
            }
        }
    }

    /// A call at the target ended: a success closes the circuit, a failure counts (and a failed
    /// probe, or the `BREAKER_FAILURES`th failure in a row, opens it for `BREAKER_COOLDOWN_MS`).
    pub fn record(&mut self, ok: bool, now: u64) {
        if ok {
            *self = Self::default();
            return;
        }
        self.failures = self.failures.saturating_add(1);
        if self.probing || self.failures >= BREAKER_FAILURES {
            self.open_until = Some(now.saturating_add(BREAKER_COOLDOWN_MS));
            self.probing = false;
        }
    }

    /// `closed`, `open` or `half_open` (a probe is out).
    #[must_use]
    pub fn state(&self, now: u64) -> &'static str {
        match self.open_until {
            None => "closed",
            Some(_) if self.probing => "half_open",
            Some(until) if now < until => "open",
            Some(_) => "half_open",
        }
    }
}

/// The next decaying average of time to first byte: the new sample weighs one fifth.
#[must_use]
pub fn decay(average: Option<u64>, sample_us: u64) -> u64 {
    average.map_or(sample_us, |a| (a * 4 + sample_us) / 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn models_route_exact_first_then_the_longest_glob_then_the_default() {
        let openai = globs(&["gpt-*", "o3"]);
        let gemini = globs(&["gemini-*", "gemini-2.5-pro-exp"]);
        let special = globs(&["gemini-2.5-*", "gpt-4o"]);
        let providers: [&[String]; 3] = [&openai, &gemini, &special];
        for (model, want) in [
            ("gpt-4o-mini", 0),
            ("gpt-4o", 2),
            ("o3", 0),
            ("gemini-2.0-flash", 1),
            ("gemini-2.5-flash", 2),
            ("gemini-2.5-pro-exp", 1),
            ("claude-sonnet-4-5", 9),
        ] {
            assert_eq!(provider_of(&providers, 9, model), want, "{model}");
        }
        let a = globs(&["gpt-*", "x"]);
        let b = globs(&["gpt-*", "y"]);
        assert_eq!(ambiguities(&[&a, &b]), vec![("gpt-*".to_string(), 0, 1)]);
        assert!(ambiguities(&providers).is_empty());
    }

    #[test]
    fn every_strategy_orders_the_aliases_targets() {
        let openai = globs(&["gpt-*"]);
        let gemini = globs(&["gemini-*"]);
        let anthropic = globs(&["claude-*"]);
        let providers: [&[String]; 3] = [&openai, &gemini, &anthropic];
        let alias = |strategy| Alias {
            name: "fast".into(),
            models: globs(&["gemini-2.5-flash", "gpt-4o-mini", "claude-haiku-4-5"]),
            strategy,
            max_attempts: None,
        };
        let live = |t: &Target| match t.provider {
            0 => Live { in_flight: 5, ttfb_us: Some(900), cost_microusd: Some(30) },
            1 => Live { in_flight: 1, ttfb_us: Some(400), cost_microusd: None },
            _ => Live { in_flight: 3, ttfb_us: None, cost_microusd: Some(20) },
        };
        let order = |s, turn| -> Vec<usize> {
            plan("fast", &[alias(s)], &providers, 0, turn, live).targets.iter().map(|t| t.provider).collect()
        };
        assert_eq!(order(Strategy::Fallback, 7), [1, 0, 2]);
        assert_eq!(order(Strategy::First, 7), [1]);
        assert_eq!(order(Strategy::RoundRobin, 0), [1, 0, 2]);
        assert_eq!(order(Strategy::RoundRobin, 1), [0, 2, 1]);
        assert_eq!(order(Strategy::RoundRobin, 5), [2, 1, 0]);
        assert_eq!(order(Strategy::LeastBusy, 0), [1, 2, 0]);
        assert_eq!(order(Strategy::LowestCost, 0), [2, 0, 1], "unpriced last");
        assert_eq!(order(Strategy::LowestLatency, 0), [2, 1, 0], "unmeasured first");
        let p = plan("fast", &[alias(Strategy::Fallback)], &providers, 0, 0, live);
        assert_eq!((p.alias.as_deref(), p.max_attempts), (Some("fast"), DEFAULT_ATTEMPTS));
        assert_eq!(p.targets[0].model, "gemini-2.5-flash");
        let mut one = alias(Strategy::Fallback);
        one.max_attempts = Some(0);
        assert_eq!(plan("fast", &[one], &providers, 0, 0, live).max_attempts, 1, "at least one attempt");
        let direct = plan("claude-opus-4-5", &[alias(Strategy::Fallback)], &providers, 0, 0, live);
        assert_eq!(
            (direct.alias, direct.targets),
            (None, vec![Target { provider: 2, model: "claude-opus-4-5".into() }])
        );
        for s in ["fallback", "round-robin", "first", "least-busy", "lowest-cost", "lowest-latency"] {
            assert_eq!(Strategy::parse(s).map(Strategy::as_str), Some(s));
        }
        assert_eq!(decay(None, 500), 500);
        assert_eq!(decay(Some(1000), 500), 900);
    }

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_closes_after_a_good_probe() {
        let mut b = Breaker::default();
        for i in 0..BREAKER_FAILURES - 1 {
            b.record(false, 1_000 + u64::from(i));
            assert_eq!(b.gate(1_000), Gate::Closed, "still closed after {} failures", i + 1);
        }
        b.record(true, 1_100);
        assert_eq!(b, Breaker::default(), "a success resets the count");
        for _ in 0..BREAKER_FAILURES {
            b.record(false, 2_000);
        }
        assert_eq!((b.gate(2_001), b.state(2_001)), (Gate::Open, "open"));
        let after = 2_000 + BREAKER_COOLDOWN_MS;
        assert_eq!(b.gate(after), Gate::Probe, "one probe after the cool-down");
        assert_eq!((b.gate(after), b.state(after)), (Gate::Open, "half_open"), "only one");
        b.record(false, after);
        assert_eq!((b.gate(after + 1), b.state(after + 1)), (Gate::Open, "open"), "a failed probe reopens it");
        let later = after + BREAKER_COOLDOWN_MS;
        assert_eq!(b.gate(later), Gate::Probe);
        b.record(true, later);
        assert_eq!((b.gate(later), b.state(later)), (Gate::Closed, "closed"));
    }
}
