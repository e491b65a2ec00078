//! The Responses dialect through Gemini: request items to Gemini contents, whole responses and
//! the streamed event lifecycle (providers.md §1.11), from shapes Codex-like clients send.

use serde_json::{json, Value};

use super::request::encode;
use super::response::{decode, StreamDecoder};
use crate::core::ir::StreamEncoder;
use crate::core::openai::{chat, responses};

fn gemini_body(body: &Value) -> Result<Value, chat::Refusal> {
    let decoded = responses::decode_request(body.as_object().unwrap())?;
    encode(&decoded.request).map_err(|u| responses::refuse(&u))
}

#[test]
fn input_items_become_gemini_contents() {
    let body = json!({
        "model": "gemini-2.5-flash",
        "instructions": "Be terse.",
        "input": [
            {"role": "developer", "content": "Use metric units."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4A==", "detail": "low"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1__ts_U0lH", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1__ts_U0lH", "output": "22C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "10:00"}]}
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": true},
                  {"type": "function", "name": "get_time"}],
        "tool_choice": {"type": "function", "name": "get_time"},
        "max_output_tokens": 300, "temperature": 0.5,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "reasoning": {"effort": "high", "summary": "auto"},
        "store": false, "metadata": {"k": "v"}
    });
    let decoded = responses::decode_request(body.as_object().unwrap()).unwrap();
    for hint in ["store", "metadata", "input[].content[].detail", "tools[].strict", "reasoning.summary"] {
        assert!(decoded.ignored.iter().any(|i| i == hint), "{hint}: {:?}", decoded.ignored);
    }
    let g = encode(&decoded.request).unwrap();
    assert_eq!(g["systemInstruction"]["parts"], json!([{"text": "Be terse."}, {"text": "Use metric units."}]));
    let c = g["contents"].as_array().unwrap();
    assert_eq!(c.len(), 3, "user, model (text and both calls), user (both outputs): {c:?}");
    assert_eq!(c[0]["parts"][1]["inlineData"]["mimeType"], "image/jpeg");
    assert_eq!(c[1]["parts"][0], json!({"text": "Checking."}));
    assert_eq!(c[1]["parts"][1]["thoughtSignature"], "U0lH");
    assert_eq!(c[2]["parts"][1]["functionResponse"], json!({"name": "get_time", "response": {"output": "10:00"}}));
    assert_eq!(g["toolConfig"]["functionCallingConfig"], json!({"mode": "ANY", "allowedFunctionNames": ["get_time"]}));
    let gc = &g["generationConfig"];
    assert_eq!((gc["maxOutputTokens"].as_u64(), gc["temperature"].as_f64()), (Some(300), Some(0.5)));
    assert_eq!(gc["responseJsonSchema"], json!({"type": "object"}));
    assert_eq!(gc["thinkingConfig"], json!({"thinkingBudget": 24576}));
    assert_eq!(
        gemini_body(&json!({"model": "m", "input": "hi"})).unwrap()["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );
}

#[test]
fn stateful_and_foreign_requests_are_refused_by_name() {
    let with = |extra: Value| {
        let mut b = json!({"model": "gemini-2.5-flash", "input": "hi"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = gemini_body(&b).expect_err("refused");
        (r.param, r.code)
    };
    let cases: &[(Value, &str, &str)] = &[
        (json!({"previous_response_id": "resp_1"}), "previous_response_id", "unsupported_parameter"),
        (json!({"conversation": "conv_1"}), "conversation", "unsupported_parameter"),
        (json!({"include": ["message.output_text.logprobs"]}), "include[0]", "unsupported_parameter"),
        (json!({"background": true}), "background", "unsupported_parameter"),
        (json!({"text": {"verbosity": "low"}}), "text.verbosity", "unsupported_parameter"),
        (json!({"input": [{"type": "item_reference", "id": "msg_1"}]}), "input[0].type", "unsupported_parameter"),
        (
            json!({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}),
            "input[0].call_id",
            "invalid_parameter",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "input[0].content[0].file_id",
            "unsupported_parameter",
        ),
        (json!({"tools": [{"type": "web_search_preview"}]}), "tools[0].type", "unsupported_parameter"),
        (json!({"tools": [{"type": "function", "name": "bad name"}]}), "tools[0].name", "unsupported_parameter"),
        (
            json!({"reasoning": {"effort": "none"}, "model": "gemini-3-pro-preview"}),
            "reasoning.effort",
            "unsupported_parameter",
        ),
        (json!({"parallel_tool_calls": false}), "parallel_tool_calls", "unsupported_parameter"),
        (json!({"input": []}), "input", "invalid_parameter"),
    ];
    for (extra, param, code) in cases {
        assert_eq!(with(extra.clone()), ((*param).to_string(), *code), "{extra}");
    }
}

fn events(wire: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(wire.to_vec()).unwrap();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (event, data) = f.split_once('\n').unwrap();
            let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(event.strip_prefix("event: ").unwrap(), v["type"], "the event line and the type inside agree");
            v
        })
        .collect()
}

#[test]
fn a_streamed_response_runs_the_whole_item_lifecycle() {
    let u = |c: u64| json!({"promptTokenCount": 4, "candidatesTokenCount": c, "totalTokenCount": 4 + c});
    let chunks = [
        json!({"candidates": [{"content": {"parts": [{"text": "Check"}]}, "index": 0}], "usageMetadata": u(1)}),
        json!({"candidates": [{"content": {"parts": [{"text": "ing."}]}, "index": 0}], "usageMetadata": u(2)}),
        json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "U0lH"}]}, "index": 0}], "usageMetadata": u(4)}),
        json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "b", "args": {}}}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": u(6)}),
    ];
    let mut dec = StreamDecoder::default();
    let mut enc = responses::EventEncoder::new("r1", "gemini-2.5-flash", 9, "s");
    let mut wire = Vec::new();
    for c in &chunks {
        for e in dec.chunk(&c.to_string()) {
            wire.extend(enc.encode(&e));
        }
    }
    wire.extend(enc.finish());
    let ev = events(&wire);
    let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let seq: Vec<u64> = ev.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
    assert_eq!(seq, (0..ev.len() as u64).collect::<Vec<_>>());
    assert_eq!(ev[6]["text"], "Checking.");
    assert_eq!((ev[9]["output_index"].as_u64(), ev[13]["output_index"].as_u64()), (Some(1), Some(2)));
    assert!(ev[9]["item"]["call_id"].as_str().unwrap().ends_with("__ts_U0lH"), "the signature rides on the call_id");
    let done = &ev[17]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"].as_array().unwrap().len(), 3);
    assert_eq!(done["usage"]["output_tokens"], 6);
    assert_eq!(done["id"], "resp_r1");

    // A cut by length is `response.incomplete`; a provider error `response.failed`, then nothing.
    let mut enc = responses::EventEncoder::new("r", "m", 1, "s");
    let mut dec = StreamDecoder::default();
    let mut wire = Vec::new();
    for e in dec.chunk(
        &json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}]}).to_string(),
    ) {
        wire.extend(enc.encode(&e));
    }
    wire.extend(enc.finish());
    let last = events(&wire).pop().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["response"]["incomplete_details"]["reason"].as_str()),
        (Some("response.incomplete"), Some("max_output_tokens"))
    );
    let mut enc = responses::EventEncoder::new("r", "m", 1, "s");
    let mut wire = Vec::new();
    for e in StreamDecoder::default()
        .chunk(&json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}).to_string())
    {
        wire.extend(enc.encode(&e));
    }
    wire.extend(enc.finish());
    let ev = events(&wire);
    assert_eq!(ev.last().unwrap()["type"], "response.failed");
    assert_eq!(ev.last().unwrap()["response"]["error"]["code"], "resource_exhausted");
}

#[test]
fn a_whole_response_holds_the_message_then_the_calls() {
    let body = json!({"candidates": [{"content": {"parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP"}],
                      "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 1}, "responseId": "g1"});
    let r = decode(&body, "gemini-2.5-flash", "x").unwrap();
    let out = responses::encode_response(&r, 5, "s");
    assert_eq!(out["id"], "resp_g1");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["output"][0]["content"][0], json!({"type": "output_text", "text": "Hi", "annotations": []}));
    assert_eq!(out["output"][1]["type"], "function_call");
    assert_eq!(out["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 6})
    );
}
