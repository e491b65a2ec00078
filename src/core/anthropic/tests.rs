//! The Messages dialect through Gemini: a coding agent's request to Gemini contents, and Gemini's
//! answers back as Anthropic messages and Anthropic SSE (providers.md §1.6–1.8).

use serde_json::{json, Value};

use super::messages::{decode_request, encode_message, EventEncoder};
use crate::core::gemini::request::encode;
use crate::core::gemini::response::{decode, StreamDecoder};
use crate::core::ir::StreamEncoder;

fn gemini_body(body: &Value) -> Result<Value, (String, &'static str)> {
    let d = decode_request(body.as_object().unwrap(), false).map_err(|r| (r.param, r.code))?;
    encode(&d.request).map_err(|u| {
        let r = super::refuse(&u);
        (r.param, r.code)
    })
}

#[test]
fn a_coding_agents_request_maps_to_gemini() {
    let body = json!({
        "model": "gemini-2.5-flash", "max_tokens": 2048, "stream": true,
        "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "u-1"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Fix the bug.", "cache_control": {"type": "ephemeral"}},
                                          {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me look.", "signature": "EqQB"},
                {"type": "text", "text": "Reading the file."},
                {"type": "tool_use", "id": "toolu_1__ts_U0lH", "name": "read_file", "input": {"path": "a.rs"}},
                {"type": "tool_use", "id": "toolu_2", "name": "list_dir", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1__ts_U0lH", "content": "fn main() {}"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "a.rs"}]},
                {"type": "text", "text": "Go on."}]},
            {"role": "system", "content": "Be brief from now on."}
        ],
        "tools": [{"name": "read_file", "description": "Read a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral"}},
                  {"name": "list_dir", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "stop_sequences": ["END"], "temperature": 0.5, "top_k": 40
    });
    let d = decode_request(body.as_object().unwrap(), false).unwrap();
    for hint in [
        "metadata",
        "system[].cache_control",
        "messages[].content[].cache_control",
        "messages[].content[].thinking",
        "tools[].cache_control",
    ] {
        assert!(d.ignored.iter().any(|i| i == hint), "{hint}: {:?}", d.ignored);
    }
    let g = encode(&d.request).unwrap();
    assert_eq!(
        g["systemInstruction"]["parts"],
        json!([{"text": "You are a coding agent."}, {"text": "Be brief from now on."}])
    );
    let c = g["contents"].as_array().unwrap();
    assert_eq!(c.len(), 4, "user, model, the results' user turn, the user's text: {c:?}");
    assert_eq!(c[0]["parts"][1]["inlineData"]["mimeType"], "image/png");
    assert_eq!(c[1]["parts"].as_array().unwrap().len(), 3, "the thinking block is dropped, text and calls kept");
    assert_eq!(c[1]["parts"][1]["thoughtSignature"], "U0lH");
    assert_eq!(
        c[2]["parts"][0]["functionResponse"],
        json!({"name": "read_file", "response": {"output": "fn main() {}"}})
    );
    assert_eq!(c[2]["parts"][1]["functionResponse"]["response"]["output"], "a.rs");
    assert_eq!(c[3]["parts"], json!([{"text": "Go on."}]));
    assert_eq!(
        g["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["properties"]["path"]["type"],
        "string"
    );
    let gc = &g["generationConfig"];
    assert_eq!(gc["maxOutputTokens"], 2048);
    assert_eq!(gc["topK"], 40);
    assert_eq!(gc["stopSequences"], json!(["END"]));
    assert_eq!(gc["thinkingConfig"], json!({"thinkingBudget": 4096}));
    assert!(d.request.stream);
}

