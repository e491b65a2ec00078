//! Admin query strings: percent-decoding, and the typed filters of the admin routes (time ranges,
//! limits, cursors, ledger filters, `group_by`). Every parameter a route does not know is refused
//! with its name, so a typo (`tenant=` for `tenant_id=`) is a 400, never a silently wider answer.
//!
//! Invariants: parsing never panics on any input; every error names the offending parameter.

use crate::core::ledger::{decode_cursor, Dimension, LedgerQuery, StatusFilter};
use crate::core::time::{parse_rfc3339, UnixMs};

/// A refused parameter: its name and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    fn new(param: &str, message: impl Into<String>) -> Self {
        Self { param: param.to_string(), message: message.into() }
    }
}

/// Decoded `name=value` pairs, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string (`a=1&b=x%20y`); `+` is a space.
    pub fn parse(query: Option<&str>) -> Result<Self, ParamError> {
        let mut out = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).ok_or_else(|| ParamError::new("query", "malformed percent-encoding"))?;
            let value = decode(value).ok_or_else(|| ParamError::new(&name, "malformed percent-encoding"))?;
            out.push((name, value));
        }
        Ok(Self(out))
    }

    /// Refuses any parameter not in `known`, any empty value, and any repeated parameter not in
    /// `repeatable`.
    pub fn only(&self, known: &[&str], repeatable: &[&str]) -> Result<(), ParamError> {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ParamError::new(name, format!("unknown query parameter `{name}`")));
            }
            if value.is_empty() {
                return Err(ParamError::new(name, format!("`{name}` has an empty value")));
            }
            if !repeatable.contains(&name.as_str()) && self.0[..i].iter().any(|(n, _)| n == name) {
                return Err(ParamError::new(name, format!("`{name}` given more than once")));
            }
        }
        Ok(())
    }

    /// The value of `name` (empty values count as absent).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// `limit` within `1..=max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ParamError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ParamError::new("limit", format!("limit must be an integer from 1 to {max}"))),
        }
    }

    /// A boolean parameter (`true`/`false`).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ParamError::new(name, format!("`{name}` must be true or false"))),
        }
    }

    /// A time parameter: RFC 3339 or unix seconds.
    pub fn time(&self, name: &str) -> Result<Option<UnixMs>, ParamError> {
        self.get(name).map(|v| parse_time(v).map_err(|m| ParamError::new(name, m))).transpose()
    }

    /// A ledger-style cursor (`(created_at, id)` of the last item of the previous page).
    pub fn cursor(&self) -> Result<Option<(UnixMs, String)>, ParamError> {
        self.get("cursor")
            .map(|c| decode_cursor(c).ok_or_else(|| ParamError::new("cursor", "invalid cursor")))
            .transpose()
    }
}

/// RFC 3339, a date (`2026-12-01`: that day's 00:00 UTC), or unix seconds.
pub fn parse_time(v: &str) -> Result<UnixMs, String> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| "unix seconds out of range".to_string());
    }
    let b = v.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        return parse_rfc3339(&format!("{v}T00:00:00Z")).map_err(|e| format!("{e} (or a date, or unix seconds)"));
    }
    parse_rfc3339(v).map_err(|e| {
        // A `+` in a query string is a space once decoded: `…T08:00:00+01:00` arrives as `… 01:00`.
        if v.contains(' ') {
            format!("{e}; a `+` in a URL query means a space: send the offset as %2B (…T08:00:00%2B01:00)")
        } else {
            format!("{e} (or a date, or unix seconds)")
        }
    })
}

/// The ledger filter parameters.
pub const LEDGER_FILTERS: [&str; 8] = ["from", "to", "key", "key_prefix", "tenant_id", "model", "provider", "status"];

/// The ledger filters of a request (the caller's scope is applied separately).
pub fn ledger_query(p: &Params) -> Result<LedgerQuery, ParamError> {
    let status = p
        .get("status")
        .map(|s| StatusFilter::parse(s).ok_or_else(|| ParamError::new("status", "status must be 1xx-5xx or 100-599")))
        .transpose()?;
    let q = LedgerQuery {
        from: p.time("from")?,
        to: p.time("to")?,
        key: p.get("key").map(String::from),
        key_prefix: p.get("key_prefix").map(String::from),
        tenant_id: p.get("tenant_id").map(String::from),
        model: p.get("model").map(String::from),
        provider: p.get("provider").map(String::from),
        status,
        ..LedgerQuery::default()
    };
    if let (Some(f), Some(t)) = (q.from, q.to) {
        if f > t {
            return Err(ParamError::new("from", "`from` is after `to`"));
        }
    }
    Ok(q)
}

