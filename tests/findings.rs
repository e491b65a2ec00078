//! One test per finding of `newcomer-findings.md` (B*, F*) and of the hostile tester's issue, each
//! reproducing what the finding saw and asserting what it expected.

use std::process::Command;

use serde_json::json;

use crate::support::admin::{call, keys_cli};
use crate::support::client::Response;
use crate::support::mock::Mock;
use crate::support::{bin, Gateway, Opts, TempDir};

fn chat() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
}

fn chat_as(gw: &Gateway, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let h: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    gw.post_json("/v1/chat/completions", &h, &chat())
}

fn check_output(home: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.env_clear().env("PRODEX_HOME", home).args(["gateway", "check"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// B1: keys held in the store (CLI-created here, admin-API-created below) turn client auth on.
#[test]
fn b1_store_keys_turn_client_auth_on() {
    let mock = Mock::start();
    let home = TempDir::new("b1");
    let (code, out, err) = keys_cli(&home.0, &["create", "k", "--budget-usd", "1", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let token = serde_json::from_str::<serde_json::Value>(&out).unwrap()["token"].as_str().unwrap().to_string();
    let (code, text) = check_output(&home.0, &[], &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("client auth is on: calls must present 1 virtual key(s)"), "{text}");
    let (code, text) = check_output(&home.0, &[], &["--listen", "0.0.0.0:4000"]);
    assert_eq!(code, Some(0), "a store key is a credential on a public listener too: {text}");

    let gw = Gateway::start(Opts { base_url: Some(mock.base_url()), home: Some(home), ..Opts::default() });
    assert_eq!(chat_as(&gw, None).status, 401, "anonymous while a key exists");
    assert_eq!(chat_as(&gw, Some(&token)).status, 200);
    let log = gw.stderr_text();
    assert!(log.contains("client auth is on: calls must present 1 virtual key(s)"), "{log}");
    assert!(!log.contains("client auth is off") && !log.contains("every data-plane call will get 401"), "{log}");
}

/// B1: a key created through the admin API turns auth on in the running gateway within a refresh.
#[test]
fn b1_an_api_created_key_turns_auth_on_at_once() {
    let mock = Mock::start();
    let policy = "[[gateway.admin_tokens]]\nname = \"ops\"\ntoken_env = \"OPS_TOKEN\"\nrole = \"admin\"\n";
    let ops = "ops-token-0123456789abcdef";
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some(policy),
        env: vec![("OPS_TOKEN", ops.to_string())],
        ..Opts::default()
    });
    assert_eq!(chat_as(&gw, None).status, 200, "no key anywhere: open on loopback");
    let created = call(&gw, ops, "POST", "keys", Some(&json!({"name": "first"})), &[]);
    assert_eq!(created.status, 201, "{}", created.text());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while chat_as(&gw, None).status != 401 {
        assert!(std::time::Instant::now() < deadline, "anonymous calls still pass with a key in the store");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let token = created.json()["token"].as_str().unwrap().to_string();
    assert_eq!(chat_as(&gw, Some(&token)).status, 200);
}

/// Every file under `dir` (recursively) as text.
fn files_text(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_text(&path));
        } else {
            out.push((
                path.display().to_string(),
                String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
            ));
        }
    }
    out
}

/// B9: at `PRODEX_LOG=trace` no third-party crate writes headers or bodies into any output.
#[test]
fn b9_trace_logs_hold_no_secret_prompt_or_completion() {
    let mock = Mock::start();
    let (provider_key, client_key, prompt) = ("sk-UPSTREAM-SECRET-b9", "client-master-secret-b9", "PROMPT-b9-text");
    let mut gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![
            ("PRODEX_LOG", "trace".into()),
            ("OPENAI_API_KEY", provider_key.into()),
            ("PRODEX_GATEWAY_TOKEN", client_key.into()),
        ],
        ..Opts::default()
    });
    let auth = format!("Bearer {client_key}");
    for stream in [false, true] {
        let body = json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": prompt}]});
        let r = gw.post_json("/v1/chat/completions", &[("authorization", &auth)], &body);
        assert_eq!(r.status, 200);
        assert!(r.text().contains("mock") || r.text().contains("tok0"), "the completion came back: {}", r.text());
    }
    assert_eq!(mock.requests()[0].header("authorization"), Some(&*format!("Bearer {provider_key}")));
    gw.wait_for_log("stream=true status=200");
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(std::time::Duration::from_secs(10)).success());
    let mut outputs = files_text(&gw.home.0.join("logs"));
    outputs.push(("stderr".into(), gw.stderr_text()));
    assert!(outputs.iter().any(|(_, t)| t.contains("TRACE") || t.contains("DEBUG")), "trace level was on");
    for (name, text) in &outputs {
        for secret in [provider_key, "UPSTREAM-SECRET", client_key, prompt, "Hello from mock", "tok0 "] {
            assert!(!text.contains(secret), "{name} contains {secret:?}");
        }
        // ureq_proto's hex dumps spell bytes out; none may appear at all.
        assert!(!text.contains("ureq"), "{name} has third-party trace output");
    }
}

