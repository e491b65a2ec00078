//! Virtual keys on the data plane: each admission rule answers with its own error, admitted calls
//! are billed once, and the ledger (read from the redb file after the gateway stops) agrees.

use std::time::Duration;

use serde_json::json;

use prodex::core::ledger::{LedgerQuery, LedgerRow};
use prodex::store::redb::RedbStore;
use prodex::store::Store;

use crate::support::client::Response;
use crate::support::mock::{Mock, USAGE};
use crate::support::{Gateway, Opts};

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
}

fn call(gw: &Gateway, token: &str, model: &str) -> Response {
    gw.post_json("/v1/chat/completions", &[("authorization", &format!("Bearer {token}"))], &chat(model))
}

fn keyed_gateway<'a>(mock: &Mock, policy: &'a str, keys: &[(&'a str, &str)]) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some(policy),
        env: keys.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
        ..Opts::default()
    })
}

/// Stops the gateway (SIGTERM, drained) and reads every ledger row from its redb file.
fn ledger_of(mut gw: Gateway) -> (Vec<LedgerRow>, RedbStore, crate::support::TempDir) {
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(10)).success());
    let home = std::mem::replace(&mut gw.home, crate::support::TempDir::new("moved"));
    let store = RedbStore::open(&home.0.join("gateway-state.redb")).unwrap();
    let rows = store.ledger_page(&LedgerQuery::default(), None, 100_000).unwrap().rows;
    (rows, store, home)
}

const KEYS: &str = r#"
[[gateway.virtual_keys]]
name = "team-a-ci"
token_env = "TEAM_A"
tenant_id = "tenant-a"
allowed_models = ["gpt-4o-mini", "text-embedding-*"]
rpm_limit = 1000
tpm_limit = 1000000

[[gateway.virtual_keys]]
name = "expired"
token_env = "EXPIRED"
expires_at = "2001-01-01T00:00:00Z"

[[gateway.virtual_keys]]
name = "budgeted"
token_env = "BUDGETED"
budget_usd = 1.0

[[gateway.virtual_keys]]
name = "three-calls"
token_env = "THREE"
request_budget = 3
"#;