#[test]
fn what_cannot_be_translated_is_refused_by_name() {
    let with = |extra: Value| {
        let mut b =
            json!({"model": "gemini-2.5-flash", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        gemini_body(&b).expect_err("refused")
    };
    for (extra, param, code) in [
        (json!({"max_tokens": null}), "max_tokens", "invalid_parameter"),
        (json!({"container": "c1"}), "container", "unsupported_parameter"),
        (json!({"frobnicate": 1}), "frobnicate", "unsupported_parameter"),
        (
            json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools[0].type",
            "unsupported_parameter",
        ),
        (
            json!({"tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}),
            "tool_choice.disable_parallel_tool_use",
            "unsupported_parameter",
        ),
        (json!({"thinking": {"type": "sometimes"}}), "thinking.type", "unsupported_value"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "y"}]}]}),
            "messages[0].content[0].tool_use_id",
            "invalid_parameter",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}),
            "messages[0].content[0].source.url",
            "unsupported_parameter",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "search_result"}]}]}),
            "messages[0].content[0].type",
            "unsupported_parameter",
        ),
    ] {
        assert_eq!(with(extra.clone()), (param.to_string(), code), "{extra}");
    }
    let counted = decode_request(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).as_object().unwrap(),
        true,
    );
    assert!(counted.is_ok(), "count_tokens needs no max_tokens");
}

#[test]
fn gemini_answers_become_anthropic_messages_and_events() {
    let body = json!({"candidates": [{"content": {"parts": [{"text": "Reading."}, {"functionCall": {"name": "read_file", "args": {"path": "a.rs"}}, "thoughtSignature": "U0lH"}]},
                                      "finishReason": "STOP"}],
                      "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 5, "thoughtsTokenCount": 7},
                      "responseId": "g1"});
    let m = encode_message(&decode(&body, "gemini-2.5-flash", "x").unwrap(), "s");
    assert_eq!(m["type"], "message");
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["content"][0], json!({"type": "text", "text": "Reading."}));
    assert_eq!(m["content"][1]["type"], "tool_use");
    assert_eq!(m["content"][1]["input"], json!({"path": "a.rs"}));
    assert!(m["content"][1]["id"].as_str().unwrap().starts_with("toolu_"));
    assert!(m["content"][1]["id"].as_str().unwrap().ends_with("__ts_U0lH"));
    assert_eq!(
        m["usage"],
        json!({"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 12})
    );

    let chunks = [
        json!({"candidates": [{"content": {"parts": [{"text": "Read"}]}}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1}}),
        json!({"candidates": [{"content": {"parts": [{"text": "ing."}]}}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2}}),
        json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 6}}),
    ];
    let mut dec = StreamDecoder::default();
    let mut enc = EventEncoder::new("r", "gemini-2.5-flash", "s");
    let mut wire = Vec::new();
    for c in &chunks {
        for e in dec.chunk(&c.to_string()) {
            wire.extend(enc.encode(&e));
        }
    }
    wire.extend(enc.finish());
    let text = String::from_utf8(wire).unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (e, d) = f.split_once('\n').unwrap();
            (
                e.strip_prefix("event: ").unwrap().to_string(),
                serde_json::from_str(d.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(events.iter().all(|(e, d)| d["type"] == e.as_str()), "every event line matches its data type");
    assert_eq!(events[5].1["index"], 1, "block indexes count every block");
    assert_eq!(events[6].1["delta"], json!({"type": "input_json_delta", "partial_json": "{\"a\":1}"}));
    assert_eq!(events[8].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[8].1["usage"]["output_tokens"], 6, "the last cumulative usage");
    assert_eq!(events[8].1["usage"]["input_tokens"], 9);

    let mut enc = EventEncoder::new("r", "m", "s");
    let mut wire = Vec::new();
    for e in StreamDecoder::default()
        .chunk(&json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}).to_string())
    {
        wire.extend(enc.encode(&e));
    }
    wire.extend(enc.finish());
    let text = String::from_utf8(wire).unwrap();
    assert!(
        text.contains("event: error\ndata: {") && text.contains("overloaded_error") && !text.contains("message_stop"),
        "{text}"
    );
}
