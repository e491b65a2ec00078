//! The Gemini bridge never panics on any body, in either direction, and what it writes is
//! always well-formed: request bodies are JSON objects with `contents`, every chat chunk,
//! Responses event and Anthropic event parses (the OpenAI, Responses and Messages decoders run too), and a tool call's signature comes back out of the id it was put in.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::core::anthropic::messages;
use prodex::core::gemini::{self, embed as gembed, request, response};
use prodex::core::ir::{Event, StreamEncoder};
use prodex::core::openai::{chat, embed, responses};
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

fuzz_target!(|data: &[u8]| {
    let _ = prodex::core::provider::ProviderKind::Gemini.error(502, data, std::str::from_utf8(data).ok());
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    if let Some(obj) = value.as_object() {
        let decoders = [
            chat::decode_request(obj),
            responses::decode_request(obj),
            messages::decode_request(obj, false),
            messages::decode_request(obj, true),
        ];
        for decoded in decoders.into_iter().flatten() {
            if let Ok(body) = request::encode(&decoded.request) {
                assert!(body["contents"].is_array());
            }
            // The built-in mock answers anything decodable, and its stream says what its answer says.
            let answer = prodex::core::mock::answer(&decoded.request, "f");
            let streamed: String = prodex::core::mock::events(&answer)
                .iter()
                .filter_map(|e| if let Event::Text { text, .. } = e { Some(text.as_str()) } else { None })
                .collect();
            assert_eq!(streamed, answer.choices[0].text.clone().unwrap_or_default());
        }
        if let Ok((req, _)) = embed::decode_request(obj) {
            let _ = gembed::encode_batch(&req, "m", &req.inputs);
            let (vectors, _) = prodex::core::mock::embed(&req);
            assert_eq!(vectors.len(), req.inputs.len());
        }
    }
    let _ = gembed::decode_models(&value);
    let _ = gembed::decode_batch(&value, 2);
    if let Ok(r) = response::decode(&value, "m", "id") {
        let out = chat::encode_response(&r, 1, "seed");
        for (c, choice) in r.choices.iter().zip(out["choices"].as_array().into_iter().flatten()) {
            for (t, wire) in c.tool_calls.iter().zip(choice["message"]["tool_calls"].as_array().into_iter().flatten()) {
                let id = wire["id"].as_str().unwrap();
                let (_, sig) = chat::split_call_id(id);
                let carried = t.signature.as_deref().is_some_and(|s| s.chars().any(|c| c != '='));
                assert_eq!(sig.is_some(), carried, "{id}");
            }
        }
        let _ = responses::encode_response(&r, 1, "seed");
        let _ = messages::encode_message(&r, "seed");
    }
    let text = String::from_utf8_lossy(data);
    let mut dec = response::StreamDecoder::default();
    let mut chunks = chat::ChunkEncoder::new("id", "m", 1, "seed", true);
    let mut events = responses::EventEncoder::new("id", "m", 1, "seed");
    let mut anthropic = messages::EventEncoder::new("id", "m", "seed");
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        for e in dec.chunk(line) {
            if let Event::ToolCall { call, .. } = &e {
                assert!(serde_json::from_str::<Value>(&call.arguments).is_ok());
            }
            a.extend(StreamEncoder::encode(&mut chunks, &e));
            b.extend(events.encode(&e));
            c.extend(anthropic.encode(&e));
        }
    }
    a.extend(StreamEncoder::finish(&mut chunks));
    b.extend(events.finish());
    c.extend(anthropic.finish());
    frames_parse(&a);
    frames_parse(&b);
    frames_parse(&c);
});
