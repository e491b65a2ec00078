//! The SCIM 2.0 part of the document (RFC 7643/7644, `scim/v2/…`): the User resource as rendered,
//! what a POST/PUT body and a PATCH body may hold, list responses, SCIM errors, the discovery
//! documents, the SCIM parameters and headers, and the error responses of each SCIM operation.
//!
//! Invariants: SCIM responses are `application/scim+json` and requests may also be
//! `application/json`; an error from the SCIM handlers is a `ScimError`, while authentication
//! (401), the role check (403 `role_forbidden`), draining (503) and the router (404
//! `route_not_found`) answer the OpenAI-style `Error` as `application/json`, so a status that can
//! come from both lists both media types, each with its own schema. Request schemas accept exactly
//! what `core::scim::parse_user` and `apply_patch` accept (attribute names are matched
//! case-insensitively there; the document names the canonical spelling), with the same limits.

use serde_json::{json, Map, Value};

use super::{response, schema_ref, Route, JSON, PRINTABLE};
use crate::core::scim::{
    ENTERPRISE, ERROR_SCHEMA, EXTENSION, EXTENSION_ATTRIBUTES, LIST_SCHEMA, MAX_EMAILS, MAX_FILTER_LEN, MAX_OPERATIONS,
    MAX_PREFIXES, MAX_PREFIX_LEN, MAX_RESULTS, MAX_TEXT, PATCH_OP, USER_SCHEMA,
};

/// The SCIM media type.
pub(super) const SCIM: &str = "application/scim+json";
/// The SCIM `If-Match` parameter component.
pub(super) const SCIM_IF_MATCH: &str = "scimIfMatch";
/// Operations that answer a user with its (weak) `ETag`.
pub(super) const ETAG_OPS: [&str; 4] = ["createScimUser", "getScimUser", "replaceScimUser", "patchScimUser"];