#[test]
fn each_admission_rule_answers_with_its_own_error() {
    let mock = Mock::start();
    let gw = keyed_gateway(
        &mock,
        KEYS,
        &[("TEAM_A", "pk-team-a"), ("EXPIRED", "pk-expired"), ("BUDGETED", "pk-budgeted"), ("THREE", "pk-three")],
    );
    let ok = call(&gw, "pk-team-a", "gpt-4o-mini");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("x-prodex-cost-usd"), Some("0.000006"), "8×0.15 + 3×0.075 + 7×0.60 µ$ = 5.625 → 6 µ$");
    assert_eq!(ok.header("x-ratelimit-limit-requests"), Some("1000"));
    assert_eq!(ok.header("x-ratelimit-remaining-requests"), Some("999"));
    assert_eq!(ok.header("x-ratelimit-limit-tokens"), Some("1000000"));
    assert!(ok.header("x-ratelimit-remaining-tokens").is_some() && ok.header("x-ratelimit-reset-requests").is_some());

    let r = call(&gw, "pk-unknown", "gpt-4o-mini");
    assert_eq!((r.status, r.code()), (401, "invalid_api_key".into()));
    let r = call(&gw, "pk-expired", "gpt-4o-mini");
    assert_eq!((r.status, r.code()), (401, "key_expired".into()));
    let r = call(&gw, "pk-team-a", "gpt-4o");
    assert_eq!((r.status, r.code()), (403, "model_not_allowed".into()));
    assert_eq!(r.json()["error"]["type"], "permission_error");
    let r = call(&gw, "pk-budgeted", "llama-local");
    assert_eq!((r.status, r.code()), (403, "model_not_priced".into()));
    for _ in 0..3 {
        assert_eq!(call(&gw, "pk-three", "llama-local").status, 200, "unbudgeted keys may call unpriced models");
    }
    let r = call(&gw, "pk-three", "llama-local");
    assert_eq!((r.status, r.code()), (429, "request_budget_exceeded".into()));
    assert_eq!(r.json()["error"]["type"], "insufficient_quota");
    assert_eq!(r.header("x-should-retry"), Some("false"));
    // Models are filtered by the allowlist.
    let r = gw.get_with("/v1/models", &[("authorization", "Bearer pk-team-a")]);
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["gpt-4o-mini", "text-embedding-3-small"]);
    let r = gw.get_with("/v1/models/gpt-4o", &[("authorization", "Bearer pk-team-a")]);
    assert_eq!((r.status, r.code()), (404, "model_not_found".into()));
    assert_eq!(mock.count(), 1 + 3 + 1, "refused calls never reach the upstream");

    let (rows, _store, _home) = ledger_of(gw);
    let codes: Vec<(String, u16, Option<String>)> =
        rows.iter().rev().map(|r| (r.key_name.clone(), r.status, r.error_code.clone())).collect();
    let expect = |k: &str, s: u16, c: Option<&str>| (k.to_string(), s, c.map(String::from));
    assert_eq!(
        codes[..4],
        [
            expect("team-a-ci", 200, None),
            expect("_unauthenticated", 401, Some("invalid_api_key")),
            expect("expired", 401, Some("key_expired")),
            expect("team-a-ci", 403, Some("model_not_allowed")),
        ]
    );
    let first =
        rows.iter().find(|r| r.key_name == "team-a-ci" && r.status == 200 && r.route == "chat.completions").unwrap();
    let (prompt, completion, cached, reasoning) = USAGE;
    assert_eq!(
        (first.input_tokens, first.cached_input_tokens, first.output_tokens, first.reasoning_tokens),
        (prompt, cached, completion, reasoning)
    );
    assert_eq!((first.cost_microusd, first.usage_source.as_str()), (Some(6), "provider"));
    assert_eq!(first.tenant_id.as_deref(), Some("tenant-a"), "rows carry the key's scope");
    assert!(first.key_id.as_ref().is_some_and(|id| id.len() == 36));
    let unpriced = rows.iter().find(|r| r.key_name == "three-calls" && r.status == 200).unwrap();
    assert_eq!(unpriced.cost_microusd, None, "unpriced calls are never billed $0 silently");
    assert_eq!(rows.len(), 1 + 1 + 1 + 1 + 1 + 3 + 1 + 2, "every call has a row, refused ones too");
}

