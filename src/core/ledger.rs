//! The billing ledger's vocabulary: one `LedgerRow` per data-plane call (rejected calls too), the
//! filters operators query it with, and the pure summary fold every backend's summaries must equal.
//!
//! Invariants: a row carries the key's scope as it was at call time (tenant, team, project, user,
//! budget), so deleted keys stay attributable; money is integer micro-USD, and `cost_microusd` is
//! `None` (never 0) when the model had no price.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::keys::name_has_prefix;
use crate::core::metrics::Sample;
use crate::core::pricing::micros_to_usd;
use crate::core::time::UnixMs;

/// One data-plane call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub call_id: String,
    pub created_at: UnixMs,
    pub key_name: String,
    pub key_id: Option<String>,
    pub tenant_id: Option<String>,
    pub team_id: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub budget_id: Option<String>,
    pub provider: Option<String>,
    pub route: String,
    pub model: Option<String>,
    pub upstream_model: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub error_code: Option<String>,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    /// Input tokens written to the provider's cache (part of `input_tokens`, billed at the
    /// cache-write rate). Absent in rows written before the column existed: 0.
    #[serde(default)]
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// `provider`, `partial`, `estimated` or `none`.
    pub usage_source: String,
    pub reserved_microusd: u64,
    pub cost_microusd: Option<u64>,
    pub price_version: Option<String>,
    /// Upstream attempts the call made, across the targets of its plan (rows written before the
    /// column existed: 0).
    #[serde(default)]
    pub attempts: u32,
    /// The error code of the last attempt that failed over to the next target, when one did.
    #[serde(default)]
    pub fallback_error: Option<String>,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub upstream_ms: u64,
    pub overhead_us: u64,
    pub client_disconnected: bool,
}

impl LedgerRow {
    /// The call was refused by the gateway itself (auth, allowlist, budget, limits, bad input).
    #[must_use]
    pub fn rejected(&self) -> bool {
        self.status >= 400 && self.error_code.as_deref().is_some_and(|c| !c.starts_with("upstream_"))
    }

    /// The row as JSON for the API, with `cost_usd` and an RFC 3339 `created_at`.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["created_at"] = serde_json::Value::String(crate::core::time::format_rfc3339(self.created_at));
        v["cost_usd"] = self.cost_microusd.map(micros_to_usd).map_or(serde_json::Value::Null, serde_json::Value::from);
        v
    }
}

/// One value of the access line, borrowed from the row (no copy on the hot path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessValue<'a> {
    Str(&'a str),
    Num(u64),
    Bool(bool),
    /// Absent: `-` in the text line, `null` in JSON (never a sentinel number).
    None,
}

/// The access line's fields for `row`, in their order. Ids, counts and timings only: no secret,
/// prompt or completion.
#[must_use]
pub fn access_fields<'a>(row: &'a LedgerRow, usage_source: &'a str) -> Vec<(&'static str, AccessValue<'a>)> {
    use AccessValue::{Bool, Num, Str};
    let opt = |v: Option<&'a str>| v.map_or(AccessValue::None, Str);
    let num = |v: Option<u64>| v.map_or(AccessValue::None, Num);
    let mut out = Vec::with_capacity(27);
    out.extend([
        ("call", Str(&row.call_id)),
        ("key", Str(&row.key_name)),
        ("route", Str(&row.route)),
        ("model", opt(row.model.as_deref())),
        ("provider", opt(row.provider.as_deref())),
        ("stream", Bool(row.stream)),
        ("status", Num(u64::from(row.status))),
        ("error", opt(row.error_code.as_deref())),
        ("input_tokens", Num(row.input_tokens)),
        ("cached_input_tokens", Num(row.cached_input_tokens)),
        ("cache_write_input_tokens", Num(row.cache_write_input_tokens)),
        ("output_tokens", Num(row.output_tokens)),
        ("reasoning_tokens", Num(row.reasoning_tokens)),
        ("usage_source", Str(usage_source)),
        ("cost_microusd", num(row.cost_microusd)),
        ("latency_ms", Num(row.latency_ms)),
        ("ttfb_ms", num(row.ttfb_ms)),
        ("upstream_ms", Num(row.upstream_ms)),
        ("overhead_us", Num(row.overhead_us)),
        ("client_disconnected", Bool(row.client_disconnected)),
        ("upstream_model", opt(row.upstream_model.as_deref())),
        ("attempts", Num(u64::from(row.attempts))),
        ("fallback_error", opt(row.fallback_error.as_deref())),
    ]);
    out
}

