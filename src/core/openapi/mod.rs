//! The admin plane's OpenAPI 3.1 document, built as data: every admin route under both prefixes
//! (`/v1/prodex/gateway/…` and `/prodex/gateway/…`, generated from one table), the health routes
//! (GET and HEAD), their parameters, request bodies, responses (2xx and every error status) and the
//! role each requires (`x-prodex-role`). Served at `GET /v1/prodex/gateway/openapi.json`.
//!
//! **Invariant:** every admin and health route appears here with its role; [`operations`] lists the
//! admin operations from the same table, so tests can check that the router and the document agree.
//! The component schemas are `schemas` (keys, ledger, audit, health) and `scim` (SCIM 2.0).

mod schemas;
mod scim;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

use schemas::instant;
use scim::{SCIM, SCIM_IF_MATCH};

/// The two prefixes every admin route lives under, with the operationId suffix of each twin.
const PREFIXES: [(&str, &str); 2] = [("/v1/prodex/gateway/", ""), ("/prodex/gateway/", "Unversioned")];

/// A key name: the `{name}` path parameter and `KeyCreate.name`.
/// Key names (`core::keys::valid_name`): with `maxLength: 128`, 1–128 of `[A-Za-z0-9._-]` around at most one `:`.
const NAME_PATTERN: &str = "^[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$";
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
    /// Query parameter names; `limit:N` is a page size of 1..=N, `filters` expands to [`FILTERS`];
    /// SCIM's are `scim::query_param`.
    query: &'static [&'static str],
    /// Request body schema (a component name; SCIM bodies also as `application/scim+json`).
    body: Option<&'static str>,
    /// Header parameters (components): `If-Match`, `Idempotency-Key`, `scimIfMatch`.
    headers: &'static [&'static str],
    /// Success: status, media type, schema (a component name; `""` = a string body; 204 = none).
    ok: (u16, &'static str, &'static str),
}

const IF_MATCH: &str = "If-Match";
const IDEMPOTENCY: &str = "Idempotency-Key";
const COND: &[&str] = &[IF_MATCH, IDEMPOTENCY];
const JSON: &str = "application/json";
/// Operations that answer a key with its `ETag`.
const ETAG_OPS: [&str; 6] = ["createKey", "getKey", "updateKey", "rotateKey", "disableKey", "enableKey"];

#[rustfmt::skip]
const ROUTES: [Route; 27] = [
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
    Route { method: "GET", path: "scim/v2/Users", role: "viewer", id: "listScimUsers", tag: "scim",
        summary: "SCIM: list users, optionally filtered", body: None, headers: &[],
        query: &["filter", "startIndex", "count", "attributes", "excludedAttributes"], ok: (200, SCIM, "ScimUserList") },
    Route { method: "POST", path: "scim/v2/Users", role: "admin", id: "createScimUser", tag: "scim",
        summary: "SCIM: create a user", query: &[], body: Some("ScimUserInput"), headers: &[],
        ok: (201, SCIM, "ScimUser") },
    Route { method: "GET", path: "scim/v2/Users/{id}", role: "viewer", id: "getScimUser", tag: "scim",
        summary: "SCIM: get a user", query: &[], body: None, headers: &[], ok: (200, SCIM, "ScimUser") },
    Route { method: "PUT", path: "scim/v2/Users/{id}", role: "admin", id: "replaceScimUser", tag: "scim",
        summary: "SCIM: replace a user (absent attributes are cleared)", query: &[], body: Some("ScimUserInput"),
        headers: &[SCIM_IF_MATCH], ok: (200, SCIM, "ScimUser") },
    Route { method: "PATCH", path: "scim/v2/Users/{id}", role: "admin", id: "patchScimUser", tag: "scim",
        summary: "SCIM: change a user with PATCH operations", query: &[], body: Some("ScimPatchOp"),
        headers: &[SCIM_IF_MATCH], ok: (200, SCIM, "ScimUser") },
    Route { method: "DELETE", path: "scim/v2/Users/{id}", role: "admin", id: "deleteScimUser", tag: "scim",
        summary: "SCIM: delete a user", query: &[], body: None, headers: &[SCIM_IF_MATCH], ok: (204, "", "") },
    Route { method: "GET", path: "scim/v2/ServiceProviderConfig", role: "viewer", id: "getScimServiceProviderConfig",
        tag: "scim", summary: "SCIM: what this service provider supports", query: &[], body: None, headers: &[],
        ok: (200, SCIM, "ScimServiceProviderConfig") },
    Route { method: "GET", path: "scim/v2/ResourceTypes", role: "viewer", id: "listScimResourceTypes", tag: "scim",
        summary: "SCIM: the resource types (User)", query: &[], body: None, headers: &[],
        ok: (200, SCIM, "ScimResourceTypeList") },
    Route { method: "GET", path: "scim/v2/Schemas", role: "viewer", id: "listScimSchemas", tag: "scim",
        summary: "SCIM: the User schema and the gateway extension", query: &[], body: None, headers: &[],
        ok: (200, SCIM, "ScimSchemaList") },
];