/// Printable (no control characters) and not only whitespace: what `userName` must be
/// (`char::is_control` and `char::is_whitespace`, as `parse_user` applies them).
const NOT_BLANK: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\
    [^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]\
    [^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// `true` or `false` in any case (Azure AD sends `"True"`/`"False"`).
const BOOL_TEXT: &str = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$";
/// A PATCH `op`, in any case.
const OP_NAME: &str = "^([Aa][Dd][Dd]|[Rr][Ee][Pp][Ll][Aa][Cc][Ee]|[Rr][Ee][Mm][Oo][Vv][Ee])$";
/// A role in any case; empty is unassigned.
const ROLE_TEXT: &str = "^(|[Vv][Ii][Ee][Ww][Ee][Rr]|[Aa][Dd][Mm][Ii][Nn])$";
/// Every `scimType` the handlers answer.
const SCIM_TYPES: [&str; 7] =
    ["invalidFilter", "invalidSyntax", "invalidPath", "invalidValue", "mutability", "noTarget", "uniqueness"];

/// The error statuses of a SCIM operation, with their response components. A role failure is the
/// OpenAI `Error`; a body is where a scoped admin's scope (403), uniqueness (409) and size (413)
/// can fail; a filter may outgrow the request target (414, before the handler); only `Users`
/// routes touch the state backend (503 from SCIM as well as draining).
pub(super) fn errors(r: &Route) -> Vec<(u16, &'static str)> {
    let body = r.body.is_some();
    let user = r.path.contains("{id}");
    let checks = [
        (400, body || !r.query.is_empty(), "ScimBadRequest"),
        (401, true, "Unauthorized"),
        (403, r.role == "admin", if body { "ScimForbidden" } else { "RoleForbidden" }),
        (404, user, "ScimNotFound"),
        (409, body, "ScimConflict"),
        (412, r.headers.contains(&SCIM_IF_MATCH), "ScimPreconditionFailed"),
        (413, body, "ScimPayloadTooLarge"),
        (414, r.query.contains(&"filter"), "UriTooLong"),
        (503, true, if r.path.starts_with("scim/v2/Users") { "ScimUnavailable" } else { "Unavailable" }),
    ];
    checks.iter().filter(|(_, applies, _)| *applies).map(|(status, _, name)| (*status, *name)).collect()
}

/// SCIM error responses: component, what `ScimError` (SCIM media type) carries, and what the
/// OpenAI `Error` (`application/json`) carries when it can answer the same status.
const ERRORS: [(&str, &str, Option<&str>); 7] = [
    (
        "ScimBadRequest",
        "`invalidFilter`, `invalidSyntax`, `invalidPath`, `invalidValue`, `mutability` or `noTarget`",
        None,
    ),
    (
        "ScimForbidden",
        "a scoped admin provisioning outside its own tenant or key prefixes",
        Some("`role_forbidden`: this needs the admin role"),
    ),
    ("ScimNotFound", "no such user (also a user outside the caller's tenant)", Some("`route_not_found`: an empty id")),
    ("ScimConflict", "`uniqueness`: another user has this userName (compared case-insensitively)", None),
    ("ScimPreconditionFailed", "If-Match names another version, or the user changed meanwhile", None),
    (
        "ScimPayloadTooLarge",
        "the body exceeds 256 KiB",
        Some("`request_too_large`: the body exceeds the gateway's request limit"),
    ),
    (
        "ScimUnavailable",
        "the state backend is unavailable",
        Some("`draining`: the gateway is shutting down (with Retry-After)"),
    ),
];

/// The SCIM error response components, and the plain `RoleForbidden` and `UriTooLong`.
pub(super) fn responses() -> Map<String, Value> {
    let mut out = Map::new();
    for (name, scim, openai) in ERRORS {
        let headers: &[(&str, &str)] = if name == "ScimUnavailable" { &[("Retry-After", "Retry-After")] } else { &[] };
        let mut description = format!("As `{SCIM}` (`ScimError`): {scim}.");
        if let Some(openai) = openai {
            description.push_str(&format!(" As `{JSON}` (`Error`): {openai}."));
        }
        let mut r = response(&description, Some((SCIM, schema_ref("ScimError"))), headers);
        if openai.is_some() {
            r["content"][JSON] = json!({"schema": schema_ref("Error")});
        }
        out.insert(name.to_string(), r);
    }
    let role = response("`role_forbidden`: this needs the admin role", Some((JSON, schema_ref("Error"))), &[]);
    out.insert("RoleForbidden".into(), role);
    let long = "`uri_too_long`: the request target exceeds 8 KiB (a filter near its 4096-byte bound, \
        percent-encoded, can)";
    out.insert("UriTooLong".into(), response(long, Some((JSON, schema_ref("Error"))), &[]));
    out
}

/// The SCIM parameter components: the user id and SCIM's If-Match.
pub(super) fn parameters() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "id".into(),
        json!({"name": "id", "in": "path", "required": true, "description": "The user's `id`",
            "schema": {"type": "string", "minLength": 1}}),
    );
    out.insert(
        SCIM_IF_MATCH.into(),
        json!({"name": "If-Match", "in": "header", "required": false,
            "description": "Apply only if the user is still at this version: its ETag (`W/\"<version>\"`), \
                `\"<version>\"`, a comma-separated list of these, or `*`. Anything else is a 412.",
            "schema": {"type": "string"}}),
    );
    out
}

/// The SCIM response header components.
pub(super) fn headers() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "ScimETag".into(),
        json!({"description": "The user's version as a weak ETag (`W/\"<version>\"`): send it back in If-Match",
            "required": true, "schema": {"type": "string", "pattern": "^W/\"[0-9]+\"$"}}),
    );
    out
}