/// Status filter: a class or an exact code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Class(u16),
    Exact(u16),
}

impl StatusFilter {
    /// `2xx`, `4xx`, `5xx` or an exact status.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1xx" | "2xx" | "3xx" | "4xx" | "5xx" => s[..1].parse().ok().map(Self::Class),
            _ => s.parse().ok().filter(|c| (100..600).contains(c)).map(Self::Exact),
        }
    }

    fn matches(self, status: u16) -> bool {
        match self {
            Self::Class(c) => status / 100 == c,
            Self::Exact(s) => status == s,
        }
    }
}

/// Which rows a query covers. Every field narrows; `tenant_scope`/`prefix_scope` are the caller's
/// own scope, applied on top of what it asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Inclusive.
    pub from: Option<UnixMs>,
    /// Exclusive.
    pub to: Option<UnixMs>,
    pub key: Option<String>,
    pub key_prefix: Option<String>,
    pub tenant_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<StatusFilter>,
    pub tenant_scope: Option<String>,
    /// Non-empty: the key name must start with one of these.
    pub prefix_scope: Vec<String>,
}

impl LedgerQuery {
    /// Whether `row` is covered.
    #[must_use]
    pub fn matches(&self, row: &LedgerRow) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref() == Some(w));
        self.from.is_none_or(|f| row.created_at >= f)
            && self.to.is_none_or(|t| row.created_at < t)
            && self.key.as_ref().is_none_or(|k| &row.key_name == k)
            && self.key_prefix.as_ref().is_none_or(|p| name_has_prefix(&row.key_name, p))
            && eq(&self.tenant_id, &row.tenant_id)
            && eq(&self.tenant_scope, &row.tenant_id)
            && eq(&self.model, &row.model)
            && eq(&self.provider, &row.provider)
            && self.status.is_none_or(|s| s.matches(row.status))
            && (self.prefix_scope.is_empty() || self.prefix_scope.iter().any(|p| name_has_prefix(&row.key_name, p)))
    }
}

/// Summary dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Key,
    Model,
    Provider,
    Tenant,
    Team,
    Project,
    User,
    Budget,
    Day,
    Hour,
}

impl Dimension {
    pub const ALL: [Dimension; 10] = [
        Self::Key,
        Self::Model,
        Self::Provider,
        Self::Tenant,
        Self::Team,
        Self::Project,
        Self::User,
        Self::Budget,
        Self::Day,
        Self::Hour,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Tenant => "tenant",
            Self::Team => "team",
            Self::Project => "project",
            Self::User => "user",
            Self::Budget => "budget",
            Self::Day => "day",
            Self::Hour => "hour",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The row's value in this dimension.
    #[must_use]
    pub fn value(self, row: &LedgerRow) -> Option<String> {
        match self {
            Self::Key => Some(row.key_name.clone()),
            Self::Model => row.model.clone(),
            Self::Provider => row.provider.clone(),
            Self::Tenant => row.tenant_id.clone(),
            Self::Team => row.team_id.clone(),
            Self::Project => row.project_id.clone(),
            Self::User => row.user_id.clone(),
            Self::Budget => row.budget_id.clone(),
            Self::Day => Some(crate::core::time::format_rfc3339(row.created_at)[..10].to_string()),
            Self::Hour => Some(format!("{}:00:00Z", &crate::core::time::format_rfc3339(row.created_at)[..13])),
        }
    }
}

/// Totals of one summary group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// The group's value in each requested dimension, in request order.
    pub group: Vec<Option<String>>,
    pub requests: u64,
    pub succeeded: u64,
    pub rejected: u64,
    pub failed: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_microusd: u64,
    pub first_at: Option<UnixMs>,
    pub last_at: Option<UnixMs>,
}

