//! Translation tests, OpenAI chat ⇄ intermediate form ⇄ Gemini, from payloads shaped like the
//! public API references and recorded traffic (providers.md §1.1–1.5).

use serde_json::{json, Value};

use super::embed as gembed;
use super::request::{encode, SKIP_SIGNATURE};
use super::response::{decode, usage, StreamDecoder};
use crate::core::ir::{Event, Finish, ToolCall};
use crate::core::openai::{chat, embed, Usage};

fn gemini_body(openai: &Value) -> Result<Value, chat::Refusal> {
    let decoded = chat::decode_request(openai.as_object().unwrap())?;
    encode(&decoded.request).map_err(|u| chat::refuse(&u))
}

fn refusal(openai: &Value) -> (String, &'static str) {
    let r = gemini_body(openai).expect_err("must be refused");
    (r.param, r.code)
}

#[test]
fn a_full_chat_request_maps_field_by_field() {
    let req = json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? Also this:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_a__ts_Q2lrQmNz-_8", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_a__ts_Q2lrQmNz-_8", "content": "22C, cloudy"},
            {"role": "tool", "tool_call_id": "call_b", "content": "{\"time\":\"10:00\"}"},
            {"role": "user", "content": "Thanks", "name": "ann"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}},
            {"type": "function", "function": {"name": "get_time", "strict": true}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 512, "max_tokens": 99, "n": 2, "seed": 7,
        "stop": "END", "presence_penalty": 0.1, "frequency_penalty": 0.2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        "reasoning_effort": "low", "user": "u-1", "metadata": {"a": "b"}, "logprobs": false, "stream": false
    });
    let decoded = chat::decode_request(req.as_object().unwrap()).unwrap();
    for hint in
        ["user", "metadata", "messages[].name", "tools[].function.strict", "messages[].content[].image_url.detail"]
    {
        assert!(decoded.ignored.iter().any(|i| i == hint), "{hint} must be listed as ignored: {:?}", decoded.ignored);
    }
    let g = encode(&decoded.request).unwrap();
    assert_eq!(g["systemInstruction"], json!({"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]}));
    let contents = g["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 4, "user, model, one user turn holding both tool results, user: {contents:?}");
    assert_eq!(contents[0]["parts"][1], json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}));
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(contents[1]["parts"][0], json!({"text": "Checking."}));
    assert_eq!(
        contents[1]["parts"][1],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "Q2lrQmNz+/8="})
    );
    assert_eq!(
        contents[1]["parts"][2],
        json!({"functionCall": {"name": "get_time", "args": {}}}),
        "no signature invented on 2.5"
    );
    assert_eq!(
        contents[2]["parts"],
        json!([{"functionResponse": {"name": "get_weather", "response": {"output": "22C, cloudy"}}},
               {"functionResponse": {"name": "get_time", "response": {"output": {"time": "10:00"}}}}])
    );
    assert_eq!(contents[3], json!({"role": "user", "parts": [{"text": "Thanks"}]}));
    let decl = &g["tools"][0]["functionDeclarations"];
    assert_eq!(
        decl[0]["parametersJsonSchema"]["additionalProperties"],
        json!(false),
        "full JSON Schema, not the subset"
    );
    assert!(decl[0].get("parameters").is_none());
    assert_eq!(
        g["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        g["generationConfig"],
        json!({"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 512, "candidateCount": 2, "seed": 7,
               "stopSequences": ["END"], "presencePenalty": 0.1, "frequencyPenalty": 0.2,
               "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
               "thinkingConfig": {"thinkingBudget": 1024}})
    );
}

