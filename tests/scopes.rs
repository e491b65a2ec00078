//! S1, tenant and key-prefix isolation: one table of principals × admin routes, asserting exactly
//! which keys, usage entries, ledger rows, CSV rows, summary buckets, metric series and audit
//! entries each principal sees, and which mutations succeed. Rows of a deleted key stay visible to
//! its tenant (rows carry the scope they were recorded with).

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::admin::{call, column, field_set, get, metric_keys, parse_csv, set};
use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

const POLICY: &str = r#"
[[gateway.admin_tokens]]
name = "viewer-all"
token_env = "VIEWER_ALL"
role = "viewer"

[[gateway.admin_tokens]]
name = "a-admin"
token_env = "A_ADMIN"
role = "admin"
tenant_id = "tenant-a"

[[gateway.admin_tokens]]
name = "a-viewer"
token_env = "A_VIEWER"
role = "viewer"
tenant_id = "tenant-a"
allowed_key_prefixes = ["team-a-"]

[[gateway.admin_tokens]]
name = "a-prefixed"
token_env = "A_PREFIXED"
role = "admin"
tenant_id = "tenant-a"
allowed_key_prefixes = ["team-a-"]

[[gateway.admin_tokens]]
name = "b-admin"
token_env = "B_ADMIN"
role = "admin"
tenant_id = "tenant-b"

[[gateway.virtual_keys]]
name = "team-a-policy"
token_env = "A_POLICY"
tenant_id = "tenant-a"
"#;

const MASTER: &str = "master-secret-s1";

struct Who {
    bearer: &'static str,
    /// Keys (live) it must see.
    keys: &'static [&'static str],
    /// Key names of ledger rows, CSV rows, summary buckets and metric series it must see.
    rows: &'static [&'static str],
    /// Tenants of the audit entries it sees (`None` = the audit route is forbidden to it).
    audit_tenants: Option<&'static [&'static str]>,
}

const ALL_KEYS: &[&str] = &["ops-a", "shared-x", "team-a-ci", "team-a-policy", "team-b-ci"];
const ALL_ROWS: &[&str] = &["_gateway", "ops-a", "shared-x", "team-a-ci", "team-a-gone", "team-a-policy", "team-b-ci"];

const TABLE: &[Who] = &[
    Who { bearer: MASTER, keys: ALL_KEYS, rows: ALL_ROWS, audit_tenants: Some(&["", "tenant-a", "tenant-b"]) },
    Who { bearer: "viewer-all-secret", keys: ALL_KEYS, rows: ALL_ROWS, audit_tenants: None },
    Who {
        bearer: "a-admin-secret",
        keys: &["ops-a", "team-a-ci", "team-a-policy"],
        rows: &["ops-a", "team-a-ci", "team-a-gone", "team-a-policy"],
        audit_tenants: Some(&["tenant-a"]),
    },
    Who {
        bearer: "a-viewer-secret",
        keys: &["team-a-ci", "team-a-policy"],
        rows: &["team-a-ci", "team-a-gone", "team-a-policy"],
        audit_tenants: None,
    },
    Who { bearer: "b-admin-secret", keys: &["team-b-ci"], rows: &["team-b-ci"], audit_tenants: Some(&["tenant-b"]) },
];

fn start(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some(POLICY),
        env: vec![
            ("PRODEX_GATEWAY_TOKEN", MASTER.into()),
            ("VIEWER_ALL", "viewer-all-secret".into()),
            ("A_ADMIN", "a-admin-secret".into()),
            ("A_VIEWER", "a-viewer-secret".into()),
            ("A_PREFIXED", "a-prefixed-secret".into()),
            ("B_ADMIN", "b-admin-secret".into()),
            ("A_POLICY", "pk-policy-a-secret".into()),
        ],
        ..Opts::default()
    })
}

