//! The container, reproduced around the binary (no Docker engine runs here): the image's ENV and
//! CMD read from the Dockerfile, the values of deploy/gateway.env.example, temp dirs standing in for
//! the two volumes; then the image's HEALTHCHECK command and the log layout are checked.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::{bin, Gateway, TempDir};

const DOCKERFILE: &str = include_str!("../Dockerfile");
const ENV_EXAMPLE: &str = include_str!("../deploy/gateway.env.example");

/// `ENV A=1 \ B=2` lines of the final stage.
fn image_env() -> BTreeMap<String, String> {
    let final_stage = DOCKERFILE.rsplit("\nFROM ").next().unwrap();
    let joined = final_stage.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn image_json_array(instruction: &str) -> Vec<String> {
    let line = DOCKERFILE.lines().find(|l| l.starts_with(instruction)).unwrap();
    serde_json::from_str(line[instruction.len()..].trim()).unwrap()
}

/// The example env file as written, placeholders included.
fn example_env_as_shipped() -> BTreeMap<String, String> {
    ENV_EXAMPLE
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.split(" #").next().unwrap().trim().to_string()))
        .collect()
}

/// The example env file after the seed page's `$EDITOR deploy/gateway.env`: every placeholder
/// replaced by a real-looking secret.
fn example_env() -> BTreeMap<String, String> {
    let pid = std::process::id();
    example_env_as_shipped()
        .into_iter()
        .map(|(k, v)| {
            let filled = v.replace("replace-with-a-long-random-token", &format!("tok-{pid}-3f9a1c77e2b64d08"));
            let filled = filled.replace("replace-with-a-long-random-password", &format!("pw-{pid}-91b2c3d4e5f6a7b8"));
            (k, filled.replace("replace-me", "filled-in-key"))
        })
        .collect()
}

