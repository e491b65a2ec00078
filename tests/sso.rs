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
    assert_eq!(ignored, 1, "the second identical denial from this address is folded into a counted summary: {audit}");
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

/// The hostile tester's squatting and existence-oracle cases: a tenant admin provisions (and
/// deactivates) a name another team uses, and probes key names and userNames for 409s.
#[test]
fn tenant_admins_cannot_squat_or_probe_names_of_other_tenants() {
    let gw = start();
    let admin_of = |tenant: &'static str| {
        vec![
            ("x-prodex-sso-token", PROXY),
            ("x-auth-request-email", if tenant == "tenant-a" { "a-admin@corp" } else { "b-admin@corp" }),
            ("x-prodex-role", "admin"),
            ("x-prodex-tenant", tenant),
            ("content-type", "application/scim+json"),
        ]
    };
    let boss = |active: bool| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Boss@corp", "active": active,
            "urn:prodex:params:scim:schemas:gateway:2.0:User": {"role": "admin"}})
    };
    let r = via_proxy(&gw, "POST", "scim/v2/Users", &admin_of("tenant-a"), Some(&boss(false)));
    assert_eq!(r.status, 201, "{}", r.text());
    // userNames are unique per tenant: tenant-b learns nothing about tenant-a's users.
    let r = via_proxy(&gw, "POST", "scim/v2/Users", &admin_of("tenant-b"), Some(&boss(true)));
    assert_eq!(r.status, 201, "no cross-tenant 409: {}", r.text());
    let r = via_proxy(&gw, "POST", "scim/v2/Users", &admin_of("tenant-b"), Some(&boss(true)));
    assert_eq!((r.status, r.json()["scimType"].as_str()), (409, Some("uniqueness")), "unique within the tenant");
    // The real person, whose proxy states no tenant, is not locked out or re-scoped by either
    // tenant admin's record: it gets the configured default scope.
    let person = [("x-prodex-sso-token", PROXY), ("x-auth-request-email", "boss@corp")];
    let me = via_proxy(&gw, "GET", "whoami", &person, None);
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!((me.json()["tenant_id"].as_str(), me.json()["role"].as_str()), (Some("tenant-home"), Some("viewer")));
    // A record the operator (unscoped) provisions does assign the tenant.
    let mut master = vec![("content-type", "application/scim+json")];
    let bearer = format!("Bearer {MASTER}");
    master.push(("authorization", bearer.as_str()));
    let mut ops = boss(true);
    ops["urn:prodex:params:scim:schemas:gateway:2.0:User"]["tenantId"] = json!("tenant-ops");
    assert_eq!(via_proxy(&gw, "POST", "scim/v2/Users", &master, Some(&ops)).status, 201);
    let me = via_proxy(&gw, "GET", "whoami", &person, None).json();
    assert_eq!((me["tenant_id"].as_str(), me["role"].as_str()), (Some("tenant-ops"), Some("admin")));

    // Key names: a tenant admin's keys live in its tenant's namespace, so a name taken in
    // another tenant is never a 409 for it.
    let key = |headers: &[(&str, &str)], body: serde_json::Value| {
        let mut h: Vec<(&str, &str)> = headers.iter().filter(|(k, _)| *k != "content-type").copied().collect();
        h.push(("content-type", "application/json"));
        via_proxy(&gw, "POST", "keys", &h, Some(&body))
    };
    let r = key(&master, json!({"name": "payroll-bot", "tenant_id": "tenant-b"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let r = key(&admin_of("tenant-a"), json!({"name": "payroll-bot"}));
    assert_eq!((r.status, r.json()["name"].as_str()), (201, Some("tenant-a:payroll-bot")), "{}", r.text());
    let r = key(&admin_of("tenant-a"), json!({"name": "payroll-bot"}));
    assert_eq!((r.status, r.code().as_str()), (409, "key_exists"), "taken in its own namespace");
    let r = key(&admin_of("tenant-a"), json!({"name": "tenant-b:payroll-bot"}));
    assert_eq!((r.status, r.code().as_str()), (403, "scope_forbidden"), "another tenant's namespace: {}", r.text());
    let r = key(&admin_of("tenant-b"), json!({"name": "tenant-b:payroll-bot"}));
    assert_eq!(r.status, 201, "its own namespace, named in full: {}", r.text());
    // Nobody, the operator included, files a key under another tenant's namespace.
    let r = key(&master, json!({"name": "tenant-a:stray", "tenant_id": "tenant-b"}));
    assert_eq!((r.status, r.code().as_str()), (403, "scope_forbidden"), "{}", r.text());
    let r = call(&gw, MASTER, "PATCH", "keys/tenant-a:payroll-bot", Some(&json!({"tenant_id": "tenant-b"})), &[]);
    assert_eq!((r.status, r.code().as_str()), (403, "scope_forbidden"), "{}", r.text());
}
