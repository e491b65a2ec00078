//! The Anthropic provider end to end: the real binary with `--provider anthropic` and
//! `ANTHROPIC_API_KEY` in front of the mock's Anthropic dialect, driven over TCP — OpenAI clients
//! translated both ways, `/v1/messages` and its count passed through byte for byte, cache reads
//! and writes billed at their own prices.

use serde_json::{json, Value};

use crate::support::admin::row_of;
use crate::support::client::Response;
use crate::support::mock::{anthropic as mock_anthropic, Mock};
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-token-anthropic-0123456789";

fn bridge(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(format!("http://{}/anthropic/v1", mock.addr)),
        args: vec!["--provider", "anthropic"],
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into()), ("ANTHROPIC_API_KEY", "ak-one".into())],
        ..Opts::default()
    })
}

fn post(gw: &Gateway, path: &str, body: &Value, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {MASTER}");
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(extra);
    gw.post_json(path, &h, body)
}

/// The `data:` payloads of an SSE body (frames with or without an `event:` line).
fn datas(r: &Response) -> Vec<String> {
    r.text()
        .split("\n\n")
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect()
}

fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]})
}

#[test]
fn chat_completions_are_translated_and_cache_writes_billed_at_their_price() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    let r = post(&gw, "/v1/chat/completions", &hi("claude-sonnet-4-5"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from claude");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // Anthropic's input excludes cache tokens; OpenAI's prompt_tokens includes them.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
               "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 3},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.path, "/anthropic/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("ak-one"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert!(seen.header("authorization").is_none(), "the master token never reaches the provider");
    let sent = seen.json();
    assert_eq!(sent["max_tokens"], 64_000, "the required max_tokens from the catalog");
    assert_eq!(sent["system"], json!([{"type": "text", "text": "Be terse."}]));
    // 5 fresh × $3 + 3 read × $0.30 + 2 five-minute writes × $3.75 + 1 one-hour write × $6 + 7 out × $15,
    // per million: 134.4 micro-USD, rounded up.
    assert_eq!(r.header("x-prodex-cost-usd"), Some("0.000135"));
    let row = row_of(&gw, MASTER, &r);
    assert_eq!((row["provider"].as_str(), row["route"].as_str()), (Some("anthropic"), Some("chat.completions")));
    assert_eq!(
        (row["input_tokens"].as_u64(), row["cached_input_tokens"].as_u64(), row["cache_write_input_tokens"].as_u64()),
        (Some(11), Some(3), Some(3))
    );
    assert_eq!(row["cost_microusd"].as_u64(), Some(135));
    let metrics = crate::support::admin::get(&gw, MASTER, "metrics").text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with(r#"prodex_gateway_tokens_total{type="cache_write_input",model="claude-sonnet-4-5""#));
    assert!(line.is_some_and(|l| l.ends_with(" 3")), "{metrics}");
}

#[test]
fn chat_streams_carry_parallel_tool_calls_with_their_own_indexes() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    let mut body = hi("claude-sonnet-4-5");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather"}},
                           {"type": "function", "function": {"name": "get_time"}}]);
    let r = post(&gw, "/v1/chat/completions", &body, &[("x-mock-anthropic", "tools")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let frames = datas(&r);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = frames[..frames.len() - 1].iter().map(|f| serde_json::from_str(f).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Checking.");
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0]["index"].as_u64(), calls[0]["id"].as_str()), (Some(0), Some("toolu_01A")));
    assert_eq!((calls[1]["index"].as_u64(), calls[1]["id"].as_str()), (Some(1), Some("toolu_01B")));
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Paris"}"#, "the split input_json_delta joined");
    let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finish, ["tool_calls"]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(11), Some(7)));
    let row = row_of(&gw, MASTER, &r);
    assert_eq!((row["stream"].as_bool(), row["usage_source"].as_str()), (Some(true), Some("provider")));
    assert_eq!(row["cache_write_input_tokens"].as_u64(), Some(3));
}

#[test]
fn responses_stream_the_full_lifecycle_from_anthropic() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    let body = json!({"model": "claude-haiku-4-5", "input": "hi", "instructions": "Be terse.", "stream": true});
    let r = post(&gw, "/v1/responses", &body, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let events: Vec<Value> = datas(&r).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert_eq!(kinds.last(), Some(&"response.completed"));
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from claude");
    assert_eq!(events.last().unwrap()["response"]["usage"]["input_tokens"], 11);
    assert_eq!(mock.requests().pop().unwrap().json()["max_tokens"], 64_000);
}

