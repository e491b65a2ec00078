//! The document's component schemas for keys, usage, the ledger, audit and health, built from short
//! field codes (see [`field`]); the SCIM schemas are in `scim`.
//!
//! Invariant: request schemas accept exactly what the handlers accept (schemathesis checks both
//! directions); response schemas describe every field the handlers render.

use serde_json::{json, Map, Value};

use super::{schema_ref, GROUP_BY, MAX_INT, NAME_PATTERN, PRINTABLE, SINCE_1970};
use crate::core::keyspec::MAX_EXPIRY_SECS;

/// A time: RFC 3339 (from 1970 on) or unix seconds up to `max_secs`.
pub(super) fn instant(max_secs: u64) -> Value {
    json!({"anyOf": [
        {"type": "string", "format": "date-time", "pattern": SINCE_1970},
        {"type": "integer", "minimum": 0, "maximum": max_secs},
    ]})
}

/// A field schema from a short code: `str`, `int` (u64), `num`, `bool`, `time` (RFC 3339), `strs`
/// (array of strings), `map` (string → string), `=c` (the string constant c), `|a|b` (an enum), `#Name`
/// (a component), `[#Name]` (an array of it), or a request-side code (`id`, `i64`, `usd`, `models`,
/// `meta`, `when`, `name`); a trailing `?` adds null.
fn field(code: &str) -> Value {
    if let Some(base) = code.strip_suffix('?') {
        return nullable(field(base));
    }
    if let Some(c) = code.strip_prefix('=') {
        return json!({"type": "string", "const": c});
    }
    if let Some(values) = code.strip_prefix('|') {
        return json!({"type": "string", "enum": values.split('|').collect::<Vec<_>>()});
    }
    if let Some(name) = code.strip_prefix('#') {
        return schema_ref(name);
    }
    if let Some(name) = code.strip_prefix("[#").and_then(|c| c.strip_suffix(']')) {
        return json!({"type": "array", "items": schema_ref(name)});
    }
    let printable = |max: u64| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": PRINTABLE});
    match code {
        "int" => json!({"type": "integer", "minimum": 0}),
        "num" => json!({"type": "number"}),
        "bool" => json!({"type": "boolean"}),
        "true" => json!({"type": "boolean", "const": true}),
        "time" => json!({"type": "string", "format": "date-time"}),
        "strs" => json!({"type": "array", "items": {"type": "string"}}),
        "map" => json!({"type": "object", "additionalProperties": {"type": "string"}}),
        "period" => field("|total|daily|weekly|monthly"),
        "dims" => json!({"type": "array", "items": {"type": "string", "enum": GROUP_BY}}),
        "name" => json!({"type": "string", "maxLength": 128, "pattern": NAME_PATTERN}),
        "id" => printable(128),
        "i64" => json!({"type": "integer", "minimum": 0, "maximum": MAX_INT}),
        "usd" => json!({"type": "number", "minimum": 0, "maximum": 1e12}),
        "models" => json!({"type": "array", "maxItems": 256, "items": printable(256)}),
        "meta" => json!({"type": "object", "maxProperties": 64, "propertyNames": printable(128),
            "additionalProperties": {"type": "string", "maxLength": 1024}}),
        "when" => {
            let mut t = instant(MAX_EXPIRY_SECS);
            t["description"] = json!("RFC 3339 or unix seconds");
            t
        }
        _ => json!({"type": "string"}),
    }
}

/// JSON Schema 2020-12 nullable: adds `"null"` to `type` (and to `enum`); anything else becomes `anyOf`.
fn nullable(mut schema: Value) -> Value {
    let ty = match schema.get("type") {
        Some(Value::String(t)) => vec![json!(t), json!("null")],
        Some(Value::Array(ts)) if ts.contains(&json!("null")) => return schema,
        Some(Value::Array(ts)) => ts.iter().cloned().chain([json!("null")]).collect(),
        _ => return json!({"anyOf": [schema, {"type": "null"}]}),
    };
    schema["type"] = Value::Array(ty);
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.push(Value::Null);
    }
    schema
}

