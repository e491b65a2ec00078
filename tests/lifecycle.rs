use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::client::{self, read_response};
use crate::support::mock::Mock;
use crate::support::{bin, Gateway, Opts, TempDir};

#[test]
fn health_routes_answer_get_and_head_as_json() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    for path in ["/livez", "/readyz", "/startupz"] {
        let r = gw.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.json()["status"].is_string());
        let head = client::request(gw.addr, "HEAD", path, &[], b"");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    }
    assert_eq!(gw.get("/readyz").json()["status"], "ready");
    let r = client::request(gw.addr, "POST", "/readyz", &[], b"");
    assert_eq!(r.status, 405);
}

#[test]
fn sigterm_drains_streams_then_exits_zero() {
    let mock = Mock::start();
    let mut gw = Gateway::in_front_of(&mock);
    // An open keep-alive connection to ask /readyz on after the listener closes.
    let mut probe = client::connect(gw.addr);
    probe.write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut probe, false).unwrap().0.status, 200);
    // A stream that needs ~1 s.
    let mut stream = client::connect(gw.addr);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": []}).to_string();
    stream
        .write_all(&client::build(
            "POST",
            "/v1/chat/completions",
            &[("x-mock-chunks", "5"), ("x-mock-interval-ms", "200")],
            body.as_bytes(),
        ))
        .unwrap();
    let reader = std::thread::spawn(move || read_response(&mut stream, false).map(|(r, _)| r));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mock.count() == 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    gw.signal(libc::SIGTERM);
    gw.wait_for_log("SIGTERM received: draining");
    probe.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let (ready, _) = read_response(&mut probe, false).unwrap();
    assert_eq!(ready.status, 503, "/readyz turns 503 while draining");
    assert_eq!(ready.json()["status"], "draining");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(gw.addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the listener was not closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let response = reader.join().unwrap().expect("the in-flight stream completed");
    assert!(response.text().ends_with("data: [DONE]\n\n"), "{}", response.text());
    let status = gw.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(gw.stderr_text().contains("drained; exiting"));
}

#[test]
fn grace_period_bounds_the_drain() {
    let mock = Mock::start();
    let mut gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some("[gateway]\nshutdown_grace_seconds = 1\n"),
        ..Opts::default()
    });
    let mut stream = client::connect(gw.addr);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": []}).to_string();
    stream
        .write_all(&client::build(
            "POST",
            "/v1/chat/completions",
            &[("x-mock-chunks", "100"), ("x-mock-interval-ms", "100")],
            body.as_bytes(),
        ))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mock.count() == 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    gw.signal(libc::SIGINT);
    let status = gw.wait_exit(Duration::from_secs(5));
    assert!(status.success());
    assert!(gw.stderr_text().contains("grace period over with 1 request(s) still in flight"), "{}", gw.stderr_text());
}