/// The number after `name=` in a log line.
fn field(line: &str, name: &str) -> u64 {
    let at = line.find(&format!(" {name}=")).unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 2..].split(' ').next().unwrap().parse().unwrap()
}

/// B5: a stream cut after 10 short deltas is billed for about their content, not the wire bytes.
#[test]
fn b5_abandoned_streams_are_billed_for_the_content_relayed() {
    use std::io::{Read, Write};
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let mut s = crate::support::client::connect(gw.addr);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": []}).to_string();
    let req = crate::support::client::build(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-chunks", "40"), ("x-mock-interval-ms", "100")],
        body.as_bytes(),
    );
    s.write_all(&req).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen).matches("\"content\":\"tok").count() < 10 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(s);
    let log = gw.wait_for_log("client_disconnected=true");
    let line = log.lines().find(|l| l.contains("client_disconnected=true")).unwrap();
    assert!(line.contains("usage_source=partial"), "{line}");
    // 10 (or 11, if one more was relayed before the cut) deltas of `tokN ` = 50–55 bytes ≈ 13 tokens.
    let out = field(line, "output_tokens");
    assert!((7..=20).contains(&out), "billed {out} output tokens for ~13 tokens of content: {line}");
}

/// B5: usage the upstream reported in the stream before the cut wins over any estimate.
#[test]
fn b5_in_stream_usage_before_the_cut_wins() {
    use std::io::Read;
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let mut s = crate::support::client::connect(gw.addr);
    let body =
        json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": []});
    std::io::Write::write_all(
        &mut s,
        &crate::support::client::build(
            "POST",
            "/v1/chat/completions",
            &[("x-mock-chunks", "2")],
            body.to_string().as_bytes(),
        ),
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"usage\":{") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    drop(s);
    let log = gw.wait_for_log("route=chat.completions");
    let line = log.lines().find(|l| l.contains("route=chat.completions")).unwrap();
    assert_eq!(field(line, "output_tokens"), crate::support::mock::USAGE.1, "{line}");
    assert!(line.contains("usage_source=provider"), "{line}");
}

/// B6: listing models checks the key but takes nothing from its request budget or RPM.
#[test]
fn b6_model_listing_is_free() {
    let mock = Mock::start();
    let master = "master-token-b6-0123456789";
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", master.into())],
        ..Opts::default()
    });
    let body = json!({"name": "rb1", "request_budget": 1, "rpm_limit": 1});
    let token = crate::support::admin::create_key(&gw, master, &body);
    let auth = format!("Bearer {token}");
    for path in ["/v1/models", "/v1/models/gpt-4o-mini", "/v1/models", "/models"] {
        assert_eq!(gw.get_with(path, &[("authorization", &auth)]).status, 200, "{path}");
    }
    assert_eq!(gw.get_with("/v1/models", &[("authorization", "Bearer nope")]).status, 401, "the key is still checked");
    assert_eq!(chat_as(&gw, Some(&token)).status, 200, "the one budgeted request is still there");
    assert_eq!(chat_as(&gw, Some(&token)).status, 429, "and only one");
    let usage = call(&gw, master, "GET", "usage", None, &[]);
    let entry = usage.json()["data"].as_array().unwrap().iter().find(|u| u["key"] == "rb1").cloned().unwrap();
    assert_eq!(entry["requests"], 1, "{entry}");
    let log = gw.wait_for_log("route=models");
    let line = log.lines().find(|l| l.contains("route=models")).unwrap();
    assert!(line.contains("usage_source=none"), "{line}");
}