impl Bucket {
    /// Adds one row.
    pub fn add(&mut self, row: &LedgerRow) {
        self.requests += 1;
        if (200..300).contains(&row.status) {
            self.succeeded += 1;
        } else if row.rejected() {
            self.rejected += 1;
        } else {
            self.failed += 1;
        }
        self.input_tokens += row.input_tokens;
        self.cached_input_tokens += row.cached_input_tokens;
        self.cache_write_input_tokens += row.cache_write_input_tokens;
        self.output_tokens += row.output_tokens;
        self.reasoning_tokens += row.reasoning_tokens;
        self.cost_microusd += row.cost_microusd.unwrap_or(0);
        self.first_at = Some(self.first_at.map_or(row.created_at, |f| f.min(row.created_at)));
        self.last_at = Some(self.last_at.map_or(row.created_at, |l| l.max(row.created_at)));
    }

    /// Adds another bucket's totals (for pre-aggregated partial sums).
    pub fn merge(&mut self, other: &Bucket) {
        self.requests += other.requests;
        self.succeeded += other.succeeded;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_input_tokens += other.cache_write_input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cost_microusd += other.cost_microusd;
        self.first_at = match (self.first_at, other.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_at = match (self.last_at, other.last_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Folds rows into summary buckets one at a time (no need to hold the rows).
#[derive(Clone, Debug, Default)]
pub struct Summarizer {
    dims: Vec<Dimension>,
    groups: BTreeMap<Vec<Option<String>>, Bucket>,
    totals: Bucket,
}

impl Summarizer {
    #[must_use]
    pub fn new(dims: &[Dimension]) -> Self {
        Self { dims: dims.to_vec(), ..Self::default() }
    }

    pub fn add(&mut self, row: &LedgerRow) {
        let key: Vec<Option<String>> = self.dims.iter().map(|d| d.value(row)).collect();
        self.groups.entry(key.clone()).or_insert_with(|| Bucket { group: key, ..Bucket::default() }).add(row);
        self.totals.add(row);
    }

    /// The buckets (sorted by group) and the totals bucket.
    #[must_use]
    pub fn finish(self) -> (Vec<Bucket>, Bucket) {
        (self.groups.into_values().collect(), self.totals)
    }
}

/// Groups `rows` by `dims`; returns the buckets (sorted by group) and the totals bucket.
pub fn summarize<'a>(rows: impl IntoIterator<Item = &'a LedgerRow>, dims: &[Dimension]) -> (Vec<Bucket>, Bucket) {
    let mut s = Summarizer::new(dims);
    for row in rows {
        s.add(row);
    }
    s.finish()
}

/// Opaque paging cursor: the last row returned (rows are listed newest first).
#[must_use]
pub fn encode_cursor(created_at: UnixMs, call_id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}:{call_id}"))
}

/// Decodes a cursor from `encode_cursor`.
#[must_use]
pub fn decode_cursor(cursor: &str) -> Option<(UnixMs, String)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (ms, id) = text.split_once(':')?;
    Some((ms.parse().ok()?, id.to_string()))
}

/// The `model` label of a row. A client names any model it likes, so a label is kept only for a
/// model that answered or has a price: calls the gateway refused fold into `_refused`, and
/// upstream errors for unpriced names into `_unknown` — a flood of invented names cannot grow
/// the exposition without bound.
fn model_label(row: &LedgerRow) -> Option<&str> {
    if row.rejected() {
        Some("_refused")
    } else if !(200..300).contains(&row.status) && row.cost_microusd.is_none() && row.model.is_some() {
        Some("_unknown")
    } else {
        row.model.as_deref()
    }
}

/// The sample a ledger row contributes to the live metrics registry.
#[must_use]
pub fn sample(row: &LedgerRow) -> Sample<'_> {
    Sample {
        at: row.created_at,
        tenant: row.tenant_id.as_deref(),
        key: &row.key_name,
        route: &row.route,
        provider: row.provider.as_deref(),
        model: model_label(row),
        status: row.status,
        error_code: row.error_code.as_deref(),
        rejected: row.rejected(),
        input_tokens: row.input_tokens,
        cached_input_tokens: row.cached_input_tokens,
        cache_write_input_tokens: row.cache_write_input_tokens,
        output_tokens: row.output_tokens,
        reasoning_tokens: row.reasoning_tokens,
        cost_microusd: row.cost_microusd,
        latency_us: row.latency_ms.saturating_mul(1000),
        overhead_us: row.overhead_us,
        ttfb_us: row.ttfb_ms.map(|t| t.saturating_mul(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, at: UnixMs, key: &str, status: u16, code: Option<&str>, cost: Option<u64>) -> LedgerRow {
        LedgerRow {
            call_id: id.into(),
            created_at: at,
            key_name: key.into(),
            tenant_id: Some(if key.starts_with("a-") { "tenant-a" } else { "tenant-b" }.into()),
            model: Some("m".into()),
            status,
            error_code: code.map(String::from),
            input_tokens: 10,
            output_tokens: 5,
            cost_microusd: cost,
            ..LedgerRow::default()
        }
    }

    #[test]
    fn filters_narrow_and_scopes_apply_on_top() {
        let r = row("1", 1000, "a-ci", 200, None, Some(3));
        let q = |f: fn(&mut LedgerQuery)| {
            let mut q = LedgerQuery::default();
            f(&mut q);
            q.matches(&r)
        };
        assert!(q(|_| {}));
        assert!(q(|q| q.from = Some(1000)) && !q(|q| q.from = Some(1001)));
        assert!(q(|q| q.to = Some(1001)) && !q(|q| q.to = Some(1000)));
        assert!(q(|q| q.key_prefix = Some("a-".into())) && !q(|q| q.key = Some("a-c".into())));
        assert!(q(|q| q.status = StatusFilter::parse("2xx")) && !q(|q| q.status = StatusFilter::parse("404")));
        assert!(!q(|q| q.tenant_scope = Some("tenant-b".into())));
        assert!(!q(|q| q.prefix_scope = vec!["b-".into()]) && q(|q| q.prefix_scope = vec!["b-".into(), "a-".into()]));
        assert_eq!(StatusFilter::parse("6xx"), None);
        assert_eq!(StatusFilter::parse("700"), None);
    }

    #[test]
    fn summaries_classify_and_total() {
        let rows = [
            row("1", 1000, "a-ci", 200, None, Some(3)),
            row("2", 2000, "a-ci", 429, Some("budget_exceeded"), None),
            row("3", 3_600_000 + 5, "b-x", 502, Some("upstream_unreachable"), None),
        ];
        let (buckets, totals) = summarize(rows.iter(), &[Dimension::Key, Dimension::Hour]);
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[0].group, vec![Some("a-ci".to_string()), Some("1970-01-01T00:00:00Z".to_string())]);
        assert_eq!((buckets[0].requests, buckets[0].succeeded, buckets[0].rejected, buckets[0].failed), (2, 1, 1, 0));
        assert_eq!((totals.requests, totals.failed, totals.cost_microusd, totals.input_tokens), (3, 1, 3, 30));
        assert_eq!((totals.first_at, totals.last_at), (Some(1000), Some(3_600_005)));
        let mut merged = Bucket::default();
        for b in &buckets {
            merged.merge(b);
        }
        assert_eq!(merged.requests, totals.requests);
        assert_eq!(merged.first_at, totals.first_at);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(123, "prodex-abc");
        assert_eq!(decode_cursor(&c), Some((123, "prodex-abc".into())));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor("bm9jb2xvbg"), None);
    }

    #[test]
    fn rows_render_usd_and_rfc3339() {
        let v = row("1", 1500, "a-ci", 200, None, Some(1_500_000)).to_json();
        assert_eq!(v["created_at"], "1970-01-01T00:00:01.500Z");
        assert_eq!(v["cost_usd"], 1.5);
        assert!(row("1", 0, "k", 200, None, None).to_json()["cost_usd"].is_null());
    }
}
