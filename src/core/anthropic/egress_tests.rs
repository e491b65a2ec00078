//! The Anthropic egress from realistic payloads: OpenAI chat bodies encoded as Messages
//! requests, Anthropic answers and the official SDK's stream shapes decoded, refusals named in
//! the caller's dialect, usage with cache reads and writes.

use serde_json::{json, Value};

use super::request::{default_max_tokens, encode, tool_id};
use super::response::{self, Counts, StreamDecoder};
use crate::core::ir::{Event, Finish, Thinking, ToolCall};
use crate::core::openai::chat;
use crate::core::provider::ProviderKind;
use crate::core::usage::Usage;

fn from_chat(body: Value) -> Result<Value, String> {
    let decoded = chat::decode_request(body.as_object().unwrap()).map_err(|r| format!("decode {}", r.param))?;
    encode(&decoded.request).map_err(|u| chat::refuse(&u).param)
}

/// Anthropic's answer to a tool turn: one call of `f` (`toolu_01A`) after `thinking`.
fn tool_turn(thinking: Vec<Thinking>) -> crate::core::ir::Response {
    crate::core::ir::Response {
        id: "msg_1".into(),
        model: "claude-sonnet-4-5".into(),
        choices: vec![crate::core::ir::Choice {
            index: 0,
            text: None,
            tool_calls: vec![ToolCall {
                id: Some("toolu_01A".into()),
                name: "f".into(),
                arguments: "{}".into(),
                signature: None,
            }],
            thinking,
            finish: Some(Finish::ToolCalls),
        }],
        usage: None,
    }
}

#[test]
fn a_chat_tool_conversation_becomes_one_valid_messages_body() {
    let long_id = "functions.get_weather:0|with-a-very-long-foreign-id-that-exceeds-sixty-four-characters-x";
    let body = json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": "Use metric units."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather and time in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": long_id, "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
            {"role": "tool", "tool_call_id": long_id, "content": "14:00"},
            {"role": "user", "content": "Thanks"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                  {"type": "function", "function": {"name": "get_time"}}],
        "tool_choice": "auto", "parallel_tool_calls": false, "stop": "END", "temperature": 0.2, "top_p": 0.9,
        "stream": true
    });
    let out = from_chat(body).unwrap();
    let mapped = tool_id(long_id);
    assert!(mapped.len() <= 64 && mapped.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    assert_eq!(mapped, tool_id(long_id), "the same id maps the same way in tool_use and tool_result");
    assert_eq!(tool_id("toolu_01A"), "toolu_01A", "an id already legal is kept");
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 64_000,
            "system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Use metric units."}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather and time in Paris?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": mapped, "name": "get_time", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "22C"},
                    {"type": "tool_result", "tool_use_id": mapped, "content": "14:00"},
                    {"type": "text", "text": "Thanks"}]}],
            "tools": [{"name": "get_weather", "description": "Weather",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                      {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END"], "stream": true
        })
    );
}

#[test]
fn max_tokens_comes_from_the_client_else_the_catalog() {
    assert_eq!(default_max_tokens("claude-opus-4-1-20250805"), 32_000);
    assert_eq!(default_max_tokens("claude-3-5-haiku-20241022"), 8_192);
    assert_eq!(default_max_tokens("claude-unknown"), super::DEFAULT_MAX_TOKENS);
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let out = from_chat(json!({"model": "claude-haiku-4-5", "messages": msgs, "max_completion_tokens": 300})).unwrap();
    assert_eq!(out["max_tokens"], 300);
    // reasoning_effort becomes a budget below max_tokens, at least 1,024.
    for (effort, max, budget) in
        [("low", None, 2_048), ("high", None, 24_576), ("high", Some(5_000), 4_999), ("minimal", Some(2_000), 1_024)]
    {
        let mut b = json!({"model": "claude-sonnet-4-5", "messages": msgs, "reasoning_effort": effort});
        if let Some(m) = max {
            b["max_tokens"] = json!(m);
        }
        let out = from_chat(b).unwrap();
        assert_eq!(out["thinking"], json!({"type": "enabled", "budget_tokens": budget}), "{effort} {max:?}");
    }
    let out = from_chat(json!({"model": "claude-sonnet-4-5", "messages": msgs, "reasoning_effort": "none"})).unwrap();
    assert!(out.get("thinking").is_none(), "none: no thinking");
}

