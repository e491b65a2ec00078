//! The upstream families of the metrics: each routing target's circuit state, and the attempts
//! and errors per provider — process-wide facts (every key's calls share the providers), shown to
//! unscoped principals only.
//!
//! Invariant: every family prints its `# HELP` and `# TYPE` whether or not it has samples; label
//! values are escaped like every other family's.

use std::fmt::Write as _;

use super::{write_escaped, write_header as header, Family};

const HEALTH: Family = (
    "prodex_gateway_upstream_health",
    "gauge",
    "Each routing target's circuit: 1 closed, 0.5 half-open (one probe out), 0 open (skipped).",
);
const ATTEMPTS: Family =
    ("prodex_gateway_upstream_attempts_total", "counter", "Upstream requests by provider and outcome (ok, failed).");
const ERRORS: Family = (
    "prodex_gateway_target_failures_total",
    "counter",
    "Calls that failed at a provider, whether or not another target then served them, by error.",
);

/// The numbers behind the upstream families (`targets.rs` keeps them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Upstream {
    /// (provider, model, `closed` | `half_open` | `open`)
    pub health: Vec<(String, String, &'static str)>,
    /// (provider, outcome, attempts)
    pub attempts: Vec<(String, &'static str, u64)>,
    /// (provider, error code, calls)
    pub errors: Vec<(String, String, u64)>,
}

fn labels(out: &mut String, name: &str, pairs: &[(&str, &str)]) {
    out.push_str(name);
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"");
        write_escaped(out, v);
        out.push('"');
    }
    out.push_str("} ");
}

/// Appends the three families.
pub fn render(out: &mut String, u: &Upstream) {
    header(out, HEALTH);
    for (provider, model, state) in &u.health {
        labels(out, HEALTH.0, &[("provider", provider), ("model", model)]);
        out.push_str(match *state {
            "closed" => "1\n",
            "half_open" => "0.5\n",
            _ => "0\n",
        });
    }
    header(out, ATTEMPTS);
    for (provider, outcome, n) in &u.attempts {
        labels(out, ATTEMPTS.0, &[("provider", provider), ("outcome", outcome)]);
        let _ = writeln!(out, "{n}");
    }
    header(out, ERRORS);
    for (provider, kind, n) in &u.errors {
        labels(out, ERRORS.0, &[("provider", provider), ("kind", kind)]);
        let _ = writeln!(out, "{n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_families_render_with_their_headers() {
        let mut out = String::new();
        render(&mut out, &Upstream::default());
        assert_eq!(out.matches("# TYPE").count(), 3, "headers without samples: {out}");
        let u = Upstream {
            health: vec![("gem".into(), "gemini-2.5-flash".into(), "open"), ("o\"ai".into(), "m".into(), "closed")],
            attempts: vec![("gem".into(), "failed", 5)],
            errors: vec![("gem".into(), "upstream_unreachable".into(), 5)],
        };
        let mut out = String::new();
        render(&mut out, &u);
        assert!(
            out.contains("prodex_gateway_upstream_health{provider=\"gem\",model=\"gemini-2.5-flash\"} 0\n"),
            "{out}"
        );
        assert!(out.contains("prodex_gateway_upstream_health{provider=\"o\\\"ai\",model=\"m\"} 1\n"), "{out}");
        assert!(out.contains("prodex_gateway_upstream_attempts_total{provider=\"gem\",outcome=\"failed\"} 5\n"));
        assert!(
            out.contains("prodex_gateway_target_failures_total{provider=\"gem\",kind=\"upstream_unreachable\"} 5\n")
        );
    }
}
