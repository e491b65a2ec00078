//! Admin-plane input: any query string and any JSON body yield a parsed request or an error naming
//! the parameter — never a panic (query strings, ledger filters, group_by, key create/PATCH bodies,
//! CSV cells).
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::core::csv::push_text;
use prodex::core::keyspec::{parse_create, parse_patch};
use prodex::core::query::{group_by, ledger_query, Params};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(params) = Params::parse(Some(text)) {
        let _ = params.only(&["from", "to", "key", "status", "group_by", "limit", "cursor"], &["group_by"]);
        let _ = params.limit(100, 500);
        let _ = params.cursor();
        let _ = ledger_query(&params);
        let _ = group_by(&params);
    }
    let mut cell = String::new();
    push_text(&mut cell, text);
    assert!(cell.len() >= text.len());
    if let Ok(body) = serde_json::from_str::<serde_json::Value>(text) {
        if let Err(e) = parse_create(&body) {
            assert!(!e.param.is_empty());
        }
        let _ = parse_patch(&body);
    }
});
