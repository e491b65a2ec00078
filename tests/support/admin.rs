//! Admin-plane helpers: authenticated requests, and reading the names a route shows (from JSON,
//! CSV parsed with the `csv` crate, or Prometheus text).

#![allow(dead_code)]

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::client::{self, Response};
use crate::support::Gateway;

/// `method /v1/prodex/gateway/{path}` with `Authorization: Bearer {bearer}`.
pub fn call(
    gw: &Gateway,
    bearer: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Response {
    let auth = format!("Bearer {bearer}");
    let mut h: Vec<(&str, &str)> = Vec::new();
    if !bearer.is_empty() {
        h.push(("authorization", auth.as_str()));
    }
    if body.is_some() {
        h.push(("content-type", "application/json"));
    }
    h.extend_from_slice(extra);
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    client::request(gw.addr, method, &format!("/v1/prodex/gateway/{path}"), &h, &bytes)
}

pub fn get(gw: &Gateway, bearer: &str, path: &str) -> Response {
    call(gw, bearer, "GET", path, None, &[])
}

/// Values of `field` in a JSON list's `data`.
pub fn field_set(r: &Response, field: &str) -> BTreeSet<String> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"].as_array().unwrap().iter().filter_map(|d| d[field].as_str().map(String::from)).collect()
}

/// Parses CSV with a real parser: the header and the records.
pub fn parse_csv(r: &Response) -> (Vec<String>, Vec<Vec<String>>) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(r.body.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let records: Vec<Vec<String>> =
        reader.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect();
    for rec in &records {
        assert_eq!(rec.len(), header.len(), "every CSV record has the header's width");
    }
    (header, records)
}

/// The values of column `name` in a parsed CSV.
pub fn column(csv: &(Vec<String>, Vec<Vec<String>>), name: &str) -> Vec<String> {
    let i = csv.0.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    csv.1.iter().map(|r| r[i].clone()).collect()
}

/// Every `key="…"` label value in a Prometheus exposition.
pub fn metric_keys(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut rest = line;
        while let Some(i) = rest.find("key=\"") {
            // `key=` must start a label (after `{` or `,`), not end another label's name.
            let starts_label = i == 0 || matches!(rest.as_bytes()[i - 1], b'{' | b',');
            let after = &rest[i + 5..];
            let end = after.find('"').unwrap();
            if starts_label {
                out.insert(after[..end].to_string());
            }
            rest = &after[end..];
        }
    }
    out
}

/// Names as a set.
pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

/// `prodex gateway keys {args}` on `home`: (exit code, stdout, stderr).
pub fn keys_cli(home: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(crate::support::bin())
        .env_clear()
        .env("PRODEX_HOME", home)
        .args(["gateway", "keys"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates a key through the admin API as `admin` with `body`; returns its token once the
/// gateway's key map has loaded it (the keyring refreshes every second; polled, never slept).
pub fn create_key(gw: &Gateway, admin: &str, body: &Value) -> String {
    let r = call(gw, admin, "POST", "keys", Some(body), &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    wait_for_key(gw, &token);
    token
}

/// Waits until `token` authenticates on the data plane (model listings are free, so polling
/// costs the key nothing).
pub fn wait_for_key(gw: &Gateway, token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.get_with("/v1/models", &[("authorization", &format!("Bearer {token}"))]).status == 401 {
        assert!(std::time::Instant::now() < deadline, "the key never loaded");
    }
}

/// The ledger row of the call that answered `r` (polled: async rows land within 50 ms).
pub fn row_of(gw: &Gateway, bearer: &str, r: &Response) -> Value {
    let id = r.header("x-prodex-call-id").unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = call(gw, bearer, "GET", "ledger?limit=1000", None, &[]);
        if let Some(row) = page.json()["data"].as_array().unwrap().iter().find(|row| row["call_id"] == id.as_str()) {
            return row.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no ledger row for {id}");
    }
}
