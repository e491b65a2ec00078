//! The sync-free core: pure functions that decide, with no I/O, no clock, no locks, no threads
//! and no logging. Anything time-dependent takes the time as an argument. The shell (`http`,
//! `proxy`, `upstream`, …) performs what the core decides.
//!
//! **Invariant:** nothing here imports from `crate::` outside `crate::core`; `scripts/check-layout`
//! enforces it, together with the list of forbidden names (`SystemTime`, `Instant`, `std::sync`,
//! `std::thread`, `std::fs`, `std::net`, `may::`, `ureq`, `log::`).

pub mod address;
pub mod admission;
pub mod anthropic;
pub mod auth;
pub mod credential;
pub mod csv;
pub mod directory;
pub mod gemini;
pub mod hops;
pub mod ir;
pub mod json;
pub mod keys;
pub mod keyspec;
pub mod ledger;
pub mod metrics;
pub mod mock;
pub mod objects;
pub mod openai;
pub mod openapi;
pub mod pricing;
pub mod provider;
pub mod query;
pub mod retry;
pub mod route;
pub mod routing;
pub mod scim;
pub mod sse;
pub mod time;
pub mod usage;

/// Whether `model` matches `pattern`: an exact name, or a prefix followed by a trailing `*`.
#[must_use]
pub fn model_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

#[cfg(test)]
mod tests {
    use super::model_matches;

    #[test]
    fn globs_are_exact_or_trailing_star() {
        let cases = [
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("gpt-4o*", "gpt-4o-mini", true),
            ("*", "anything", true),
            ("gemini-*", "gpt-4o", false),
        ];
        for (pattern, model, want) in cases {
            assert_eq!(model_matches(pattern, model), want, "{pattern} {model}");
        }
    }
}
