//! SCIM 2.0 user provisioning over HTTP, the way Okta and Azure AD drive it: discovery documents,
//! create, look up by `userName eq`, PATCH (deactivate), PUT, DELETE; `If-Match` against the
//! version; and tenant isolation of users (S1: a tenant-scoped admin sees and changes only its
//! tenant's users, and provisions only inside its own scope).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::admin::call;
use crate::support::client::Response;
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-secret-scim";

const POLICY: &str = r#"
[[gateway.admin_tokens]]
name = "a-admin"
token_env = "A_ADMIN"
role = "admin"
tenant_id = "tenant-a"
allowed_key_prefixes = ["team-a-"]

[[gateway.admin_tokens]]
name = "b-viewer"
token_env = "B_VIEWER"
role = "viewer"
tenant_id = "tenant-b"
"#;

fn start() -> Gateway {
    Gateway::start(Opts {
        policy: Some(POLICY),
        env: vec![
            ("PRODEX_GATEWAY_TOKEN", MASTER.into()),
            ("A_ADMIN", "a-admin-secret".into()),
            ("B_VIEWER", "b-viewer-secret".into()),
        ],
        ..Opts::default()
    })
}

fn scim(
    gw: &Gateway,
    bearer: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Response {
    call(gw, bearer, method, &format!("scim/v2/{path}"), body, extra)
}

fn user(name: &str, tenant: Option<&str>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:prodex:params:scim:schemas:gateway:2.0:User"],
        "userName": name,
        "name": {"formatted": "Ada Lovelace"},
        "emails": [{"value": name, "primary": true}],
        "active": true,
        "urn:prodex:params:scim:schemas:gateway:2.0:User": {"role": "viewer", "tenantId": tenant, "keyPrefixes": ["team-a-"]},
    })
}

fn user_names(r: &Response) -> BTreeSet<String> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["Resources"].as_array().unwrap().iter().map(|u| u["userName"].as_str().unwrap().to_string()).collect()
}

