//! Money and prices. Money is integer micro-USD; prices are micro-USD per million tokens, so a
//! cost is exact integer arithmetic, rounded up (a call is never billed less than it cost).
//!
//! Invariant: a model without a price has no cost (`None`), never a cost of 0.

use crate::core::openai::Usage;

/// Version of the built-in table; recorded on every ledger row.
pub const PRICE_VERSION: &str = "builtin-2026-11-01";

/// A model's prices in micro-USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub cached_input: u64,
    /// Input written to the provider's cache with the default (5-minute) lifetime.
    pub cache_write: u64,
    /// Input written to the provider's cache with the 1-hour lifetime (Anthropic).
    pub cache_write_1h: u64,
    pub output: u64,
    /// Largest completion the model produces, for worst-case reservations.
    pub max_output_tokens: u64,
}

/// A `[[gateway.pricing]]` row: USD per million tokens; an absent cache rate falls back to the
/// one before it (cache reads and writes to `input`, 1-hour writes to `cache_write_input`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Override {
    pub model: String,
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
    pub cache_write_input: Option<f64>,
    pub cache_write_1h_input: Option<f64>,
}

/// USD per million tokens → micro-USD per million tokens.
#[must_use]
pub fn usd(per_million: f64) -> u64 {
    usd_to_micros(per_million)
}

/// USD → integer micro-USD, rounded to the nearest micro (negative and NaN become 0).
#[must_use]
pub fn usd_to_micros(usd: f64) -> u64 {
    let micros = (usd * 1_000_000.0).round();
    if micros.is_nan() || micros <= 0.0 {
        0
    } else if micros >= 1.8e19 {
        u64::MAX
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let m = micros as u64;
        m
    }
}

