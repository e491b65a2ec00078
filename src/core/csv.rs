//! CSV exports of the ledger and its summaries, written by hand: RFC 4180 (comma-separated, CRLF
//! line ends, a header row, fields with `,` `"` CR or LF quoted and quotes doubled) with a
//! spreadsheet-formula guard: a text cell whose first non-whitespace character is `=`, `+`, `-` or
//! `@` is prefixed with `'` so no spreadsheet evaluates it.
//!
//! Invariants: every line has exactly as many fields as the header; numbers are written as plain
//! digits (never guarded); text cells go through `push_text`.

use std::fmt::Write as _;

use crate::core::ledger::{Bucket, Dimension, LedgerRow};
use crate::core::pricing::micros_to_usd;
use crate::core::time::format_rfc3339;

/// The ledger export's columns, in order (gateway.md §5).
pub const LEDGER_COLUMNS: [&str; 33] = [
    "call_id",
    "created_at",
    "key_name",
    "key_id",
    "tenant_id",
    "team_id",
    "project_id",
    "user_id",
    "budget_id",
    "provider",
    "route",
    "model",
    "upstream_model",
    "stream",
    "status",
    "error_code",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "usage_source",
    "reserved_microusd",
    "cost_microusd",
    "cost_usd",
    "price_version",
    "attempts",
    "fallback_error",
    "latency_ms",
    "ttfb_ms",
    "upstream_ms",
    "overhead_us",
    "client_disconnected",
];

/// Summary columns after the group's dimensions.
const SUMMARY_COLUMNS: [&str; 14] = [
    "requests",
    "succeeded",
    "rejected",
    "failed",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_microusd",
    "cost_usd",
    "first_at",
    "last_at",
    "is_total",
];

/// Appends one text cell, quoted if needed and guarded against formula injection.
pub fn push_text(out: &mut String, cell: &str) {
    let guarded = matches!(cell.trim_start().chars().next(), Some('=' | '+' | '-' | '@'));
    let quote = guarded || cell.contains([',', '"', '\r', '\n']) || cell.starts_with(char::is_whitespace);
    if quote {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in cell.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn push_opt(out: &mut String, cell: Option<&str>) {
    if let Some(c) = cell {
        push_text(out, c);
    }
}

fn push_num(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

fn push_header(out: &mut String, names: impl IntoIterator<Item = impl AsRef<str>>) {
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_text(out, name.as_ref());
    }
    out.push_str("\r\n");
}

/// The ledger export's header line.
#[must_use]
pub fn ledger_header() -> String {
    let mut out = String::new();
    push_header(&mut out, LEDGER_COLUMNS);
    out
}

/// Appends one ledger row as a CSV line.
pub fn push_ledger_row(out: &mut String, r: &LedgerRow) {
    push_text(out, &r.call_id);
    out.push(',');
    push_text(out, &format_rfc3339(r.created_at));
    out.push(',');
    push_text(out, &r.key_name);
    for cell in [&r.key_id, &r.tenant_id, &r.team_id, &r.project_id, &r.user_id, &r.budget_id, &r.provider] {
        out.push(',');
        push_opt(out, cell.as_deref());
    }
    out.push(',');
    push_text(out, &r.route);
    for cell in [&r.model, &r.upstream_model] {
        out.push(',');
        push_opt(out, cell.as_deref());
    }
    let _ = write!(out, ",{},{},", r.stream, r.status);
    push_opt(out, r.error_code.as_deref());
    let _ = write!(
        out,
        ",{},{},{},{},{},",
        r.input_tokens, r.cached_input_tokens, r.cache_write_input_tokens, r.output_tokens, r.reasoning_tokens
    );
    push_text(out, &r.usage_source);
    let _ = write!(out, ",{},", r.reserved_microusd);
    if let Some(c) = r.cost_microusd {
        let _ = write!(out, "{c},{}", micros_to_usd(c));
    } else {
        out.push(',');
    }
    out.push(',');
    push_opt(out, r.price_version.as_deref());
    let _ = write!(out, ",{},", r.attempts);
    push_opt(out, r.fallback_error.as_deref());
    let _ = write!(out, ",{},", r.latency_ms);
    if let Some(t) = r.ttfb_ms {
        push_num(out, t);
    }
    let _ = write!(out, ",{},{},{}\r\n", r.upstream_ms, r.overhead_us, r.client_disconnected);
}

/// The summary export's header line for `dims`.
#[must_use]
pub fn summary_header(dims: &[Dimension]) -> String {
    let mut out = String::new();
    push_header(&mut out, dims.iter().map(|d| d.name()).chain(SUMMARY_COLUMNS));
    out
}

/// Appends one summary bucket (or the totals, with empty group cells) as a CSV line.
pub fn push_bucket(out: &mut String, b: &Bucket, dims: &[Dimension], is_total: bool) {
    for i in 0..dims.len() {
        if !is_total {
            push_opt(out, b.group.get(i).and_then(|g| g.as_deref()));
        }
        out.push(',');
    }
    let _ = write!(
        out,
        "{},{},{},{},{},{},{},{},{},{},{},",
        b.requests,
        b.succeeded,
        b.rejected,
        b.failed,
        b.input_tokens,
        b.cached_input_tokens,
        b.cache_write_input_tokens,
        b.output_tokens,
        b.reasoning_tokens,
        b.cost_microusd,
        micros_to_usd(b.cost_microusd)
    );
    push_opt(out, b.first_at.map(format_rfc3339).as_deref());
    out.push(',');
    push_opt(out, b.last_at.map(format_rfc3339).as_deref());
    let _ = write!(out, ",{is_total}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(s: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, s);
        out
    }

    #[test]
    fn quoting_and_injection_guard() {
        let cases = [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
            ("+1", "\"'+1\""),
            ("-cmd", "\"'-cmd\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("  =1", "\"'  =1\""),
            ("a=b", "a=b"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(cell(input), want, "{input:?}");
        }
    }

    #[test]
    fn rows_have_as_many_fields_as_the_header() {
        let row = LedgerRow {
            call_id: "prodex-1".into(),
            created_at: 1_500,
            key_name: "=evil,\"key\"".into(),
            model: Some("m".into()),
            status: 200,
            usage_source: "provider".into(),
            cost_microusd: Some(2_500_000),
            ttfb_ms: Some(4),
            ..LedgerRow::default()
        };
        let mut line = String::new();
        push_ledger_row(&mut line, &row);
        assert!(line.ends_with("\r\n"));
        assert!(line.contains(",2500000,2.5,"));
        assert!(line.contains("\"'=evil,\"\"key\"\"\""));
        // Count fields outside quotes.
        let count = |s: &str| {
            let (mut n, mut quoted) = (1, false);
            for c in s.trim_end().chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => n += 1,
                    _ => {}
                }
            }
            n
        };
        assert_eq!(count(&line), LEDGER_COLUMNS.len());
        assert_eq!(count(&ledger_header()), LEDGER_COLUMNS.len());
        let dims = [Dimension::Key, Dimension::Day];
        let b = Bucket { group: vec![Some("k".into()), None], requests: 2, first_at: Some(0), ..Bucket::default() };
        let mut line = String::new();
        push_bucket(&mut line, &b, &dims, false);
        assert_eq!(count(&line), count(&summary_header(&dims)));
        assert!(line.starts_with("k,,2,"));
        let mut total = String::new();
        push_bucket(&mut total, &b, &dims, true);
        assert!(total.starts_with(",,2,") && total.ends_with(",true\r\n"));
    }
}