/// `group_by`: comma-separated and/or repeated dimension names, deduplicated in order.
pub fn group_by(p: &Params) -> Result<Vec<Dimension>, ParamError> {
    let mut dims = Vec::new();
    for name in p.all("group_by").flat_map(|v| v.split(',')).map(str::trim) {
        let d = Dimension::parse(name).ok_or_else(|| {
            let all: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
            ParamError::new("group_by", format!("unknown dimension `{name}`; use any of {}", all.join(", ")))
        })?;
        if !dims.contains(&d) {
            dims.push(d);
        }
    }
    Ok(dims)
}

/// Percent-decodes a query component (`+` = space); `None` on bad escapes or invalid UTF-8.
#[must_use]
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(Some(q)).unwrap()
    }

    #[test]
    fn decoding_and_unknown_parameters() {
        let q = p("key=team%2Da&model=gpt+4&empty=&flag");
        assert_eq!(q.get("key"), Some("team-a"));
        assert_eq!(q.get("model"), Some("gpt 4"));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.only(&["key", "model", "empty", "flag"], &[]).unwrap_err().param, "empty");
        assert_eq!(p("key=a&model=b").only(&["key", "model"], &[]), Ok(()));
        assert_eq!(q.only(&["key"], &[]).unwrap_err().param, "model");
        assert_eq!(p("a=1&a=2").only(&["a"], &[]).unwrap_err().param, "a");
        assert!(p("a=1&a=2").only(&["a"], &["a"]).is_ok());
        assert!(Params::parse(Some("a=%zz")).is_err());
        assert!(Params::parse(Some("a=%ff")).is_err());
        assert!(Params::parse(Some("a=%4")).is_err());
        assert_eq!(decode("%e2%82%ac"), Some("€".into()));
    }

    #[test]
    fn limits_booleans_times() {
        assert_eq!(p("").limit(100, 500), Ok(100));
        assert_eq!(p("limit=500").limit(100, 500), Ok(500));
        for bad in ["limit=0", "limit=501", "limit=-1", "limit=x"] {
            assert_eq!(p(bad).limit(100, 500).unwrap_err().param, "limit");
        }
        assert_eq!(p("disabled=true").boolean("disabled"), Ok(Some(true)));
        assert!(p("disabled=yes").boolean("disabled").is_err());
        assert_eq!(p("from=60").time("from"), Ok(Some(60_000)));
        assert_eq!(p("from=1970-01-01T00:01:00Z").time("from"), Ok(Some(60_000)));
        assert_eq!(p("from=tomorrow").time("from").unwrap_err().param, "from");
        assert!(parse_time("99999999999999999999").is_err());
        // F14: a date is its 00:00 UTC; a `+` that became a space gets a hint.
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert!(parse_time("1970-13-02").is_err());
        assert!(parse_time("2026-12-01T08:00:00 01:00").unwrap_err().contains("%2B"));
        assert_eq!(
            p("from=2026-12-01T08:00:00%2B01:00").time("from"),
            Ok(Some(parse_time("2026-12-01T07:00:00Z").unwrap()))
        );
        assert!(p("cursor=!!").cursor().is_err());
    }

    #[test]
    fn ledger_filters_and_group_by() {
        let q = ledger_query(&p("from=10&to=20&status=4xx&key_prefix=team-a-&model=m")).unwrap();
        assert_eq!((q.from, q.to, q.status), (Some(10_000), Some(20_000), StatusFilter::parse("4xx")));
        assert_eq!(q.key_prefix.as_deref(), Some("team-a-"));
        assert_eq!(ledger_query(&p("status=2x")).unwrap_err().param, "status");
        assert_eq!(ledger_query(&p("from=20&to=10")).unwrap_err().param, "from");
        let dims = group_by(&p("group_by=key,model&group_by=day&group_by=key")).unwrap();
        assert_eq!(dims, vec![Dimension::Key, Dimension::Model, Dimension::Day]);
        assert!(group_by(&p("group_by=color")).unwrap_err().message.contains("tenant"));
        assert_eq!(group_by(&p("group_by=,")).unwrap_err().param, "group_by");
        assert_eq!(group_by(&p("")), Ok(vec![]));
    }
}
