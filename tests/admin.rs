//! The admin plane over HTTP: the key lifecycle end to end (create → use → rotate → disable →
//! enable → delete), safe mutations (ETag/If-Match, Idempotency-Key), role rules, the seed page's
//! route and role statements, and S3: no secret, prompt or completion in any output.

use serde_json::json;

use crate::support::admin::{call, get, keys_cli, parse_csv};
use crate::support::client;
use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-secret-lifecycle";
const AUDITOR: &str = "auditor-secret-lifecycle";
const PROMPT: &str = "prompt-marker-7f3a9c";

const POLICY: &str = r#"
[[gateway.admin_tokens]]
name = "auditor"
token_env = "PRODEX_GATEWAY_AUDITOR_TOKEN"
role = "viewer"
allowed_key_prefixes = ["team-a-"]
tenant_id = "tenant-a"

[[gateway.virtual_keys]]
name = "team-a-static"
token_env = "STATIC_KEY"
tenant_id = "tenant-a"
"#;

fn start(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some(POLICY),
        env: vec![
            ("PRODEX_GATEWAY_TOKEN", MASTER.into()),
            ("PRODEX_GATEWAY_AUDITOR_TOKEN", AUDITOR.into()),
            ("STATIC_KEY", "pk-static-secret-value".into()),
        ],
        ..Opts::default()
    })
}

fn chat(gw: &Gateway, bearer: &str) -> client::Response {
    gw.post_json(
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {bearer}"))],
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}),
    )
}

