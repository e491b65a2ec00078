//! The official `openai` Python SDK as a real client. `scripts/test.sh` installs it into a venv
//! and sets `PRODEX_TEST_PYTHON`; without it this test fails (it is never skipped).

use std::process::Command;

use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

/// Runs `tests/sdk/{script}` against `gw` with `key`; its stdout, after asserting it succeeded.
pub(crate) fn run_script(gw: &Gateway, script: &str, key: &str) -> String {
    let python = std::env::var("PRODEX_TEST_PYTHON")
        .expect("PRODEX_TEST_PYTHON is not set: run the suite through scripts/test.sh, which installs the openai SDK");
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(path)
        .env("PRODEX_BASE_URL", format!("http://{}/v1", gw.addr))
        .env("PRODEX_BASE_URL_ROOT", format!("http://{}", gw.addr))
        .env("PRODEX_KEY", key)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "SDK script {script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The Gemini bridge (`--provider gemini`, key `gk-sdk`) in front of the mock's Gemini dialect.
fn gemini_bridge(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(format!("http://{}/v1beta", mock.addr)),
        args: vec!["--provider", "gemini"],
        env: vec![("PRODEX_GATEWAY_TOKEN", "sdk-master".into()), ("GEMINI_API_KEY", "gk-sdk".into())],
        ..Opts::default()
    })
}

#[test]
fn openai_python_sdk_works_unchanged() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", "sdk-master".into())],
        ..Opts::default()
    });
    let stdout = run_script(&gw, "openai_sdk.py", "sdk-master");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    // The SDK's own headers (~17 of them) must have reached the upstream intact.
    let seen = mock.requests();
    assert!(seen.iter().any(|s| s.header("x-stainless-lang") == Some("python")), "SDK headers were not forwarded");
    assert!(seen.iter().all(|s| s.header("authorization").is_none()), "the master token must not reach the upstream");
}

#[test]
fn openai_sdk_does_not_retry_an_exhausted_budget() {
    let mock = Mock::start();
    let mut gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some("[[gateway.virtual_keys]]\nname = \"spent\"\ntoken_env = \"SPENT\"\nrequest_budget = 0\n"),
        env: vec![("SPENT", "pk-spent".into())],
        ..Opts::default()
    });
    run_script(&gw, "budget_exhausted.py", "pk-spent");
    assert_eq!(mock.count(), 0);
    gw.signal(libc::SIGTERM);
    gw.wait_exit(std::time::Duration::from_secs(10));
    let lines = gw.stderr_text().matches("key=spent").count();
    assert_eq!(lines, 1, "the SDK must not have retried (one access line per call)");
}

#[test]
fn openai_python_sdk_works_through_the_gemini_bridge() {
    let mock = Mock::start();
    let gw = gemini_bridge(&mock);
    let stdout = run_script(&gw, "gemini_sdk.py", "sdk-master");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    let seen = mock.requests();
    assert!(seen.iter().all(|s| s.header("x-goog-api-key") == Some("gk-sdk")), "every call carried the provider key");
    assert!(seen.iter().all(|s| s.header("authorization").is_none() && !s.path.contains("key=")));
}

#[test]
fn anthropic_python_sdk_works_through_the_gemini_bridge() {
    let mock = Mock::start();
    let gw = gemini_bridge(&mock);
    let stdout = run_script(&gw, "anthropic_sdk.py", "sdk-master");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    let seen = mock.requests();
    assert!(seen.iter().any(|s| s.path.ends_with(":countTokens")), "count_tokens went to Gemini's counter");
    assert!(seen.iter().all(|s| s.header("x-goog-api-key") == Some("gk-sdk") && s.header("x-api-key").is_none()));
}

/// `--provider anthropic` (key `ak-sdk`) in front of the mock's Anthropic dialect.
fn anthropic_upstream(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(format!("http://{}/anthropic/v1", mock.addr)),
        args: vec!["--provider", "anthropic"],
        env: vec![("PRODEX_GATEWAY_TOKEN", "sdk-master".into()), ("ANTHROPIC_API_KEY", "ak-sdk".into())],
        ..Opts::default()
    })
}

#[test]
fn anthropic_python_sdk_works_through_to_an_anthropic_upstream() {
    let mock = Mock::start();
    let gw = anthropic_upstream(&mock);
    let stdout = run_script(&gw, "anthropic_passthrough.py", "sdk-master");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    let seen = mock.requests();
    assert!(seen.iter().any(|s| s.path.ends_with("/messages?beta=true") && s.header("anthropic-beta").is_some()));
    assert!(seen.iter().all(|s| s.header("x-api-key") == Some("ak-sdk")), "every call carried the provider key");
}

#[test]
fn openai_python_sdk_works_through_to_an_anthropic_upstream() {
    let mock = Mock::start();
    let gw = anthropic_upstream(&mock);
    let stdout = run_script(&gw, "openai_to_anthropic.py", "sdk-master");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    let seen = mock.requests();
    assert!(seen.iter().all(|s| s.path == "/anthropic/v1/messages" && s.header("authorization").is_none()));
    assert!(seen.iter().all(|s| s.header("anthropic-version") == Some("2023-06-01")));
}

#[test]
fn anthropic_python_sdk_works_through_to_an_openai_upstream() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", "sdk-master".into()), ("OPENAI_API_KEY", "sk-upstream".into())],
        ..Opts::default()
    });
    let stdout = run_script(&gw, "anthropic_to_openai.py", "sdk-master");
    assert!(stdout.contains("ALL OK"), "{stdout}");
    let seen = mock.requests();
    assert!(seen.iter().all(|s| s.path == "/v1/chat/completions"), "every call became a chat completion");
    assert!(seen
        .iter()
        .all(|s| s.header("authorization") == Some("Bearer sk-upstream") && s.header("x-api-key").is_none()));
}