/// B2: a DNS failure is 502 `upstream_unreachable` naming the host, retried, and logged at WARN.
#[test]
fn b2_dns_failures_name_the_host_and_are_retried() {
    let gw = Gateway::start(Opts { base_url: Some("http://no-such-host.invalid/v1".into()), ..Opts::default() });
    let r = chat_as(&gw, None);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable", "{}", r.text());
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("cannot resolve no-such-host.invalid"),
        "{}",
        r.text()
    );
    let log = gw.wait_for_log("attempt 3: cannot reach upstream openai: cannot resolve no-such-host.invalid");
    assert!(log.contains("WARN") && log.contains("attempt 1: cannot reach upstream openai"), "{log}");
}

/// F23: clients cannot pick the operator's org or project; a provider can pin its own.
#[test]
fn f23_org_and_project_headers_are_the_operators() {
    let mock = Mock::start();
    let client_headers = [("openai-organization", "org-attacker"), ("OpenAI-Project", "proj_attacker")];
    let gw = Gateway::in_front_of(&mock);
    assert_eq!(gw.post_json("/v1/chat/completions", &client_headers, &chat()).status, 200);
    let seen = mock.requests().pop().unwrap();
    assert_eq!((seen.header("openai-organization"), seen.header("openai-project")), (None, None));

    let policy = format!(
        "[[gateway.providers]]\nname = \"openai\"\nbase_url = \"{}\"\norganization = \"org-operator\"\nproject = \"proj_operator\"\n",
        mock.base_url()
    );
    let gw = Gateway::start(Opts { policy: Some(&policy), ..Opts::default() });
    assert_eq!(gw.post_json("/v1/chat/completions", &client_headers, &chat()).status, 200);
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.header("openai-organization"), Some("org-operator"));
    assert_eq!(seen.header("openai-project"), Some("proj_operator"));
    assert_eq!(seen.headers.iter().filter(|(k, _)| k == "openai-organization").count(), 1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// B8: a base URL on the gateway's own listener is refused at start and by `check`.
#[test]
fn b8_a_gateway_pointed_at_itself_refuses_to_start() {
    let home = TempDir::new("b8");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = [
        ("OPENAI_BASE_URL", format!("http://localhost:{port}/v1")),
        ("PRODEX_GATEWAY_TOKEN", "tok123-0123456789abcdef".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, text) = check_output(&home.0, &env, &["--listen", &listen]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("provider openai: base URL http://localhost:{port}/v1 is this gateway's own listener")),
        "{text}"
    );
    let mut cmd = Command::new(bin());
    cmd.env_clear().env("PRODEX_HOME", &home.0).args(["gateway", "--listen", &listen]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("every call would loop back"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// B8: every upstream request carries our Via entry; one that comes back is a 508, and two
/// gateways pointed at each other fail fast instead of fanning out.
#[test]
fn b8_hop_header_stops_loops_between_gateways() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    assert_eq!(gw.post_json("/v1/chat/completions", &[("via", "1.1 edge-proxy")], &chat()).status, 200);
    let via = mock.requests()[0].header("via").unwrap().to_string();
    assert!(via.starts_with("1.1 edge-proxy, 1.1 prodex-"), "{via}");
    let ours = via.rsplit(", ").next().unwrap().to_string();
    let r = gw.post_json("/v1/chat/completions", &[("via", &ours)], &chat());
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (508, Some("loop_detected")), "{}", r.text());
    assert_eq!(mock.count(), 1, "a looped request is never forwarded");

    let (pa, pb) = (free_port(), free_port());
    let start = |port: u16, to: u16| {
        let home = TempDir::new("b8-pair");
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PRODEX_HOME", &home.0)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["gateway", "--workers", "2", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--base-url", &format!("http://127.0.0.1:{to}/v1")]);
        Gateway::spawn(cmd, home)
    };
    let a = start(pa, pb);
    let _b = start(pb, pa);
    let t0 = std::time::Instant::now();
    let r = chat_as(&a, None);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (508, Some("loop_detected")), "{}", r.text());
    assert!(t0.elapsed() < std::time::Duration::from_secs(5), "took {:?}", t0.elapsed());
    // A's access lines: the refused second hop, then the forwarded call that B answered with 508.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while a.stderr_text().matches("status=508").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", a.stderr_text());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = a.stderr_text();
    assert_eq!(log.matches("route=chat.completions").count(), 2, "no retry fan-out: {log}");
}

