//! The Anthropic egress, and the OpenAI egress that serves Anthropic clients, never panic on any
//! body, in either direction, and what they write is always well-formed: Anthropic request bodies
//! are JSON objects with `model`, a positive `max_tokens` and messages that alternate roles with no
//! empty content, tool ids in Anthropic's charset; chat bodies have messages; every chat chunk,
//! Responses event and Anthropic event (with its `event:` line) the stream decoders feed parses;
//! the passthrough meter and the stream decoder agree on the usage.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::core::anthropic::{messages, request, response};
use prodex::core::openai::egress;
use prodex::core::provider::ProviderKind;
use prodex::core::ir::{Event, StreamEncoder};
use prodex::core::openai::{chat, responses};
use serde_json::Value;

fn frames_parse(wire: &[u8]) {
    let text = std::str::from_utf8(wire).expect("encoders write UTF-8");
    for frame in text.split("\n\n").filter(|f| !f.is_empty()) {
        let data = frame.lines().find_map(|l| l.strip_prefix("data: ")).expect("every frame has data");
        if data != "[DONE]" {
            serde_json::from_str::<Value>(data).expect("every frame's data is JSON");
        }
    }
}

fn legal_id(v: &Value) -> bool {
    v.as_str().is_some_and(|id| {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fuzz_target!(|data: &[u8]| {
    for kind in [ProviderKind::Anthropic, ProviderKind::OpenAi] {
        let _ = kind.error(529, data, std::str::from_utf8(data).ok());
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    if let Some(obj) = value.as_object() {
        for decoded in [chat::decode_request(obj), responses::decode_request(obj)].into_iter().flatten() {
            let Ok(body) = request::encode(&decoded.request) else { continue };
            assert!(body["model"].is_string() && body["max_tokens"].as_u64().is_some_and(|m| m > 0));
            if let Some(b) = body["thinking"]["budget_tokens"].as_u64() {
                assert!(b >= 1024 && b < body["max_tokens"].as_u64().unwrap(), "{body}");
            }
            let msgs = body["messages"].as_array().unwrap();
            for pair in msgs.windows(2) {
                assert_ne!(pair[0]["role"], pair[1]["role"], "roles alternate");
            }
            for m in msgs {
                let blocks = m["content"].as_array().unwrap();
                assert!(!blocks.is_empty(), "no empty message");
                for b in blocks {
                    match b["type"].as_str() {
                        Some("tool_use") => assert!(legal_id(&b["id"]) && b["input"].is_object()),
                        Some("tool_result") => assert!(legal_id(&b["tool_use_id"])),
                        Some("text") => assert!(!b["text"].as_str().unwrap().trim().is_empty()),
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some(obj) = value.as_object() {
        if let Ok(decoded) = messages::decode_request(obj, false) {
            if let Ok(body) = egress::encode(&decoded.request) {
                assert!(body["messages"].is_array() && body["model"].is_string());
            }
        }
    }
    let _ = egress::decode(&value, "m", "id").map(|r| messages::encode_message(&r, "seed"));
    let _ = response::usage(&value);
    if let Ok(r) = response::decode(&value, "m", "id") {
        let _ = chat::encode_response(&r, 1, "seed");
        let _ = responses::encode_response(&r, 1, "seed");
    }
    let text = String::from_utf8_lossy(data);
    let mut dec = response::StreamDecoder::default();
    let mut counts = response::Counts::default();
    let mut chunks = chat::ChunkEncoder::new("id", "m", 1, "seed", true);
    let mut events = responses::EventEncoder::new("id", "m", 1, "seed");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut decoded_usage, mut metered_usage) = (None, None);
    for line in text.lines() {
        if let Some(u) = response::stream_usage(&mut counts, line) {
            metered_usage = u.ok().or(metered_usage);
        }
        for e in dec.chunk(line) {
            if let Event::Usage(u) = &e {
                decoded_usage = Some(*u);
            }
            a.extend(StreamEncoder::encode(&mut chunks, &e));
            b.extend(events.encode(&e));
        }
    }
    if dec.invalid_usage.is_none() {
        assert_eq!(decoded_usage, metered_usage, "the translated and the passthrough meters agree");
    }
    a.extend(StreamEncoder::finish(&mut chunks));
    b.extend(events.finish());
    frames_parse(&a);
    frames_parse(&b);
    // An OpenAI stream written as Anthropic events: every frame named, and named as its data says.
    let mut dec = egress::StreamDecoder::default();
    let mut anthropic = messages::EventEncoder::new("id", "m", "seed");
    let mut c = Vec::new();
    for line in text.lines() {
        for e in dec.chunk(line) {
            c.extend(anthropic.encode(&e));
        }
    }
    c.extend(anthropic.finish());
    frames_parse(&c);
    for frame in std::str::from_utf8(&c).unwrap().split("\n\n").filter(|f| !f.is_empty()) {
        let kind = frame.lines().find_map(|l| l.strip_prefix("event: ")).expect("every Anthropic frame has its event line");
        let data: Value = serde_json::from_str(frame.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
        assert_eq!(data["type"], kind);
    }
});