/// An object whose listed fields are all required (response side: nulls are sent, not omitted).
fn object(fields: &[(&str, &str)]) -> Value {
    let props: Map<String, Value> = fields.iter().map(|(k, c)| ((*k).to_string(), field(c))).collect();
    let required: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    json!({"type": "object", "required": required, "properties": props})
}

/// `{"object":"list","data":[T],"next_cursor":string|null}`.
fn list_of(item: &str) -> Value {
    object(&[("object", "=list"), ("data", &format!("[#{item}]")), ("next_cursor", "str?")])
}

const KEY: &[(&str, &str)] = &[
    ("object", "=gateway.key"),
    ("id", "str"),
    ("name", "str"),
    ("token_hint", "str"),
    ("tenant_id", "str?"),
    ("team_id", "str?"),
    ("project_id", "str?"),
    ("user_id", "str?"),
    ("budget_id", "str?"),
    ("allowed_models", "strs"),
    ("budget_microusd", "int?"),
    ("budget_usd", "num?"),
    ("budget_period", "period"),
    ("request_budget", "int?"),
    ("rpm_limit", "int?"),
    ("tpm_limit", "int?"),
    ("max_parallel_requests", "int?"),
    ("expires_at", "time?"),
    ("disabled", "bool"),
    ("metadata", "map"),
    ("source", "|policy|admin"),
    ("created_at", "time"),
    ("updated_at", "time"),
    ("last_used_at", "time?"),
    ("version", "int"),
];

/// Writable key fields, shared by KeyCreate (besides `name`) and KeyPatch. Every one takes null:
/// on PATCH it clears the field, on create it is the default (no limit, all models, `total`, enabled).
const KEY_INPUT: &[(&str, &str)] = &[
    ("tenant_id", "id?"),
    ("team_id", "id?"),
    ("project_id", "id?"),
    ("user_id", "id?"),
    ("budget_id", "id?"),
    ("allowed_models", "models?"),
    ("budget_usd", "usd?"),
    ("budget_microusd", "i64?"),
    ("budget_period", "period?"),
    ("request_budget", "i64?"),
    ("rpm_limit", "i64?"),
    ("tpm_limit", "i64?"),
    ("max_parallel_requests", "i64?"),
    ("expires_at", "when?"),
    ("disabled", "bool?"),
    ("metadata", "meta?"),
];

fn key_input(create: bool) -> Value {
    let mut props = Map::new();
    if create {
        props.insert("name".into(), field("name"));
    }
    for (name, code) in KEY_INPUT {
        props.insert((*name).to_string(), field(code));
    }
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": props,
        "not": {"required": ["budget_usd", "budget_microusd"], "description": "budget_usd or budget_microusd"},
    });
    if create {
        schema["required"] = json!(["name"]);
    }
    schema
}

const COUNTS: &[(&str, &str)] = &[
    ("requests", "int"),
    ("succeeded", "int"),
    ("rejected", "int"),
    ("failed", "int"),
    ("input_tokens", "int"),
    ("cached_input_tokens", "int"),
    ("cache_write_input_tokens", "int"),
    ("output_tokens", "int"),
    ("reasoning_tokens", "int"),
    ("cost_microusd", "int"),
    ("cost_usd", "num"),
    ("first_at", "time?"),
    ("last_at", "time?"),
];

/// A summary bucket: the counts, plus one property per group_by dimension asked for.
fn bucket() -> Value {
    let mut schema = object(COUNTS);
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for dim in GROUP_BY {
            props.insert(dim.to_string(), field("str?"));
        }
    }
    schema
}