#[test]
fn signed_thinking_round_trips_for_a_chat_client_and_its_loss_is_refused() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    let tools = json!([{"type": "function", "function": {"name": "get_weather"}},
                       {"type": "function", "function": {"name": "get_time"}}]);
    let mut body = hi("claude-sonnet-4-5");
    body["tools"] = tools.clone();
    body["reasoning_effort"] = json!("low");
    let r = post(&gw, "/v1/chat/completions", &body, &[("x-mock-anthropic", "tools")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let message = r.json()["choices"][0]["message"].clone();
    assert_eq!(message["reasoning_content"], mock_anthropic::THINKING);
    assert_eq!(mock.requests().pop().unwrap().json()["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    let mut next = body.clone();
    let results: Vec<Value> = message["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!({"role": "tool", "tool_call_id": c["id"], "content": "ok"}))
        .collect();
    let mut history = vec![json!({"role": "user", "content": "hi"}), message.clone()];
    history.extend(results);
    next["messages"] = json!(history);
    let done = post(&gw, "/v1/chat/completions", &next, &[]);
    assert_eq!(done.status, 200, "the mock checks the signature: {}", done.text());
    let replayed = mock.requests().pop().unwrap().json();
    assert_eq!(replayed["messages"][1]["content"][0]["signature"], mock_anthropic::SIGNATURE);
    // A client that drops the blocks is told which field to echo; the provider is not called.
    let before = mock.count();
    history[1].as_object_mut().unwrap().remove("thinking_blocks");
    next["messages"] = json!(history);
    let refused = post(&gw, "/v1/chat/completions", &next, &[]);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["error"]["param"], "messages[].thinking_blocks");
    assert_eq!(mock.count(), before);
}

#[test]
fn what_anthropic_cannot_honour_is_refused_before_it_is_called() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"seed": 1}), "seed"),
        (json!({"logit_bias": {"1": 2}}), "logit_bias"),
        (json!({"response_format": {"type": "json_object"}}), "response_format"),
        (json!({"reasoning_effort": "high", "temperature": 0.3}), "temperature"),
    ] {
        let mut body = hi("claude-sonnet-4-5");
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let r = post(&gw, "/v1/chat/completions", &body, &[]);
        assert_eq!(r.status, 400, "{extra}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{extra}");
    }
    let r = post(&gw, "/v1/embeddings", &json!({"model": "claude-sonnet-4-5", "input": "x"}), &[]);
    assert_eq!((r.status, r.code()), (400, "unsupported_route".to_string()), "Anthropic has no embeddings");
    assert_eq!(mock.count(), 0);
}

#[test]
fn anthropic_errors_become_openai_errors_and_529_is_retried_before_the_first_byte() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    let r = post(&gw, "/v1/chat/completions", &hi("claude-sonnet-4-5"), &[("x-mock-status", "529")]);
    assert_eq!(r.status, 503, "{}", r.text());
    let e = r.json()["error"].clone();
    assert_eq!(
        (e["code"].as_str(), e["message"].as_str()),
        (Some("upstream_overloaded"), Some("anthropic: Overloaded"))
    );
    assert_eq!(mock.count(), 3, "retried before the first byte");
    let r = post(&gw, "/v1/chat/completions", &hi("claude-sonnet-4-5"), &[("x-mock-status", "400")]);
    assert_eq!((r.status, r.json()["error"]["message"].as_str()), (400, Some("anthropic: mock anthropic error 400")));
    // In-stream: an error event ends the stream with an error chunk and no [DONE].
    let mut body = hi("claude-sonnet-4-5");
    body["stream"] = json!(true);
    let r = post(&gw, "/v1/chat/completions", &body, &[("x-mock-anthropic", "stream-error")]);
    let frames = datas(&r);
    assert!(frames.last().unwrap().contains("upstream_overloaded"), "{frames:?}");
    assert!(!frames.contains(&"[DONE]".to_string()));
    let r = post(&gw, "/v1/chat/completions", &body, &[("x-mock-anthropic", "cut")]);
    assert!(datas(&r).last().unwrap().contains("upstream_stream_broken"), "EOF before message_stop is a cut stream");
}