fn chat_with(extra: Value) -> Value {
    let mut base = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn parameters_map_to_their_gemini_field() {
    let gen = |extra: Value| gemini_body(&chat_with(extra)).unwrap();
    let cases: &[(Value, &str, Value)] = &[
        (json!({"tool_choice": "none"}), "/toolConfig/functionCallingConfig/mode", json!("NONE")),
        (json!({"tool_choice": "auto"}), "/toolConfig/functionCallingConfig/mode", json!("AUTO")),
        (json!({"tool_choice": "required"}), "/toolConfig/functionCallingConfig/mode", json!("ANY")),
        (
            json!({"response_format": {"type": "json_object"}}),
            "/generationConfig/responseMimeType",
            json!("application/json"),
        ),
        (json!({"stop": ["a", "b"]}), "/generationConfig/stopSequences", json!(["a", "b"])),
        (json!({"max_tokens": 64}), "/generationConfig/maxOutputTokens", json!(64)),
        (json!({"reasoning_effort": "none"}), "/generationConfig/thinkingConfig", json!({"thinkingBudget": 0})),
        (json!({"reasoning_effort": "medium"}), "/generationConfig/thinkingConfig", json!({"thinkingBudget": 8192})),
        (json!({"reasoning_effort": "high"}), "/generationConfig/thinkingConfig", json!({"thinkingBudget": 24576})),
        (
            json!({"reasoning_effort": "high", "model": "gemini-3-pro-preview"}),
            "/generationConfig/thinkingConfig",
            json!({"thinkingLevel": "HIGH"}),
        ),
        (
            json!({"reasoning_effort": "minimal", "model": "gemini-3-flash"}),
            "/generationConfig/thinkingConfig",
            json!({"thinkingLevel": "MINIMAL"}),
        ),
        (json!({"n": 1}), "/generationConfig", Value::Null),
        (json!({"parallel_tool_calls": true}), "/generationConfig", Value::Null),
        (json!({"response_format": {"type": "text"}}), "/generationConfig", Value::Null),
    ];
    for (extra, pointer, want) in cases {
        let g = gen(extra.clone());
        assert_eq!(g.pointer(pointer).cloned().unwrap_or(Value::Null), *want, "{extra}");
    }
}

#[test]
fn what_gemini_cannot_do_is_refused_by_name() {
    let cases: &[(Value, &str, &str)] = &[
        (json!({"logit_bias": {"50256": -100}}), "logit_bias", "unsupported_parameter"),
        (json!({"logprobs": true}), "logprobs", "unsupported_parameter"),
        (json!({"functions": [{"name": "f"}]}), "functions", "unsupported_parameter"),
        (json!({"frobnicate": 1}), "frobnicate", "unsupported_parameter"),
        (json!({"parallel_tool_calls": false}), "parallel_tool_calls", "unsupported_parameter"),
        (
            json!({"reasoning_effort": "none", "model": "gemini-3-pro-preview"}),
            "reasoning_effort",
            "unsupported_parameter",
        ),
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort", "unsupported_value"),
        (json!({"stream_options": {"include_usage": true, "x": 1}}), "stream_options.x", "unsupported_parameter"),
        (json!({"tools": [{"type": "web_search"}]}), "tools[0].type", "unsupported_parameter"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "9bad name"}}]}),
            "tools[0].function.name",
            "unsupported_parameter",
        ),
        (json!({"tool_choice": {"type": "allowed_tools"}}), "tool_choice", "unsupported_parameter"),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "response_format.json_schema.schema",
            "invalid_parameter",
        ),
        (json!({"n": 0}), "n", "invalid_parameter"),
        (json!({"temperature": "hot"}), "temperature", "invalid_parameter"),
        (json!({"messages": []}), "messages", "invalid_parameter"),
        (json!({"messages": [{"role": "function", "content": "x"}]}), "messages[0].role", "unsupported_value"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            "messages[0].content[0].image_url.url",
            "unsupported_parameter",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xyz"}}]}]}),
            "messages[0].content[0].image_url.url",
            "invalid_parameter",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
            "messages[0].content[0].file.file_id",
            "unsupported_parameter",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "flac"}}]}]}),
            "messages[0].content[0].input_audio.format",
            "unsupported_value",
        ),
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "call_x", "content": "orphan"}]}),
            "messages[0].tool_call_id",
            "invalid_parameter",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
            "invalid_parameter",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
            "invalid_parameter",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x", "audio": {"id": "a"}}]}),
            "messages[0].audio",
            "unsupported_parameter",
        ),
    ];
    for (extra, param, code) in cases {
        assert_eq!(refusal(&chat_with(extra.clone())), ((*param).to_string(), *code), "{extra}");
    }
    // No-op values of rejected parameters are accepted (clients send them by default).
    for extra in
        [json!({"logprobs": false}), json!({"logit_bias": {}}), json!({"functions": []}), json!({"top_logprobs": null})]
    {
        assert!(gemini_body(&chat_with(extra.clone())).is_ok(), "{extra}");
    }
}