#[test]
fn okta_style_provisioning_round_trip() {
    let gw = start();
    for doc in ["ServiceProviderConfig", "ResourceTypes", "Schemas"] {
        let r = scim(&gw, MASTER, "GET", doc, None, &[]);
        assert_eq!(r.status, 200, "{doc}");
        assert!(r.header("content-type").unwrap().starts_with("application/scim+json"));
    }
    let created = scim(&gw, MASTER, "POST", "Users", Some(&user("ada@example.com", Some("tenant-a"))), &[]);
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(created.json()["urn:prodex:params:scim:schemas:gateway:2.0:User"]["tenantId"], "tenant-a");
    let dup = scim(&gw, MASTER, "POST", "Users", Some(&user("ADA@example.com", Some("tenant-a"))), &[]);
    assert_eq!((dup.status, dup.json()["scimType"].as_str()), (409, Some("uniqueness")), "unique within a tenant");

    // The IdP's lookup before provisioning.
    let found = scim(&gw, MASTER, "GET", "Users?filter=userName%20eq%20%22Ada@Example.com%22", None, &[]);
    assert_eq!(user_names(&found), BTreeSet::from(["ada@example.com".to_string()]));
    assert_eq!(found.json()["totalResults"], 1);
    let none = scim(&gw, MASTER, "GET", "Users?filter=userName%20eq%20%22nobody%22", None, &[]);
    assert_eq!(none.json()["totalResults"], 0);
    let bad = scim(&gw, MASTER, "GET", "Users?filter=userName%20eq", None, &[]);
    assert_eq!((bad.status, bad.json()["scimType"].as_str()), (400, Some("invalidFilter")));

    // Deactivate (Azure AD's capitalised op), then check the version guard.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": false}]});
    let r = scim(&gw, MASTER, "PATCH", &format!("Users/{id}"), Some(&patch), &[("if-match", "W/\"1\"")]);
    assert_eq!((r.status, r.json()["active"].as_bool()), (200, Some(false)), "{}", r.text());
    let stale = scim(&gw, MASTER, "PATCH", &format!("Users/{id}"), Some(&patch), &[("if-match", "W/\"1\"")]);
    assert_eq!(stale.status, 412);
    let mut replaced = user("ada@example.com", Some("tenant-a"));
    replaced["displayName"] = json!("Countess");
    let r = scim(&gw, MASTER, "PUT", &format!("Users/{id}"), Some(&replaced), &[]);
    assert_eq!((r.status, r.json()["displayName"].as_str()), (200, Some("Countess")));
    assert_eq!(r.json()["active"], true, "PUT replaces every mutable attribute");

    let r = scim(&gw, MASTER, "DELETE", &format!("Users/{id}"), None, &[]);
    assert_eq!(r.status, 204);
    assert!(r.header("content-length").is_none() && r.body.is_empty());
    assert_eq!(scim(&gw, MASTER, "GET", &format!("Users/{id}"), None, &[]).status, 404);
    // Every SCIM mutation is audited.
    let audit = call(&gw, MASTER, "GET", "audit", None, &[]).json();
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["scim.user.create", "scim.user.patch", "scim.user.replace", "scim.user.delete"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

#[test]
fn users_are_isolated_by_tenant() {
    let gw = start();
    for (name, tenant) in
        [("a1@x", Some("tenant-a")), ("a2@x", Some("tenant-a")), ("b1@x", Some("tenant-b")), ("n@x", None)]
    {
        assert_eq!(scim(&gw, MASTER, "POST", "Users", Some(&user(name, tenant)), &[]).status, 201);
    }
    let all = BTreeSet::from(["a1@x", "a2@x", "b1@x", "n@x"].map(String::from));
    assert_eq!(user_names(&scim(&gw, MASTER, "GET", "Users", None, &[])), all);
    let a = BTreeSet::from(["a1@x", "a2@x"].map(String::from));
    assert_eq!(user_names(&scim(&gw, "a-admin-secret", "GET", "Users", None, &[])), a);
    assert_eq!(user_names(&scim(&gw, "a-admin-secret", "GET", "Users?filter=userName%20sw%20%22%22", None, &[])), a);
    let b = BTreeSet::from(["b1@x".to_string()]);
    assert_eq!(user_names(&scim(&gw, "b-viewer-secret", "GET", "Users", None, &[])), b);
    let probe = scim(&gw, "b-viewer-secret", "GET", "Users?filter=userName%20eq%20%22a1@x%22", None, &[]);
    assert_eq!(probe.json()["totalResults"], 0, "another tenant's user is not found by name either");
    let b_id = scim(&gw, MASTER, "GET", "Users?filter=userName%20eq%20%22b1@x%22", None, &[]).json()["Resources"][0]
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(scim(&gw, "a-admin-secret", "GET", &format!("Users/{b_id}"), None, &[]).status, 404);
    assert_eq!(scim(&gw, "a-admin-secret", "DELETE", &format!("Users/{b_id}"), None, &[]).status, 404);
    // A viewer writes nothing; a scoped admin provisions only inside its scope.
    let r = scim(&gw, "b-viewer-secret", "POST", "Users", Some(&user("v@x", Some("tenant-b"))), &[]);
    assert_eq!((r.status, r.code().as_str()), (403, "role_forbidden"));
    let r = scim(&gw, "a-admin-secret", "POST", "Users", Some(&user("sneak@x", Some("tenant-b"))), &[]);
    assert_eq!(r.status, 403);
    let mut wide = user("wide@x", None);
    wide["urn:prodex:params:scim:schemas:gateway:2.0:User"]["keyPrefixes"] = json!(["team-"]);
    assert_eq!(scim(&gw, "a-admin-secret", "POST", "Users", Some(&wide), &[]).status, 403);
    let r = scim(&gw, "a-admin-secret", "POST", "Users", Some(&user("a3@x", None)), &[]);
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["urn:prodex:params:scim:schemas:gateway:2.0:User"]["tenantId"], "tenant-a", "tenant forced");
}