#[test]
fn what_anthropic_cannot_do_is_refused_naming_the_chat_parameter() {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let think = |extra: Value| {
        let mut b = json!({"model": "claude-sonnet-4-5", "messages": msgs, "reasoning_effort": "low"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let plain = |extra: Value| {
        let mut b = json!({"model": "claude-sonnet-4-5", "messages": msgs});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let strict = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
    let loose = json!({"type": "object", "properties": {"a": {"type": "object", "properties": {}}}, "additionalProperties": false});
    let cases = [
        (plain(json!({"n": 2})), "n"),
        (plain(json!({"seed": 7})), "seed"),
        (plain(json!({"frequency_penalty": 0.5})), "presence_penalty"),
        (plain(json!({"response_format": {"type": "json_object"}})), "response_format"),
        (
            plain(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": loose}}})),
            "response_format",
        ),
        (plain(json!({"temperature": 1.5})), "temperature"),
        (think(json!({"temperature": 0.5})), "temperature"),
        (think(json!({"top_p": 0.5})), "top_p"),
        (
            think(json!({"tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f"}}]})),
            "tool_choice",
        ),
        (think(json!({"max_tokens": 1000})), "reasoning_effort"),
        (
            plain(
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}]}]}),
            ),
            "messages",
        ),
    ];
    for (body, param) in cases {
        assert_eq!(from_chat(body.clone()), Err(param.to_string()), "{body}");
    }
    let ok = plain(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": strict}}}));
    assert_eq!(from_chat(ok).unwrap()["output_config"], json!({"format": {"type": "json_schema", "schema": strict}}));
    assert!(from_chat(think(json!({"temperature": 1, "top_p": 0.97}))).is_ok(), "the values thinking allows");
}

#[test]
fn signed_thinking_survives_a_chat_tool_loop_and_its_loss_is_refused() {
    // The gateway's own answer, as a chat client receives it and echoes it back.
    let answer = tool_turn(vec![Thinking { text: "hmm".into(), signature: Some("sig==".into()), redacted: false }]);
    let message = chat::encode_response(&answer, 1, "seed")["choices"][0]["message"].clone();
    assert_eq!(message["reasoning_content"], "hmm");
    assert_eq!(message["thinking_blocks"], json!([{"type": "thinking", "thinking": "hmm", "signature": "sig=="}]));
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let turn = |assistant: Value| {
        json!({"model": "claude-sonnet-4-5", "reasoning_effort": "low", "tools": tools, "messages": [
            {"role": "user", "content": "go"}, assistant,
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "done"}]})
    };
    let out = from_chat(turn(message.clone())).unwrap();
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "thinking", "thinking": "hmm", "signature": "sig=="},
               {"type": "tool_use", "id": "toolu_01A", "name": "f", "input": {}}]),
        "replayed unmodified, first in its turn"
    );
    let mut dropped = message;
    dropped.as_object_mut().unwrap().retain(|k, _| k != "thinking_blocks" && k != "reasoning_content");
    assert_eq!(
        from_chat(turn(dropped)),
        Err("messages[].thinking_blocks".into()),
        "never sent with thinking silently off"
    );
}

#[test]
fn whole_messages_decode_with_stop_reasons_and_cache_usage() {
    let body = json!({"id": "msg_019", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "thinking", "thinking": "Let me see.", "signature": "EqQB"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_01N", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 377, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1200,
                  "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 40},
                  "output_tokens": 65, "output_tokens_details": {"thinking_tokens": 20}}});
    let r = response::decode(&body, "m", "seed").unwrap();
    let c = &r.choices[0];
    assert_eq!((r.id.as_str(), c.text.as_deref(), c.finish), ("msg_019", Some("Checking."), Some(Finish::ToolCalls)));
    assert_eq!(c.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!(c.thinking.len(), 2);
    assert!(c.thinking[1].redacted && c.thinking[1].signature.as_deref() == Some("opaque"));
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 1677,
            cached_input_tokens: 1200,
            cache_write_tokens: 100,
            cache_write_1h_tokens: 40,
            output_tokens: 65,
            reasoning_tokens: 20,
        })
    );
    for (reason, finish) in [
        ("end_turn", Ok(Finish::Stop)),
        ("stop_sequence", Ok(Finish::Stop)),
        ("max_tokens", Ok(Finish::Length)),
        ("model_context_window_exceeded", Ok(Finish::Length)),
        ("refusal", Ok(Finish::ContentFilter)),
        ("pause_turn", Err("upstream_pause_turn")),
        ("something_new", Err("upstream_invalid_response")),
    ] {
        let b = json!({"content": [], "stop_reason": reason});
        assert_eq!(
            response::decode(&b, "m", "s").map(|r| r.choices[0].finish.unwrap()).map_err(|e| e.code),
            finish,
            "{reason}"
        );
    }
    let bad = json!({"content": [], "usage": {"input_tokens": -1}});
    assert!(response::usage(&bad).unwrap().is_err(), "a negative count is invalid, never 0");
}

/// The official SDK's stream fixture shape (thinking with signature_delta, text, a tool call
/// whose input is split, cumulative usage).
const SDK_STREAM: &[&str] = &[
    r#"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    r#"{"type": "ping"}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"User wants weather."}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIARgCIkD"}}"#,
    r#"{"type":"content_block_stop","index":0}"#,
    r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
    r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking."}}"#,
    r#"{"type":"content_block_stop","index":1}"#,
    r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01N","name":"get_weather","input":{}}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}"#,
    r#"{"type":"content_block_stop","index":2}"#,
    r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01M","name":"get_time","input":{}}}"#,
    r#"{"type":"content_block_stop","index":3}"#,
    r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":65}}"#,
    r#"{"type":"message_stop"}"#,
];

