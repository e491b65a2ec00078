//! Tenant isolation and request hygiene under hostile input (the hostile tester's issue): paths
//! that could mean two routes, shared provider objects, oversized streamed bodies.

use std::io::Write;

use serde_json::json;

use crate::support::admin::call;
use crate::support::client;
use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-token-isolation-0123456789";

fn gateway(mock: &Mock, extra_env: Vec<(&'static str, String)>, policy: Option<&'static str>) -> Gateway {
    let mut env = vec![("PRODEX_GATEWAY_TOKEN", MASTER.to_string())];
    env.extend(extra_env);
    Gateway::start(Opts { base_url: Some(mock.base_url()), env, policy, ..Opts::default() })
}

/// A key with no allowlist and no budget (passthrough is open to it); its token once loaded.
fn open_key(gw: &Gateway, name: &str) -> String {
    crate::support::admin::create_key(gw, MASTER, &json!({"name": name}))
}

/// Dot segments and encoded separators are refused before classification: an upstream or CDN
/// that normalises paths can never turn an admitted route into another.
#[test]
fn paths_with_dot_segments_never_reach_the_upstream() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![], None);
    let key = open_key(&gw, "dots");
    let auth = format!("Bearer {key}");
    let before = mock.count();
    for (method, path) in [
        ("GET", "/v1/models/gpt-4o-mini/../../files"),
        ("POST", "/v1/images/../chat/completions"),
        ("POST", "/v1/images/%2e%2e/chat/completions"),
        ("GET", "/v1/models/x%2F..%2Ffiles"),
        ("POST", "/v1//chat/completions"),
    ] {
        let body = json!({"model": "gpt-4o-mini", "messages": []}).to_string();
        let r = client::request(
            gw.addr,
            method,
            path,
            &[("authorization", &auth), ("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!((r.status, r.code().as_str()), (400, "invalid_path"), "{method} {path}: {}", r.text());
    }
    assert_eq!(mock.count(), before, "nothing was forwarded");
}

/// Files, batches, uploads and stored responses live in the one provider account: off for
/// virtual keys unless the operator turns them on; the master token keeps them.
#[test]
fn shared_provider_objects_are_off_for_keys_by_default() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![], None);
    let key = open_key(&gw, "objects");
    for (method, path) in [
        ("GET", "/v1/files"),
        ("GET", "/v1/files/file-1/content"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/responses/resp_1"),
        ("DELETE", "/v1/responses/resp_1"),
    ] {
        let r = client::request(gw.addr, method, path, &[("authorization", &format!("Bearer {key}"))], b"");
        assert_eq!((r.status, r.code().as_str()), (403, "object_route_forbidden"), "{method} {path}: {}", r.text());
        let r = client::request(gw.addr, method, path, &[("authorization", &format!("Bearer {MASTER}"))], b"");
        assert_eq!(r.status, 200, "the operator's own token: {method} {path}");
    }
    let r = client::request(gw.addr, "POST", "/v1/moderations", &[("authorization", &format!("Bearer {key}"))], b"{}");
    assert_eq!(r.status, 200, "stateless passthrough stays open");

    let on = gateway(&mock, vec![], Some("[gateway]\nallow_key_object_routes = true\n"));
    let key = open_key(&on, "objects-on");
    let r = client::request(on.addr, "GET", "/v1/files", &[("authorization", &format!("Bearer {key}"))], b"");
    assert_eq!(r.status, 200, "the operator opted in");
}

/// With object routes turned on, the gateway records who created each file, batch and stored
/// response and answers only the owner's tenant (or the key itself when it has none): other
/// tenants get 404, lists are filtered, and a create cannot point at another tenant's object.
#[test]
fn object_routes_when_turned_on_answer_only_the_owners_tenant() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![], Some("[gateway]\nallow_key_object_routes = true\n"));
    let a1 = crate::support::admin::create_key(&gw, MASTER, &json!({"name": "obj-a1", "tenant_id": "tenant-a"}));
    let a2 = crate::support::admin::create_key(&gw, MASTER, &json!({"name": "obj-a2", "tenant_id": "tenant-a"}));
    let b = crate::support::admin::create_key(&gw, MASTER, &json!({"name": "obj-b", "tenant_id": "tenant-b"}));
    let solo = open_key(&gw, "obj-solo");
    let req = |key: &str, method: &str, path: &str, body: &serde_json::Value| {
        let auth = format!("Bearer {key}");
        let payload = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        client::request(
            gw.addr,
            method,
            path,
            &[("authorization", &auth), ("content-type", "application/json")],
            &payload,
        )
    };
    let none = serde_json::Value::Null;
    let made = req(&a1, "POST", "/v1/files", &json!({"purpose": "batch"}));
    assert_eq!(made.status, 200, "{}", made.text());
    let file = made.json()["id"].as_str().unwrap().to_string();
    let theirs = req(&b, "POST", "/v1/files", &json!({"purpose": "batch"})).json()["id"].as_str().unwrap().to_string();
    // The owner's tenant reaches it; another tenant, and a tenantless key, do not.
    assert_eq!(req(&a2, "GET", &format!("/v1/files/{file}"), &none).status, 200, "same tenant, other key");
    for (key, who) in [(&b, "tenant-b"), (&solo, "tenantless key")] {
        let r = req(key, "GET", &format!("/v1/files/{file}"), &none);
        assert_eq!((r.status, r.code().as_str()), (404, "object_not_found"), "{who}: {}", r.text());
        let r = req(key, "DELETE", &format!("/v1/files/{file}"), &none);
        assert_eq!(r.status, 404, "{who} cannot delete it");
        assert_eq!(req(key, "GET", &format!("/v1/files/{file}/content"), &none).status, 404, "{who}: content");
    }
    // An id the gateway never saw created is nobody's.
    assert_eq!(req(&a1, "GET", "/v1/files/file-made-elsewhere", &none).status, 404);
    // Lists show only the caller's objects (the mock account holds every test's files).
    let ids = |key: &str| -> Vec<String> {
        let r = req(key, "GET", "/v1/files", &none);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&a2), vec![file.as_str()]);
    assert_eq!(ids(&b), vec![theirs.as_str()]);
    assert!(ids(&solo).is_empty());
    assert!(ids(MASTER).len() >= 2, "the operator sees the whole account");
    // A batch may only read its own tenant's file.
    let r = req(&b, "POST", "/v1/batches", &json!({"input_file_id": file, "endpoint": "/v1/chat/completions"}));
    assert_eq!((r.status, r.code().as_str()), (404, "object_not_found"), "{}", r.text());
    let r = req(&a2, "POST", "/v1/batches", &json!({"input_file_id": file, "endpoint": "/v1/chat/completions"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let batch = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(req(&b, "GET", &format!("/v1/batches/{batch}"), &none).status, 404);
    assert_eq!(req(&a1, "GET", &format!("/v1/batches/{batch}"), &none).status, 200);
    // Stored responses, plain and streamed, belong to the tenant whose key made them.
    let chat = json!({"model": "gpt-4o-mini", "input": "hi"});
    let resp = req(&a1, "POST", "/v1/responses", &chat).json()["id"].as_str().unwrap().to_string();
    assert_eq!(req(&b, "GET", &format!("/v1/responses/{resp}"), &none).status, 404);
    assert_eq!(req(&a2, "GET", &format!("/v1/responses/{resp}"), &none).status, 200);
    let r =
        req(&b, "POST", "/v1/responses", &json!({"model": "gpt-4o-mini", "input": "x", "previous_response_id": resp}));
    assert_eq!((r.status, r.code().as_str()), (404, "object_not_found"), "no chaining off another tenant's response");
    let streamed = req(&solo, "POST", "/v1/responses", &json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}));
    assert_eq!(streamed.status, 200);
    assert_eq!(req(&solo, "GET", "/v1/responses/resp_mock", &none).status, 200, "a streamed response is recorded too");
    assert_eq!(req(&a1, "GET", "/v1/responses/resp_mock", &none).status, 404);
}

