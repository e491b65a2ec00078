//! Trusted-proxy SSO on the admin plane (gateway.md §7 item 4, S2): identity headers count only
//! with the proxy's shared secret; without it they are ignored (and audited); role, tenant and
//! prefixes come from the headers, else from the active SCIM user of that name, else the default
//! role; a deactivated SCIM user is refused; SSO never opens the data plane.

use serde_json::json;

use crate::support::admin::call;
use crate::support::client::{self, Response};
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-secret-sso";
const PROXY: &str = "proxy-shared-secret";

const POLICY: &str = r#"
[gateway.sso]
proxy_token_env = "PRODEX_GATEWAY_SSO_PROXY_TOKEN"
user_header = "X-Auth-Request-Email"
role_header = "x-prodex-role"
key_prefixes_header = "x-prodex-key-prefixes"
tenant_header = "x-prodex-tenant"
default_role = "viewer"
default_tenant_id = "tenant-home"
"#;

fn start() -> Gateway {
    Gateway::start(Opts {
        policy: Some(POLICY),
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into()), ("PRODEX_GATEWAY_SSO_PROXY_TOKEN", PROXY.into())],
        ..Opts::default()
    })
}

fn via_proxy(
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Response {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    client::request(gw.addr, method, &format!("/v1/prodex/gateway/{path}"), headers, &bytes)
}

#[test]
fn proxy_headers_count_only_with_the_shared_secret() {
    let gw = start();
    let ada = [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "ada@example.com")];
    let me = via_proxy(&gw, "GET", "whoami", &ada, None);
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(
        (me["name"].as_str(), me["source"].as_str(), me["role"].as_str()),
        (Some("ada@example.com"), Some("sso_proxy"), Some("viewer"))
    );
    assert_eq!(me["tenant_id"], "tenant-home", "no tenant stated and no SCIM user: the configured default scope");

    let scoped = [
        ("x-prodex-sso-token", PROXY),
        ("x-auth-request-email", "bob@example.com"),
        ("x-prodex-role", "admin"),
        ("x-prodex-tenant", "tenant-a"),
        ("x-prodex-key-prefixes", "team-a-, team-x-"),
    ];
    let me = via_proxy(&gw, "GET", "whoami", &scoped, None).json();
    assert_eq!((me["role"].as_str(), me["tenant_id"].as_str()), (Some("admin"), Some("tenant-a")));
    assert_eq!(me["allowed_key_prefixes"], json!(["team-a-", "team-x-"]));
    let created = via_proxy(&gw, "POST", "keys", &scoped, Some(&json!({"name": "team-a-sso"})));
    assert_eq!((created.status, created.json()["tenant_id"].as_str()), (201, Some("tenant-a")));
    // Headers without the secret (or with a wrong one) are ignored, whatever they claim.
    let forged = [("x-auth-request-email", "eve@example.com"), ("x-prodex-role", "admin")];
    assert_eq!(via_proxy(&gw, "GET", "whoami", &forged, None).status, 401);
    let wrong =
        [("x-prodex-sso-token", "guess"), ("x-auth-request-email", "eve@example.com"), ("x-prodex-role", "admin")];
    assert_eq!(via_proxy(&gw, "GET", "whoami", &wrong, None).status, 401);
    let audit = call(&gw, MASTER, "GET", "audit", None, &[]).json();
    let ignored = audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == "sso_headers_ignored").count();
    assert_eq!(ignored, 2, "{audit}");
    assert!(!audit.to_string().contains(PROXY), "the proxy secret is never audited");
    // A trusted proxy with no user, or an unknown role, is refused.
    assert_eq!(via_proxy(&gw, "GET", "whoami", &[("x-prodex-sso-token", PROXY)], None).status, 401);
    let bad_role =
        [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "ada@example.com"), ("x-prodex-role", "root")];
    assert_eq!(via_proxy(&gw, "GET", "whoami", &bad_role, None).status, 401);
    // SSO identities never authenticate the data plane.
    let mut h = ada.to_vec();
    h.push(("content-type", "application/json"));
    let r = client::request(gw.addr, "POST", "/v1/chat/completions", &h, br#"{"model":"m","messages":[]}"#);
    assert_eq!(r.status, 401);
}