/// B15: a refusal caused by the worst-case reservation says so, with the numbers and the fix;
/// B14: the key table shows budgets to the micro-dollar.
#[test]
fn b14_b15_budget_refusals_explain_themselves_and_budgets_show_exactly() {
    let mock = Mock::start();
    let home = TempDir::new("b15");
    let (code, out, err) = keys_cli(&home.0, &["create", "cent", "--budget-usd", "0.005", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let token = serde_json::from_str::<serde_json::Value>(&out).unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(keys_cli(&home.0, &["create", "tiny", "--budget-usd", "0.00001"]).0, Some(0));
    let (_, table, _) = keys_cli(&home.0, &["list"]);
    let budget_of = |name: &str| {
        table.lines().find(|l| l.starts_with(name)).unwrap().split_whitespace().nth(4).unwrap().to_string()
    };
    assert_eq!((budget_of("cent"), budget_of("tiny")), ("0.005".to_string(), "0.00001".to_string()), "{table}");

    let gw = Gateway::start(Opts { base_url: Some(mock.base_url()), home: Some(home), ..Opts::default() });
    let r = chat_as(&gw, Some(&token));
    assert_eq!(r.status, 429, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("the worst-case cost of this call ($0.0"), "{message}");
    assert!(message.contains("exceeds the $0.005 left of this key's $0.005 spend budget"), "{message}");
    assert!(message.contains("set max_tokens"), "{message}");
    let mut small = chat();
    small["max_tokens"] = json!(50);
    let auth = format!("Bearer {token}");
    assert_eq!(gw.post_json("/v1/chat/completions", &[("authorization", &auth)], &small).status, 200);
}

/// B3, B13: settings this build does not apply are named at startup and by `check`, and the 400 for
/// a route a provider does not serve names the real path.
#[test]
fn b3_b13_inert_settings_are_named() {
    let home = TempDir::new("b3");
    let policy =
        "[[gateway.route_aliases]]\nalias = \"prodex-fast\"\nmodels = [\"gpt-4o-mini\"]\nstrategy = \"fallback\"\n\n\
                  [gateway.sso]\noidc_issuer = \"https://idp.example.com\"\noidc_audience = \"prodex\"\n";
    std::fs::write(home.0.join("policy.toml"), policy).unwrap();
    let (code, text) = check_output(&home.0, &[("ANTHROPIC_API_KEY", "a-key")], &["--provider", "anthropic"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("[gateway.sso] oidc_* is set, but this build does not verify"), "{text}");
    assert!(!text.contains("route_aliases]] (prodex-fast) is not applied"), "aliases are applied now: {text}");
    assert!(!text.contains("cannot serve calls"), "every provider kind serves calls now: {text}");
    assert!(!text.contains("provider gemini"), "built-ins nobody uses are not noise: {text}");
    let gw = Gateway::start(Opts {
        home: Some(home),
        args: vec!["--provider", "anthropic"],
        env: vec![("ANTHROPIC_API_KEY", "a-key".into())],
        ..Opts::default()
    });
    let log = gw.stderr_text();
    assert!(log.contains("WARN") && log.contains("oidc_* is set"), "{log}");
    let r = gw.post_json("/v1/embeddings", &[], &json!({"model": "claude-sonnet-4-5", "input": "x"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "/v1/embeddings is not served by the anthropic provider (`prodex gateway providers` lists what each serves)"
    );
}

/// B4: `retention_days` is enforced: rows older than it are dropped in bulk by a background task.
fn retention_drops_old_rows(backend_env: Vec<(&'static str, String)>, tag: &str) {
    let seed = TempDir::new(tag);
    let day = 86_400u64;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let rows: Vec<String> = [("old-1", now - 40 * day), ("old-2", now - 31 * day), ("recent", now - 2 * day)]
        .iter()
        .map(|(id, at)| {
            json!({"call_id": format!("{tag}-{id}"), "key_name": "k", "model": "gpt-4o-mini", "input_tokens": 1,
                "output_tokens": 1, "response_status": 200, "final_cost_microusd": 1, "created_at_epoch": at})
            .to_string()
        })
        .collect();
    std::fs::write(seed.0.join("gateway-billing-ledger.jsonl"), rows.join("\n") + "\n").unwrap();
    let home = TempDir::new(tag);
    std::fs::write(home.0.join("policy.toml"), "[gateway.ledger]\nretention_days = 30\n").unwrap();
    let mut cmd = Command::new(bin());
    cmd.env_clear().env("PRODEX_HOME", &home.0).args(["gateway", "state", "import", "--from"]).arg(&seed.0);
    cmd.envs(backend_env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let master = "master-token-retention-0123";
    let mut env = backend_env;
    env.push(("PRODEX_GATEWAY_TOKEN", master.into()));
    let gw = Gateway::start(Opts { home: Some(home), env, ..Opts::default() });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = call(&gw, master, "GET", "ledger?limit=100&key=k", None, &[]);
        let ids: Vec<String> = r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["call_id"].as_str().unwrap().to_string())
            .collect();
        if ids == [format!("{tag}-recent")] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "old rows still there: {ids:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    gw.wait_for_log("retention: dropped 2 ledger row(s) older than 30 day(s)");
}

#[test]
fn b4_retention_is_enforced_on_redb() {
    retention_drops_old_rows(vec![], "b4-redb");
}

#[test]
fn b4_retention_is_enforced_on_postgres() {
    let db = crate::store::fresh_postgres_db();
    retention_drops_old_rows(
        vec![("PRODEX_GATEWAY_STATE_BACKEND", "postgres".into()), ("PRODEX_GATEWAY_POSTGRES_URL", db)],
        "b4-pg",
    );
}

#[test]
fn b4_retention_is_enforced_on_redis() {
    let db = crate::store::fresh_redis_db();
    retention_drops_old_rows(
        vec![("PRODEX_GATEWAY_STATE_BACKEND", "redis".into()), ("PRODEX_GATEWAY_REDIS_URL", db)],
        "b4-redis",
    );
}

/// B10: `prodex gateway keys …` mutations are audited (actor `cli:<os user>`), in the store and in
/// `prodex-audit.log`, including a refused one.
#[test]
fn b10_cli_key_changes_are_audited() {
    let home = TempDir::new("b10");
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .env_clear()
            .env("PRODEX_HOME", &home.0)
            .env("USER", "opsperson")
            .args(["gateway", "keys"])
            .args(args)
            .output()
            .unwrap();
        out.status.code()
    };
    assert_eq!(run(&["create", "cli-key", "--tenant-id", "tenant-a"]), Some(0));
    assert_eq!(run(&["create", "cli-key"]), Some(1), "duplicate");
    assert_eq!(run(&["disable", "cli-key"]), Some(0));
    assert_eq!(run(&["enable", "cli-key"]), Some(0));
    assert_eq!(run(&["rotate", "cli-key"]), Some(0));
    assert_eq!(run(&["delete", "cli-key"]), Some(0));
    let want = [
        ("key.create", "ok"),
        ("key.create", "key_exists"),
        ("key.disable", "ok"),
        ("key.enable", "ok"),
        ("key.rotate", "ok"),
        ("key.delete", "ok"),
    ];
    let file = std::fs::read_to_string(home.0.join("logs/prodex-audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = file.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(String, String)> =
        lines.iter().map(|l| (l["action"].as_str().unwrap().into(), l["outcome"].as_str().unwrap().into())).collect();
    assert_eq!(got, want.map(|(a, o)| (a.to_string(), o.to_string())), "{file}");
    assert!(lines
        .iter()
        .all(|l| l["actor"] == "cli:opsperson" && l["actor_source"] == "cli" && l["target"] == "cli-key"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.0.join("logs/prodex-audit.log")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let master = "master-token-b10-0123456789";
    let gw = Gateway::start(Opts {
        home: Some(home),
        env: vec![("PRODEX_GATEWAY_TOKEN", master.into())],
        ..Opts::default()
    });
    let r = call(&gw, master, "GET", "audit?limit=100", None, &[]);
    let mut stored: Vec<(String, String)> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_source"] == "cli")
        .map(|e| (e["action"].as_str().unwrap().into(), e["outcome"].as_str().unwrap().into()))
        .collect();
    stored.reverse();
    assert_eq!(stored, want.map(|(a, o)| (a.to_string(), o.to_string())), "{}", r.text());
}

/// F11: a misspelt security attribute in the gateway's SCIM extension is refused, naming it.
#[test]
fn f11_unknown_scim_extension_attributes_are_refused() {
    let master = "master-token-f11-0123456789";
    let gw = Gateway::start(Opts { env: vec![("PRODEX_GATEWAY_TOKEN", master.into())], ..Opts::default() });
    let ext = "urn:prodex:params:scim:schemas:gateway:2.0:User";
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ext], "userName": "boss@corp",
        "colour": "red", ext: {"role": "admin", "tenantId": "tenant-a", "allowedKeyPrefixes": ["team-a-"]}});
    let r = call(&gw, master, "POST", "scim/v2/Users", Some(&body), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["scimType"], "invalidValue", "{}", r.text());
    assert!(r.json()["detail"].as_str().unwrap().contains("unknown attribute `allowedKeyPrefixes`"), "{}", r.text());
    let mut ok = body.clone();
    ok[ext] = json!({"role": "admin", "tenantId": "tenant-a", "keyPrefixes": ["team-a-"]});
    let r = call(&gw, master, "POST", "scim/v2/Users", Some(&ok), &[]);
    assert_eq!(r.status, 201, "an unknown core attribute (`colour`) is still ignored: {}", r.text());
}

/// F6: state, run logs and the audit log are private (0600 in 0700 directories), and both logs
/// rotate by size.
#[test]
fn f6_files_are_private_and_logs_rotate_by_size() {
    use std::os::unix::fs::PermissionsExt;
    let mock = Mock::start();
    let master = "master-token-f6-0123456789";
    // Logs of four earlier runs (pids 1-4), two files each: KEEP = 3 keeps the two newest runs
    // beside this one, whole, however often this run rotates.
    let home = crate::support::TempDir::new("f6-home");
    let logs = home.0.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o700)).unwrap();
    for pid in 1..=4u64 {
        for seg in 0..2u64 {
            let f = logs.join(format!("prodex-runtime-{pid}-{}.log", 1_000 * pid + seg));
            std::fs::write(&f, b"old\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        home: Some(home),
        env: vec![
            ("PRODEX_GATEWAY_TOKEN", master.into()),
            ("PRODEX_RUNTIME_LOG_MAX_BYTES", "4096".into()),
            ("PRODEX_RUNTIME_LOG_KEEP", "3".into()),
        ],
        ..Opts::default()
    });
    let auth = format!("Bearer {master}");
    for i in 0..30 {
        assert_eq!(gw.post_json("/v1/chat/completions", &[("authorization", &auth)], &chat()).status, 200);
        let r = call(&gw, master, "POST", "keys", Some(&json!({"name": format!("f6-key-{i}")})), &[]);
        assert_eq!(r.status, 201);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !logs.join("prodex-audit.log.1").exists() {
        assert!(std::time::Instant::now() < deadline, "the audit log never rotated");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let runs: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("prodex-runtime-")
                && e.file_name().to_string_lossy().ends_with(".log")
        })
        .collect();
    let names: Vec<String> = runs.iter().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let of_pid = |pid: &str| names.iter().filter(|n| n.starts_with(&format!("prodex-runtime-{pid}-"))).count();
    assert_eq!((of_pid("1"), of_pid("2"), of_pid("3"), of_pid("4")), (0, 0, 2, 2), "runs beyond KEEP go: {names:?}");
    let own = names.len() - 4;
    assert!((2..=5).contains(&own), "this run rotated and kept at most 5 files: {names:?}");
    for r in &runs {
        assert!(r.metadata().unwrap().len() <= 4096 + 2048, "{:?} grew past the limit", r.path());
    }
    let latest = std::fs::read_to_string(logs.join("prodex-runtime-latest.path")).unwrap();
    assert!(std::path::Path::new(latest.trim()).exists(), "the pointer follows the rotation");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&logs), 0o700);
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        assert_eq!(mode(&entry.path()), 0o600, "{:?}", entry.path());
    }
    assert_eq!(mode(&gw.home.0.join("gateway-state.redb")), 0o600);
}

/// F9: disabled and expired keys get codes a caller can act on, unknown keys stay
/// `invalid_api_key`, and a new key cannot be born expired.
#[test]
fn f9_disabled_and_expired_keys_are_told_apart() {
    let mock = Mock::start();
    let master = "master-token-f9-0123456789";
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", master.into())],
        ..Opts::default()
    });
    let past = call(
        &gw,
        master,
        "POST",
        "keys",
        Some(&json!({"name": "born-dead", "expires_at": "2020-01-01T00:00:00Z"})),
        &[],
    );
    assert_eq!((past.status, past.json()["error"]["param"].as_str()), (400, Some("expires_at")), "{}", past.text());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let soon = prodex::core::time::format_rfc3339(now + 1_500);
    let disabled = crate::support::admin::create_key(&gw, master, &json!({"name": "f9-off"}));
    let expiring = crate::support::admin::create_key(&gw, master, &json!({"name": "f9-soon", "expires_at": soon}));
    assert_eq!(call(&gw, master, "POST", "keys/f9-off/disable", None, &[]).status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut off, mut old);
    loop {
        off = chat_as(&gw, Some(&disabled));
        old = chat_as(&gw, Some(&expiring));
        if off.status == 401 && old.status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the key changes never took effect");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(off.code(), "key_disabled");
    assert_eq!(old.code(), "key_expired");
    assert_eq!(chat_as(&gw, Some("pk-not-a-key")).code(), "invalid_api_key");
}

/// F13, F14, F20: an unquoted `If-Match`, a date-only `from`, and a landing page at `/`.
#[test]
fn f13_f14_f20_admin_niceties() {
    let mock = Mock::start();
    let master = "master-token-f13-0123456789";
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", master.into())],
        ..Opts::default()
    });
    crate::support::admin::create_key(&gw, master, &json!({"name": "f13"}));
    let r = call(&gw, master, "PATCH", "keys/f13", Some(&json!({"rpm_limit": 5})), &[("if-match", "1")]);
    assert_eq!(r.status, 200, "a bare version names the same ETag: {}", r.text());
    let r = call(&gw, master, "PATCH", "keys/f13", Some(&json!({"rpm_limit": 6})), &[("if-match", "1")]);
    assert_eq!(r.status, 412, "and a stale one is still refused");
    let r = call(&gw, master, "GET", "ledger?from=2026-12-01", None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&gw, master, "GET", "ledger?from=2026-12-01T08:00:00+01:00", None, &[]);
    assert!(r.status == 400 && r.text().contains("%2B"), "{}", r.text());
    for path in ["/", "/v1"] {
        let r = gw.get(path);
        assert_eq!((r.status, r.json()["admin"].as_str()), (200, Some("/v1/prodex/gateway/admin")), "{path}");
    }
}