#[test]
fn messages_pass_through_byte_for_byte_and_are_metered_from_the_stream() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 128, "metadata": {"user_id": "u-1"},
                      "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
                      "messages": [{"role": "user", "content": "hi"}]});
    let raw = body.to_string();
    let headers = [
        ("x-api-key", MASTER),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ];
    let r = gw.post_json("/v1/messages?beta=true", &headers, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "Hello from claude");
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.path, "/anthropic/v1/messages?beta=true");
    assert_eq!(String::from_utf8_lossy(&seen.body), raw, "the body is untouched");
    assert_eq!(seen.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"));
    assert_eq!(seen.header("x-api-key"), Some("ak-one"), "the client's key is replaced by the provider's");
    let row = row_of(&gw, MASTER, &r);
    assert_eq!((row["route"].as_str(), row["usage_source"].as_str()), (Some("messages"), Some("provider")));
    assert_eq!(
        (row["input_tokens"].as_u64(), row["cache_write_input_tokens"].as_u64(), row["output_tokens"].as_u64()),
        (Some(11), Some(3), Some(7))
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = gw.post_json("/messages", &headers, &streamed);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.starts_with("event: message_start\ndata: "), "Anthropic's own events, relayed: {text}");
    assert!(text.contains("event: message_stop") && !text.contains("[DONE]"));
    let row = row_of(&gw, MASTER, &r);
    assert_eq!((row["stream"].as_bool(), row["usage_source"].as_str()), (Some(true), Some("provider")));
    assert_eq!((row["input_tokens"].as_u64(), row["output_tokens"].as_u64()), (Some(11), Some(7)));
    assert_eq!(row["cost_microusd"].as_u64(), Some(135));

    let r = gw.post_json(
        "/v1/messages/count_tokens?beta=true",
        &headers,
        &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!((r.status, r.json()["input_tokens"].as_u64()), (200, Some(42)), "{}", r.text());
    assert_eq!(mock.requests().pop().unwrap().path, "/anthropic/v1/messages/count_tokens?beta=true");
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(row["cost_microusd"].as_u64().unwrap_or(0), 0, "a count is free");

    // The provider's errors pass through in its own shape.
    let r = gw.post_json("/v1/messages", &[headers[0], headers[1], ("x-mock-status", "529")], &body);
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (529, Some("overloaded_error")));
}

#[test]
fn models_are_listed_in_openai_shape_across_pages() {
    let mock = Mock::start();
    let gw = bridge(&mock);
    let r = gw.get_with("/v1/models", &[("authorization", &format!("Bearer {MASTER}"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"]);
    assert_eq!(r.json()["data"][0]["owned_by"], "anthropic");
    let r = gw.get_with("/v1/models/claude-sonnet-4-5", &[("authorization", &format!("Bearer {MASTER}"))]);
    assert_eq!((r.status, r.json()["id"].as_str()), (200, Some("claude-sonnet-4-5")));
    let r = gw.get_with("/v1/models/nope", &[("authorization", &format!("Bearer {MASTER}"))]);
    assert_eq!(r.status, 404);
}

#[test]
fn the_provider_listing_includes_the_anthropic_tables() {
    let list = crate::support::providers_json();
    let find = |kind: &str| list.as_array().unwrap().iter().find(|p| p["kind"] == kind).unwrap().clone();
    let a = find("anthropic");
    assert_eq!(
        a["routes"],
        json!([
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/models",
            "/v1/models/{id}"
        ])
    );
    assert_eq!(a["translation"]["mode"], "translated");
    let routes = a["translation"]["routes"].as_array().unwrap();
    assert!(routes
        .iter()
        .any(|r| r["route"] == "POST /v1/messages" && r["upstream"].as_str().unwrap().contains("byte for byte")));
    let params = a["translation"]["parameters"]["chat.completions"].as_array().unwrap();
    let n = params.iter().find(|p| p["name"] == "n").unwrap();
    assert!(n["refused_when"].as_str().unwrap().contains("one choice"), "{n}");
    assert!(a["translation"]["parameters"].get("messages").is_none(), "messages pass through untranslated");
    assert!(a["translation"]["parameters"].get("embeddings").is_none(), "Anthropic has no embeddings");
    // OpenAI-compatible providers: everything passes, /v1/messages is translated.
    let o = find("openai");
    assert_eq!(o["translation"]["mode"], "passthrough");
    assert!(o["translation"]["parameters"]["messages"].as_array().unwrap().iter().any(|p| p["name"] == "thinking"));
    let top_k = o["translation"]["parameters"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "top_k")
        .unwrap()
        .clone();
    assert!(top_k["refused_when"].as_str().unwrap().contains("no top_k"), "{top_k}");
}