/// B12: the example env file's placeholders are refused on the container's public listener.
#[test]
fn the_example_envs_placeholders_are_refused_on_a_public_listener() {
    let home = TempDir::new("b12");
    let out = Command::new(bin())
        .env_clear()
        .envs(example_env_as_shipped())
        .env("PRODEX_HOME", &home.0)
        .args(["gateway", "check", "--listen", "0.0.0.0:4000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PRODEX_GATEWAY_TOKEN: is a placeholder from the example env file"), "{err}");
    assert!(!err.contains("replace-with-a-long-random-token"), "the value itself is never printed: {err}");
    let out = Command::new(bin())
        .env_clear()
        .envs(example_env())
        .env("PRODEX_HOME", &home.0)
        .args(["gateway", "check", "--listen", "0.0.0.0:4000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn container_equivalent_run_is_healthy_and_logs_to_the_log_volume() {
    let env = image_env();
    assert_eq!(env.get("PRODEX_HOME").map(String::as_str), Some("/var/lib/prodex"));
    assert_eq!(env.get("PRODEX_RUNTIME_LOG_DIR").map(String::as_str), Some("/var/log/prodex"));
    assert_eq!(image_json_array("ENTRYPOINT"), ["prodex"]);
    let cmd_args = image_json_array("CMD");
    assert_eq!(cmd_args, ["gateway", "--listen", "0.0.0.0:4000"]);

    let home_volume = TempDir::new("volume-home");
    let log_volume = TempDir::new("volume-logs");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut container_env = example_env();
    container_env.extend(env);
    container_env.insert("PRODEX_HOME".into(), home_volume.0.display().to_string());
    container_env.insert("PRODEX_RUNTIME_LOG_DIR".into(), log_volume.0.display().to_string());

    // The image's CMD, with the fixed port 4000 swapped for a free one.
    let args: Vec<String> = cmd_args.iter().map(|a| a.replace(":4000", &format!(":{port}"))).collect();
    let mut cmd = Command::new(bin());
    cmd.env_clear().envs(&container_env).args(&args);
    let gw = Gateway::spawn(cmd, TempDir::new("unused"));
    assert!(!gw.stderr_text().contains(&container_env["PRODEX_GATEWAY_TOKEN"]), "a secret reached the log");

    // The image's HEALTHCHECK command, as Docker runs it (same env; the listen port is the one we moved).
    let health = Command::new(bin())
        .args(&image_json_array("HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD")[1..])
        .env_clear()
        .envs(&container_env)
        .env("PRODEX_GATEWAY_LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert!(health.status.success(), "healthcheck failed: {}", String::from_utf8_lossy(&health.stderr));
    assert!(String::from_utf8_lossy(&health.stdout).contains("\"status\":\"ready\""));

    // The seed page's curl for the OpenAPI document, as written (port moved), with the env file's token.
    let curl = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "curl -sS --fail http://127.0.0.1:{port}/v1/prodex/gateway/openapi.json \\\n-H \"Authorization: Bearer $PRODEX_GATEWAY_TOKEN\""
        ))
        .env("PRODEX_GATEWAY_TOKEN", &container_env["PRODEX_GATEWAY_TOKEN"])
        .output()
        .expect("curl is needed for the seed page's command (apt-get install curl)");
    assert!(curl.status.success(), "seed curl failed: {}", String::from_utf8_lossy(&curl.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every admin URL the seed page names answers the same token.
    let token = format!("Bearer {}", container_env["PRODEX_GATEWAY_TOKEN"]);
    for path in ["ledger", "ledger/summary", "ledger.csv", "ledger/summary.csv", "metrics", "scim/v2/Users", "admin"] {
        let r = crate::support::client::request(
            gw.addr,
            "GET",
            &format!("/v1/prodex/gateway/{path}"),
            &[("authorization", &token)],
            b"",
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    let latest = std::fs::read_to_string(log_volume.0.join("prodex-runtime-latest.path")).unwrap();
    assert!(latest.trim().starts_with(&log_volume.0.display().to_string()), "run log outside the log volume: {latest}");
    let run_log = std::fs::read_to_string(latest.trim()).unwrap();
    assert!(run_log.contains("listening on http://0.0.0.0:"), "{run_log}");
}

/// The seed page's provider bridge: the service command with `--provider gemini` and the env file's
/// `GEMINI_API_KEY` starts healthy and answers an OpenAI chat completion from Gemini (the mock's
/// Gemini dialect stands in for Google, reached through `GEMINI_BASE_URL`).
#[test]
fn provider_bridge_command_answers_a_chat_completion() {
    let mut container_env = example_env();
    container_env.extend(image_env());
    let home_volume = TempDir::new("volume-home-bridge");
    container_env.insert("PRODEX_HOME".into(), home_volume.0.display().to_string());
    container_env.insert("PRODEX_RUNTIME_LOG_DIR".into(), home_volume.0.join("logs").display().to_string());
    // "Then provide the matching provider credential such as GEMINI_API_KEY" (commented out in the
    // example: the operator uncomments it).
    assert!(ENV_EXAMPLE.contains("# GEMINI_API_KEY=replace-me"));
    container_env.insert("GEMINI_API_KEY".into(), "filled-in-key".into());
    let google = crate::support::mock::Mock::start();
    container_env.insert("GEMINI_BASE_URL".into(), format!("http://{}/v1beta", google.addr));
    let mut cmd = Command::new(bin());
    cmd.env_clear().envs(&container_env).args(["gateway", "--listen", "127.0.0.1:0", "--provider", "gemini"]);
    let gw = Gateway::spawn(cmd, TempDir::new("unused"));
    let log = gw.stderr_text();
    assert!(log.contains("default provider gemini (gemini)") && log.contains("with 1 key(s)"), "{log}");
    let token = format!("Bearer {}", container_env["PRODEX_GATEWAY_TOKEN"]);
    let r = gw.post_json(
        "/v1/chat/completions",
        &[("authorization", &token)],
        &serde_json::json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from gemini");
    let seen = google.requests();
    assert_eq!(seen[0].header("x-goog-api-key"), Some("filled-in-key"));
}