#[test]
fn rate_and_parallel_limits_give_retryable_429s() {
    let mock = Mock::start();
    let policy = r#"
[[gateway.virtual_keys]]
name = "rpm"
token_env = "RPM"
rpm_limit = 2

[[gateway.virtual_keys]]
name = "tpm"
token_env = "TPM"
tpm_limit = 100

[[gateway.virtual_keys]]
name = "solo"
token_env = "SOLO"
max_parallel_requests = 1
"#;
    let gw = keyed_gateway(&mock, policy, &[("RPM", "pk-rpm"), ("TPM", "pk-tpm"), ("SOLO", "pk-solo")]);
    assert_eq!(call(&gw, "pk-rpm", "gpt-4o-mini").status, 200);
    assert_eq!(call(&gw, "pk-rpm", "gpt-4o-mini").status, 200);
    let r = call(&gw, "pk-rpm", "gpt-4o-mini");
    assert_eq!((r.status, r.code()), (429, "rpm_limit_exceeded".into()));
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));

    assert_eq!(call(&gw, "pk-tpm", "gpt-4o-mini").status, 200, "18 tokens used of 100");
    let big = json!({"model": "gpt-4o-mini", "max_tokens": 90, "messages": []});
    let r = gw.post_json("/v1/chat/completions", &[("authorization", "Bearer pk-tpm")], &big);
    assert_eq!((r.status, r.code()), (429, "tpm_limit_exceeded".into()));

    let addr = gw.addr;
    let slow = std::thread::spawn(move || {
        let body = chat("gpt-4o-mini").to_string();
        crate::support::client::request(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", "Bearer pk-solo"), ("x-mock-delay-ms", "1500")],
            body.as_bytes(),
        )
        .status
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mock.requests().iter().all(|s| s.header("x-mock-delay-ms").is_none()) {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = call(&gw, "pk-solo", "gpt-4o-mini");
    assert_eq!((r.status, r.code()), (429, "parallel_limit_exceeded".into()));
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(call(&gw, "pk-solo", "gpt-4o-mini").status, 200, "the finished call released its slot");
}

#[test]
fn upstream_faults_are_recorded_and_release_their_reservation() {
    let mock = Mock::start();
    let policy = "[[gateway.virtual_keys]]\nname = \"solo\"\ntoken_env = \"SOLO\"\nmax_parallel_requests = 1\nbudget_usd = 1.0\n\n[gateway]\nupstream_idle_timeout_seconds = 1\n";
    let gw = keyed_gateway(&mock, policy, &[("SOLO", "pk-solo")]);
    type Fault = (&'static [(&'static str, &'static str)], u16, &'static str);
    let faults: [Fault; 5] = [
        (&[("x-mock-fault", "malformed-json")], 502, "upstream_invalid_response"),
        (&[("x-mock-status", "429")], 429, "upstream_error"),
        (&[("x-mock-status", "500")], 500, "upstream_error"),
        (&[("x-mock-fault", "hang")], 504, "upstream_timeout"),
        (&[("x-mock-fault", "close-before-headers")], 502, "upstream_invalid_response"),
    ];
    for (headers, status, code) in faults {
        let mut h = vec![("authorization", "Bearer pk-solo")];
        h.extend_from_slice(headers);
        let r = gw.post_json("/v1/chat/completions", &h, &chat("gpt-4o-mini"));
        assert_eq!(r.status, status, "{headers:?}: {}", r.text());
        let ok = call(&gw, "pk-solo", "gpt-4o-mini");
        assert_eq!(ok.status, 200, "after {code} the parallel slot must be free again: {}", ok.text());
    }
    // A stream the upstream cuts mid-way.
    let stream = json!({"model": "gpt-4o-mini", "stream": true, "max_tokens": 1, "messages": []});
    let _ = crate::support::client::try_request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer pk-solo"), ("x-mock-fault", "reset-mid-stream")],
        stream.to_string().as_bytes(),
    );
    assert_eq!(call(&gw, "pk-solo", "gpt-4o-mini").status, 200);
    let (rows, store, _home) = ledger_of(gw);
    let codes: Vec<Option<&str>> = rows.iter().rev().map(|r| r.error_code.as_deref()).collect();
    assert_eq!(
        codes,
        [
            Some("upstream_invalid_response"),
            None,
            Some("upstream_error"),
            None,
            Some("upstream_error"),
            None,
            Some("upstream_timeout"),
            None,
            Some("upstream_invalid_response"),
            None,
            Some("upstream_stream_broken"),
            None,
        ]
    );
    let cut = &rows[1];
    assert_eq!(
        (cut.usage_source.as_str(), cut.stream),
        ("partial", true),
        "a cut stream is billed for what was generated"
    );
    assert!(cut.output_tokens > 0);
    // usage equals the ledger's sums
    let key_id = rows[0].key_id.clone().unwrap();
    let limits = prodex::core::keys::Limits {
        budget_microusd: Some(1_000_000),
        max_parallel_requests: Some(1),
        ..Default::default()
    };
    let c = store.counters(&format!("key:{key_id}"), &limits, prodex::clock::unix_ms()).unwrap();
    let billed: u64 = rows.iter().filter_map(|r| r.cost_microusd).sum();
    assert_eq!(c.spend_microusd, billed);
    assert_eq!(c.requests, rows.iter().filter(|r| r.usage_source != "none").count() as u64);
}

#[test]
fn streaming_calls_are_metered_with_provider_usage_either_way() {
    let mock = Mock::start();
    let gw = keyed_gateway(&mock, "[[gateway.virtual_keys]]\nname = \"s\"\ntoken_env = \"S\"\n", &[("S", "pk-s")]);
    for include in [false, true] {
        let body = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": include}, "messages": []});
        let r = gw.post_json("/v1/chat/completions", &[("authorization", "Bearer pk-s")], &body);
        assert_eq!(r.status, 200);
        assert_eq!(r.text().contains("\"usage\":{"), include, "the client sees exactly what it asked for");
        assert!(r.header("x-prodex-cost-usd").is_none(), "streams carry no cost header");
    }
    let (rows, _store, _home) = ledger_of(gw);
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(
            (row.input_tokens, row.output_tokens, row.usage_source.as_str(), row.cost_microusd),
            (11, 7, "provider", Some(6))
        );
    }
}

