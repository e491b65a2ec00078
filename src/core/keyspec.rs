//! The admin API's view of a key: the create and PATCH bodies (absent = unchanged, `null` =
//! cleared, a value = set) parsed into a `KeyEdit`, and the JSON a key is returned as.
//!
//! Invariants: unknown fields are refused by name; every number fits Postgres' `bigint`; a key's
//! JSON never contains its token hash; parsing never panics on any input.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::core::admission::{headroom, period_end, Counters};
use crate::core::keys::{valid_name, BudgetPeriod, KeyRecord, KeySource};
use crate::core::pricing::{micros_to_usd, usd_to_micros};
use crate::core::time::{format_rfc3339, UnixMs};

/// A refused field: its name and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub param: String,
    pub message: String,
}

fn err(param: &str, message: impl Into<String>) -> FieldError {
    FieldError { param: param.to_string(), message: message.into() }
}

/// Changes to a key. Outer `None` = leave as is; `Some(None)` = clear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyEdit {
    pub tenant_id: Option<Option<String>>,
    pub team_id: Option<Option<String>>,
    pub project_id: Option<Option<String>>,
    pub user_id: Option<Option<String>>,
    pub budget_id: Option<Option<String>>,
    pub allowed_models: Option<Vec<String>>,
    pub budget_microusd: Option<Option<u64>>,
    pub budget_period: Option<BudgetPeriod>,
    pub request_budget: Option<Option<u64>>,
    pub rpm_limit: Option<Option<u64>>,
    pub tpm_limit: Option<Option<u64>>,
    pub max_parallel_requests: Option<Option<u64>>,
    pub expires_at: Option<Option<UnixMs>>,
    pub disabled: Option<bool>,
    pub metadata: Option<BTreeMap<String, String>>,
}

const ID_FIELDS: [&str; 5] = ["tenant_id", "team_id", "project_id", "user_id", "budget_id"];
const LIMIT_FIELDS: [&str; 4] = ["request_budget", "rpm_limit", "tpm_limit", "max_parallel_requests"];
const OTHER_FIELDS: [&str; 7] =
    ["allowed_models", "budget_usd", "budget_microusd", "budget_period", "expires_at", "disabled", "metadata"];
/// Largest integer accepted (Postgres `bigint`).
const MAX_INT: u64 = i64::MAX as u64;

/// Parses a create body: the key's name and its settings.
pub fn parse_create(body: &Value) -> Result<(String, KeyEdit), FieldError> {
    let obj = body.as_object().ok_or_else(|| err("body", "the body must be a JSON object"))?;
    let name = match obj.get("name") {
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        Some(_) => {
            return Err(err("name", "name must be 1-128 characters of A-Z a-z 0-9 . _ - (optionally `tenant:name`)"))
        }
        None => return Err(err("name", "name is required")),
    };
    let rest: Map<String, Value> =
        obj.iter().filter(|(k, _)| *k != "name").map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok((name, parse_fields(&rest)?))
}

/// A new key that would be expired at birth is a mistake: 400 naming `expires_at`.
pub fn check_not_expired(edit: &KeyEdit, now: UnixMs) -> Result<(), FieldError> {
    match edit.expires_at {
        Some(Some(t)) if t <= now => {
            Err(err("expires_at", "expires_at is in the past; a new key must expire later than now"))
        }
        _ => Ok(()),
    }
}

/// Parses a PATCH body.
pub fn parse_patch(body: &Value) -> Result<KeyEdit, FieldError> {
    let obj = body.as_object().ok_or_else(|| err("body", "the body must be a JSON object"))?;
    if obj.contains_key("name") {
        return Err(err("name", "a key cannot be renamed (the name is its identity)"));
    }
    parse_fields(obj)
}

