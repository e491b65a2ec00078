//! Anthropic-shaped clients (`/v1/messages`) in front of an OpenAI-compatible upstream: the real
//! binary, the mock's OpenAI dialect, translated both ways — Anthropic's exact event sequence with
//! its `event:` lines, tool use with `input_json_delta`, reasoning as thinking, a coding agent's
//! request shape, a local token count, and errors in Anthropic's shape.

use serde_json::{json, Value};

use crate::support::admin::row_of;
use crate::support::client::Response;
use crate::support::mock::{scripted_chat::REASONING, Mock};
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-token-messages-0123456789";

fn gateway(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into())],
        ..Opts::default()
    })
}

fn post(gw: &Gateway, path: &str, body: &Value, extra: &[(&str, &str)]) -> Response {
    let mut h = vec![("x-api-key", MASTER), ("anthropic-version", "2023-06-01")];
    h.extend_from_slice(extra);
    gw.post_json(path, &h, body)
}

/// (event line, data) of every frame of an Anthropic stream.
fn events(r: &Response) -> Vec<(String, Value)> {
    r.text()
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let kind = f.lines().find_map(|l| l.strip_prefix("event: ")).expect("every frame has its event line");
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).expect("every frame has data");
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], kind, "the event line and the data agree");
            (kind.to_string(), data)
        })
        .collect()
}

fn hi() -> Value {
    json!({"model": "gpt-4o-mini", "max_tokens": 100, "system": "Be terse.", "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn messages_to_an_openai_upstream_are_translated_both_ways() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let r = post(&gw, "/v1/messages", &hi(), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!((m["type"].as_str(), m["role"].as_str()), (Some("message"), Some("assistant")));
    assert_eq!(m["content"], json!([{"type": "text", "text": "Hello from mock"}]));
    assert_eq!(m["stop_reason"], "end_turn");
    // OpenAI's prompt_tokens include the cached ones; Anthropic's input_tokens do not.
    assert_eq!(
        (
            m["usage"]["input_tokens"].as_u64(),
            m["usage"]["cache_read_input_tokens"].as_u64(),
            m["usage"]["output_tokens"].as_u64()
        ),
        (Some(8), Some(3), Some(7))
    );
    let sent = mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-4o-mini", "max_completion_tokens": 100,
               "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]})
    );
    assert!(sent.header("x-api-key").is_none(), "the client's credential never reaches the upstream");
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(
        (row["route"].as_str(), row["provider"].as_str(), row["usage_source"].as_str()),
        (Some("messages"), Some("openai"), Some("provider"))
    );
    assert_eq!((row["input_tokens"].as_u64(), row["output_tokens"].as_u64()), (Some(11), Some(7)));
}

#[test]
fn streams_follow_anthropics_exact_event_sequence() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let mut body = hi();
    body["stream"] = json!(true);
    let r = post(&gw, "/v1/messages?beta=true", &body, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("[DONE]"));
    let ev = events(&r);
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let text: String = ev.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "tok0 tok1 tok2 ");
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!((delta["usage"]["input_tokens"].as_u64(), delta["usage"]["output_tokens"].as_u64()), (Some(8), Some(7)));
    let sent = mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions", "the query is not forwarded");
    assert_eq!(sent.json()["stream_options"], json!({"include_usage": true}), "always metered");
}

#[test]
fn tool_calls_become_tool_use_blocks_with_their_input_even_when_streamed_in_pieces() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let mut body = hi();
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                           {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]);
    let r = post(&gw, "/v1/messages", &body, &[("x-mock-openai", "tools")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(
        m["content"],
        json!([{"type": "tool_use", "id": "call_w1", "name": "get_weather", "input": {"city": "Paris"}},
               {"type": "tool_use", "id": "call_t2", "name": "get_time", "input": {}}])
    );
    assert_eq!(mock.requests().pop().unwrap().json()["tools"][0]["function"]["name"], "get_weather");

    body["stream"] = json!(true);
    let r = post(&gw, "/v1/messages", &body, &[("x-mock-openai", "tools")]);
    let ev = events(&r);
    let starts: Vec<&Value> = ev.iter().filter(|(k, _)| k == "content_block_start").map(|(_, d)| d).collect();
    assert_eq!(starts.len(), 2, "{ev:?}");
    for (i, (id, name)) in [("call_w1", "get_weather"), ("call_t2", "get_time")].iter().enumerate() {
        assert_eq!(starts[i]["index"], i);
        assert_eq!(starts[i]["content_block"], json!({"type": "tool_use", "id": id, "name": name, "input": {}}));
    }
    let inputs: Vec<&str> = ev.iter().filter_map(|(_, d)| d["delta"]["partial_json"].as_str()).collect();
    assert_eq!(inputs, [r#"{"city":"Paris"}"#, "{}"], "each call's whole input in an input_json_delta");
    assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");

    // The result goes back as OpenAI tool messages after the calls.
    let mut next = hi();
    next["tools"] = body["tools"].clone();
    next["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_w1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_w1", "content": "22C"}, {"type": "text", "text": "and?"}]}]);
    assert_eq!(post(&gw, "/v1/messages", &next, &[]).status, 200);
    let sent = mock.requests().pop().unwrap().json();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "weather?"},
               {"role": "assistant", "content": null, "tool_calls": [{"id": "call_w1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
               {"role": "tool", "tool_call_id": "call_w1", "content": "22C"}, {"role": "user", "content": "and?"}])
    );
}