#[test]
fn racing_calls_never_overrun_a_budget() {
    // R2: every call really costs 6 µ$ (mock usage at gpt-4o-mini prices) and reserves a little
    // more; a 60 µ$ budget fits 10 calls, so at most 10 of 200 simultaneous calls may be admitted.
    let mock = Mock::start();
    let gw = keyed_gateway(
        &mock,
        "[[gateway.virtual_keys]]\nname = \"b\"\ntoken_env = \"B\"\nbudget_usd = 0.00006\n",
        &[("B", "pk-b")],
    );
    let addr = gw.addr;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 7, "messages": []}).to_string();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let (body, barrier) = (body.clone(), std::sync::Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                crate::support::client::request(
                    addr,
                    "POST",
                    "/v1/chat/completions",
                    &[("authorization", "Bearer pk-b"), ("x-mock-delay-ms", "300")],
                    body.as_bytes(),
                )
            })
        })
        .collect();
    let responses: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let admitted = responses.iter().filter(|r| r.status == 200).count();
    assert!((1..=10).contains(&admitted), "admitted {admitted}");
    assert!(responses.iter().filter(|r| r.status != 200).all(|r| r.code() == "budget_exceeded"));
    assert_eq!(mock.count(), admitted);
    let (rows, _store, _home) = ledger_of(gw);
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().filter_map(|r| r.cost_microusd).sum::<u64>() <= 60);
}