#[test]
fn gemini_3_history_without_signatures_gets_the_documented_sentinel_on_the_first_call_only() {
    let req = json!({"model": "gemini-3-pro-preview", "messages": [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a"},
        {"role": "tool", "tool_call_id": "call_2", "content": "b"}]});
    let g = gemini_body(&req).unwrap();
    let parts = &g["contents"][1]["parts"];
    assert_eq!(parts[0]["thoughtSignature"], json!(SKIP_SIGNATURE));
    assert!(parts[1].get("thoughtSignature").is_none(), "only the first call of a parallel set carries one");
    assert_eq!(g["contents"][2]["parts"].as_array().unwrap().len(), 2, "both results in one turn");
}

fn call(name: &str, args: &str, sig: Option<&str>) -> ToolCall {
    ToolCall { id: None, name: name.into(), arguments: args.into(), signature: sig.map(str::to_string) }
}

#[test]
fn signatures_survive_a_client_that_echoes_only_the_tool_call_id() {
    for sig in ["CikBcsjafFK1+/x=", "AA==", "abc", "a/b+c/d+e"] {
        let id = chat::call_id(&call("f", "{}", Some(sig)), "seed", 0, 3);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{id}");
        let echoed = json!({"model": "gemini-2.5-flash", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": id, "content": "ok"}]});
        let g = gemini_body(&echoed).unwrap();
        let back = g["contents"][1]["parts"][0]["thoughtSignature"].as_str().unwrap();
        assert_eq!(back.trim_end_matches('='), sig.trim_end_matches('='), "{id}");
        assert_eq!(back.len() % 4, 0, "padded back to standard base64");
    }
    assert_eq!(chat::call_id(&call("f", "{}", None), "ab12", 1, 2), "call_ab121x2");
}

#[test]
fn usage_counts_thoughts_as_output_and_cache_inside_the_prompt() {
    let body = json!({"usageMetadata": {"promptTokenCount": 83, "cachedContentTokenCount": 64, "candidatesTokenCount": 14,
        "thoughtsTokenCount": 104, "toolUsePromptTokenCount": 5, "totalTokenCount": 206}});
    let u = usage(&body).unwrap().unwrap();
    assert_eq!(
        u,
        Usage {
            input_tokens: 88,
            cached_input_tokens: 64,
            output_tokens: 118,
            reasoning_tokens: 104,
            ..Usage::default()
        }
    );
    assert!(usage(&json!({"candidates": []})).is_none());
    for bad in [json!(-1), json!(1.5), json!("7"), json!(1_000_000_000_u64)] {
        assert!(usage(&json!({"usageMetadata": {"promptTokenCount": bad}})).unwrap().is_err(), "{bad}");
    }
}

#[test]
fn responses_decode_to_choices_with_tool_calls_and_finish_reasons() {
    let body = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": true},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CikBcsja+/=="},
            {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}}]},
        "finishReason": "STOP", "index": 0, "finishMessage": "Model generated function call(s)."}],
        "usageMetadata": {"promptTokenCount": 83, "candidatesTokenCount": 14, "thoughtsTokenCount": 104, "totalTokenCount": 201},
        "modelVersion": "gemini-2.5-flash", "responseId": "qpc2afWV"});
    let r = decode(&body, "gemini-2.5-flash", "fallback").unwrap();
    assert_eq!(r.id, "qpc2afWV");
    let c = &r.choices[0];
    assert_eq!(c.finish, Some(Finish::ToolCalls), "a function call ending in STOP is tool_calls");
    assert_eq!(c.text, None, "thoughts are not output text");
    assert_eq!(c.tool_calls.len(), 2);
    assert_eq!(c.tool_calls[0].signature.as_deref(), Some("CikBcsja+/=="));
    assert_eq!(c.tool_calls[1].signature, None);
    let out = chat::encode_response(&r, 7, "s");
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"], "{\"tz\":\"Europe/Paris\"}");
    assert_eq!(out["usage"]["completion_tokens"], 118);
    assert_eq!(out["usage"]["completion_tokens_details"]["reasoning_tokens"], 104);
    assert_eq!(out["id"], "chatcmpl-qpc2afWV");

    let finish = |reason: &str| {
        decode(&json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}), "m", "f")
    };
    for (reason, want) in [
        ("STOP", Finish::Stop),
        ("MAX_TOKENS", Finish::Length),
        ("SAFETY", Finish::ContentFilter),
        ("RECITATION", Finish::ContentFilter),
        ("PROHIBITED_CONTENT", Finish::ContentFilter),
        ("OTHER", Finish::Stop),
    ] {
        assert_eq!(finish(reason).unwrap().choices[0].finish, Some(want), "{reason}");
    }
    for reason in ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"] {
        let e = finish(reason).unwrap_err();
        assert_eq!((e.status, e.code), (502, "upstream_malformed_function_call"), "{reason}");
    }
    let blocked = decode(
        &json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}),
        "m",
        "f",
    )
    .unwrap();
    assert_eq!(blocked.choices[0].finish, Some(Finish::ContentFilter));
    assert_eq!(chat::encode_response(&blocked, 1, "s")["choices"][0]["message"]["content"], Value::Null);
    assert!(decode(&json!({"candidates": []}), "m", "f").is_err(), "no candidates and no block reason is invalid");
}

