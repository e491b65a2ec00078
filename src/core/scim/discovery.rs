//! SCIM discovery documents (RFC 7644 §4, RFC 7643 §5–7): `ServiceProviderConfig`,
//! `ResourceTypes` and `Schemas`, describing exactly what the rest of this module implements.
//!
//! Invariants: every attribute a User body, filter or PATCH accepts is described here with its
//! type, mutability, returned, uniqueness and caseExact; the documents are constants apart from the
//! base URL.

use serde_json::{json, Value};

use super::{list_json, EXTENSION, MAX_PREFIXES, MAX_TEXT, USER_SCHEMA};

/// The most resources one list response returns.
pub const MAX_RESULTS: usize = 500;

const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// `GET /ServiceProviderConfig`; `base` is the SCIM root URL.
#[must_use]
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A gateway admin token or an OIDC access token in the Authorization header",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", base.trim_end_matches('/'))},
    })
}

/// `GET /ResourceTypes`: the User type with the gateway extension.
#[must_use]
pub fn resource_types(base: &str) -> Value {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person who may use the gateway's admin plane",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": EXTENSION, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/User", base.trim_end_matches('/'))},
    });
    list_json(&[user], 1, 1)
}

/// `GET /Schemas`: the core User schema (the attributes the gateway stores) and the extension.
#[must_use]
pub fn schemas() -> Value {
    let text = |name: &str, description: &str| attribute(name, "string", description, json!({}));
    let user = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User Account",
        "attributes": [
            attribute("id", "string", "Identifier assigned by the gateway", json!({
                "caseExact": true, "mutability": "readOnly", "returned": "always", "uniqueness": "server"})),
            attribute("userName", "string", "Unique identifier for the user, matched case-insensitively", json!({
                "required": true, "returned": "always", "uniqueness": "server"})),
            attribute("externalId", "string", "The provisioning client's identifier for the user", json!({"caseExact": true})),
            text("displayName", "The name of the user, suitable for display"),
            attribute("name", "complex", "The user's name; only the formatted form is kept (as displayName)", json!({
                "subAttributes": [text("formatted", "The full name")]})),
            attribute("emails", "complex", "Email addresses; all are kept as work addresses, the first one primary", json!({
                "multiValued": true,
                "subAttributes": [
                    text("value", "Email address"),
                    attribute("type", "string", "Always work", json!({"canonicalValues": ["work"]})),
                    attribute("primary", "boolean", "Whether this is the primary address", json!({})),
                ]})),
            attribute("active", "boolean", "Whether the user may use the admin plane", json!({})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{USER_SCHEMA}")},
    });
    let extension = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": EXTENSION,
        "name": "GatewayUser",
        "description": "The user's authority in the gateway",
        "attributes": [
            attribute("role", "string", "viewer or admin", json!({"canonicalValues": ["viewer", "admin"]})),
            attribute("tenantId", "string", "The tenant the user is confined to; none means unscoped", json!({"caseExact": true})),
            attribute("keyPrefixes", "string", &format!("Key-name prefixes the user is confined to (at most {MAX_PREFIXES})"), json!({
                "multiValued": true, "caseExact": true})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{EXTENSION}")},
    });
    list_json(&[user, extension], 2, 1)
}

/// A schema attribute with RFC 7643 §7 defaults (single-valued, optional, readWrite, returned by
/// default, not unique, strings compared case-insensitively), then `overrides`.
fn attribute(name: &str, kind: &str, description: &str, overrides: Value) -> Value {
    let mut a = json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    });
    if let Some(obj) = a.as_object_mut() {
        if kind == "string" {
            obj.insert("caseExact".into(), false.into());
            obj.insert("maxLength".into(), MAX_TEXT.into());
        }
        if let Value::Object(extra) = overrides {
            obj.extend(extra);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_describe_the_implementation() {
        let spc = service_provider_config("https://gw/scim/v2/");
        assert_eq!(spc["patch"]["supported"], true);
        assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 500}));
        assert_eq!(spc["etag"]["supported"], true);
        assert_eq!(spc["bulk"]["supported"], false);
        assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(spc["meta"]["location"], "https://gw/scim/v2/ServiceProviderConfig");

        let rt = resource_types("https://gw/scim/v2");
        assert_eq!(rt["totalResults"], 1);
        assert_eq!(rt["Resources"][0]["schemaExtensions"][0]["schema"], EXTENSION);
        assert_eq!(rt["Resources"][0]["meta"]["location"], "https://gw/scim/v2/ResourceTypes/User");

        let s = schemas();
        assert_eq!(s["totalResults"], 2);
        let attrs = |i: usize| s["Resources"][i]["attributes"].as_array().cloned().unwrap();
        let find = |i: usize, name: &str| attrs(i).into_iter().find(|a| a["name"] == name).unwrap();
        assert_eq!(find(0, "userName")["uniqueness"], "server");
        assert_eq!(find(0, "userName")["caseExact"], false);
        assert_eq!(find(0, "id")["mutability"], "readOnly");
        assert_eq!(find(0, "emails")["multiValued"], true);
        assert_eq!(find(0, "active")["type"], "boolean");
        assert!(find(0, "active").get("caseExact").is_none());
        assert_eq!(find(1, "role")["canonicalValues"], json!(["viewer", "admin"]));
        assert_eq!(find(1, "keyPrefixes")["caseExact"], true);
        for i in 0..2 {
            for a in attrs(i) {
                for k in ["name", "type", "multiValued", "required", "mutability", "returned", "uniqueness"] {
                    assert!(a.get(k).is_some(), "{k} of {a}");
                }
            }
        }
    }
}
