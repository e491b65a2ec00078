//! OpenAI chat completions as a provider: Anthropic request bodies encoded as chat bodies, and
//! chat answers and streams (tool calls in pieces, reasoning, usage, errors) decoded.

use serde_json::{json, Value};

use super::egress::{decode, encode, StreamDecoder};
use crate::core::anthropic::messages;
use crate::core::ir::{Event, Finish, Thinking, ToolCall};
use crate::core::provider::ProviderKind;
use crate::core::usage::Usage;

fn from_messages(body: Value) -> Result<Value, String> {
    let decoded = messages::decode_request(body.as_object().unwrap(), false).map_err(|r| r.param)?;
    encode(&decoded.request).map_err(|u| crate::core::anthropic::refuse(&u).param)
}

#[test]
fn an_anthropic_tool_turn_becomes_chat_messages() {
    let body = json!({
        "model": "gpt-4o", "max_tokens": 512, "stream": true, "stop_sequences": ["END"], "temperature": 0.5,
        "system": [{"type": "text", "text": "Be terse."}],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 20_000},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                          {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                                          {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Calling."}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]}]
    });
    assert_eq!(
        from_messages(body).unwrap(),
        json!({
            "model": "gpt-4o", "max_completion_tokens": 512, "temperature": 0.5, "stop": ["END"],
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
                {"role": "assistant", "content": "Calling.", "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "done"}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": "required", "parallel_tool_calls": false, "reasoning_effort": "high",
            "stream": true, "stream_options": {"include_usage": true}
        })
    );
    let k = json!({"model": "m", "max_tokens": 5, "top_k": 3, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(from_messages(k), Err("top_k".into()));
}

#[test]
fn whole_answers_decode_with_reasoning_calls_and_usage() {
    let body = json!({"id": "chatcmpl-1", "model": "deepseek-reasoner", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "reasoning_content": "hmm",
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 6}}});
    let r = decode(&body, "m", "s").unwrap();
    let c = &r.choices[0];
    assert_eq!((c.finish, c.text.as_deref()), (Some(Finish::ToolCalls), None));
    assert_eq!(c.thinking, vec![Thinking { text: "hmm".into(), ..Thinking::default() }]);
    assert_eq!(c.tool_calls[0].id.as_deref(), Some("call_1"));
    assert_eq!(r.usage.map(|u| (u.input_tokens, u.cached_input_tokens)), Some((10, 6)));
    assert!(decode(&json!({"object": "x"}), "m", "s").is_err());
}

#[test]
fn streamed_tool_calls_are_whole_in_start_order_and_reasoning_closes_first() {
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Let "}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"reasoning_content":"me think."}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7}}"#,
        "[DONE]",
    ];
    let mut d = StreamDecoder::default();
    let events: Vec<Event> = chunks.iter().flat_map(|c| d.chunk(c)).collect();
    let call = |id: &str, name: &str, args: &str| ToolCall {
        id: Some(id.into()),
        name: name.into(),
        arguments: args.into(),
        signature: None,
    };
    assert_eq!(
        events,
        vec![
            Event::ThinkingDelta { choice: 0, text: "Let ".into() },
            Event::ThinkingDelta { choice: 0, text: "me think.".into() },
            Event::ThinkingBlock { choice: 0, block: Thinking { text: "Let me think.".into(), ..Thinking::default() } },
            Event::ToolCall { choice: 0, index: 0, call: call("call_a", "get_weather", r#"{"city":"Paris"}"#) },
            Event::ToolCall { choice: 0, index: 1, call: call("call_b", "get_time", "{}") },
            Event::Finish { choice: 0, finish: Finish::ToolCalls },
            Event::Usage(Usage { input_tokens: 11, output_tokens: 7, ..Usage::default() }),
        ]
    );
    assert!(d.finished);
    // Calls still open when the stream ends are not lost.
    let mut d = StreamDecoder::default();
    let mut events =
        d.chunk(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f"}}]}}]}"#);
    events.extend(d.chunk("[DONE]"));
    assert_eq!(events, vec![Event::ToolCall { choice: 0, index: 0, call: call("c", "f", "{}") }]);
    let err = d.chunk(r#"{"error":{"message":"boom","type":"server_error"}}"#);
    assert!(matches!(&err[0], Event::Error(e) if e.message == "upstream: boom"));
}

#[test]
fn error_bodies_keep_the_message_and_map_the_status() {
    for (status, want, code) in [
        (400, 400, "invalid_request_error"),
        (429, 429, "rate_limit_exceeded"),
        (500, 502, "upstream_error"),
        (503, 503, "upstream_unavailable"),
    ] {
        let e = ProviderKind::OpenAi.error(status, br#"{"error":{"message":"why","type":"t","code":"c"}}"#, Some("3"));
        assert_eq!((e.status, e.code, e.message.as_str()), (want, code, "upstream: why"), "{status}");
        assert_eq!(e.retry_after_secs, (want == 429 || want == 503).then_some(3));
    }
    assert_eq!(
        ProviderKind::OpenAi.error(502, b"not json", None).message,
        "upstream: the provider failed without a message"
    );
}