/// Micro-USD as a USD number (for `*_usd` fields and headers).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn micros_to_usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Micro-USD as a dollar amount with every digit: `$0.005`, `$12.5`, `$0.000001` (no rounding,
/// no exponent form).
#[must_use]
pub fn usd_text(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = micros % 1_000_000;
    if frac == 0 {
        return format!("{whole}");
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Built-in prices (USD per million tokens: input, cached input, output; max output tokens;
/// cache writes (5-minute, 1-hour) where the provider bills them apart, else at the input rate).
type Builtin = (&'static str, f64, f64, f64, u64, Option<(f64, f64)>);

#[rustfmt::skip]
const BUILTIN: &[Builtin] = &[
    ("gpt-4o-mini", 0.15, 0.075, 0.60, 16_384, None),
    ("gpt-4o", 2.50, 1.25, 10.00, 16_384, None),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40, 32_768, None),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60, 32_768, None),
    ("gpt-4.1", 2.00, 0.50, 8.00, 32_768, None),
    ("gpt-5-nano", 0.05, 0.005, 0.40, 128_000, None),
    ("gpt-5-mini", 0.25, 0.025, 2.00, 128_000, None),
    ("gpt-5", 1.25, 0.125, 10.00, 128_000, None),
    ("o4-mini", 1.10, 0.275, 4.40, 100_000, None),
    ("o3-mini", 1.10, 0.55, 4.40, 100_000, None),
    ("o3", 2.00, 0.50, 8.00, 100_000, None),
    ("text-embedding-3-small", 0.02, 0.02, 0.0, 0, None),
    ("text-embedding-3-large", 0.13, 0.13, 0.0, 0, None),
    // Gemini: the standard (paid-tier, ≤200k-token prompt) rates; thinking is billed as output.
    // Pro models charge more above 200k prompt tokens: override with [[gateway.pricing]] if that
    // is the common case.
    ("gemini-3-pro-preview", 2.00, 0.20, 12.00, 65_536, None),
    ("gemini-3-flash-preview", 0.50, 0.05, 3.00, 65_536, None),
    ("gemini-2.5-flash-lite", 0.10, 0.01, 0.40, 65_536, None),
    ("gemini-2.5-flash", 0.30, 0.03, 2.50, 65_536, None),
    ("gemini-2.5-pro", 1.25, 0.125, 10.00, 65_536, None),
    ("gemini-2.0-flash-lite", 0.075, 0.075, 0.30, 8_192, None),
    ("gemini-2.0-flash", 0.10, 0.025, 0.40, 8_192, None),
    ("gemini-embedding-001", 0.15, 0.15, 0.0, 0, None),
    // Anthropic: cache reads at 0.1× input, 5-minute cache writes at 1.25×, 1-hour writes at 2×.
    ("claude-opus-4-6", 5.00, 0.50, 25.00, 128_000, Some((6.25, 10.00))),
    ("claude-opus-4-5", 5.00, 0.50, 25.00, 64_000, Some((6.25, 10.00))),
    ("claude-opus-4-1", 15.00, 1.50, 75.00, 32_000, Some((18.75, 30.00))),
    ("claude-opus-4", 15.00, 1.50, 75.00, 32_000, Some((18.75, 30.00))),
    ("claude-sonnet-4-5", 3.00, 0.30, 15.00, 64_000, Some((3.75, 6.00))),
    ("claude-sonnet-4", 3.00, 0.30, 15.00, 64_000, Some((3.75, 6.00))),
    ("claude-3-7-sonnet", 3.00, 0.30, 15.00, 64_000, Some((3.75, 6.00))),
    ("claude-haiku-4-5", 1.00, 0.10, 5.00, 64_000, Some((1.25, 2.00))),
    ("claude-3-5-haiku", 0.80, 0.08, 4.00, 8_192, Some((1.00, 1.60))),
    ("claude-3-haiku", 0.25, 0.03, 1.25, 4_096, Some((0.30, 0.50))),
    // The built-in mock provider's models: priced, so budgets and the ledger can be tried with it.
    ("mock-chat", 0.10, 0.01, 0.40, 4_096, None),
    ("mock-embed", 0.02, 0.02, 0.0, 0, None),
    ("deepseek-chat", 0.27, 0.07, 1.10, 8_192, None),
    ("deepseek-reasoner", 0.55, 0.14, 2.19, 65_536, None),
];

/// The price table: built-ins plus operator overrides.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    /// (model, price), longest names first so prefix matches pick the most specific entry.
    entries: Vec<(String, Price)>,
    pub version: String,
}

impl PriceTable {
    /// Built-ins overridden/extended by the operator's rows.
    #[must_use]
    pub fn new(overrides: &[Override]) -> Self {
        let mut entries: Vec<(String, Price)> = BUILTIN
            .iter()
            .map(|&(m, input, cached, output, max, writes)| {
                let (w, w1h) = writes.unwrap_or((input, input));
                let price = Price {
                    input: usd(input),
                    cached_input: usd(cached),
                    cache_write: usd(w),
                    cache_write_1h: usd(w1h),
                    output: usd(output),
                    max_output_tokens: max,
                };
                (m.to_string(), price)
            })
            .collect();
        for o in overrides {
            let max = entries.iter().find(|(m, _)| *m == o.model).map_or(0, |(_, p)| p.max_output_tokens);
            let write = o.cache_write_input.unwrap_or(o.input);
            let price = Price {
                input: usd(o.input),
                cached_input: usd(o.cached_input.unwrap_or(o.input)),
                cache_write: usd(write),
                cache_write_1h: usd(o.cache_write_1h_input.unwrap_or(write)),
                output: usd(o.output),
                max_output_tokens: max,
            };
            entries.retain(|(m, _)| *m != o.model);
            entries.push((o.model.clone(), price));
        }
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let version = if overrides.is_empty() { PRICE_VERSION.to_string() } else { format!("{PRICE_VERSION}+policy") };
        Self { entries, version }
    }

    /// The price of `model`: an exact entry, else the longest entry it extends by a dated or
    /// numbered snapshot suffix only (`gpt-4o-mini-2024-07-18`, `gpt-4-0613`,
    /// `claude-3-5-sonnet-20241022`, `gemini-1.5-flash-001`). A variant with a word in its suffix
    /// (`gpt-5-pro`, `o3-pro`, `…-preview`) is another model: unpriced, never its base's price.
    #[must_use]
    pub fn get(&self, model: &str) -> Option<Price> {
        self.entries
            .iter()
            .find(|(m, _)| m == model)
            .or_else(|| {
                self.entries.iter().find(|(m, _)| {
                    model
                        .strip_prefix(m.as_str())
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(is_snapshot_suffix)
                })
            })
            .map(|(_, p)| *p)
    }
}

/// The built-in table's largest completion for `model` (matched as `PriceTable::get` matches),
/// the catalog a provider that requires an output bound (Anthropic's `max_tokens`) defaults from.
#[must_use]
pub fn builtin_max_output(model: &str) -> Option<u64> {
    let extends = |m: &str| model.strip_prefix(m).and_then(|r| r.strip_prefix('-')).is_some_and(is_snapshot_suffix);
    BUILTIN
        .iter()
        .filter(|(m, ..)| *m == model || extends(m))
        .max_by_key(|(m, ..)| (*m == model, m.len()))
        .map(|&(_, _, _, _, max, _)| max)
}

/// `2024-07-18`, `0613`, `20241022`, `001`: groups of digits joined by `-`, and nothing else.
fn is_snapshot_suffix(rest: &str) -> bool {
    !rest.is_empty() && rest.split('-').all(|g| !g.is_empty() && g.len() <= 8 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Cost of `usage` at `price`, in micro-USD, rounded up. Cached and cache-written input tokens
/// are part of the input count and billed at their own rates (1-hour writes apart); reasoning
/// tokens are part of the output count.
#[must_use]
pub fn cost(usage: &Usage, price: &Price) -> u64 {
    let cached = usage.cached_input_tokens.min(usage.input_tokens);
    let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
    let written_1h = usage.cache_write_1h_tokens.min(written);
    let fresh = usage.input_tokens - cached - written;
    let numerator = u128::from(fresh) * u128::from(price.input)
        + u128::from(cached) * u128::from(price.cached_input)
        + u128::from(written - written_1h) * u128::from(price.cache_write)
        + u128::from(written_1h) * u128::from(price.cache_write_1h)
        + u128::from(usage.output_tokens) * u128::from(price.output);
    u64::try_from(numerator.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, input: f64, output: f64, cached_input: Option<f64>) -> Override {
        Override { model: model.into(), input, output, cached_input, ..Override::default() }
    }

    #[test]
    fn variants_are_priced_only_by_snapshot_suffixes() {
        let t = PriceTable::new(&[row("gpt-5", 1.0, 8.0, None), row("o3", 2.0, 8.0, None)]);
        for (model, priced_as) in [
            ("gpt-5", Some("gpt-5")),
            ("gpt-5-2025-08-07", Some("gpt-5")),
            ("gpt-5-0807", Some("gpt-5")),
            ("o3-20250416", Some("o3")),
            ("gpt-5-pro", None),
            ("o3-pro", None),
            ("o3-pro-2025-06-10", None),
            ("gpt-5-", None),
            ("gpt-5--1", None),
            ("gpt-5-2025-08-07-preview", None),
            ("gpt-5x", None),
        ] {
            assert_eq!(t.get(model), priced_as.and_then(|m| t.get(m)), "{model}");
            assert_eq!(t.get(model).is_some(), priced_as.is_some(), "{model}");
        }
    }

    #[test]
    fn usd_text_keeps_every_micro_dollar() {
        for (micros, want) in [
            (0, "0"),
            (1, "0.000001"),
            (5_000, "0.005"),
            (10, "0.00001"),
            (12_500_000, "12.5"),
            (75_000_000, "75"),
            (1_234_567, "1.234567"),
        ] {
            assert_eq!(usd_text(micros), want);
        }
    }

    #[test]
    fn lookups_prefer_exact_then_longest_dated_prefix() {
        let t = PriceTable::new(&[]);
        assert_eq!(t.get("gpt-4o-mini").map(|p| p.input), Some(150_000));
        assert_eq!(t.get("gpt-4o-mini-2024-07-18").map(|p| p.input), Some(150_000));
        assert_eq!(t.get("gpt-4o-2024-08-06").map(|p| p.output), Some(10_000_000));
        assert_eq!(t.get("gpt-4omni"), None);
        assert_eq!(t.get("unknown-model"), None);
        let t = PriceTable::new(&[row("gpt-4o-mini", 1.0, 2.0, None), row("local-llama", 0.0, 0.0, None)]);
        assert_eq!(
            t.get("gpt-4o-mini").map(|p| (p.input, p.cached_input, p.output, p.max_output_tokens)),
            Some((1_000_000, 1_000_000, 2_000_000, 16_384))
        );
        assert_eq!(t.get("local-llama").map(|p| p.input), Some(0), "an explicit zero price is a price");
        assert!(t.version.ends_with("+policy"));
    }

    #[test]
    fn costs_are_exact_and_round_up() {
        let p = Price {
            input: 150_000,
            cached_input: 75_000,
            cache_write: 150_000,
            cache_write_1h: 150_000,
            output: 600_000,
            max_output_tokens: 0,
        };
        let u = Usage { input_tokens: 1_000_000, output_tokens: 1_000_000, ..Usage::default() };
        assert_eq!(cost(&u, &p), 750_000);
        let u = Usage {
            input_tokens: 11,
            cached_input_tokens: 3,
            output_tokens: 7,
            reasoning_tokens: 2,
            ..Usage::default()
        };
        // 8×0.15 + 3×0.075 + 7×0.6 = 1.2 + 0.225 + 4.2 = 5.625 micro → 6
        assert_eq!(cost(&u, &p), 6);
        assert_eq!(cost(&Usage::default(), &p), 0);
        let u = Usage { input_tokens: 2, cached_input_tokens: 9, ..Usage::default() };
        assert_eq!(cost(&u, &p), 1, "cached never exceeds input");
    }

    #[test]
    fn cache_writes_are_billed_at_their_own_rates() {
        let t = PriceTable::new(&[]);
        let p = t.get("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!((p.cache_write, p.cache_write_1h), (3_750_000, 6_000_000));
        // 1,000 fresh + 2,000 read + 3,000 written (1,000 of them for an hour), 100 out:
        // 1000×3 + 2000×0.3 + 2000×3.75 + 1000×6 + 100×15 = 3000 + 600 + 7500 + 6000 + 1500 micro.
        let u = Usage {
            input_tokens: 6_000,
            cached_input_tokens: 2_000,
            cache_write_tokens: 3_000,
            cache_write_1h_tokens: 1_000,
            output_tokens: 100,
            ..Usage::default()
        };
        assert_eq!(cost(&u, &p), 18_600);
        // Counts that exceed what contains them are capped, never billed twice.
        let u =
            Usage { input_tokens: 10, cached_input_tokens: 4, cache_write_tokens: 9, cache_write_1h_tokens: 99, ..u };
        assert_eq!(cost(&u, &p), (4 * 300_000 + 6 * 6_000_000 + 100 * 15_000_000_u64).div_ceil(1_000_000));
        // Providers that bill writes as input (OpenAI, Gemini): the input rate.
        let g = t.get("gpt-4o").unwrap();
        assert_eq!((g.cache_write, g.cache_write_1h), (g.input, g.input));
        // Overrides: absent rates fall back in order.
        let mut o = row("m", 2.0, 4.0, Some(1.0));
        let t = PriceTable::new(std::slice::from_ref(&o));
        let p = t.get("m").unwrap();
        assert_eq!((p.cached_input, p.cache_write, p.cache_write_1h), (1_000_000, 2_000_000, 2_000_000));
        o.cache_write_input = Some(2.5);
        let p = PriceTable::new(std::slice::from_ref(&o)).get("m").unwrap();
        assert_eq!((p.cache_write, p.cache_write_1h), (2_500_000, 2_500_000));
        o.cache_write_1h_input = Some(4.0);
        assert_eq!(PriceTable::new(&[o]).get("m").unwrap().cache_write_1h, 4_000_000);
    }

    #[test]
    fn usd_conversions() {
        assert_eq!(usd_to_micros(50.0), 50_000_000);
        assert_eq!(usd_to_micros(0.0000004), 0);
        assert_eq!(usd_to_micros(-1.0), 0);
        assert_eq!(usd_to_micros(f64::NAN), 0);
        assert!((micros_to_usd(1_500_000) - 1.5).abs() < 1e-12);
    }
}