/// Health routes (no prefix, public, GET and HEAD): path, operationId stem, summary, body schema, may be 503.
const HEALTH: [(&str, &str, &str, &str, bool); 3] = [
    ("/livez", "Livez", "Liveness: the process answers", "Live", false),
    ("/readyz", "Readyz", "Readiness: 503 while draining or while the state backend is unavailable", "Ready", true),
    ("/startupz", "Startupz", "Startup: version and start time", "Startup", false),
];

/// The document as served and printed (`prodex gateway openapi`): pretty JSON, one source.
#[must_use]
pub fn rendered(version: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&document(version)).unwrap_or_default()
}

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
                and `x-prodex-overhead-ms`; every error body is an `Error`, except that the SCIM 2.0 routes \
                (`scim/v2/…`, RFC 7644) answer their own errors as a `ScimError` (`application/scim+json`). A scoped principal (tenant, key \
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
            {"name": "scim", "description": "SCIM 2.0 user provisioning (RFC 7643/7644) for identity providers"},
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
            "headers": merged(headers(), scim::headers()),
            "parameters": merged(json!({
                "name": {"name": "name", "in": "path", "required": true, "description": "Key name",
                    "schema": {"type": "string", "maxLength": 128, "pattern": NAME_PATTERN}},
                "If-Match": {"name": IF_MATCH, "in": "header", "required": false,
                    "description": "Apply only if the key is still at this version: its ETag (`\"<version>\"`), \
                        the bare version (`2`), a comma-separated list of ETags, or `*`. Any other value is a 412 \
                        `version_mismatch`.",
                    "schema": {"type": "string"}},
                "Idempotency-Key": {"name": IDEMPOTENCY, "in": "header", "required": false,
                    "description": "A retry with the same key, method, path and body within 24 h replays the first \
                        answer (tokens redacted); the same key with another request is a 409 `idempotency_conflict`, and a retry while the first attempt still runs a 409 `idempotency_in_progress`",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": HEADER_TEXT}},
            }), scim::parameters()),
            "responses": merged(error_responses(), scim::responses()),
            "schemas": merged(schemas::schemas(), scim::schemas()),
        },
    })
}

/// (route template without prefix, method, role) for every admin operation (not the health routes,
/// which have no prefix) — used by tests to check the router and the document agree.
#[must_use]
pub fn operations() -> Vec<(&'static str, &'static str, &'static str)> {
    ROUTES.iter().map(|r| (r.path, r.method, r.role)).collect()
}

