//! SSE decoding: the concatenated raw bytes of the events plus the remainder equal the input, in
//! any split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::core::sse::Decoder;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let step = usize::from(data[0] % 13) + 1;
    let input = &data[1..];
    let mut d = Decoder::default();
    let mut raw = Vec::new();
    for piece in input.chunks(step) {
        for event in d.feed(piece).expect("small inputs never exceed the event limit") {
            raw.extend_from_slice(&event.raw);
        }
    }
    raw.extend_from_slice(d.remainder());
    assert_eq!(raw, input);
});
