//! Token usage, the gateway's neutral vocabulary for it (every protocol maps its counts here
//! once), where a call's billed usage came from, and what is billed when the provider's usage
//! never arrived or cannot be trusted.
//!
//! Invariants: `input_tokens` includes cached and cache-written tokens (OpenAI's `prompt_tokens`
//! sense; pricing takes the cached ones out at their own rate), `output_tokens` includes
//! reasoning; a count above `MAX_REPORTED_TOKENS` or not a count is `InvalidUsage`, never 0; a
//! call that produced something is never billed as nothing.

use crate::core::admission::estimate_output_tokens;

/// Token usage of one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every input token, cached and cache-written ones included.
    pub input_tokens: u64,
    /// Input tokens read from the provider's cache (part of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Input tokens written to the provider's cache (part of `input_tokens`, billed at the
    /// cache-write rate). Reported by Anthropic and by OpenAI-compatible servers that say.
    pub cache_write_tokens: u64,
    /// Of those, the ones written with a 1-hour lifetime (Anthropic bills them higher).
    pub cache_write_1h_tokens: u64,
    /// Every output token, reasoning included.
    pub output_tokens: u64,
    /// Reasoning ("thinking") tokens (part of `output_tokens`).
    pub reasoning_tokens: u64,
}

/// The most tokens one count of one call may report before it is taken as malformed (no model
/// reads or writes anywhere near 100 million tokens in a call; a larger number is a provider bug
/// or an attack on the bill).
pub const MAX_REPORTED_TOKENS: u64 = 100_000_000;

/// Provider usage that cannot be billed: a count that is negative, fractional, not a number, or
/// absurdly large. The call is billed at its reservation instead (never 0, never an overflow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidUsage(pub String);

/// Usage as read from provider output: the counts, or why they cannot be billed.
pub type UsageRead = Result<Usage, InvalidUsage>;

/// Where a call's usage numbers came from (the ledger's `usage_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageSource {
    Provider,
    /// Estimated for a call cut short (the client left, or the stream failed).
    Partial,
    /// Estimated for a call that completed without usage from the provider.
    Estimated,
    /// The provider's usage was malformed or absurd: billed at the reservation (the worst case).
    Reserved,
    /// Nothing to bill (refused before the provider, or the provider produced nothing).
    None,
}

impl UsageSource {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Partial => "partial",
            Self::Estimated => "estimated",
            Self::Reserved => "reserved",
            Self::None => "none",
        }
    }
}

/// What is known about a call whose provider usage is missing, for `fallback`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The call is admitted and billed at all (model listings are not).
    pub metered: bool,
    /// The provider's usage arrived but could not be billed.
    pub invalid_usage: bool,
    /// The worst case the reservation was priced at.
    pub worst: Usage,
    /// The provider answered 2xx.
    pub upstream_ok: bool,
    pub stream: bool,
    /// Bytes of generated content relayed (delta text, tool-call arguments).
    pub relayed_bytes: u64,
    /// Stream events relayed.
    pub relayed_events: u64,
    /// The request body's input-token estimate (about twice generous).
    pub input_estimate: u64,
    /// The call was cut short (the client left, or it ended in an error).
    pub cut: bool,
}

/// The usage to bill for a call without billable provider usage: the worst case when the
/// provider's was unbillable; an estimate (output from the content relayed, input from the body
/// estimate halved) when the provider produced something; `None` when there is nothing to bill.
#[must_use]
pub fn fallback(o: &Outcome) -> Option<(Usage, UsageSource)> {
    if !o.metered {
        return None;
    }
    if o.invalid_usage {
        return Some((o.worst, UsageSource::Reserved));
    }
    let produced = o.relayed_bytes > 0 || o.relayed_events > 0 || (o.upstream_ok && !o.stream);
    if !(o.upstream_ok && produced) {
        return None;
    }
    let usage = Usage {
        input_tokens: o.input_estimate.div_ceil(2),
        output_tokens: estimate_output_tokens(o.relayed_bytes),
        ..Usage::default()
    };
    Some((usage, if o.cut { UsageSource::Partial } else { UsageSource::Estimated }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_usage_is_estimated_or_the_worst_case_never_nothing_for_produced_output() {
        let worst = Usage { input_tokens: 100, output_tokens: 4096, ..Usage::default() };
        let base = Outcome { metered: true, worst, input_estimate: 40, ..Outcome::default() };
        let est = |input, output| Usage { input_tokens: input, output_tokens: output, ..Usage::default() };
        for (o, want) in [
            (Outcome { metered: false, upstream_ok: true, ..base }, None),
            (Outcome { invalid_usage: true, ..base }, Some((worst, UsageSource::Reserved))),
            (base, None),
            (Outcome { upstream_ok: true, ..base }, Some((est(20, 0), UsageSource::Estimated))),
            (Outcome { upstream_ok: true, stream: true, ..base }, None),
            (
                Outcome { upstream_ok: true, stream: true, relayed_events: 2, ..base },
                Some((est(20, 0), UsageSource::Estimated)),
            ),
            (
                Outcome { upstream_ok: true, stream: true, relayed_bytes: 401, cut: true, ..base },
                Some((est(20, 101), UsageSource::Partial)),
            ),
            (Outcome { upstream_ok: false, relayed_bytes: 10, ..base }, None),
        ] {
            assert_eq!(fallback(&o), want, "{o:?}");
        }
    }
}