pub(super) fn schemas() -> Value {
    let error = object(&[("message", "str"), ("type", "str"), ("param", "str?"), ("code", "str")]);
    let token = json!({"type": "string", "pattern": "^pk-", "description": "The token, shown once"});
    let redacted =
        json!({"type": "boolean", "const": true, "description": "On an idempotent replay, instead of token"});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": error}},
        "Document": {"type": "object", "required": ["openapi", "info", "paths"], "description": "This document"},
        "Principal": object(&[
            ("object", "=gateway.principal"), ("name", "str"), ("source", "|master|admin_token|oidc|sso_proxy"),
            ("role", "|viewer|admin"), ("tenant_id", "str?"), ("allowed_key_prefixes", "strs"),
        ]),
        "Key": object(KEY),
        "KeyWithToken": {"allOf": [schema_ref("Key"), {
            "type": "object",
            "properties": {"token": token, "token_redacted": redacted},
            "oneOf": [{"required": ["token"]}, {"required": ["token_redacted"]}],
        }]},
        "KeyList": list_of("Key"),
        "KeyCreate": key_input(true),
        "KeyPatch": key_input(false),
        "KeyDeleted": object(&[
            ("object", "=gateway.key.deleted"), ("id", "str"), ("name", "str"), ("deleted", "true"),
        ]),
        "Usage": object(&[
            ("object", "=gateway.usage"), ("key", "str"), ("key_id", "str"), ("tenant_id", "str?"),
            ("limit_scope", "str"), ("budget_period", "period"), ("period_start", "time"),
            ("period_resets_at", "time?"), ("requests", "int"), ("request_budget", "int?"),
            ("requests_remaining", "int?"), ("spend_microusd", "int"), ("spend_usd", "num"),
            ("reserved_microusd", "int"), ("budget_microusd", "int?"), ("budget_remaining_microusd", "int?"),
            ("budget_remaining_usd", "num?"), ("in_flight", "int"), ("minute_requests", "int"), ("rpm_limit", "int?"),
            ("minute_tokens", "int"), ("tpm_limit", "int?"), ("rate_resets_in_seconds", "int"),
        ]),
        "UsageList": list_of("Usage"),
        "LedgerRow": object(&[
            ("call_id", "str"), ("created_at", "time"), ("key_name", "str"), ("key_id", "str?"),
            ("tenant_id", "str?"), ("team_id", "str?"), ("project_id", "str?"), ("user_id", "str?"),
            ("budget_id", "str?"), ("provider", "str?"), ("route", "str"), ("model", "str?"),
            ("upstream_model", "str?"), ("stream", "bool"), ("status", "int"), ("error_code", "str?"),
            ("input_tokens", "int"), ("cached_input_tokens", "int"), ("cache_write_input_tokens", "int"), ("output_tokens", "int"),
            ("reasoning_tokens", "int"), ("usage_source", "|provider|partial|estimated|none"),
            ("reserved_microusd", "int"), ("cost_microusd", "int?"), ("cost_usd", "num?"), ("price_version", "str?"),
            ("attempts", "int"), ("fallback_error", "str?"), ("latency_ms", "int"), ("ttfb_ms", "int?"), ("upstream_ms", "int"), ("overhead_us", "int"),
            ("client_disconnected", "bool"),
        ]),
        "LedgerList": list_of("LedgerRow"),
        "Summary": object(&[
            ("object", "=gateway.ledger.summary"), ("group_by", "dims"), ("data", "[#Bucket]"), ("totals", "#Bucket"),
        ]),
        "Bucket": bucket(),
        "AuditEntry": object(&[
            ("object", "=gateway.audit_entry"), ("id", "str"), ("at", "time"), ("actor", "str"),
            ("actor_source", "str"), ("role", "str?"), ("tenant_id", "str?"), ("action", "str"),
            ("target", "str?"), ("outcome", "str"), ("call_id", "str?"), ("source_ip", "str?"),
            ("repeated", "int?"),
        ]),
        "AuditList": list_of("AuditEntry"),
        "Live": object(&[("status", "=ok")]),
        "Ready": object(&[
            ("status", "|ready|draining|state_unavailable"), ("draining", "bool"), ("state_backend", "str"),
            ("state_available", "bool"), ("in_flight_requests", "int"), ("open_connections", "int"),
            ("degraded_upstreams", "[#DegradedUpstream]"),
        ]),
        "DegradedUpstream": object(&[("provider", "str"), ("model", "str"), ("circuit", "|open|half_open")]),
        "Startup": object(&[("status", "=started"), ("version", "str"), ("started_at", "time")]),
    })
}