fn parse_fields(obj: &Map<String, Value>) -> Result<KeyEdit, FieldError> {
    for k in obj.keys() {
        let known =
            ID_FIELDS.contains(&k.as_str()) || LIMIT_FIELDS.contains(&k.as_str()) || OTHER_FIELDS.contains(&k.as_str());
        if !known {
            return Err(err(k, format!("unknown field `{k}`")));
        }
    }
    if obj.contains_key("budget_usd") && obj.contains_key("budget_microusd") {
        return Err(err("budget_usd", "give budget_usd or budget_microusd, not both"));
    }
    let ids: Vec<Option<Option<String>>> =
        ID_FIELDS.iter().map(|f| obj.get(*f).map(|v| id_value(f, v)).transpose()).collect::<Result<_, _>>()?;
    let limits: Vec<Option<Option<u64>>> =
        LIMIT_FIELDS.iter().map(|f| obj.get(*f).map(|v| int_value(f, v)).transpose()).collect::<Result<_, _>>()?;
    let budget = match (obj.get("budget_usd"), obj.get("budget_microusd")) {
        (Some(v), _) => Some(usd_value(v)?),
        (None, Some(v)) => Some(int_value("budget_microusd", v)?),
        (None, None) => None,
    };
    let mut ids = ids.into_iter();
    let mut limits = limits.into_iter();
    let mut next_id = || ids.next().flatten();
    let mut next_limit = || limits.next().flatten();
    Ok(KeyEdit {
        tenant_id: next_id(),
        team_id: next_id(),
        project_id: next_id(),
        user_id: next_id(),
        budget_id: next_id(),
        request_budget: next_limit(),
        rpm_limit: next_limit(),
        tpm_limit: next_limit(),
        max_parallel_requests: next_limit(),
        budget_microusd: budget,
        allowed_models: obj.get("allowed_models").map(models_value).transpose()?,
        budget_period: obj.get("budget_period").map(period_value).transpose()?,
        expires_at: obj.get("expires_at").map(expiry_value).transpose()?,
        disabled: obj
            .get("disabled")
            .map(|v| match v {
                Value::Null => Ok(false),
                Value::Bool(b) => Ok(*b),
                _ => Err(err("disabled", "disabled must be true or false")),
            })
            .transpose()?,
        metadata: obj.get("metadata").map(metadata_value).transpose()?,
    })
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn id_value(field: &str, v: &Value) -> Result<Option<String>, FieldError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if printable(s, 128) => Ok(Some(s.clone())),
        _ => Err(err(field, format!("{field} must be null or 1-128 printable characters"))),
    }
}

fn int_value(field: &str, v: &Value) -> Result<Option<u64>, FieldError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            whole(n).map(Some).ok_or_else(|| err(field, format!("{field} must be a non-negative integer")))
        }
        _ => Err(err(field, format!("{field} must be null or a non-negative integer"))),
    }
}

/// A non-negative whole number up to `MAX_INT`; JSON `1372.0` counts (JSON Schema's `integer`).
fn whole(n: &serde_json::Number) -> Option<u64> {
    let v = n.as_u64().or_else(|| {
        let f = n.as_f64()?;
        // 2^63 as f64 is exactly representable; anything at or past it is out of range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (f.fract() == 0.0 && (0.0..9.223_372_036_854_775e18).contains(&f)).then_some(f as u64)
    })?;
    (v <= MAX_INT).then_some(v)
}

fn usd_value(v: &Value) -> Result<Option<u64>, FieldError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() && (0.0..=1e12).contains(&f) => Ok(Some(usd_to_micros(f))),
            _ => Err(err("budget_usd", "budget_usd must be a number from 0 to 1e12")),
        },
        _ => Err(err("budget_usd", "budget_usd must be null or a number")),
    }
}

fn models_value(v: &Value) -> Result<Vec<String>, FieldError> {
    let bad =
        || err("allowed_models", "allowed_models must be null or a list of up to 256 model names or trailing-* globs");
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) if items.len() <= 256 => {
            items.iter().map(|m| m.as_str().filter(|s| printable(s, 256)).map(String::from).ok_or_else(bad)).collect()
        }
        _ => Err(bad()),
    }
}