#[test]
fn kill_9_under_load_loses_no_completed_call() {
    // R1: with durability = "commit", a client only sees a complete response once its row is
    // durable; after kill -9 every such call has exactly one row and usage equals the ledger.
    let mock = Mock::start();
    let gw = keyed_gateway(
        &mock,
        "[[gateway.virtual_keys]]\nname = \"load\"\ntoken_env = \"LOAD\"\nbudget_usd = 100.0\n",
        &[("LOAD", "pk-load")],
    );
    let addr = gw.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let completed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let (stop, completed) = (std::sync::Arc::clone(&stop), std::sync::Arc::clone(&completed));
            std::thread::spawn(move || {
                let body = chat("gpt-4o-mini").to_string();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 5_000 {
                    n += 1;
                    let stream = i % 2 == 0;
                    let body = if stream {
                        json!({"model": "gpt-4o-mini", "stream": true, "max_tokens": 1, "messages": []}).to_string()
                    } else {
                        body.clone()
                    };
                    let Ok(r) = crate::support::client::try_request(
                        addr,
                        "POST",
                        "/v1/chat/completions",
                        &[("authorization", "Bearer pk-load")],
                        body.as_bytes(),
                    ) else {
                        continue;
                    };
                    let complete = r.status == 200 && (!stream || r.text().ends_with("data: [DONE]\n\n"));
                    if complete {
                        completed.lock().unwrap().push(r.header("x-prodex-call-id").unwrap().to_string());
                    }
                }
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while completed.lock().unwrap().len() < 300 {
        assert!(std::time::Instant::now() < deadline, "load did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut gw = gw;
    gw.signal(libc::SIGKILL);
    gw.wait_exit(Duration::from_secs(5));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let home = std::mem::replace(&mut gw.home, crate::support::TempDir::new("moved"));
    drop(gw);
    let store = RedbStore::open(&home.0.join("gateway-state.redb")).unwrap();
    let rows = store.ledger_page(&LedgerQuery::default(), None, 1_000_000).unwrap().rows;
    let mut ids: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in &rows {
        *ids.entry(r.call_id.as_str()).or_default() += 1;
    }
    let completed = completed.lock().unwrap();
    for id in completed.iter() {
        assert_eq!(ids.get(id.as_str()), Some(&1), "completed call {id} must have exactly one row");
    }
    let key_id = rows[0].key_id.clone().unwrap();
    let limits = prodex::core::keys::Limits { budget_microusd: Some(100_000_000), ..Default::default() };
    let c = store.counters(&format!("key:{key_id}"), &limits, prodex::clock::unix_ms()).unwrap();
    assert_eq!(c.spend_microusd, rows.iter().filter_map(|r| r.cost_microusd).sum::<u64>(), "usage equals the ledger");
    assert_eq!(c.requests, rows.iter().filter(|r| r.usage_source != "none").count() as u64);
    eprintln!("kill -9 after {} completed calls; {} rows durable", completed.len(), rows.len());
}

#[test]
fn two_gateways_sharing_postgres_never_overrun_a_budget() {
    two_gateways_share_one_budget("postgres", "PRODEX_GATEWAY_POSTGRES_URL", &crate::store::fresh_postgres_db());
}

#[test]
fn two_gateways_sharing_redis_never_overrun_a_budget() {
    two_gateways_share_one_budget("redis", "PRODEX_GATEWAY_REDIS_URL", &crate::store::fresh_redis_db());
}

fn two_gateways_share_one_budget(backend: &str, url_var: &'static str, url: &str) {
    // R2 across processes: two gateway nodes, one shared store, one budget that fits 10 calls.
    let mock = Mock::start();
    let policy = "[[gateway.virtual_keys]]\nname = \"b\"\ntoken_env = \"B\"\nbudget_usd = 0.00006\n";
    let env = || {
        vec![
            ("B", "pk-b".to_string()),
            ("PRODEX_GATEWAY_STATE_BACKEND", backend.to_string()),
            (url_var, url.to_string()),
        ]
    };
    let a =
        Gateway::start(Opts { base_url: Some(mock.base_url()), policy: Some(policy), env: env(), ..Opts::default() });
    let b =
        Gateway::start(Opts { base_url: Some(mock.base_url()), policy: Some(policy), env: env(), ..Opts::default() });
    assert_eq!(a.get("/readyz").json()["state_backend"], backend);
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 7, "messages": []}).to_string();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let (body, barrier) = (body.clone(), std::sync::Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                crate::support::client::request(
                    addr,
                    "POST",
                    "/v1/chat/completions",
                    &[("authorization", "Bearer pk-b"), ("x-mock-delay-ms", "300")],
                    body.as_bytes(),
                )
            })
        })
        .collect();
    let responses: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let admitted = responses.iter().filter(|r| r.status == 200).count();
    assert!((1..=10).contains(&admitted), "admitted {admitted} across two nodes");
    let refused: Vec<String> = responses.iter().filter(|r| r.status != 200).map(Response::code).collect();
    assert!(refused.iter().all(|c| c == "budget_exceeded"), "{refused:?}");
    assert_eq!(mock.count(), admitted);
    let store: Box<dyn Store> = if backend == "postgres" {
        Box::new(prodex::store::postgres::PgStore::open(url, 2).unwrap())
    } else {
        Box::new(prodex::store::redis::RedisStore::open(url, 2).unwrap())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = store.ledger_page(&LedgerQuery::default(), None, 1_000).unwrap().rows;
        if rows.len() == 200 {
            assert!(rows.iter().filter_map(|r| r.cost_microusd).sum::<u64>() <= 60);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} rows", rows.len());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn redis_outage_gives_503_then_recovers_without_restart() {
    let mut server = crate::support::servers::RedisServer::start();
    let url = server.url();
    backend_outage("redis", "PRODEX_GATEWAY_REDIS_URL", &url, &mut server);
}

