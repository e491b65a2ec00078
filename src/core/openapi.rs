//! The admin plane's OpenAPI 3.1 document, built as data: every admin route under both prefixes
//! (`/v1/prodex/gateway/…` and `/prodex/gateway/…`, generated from one table), the health routes
//! (GET and HEAD), their parameters, request bodies, responses (2xx and every error status) and the
//! role each requires (`x-prodex-role`). Served at `GET /v1/prodex/gateway/openapi.json`.
//!
//! **Invariant:** every admin and health route appears here with its role; [`operations`] lists the
//! admin operations from the same table, so tests can check that the router and the document agree.

use serde_json::{json, Map, Value};

/// The two prefixes every admin route lives under, with the operationId suffix of each twin.
const PREFIXES: [(&str, &str); 2] = [("/v1/prodex/gateway/", ""), ("/prodex/gateway/", "Unversioned")];

/// A key name: the `{name}` path parameter and `KeyCreate.name`.
const NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,128}$";
/// No control characters (what `char::is_control` refuses).
const PRINTABLE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// A header value without control characters (bytes past ASCII arrive as U+FFFD, never a control).
const HEADER_TEXT: &str = "^[^\\u0000-\\u001f\\u007f]*$";
/// Times are unix milliseconds (`u64`): nothing before 1970.
const SINCE_1970: &str = "^(19[7-9][0-9]|[2-9][0-9]{3})-";
/// Largest integer a key field takes (Postgres `bigint`).
const MAX_INT: u64 = i64::MAX as u64;

/// Dimensions a ledger summary can be grouped by.
const GROUP_BY: [&str; 10] = ["key", "model", "provider", "tenant", "team", "project", "user", "budget", "day", "hour"];

/// The ledger filters (`filters` in a route's query list expands to these).
const FILTERS: [&str; 8] = ["from", "to", "key", "key_prefix", "tenant_id", "model", "provider", "status"];

/// One admin route, relative to the prefix.
struct Route {
    method: &'static str,
    path: &'static str,
    role: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Query parameter names; `limit:N` is a page size of 1..=N, `filters` expands to [`FILTERS`].
    query: &'static [&'static str],
    /// Request body schema (a component name).
    body: Option<&'static str>,
    /// Header parameters: `If-Match`, `Idempotency-Key`.
    headers: &'static [&'static str],
    /// Success: status, media type, schema (a component name; `""` = a string body).
    ok: (u16, &'static str, &'static str),
}

const IF_MATCH: &str = "If-Match";
const IDEMPOTENCY: &str = "Idempotency-Key";
const COND: &[&str] = &[IF_MATCH, IDEMPOTENCY];
const JSON: &str = "application/json";
/// Operations that answer a key with its `ETag`.
const ETAG_OPS: [&str; 6] = ["createKey", "getKey", "updateKey", "rotateKey", "disableKey", "enableKey"];