/// F10: retries respect the upstream: a 429 on the only key is passed through at once, and a 5xx
/// is retried after a jittered backoff of at least the provider's `retry-after`.
#[test]
fn f10_retries_back_off_and_honour_retry_after() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let before = mock.count();
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-status", "429")], &chat());
    assert_eq!(r.status, 429);
    assert_eq!(mock.count() - before, 1, "one key: the 429 is the client's at once, not three upstream calls");
    let before = mock.count();
    let t0 = std::time::Instant::now();
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-status", "503"), ("x-mock-retry-after", "0.3")], &chat());
    let took = t0.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(mock.count() - before, 3, "retried twice");
    assert!(took >= std::time::Duration::from_millis(600), "two waits of at least retry-after: {took:?}");
    assert!(took < std::time::Duration::from_secs(4), "within the retry budget: {took:?}");
    // A retry-after beyond the retry budget is passed through at once.
    let before = mock.count();
    let r = gw.post_json("/v1/chat/completions", &[("x-mock-status", "503"), ("x-mock-retry-after", "30")], &chat());
    assert_eq!((r.status, mock.count() - before), (503, 1));
}

/// F19, F26: the mock upstream explains itself; a Redis that keeps nothing on disk is warned about.
#[test]
fn f19_f26_the_mock_has_help_and_an_ephemeral_redis_is_named() {
    let mock_bin = env!("CARGO_BIN_EXE_prodex-mock-upstream");
    let out = Command::new(mock_bin).arg("--help").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("usage: prodex-mock-upstream"));
    assert_eq!(Command::new(mock_bin).arg("--bogus").output().unwrap().status.code(), Some(2));
    // The suite's throwaway Redis runs with appendonly no and no save rules.
    let gw = Gateway::start(Opts {
        env: vec![
            ("PRODEX_GATEWAY_STATE_BACKEND", "redis".into()),
            ("PRODEX_GATEWAY_REDIS_URL", crate::store::fresh_redis_db()),
        ],
        ..Opts::default()
    });
    let log = gw.wait_for_log("redis keeps nothing on disk");
    assert!(log.contains("WARN"), "{log}");
}