fn period_value(v: &Value) -> Result<BudgetPeriod, FieldError> {
    match v {
        Value::Null => Ok(BudgetPeriod::Total),
        Value::String(s) => serde_json::from_value(Value::String(s.clone()))
            .map_err(|_| err("budget_period", "budget_period must be total, daily, weekly or monthly")),
        _ => Err(err("budget_period", "budget_period must be total, daily, weekly or monthly")),
    }
}

/// The latest expiry: 9999-12-31T23:59:59Z, the last instant RFC 3339 (four-digit years) can render.
pub const MAX_EXPIRY_SECS: u64 = 253_402_300_799;

fn expiry_value(v: &Value) -> Result<Option<UnixMs>, FieldError> {
    let in_range = |ms: UnixMs| {
        (ms <= MAX_EXPIRY_SECS * 1000 + 999)
            .then_some(Some(ms))
            .ok_or_else(|| err("expires_at", "expires_at must not be after 9999-12-31T23:59:59Z"))
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => whole(n)
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| err("expires_at", "expires_at must be RFC 3339 or unix seconds"))
            .and_then(in_range),
        Value::String(s) => crate::core::query::parse_time(s).map_err(|m| err("expires_at", m)).and_then(in_range),
        _ => Err(err("expires_at", "expires_at must be null, RFC 3339 or unix seconds")),
    }
}

fn metadata_value(v: &Value) -> Result<BTreeMap<String, String>, FieldError> {
    let bad = || {
        err("metadata", "metadata must be null or an object of up to 64 string values (keys ≤128, values ≤1024 bytes)")
    };
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) if m.len() <= 64 => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if printable(k, 128) && s.chars().count() <= 1024 => Ok((k.clone(), s.clone())),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

impl KeyEdit {
    /// Applies the edit to `k` (does not touch version or timestamps).
    pub fn apply(&self, k: &mut KeyRecord) {
        let set = |slot: &mut Option<String>, v: &Option<Option<String>>| {
            if let Some(v) = v {
                slot.clone_from(v);
            }
        };
        set(&mut k.tenant_id, &self.tenant_id);
        set(&mut k.team_id, &self.team_id);
        set(&mut k.project_id, &self.project_id);
        set(&mut k.user_id, &self.user_id);
        set(&mut k.budget_id, &self.budget_id);
        let set_n = |slot: &mut Option<u64>, v: Option<Option<u64>>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set_n(&mut k.limits.budget_microusd, self.budget_microusd);
        set_n(&mut k.limits.request_budget, self.request_budget);
        set_n(&mut k.limits.rpm_limit, self.rpm_limit);
        set_n(&mut k.limits.tpm_limit, self.tpm_limit);
        set_n(&mut k.limits.max_parallel_requests, self.max_parallel_requests);
        set_n(&mut k.expires_at, self.expires_at);
        if let Some(m) = &self.allowed_models {
            k.allowed_models.clone_from(m);
        }
        if let Some(p) = self.budget_period {
            k.limits.budget_period = p;
        }
        if let Some(d) = self.disabled {
            k.disabled = d;
        }
        if let Some(m) = &self.metadata {
            k.metadata.clone_from(m);
        }
    }
}

fn time_or_null(t: Option<UnixMs>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t)))
}

/// A key as the API returns it (`object: gateway.key`), without its hash.
#[must_use]
pub fn key_json(k: &KeyRecord) -> Value {
    json!({
        "object": "gateway.key",
        "id": k.id,
        "name": k.name,
        "token_hint": k.token_hint,
        "tenant_id": k.tenant_id,
        "team_id": k.team_id,
        "project_id": k.project_id,
        "user_id": k.user_id,
        "budget_id": k.budget_id,
        "allowed_models": k.allowed_models,
        "budget_microusd": k.limits.budget_microusd,
        "budget_usd": k.limits.budget_microusd.map(micros_to_usd),
        "budget_period": k.limits.budget_period,
        "request_budget": k.limits.request_budget,
        "rpm_limit": k.limits.rpm_limit,
        "tpm_limit": k.limits.tpm_limit,
        "max_parallel_requests": k.limits.max_parallel_requests,
        "expires_at": time_or_null(k.expires_at),
        "disabled": k.disabled,
        "metadata": k.metadata,
        "source": if k.source == KeySource::Policy { "policy" } else { "admin" },
        "created_at": format_rfc3339(k.created_at),
        "updated_at": format_rfc3339(k.updated_at),
        "last_used_at": time_or_null(k.last_used_at),
        "version": k.version,
    })
}