/// `base` (an object) with the members of `more` added.
fn merged(mut base: Value, more: Map<String, Value>) -> Value {
    if let Value::Object(map) = &mut base {
        map.extend(more);
    }
    base
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

/// A response with the headers every response carries, plus `extra` headers (name, component).
fn response(description: &str, content: Option<(&str, Value)>, extra: &[(&str, &str)]) -> Value {
    let mut headers = Map::new();
    let always = [("x-prodex-call-id", "x-prodex-call-id"), ("x-prodex-overhead-ms", "x-prodex-overhead-ms")];
    for (name, component) in always.iter().chain(extra) {
        headers.insert((*name).to_string(), json!({"$ref": format!("#/components/headers/{component}")}));
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
    (
        "Conflict",
        409,
        "`key_exists` (names are unique case-insensitively), `idempotency_conflict` or `idempotency_in_progress`",
        &[],
    ),
    ("PreconditionFailed", 412, "`version_mismatch`: If-Match does not match; ETag is the current version", &["ETag"]),
    ("PayloadTooLarge", 413, "`request_too_large`: the body exceeds 1 MiB", &[]),
    ("Unavailable", 503, "`state_unavailable` or `draining`", &["Retry-After"]),
];

fn error_responses() -> Value {
    let mut out = Map::new();
    for (name, _, description, extra) in ERRORS {
        let extra: Vec<(&str, &str)> = extra.iter().map(|h| (*h, *h)).collect();
        out.insert(name.to_string(), response(description, Some((JSON, schema_ref("Error"))), &extra));
    }
    Value::Object(out)
}

/// The error statuses a route can return, with their response components (SCIM routes: see
/// `scim::errors`). Viewer routes never answer 403: scopes narrow silently.
fn errors(r: &Route) -> Vec<(u16, &'static str)> {
    if r.path.starts_with("scim/") {
        return scim::errors(r);
    }
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
    let name = |status: u16| ERRORS.iter().find(|e| e.1 == status).map_or("Unavailable", |e| e.0);
    checks.iter().filter(|(_, applies)| *applies).map(|(status, _)| (*status, name(*status))).collect()
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
    for name in ["name", "id"] {
        if r.path.contains(&format!("{{{name}}}")) {
            params.push(json!({"$ref": format!("#/components/parameters/{name}")}));
        }
    }
    for q in r.query {
        match *q {
            "filters" => params.extend(FILTERS.iter().map(|f| query_param(f))),
            q => params.push(scim::query_param(q).unwrap_or_else(|| query_param(q))),
        }
    }
    params.extend(r.headers.iter().map(|h| json!({"$ref": format!("#/components/parameters/{h}")})));

    let (status, media, schema) = r.ok;
    let content = match (status, schema) {
        (204, _) => None,
        (_, "") => Some((media, json!({"type": "string"}))),
        (_, schema) => Some((media, schema_ref(schema))),
    };
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if ETAG_OPS.contains(&r.id) {
        extra.push(("ETag", "ETag"));
    }
    if scim::ETAG_OPS.contains(&r.id) {
        extra.push(("ETag", "ScimETag"));
    }
    if r.headers.contains(&IDEMPOTENCY) {
        extra.push(("Idempotent-Replayed", "Idempotent-Replayed"));
    }
    let description = match status {
        201 => "Created",
        204 => "No Content",
        _ => "OK",
    };
    let mut ok = response(description, content, &extra);
    match r.id {
        "createKey" => ok["links"] = key_links(suffix),
        "createScimUser" => ok["links"] = scim::links(suffix),
        _ => {}
    }
    let mut responses = Map::new();
    responses.insert(status.to_string(), ok);
    for (code, name) in errors(r) {
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
        let mut content = Map::new();
        if media == SCIM {
            content.insert(SCIM.into(), json!({"schema": schema_ref(body)}));
        }
        content.insert(JSON.into(), json!({"schema": schema_ref(body)}));
        op["requestBody"] = json!({"required": true, "content": content});
    }
    op
}

/// A time in a query string: what `instant` takes, or a date (`2026-12-01`, its 00:00 UTC).
fn query_instant() -> Value {
    let mut t = instant(u64::MAX / 1000);
    if let Some(any) = t.get_mut("anyOf").and_then(Value::as_array_mut) {
        any.push(json!({"type": "string", "format": "date", "pattern": SINCE_1970}));
    }
    t
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
        "from" => (name, query_instant(), "Inclusive lower bound (RFC 3339, a date = its 00:00 UTC, or unix seconds)"),
        "to" => (
            name,
            query_instant(),
            "Exclusive upper bound (RFC 3339, a date = its 00:00 UTC, or unix seconds; not before from)",
        ),
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