/// F12: a free route (moderations) works for keys with an allowlist or a spend budget, costs
/// nothing, and other unpriced passthrough routes stay refused for them.
#[test]
fn f12_free_routes_are_open_to_budgeted_and_allowlisted_keys() {
    let mock = Mock::start();
    let master = "master-token-f12-0123456789";
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", master.into())],
        ..Opts::default()
    });
    let body = json!({"name": "f12", "allowed_models": ["gpt-4o-mini"], "budget_usd": 1.0});
    let token = crate::support::admin::create_key(&gw, master, &body);
    let auth = format!("Bearer {token}");
    let r = gw.post_json("/v1/moderations", &[("authorization", &auth)], &json!({"input": "hello"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests().pop().unwrap().path, "/v1/moderations");
    let r = gw.post_json("/v1/images/generations", &[("authorization", &auth)], &json!({"prompt": "a cat"}));
    assert_eq!((r.status, r.code()), (403, "model_not_allowed".to_string()), "a priced route stays refused");
    let row = crate::support::admin::row_of(
        &gw,
        master,
        &gw.post_json("/v1/moderations", &[("authorization", &auth)], &json!({"input": "x"})),
    );
    assert_eq!(row["cost_microusd"].as_u64().unwrap_or(0), 0, "{row}");
}

/// F15: USD amounts in admin JSON are positional decimals, never exponent forms.
#[test]
fn f15_usd_amounts_are_written_without_exponents() {
    let mock = Mock::start();
    let master = "master-token-f15-0123456789";
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", master.into())],
        ..Opts::default()
    });
    crate::support::admin::create_key(&gw, master, &json!({"name": "tiny", "budget_usd": 0.00001}));
    let text = call(&gw, master, "GET", "keys/tiny", None, &[]).text();
    assert!(text.contains("\"budget_usd\":0.00001,"), "not 1e-5: {text}");
}

/// F4: a CLI command on an embedded store a running gateway holds says what to do instead.
#[test]
fn f4_the_cli_says_how_to_reach_a_store_a_gateway_holds() {
    let gw = Gateway::start(Opts { args: vec!["--provider", "mock"], ..Opts::default() });
    let out = Command::new(bin())
        .env_clear()
        .env("PRODEX_HOME", &gw.home.0)
        .args(["gateway", "keys", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stop that gateway first, or make the change through its admin API"), "{err}");
}