/// A flood of bad admin credentials cannot grow the audit log without bound: identical denials
/// from one address fold into the first entry plus one counted summary per window.
#[test]
fn a_flood_of_bad_admin_credentials_is_one_audit_entry_and_a_count() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![], Some("[gateway.audit]\ncollapse_window_seconds = 1\n"));
    for i in 0..40 {
        let r = call(&gw, &format!("guess-{i}"), "GET", "keys", None, &[]);
        assert_eq!(r.status, 401);
    }
    let denials = |gw: &Gateway| -> Vec<serde_json::Value> {
        let audit = call(gw, MASTER, "GET", "audit?limit=500", None, &[]).json();
        audit["data"].as_array().unwrap().iter().filter(|e| e["actor"] == "unknown_credential").cloned().collect()
    };
    let first = denials(&gw);
    assert_eq!(first.len(), 1, "one entry for the window so far: {first:?}");
    assert_eq!(first[0]["source_ip"], "127.0.0.1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let all = denials(&gw);
        if let Some(summary) = all.iter().find(|e| e["repeated"].is_u64()) {
            assert_eq!(summary["repeated"], 39, "{summary}");
            assert_eq!(all.len(), 2);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no summary after the window: {all:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A streamed passthrough body over the limit is the client's 413, not a 502.
#[test]
fn an_oversized_streamed_body_is_413() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![("PRODEX_GATEWAY_MAX_BODY_BYTES", "4096".into())], None);
    let mut s = client::connect(gw.addr);
    let head = format!(
        "POST /v1/audio/transcriptions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\ncontent-type: multipart/form-data; boundary=b\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'a'; 2048];
    for _ in 0..4 {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if s.write_all(&framed).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let (r, _) = client::read_response(&mut s, false).unwrap();
    assert_eq!((r.status, r.code().as_str()), (413, "request_too_large"), "{}", r.text());
}

/// Budget pools are the tenant's own: a tenant-a admin naming tenant-b's `budget_id` gets a pool
/// of its own, cannot read tenant-b's spend, and cannot exhaust tenant-b's key.
#[test]
fn budget_pools_are_namespaced_by_tenant() {
    let mock = Mock::start();
    let policy = "[[gateway.admin_tokens]]\nname = \"a-admin\"\ntoken_env = \"A_ADMIN\"\nrole = \"admin\"\ntenant_id = \"tenant-a\"\n";
    let gw = gateway(&mock, vec![("A_ADMIN", "a-admin-token-0123456789".into())], Some(policy));
    let b = call(
        &gw,
        MASTER,
        "POST",
        "keys",
        Some(&json!({"name": "b-key", "tenant_id": "tenant-b", "budget_id": "shared", "request_budget": 2})),
        &[],
    );
    assert_eq!(b.status, 201, "{}", b.text());
    let a = call(
        &gw,
        "a-admin-token-0123456789",
        "POST",
        "keys",
        Some(&json!({"name": "a-key", "budget_id": "shared", "request_budget": 2})),
        &[],
    );
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(a.json()["tenant_id"], "tenant-a");
    let (a_token, b_token) =
        (a.json()["token"].as_str().unwrap().to_string(), b.json()["token"].as_str().unwrap().to_string());
    let chat = |t: &str| {
        gw.post_json(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {t}"))],
            &json!({"model": "gpt-4o-mini", "messages": []}),
        )
    };
    crate::support::admin::wait_for_key(&gw, &a_token);
    crate::support::admin::wait_for_key(&gw, &b_token);
    assert_eq!(chat(&a_token).status, 200);
    assert_eq!(chat(&a_token).status, 200);
    assert_eq!(chat(&a_token).status, 429, "tenant-a's pool of 2 requests is used up");
    assert_eq!(chat(&b_token).status, 200, "tenant-b's pool is untouched");
    let usage = call(&gw, "a-admin-token-0123456789", "GET", "usage", None, &[]);
    let doc = usage.json();
    let scopes: Vec<&str> =
        doc["data"].as_array().unwrap().iter().map(|u| u["limit_scope"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["budget:tenant-a/shared"], "{}", usage.text());
}

/// Anonymous traffic cannot fill the disk: refused credentials are counted in the metrics but
/// sampled into the ledger (one row a second at most).
#[test]
fn refused_credentials_are_counted_not_recorded_one_row_each() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![], None);
    for _ in 0..50 {
        let r = gw.post_json("/v1/chat/completions", &[("authorization", "Bearer pk-garbage")], &json!({"model": "m"}));
        assert_eq!(r.status, 401);
    }
    let rows = call(&gw, MASTER, "GET", "ledger?limit=1000&key=_unauthenticated", None, &[]);
    let n = rows.json()["data"].as_array().unwrap().len();
    assert!((1..=5).contains(&n), "{n} rows for 50 refusals");
    let metrics = call(&gw, MASTER, "GET", "metrics", None, &[]).text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("prodex_gateway_rejections_total") && l.contains("invalid_api_key"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(" 50"), "every refusal is counted: {line}");
}

/// Client-chosen model names on refused calls do not create metric series without bound.
#[test]
fn invented_model_names_do_not_grow_the_metrics() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![], None);
    let token =
        crate::support::admin::create_key(&gw, MASTER, &json!({"name": "m-key", "allowed_models": ["gpt-4o-mini"]}));
    let before = call(&gw, MASTER, "GET", "metrics", None, &[]).text().len();
    for i in 0..300 {
        let body = json!({"model": format!("invented-model-{i}"), "messages": []});
        assert_eq!(
            gw.post_json("/v1/chat/completions", &[("authorization", &format!("Bearer {token}"))], &body).status,
            403
        );
        assert_eq!(gw.post_json("/v1/chat/completions", &[("authorization", "Bearer pk-nope")], &body).status, 401);
    }
    let text = call(&gw, MASTER, "GET", "metrics", None, &[]).text();
    assert!(!text.contains("invented-model-"), "refused names became labels");
    assert!(text.contains("model=\"_refused\""), "{text}");
    assert!(text.len() < before + 8 * 1024, "metrics grew from {before} to {} bytes", text.len());
}

/// A request body has an overall deadline: trickling one byte at a time within the per-read
/// timeout no longer holds a connection open forever.
#[test]
fn a_trickled_body_hits_the_body_deadline() {
    let mock = Mock::start();
    let gw = gateway(&mock, vec![], Some("[gateway]\nbody_timeout_seconds = 2\n"));
    let mut s = client::connect(gw.addr);
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let t0 = std::time::Instant::now();
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..20 {
                if s.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        })
    };
    let (r, _) = client::read_response(&mut s, false).unwrap();
    assert_eq!((r.status, r.code().as_str()), (408, "request_timeout"), "{}", r.text());
    assert!(t0.elapsed() < std::time::Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert_eq!(mock.count(), 0);
    let _ = writer.join();
}