fn chat(gw: &Gateway, bearer: &str) {
    let r = gw.post_json(
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {bearer}"))],
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Creates the keys of the table through the API and makes one call with each.
fn populate(gw: &Gateway) {
    for (name, tenant) in [
        ("team-a-ci", Some("tenant-a")),
        ("team-a-gone", Some("tenant-a")),
        ("ops-a", Some("tenant-a")),
        ("team-b-ci", Some("tenant-b")),
        ("shared-x", None),
    ] {
        let r =
            call(gw, MASTER, "POST", "keys", Some(&json!({"name": name, "tenant_id": tenant, "budget_usd": 10})), &[]);
        assert_eq!(r.status, 201, "{}", r.text());
        chat(gw, r.json()["token"].as_str().unwrap());
    }
    chat(gw, "pk-policy-a-secret");
    chat(gw, MASTER);
    let r = call(gw, MASTER, "DELETE", "keys/team-a-gone", None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
}

fn names(v: &[&str]) -> BTreeSet<String> {
    set(v)
}

#[test]
fn every_route_shows_each_principal_only_its_scope() {
    let mock = Mock::start();
    let gw = start(&mock);
    populate(&gw);
    for who in TABLE {
        let b = who.bearer;
        let ctx = format!("principal {b}");
        assert_eq!(field_set(&get(&gw, b, "keys?limit=500"), "name"), names(who.keys), "keys, {ctx}");
        assert_eq!(field_set(&get(&gw, b, "usage"), "key"), names(who.keys), "usage, {ctx}");
        assert_eq!(field_set(&get(&gw, b, "ledger?limit=1000"), "key_name"), names(who.rows), "ledger, {ctx}");
        let csv = parse_csv(&get(&gw, b, "ledger.csv"));
        let csv_keys: BTreeSet<String> = column(&csv, "key_name").into_iter().collect();
        assert_eq!(csv_keys, names(who.rows), "ledger.csv, {ctx}");
        assert_eq!(field_set(&get(&gw, b, "ledger/summary?group_by=key"), "key"), names(who.rows), "summary, {ctx}");
        let summary_csv = parse_csv(&get(&gw, b, "ledger/summary.csv?group_by=key"));
        let totals = column(&summary_csv, "is_total");
        let buckets: BTreeSet<String> = column(&summary_csv, "key")
            .into_iter()
            .zip(&totals)
            .filter(|(_, t)| t.as_str() == "false")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(buckets, names(who.rows), "summary.csv, {ctx}");
        let total_requests: u64 = get(&gw, b, "ledger/summary").json()["totals"]["requests"].as_u64().unwrap();
        assert_eq!(total_requests, who.rows.len() as u64, "summary totals count only visible rows, {ctx}");
        let metrics = get(&gw, b, "metrics");
        assert_eq!(metrics.status, 200);
        assert_eq!(metric_keys(&metrics.text()), names(who.rows), "metrics, {ctx}");
        // Asking for another scope's data narrows to nothing, never widens.
        let other = get(&gw, b, "ledger?tenant_id=tenant-b");
        let expect_b: BTreeSet<String> = names(who.rows).into_iter().filter(|n| n == "team-b-ci").collect();
        assert_eq!(field_set(&other, "key_name"), expect_b, "ledger?tenant_id=tenant-b, {ctx}");
        let audit = get(&gw, b, "audit?limit=500");
        match who.audit_tenants {
            None => assert_eq!((audit.status, audit.code()), (403, "role_forbidden".to_string()), "audit, {ctx}"),
            Some(tenants) => {
                let seen: BTreeSet<String> = audit.json()["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["tenant_id"].as_str().unwrap_or("").to_string())
                    .collect();
                assert_eq!(seen, names(tenants), "audit tenants, {ctx}");
            }
        }
        let me = get(&gw, b, "whoami").json();
        assert!(me["role"] == "admin" || me["role"] == "viewer", "{me}");
    }
}

#[test]
fn mutations_succeed_only_inside_the_scope() {
    let mock = Mock::start();
    let gw = start(&mock);
    populate(&gw);
    let post = |b: &str, path: &str, body: serde_json::Value| call(&gw, b, "POST", path, Some(&body), &[]);
    let expect = |r: crate::support::client::Response, status: u16, code: &str, what: &str| {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        if status >= 400 {
            assert_eq!(r.code(), code, "{what}");
        }
        r
    };
    // Viewers write nothing.
    for b in ["viewer-all-secret", "a-viewer-secret"] {
        expect(post(b, "keys", json!({"name": "team-a-v"})), 403, "role_forbidden", "viewer create");
        expect(post(b, "keys/team-a-ci/disable", json!({})), 403, "role_forbidden", "viewer disable");
        let r = call(&gw, b, "PATCH", "keys/team-a-ci", Some(&json!({"rpm_limit": 1})), &[]);
        expect(r, 403, "role_forbidden", "viewer patch");
        expect(call(&gw, b, "DELETE", "keys/team-a-ci", None, &[]), 403, "role_forbidden", "viewer delete");
    }
    // A tenant admin's keys land in its tenant; another tenant is refused.
    let r = expect(post("a-admin-secret", "keys", json!({"name": "a-made"})), 201, "", "a-admin create");
    assert_eq!(r.json()["tenant_id"], "tenant-a");
    let r = post("b-admin-secret", "keys", json!({"name": "b-sneaky", "tenant_id": "tenant-a"}));
    expect(r, 403, "scope_forbidden", "b-admin create in tenant-a");
    // A prefix-scoped admin must name keys inside its prefixes.
    expect(post("a-prefixed-secret", "keys", json!({"name": "ops-a2"})), 403, "scope_forbidden", "outside prefix");
    expect(post("a-prefixed-secret", "keys", json!({"name": "team-a-new"})), 201, "", "inside prefix");
    // Keys of other scopes do not exist for the principal.
    expect(post("b-admin-secret", "keys/team-a-ci/disable", json!({})), 404, "key_not_found", "b disables a's key");
    expect(call(&gw, "b-admin-secret", "GET", "keys/team-a-ci", None, &[]), 404, "key_not_found", "b reads a's key");
    expect(call(&gw, "a-admin-secret", "DELETE", "keys/shared-x", None, &[]), 404, "key_not_found", "a deletes shared");
    expect(post("a-prefixed-secret", "keys/ops-a/rotate", json!({})), 404, "key_not_found", "outside prefix rotate");
    let r = call(&gw, "a-admin-secret", "PATCH", "keys/team-a-ci", Some(&json!({"tenant_id": "tenant-b"})), &[]);
    expect(r, 403, "scope_forbidden", "a moves a key to tenant-b");
    // Inside the scope, writes work; policy keys stay read-only for everyone.
    expect(post("a-admin-secret", "keys/team-a-ci/disable", json!({})), 200, "", "a disables its key");
    expect(post("b-admin-secret", "keys/team-b-ci/rotate", json!({})), 200, "", "b rotates its key");
    expect(post(MASTER, "keys/team-a-policy/rotate", json!({})), 403, "key_read_only", "policy key rotate");
    let r = call(&gw, "a-admin-secret", "DELETE", "keys/team-a-policy", None, &[]);
    expect(r, 403, "key_read_only", "policy key delete");
    // Tenant b's admin never sees tenant a's audit entries, including a's failed attempts.
    let audit = get(&gw, "b-admin-secret", "audit?limit=500").json();
    for e in audit["data"].as_array().unwrap() {
        assert_eq!(e["tenant_id"], "tenant-b", "{e}");
    }
}