#[rustfmt::skip]
const ROUTES: [Route; 18] = [
    Route { method: "GET", path: "openapi.json", role: "viewer", id: "getOpenApi", tag: "meta",
        summary: "This OpenAPI document", query: &[], body: None, headers: &[], ok: (200, JSON, "Document") },
    Route { method: "GET", path: "admin", role: "public", id: "getAdminShell", tag: "meta",
        summary: "The admin UI's static shell (no data)", query: &[], body: None, headers: &[],
        ok: (200, "text/html", "") },
    Route { method: "GET", path: "whoami", role: "viewer", id: "whoami", tag: "meta",
        summary: "The calling principal", query: &[], body: None, headers: &[], ok: (200, JSON, "Principal") },
    Route { method: "GET", path: "keys", role: "viewer", id: "listKeys", tag: "keys", summary: "List virtual keys",
        query: &["prefix", "tenant_id", "disabled", "limit:500", "cursor"], body: None, headers: &[],
        ok: (200, JSON, "KeyList") },
    Route { method: "POST", path: "keys", role: "admin", id: "createKey", tag: "keys",
        summary: "Create a virtual key (the token is shown once)", query: &[], body: Some("KeyCreate"),
        headers: &[IDEMPOTENCY], ok: (201, JSON, "KeyWithToken") },
    Route { method: "GET", path: "keys/{name}", role: "viewer", id: "getKey", tag: "keys", summary: "Get a virtual key",
        query: &[], body: None, headers: &[], ok: (200, JSON, "Key") },
    Route { method: "PATCH", path: "keys/{name}", role: "admin", id: "updateKey", tag: "keys",
        summary: "Update a virtual key (absent = unchanged, null = cleared)", query: &[], body: Some("KeyPatch"),
        headers: COND, ok: (200, JSON, "Key") },
    Route { method: "DELETE", path: "keys/{name}", role: "admin", id: "deleteKey", tag: "keys",
        summary: "Delete a virtual key", query: &[], body: None, headers: COND, ok: (200, JSON, "KeyDeleted") },
    Route { method: "POST", path: "keys/{name}/rotate", role: "admin", id: "rotateKey", tag: "keys",
        summary: "Issue a new token for a key (shown once)", query: &[], body: None, headers: COND,
        ok: (200, JSON, "KeyWithToken") },
    Route { method: "POST", path: "keys/{name}/disable", role: "admin", id: "disableKey", tag: "keys",
        summary: "Disable a key", query: &[], body: None, headers: COND, ok: (200, JSON, "Key") },
    Route { method: "POST", path: "keys/{name}/enable", role: "admin", id: "enableKey", tag: "keys",
        summary: "Enable a key", query: &[], body: None, headers: COND, ok: (200, JSON, "Key") },
    Route { method: "GET", path: "usage", role: "viewer", id: "listUsage", tag: "usage",
        summary: "Current usage and limits per key", query: &["prefix", "tenant_id", "limit:500", "cursor"], body: None,
        headers: &[], ok: (200, JSON, "UsageList") },
    Route { method: "GET", path: "ledger", role: "viewer", id: "listLedger", tag: "ledger",
        summary: "Ledger rows, newest first", query: &["filters", "limit:1000", "cursor"], body: None, headers: &[],
        ok: (200, JSON, "LedgerList") },
    Route { method: "GET", path: "ledger.csv", role: "viewer", id: "exportLedgerCsv", tag: "ledger",
        summary: "Ledger rows as CSV (chunked)", query: &["filters"], body: None, headers: &[],
        ok: (200, "text/csv", "") },
    Route { method: "GET", path: "ledger/summary", role: "viewer", id: "getLedgerSummary", tag: "ledger",
        summary: "Ledger totals, grouped", query: &["filters", "group_by"], body: None, headers: &[],
        ok: (200, JSON, "Summary") },
    Route { method: "GET", path: "ledger/summary.csv", role: "viewer", id: "exportLedgerSummaryCsv", tag: "ledger",
        summary: "Ledger totals, grouped, as CSV", query: &["filters", "group_by"], body: None, headers: &[],
        ok: (200, "text/csv", "") },
    Route { method: "GET", path: "metrics", role: "viewer", id: "getMetrics", tag: "metrics",
        summary: "Prometheus metrics (scoped to the caller)", query: &[], body: None, headers: &[],
        ok: (200, "text/plain; version=0.0.4", "") },
    Route { method: "GET", path: "audit", role: "admin", id: "listAudit", tag: "audit", summary: "The audit log",
        query: &["from", "to", "limit:500", "cursor"], body: None, headers: &[], ok: (200, JSON, "AuditList") },
];

/// Health routes (no prefix, public, GET and HEAD): path, operationId stem, summary, body schema, may be 503.
const HEALTH: [(&str, &str, &str, &str, bool); 3] = [
    ("/livez", "Livez", "Liveness: the process answers", "Live", false),
    ("/readyz", "Readyz", "Readiness: 503 while draining or while the state backend is unavailable", "Ready", true),
    ("/startupz", "Startupz", "Startup: version and start time", "Startup", false),
];