fn sse_events(dec: &mut StreamDecoder, chunks: &[Value]) -> Vec<Event> {
    chunks.iter().flat_map(|c| dec.chunk(&c.to_string())).collect()
}

#[test]
fn a_stream_numbers_tool_calls_across_chunks_and_keeps_the_last_usage() {
    let u = |c: u64| json!({"promptTokenCount": 4, "candidatesTokenCount": c, "thoughtsTokenCount": 10, "totalTokenCount": 14 + c});
    let chunks = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking"}]}, "index": 0}], "usageMetadata": u(1), "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "U0lH"}]}, "index": 0}], "usageMetadata": u(5)}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "b", "args": {}}}, {"functionCall": {"name": "c", "args": {}}}]}, "index": 0}], "usageMetadata": u(9)}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": u(12)}),
    ];
    let mut dec = StreamDecoder::default();
    let events = sse_events(&mut dec, &chunks);
    let indexes: Vec<u64> =
        events.iter().filter_map(|e| if let Event::ToolCall { index, .. } = e { Some(*index) } else { None }).collect();
    assert_eq!(indexes, [0, 1, 2], "distinct indexes across and within chunks");
    assert!(
        events.contains(&Event::Finish { choice: 0, finish: Finish::ToolCalls }),
        "STOP chunks after a call is tool_calls"
    );
    let last_usage = events.iter().rev().find_map(|e| if let Event::Usage(u) = e { Some(*u) } else { None }).unwrap();
    assert_eq!(last_usage.output_tokens, 22, "the last cumulative value (12 + 10 thoughts), never a sum");
    assert_eq!(dec.id.as_deref(), Some("r1"));
    assert!(dec.finished);

    let mut enc = chat::ChunkEncoder::new("r1", "gemini-2.5-flash", 5, "s", true);
    let mut wire: Vec<u8> = events.iter().flat_map(|e| enc.encode(e)).collect();
    wire.extend(enc.finish());
    let text = String::from_utf8(wire).unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    let datas: Vec<Value> =
        frames.iter().filter(|f| **f != "data: [DONE]").map(|f| serde_json::from_str(&f[6..]).unwrap()).collect();
    assert_eq!(datas[0]["choices"][0]["delta"]["role"], "assistant", "role in the first chunk only");
    assert!(datas[1]["choices"][0]["delta"].get("role").is_none());
    assert_eq!(
        datas[1]["choices"][0]["delta"]["tool_calls"][0]["id"].as_str().unwrap().split("__ts_").nth(1),
        Some("U0lH")
    );
    assert_eq!(datas[4]["choices"][0]["finish_reason"], "tool_calls");
    assert!(datas[..5].iter().all(|d| d["usage"].is_null()), "usage null on every other chunk");
    assert_eq!(datas[5]["choices"], json!([]));
    assert_eq!(datas[5]["usage"]["completion_tokens"], 22);
    assert_eq!(*frames.last().unwrap(), "data: [DONE]");

    // Without include_usage: no usage field at all, still [DONE].
    let mut enc = chat::ChunkEncoder::new("r1", "m", 5, "s", false);
    let mut wire: Vec<u8> = events.iter().flat_map(|e| enc.encode(e)).collect();
    wire.extend(enc.finish());
    let text = String::from_utf8(wire).unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn stream_errors_blocked_prompts_and_malformed_calls_end_the_stream_with_an_error_event() {
    let mut dec = StreamDecoder::default();
    let events = sse_events(
        &mut dec,
        &[
            json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}, "index": 0}]}),
            json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
        ],
    );
    let Event::Error(e) = &events[1] else { panic!("{events:?}") };
    assert_eq!((e.status, e.code), (503, "upstream_unavailable"));
    let mut enc = chat::ChunkEncoder::new("r", "m", 1, "s", true);
    let mut wire: Vec<u8> = events.iter().flat_map(|e| enc.encode(e)).collect();
    wire.extend(enc.finish());
    let text = String::from_utf8(wire).unwrap();
    assert!(text.contains("data: {\"error\":{"), "{text}");
    assert!(!text.contains("[DONE]"), "no [DONE] after an error");

    let mut dec = StreamDecoder::default();
    let events = sse_events(
        &mut dec,
        &[json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 3}})],
    );
    assert_eq!(events[0], Event::Finish { choice: 0, finish: Finish::ContentFilter });

    let mut dec = StreamDecoder::default();
    let events =
        sse_events(&mut dec, &[json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}]})]);
    assert!(matches!(&events[0], Event::Error(e) if e.code == "upstream_malformed_function_call"));
    assert!(
        matches!(&StreamDecoder::default().chunk("{nope")[0], Event::Error(e) if e.code == "upstream_invalid_response")
    );
}