#[test]
fn key_lifecycle_over_http() {
    let mock = Mock::start();
    let gw = start(&mock);
    let r = call(&gw, MASTER, "POST", "keys", Some(&json!({"name": "team-a-life", "tenant_id": "tenant-a"})), &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let first = created["token"].as_str().unwrap().to_string();
    assert!(first.starts_with("pk-") && created["token_hint"].as_str().unwrap().ends_with(&first[first.len() - 4..]));
    assert_eq!(chat(&gw, &first).status, 200);

    let r = call(&gw, MASTER, "POST", "keys/team-a-life/rotate", None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json()["token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(chat(&gw, &first).status, 401, "the old token stops working at once");
    assert_eq!(chat(&gw, &second).status, 200);

    assert_eq!(call(&gw, MASTER, "POST", "keys/team-a-life/disable", None, &[]).status, 200);
    assert_eq!(chat(&gw, &second).status, 401, "disabled");
    let r = call(&gw, MASTER, "POST", "keys/team-a-life/enable", None, &[]);
    assert_eq!((r.status, r.json()["disabled"].as_bool()), (200, Some(false)));
    assert_eq!(chat(&gw, &second).status, 200, "enabled again");

    let r = call(&gw, MASTER, "DELETE", "keys/team-a-life", None, &[]);
    assert_eq!((r.status, r.json()["deleted"].as_bool()), (200, Some(true)));
    assert_eq!(chat(&gw, &second).status, 401, "deleted");
    assert_eq!(get(&gw, MASTER, "keys/team-a-life").code(), "key_not_found");
    // The deleted key's calls stay in the ledger, attributed to its tenant.
    let rows = get(&gw, AUDITOR, "ledger?key=team-a-life").json();
    let statuses: Vec<u64> = rows["data"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    // Three successful calls and the one refused while disabled (the other refusals presented
    // tokens that no longer named the key, so they are `_unauthenticated` rows).
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{rows}");
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 1, "{rows}");
}

#[test]
fn etags_and_idempotency_make_mutations_safe() {
    let mock = Mock::start();
    let gw = start(&mock);
    let body = json!({"name": "team-a-etag", "rpm_limit": 10});
    let idem = [("idempotency-key", "create-1")];
    let r = call(&gw, MASTER, "POST", "keys", Some(&body), &idem);
    assert_eq!(r.status, 201);
    let replay = call(&gw, MASTER, "POST", "keys", Some(&body), &idem);
    assert_eq!(replay.status, 201, "same key, same body: the stored response");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["id"], r.json()["id"]);
    assert!(replay.json().get("token").is_none(), "tokens are never stored, so never replayed");
    let other = call(&gw, MASTER, "POST", "keys", Some(&json!({"name": "team-a-other"})), &idem);
    assert_eq!((other.status, other.code().as_str()), (409, "idempotency_conflict"));
    // Concurrent first attempts: the key is claimed first, so only one runs; the other is told
    // it is in progress (or, if it came late, gets the reply) — never a second run.
    let outcomes: Vec<(u16, String, bool)> = (0..20)
        .flat_map(|i| {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            (0..2).map(move |_| {
                let (barrier, addr, name) = (barrier.clone(), gw.addr, format!("team-a-race-{i}"));
                std::thread::spawn(move || {
                    let body = json!({"name": name}).to_string();
                    let key = format!("race-{i}");
                    let auth = format!("Bearer {MASTER}");
                    let h = [
                        ("authorization", auth.as_str()),
                        ("content-type", "application/json"),
                        ("idempotency-key", key.as_str()),
                    ];
                    barrier.wait();
                    crate::support::client::request(addr, "POST", "/v1/prodex/gateway/keys", &h, body.as_bytes())
                })
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| {
            let r = t.join().unwrap();
            (r.status, r.code(), r.header("idempotent-replayed").is_some())
        })
        .collect();
    for pair in outcomes.chunks(2) {
        let ran = pair.iter().filter(|(s, _, replayed)| *s == 201 && !replayed).count();
        assert_eq!(ran, 1, "exactly one attempt runs: {pair:?}");
        for (status, code, replayed) in pair {
            assert!(
                (*status == 201) || (*status == 409 && code == "idempotency_in_progress"),
                "the duplicate is a replay or in progress, never a second run: {status} {code} {replayed}"
            );
        }
    }

    let got = get(&gw, MASTER, "keys/team-a-etag");
    assert_eq!(got.header("etag"), Some("\"1\""));
    let stale = [("if-match", "\"0\"")];
    let r = call(&gw, MASTER, "PATCH", "keys/team-a-etag", Some(&json!({"rpm_limit": 20})), &stale);
    assert_eq!((r.status, r.code().as_str()), (412, "version_mismatch"));
    let fresh = [("if-match", "\"1\"")];
    let r = call(&gw, MASTER, "PATCH", "keys/team-a-etag", Some(&json!({"rpm_limit": 20, "team_id": "t"})), &fresh);
    assert_eq!((r.status, r.header("etag")), (200, Some("\"2\"")));
    assert_eq!((r.json()["rpm_limit"].as_u64(), r.json()["team_id"].as_str()), (Some(20), Some("t")));
    // absent = unchanged, null = cleared
    let r = call(&gw, MASTER, "PATCH", "keys/team-a-etag", Some(&json!({"team_id": null})), &[]);
    assert_eq!((r.json()["rpm_limit"].as_u64(), r.json()["team_id"].is_null()), (Some(20), true));
    let r = call(&gw, MASTER, "DELETE", "keys/team-a-etag", None, &stale);
    assert_eq!(r.status, 412);
    let r = call(&gw, MASTER, "PATCH", "keys/team-a-etag", Some(&json!({"colour": "red"})), &[]);
    assert_eq!(
        (r.status, r.code().as_str(), r.json()["error"]["param"].as_str()),
        (400, "invalid_parameter", Some("colour"))
    );
    let r = call(&gw, MASTER, "POST", "keys", Some(&json!({"name": "team-a-etag"})), &[]);
    assert_eq!((r.status, r.code().as_str()), (409, "key_exists"));
    let r = client::request(
        gw.addr,
        "POST",
        "/v1/prodex/gateway/keys",
        &[("authorization", &format!("Bearer {MASTER}"))],
        b"{oops",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
}

/// Every route and role sentence of seed-deployment.md, one assertion block each.
#[test]
fn seed_page_routes_and_roles_hold() {
    let mock = Mock::start();
    let gw = start(&mock);
    // "The gateway exposes the admin OpenAPI document at … openapi.json" with the master token.
    let doc = get(&gw, MASTER, "openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.json()["openapi"].as_str().unwrap().starts_with("3.1"));
    // Recent ledger records, summaries, both CSV exports and metrics, "to the same admin token".
    for path in ["ledger", "ledger/summary", "ledger.csv", "ledger/summary.csv", "metrics"] {
        assert_eq!(get(&gw, MASTER, path).status, 200, "{path}");
    }
    // "the built-in single-node gateway admin dashboard is available at /v1/prodex/gateway/admin"
    let page = client::request(gw.addr, "GET", "/v1/prodex/gateway/admin", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'none'"));
    // `role = "viewer"` reads keys, usage, metrics and OpenAPI …
    for path in ["keys", "usage", "metrics", "openapi.json", "whoami"] {
        assert_eq!(get(&gw, AUDITOR, path).status, 200, "viewer reads {path}");
    }
    // … and nothing else: every write is refused.
    let writes = [
        ("POST", "keys", Some(json!({"name": "team-a-x"}))),
        ("PATCH", "keys/team-a-static", Some(json!({"rpm_limit": 1}))),
        ("DELETE", "keys/team-a-static", None),
        ("POST", "keys/team-a-static/rotate", None),
        ("POST", "keys/team-a-static/disable", None),
        ("POST", "keys/team-a-static/enable", None),
    ];
    for (method, path, body) in &writes {
        let r = call(&gw, AUDITOR, method, path, body.as_ref(), &[]);
        assert_eq!((r.status, r.code().as_str()), (403, "role_forbidden"), "viewer {method} {path}");
    }
    // `role = "admin"` can also create, rotate, disable and delete admin-managed keys.
    let r = call(&gw, MASTER, "POST", "keys", Some(&json!({"name": "team-a-made", "tenant_id": "tenant-a"})), &[]);
    assert_eq!(r.status, 201);
    for action in ["rotate", "disable", "enable"] {
        assert_eq!(call(&gw, MASTER, "POST", &format!("keys/team-a-made/{action}"), None, &[]).status, 200);
    }
    assert_eq!(call(&gw, MASTER, "DELETE", "keys/team-a-made", None, &[]).status, 200);
    // The auditor (tenant-a, prefix team-a-) sees only team-a- keys of tenant-a.
    let r = call(&gw, MASTER, "POST", "keys", Some(&json!({"name": "team-b-x", "tenant_id": "tenant-a"})), &[]);
    assert_eq!(r.status, 201);
    let names: Vec<String> = get(&gw, AUDITOR, "keys").json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(names, vec!["team-a-static".to_string()]);
    // Data-plane keys never authenticate the admin plane; admin tokens never the data plane.
    assert_eq!(get(&gw, "pk-static-secret-value", "whoami").status, 401);
    assert_eq!(chat(&gw, AUDITOR).status, 401);
    // Health routes stay public.
    assert_eq!(gw.get("/readyz").status, 200);
    // Both prefixes serve the same routes.
    let unversioned = client::request(
        gw.addr,
        "GET",
        "/prodex/gateway/whoami",
        &[("authorization", &format!("Bearer {MASTER}"))],
        b"",
    );
    assert_eq!(unversioned.json()["name"], "_gateway");
}

/// S3: run a little of everything, then look for every secret, the prompt and the completion in
/// every output the gateway produced.
#[test]
fn no_secret_prompt_or_completion_leaks() {
    let mock = Mock::start();
    let mut gw = start(&mock);
    let created = call(&gw, MASTER, "POST", "keys", Some(&json!({"name": "team-a-s3", "tenant_id": "tenant-a"})), &[]);
    let key_token = created.json()["token"].as_str().unwrap().to_string();
    assert_eq!(chat(&gw, &key_token).status, 200);
    let rotated =
        call(&gw, MASTER, "POST", "keys/team-a-s3/rotate", None, &[]).json()["token"].as_str().unwrap().to_string();
    assert_eq!(chat(&gw, &key_token).status, 401);
    assert_eq!(chat(&gw, &rotated).status, 200);
    assert_eq!(chat(&gw, "pk-static-secret-value").status, 200);
    let mut outputs = vec![
        get(&gw, "wrong-admin-secret", "keys").text(),
        get(&gw, &key_token, "keys").text(),
        call(&gw, AUDITOR, "POST", "keys", Some(&json!({"name": "x"})), &[]).text(),
        chat(&gw, "pk-not-a-key").text(),
    ];
    for path in ["keys", "usage", "ledger", "ledger/summary?group_by=key", "metrics", "audit", "whoami"] {
        outputs.push(get(&gw, MASTER, path).text());
    }
    let csv = get(&gw, MASTER, "ledger.csv");
    let _ = parse_csv(&csv);
    outputs.push(csv.text());
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(std::time::Duration::from_secs(10)).success());
    outputs.push(gw.stderr_text());
    for entry in std::fs::read_dir(gw.home.0.join("logs")).unwrap() {
        outputs.push(String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()).into_owned());
    }
    outputs.push(String::from_utf8_lossy(&std::fs::read(gw.home.0.join("gateway-state.redb")).unwrap()).into_owned());
    let secrets =
        [MASTER, AUDITOR, "pk-static-secret-value", key_token.as_str(), rotated.as_str(), PROMPT, "Hello from mock"];
    for (i, out) in outputs.iter().enumerate() {
        for s in secrets {
            assert!(!out.contains(s), "output #{i} contains {s:?}");
        }
    }
    assert!(outputs.iter().any(|o| o.contains("\"action\":\"key.rotate\"")), "the audit log file was read");
}

/// Runs a gateway on `home` (redb: one process at a time), checks it, stops it, returns the home.
fn with_gateway(mock: &Mock, home: crate::support::TempDir, check: &dyn Fn(&Gateway)) -> crate::support::TempDir {
    let mut gw = Gateway::start(Opts { base_url: Some(mock.base_url()), home: Some(home), ..Opts::default() });
    check(&gw);
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(std::time::Duration::from_secs(10)).success());
    std::mem::replace(&mut gw.home, crate::support::TempDir::new("moved"))
}

/// `prodex gateway keys …` works on the store directly, with no admin token and no running gateway.
#[test]
fn keys_cli_bootstraps_keys_without_an_admin_token() {
    let mock = Mock::start();
    let home = crate::support::TempDir::new("keys-cli");
    let args = [
        "create",
        "team-a-boot",
        "--tenant-id",
        "tenant-a",
        "--budget-usd",
        "5",
        "--allowed-models",
        "gpt-4o-mini,gemini-*",
        "--json",
    ];
    let (code, out, err) = keys_cli(&home.0, &args);
    assert_eq!(code, Some(0), "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(
        (created["budget_usd"].as_f64(), created["allowed_models"].as_array().map(Vec::len)),
        (Some(5.0), Some(2))
    );
    let (code, out, _) = keys_cli(&home.0, &["list"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("NAME") && out.contains("team-a-boot") && out.contains("tenant-a"), "{out}");
    assert!(!out.contains(&token), "list never shows a token");
    let (code, _, err) = keys_cli(&home.0, &["create", "bad name"]);
    assert_eq!(code, Some(2), "invalid input is a usage error: {err}");
    assert!(err.contains("name"), "{err}");
    assert_eq!(keys_cli(&home.0, &["create", "team-a-boot"]).0, Some(1), "duplicate");
    // F24: show and update from the CLI too.
    let (code, out, err) =
        keys_cli(&home.0, &["update", "team-a-boot", "--budget-usd", "7.5", "--rpm-limit", "30", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let updated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((updated["budget_usd"].as_f64(), updated["rpm_limit"].as_u64()), (Some(7.5), Some(30)));
    assert_eq!(updated["allowed_models"].as_array().map(Vec::len), Some(2), "flags not given are left as they are");
    let (code, out, _) = keys_cli(&home.0, &["show", "team-a-boot", "--json"]);
    assert_eq!(code, Some(0));
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((shown["version"].as_u64(), shown.get("token")), (Some(2), None), "{shown}");
    assert_eq!(
        keys_cli(&home.0, &["update", "team-a-boot", "--rpm-limit", "-1"]).0,
        Some(2),
        "a bad value is a usage error"
    );
    assert_eq!(keys_cli(&home.0, &["show", "nobody"]).0, Some(1));

    let home = with_gateway(&mock, home, &|gw| assert_eq!(chat(gw, &token).status, 200, "created by the CLI"));
    let (code, out, _) = keys_cli(&home.0, &["rotate", "team-a-boot", "--json"]);
    assert_eq!(code, Some(0));
    let rotated = serde_json::from_str::<serde_json::Value>(&out).unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(keys_cli(&home.0, &["disable", "team-a-boot"]).0, Some(0));
    let home = with_gateway(&mock, home, &|gw| {
        assert_eq!(chat(gw, &token).status, 401, "rotated away");
        assert_eq!(chat(gw, &rotated).status, 401, "disabled");
    });
    assert_eq!(keys_cli(&home.0, &["enable", "team-a-boot"]).0, Some(0));
    let home = with_gateway(&mock, home, &|gw| assert_eq!(chat(gw, &rotated).status, 200, "enabled"));
    assert_eq!(keys_cli(&home.0, &["delete", "team-a-boot"]).0, Some(0));
    let (code, out, _) = keys_cli(&home.0, &["list", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["data"], serde_json::json!([]));
}