/// The OpenAPI document for this build (serialize once at startup).
#[must_use]
pub fn document(version: &str) -> Value {
    let mut paths = Map::new();
    for (prefix, suffix) in PREFIXES {
        for route in &ROUTES {
            let item = paths.entry(format!("{prefix}{}", route.path)).or_insert_with(|| json!({}));
            if let Value::Object(item) = item {
                item.insert(route.method.to_ascii_lowercase(), operation(route, suffix));
            }
        }
    }
    for (path, stem, summary, schema, may_fail) in HEALTH {
        let get = health_op(&format!("get{stem}"), summary, Some(schema), may_fail);
        let head = health_op(&format!("head{stem}"), summary, None, may_fail);
        paths.insert(path.to_string(), json!({"get": get, "head": head}));
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Prodex Gateway admin API",
            "version": version,
            "description": "The admin plane of Prodex Gateway. Every admin route exists under `/v1/prodex/gateway/` \
                and `/prodex/gateway/` (same handler). Roles: viewer (reads) < admin (reads + writes); each \
                operation names the role it needs in `x-prodex-role`. Every response carries `x-prodex-call-id` \
                and `x-prodex-overhead-ms`; every error body is an `Error`. A scoped principal (tenant, key \
                prefixes) sees only its own keys, rows and entries: anything else reads as absent (404 or an \
                empty list), never as 403.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "meta", "description": "This document, the admin UI shell and the caller's identity"},
            {"name": "keys", "description": "Virtual keys"},
            {"name": "usage", "description": "Live usage against each key's limits"},
            {"name": "ledger", "description": "The per-call ledger and its summaries"},
            {"name": "metrics", "description": "Prometheus exposition"},
            {"name": "audit", "description": "Who changed what"},
            {"name": "health", "description": "Probes for orchestrators (no authentication)"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin credential (master token, admin token or SSO/OIDC session). \
                        Also accepted as `x-api-key: <secret>`.",
                },
            },
            "headers": headers(),
            "parameters": {
                "name": {"name": "name", "in": "path", "required": true, "description": "Key name",
                    "schema": {"type": "string", "pattern": NAME_PATTERN}},
                "If-Match": {"name": IF_MATCH, "in": "header", "required": false,
                    "description": "Apply only if the key is still at this version: its ETag (`\"<version>\"`), \
                        a comma-separated list of ETags, or `*`. Any other value is a 412 `version_mismatch`.",
                    "schema": {"type": "string"}},
                "Idempotency-Key": {"name": IDEMPOTENCY, "in": "header", "required": false,
                    "description": "A retry with the same key, method, path and body within 24 h replays the first \
                        answer (tokens redacted); the same key with another request is a 409 `idempotency_conflict`",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": HEADER_TEXT}},
            },
            "responses": error_responses(),
            "schemas": schemas(),
        },
    })
}