#[test]
fn run_logs_and_latest_pointer_are_written_without_secrets() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", "tok-log-secret".into()), ("PRODEX_RUNTIME_LOG_FORMAT", "json".into())],
        ..Opts::default()
    });
    let r = gw.post_json(
        "/v1/chat/completions",
        &[("authorization", "Bearer tok-log-secret")],
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "prompt-text-xyz"}]}),
    );
    assert_eq!(r.status, 200);
    gw.wait_for_log("\"target\":\"access\"");
    let logs = gw.home.0.join("logs");
    let latest = std::fs::read_to_string(logs.join("prodex-runtime-latest.path")).unwrap();
    let run_log = std::fs::read_to_string(latest.trim()).unwrap();
    assert!(latest.contains(&format!("prodex-runtime-{}-", gw.child.id())));
    let access = run_log.lines().find(|l| l.contains("\"target\":\"access\"")).expect("an access line");
    let parsed: serde_json::Value = serde_json::from_str(access).unwrap();
    // The access line is fields, not a message to parse (F5).
    assert_eq!((parsed["key"].as_str(), parsed["method"].as_str()), (Some("_gateway"), Some("POST")));
    assert_eq!(
        (parsed["path"].as_str(), parsed["route"].as_str()),
        (Some("/v1/chat/completions"), Some("chat.completions"))
    );
    assert_eq!(
        (parsed["model"].as_str(), parsed["provider"].as_str(), parsed["status"].as_u64()),
        (Some("gpt-4o-mini"), Some("openai"), Some(200))
    );
    assert_eq!((parsed["input_tokens"].as_u64(), parsed["output_tokens"].as_u64()), (Some(11), Some(7)));
    assert!(
        parsed["cost_microusd"].as_u64().is_some() && parsed["ttfb_ms"].is_u64() && parsed["overhead_us"].is_u64(),
        "{parsed}"
    );
    assert!(parsed["error"].is_null(), "absent is null, never a sentinel: {parsed}");
    assert!(parsed["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{parsed}");
    assert_eq!(parsed["call"].as_str(), r.header("x-prodex-call-id"));
    for secret in ["tok-log-secret", "prompt-text-xyz", "Hello from mock"] {
        assert!(!run_log.contains(secret) && !gw.stderr_text().contains(secret), "{secret} leaked into the logs");
    }
}

#[test]
fn check_reports_every_error_with_exit_code_2() {
    let home = TempDir::new("check");
    std::fs::write(
        home.0.join("policy.toml"),
        "[gateway]\nlisten_adr = \"x\"\n\n[gateway.ledger]\ndurability = \"never\"\n",
    )
    .unwrap();
    let out = Command::new(bin()).args(["gateway", "check", "--home"]).arg(&home.0).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(err.contains("policy.toml:2: gateway.listen_adr: unknown key (did you mean `listen_addr`?)"), "{err}");
    assert!(err.contains("policy.toml:5: gateway.ledger.durability: expected commit or async"), "{err}");

    std::fs::write(home.0.join("policy.toml"), "[gateway]\nlisten_addr = \"127.0.0.1:4555\"\n").unwrap();
    let out = Command::new(bin())
        .args(["gateway", "check", "--home"])
        .arg(&home.0)
        .env_clear()
        .env("PRODEX_GATEWAY_TOKEN", "very-secret-master")
        .env("OPENAI_API_KEY", "sk-very-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen_addr = \"127.0.0.1:4555\""), "{text}");
    assert!(text.contains("<redacted: $PRODEX_GATEWAY_TOKEN>") && !text.contains("very-secret"), "{text}");
}

#[test]
fn non_loopback_without_auth_is_refused() {
    let home = TempDir::new("bind");
    let out = Command::new(bin())
        .args(["gateway", "--listen", "0.0.0.0:0", "--home"])
        .arg(&home.0)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to listen on non-loopback"));
}

#[test]
fn healthcheck_and_version_commands() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let url = format!("http://{}/readyz", gw.addr);
    let out = Command::new(bin()).args(["gateway", "healthcheck", "--url", &url]).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for base in [format!("http://{}", gw.addr), format!("http://{}/", gw.addr)] {
        let out = Command::new(bin()).args(["gateway", "healthcheck", "--url", &base]).env_clear().output().unwrap();
        assert_eq!(out.status.code(), Some(0), "a base URL checks /readyz: {}", String::from_utf8_lossy(&out.stderr));
    }
    // `openapi` prints exactly what the route serves.
    let printed = Command::new(bin()).args(["gateway", "openapi"]).env_clear().output().unwrap();
    assert!(printed.status.success());
    let master = "master-openapi-0123456789abcdef";
    let admin = Gateway::start(Opts { env: vec![("PRODEX_GATEWAY_TOKEN", master.into())], ..Opts::default() });
    let served = crate::support::admin::call(&admin, master, "GET", "openapi.json", None, &[]);
    assert_eq!(served.status, 200);
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim_end(), served.text().trim_end());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = Command::new(bin())
        .args(["gateway", "healthcheck", "--url", &format!("http://{dead}/readyz")])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("prodex "));
}