/// A SCIM query parameter, if `name` is one.
pub(super) fn query_param(name: &str) -> Option<Value> {
    let whole = json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX});
    let (schema, description) = match name {
        "filter" => (
            json!({"type": "string", "minLength": 1, "maxLength": MAX_FILTER_LEN}),
            format!(
                "An RFC 7644 §3.4.2.2 filter over id, userName, externalId, displayName, name.formatted, \
                emails, active, meta.created, meta.lastModified and the extension's role, tenantId and \
                keyPrefixes (at most {MAX_FILTER_LEN} bytes, nesting 32); anything else is a 400 `invalidFilter`"
            ),
        ),
        "startIndex" => {
            (with(&whole, "default", 1), "1-based index of the first result; less than 1 is read as 1".into())
        }
        "count" => (
            with(&whole, "default", 100),
            format!("Page size; negative is read as 0, more than {MAX_RESULTS} as {MAX_RESULTS}"),
        ),
        "attributes" | "excludedAttributes" => (
            json!({"type": "string", "minLength": 1}),
            "Accepted and ignored: the whole resource is always returned".into(),
        ),
        _ => return None,
    };
    Some(json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema}))
}

fn with(schema: &Value, key: &str, value: impl Into<Value>) -> Value {
    let mut out = schema.clone();
    out[key] = value.into();
    out
}

/// Links from a created user to the operations on it.
pub(super) fn links(suffix: &str) -> Value {
    let mut links = Map::new();
    for id in ["getScimUser", "replaceScimUser", "patchScimUser", "deleteScimUser"] {
        let mut parameters = json!({"id": "$response.body#/id"});
        if id != "getScimUser" {
            parameters["header.If-Match"] = json!("$response.header.ETag");
        }
        links.insert(id.to_string(), json!({"operationId": format!("{id}{suffix}"), "parameters": parameters}));
    }
    Value::Object(links)
}

/// A string of at most `max` characters without control characters (`min` 1: not empty).
fn text(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max, "pattern": PRINTABLE})
}

/// An optional text attribute: null and `""` are unassigned.
fn optional_text() -> Value {
    json!({"type": ["string", "null"], "maxLength": MAX_TEXT, "pattern": PRINTABLE})
}

/// A multi-valued attribute as `parse_user` reads it: null, one item, or up to `max` items; an item
/// is the bare value or `{"value": …}` (`primary` only where it is read).
fn multi(value: &Value, primary: bool, max: usize) -> Value {
    let mut object = json!({"type": "object", "required": ["value"], "properties": {"value": value}});
    if primary {
        object["properties"]["primary"] = json!({"type": ["boolean", "string", "null"], "pattern": BOOL_TEXT});
    }
    let item = json!({"anyOf": [value, object]});
    json!({"anyOf": [{"type": "null"}, item, {"type": "array", "maxItems": max, "items": item}]})
}

fn list_of(item: &str) -> Value {
    json!({"allOf": [schema_ref("ScimListResponse"),
        {"type": "object", "properties": {"Resources": {"type": "array", "items": schema_ref(item)}}}]})
}

fn required_object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn supported() -> Value {
    required_object(&["supported"], json!({"supported": {"type": "boolean"}}))
}

/// `name` as an anchored pattern that matches it case-insensitively (ECMA-262 has no inline
/// flag, so each letter is a class).
fn any_case(name: &str) -> String {
    let classes: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect();
    format!("^{classes}$")
}

/// The extension object of a POST/PUT body: exactly its attributes, in any letter case.
fn extension_input() -> Value {
    let value_schema = |name: &str| match name {
        "role" => json!({"type": ["string", "null"], "pattern": ROLE_TEXT}),
        "tenantId" => optional_text(),
        _ => multi(&text(1, MAX_PREFIX_LEN), false, MAX_PREFIXES),
    };
    let mut properties = Map::new();
    let mut patterns = Map::new();
    for name in EXTENSION_ATTRIBUTES {
        properties.insert(name.into(), value_schema(name));
        patterns.insert(any_case(name), value_schema(name));
    }
    json!({"type": ["object", "null"], "properties": properties, "patternProperties": patterns,
        "additionalProperties": false,
        "description": "Attribute names match case-insensitively; any other attribute is a 400 `invalidValue` naming it"})
}