#[test]
fn postgres_outage_gives_503_then_recovers_without_restart() {
    let mut server = crate::support::servers::PgServer::start();
    let url = server.url();
    backend_outage("postgres", "PRODEX_GATEWAY_POSTGRES_URL", &url, &mut server);
}

/// R4: with the state backend down, budgeted calls get 503 `state_unavailable` (never admitted
/// unmetered) and `/readyz` is 503; once it is back, the gateway recovers within seconds, no restart,
/// and nothing is counted twice.
fn backend_outage(backend: &str, url_var: &'static str, url: &str, server: &mut dyn crate::support::servers::Outage) {
    let mock = Mock::start();
    let policy = "[[gateway.virtual_keys]]\nname = \"o\"\ntoken_env = \"O\"\nbudget_usd = 10.0\n";
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some(policy),
        env: vec![("O", "pk-o".into()), ("PRODEX_GATEWAY_STATE_BACKEND", backend.into()), (url_var, url.to_string())],
        ..Opts::default()
    });
    let mut ok_before = 0;
    for _ in 0..5 {
        assert_eq!(call(&gw, "pk-o", "gpt-4o-mini").status, 200);
        ok_before += 1;
    }
    server.stop();
    let r = call(&gw, "pk-o", "gpt-4o-mini");
    assert_eq!((r.status, r.code()), (503, "state_unavailable".into()), "{}", r.text());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.get("/readyz").status != 503 {
        assert!(std::time::Instant::now() < deadline, "/readyz never turned 503");
        std::thread::sleep(Duration::from_millis(50));
    }
    let upstream_calls = mock.count();
    for _ in 0..5 {
        assert_eq!(call(&gw, "pk-o", "gpt-4o-mini").status, 503);
    }
    assert_eq!(mock.count(), upstream_calls, "nothing is admitted unmetered while the state is down");
    server.resume();
    let back = std::time::Instant::now();
    loop {
        if gw.get("/readyz").status == 200 && call(&gw, "pk-o", "gpt-4o-mini").status == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "no recovery within 5 s of the backend returning");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok_after = 1 + (0..3).filter(|_| call(&gw, "pk-o", "gpt-4o-mini").status == 200).count();
    let store: Box<dyn Store> = if backend == "postgres" {
        Box::new(prodex::store::postgres::PgStore::open(url, 2).unwrap())
    } else {
        Box::new(prodex::store::redis::RedisStore::open(url, 2).unwrap())
    };
    let rows = store.ledger_page(&LedgerQuery::default(), None, 1_000).unwrap().rows;
    let admitted: Vec<&LedgerRow> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(admitted.len(), ok_before + ok_after, "every admitted call recorded once");
    let key_id = admitted[0].key_id.clone().unwrap();
    let limits = prodex::core::keys::Limits { budget_microusd: Some(10_000_000), ..Default::default() };
    let c = store.counters(&format!("key:{key_id}"), &limits, prodex::clock::unix_ms()).unwrap();
    assert_eq!(
        c.spend_microusd,
        admitted.iter().filter_map(|r| r.cost_microusd).sum::<u64>(),
        "nothing double-counted"
    );
    assert_eq!(c.in_flight, 0);
}