#[test]
fn upstream_reasoning_becomes_thinking() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let mut body = hi();
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 4096});
    let r = post(&gw, "/v1/messages", &body, &[("x-mock-openai", "reasoning")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0], json!({"type": "thinking", "thinking": REASONING, "signature": ""}));
    assert_eq!(mock.requests().pop().unwrap().json()["reasoning_effort"], "medium", "a 4,096 budget asks for medium");
    body["stream"] = json!(true);
    let r = post(&gw, "/v1/messages", &body, &[("x-mock-openai", "reasoning")]);
    let ev = events(&r);
    assert_eq!(ev[1].1["content_block"]["type"], "thinking");
    let thought: String = ev.iter().filter_map(|(_, d)| d["delta"]["thinking"].as_str()).collect();
    assert_eq!(thought, REASONING);
    let text_start = ev.iter().position(|(_, d)| d["content_block"]["type"] == "text").unwrap();
    assert!(
        ev[..text_start].iter().any(|(k, _)| k == "content_block_stop"),
        "the thinking block closes before the text"
    );
}

#[test]
fn a_coding_agents_request_succeeds_and_its_hints_are_named() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let tools = json!([{"name": "Read", "description": "Read a file", "cache_control": {"type": "ephemeral"},
                        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}]);
    let body = json!({
        "model": "gpt-4o-mini", "max_tokens": 32000, "stream": true,
        "metadata": {"user_id": "user_abc_account_def_session_123"},
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "tools": tools,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "read main.rs", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"path": "main.rs"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "fn main() {}"}]}]},
            {"role": "system", "content": "Keep answers short."},
            {"role": "user", "content": "explain"}]
    });
    let betas = "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14";
    let r = post(&gw, "/v1/messages?beta=true", &body, &[("anthropic-beta", betas), ("x-app", "cli")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let ignored = r.header("x-prodex-ignored-params").unwrap_or("").to_string();
    for hint in ["metadata", "cache_control", "anthropic-beta"] {
        assert!(ignored.contains(hint), "{hint} named as ignored: {ignored}");
    }
    assert_eq!(events(&r).last().unwrap().0, "message_stop");
    let sent = mock.requests().pop().unwrap().json();
    let system: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        system,
        ["You are Claude Code.", "Keep answers short."],
        "the mid-conversation system joins the instructions"
    );
    assert_eq!(sent["messages"][4], json!({"role": "tool", "tool_call_id": "toolu_01", "content": "fn main() {}"}));

    // count_tokens: an OpenAI upstream has no counter; the estimate says it is one and costs nothing.
    let before = mock.count();
    let mut count = body.clone();
    for k in ["max_tokens", "stream", "metadata"] {
        count.as_object_mut().unwrap().remove(k);
    }
    let r = post(&gw, "/v1/messages/count_tokens?beta=true", &count, &[("anthropic-beta", betas)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-prodex-token-count"), Some("estimated"));
    let n = r.json()["input_tokens"].as_u64().unwrap();
    assert!((20..200).contains(&n), "system, tools and messages all counted: {n}");
    assert_eq!(mock.count(), before, "no upstream call");
}

#[test]
fn errors_on_messages_are_anthropic_shaped() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let r = post(&gw, "/v1/messages", &hi(), &[("x-mock-status", "400")]);
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!((e["type"].as_str(), e["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    assert_eq!(e["error"]["message"], "upstream: mock error 400", "the provider's message kept");
    let r = post(&gw, "/v1/messages", &hi(), &[("x-mock-status", "429"), ("x-mock-retry-after", "0")]);
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (429, Some("rate_limit_error")));
    let mut k = hi();
    k["top_k"] = json!(5);
    let r = post(&gw, "/v1/messages", &k, &[]);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("top_k"), "{}", r.text());
    let bad = gw.post_json("/v1/messages", &[("x-api-key", "wrong-key-0123456789")], &hi());
    assert_eq!((bad.status, bad.json()["error"]["type"].as_str()), (401, Some("authentication_error")));
}