#[test]
fn scim_users_supply_missing_claims_and_inactive_users_are_refused() {
    let gw = start();
    let user = |name: &str, active: bool| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": active,
            "urn:prodex:params:scim:schemas:gateway:2.0:User": {"role": "admin", "tenantId": "tenant-b", "keyPrefixes": ["team-b-"]}})
    };
    assert_eq!(call(&gw, MASTER, "POST", "scim/v2/Users", Some(&user("cy@example.com", true)), &[]).status, 201);
    assert_eq!(call(&gw, MASTER, "POST", "scim/v2/Users", Some(&user("off@example.com", false)), &[]).status, 201);
    let cy = [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "CY@example.com")];
    let me = via_proxy(&gw, "GET", "whoami", &cy, None).json();
    assert_eq!((me["role"].as_str(), me["tenant_id"].as_str()), (Some("admin"), Some("tenant-b")), "{me}");
    assert_eq!(me["allowed_key_prefixes"], json!(["team-b-"]));
    // A stated header wins over the SCIM record.
    let mut viewer = cy.to_vec();
    viewer.push(("x-prodex-role", "viewer"));
    assert_eq!(via_proxy(&gw, "GET", "whoami", &viewer, None).json()["role"], "viewer");
    let r = via_proxy(&gw, "POST", "keys", &viewer, Some(&json!({"name": "team-b-x"})));
    assert_eq!((r.status, r.code().as_str()), (403, "role_forbidden"));
    // Deactivated in the IdP: refused even with every header stated.
    let off = [
        ("x-prodex-sso-token", PROXY),
        ("x-auth-request-email", "off@example.com"),
        ("x-prodex-role", "admin"),
        ("x-prodex-tenant", "tenant-b"),
    ];
    assert_eq!(via_proxy(&gw, "GET", "whoami", &off, None).status, 401);
}

/// With no default scope configured, an SSO user whose proxy states no tenant and who has no SCIM
/// record opens no tenant at all (the hostile tester got an unscoped viewer over every tenant).
#[test]
fn an_sso_user_with_no_tenant_and_no_scim_record_is_refused_without_a_default_scope() {
    let policy = POLICY.replace("default_tenant_id = \"tenant-home\"\n", "");
    let gw = Gateway::start(Opts {
        policy: Some(&policy),
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into()), ("PRODEX_GATEWAY_SSO_PROXY_TOKEN", PROXY.into())],
        ..Opts::default()
    });
    let ada = [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "ada@example.com")];
    assert_eq!(via_proxy(&gw, "GET", "whoami", &ada, None).status, 401);
    assert_eq!(via_proxy(&gw, "GET", "keys", &ada, None).status, 401);
    let stated =
        [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "ada@example.com"), ("x-prodex-tenant", "tenant-a")];
    let me = via_proxy(&gw, "GET", "whoami", &stated, None);
    assert_eq!((me.status, me.json()["tenant_id"].as_str()), (200, Some("tenant-a")));
    let audit = via_proxy(&gw, "GET", "audit?limit=50", &[("authorization", &format!("Bearer {MASTER}"))], None);
    assert!(audit.text().contains("unscoped_sso_user"), "{}", audit.text());
}

/// A SCIM record speaks only for its own tenant: a record another tenant made under a person's
/// name, even deactivated, neither locks that person out nor re-scopes them when the proxy states
/// their tenant.
#[test]
fn another_tenants_scim_record_cannot_claim_a_person() {
    let gw = start();
    let master = [("authorization", format!("Bearer {MASTER}"))];
    let master: Vec<(&str, &str)> = master.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let squat = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "boss@corp", "active": false,
        "urn:prodex:params:scim:schemas:gateway:2.0:User": {"role": "admin", "tenantId": "tenant-a"}});
    let mut h = master.clone();
    h.push(("content-type", "application/scim+json"));
    let r = via_proxy(&gw, "POST", "scim/v2/Users", &h, Some(&squat));
    assert_eq!(r.status, 201, "{}", r.text());
    let boss = [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "boss@corp"), ("x-prodex-tenant", "tenant-b")];
    let me = via_proxy(&gw, "GET", "whoami", &boss, None);
    assert_eq!(me.status, 200, "tenant-a's deactivated record does not lock out tenant-b's person: {}", me.text());
    assert_eq!((me.json()["tenant_id"].as_str(), me.json()["role"].as_str()), (Some("tenant-b"), Some("viewer")));
    let unstated = [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "boss@corp")];
    assert_eq!(
        via_proxy(&gw, "GET", "whoami", &unstated, None).status,
        401,
        "with no tenant stated, the record applies"
    );
}