#[test]
fn gemini_errors_become_openai_errors_with_the_status_mapped() {
    let body = |status: &str, code: u16| {
        json!({"error": {"code": code, "message": format!("msg {status}"), "status": status}}).to_string()
    };
    type Case<'a> = (u16, String, Option<&'a str>, u16, &'a str, Option<u64>);
    let cases: &[Case<'_>] = &[
        (400, body("INVALID_ARGUMENT", 400), None, 400, "invalid_argument", None),
        (403, body("PERMISSION_DENIED", 403), None, 403, "upstream_permission_denied", None),
        (404, body("NOT_FOUND", 404), None, 404, "model_not_found", None),
        (
            429,
            json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31.2s"}]}})
            .to_string(),
            None,
            429,
            "resource_exhausted",
            Some(32),
        ),
        (429, body("RESOURCE_EXHAUSTED", 429), Some("7"), 429, "resource_exhausted", Some(7)),
        (500, body("INTERNAL", 500), None, 502, "upstream_error", None),
        (503, body("UNAVAILABLE", 503), None, 503, "upstream_unavailable", None),
        (500, format!("[{}]", body("INTERNAL", 500)), None, 502, "upstream_error", None),
        (502, "<html>bad gateway</html>".to_string(), None, 502, "upstream_error", None),
    ];
    for (status, raw, header, want_status, want_code, retry) in cases {
        let e = crate::core::provider::ProviderKind::Gemini.error(*status, raw.as_bytes(), *header);
        assert_eq!((e.status, e.code, e.retry_after_secs), (*want_status, *want_code, *retry), "{raw}");
        assert!(e.message.starts_with("gemini: "));
    }
}

