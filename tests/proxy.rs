use serde_json::json;

use crate::support::client;
use crate::support::mock::{Mock, USAGE};
use crate::support::{Gateway, Opts};

fn chat() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn chat_completion_passes_through_with_call_headers() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    for path in ["/v1/chat/completions", "/chat/completions"] {
        let r = gw.post_json(path, &[], &chat());
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["usage"]["prompt_tokens"], USAGE.0);
        let id = r.header("x-prodex-call-id").unwrap();
        assert!(id.starts_with("prodex-") && id.len() == 43, "{id}");
        let overhead: f64 = r.header("x-prodex-overhead-ms").unwrap().parse().unwrap();
        assert!(overhead >= 0.0);
        assert_eq!(r.header("x-request-id"), Some("req-mock"), "upstream headers are relayed");
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].json(), chat(), "non-streaming bodies are forwarded unchanged");
    let log = gw.wait_for_log("route=chat.completions");
    assert!(
        log.contains("input_tokens=11 cached_input_tokens=3 cache_write_input_tokens=0 output_tokens=7 reasoning_tokens=2 usage_source=provider"),
        "{log}"
    );
    // F5: the text line names the request too, and has no sentinel numbers.
    let line = log.lines().find(|l| l.contains("route=chat.completions")).unwrap();
    assert!(line.contains(" method=POST path=/v1/chat/completions peer=127.0.0.1:"), "{line}");
    assert!(line.contains(" attempts=1 fallback_error=-") && !line.contains("=-1"), "{line}");
}

#[test]
fn responses_embeddings_and_models() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let r = gw.post_json("/v1/responses", &[], &json!({"model": "gpt-4o-mini", "input": "hi"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["usage"]["input_tokens"], USAGE.0);
    let r = gw.post_json("/v1/embeddings", &[], &json!({"model": "text-embedding-3-small", "input": "hi"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["embedding"][1], 0.2);
    let r = gw.get("/v1/models");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["id"], "gpt-4o-mini");
    let r = gw.get("/models/gpt-4o-mini?x=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "gpt-4o-mini");
    assert_eq!(mock.requests().last().unwrap().path, "/v1/models/gpt-4o-mini?x=1", "query strings are forwarded");
    let log = gw.wait_for_log("route=embeddings");
    assert!(
        log.contains(
            "route=responses model=gpt-4o-mini provider=openai stream=false status=200 error=- input_tokens=11"
        ),
        "{log}"
    );
}

#[test]
fn multipart_passthrough_is_streamed_to_upstream() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let boundary = "XyZ";
    let mut body = format!("--{boundary}\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\ncontent-type: audio/wav\r\n\r\n").into_bytes();
    body.extend((0..300_000u32).map(|i| (i % 251) as u8));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let r = client::request(gw.addr, "POST", "/v1/audio/transcriptions", &[("content-type", &ct)], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_len"], body.len());
    let seen = mock.requests();
    assert_eq!(seen[0].body, body, "the upstream got the exact bytes");
    assert_eq!(seen[0].header("content-type"), Some(ct.as_str()));
}

#[test]
fn master_token_is_required_in_any_sdk_header_and_never_forwarded() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", "master-secret-1".into()), ("OPENAI_API_KEY", "sk-provider-1".into())],
        ..Opts::default()
    });
    let r = gw.post_json("/v1/chat/completions", &[], &chat());
    assert_eq!((r.status, r.code()), (401, "invalid_api_key".to_string()));
    assert!(r.header("x-prodex-call-id").is_some(), "errors carry the call id too");
    let r = gw.post_json("/v1/chat/completions", &[("authorization", "Bearer wrong")], &chat());
    assert_eq!(r.status, 401);
    for (name, value) in [
        ("authorization", "Bearer master-secret-1"),
        ("x-api-key", "master-secret-1"),
        ("api-key", "master-secret-1"),
        ("x-goog-api-key", "master-secret-1"),
    ] {
        let r = gw.post_json("/v1/chat/completions", &[(name, value)], &chat());
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    assert_eq!(mock.count(), 4, "rejected calls never reach the upstream");
    for seen in mock.requests() {
        assert_eq!(seen.header("authorization"), Some("Bearer sk-provider-1"));
        for h in ["x-api-key", "api-key", "x-goog-api-key"] {
            assert_eq!(seen.header(h), None, "client credential header {h} was forwarded");
        }
    }
    let log = gw.wait_for_log("key=_gateway");
    assert!(!log.contains("master-secret-1") && !log.contains("sk-provider-1"), "a secret reached the log");
}

#[test]
fn key_pool_rotates_past_a_429_before_the_first_byte() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("OPENAI_API_KEYS", "k1,k2".into())],
        ..Opts::default()
    });
    for _ in 0..4 {
        let r = gw.post_json("/v1/chat/completions", &[("x-mock-429-key", "k1")], &chat());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let keys: Vec<String> = mock.requests().iter().map(|s| s.header("authorization").unwrap().to_string()).collect();
    assert!(keys.iter().filter(|k| *k == "Bearer k2").count() == 4, "{keys:?}");
    assert!(keys.iter().all(|k| k == "Bearer k1" || k == "Bearer k2"));
}

#[test]
fn upstream_faults_map_to_openai_errors() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some("[gateway]\nupstream_idle_timeout_seconds = 1\n"),
        ..Opts::default()
    });
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-fault", "malformed-json")], &chat());
    assert_eq!((r.status, r.code()), (502, "upstream_invalid_response".to_string()));
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-status", "400")], &chat());
    assert_eq!(r.status, 400, "upstream 4xx passes through");
    assert_eq!(r.json()["error"]["message"], "mock error 400", "with its body");
    let before = mock.count();
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-status", "503")], &chat());
    assert_eq!(r.status, 503, "5xx passes through after the retries");
    assert_eq!(mock.count() - before, 3, "at most 3 attempts");
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-fault", "hang")], &chat());
    assert_eq!((r.status, r.code()), (504, "upstream_timeout".to_string()));
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-fault", "close-before-headers")], &chat());
    assert_eq!(r.status, 502, "{}", r.text());

    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let gw2 = Gateway::start(Opts { base_url: Some(format!("http://127.0.0.1:{port}/v1")), ..Opts::default() });
    let r = gw2.post_json("/v1/chat/completions", &[], &chat());
    assert_eq!((r.status, r.code()), (502, "upstream_unreachable".to_string()));
}

#[test]
fn bad_requests_get_named_4xx_errors() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let r = client::request(gw.addr, "POST", "/v1/chat/completions", &[], b"{nope");
    assert_eq!((r.status, r.code()), (400, "invalid_json".to_string()));
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = client::request(gw.addr, "POST", "/v1/chat/completions", &[], b"[1]");
    assert_eq!((r.status, r.code()), (400, "invalid_json".to_string()));
    let r = gw.post_json("/v1/chat/completions", &[], &json!({"messages": []}));
    assert_eq!((r.status, r.code()), (400, "missing_parameter".to_string()));
    assert_eq!(r.json()["error"]["param"], "model");
    let r = gw.get("/v1/chat/completions");
    assert_eq!((r.status, r.code()), (405, "method_not_allowed".to_string()));
    assert_eq!(r.header("allow"), Some("POST"));
    let r = gw.get("/v1/unknown");
    assert_eq!((r.status, r.code()), (404, "route_not_found".to_string()));
    assert_eq!(mock.count(), 0);
}
