//! policy.toml: any text yields a config or a list of errors — never a panic.
#![no_main]
use std::collections::BTreeMap;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use prodex::config::{load, Flags, Inputs};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env: BTreeMap<String, String> = [("TOKEN", "t"), ("PRODEX_GATEWAY_TOKEN", "m")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let flags = Flags::default();
    let inputs = Inputs { flags: &flags, env: &env, home: PathBuf::from("/h"), policy: Some(("policy.toml", text)), cpus: 2 };
    if let Err(errors) = load(&inputs) {
        assert!(!errors.is_empty());
    }
});