#[test]
fn the_sdk_stream_shapes_decode_into_ordered_events() {
    let mut d = StreamDecoder::default();
    let events: Vec<Event> = SDK_STREAM.iter().flat_map(|data| d.chunk(data)).collect();
    let call = |id: &str, name: &str, arguments: &str| ToolCall {
        id: Some(id.into()),
        name: name.into(),
        arguments: arguments.into(),
        signature: None,
    };
    let usage = Usage {
        input_tokens: 392,
        cached_input_tokens: 5,
        cache_write_tokens: 10,
        output_tokens: 65,
        ..Usage::default()
    };
    assert_eq!(
        events,
        vec![
            Event::ThinkingDelta { choice: 0, text: "User wants weather.".into() },
            Event::ThinkingBlock {
                choice: 0,
                block: Thinking {
                    text: "User wants weather.".into(),
                    signature: Some("EqQBCkYIARgCIkD".into()),
                    redacted: false
                }
            },
            Event::Text { choice: 0, text: "Checking.".into() },
            Event::ToolCall { choice: 0, index: 0, call: call("toolu_01N", "get_weather", r#"{"city": "Paris"}"#) },
            Event::ToolCall { choice: 0, index: 1, call: call("toolu_01M", "get_time", "{}") },
            Event::Finish { choice: 0, finish: Finish::ToolCalls },
            Event::Usage(usage),
        ],
        "tool indexes count calls (0, 1), not content blocks (2, 3); the placeholder output is never billed"
    );
    assert!(d.finished);
    // The same events through the passthrough meter give the same usage.
    let mut counts = Counts::default();
    let metered: Vec<Usage> =
        SDK_STREAM.iter().filter_map(|e| response::stream_usage(&mut counts, e)).map(Result::unwrap).collect();
    assert_eq!(metered, vec![usage]);
}

#[test]
fn errors_keep_the_provider_message_and_map_statuses() {
    let mut d = StreamDecoder::default();
    let events = d.chunk(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
    let Event::Error(e) = &events[0] else { panic!("{events:?}") };
    assert_eq!((e.status, e.code, e.message.as_str()), (503, "upstream_overloaded", "anthropic: Overloaded"));
    assert!(d.finished);
    for (status, kind, want) in [
        (529, "overloaded_error", 503),
        (429, "rate_limit_error", 429),
        (400, "invalid_request_error", 400),
        (401, "authentication_error", 401),
        (500, "api_error", 502),
    ] {
        let body = json!({"type": "error", "error": {"type": kind, "message": "why"}}).to_string();
        let e = ProviderKind::Anthropic.error(status, body.as_bytes(), Some("7"));
        assert_eq!(e.status, want, "{status} {kind}");
        assert_eq!(e.message, "anthropic: why");
        assert_eq!(e.retry_after_secs, (want == 429 || want == 503).then_some(7));
    }
    let pause = d.chunk(r#"{"type":"message_delta","delta":{"stop_reason":"pause_turn"},"usage":{"output_tokens":3}}"#);
    assert!(matches!(&pause[0], Event::Usage(u) if u.output_tokens == 3), "what was generated is billed");
    assert!(matches!(&pause[1], Event::Error(e) if e.code == "upstream_pause_turn"));
}

#[test]
fn responses_clients_replay_thinking_through_encrypted_content() {
    use crate::core::openai::responses;
    let answer = tool_turn(vec![
        Thinking { text: "hmm".into(), signature: Some("sig==".into()), redacted: false },
        Thinking { text: String::new(), signature: Some("opaque".into()), redacted: true },
    ]);
    let out = responses::encode_response(&answer, 1, "seed")["output"].clone();
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(
        (out[0]["summary"][0]["text"].as_str(), out[0]["encrypted_content"].as_str()),
        (Some("hmm"), Some("sig=="))
    );
    // The client sends the output back as input (as Codex does with store: false), then the result.
    let mut input = vec![json!({"role": "user", "content": "go"})];
    input.extend(out.as_array().unwrap().iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "toolu_01A", "output": "done"}));
    let body = json!({"model": "claude-sonnet-4-5", "input": input, "reasoning": {"effort": "low"},
                      "include": ["reasoning.encrypted_content"], "tools": [{"type": "function", "name": "f"}]});
    let decoded = responses::decode_request(body.as_object().unwrap()).unwrap();
    let sent = encode(&decoded.request).unwrap();
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"type": "thinking", "thinking": "hmm", "signature": "sig=="},
               {"type": "redacted_thinking", "data": "opaque"},
               {"type": "tool_use", "id": "toolu_01A", "name": "f", "input": {}}])
    );
    // Without the encrypted content the loop cannot be replayed: refused naming the input.
    let mut bare = body.clone();
    for item in bare["input"].as_array_mut().unwrap() {
        if item["type"] == "reasoning" {
            item.as_object_mut().unwrap().remove("encrypted_content");
        }
    }
    let decoded = responses::decode_request(bare.as_object().unwrap()).unwrap();
    assert!(decoded.ignored.contains(&"input[].reasoning".to_string()));
    let refused = encode(&decoded.request).unwrap_err();
    assert_eq!(responses::refuse(&refused).param, "input");
}