/// The SCIM component schemas.
pub(super) fn schemas() -> Map<String, Value> {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let schema_list = |urns: &str| {
        json!({"type": ["array", "null"], "items": {"type": "string"},
            "description": format!("Schema URNs (`[{urns}]`); only their type is checked")})
    };
    let user_input = json!({
        "type": "object",
        "description": format!("A POST or PUT body. Attribute names match case-insensitively; unknown attributes, \
            `id`, `meta` and the enterprise extension (`{ENTERPRISE}`) are ignored; null and \"\" leave an \
            attribute unassigned. PUT replaces every attribute."),
        "required": ["userName"],
        "properties": {
            "schemas": schema_list(&format!("\"{USER_SCHEMA}\", \"{EXTENSION}\"")),
            "userName": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NOT_BLANK},
            "externalId": optional_text(),
            "displayName": optional_text(),
            "name": {"type": ["object", "null"], "description": "Only `formatted` is kept (as displayName when that is unassigned)",
                "properties": {"formatted": optional_text()}},
            "emails": multi(&text(1, MAX_TEXT), true, MAX_EMAILS),
            "active": {"type": ["boolean", "string", "null"], "pattern": BOOL_TEXT, "default": true},
            EXTENSION: extension_input(),
        },
    });
    let patch = json!({
        "type": "object",
        "description": "An RFC 7644 §3.5.2 PatchOp. `path` is an attribute path (`active`, \
            `emails[type eq \"work\"].value`, `urn:…:User:role`, …); without one, `value` is an object of \
            paths. What `value` must be depends on the path: anything else is a 400. Operations apply in \
            order, all or none.",
        "required": ["Operations"],
        "properties": {
            "schemas": schema_list(&format!("\"{PATCH_OP}\"")),
            "Operations": {"type": "array", "minItems": 1, "maxItems": MAX_OPERATIONS, "items": required_object(&["op"], json!({
                "op": {"type": "string", "pattern": OP_NAME},
                "path": {"type": ["string", "null"]},
                "value": {},
            }))},
        },
    });
    let email = required_object(
        &["value", "type", "primary"],
        json!({"value": {"type": "string"}, "type": {"const": "work"}, "primary": {"type": "boolean"}}),
    );
    let user = required_object(
        &["schemas", "id", "userName", "active", EXTENSION, "meta"],
        json!({
            "schemas": {"const": [USER_SCHEMA, EXTENSION]},
            "id": {"type": "string", "minLength": 1},
            "externalId": {"type": "string"},
            "userName": {"type": "string", "minLength": 1},
            "displayName": {"type": "string"},
            "name": required_object(&["formatted"], json!({"formatted": {"type": "string"}})),
            "emails": {"type": "array", "minItems": 1, "items": email, "description": "The first one is primary"},
            "active": {"type": "boolean"},
            EXTENSION: {"type": "object", "properties": {
                "role": {"type": "string", "enum": ["viewer", "admin"]},
                "tenantId": {"type": "string"},
                "keyPrefixes": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            }},
            "meta": required_object(&["resourceType", "created", "lastModified", "version", "location"], json!({
                "resourceType": {"const": "User"},
                "created": {"type": "string", "format": "date-time"},
                "lastModified": {"type": "string", "format": "date-time"},
                "version": {"type": "string", "pattern": "^W/\"[0-9]+\"$"},
                "location": {"type": "string"},
            })),
        }),
    );
    let list = required_object(
        &["schemas", "totalResults", "startIndex", "itemsPerPage", "Resources"],
        json!({
            "schemas": {"const": [LIST_SCHEMA]},
            "totalResults": {"type": "integer", "minimum": 0},
            "startIndex": {"type": "integer", "minimum": 1},
            "itemsPerPage": {"type": "integer", "minimum": 0, "maximum": MAX_RESULTS},
            "Resources": {"type": "array", "items": {"type": "object"}},
        }),
    );
    let error = required_object(
        &["schemas", "status", "detail"],
        json!({
            "schemas": {"const": [ERROR_SCHEMA]},
            "status": {"type": "string", "pattern": "^[45][0-9]{2}$", "description": "The HTTP status, as a string"},
            "scimType": {"type": "string", "enum": SCIM_TYPES},
            "detail": {"type": "string"},
        }),
    );
    let meta = |resource: &str| {
        required_object(
            &["resourceType", "location"],
            json!({"resourceType": {"const": resource}, "location": {"type": "string"}}),
        )
    };
    let config = required_object(
        &["schemas", "patch", "bulk", "filter", "changePassword", "sort", "etag", "authenticationSchemes", "meta"],
        json!({
            "schemas": strings, "patch": supported(), "changePassword": supported(), "sort": supported(), "etag": supported(),
            "bulk": required_object(&["supported", "maxOperations", "maxPayloadSize"], json!({"supported": {"type": "boolean"},
                "maxOperations": {"type": "integer", "minimum": 0}, "maxPayloadSize": {"type": "integer", "minimum": 0}})),
            "filter": required_object(&["supported", "maxResults"], json!({"supported": {"type": "boolean"},
                "maxResults": {"type": "integer", "minimum": 0}})),
            "authenticationSchemes": {"type": "array", "items": required_object(&["type", "name", "description"], json!({
                "type": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
                "primary": {"type": "boolean"}}))},
            "meta": meta("ServiceProviderConfig"),
        }),
    );
    let resource_type = required_object(
        &["schemas", "id", "name", "endpoint", "schema", "meta"],
        json!({
            "schemas": strings, "id": {"type": "string"}, "name": {"type": "string"}, "endpoint": {"type": "string"},
            "description": {"type": "string"}, "schema": {"type": "string"},
            "schemaExtensions": {"type": "array", "items": required_object(&["schema", "required"], json!({
                "schema": {"type": "string"}, "required": {"type": "boolean"}}))},
            "meta": meta("ResourceType"),
        }),
    );
    let schema = required_object(
        &["schemas", "id", "name", "attributes", "meta"],
        json!({
            "schemas": strings, "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
            "attributes": {"type": "array", "items": schema_ref("ScimAttribute")},
            "meta": meta("Schema"),
        }),
    );
    let attribute = required_object(
        &["name", "type", "multiValued", "description", "required", "mutability", "returned", "uniqueness"],
        json!({
            "name": {"type": "string"},
            "type": {"enum": ["string", "boolean", "decimal", "integer", "dateTime", "binary", "reference", "complex"]},
            "multiValued": {"type": "boolean"}, "description": {"type": "string"}, "required": {"type": "boolean"},
            "mutability": {"enum": ["readOnly", "readWrite", "immutable", "writeOnly"]},
            "returned": {"enum": ["always", "never", "default", "request"]},
            "uniqueness": {"enum": ["none", "server", "global"]},
            "caseExact": {"type": "boolean"}, "maxLength": {"type": "integer", "minimum": 0},
            "canonicalValues": strings,
            "subAttributes": {"type": "array", "items": schema_ref("ScimAttribute")},
        }),
    );
    let mut out = Map::new();
    for (name, schema) in [
        ("ScimUser", user),
        ("ScimUserInput", user_input),
        ("ScimPatchOp", patch),
        ("ScimListResponse", list),
        ("ScimUserList", list_of("ScimUser")),
        ("ScimError", error),
        ("ScimServiceProviderConfig", config),
        ("ScimResourceType", resource_type),
        ("ScimResourceTypeList", list_of("ScimResourceType")),
        ("ScimSchema", schema),
        ("ScimSchemaList", list_of("ScimSchema")),
        ("ScimAttribute", attribute),
    ] {
        out.insert(name.to_string(), schema);
    }
    out
}
