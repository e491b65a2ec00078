//! The built-in `mock` provider end to end (`--provider mock`, no account, no upstream): every
//! route answered in each client's dialect, metered and priced like a real provider's.

use serde_json::json;

use crate::support::admin::{create_key, row_of};
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-token-mockprovider-0123456789";

fn gateway() -> Gateway {
    Gateway::start(Opts {
        args: vec!["--provider", "mock"],
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into())],
        ..Opts::default()
    })
}

#[test]
fn every_route_answers_and_is_billed_with_no_account() {
    let gw = gateway();
    let token = create_key(&gw, MASTER, &json!({"name": "try", "budget_usd": 1.0, "allowed_models": ["mock-*"]}));
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let r = gw.post_json(
        "/v1/chat/completions",
        &h,
        &json!({"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(text.starts_with("This is the mock provider"), "{text}");
    let row = row_of(&gw, MASTER, &r);
    assert_eq!((row["provider"].as_str(), row["usage_source"].as_str()), (Some("mock"), Some("provider")));
    assert!(row["cost_microusd"].as_u64().unwrap() > 0, "mock-chat is priced: {row}");
    // The same request, the same answer.
    let again = gw.post_json(
        "/v1/chat/completions",
        &h,
        &json!({"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(again.json()["choices"][0]["message"]["content"], text.as_str());
    // Streams, paced by x-mock-interval-ms, end the OpenAI way.
    let t0 = std::time::Instant::now();
    let body = json!({"model": "mock-chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let s = gw.post_json("/v1/chat/completions", &[h[0], ("x-mock-interval-ms", "30")], &body);
    let words = text.split(' ').count() as u32;
    assert!(t0.elapsed() >= std::time::Duration::from_millis(30) * (words - 1), "paced word by word");
    assert!(s.text().ends_with("data: [DONE]\n\n"), "{}", s.text());
    // Responses, Anthropic messages, embeddings, models, count_tokens.
    let r = gw.post_json("/v1/responses", &h, &json!({"model": "mock-chat", "input": "hi"}));
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("completed")));
    let r = gw.post_json(
        "/v1/messages",
        &[("x-api-key", token.as_str())],
        &json!({"model": "mock-chat", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!((r.status, r.json()["type"].as_str()), (200, Some("message")));
    let r = gw.post_json(
        "/v1/embeddings",
        &h,
        &json!({"model": "mock-embed", "input": ["a", "b"], "encoding_format": "float"}),
    );
    assert_eq!(r.json()["data"][1]["embedding"].as_array().unwrap().len(), 8);
    let ids: Vec<String> = gw.get_with("/v1/models", &h).json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["mock-chat", "mock-embed"]);
    let c = gw.post_json(
        "/v1/messages/count_tokens",
        &[("x-api-key", token.as_str())],
        &json!({"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(c.header("x-prodex-token-count"), Some("estimated"));
    // A tool is called, then its result answered.
    let tools = json!([{"type": "function", "function": {"name": "get_weather"}}]);
    let r = gw.post_json(
        "/v1/chat/completions",
        &h,
        &json!({"model": "mock-chat", "tools": tools, "messages": [{"role": "user", "content": "weather?"}]}),
    );
    assert_eq!(r.json()["choices"][0]["finish_reason"], "tool_calls");
    // The budget holds like anywhere: a model outside the allowlist is refused.
    let r = gw.post_json(
        "/v1/chat/completions",
        &h,
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 403);
}