#[test]
fn model_names_reach_the_url_only_as_one_safe_segment() {
    for (model, ok) in [
        ("gemini-2.5-flash", Some("gemini-2.5-flash")),
        ("models/gemini-2.5-pro", Some("gemini-2.5-pro")),
        ("gemini-2.5-flash:generateContent", None),
        ("../files", None),
        ("a/b", None),
        ("x?key=1", None),
        ("", None),
        (".hidden", None),
        ("gemini%2f", None),
    ] {
        assert_eq!(super::model_segment(model).ok(), ok, "{model}");
    }
    assert_eq!(super::generate_target("m", true), "/models/m:streamGenerateContent?alt=sse");
    assert_eq!(super::models_target(Some("a b/c")), "/models?pageSize=1000&pageToken=a%20b%2Fc");
}

#[test]
fn embeddings_batch_at_the_cap_and_come_back_as_floats_or_base64() {
    let inputs: Vec<String> = (0..3).map(|i| format!("t{i}")).collect();
    let body = json!({"model": "gemini-embedding-001", "input": inputs, "dimensions": 2, "encoding_format": "base64", "user": "u"});
    let (req, ignored) = embed::decode_request(body.as_object().unwrap()).unwrap();
    assert_eq!(ignored, ["user"]);
    assert!(req.base64);
    let batch = gembed::encode_batch(&req, "gemini-embedding-001", &req.inputs[..2]);
    assert_eq!(
        batch["requests"][1],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "t1"}]}, "outputDimensionality": 2})
    );
    let answer = json!({"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 2.0]}]});
    let (vectors, tokens) = gembed::decode_batch(&answer, 2).unwrap();
    assert_eq!((vectors.len(), tokens), (2, None));
    assert!(gembed::decode_batch(&answer, 3).is_err(), "a short answer is invalid, never misaligned");
    let out = embed::encode_response("gemini-embedding-001", &vectors, 4, true);
    let b64 = out["data"][0]["embedding"].as_str().unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    assert_eq!(bytes, [0.5f32.to_le_bytes(), (-1.0f32).to_le_bytes()].concat());
    assert_eq!(embed::encode_response("m", &vectors, 4, false)["data"][1]["embedding"], json!([0.25, 2.0]));
    let (_, t) =
        gembed::decode_batch(&json!({"embeddings": [{"values": [1.0]}], "usageMetadata": {"promptTokenCount": 5}}), 1)
            .unwrap();
    assert_eq!(t, Some(5));
    for (bad, param) in [
        (json!({"model": "m", "input": [[1, 2]]}), "input"),
        (json!({"model": "m", "input": []}), "input"),
        (json!({"model": "m", "input": "x", "encoding_format": "int8"}), "encoding_format"),
        (json!({"model": "m", "input": "x", "dimensions": 0}), "dimensions"),
        (json!({"model": "m", "input": "x", "extra": 1}), "extra"),
    ] {
        assert_eq!(embed::decode_request(bad.as_object().unwrap()).unwrap_err().param, param, "{bad}");
    }
}

#[test]
fn model_lists_come_back_in_openai_shape() {
    let page = json!({"models": [{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash"},
                                  {"name": "models/gemini-embedding-001"}], "nextPageToken": "p2"});
    let (models, next) = gembed::decode_models(&page).unwrap();
    assert_eq!(next.as_deref(), Some("p2"));
    let list = embed::encode_models(&models);
    assert_eq!(
        list["data"][0],
        json!({"id": "gemini-2.5-flash", "object": "model", "created": 0, "owned_by": "google"})
    );
    assert_eq!(gembed::decode_models(&json!({})).unwrap().0.len(), 0);
    assert!(gembed::decode_models(&json!({"models": [{"displayName": "x"}]})).is_err());
}