/// (route template without prefix, method, role) for every admin operation (not the health routes,
/// which have no prefix) — used by tests to check the router and the document agree.
#[must_use]
pub fn operations() -> Vec<(&'static str, &'static str, &'static str)> {
    ROUTES.iter().map(|r| (r.path, r.method, r.role)).collect()
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn security(role: &str) -> Value {
    if role == "public" {
        json!([])
    } else {
        json!([{"bearerAuth": []}])
    }
}

/// A response with the headers every response carries, plus `extra` header components.
fn response(description: &str, content: Option<(&str, Value)>, extra: &[&str]) -> Value {
    let mut headers = Map::new();
    for name in ["x-prodex-call-id", "x-prodex-overhead-ms"].iter().chain(extra) {
        headers.insert((*name).to_string(), json!({"$ref": format!("#/components/headers/{name}")}));
    }
    let mut out = json!({"description": description, "headers": headers});
    if let Some((media, schema)) = content {
        out["content"] = json!({ media: {"schema": schema} });
    }
    out
}

fn headers() -> Value {
    let etag = json!({"type": "string", "pattern": "^\"[0-9]+\"$"});
    json!({
        "x-prodex-call-id": {"description": "This call's id (`prodex-<UUIDv7>`), as logged and in the ledger",
            "required": true, "schema": {"type": "string"}},
        "x-prodex-overhead-ms": {"description": "Time the gateway spent on this call, in milliseconds",
            "required": true, "schema": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}},
        "ETag": {"description": "The key's version, quoted (`\"<version>\"`): send it back in If-Match. \
            Absent on an idempotent replay.", "schema": etag},
        "Idempotent-Replayed": {"description": "`true` when this is the stored answer to an earlier request \
            with the same Idempotency-Key", "schema": {"type": "string", "const": "true"}},
        "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}},
        "Retry-After": {"description": "Seconds to wait before retrying (while draining)",
            "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    })
}

/// Shared error responses: component name, status, description (the codes it carries), extra headers.
const ERRORS: [(&str, u16, &str, &[&str]); 8] = [
    (
        "BadRequest",
        400,
        "`invalid_parameter` (names the parameter or field), `invalid_json` or `invalid_key_name`",
        &[],
    ),
    ("Unauthorized", 401, "`invalid_api_key`: no admin credential, or an unknown one", &["WWW-Authenticate"]),
    (
        "Forbidden",
        403,
        "`role_forbidden` (needs admin), `scope_forbidden` (outside the caller's tenant or key \
        prefixes) or `key_read_only` (a key declared in policy.toml)",
        &[],
    ),
    ("NotFound", 404, "`key_not_found` (also for a key outside the caller's scope)", &[]),
    ("Conflict", 409, "`key_exists` (names are unique case-insensitively) or `idempotency_conflict`", &[]),
    ("PreconditionFailed", 412, "`version_mismatch`: If-Match does not match; ETag is the current version", &["ETag"]),
    ("PayloadTooLarge", 413, "`request_too_large`: the body exceeds 1 MiB", &[]),
    ("Unavailable", 503, "`state_unavailable` or `draining`", &["Retry-After"]),
];

fn error_responses() -> Value {
    let mut out = Map::new();
    for (name, _, description, extra) in ERRORS {
        out.insert(name.to_string(), response(description, Some((JSON, schema_ref("Error"))), extra));
    }
    Value::Object(out)
}

/// The error statuses a route can return. Viewer routes never answer 403: scopes narrow silently.
fn errors(r: &Route) -> Vec<u16> {
    let mutation = r.method != "GET";
    let named = r.path.contains("{name}");
    let checks = [
        (400, !r.query.is_empty() || mutation || named),
        (401, r.role != "public"),
        (403, r.role == "admin"),
        (404, named),
        (409, r.id == "createKey" || r.headers.contains(&IDEMPOTENCY)),
        (412, r.headers.contains(&IF_MATCH)),
        (413, mutation),
        (503, true),
    ];
    checks.iter().filter(|(_, applies)| *applies).map(|(status, _)| *status).collect()
}

/// Links from a created key to the operations on it (for clients and stateful testing).
fn key_links(suffix: &str) -> Value {
    let mut links = Map::new();
    for id in ["getKey", "updateKey", "deleteKey", "rotateKey", "disableKey", "enableKey"] {
        let mut parameters = json!({"name": "$response.body#/name"});
        if id != "getKey" {
            parameters["header.If-Match"] = json!("$response.header.ETag");
        }
        links.insert(id.to_string(), json!({"operationId": format!("{id}{suffix}"), "parameters": parameters}));
    }
    Value::Object(links)
}

fn operation(r: &Route, suffix: &str) -> Value {
    let mut params: Vec<Value> = Vec::new();
    if r.path.contains("{name}") {
        params.push(json!({"$ref": "#/components/parameters/name"}));
    }
    for q in r.query {
        match *q {
            "filters" => params.extend(FILTERS.iter().map(|f| query_param(f))),
            q => params.push(query_param(q)),
        }
    }
    params.extend(r.headers.iter().map(|h| json!({"$ref": format!("#/components/parameters/{h}")})));

    let (status, media, schema) = r.ok;
    let body = if schema.is_empty() { json!({"type": "string"}) } else { schema_ref(schema) };
    let mut extra: Vec<&str> = Vec::new();
    if ETAG_OPS.contains(&r.id) {
        extra.push("ETag");
    }
    if r.headers.contains(&IDEMPOTENCY) {
        extra.push("Idempotent-Replayed");
    }
    let mut ok = response(if status == 201 { "Created" } else { "OK" }, Some((media, body)), &extra);
    if r.id == "createKey" {
        ok["links"] = key_links(suffix);
    }
    let mut responses = Map::new();
    responses.insert(status.to_string(), ok);
    for code in errors(r) {
        let name = ERRORS.iter().find(|e| e.1 == code).map_or("Unavailable", |e| e.0);
        responses.insert(code.to_string(), json!({"$ref": format!("#/components/responses/{name}")}));
    }

    let mut op = json!({
        "operationId": format!("{}{suffix}", r.id),
        "summary": r.summary,
        "tags": [r.tag],
        "x-prodex-role": r.role,
        "security": security(r.role),
        "responses": responses,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(body) = r.body {
        op["requestBody"] = json!({"required": true, "content": {JSON: {"schema": schema_ref(body)}}});
    }
    op
}

/// A time: RFC 3339 (from 1970 on) or unix seconds up to `max_secs`.
fn instant(max_secs: u64) -> Value {
    json!({"anyOf": [
        {"type": "string", "format": "date-time", "pattern": SINCE_1970},
        {"type": "integer", "minimum": 0, "maximum": max_secs},
    ]})
}

fn query_param(name: &str) -> Value {
    // Every query value is non-empty: the gateway refuses `?key=` rather than guess what it meant.
    let text = json!({"type": "string", "minLength": 1});
    let (name, schema, description) = match name {
        "prefix" => (name, text, "Only keys whose name starts with this"),
        "key_prefix" => (name, text, "Only calls by keys whose name starts with this"),
        "tenant_id" => (name, text, "Only this tenant (outside the caller's scope: nothing)"),
        "disabled" => (name, json!({"type": "boolean"}), "Only disabled (true) or enabled (false) keys"),
        "cursor" => (name, text, "`next_cursor` of the previous page (opaque; anything else is a 400)"),
        "from" => (name, instant(u64::MAX / 1000), "Inclusive lower bound (RFC 3339 or unix seconds)"),
        "to" => (name, instant(u64::MAX / 1000), "Exclusive upper bound (RFC 3339 or unix seconds; not before from)"),
        "key" => (name, text, "Only this key (by name)"),
        "model" => (name, text, "Only this model"),
        "provider" => (name, text, "Only this provider"),
        "status" => (
            name,
            json!({"type": "string", "pattern": "^([1-5]xx|[1-5][0-9]{2})$"}),
            "A status class (`1xx`..`5xx`) or an exact status (100..599)",
        ),
        "group_by" => {
            return json!({"name": name, "in": "query", "required": false, "style": "form", "explode": false,
                "description": "Comma-separated dimensions (the parameter may also be repeated); absent = totals only",
                "schema": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": GROUP_BY}}});
        }
        other => match other.strip_prefix("limit:").and_then(|max| max.parse::<u64>().ok()) {
            Some(max) => {
                ("limit", json!({"type": "integer", "minimum": 1, "maximum": max, "default": 100}), "Page size")
            }
            None => (other, text, ""),
        },
    };
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn health_op(id: &str, summary: &str, schema: Option<&str>, may_fail: bool) -> Value {
    let ok = response("OK", schema.map(|s| (JSON, schema_ref(s))), &[]);
    let mut responses = json!({"200": ok});
    if may_fail {
        let description = "Not ready (draining or state backend unavailable)";
        responses["503"] = response(description, schema.map(|s| (JSON, schema_ref(s))), &[]);
    }
    json!({
        "operationId": id,
        "summary": summary,
        "tags": ["health"],
        "x-prodex-role": "public",
        "security": [],
        "responses": responses,
    })
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
        "name" => json!({"type": "string", "pattern": NAME_PATTERN}),
        "id" => printable(128),
        "i64" => json!({"type": "integer", "minimum": 0, "maximum": MAX_INT}),
        "usd" => json!({"type": "number", "minimum": 0, "maximum": 1e12}),
        "models" => json!({"type": "array", "maxItems": 256, "items": printable(256)}),
        "meta" => json!({"type": "object", "maxProperties": 64, "propertyNames": printable(128),
            "additionalProperties": {"type": "string", "maxLength": 1024}}),
        "when" => {
            let mut t = instant(MAX_INT / 1000);
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

fn schemas() -> Value {
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
            ("input_tokens", "int"), ("cached_input_tokens", "int"), ("output_tokens", "int"),
            ("reasoning_tokens", "int"), ("usage_source", "|provider|partial|estimated|none"),
            ("reserved_microusd", "int"), ("cost_microusd", "int?"), ("cost_usd", "num?"), ("price_version", "str?"),
            ("latency_ms", "int"), ("ttfb_ms", "int?"), ("upstream_ms", "int"), ("overhead_us", "int"),
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
            ("target", "str?"), ("outcome", "str"), ("call_id", "str?"),
        ]),
        "AuditList": list_of("AuditEntry"),
        "Live": object(&[("status", "=ok")]),
        "Ready": object(&[
            ("status", "|ready|draining|state_unavailable"), ("draining", "bool"), ("state_backend", "str"),
            ("state_available", "bool"), ("in_flight_requests", "int"), ("open_connections", "int"),
        ]),
        "Startup": object(&[("status", "=started"), ("version", "str"), ("started_at", "time")]),
    })
}

#[cfg(test)]
mod tests {
    use super::{document, operations, PREFIXES};
    use serde_json::Value;
    use std::collections::HashSet;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    /// (path, method, operation) for every operation in the document.
    fn ops(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(METHODS.contains(&method.as_str()), "{path}: unexpected key {method}");
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_operation_has_a_role_security_and_responses() {
        let doc = document("1.2.3");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], "1.2.3");
        for (path, method, op) in ops(&doc) {
            let role = op["x-prodex-role"].as_str().unwrap();
            assert!(["public", "viewer", "admin"].contains(&role), "{method} {path}: role {role}");
            let security = op["security"].as_array().unwrap();
            assert_eq!(security.is_empty(), role == "public", "{method} {path}: security vs role");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no 2xx");
            if role != "public" {
                assert!(responses.contains_key("401"), "{method} {path}: no 401");
            }
            assert!(!op["summary"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn every_ref_resolves() {
        let doc = document("0");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 100);
        for r in found {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "unresolved {r}");
        }
    }

    #[test]
    fn both_prefixes_and_health_are_present_with_their_roles() {
        let doc = document("0");
        for (template, method, role) in operations() {
            for (prefix, _) in PREFIXES {
                let op = &doc["paths"][format!("{prefix}{template}")][method.to_ascii_lowercase()];
                assert_eq!(op["x-prodex-role"], role, "{method} {prefix}{template}");
            }
        }
        for path in ["/livez", "/readyz", "/startupz"] {
            for method in ["get", "head"] {
                assert_eq!(doc["paths"][path][method]["x-prodex-role"], "public", "{method} {path}");
            }
        }
        assert!(doc["paths"]["/readyz"]["get"]["responses"]["503"].is_object());
        // Nothing in the document that operations() does not list, apart from health.
        let listed: HashSet<(String, String)> =
            operations().iter().map(|(t, m, _)| ((*t).to_string(), m.to_ascii_lowercase())).collect();
        for (path, method, _) in ops(&doc) {
            let relative = PREFIXES.iter().find_map(|(p, _)| path.strip_prefix(p));
            match relative {
                Some(t) => assert!(listed.contains(&(t.to_string(), method.clone())), "{method} {path} unlisted"),
                None => assert!(["/livez", "/readyz", "/startupz"].contains(&path.as_str()), "{path}"),
            }
        }
        assert_eq!(ops(&doc).len(), operations().len() * 2 + 6);
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = document("0");
        let all = ops(&doc);
        let ids: HashSet<String> = all.iter().map(|(_, _, op)| op["operationId"].as_str().unwrap().into()).collect();
        assert_eq!(ids.len(), all.len());
        assert!(ids.contains("listKeys") && ids.contains("listKeysUnversioned") && ids.contains("headReadyz"));
    }

    #[test]
    fn keys_carry_names_etags_and_conditions() {
        let doc = document("0");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["KeyCreate"]["required"], serde_json::json!(["name"]));
        assert_eq!(schemas["KeyCreate"]["additionalProperties"], false);
        assert_eq!(schemas["KeyPatch"]["additionalProperties"], false);
        assert!(schemas["KeyPatch"]["properties"].get("name").is_none());
        assert_eq!(schemas["KeyPatch"]["properties"]["budget_period"]["enum"][4], Value::Null);
        assert_eq!(schemas["Key"]["properties"]["tenant_id"]["type"], serde_json::json!(["string", "null"]));
        let name = &doc["components"]["parameters"]["name"]["schema"]["pattern"];
        assert_eq!(name, "^[A-Za-z0-9._-]{1,128}$");
        let key = &doc["paths"]["/v1/prodex/gateway/keys/{name}"];
        assert!(key["get"]["responses"]["200"]["headers"]["ETag"].is_object());
        assert!(key["patch"]["responses"]["200"]["headers"]["ETag"].is_object());
        for code in ["400", "401", "403", "404", "409", "412", "503"] {
            assert!(key["patch"]["responses"][code].is_object(), "PATCH keys/{{name}}: {code}");
        }
        let create = &doc["paths"]["/prodex/gateway/keys"]["post"];
        assert_eq!(create["operationId"], "createKeyUnversioned");
        assert!(create["responses"]["201"].is_object() && create["responses"]["409"].is_object());
        assert_eq!(doc["paths"]["/prodex/gateway/admin"]["get"]["security"], serde_json::json!([]));
    }

    #[test]
    fn viewers_never_see_403_and_links_name_real_operations() {
        let doc = document("0");
        let all = ops(&doc);
        let ids: HashSet<String> = all.iter().map(|(_, _, op)| op["operationId"].as_str().unwrap().into()).collect();
        for (path, method, op) in &all {
            if op["x-prodex-role"] != "admin" {
                assert!(op["responses"].get("403").is_none(), "{method} {path}");
            }
            for status in op["responses"].as_object().unwrap().values() {
                for link in status.get("links").and_then(Value::as_object).into_iter().flat_map(|l| l.values()) {
                    assert!(ids.contains(link["operationId"].as_str().unwrap()), "{method} {path}: {link}");
                }
            }
        }
    }
}
