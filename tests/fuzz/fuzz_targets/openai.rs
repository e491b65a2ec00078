//! The OpenAI request/response readers never panic on any body, and a rewritten stream event is
//! always shorter than the original.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::core::openai::{body_usage, chat_event, peek_request, stream_event_usage, ChatEvent, Route};

fuzz_target!(|data: &[u8]| {
    for route in [Route::ChatCompletions, Route::Responses, Route::Completions, Route::Embeddings] {
        if let Ok(p) = peek_request(&route, data) {
            assert!((1..=prodex::core::openai::MAX_CHOICES).contains(&p.choices));
        }
    }
    let _ = body_usage(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = stream_event_usage(text);
        for wants in [false, true] {
            if let (_, ChatEvent::Rewrite(bytes)) = chat_event(data, text, wants) {
                assert!(bytes.len() < data.len());
            }
        }
    }
});
