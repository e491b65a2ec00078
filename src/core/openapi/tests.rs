//! Unit tests of the OpenAPI document: roles, security, references, both prefixes, operation ids,
//! key and SCIM schemas, and links that name real operations.

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
    let name = &doc["components"]["parameters"]["name"]["schema"];
    assert_eq!(name["pattern"], "^[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$", "plain or `tenant:name`");
    assert_eq!(name["maxLength"], 128);
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

#[test]
fn scim_operations_list_every_status_with_its_shape() {
    let doc = document("0");
    let resolve = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(r) => doc.pointer(r.strip_prefix('#').unwrap()).unwrap().clone(),
            None => v.clone(),
        }
    };
    let users = "/v1/prodex/gateway/scim/v2/Users";
    let user = "/prodex/gateway/scim/v2/Users/{id}";
    let cases: [(&str, &str, &[&str]); 9] = [
        (users, "get", &["200", "400", "401", "414", "503"]),
        (users, "post", &["201", "400", "401", "403", "409", "413", "503"]),
        (user, "get", &["200", "401", "404", "503"]),
        (user, "put", &["200", "400", "401", "403", "404", "409", "412", "413", "503"]),
        (user, "patch", &["200", "400", "401", "403", "404", "409", "412", "413", "503"]),
        (user, "delete", &["204", "401", "403", "404", "412", "503"]),
        ("/v1/prodex/gateway/scim/v2/ServiceProviderConfig", "get", &["200", "401", "503"]),
        ("/v1/prodex/gateway/scim/v2/ResourceTypes", "get", &["200", "401", "503"]),
        ("/v1/prodex/gateway/scim/v2/Schemas", "get", &["200", "401", "503"]),
    ];
    for (path, method, statuses) in cases {
        let op = &doc["paths"][path][method];
        let listed: Vec<&str> = op["responses"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(listed, statuses, "{method} {path}");
        assert_eq!(op["tags"][0], "scim");
        for (status, r) in op["responses"].as_object().unwrap() {
            let r = resolve(r);
            let media: Vec<&str> =
                r["content"].as_object().map(|c| c.keys().map(String::as_str).collect()).unwrap_or_default();
            let want: &[&str] = match (status.as_str(), method) {
                ("204", _) => &[],
                ("401" | "414", _) | ("403", "delete") => &["application/json"],
                ("503", "get") if !path.ends_with("Users") && !path.ends_with("{id}") => &["application/json"],
                ("400" | "409" | "412", _) | ("200" | "201", _) => &["application/scim+json"],
                _ => &["application/json", "application/scim+json"],
            };
            assert_eq!(media, want, "{method} {path} {status}");
            if let Some(scim) = r["content"].get("application/scim+json") {
                let schema = scim["schema"]["$ref"].as_str().unwrap();
                assert!(schema.starts_with("#/components/schemas/Scim"), "{method} {path} {status}");
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(schema, "#/components/schemas/ScimError");
                }
            }
            if let Some(json) = r["content"].get("application/json") {
                assert_eq!(json["schema"]["$ref"], "#/components/schemas/Error", "{method} {path} {status}");
            }
        }
        let with_etag = method == "post" || (path.ends_with("{id}") && method != "delete");
        let ok = op["responses"].as_object().unwrap().iter().find(|(s, _)| s.starts_with('2')).unwrap().1;
        assert_eq!(ok["headers"]["ETag"]["$ref"] == "#/components/headers/ScimETag", with_etag, "{method} {path}");
        if let Some(body) = op.get("requestBody") {
            let media: Vec<&str> = body["content"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(media, ["application/json", "application/scim+json"], "{method} {path}");
        }
    }
    let list = &doc["paths"][users]["get"]["parameters"];
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["filter", "startIndex", "count", "attributes", "excludedAttributes"]);
    assert_eq!(doc["paths"][user]["patch"]["parameters"][1]["$ref"], "#/components/parameters/scimIfMatch");
    let links = &doc["paths"][users]["post"]["responses"]["201"]["links"];
    assert_eq!(links["patchScimUser"]["parameters"]["header.If-Match"], "$response.header.ETag");
}

#[test]
fn scim_schemas_carry_the_core_limits() {
    use crate::core::scim::{EXTENSION, MAX_EMAILS, MAX_OPERATIONS, MAX_PREFIXES, MAX_TEXT, USER_SCHEMA};
    let doc = document("0");
    let s = &doc["components"]["schemas"];
    let input = &s["ScimUserInput"];
    assert_eq!(input["required"], serde_json::json!(["userName"]));
    assert_eq!(input["properties"]["userName"]["maxLength"], MAX_TEXT);
    assert_eq!(input["properties"]["emails"]["anyOf"][2]["maxItems"], MAX_EMAILS);
    assert_eq!(input["properties"][EXTENSION]["properties"]["keyPrefixes"]["anyOf"][2]["maxItems"], MAX_PREFIXES);
    assert!(input.get("additionalProperties").is_none(), "unknown attributes are ignored, not refused");
    assert_eq!(s["ScimPatchOp"]["properties"]["Operations"]["maxItems"], MAX_OPERATIONS);
    assert_eq!(s["ScimPatchOp"]["properties"]["Operations"]["items"]["required"], serde_json::json!(["op"]));
    assert_eq!(s["ScimUser"]["properties"]["schemas"]["const"], serde_json::json!([USER_SCHEMA, EXTENSION]));
    assert_eq!(s["ScimError"]["properties"]["status"]["type"], "string");
    assert_eq!(s["ScimError"]["required"], serde_json::json!(["schemas", "status", "detail"]));
    for list in ["ScimUserList", "ScimResourceTypeList", "ScimSchemaList"] {
        assert_eq!(s[list]["allOf"][0]["$ref"], "#/components/schemas/ScimListResponse", "{list}");
    }
    let active = &input["properties"]["active"];
    assert_eq!(active["type"], serde_json::json!(["boolean", "string", "null"]));
    assert_eq!(active["pattern"], "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$");
}
