//! The admin plane checked by real third-party tools: `promtool check metrics` on the exposition
//! (hostile label values included), and the OpenAPI document through `openapi-spec-validator` and
//! a `schemathesis` run against the live gateway (scripts/check-openapi). scripts/test.sh installs
//! the tools and passes their paths; a missing tool fails the test, it is never skipped.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::admin::{call, get};
use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-secret-contract";

fn tool(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the suite through scripts/test.sh, which installs it"))
}

fn gateway(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into())],
        ..Opts::default()
    })
}

#[test]
fn metrics_pass_promtool_with_hostile_labels() {
    let promtool = tool("PRODEX_TEST_PROMTOOL");
    let mock = Mock::start();
    let gw = gateway(&mock);
    let r = call(&gw, MASTER, "POST", "keys", Some(&json!({"name": "team-a.x_1", "budget_usd": 3})), &[]);
    let token = r.json()["token"].as_str().unwrap().to_string();
    for model in ["gpt-4o-mini", "we\"ird\\model\nname", "text-embedding-3-small"] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        gw.post_json("/v1/chat/completions", &[("authorization", &format!("Bearer {token}"))], &body);
    }
    // A hostile name becomes a label only when the call was answered (refused calls fold into
    // `_refused`): sent with the master token (no budget), the mock answers it.
    let weird = json!({"model": "we\"ird\\model\nname", "messages": [{"role": "user", "content": "hi"}]});
    gw.post_json("/v1/chat/completions", &[("authorization", &format!("Bearer {MASTER}"))], &weird);
    gw.post_json("/v1/chat/completions", &[("authorization", "Bearer pk-unknown")], &json!({"model": "m"}));
    gw.post_json(
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {MASTER}")), ("x-mock-status", "503")],
        &json!({"model": "gpt-4o"}),
    );
    let text = get(&gw, MASTER, "metrics").text();
    for family in [
        "prodex_gateway_requests_total",
        "prodex_gateway_request_duration_seconds_bucket",
        "prodex_gateway_tokens_total",
        "prodex_gateway_spend_usd_total",
        "prodex_gateway_key_budget_remaining_usd",
        "prodex_gateway_rejections_total",
        "prodex_gateway_upstream_errors_total",
        "prodex_gateway_upstream_health",
        "prodex_gateway_upstream_attempts_total",
        "prodex_gateway_target_failures_total",
        "prodex_gateway_in_flight_requests",
        "prodex_gateway_build_info",
        "prodex_gateway_virtual_key_requests_total",
        "prodex_gateway_virtual_key_minute_requests",
    ] {
        assert!(text.contains(&format!("\n{family}")), "{family} missing:\n{text}");
    }
    // Quotes and backslashes escaped; the control character was made printable when recorded.
    assert!(text.contains(r#"model="we\"ird\\model?name""#), "label values are escaped:\n{text}");
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openapi_validates_and_schemathesis_finds_nothing() {
    let python = tool("PRODEX_TEST_PYTHON");
    let mock = Mock::start();
    let gw = gateway(&mock);
    let doc = get(&gw, MASTER, "openapi.json").json();
    // The router and the document agree on every admin operation and its role.
    let ops = prodex::core::openapi::operations();
    assert!(ops.len() >= 18, "{ops:?}");
    for (path, method, role) in ops {
        let op = &doc["paths"][format!("/v1/prodex/gateway/{path}")][method.to_ascii_lowercase()];
        assert_eq!(op["x-prodex-role"], role, "{method} {path}");
        let concrete = path.replace("{name}", "no-such-key");
        let r = call(&gw, "", method, &concrete, None, &[]);
        let public = role == "public";
        assert_eq!(r.status == 401, !public, "{method} {path} without a credential: {}", r.status);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-openapi");
    let out = Command::new(script).args([&format!("http://{}", gw.addr), MASTER, &python]).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/check-openapi failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
