//! HTTP request heads: any bytes parse to a head, "need more", or a typed error — never a panic,
//! and a parsed head never claims more bytes than it was given.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::http::codec::{parse_head, HeadLimits};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, used))) = parse_head(data, HeadLimits::default()) {
        assert!(used <= data.len());
        let _ = (head.path(), head.query());
    }
});