/// A key's usage as `GET usage` returns it: period counters, budget left, the rate windows.
#[must_use]
pub fn usage_json(k: &KeyRecord, c: &Counters, now: UnixMs) -> Value {
    let l = &k.limits;
    let h = headroom(c, l, now);
    let sec = now / 1000;
    let budget_left = l.budget_microusd.map(|b| b.saturating_sub(c.spend_microusd.saturating_add(c.reserved_microusd)));
    let rate_reset = h.requests.map_or(0, |r| r.2).max(h.tokens.map_or(0, |t| t.2));
    json!({
        "object": "gateway.usage",
        "key": k.name,
        "key_id": k.id,
        "tenant_id": k.tenant_id,
        "limit_scope": k.limit_scope(),
        "budget_period": l.budget_period,
        "period_start": format_rfc3339(c.period_start),
        "period_resets_at": time_or_null(period_end(l.budget_period, now)),
        "requests": c.requests,
        "request_budget": l.request_budget,
        "requests_remaining": l.request_budget.map(|b| b.saturating_sub(c.requests)),
        "spend_microusd": c.spend_microusd,
        "spend_usd": micros_to_usd(c.spend_microusd),
        "reserved_microusd": c.reserved_microusd,
        "budget_microusd": l.budget_microusd,
        "budget_remaining_microusd": budget_left,
        "budget_remaining_usd": budget_left.map(micros_to_usd),
        "in_flight": c.in_flight,
        "minute_requests": c.minute_requests.sum(sec),
        "rpm_limit": l.rpm_limit,
        "minute_tokens": c.minute_tokens.sum(sec),
        "tpm_limit": l.tpm_limit,
        "rate_resets_in_seconds": rate_reset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_valued_floats_are_integers() {
        let edit =
            parse_patch(&serde_json::from_str(r#"{"rpm_limit": 3921589955216418.0, "tpm_limit": 7.0}"#).unwrap())
                .unwrap();
        assert_eq!((edit.rpm_limit, edit.tpm_limit), (Some(Some(3_921_589_955_216_418)), Some(Some(7))));
        assert!(parse_patch(&json!({"rpm_limit": 7.5})).is_err());
    }

    #[test]
    fn create_requires_a_valid_name_and_known_fields() {
        let (name, edit) =
            parse_create(&json!({"name": "team-a-ci", "tenant_id": "tenant-a", "budget_usd": 1.5})).unwrap();
        assert_eq!(name, "team-a-ci");
        assert_eq!(edit.tenant_id, Some(Some("tenant-a".into())));
        assert_eq!(edit.budget_microusd, Some(Some(1_500_000)));
        let (_, edit) = parse_create(&json!({"name": "k", "rpm_limit": 1372.0, "expires_at": 60.0})).unwrap();
        assert_eq!((edit.rpm_limit, edit.expires_at), (Some(Some(1372)), Some(Some(60_000))));
        let cases = [
            (json!({}), "name"),
            (json!({"name": "a b"}), "name"),
            (json!({"name": 5}), "name"),
            (json!({"name": "k", "colour": 1}), "colour"),
            (json!({"name": "k", "rpm_limit": -1}), "rpm_limit"),
            (json!({"name": "k", "rpm_limit": 1.5}), "rpm_limit"),
            (json!({"name": "k", "rpm_limit": -0.5}), "rpm_limit"),
            (json!({"name": "k", "rpm_limit": 1e30}), "rpm_limit"),
            (json!({"name": "k", "tpm_limit": u64::MAX}), "tpm_limit"),
            (json!({"name": "k", "budget_usd": 1, "budget_microusd": 1}), "budget_usd"),
            (json!({"name": "k", "budget_usd": -1}), "budget_usd"),
            (json!({"name": "k", "budget_period": "hourly"}), "budget_period"),
            (json!({"name": "k", "expires_at": "soon"}), "expires_at"),
            (json!({"name": "k", "expires_at": 253_402_300_800_u64}), "expires_at"),
            (json!({"name": "k", "expires_at": "9999-12-31T23:59:59-01:00"}), "expires_at"),
            (json!({"name": "k", "allowed_models": [1]}), "allowed_models"),
            (json!({"name": "k", "metadata": {"a": 1}}), "metadata"),
            (json!({"name": "k", "tenant_id": ""}), "tenant_id"),
            (json!({"name": "k", "disabled": "yes"}), "disabled"),
            (json!([1]), "body"),
        ];
        for (body, param) in cases {
            assert_eq!(parse_create(&body).unwrap_err().param, param, "{body}");
        }
    }

    #[test]
    fn patch_distinguishes_absent_null_and_value() {
        let mut k = KeyRecord { tenant_id: Some("t".into()), team_id: Some("x".into()), ..KeyRecord::default() };
        k.limits.rpm_limit = Some(5);
        k.allowed_models = vec!["m".into()];
        let edit =
            parse_patch(&json!({"team_id": null, "tpm_limit": 9, "expires_at": 60, "allowed_models": null})).unwrap();
        edit.apply(&mut k);
        assert_eq!(k.tenant_id.as_deref(), Some("t"), "absent is unchanged");
        assert_eq!(k.team_id, None, "null clears");
        assert_eq!((k.limits.rpm_limit, k.limits.tpm_limit), (Some(5), Some(9)));
        assert_eq!(k.expires_at, Some(60_000));
        assert!(k.allowed_models.is_empty());
        assert_eq!(parse_patch(&json!({"name": "other"})).unwrap_err().param, "name");
        let e = parse_patch(&json!({"expires_at": "2027-01-01T00:00:00Z", "budget_period": "daily"})).unwrap();
        assert_eq!(e.budget_period, Some(BudgetPeriod::Daily));
        assert!(e.expires_at.unwrap().unwrap() > 1_700_000_000_000);
    }

    #[test]
    fn json_has_no_hash_and_renders_money_and_times() {
        let mut k = KeyRecord { name: "k".into(), token_hash: [7; 32], created_at: 1000, ..KeyRecord::default() };
        k.limits.budget_microusd = Some(2_500_000);
        let v = key_json(&k);
        assert_eq!(v["budget_usd"], 2.5);
        assert_eq!(v["created_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["source"], "admin");
        assert!(v.get("token_hash").is_none() && !v.to_string().contains("0707"));
    }

    #[test]
    fn usage_reports_remaining_budget_and_resets() {
        let mut k = KeyRecord { name: "k".into(), id: "id".into(), ..KeyRecord::default() };
        k.limits.budget_microusd = Some(10);
        k.limits.request_budget = Some(5);
        k.limits.budget_period = BudgetPeriod::Daily;
        let c = Counters { requests: 2, spend_microusd: 4, reserved_microusd: 3, ..Counters::default() };
        let v = usage_json(&k, &c, 1_000);
        assert_eq!((v["requests_remaining"].as_u64(), v["budget_remaining_microusd"].as_u64()), (Some(3), Some(3)));
        assert_eq!(v["period_resets_at"], "1970-01-02T00:00:00.000Z");
        assert_eq!(v["limit_scope"], "key:id");
        k.limits = crate::core::keys::Limits::default();
        assert!(usage_json(&k, &c, 1_000)["budget_remaining_usd"].is_null());
    }
}
