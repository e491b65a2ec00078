//! Several providers in one process: models routed by their providers' globs, aliases with
//! strategies, and fallback to the next target before the first byte — across protocols
//! (Gemini → Anthropic → OpenAI), every attempt in the ledger. The mocks' dialects stand in for
//! the providers; a closed port stands in for one that is down.

use serde_json::{json, Value};

use crate::support::admin::row_of;
use crate::support::client::Response;
use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-token-routing-0123456789";

/// A port nothing listens on: port 1 (tcpmux), below the ephemeral range every test server binds
/// in, so no parallel test can take it (a freed ephemeral port could be reused by another test's
/// mock at once).
fn closed_port() -> u16 {
    1
}

/// Providers `openai` (the mock), `gem` (the mock's Gemini dialect, or `gemini_base`) and `claude`
/// (the mock's Anthropic dialect), with `extra` policy after them.
fn gateway(mock: &Mock, gemini_base: Option<String>, extra: &str) -> Gateway {
    let gemini = gemini_base.unwrap_or_else(|| format!("http://{}/v1beta", mock.addr));
    let policy = format!(
        "[[gateway.providers]]\nname = \"openai\"\nbase_url = \"http://{m}/v1\"\nmodels = [\"gpt-*\"]\n\n\
         [[gateway.providers]]\nname = \"gem\"\nkind = \"gemini\"\nbase_url = \"{gemini}\"\napi_key_env = \"GEM_KEY\"\nmodels = [\"gemini-*\"]\n\n\
         [[gateway.providers]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"http://{m}/anthropic/v1\"\napi_key_env = \"CLAUDE_KEY\"\nmodels = [\"claude-*\"]\n\n{extra}",
        m = mock.addr
    );
    Gateway::start(Opts {
        policy: Some(Box::leak(policy.into_boxed_str())),
        env: vec![
            ("PRODEX_GATEWAY_TOKEN", MASTER.into()),
            ("OPENAI_API_KEY", "sk-openai".into()),
            ("GEM_KEY", "gk-gem".into()),
            ("CLAUDE_KEY", "ak-claude".into()),
        ],
        ..Opts::default()
    })
}

fn chat(gw: &Gateway, model: &str, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {MASTER}");
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(extra);
    gw.post_json(
        "/v1/chat/completions",
        &h,
        &json!({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

fn served_by(row: &Value) -> (String, String, u64, Option<String>) {
    (
        row["provider"].as_str().unwrap_or("").to_string(),
        row["upstream_model"].as_str().unwrap_or("").to_string(),
        row["attempts"].as_u64().unwrap_or(0),
        row["fallback_error"].as_str().map(str::to_string),
    )
}

#[test]
fn models_go_to_the_provider_their_globs_name_each_in_its_protocol() {
    let mock = Mock::start();
    let gw = gateway(&mock, None, "");
    for (model, provider, answer) in [
        ("gpt-4o-mini", "openai", "Hello from mock"),
        ("gemini-2.5-flash", "gem", "Hello from gemini"),
        ("claude-haiku-4-5", "claude", "Hello from claude"),
    ] {
        let r = chat(&gw, model, &[]);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], answer, "{model}");
        let row = row_of(&gw, MASTER, &r);
        assert_eq!(served_by(&row), (provider.into(), model.into(), 1, None), "{model}");
    }
    let seen = mock.requests();
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-openai"));
    // The model list is the union of the routed providers' lists.
    let auth = format!("Bearer {MASTER}");
    let list = gw.get_with("/v1/models", &[("authorization", &auth)]).json();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    for id in ["gpt-4o-mini", "gemini-2.5-flash", "gemini-embedding-001", "claude-sonnet-4-5", "claude-haiku-4-5"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let one = gw.get_with("/v1/models/claude-opus-4-5", &[("authorization", &auth)]);
    assert_eq!((one.status, one.json()["owned_by"].as_str()), (200, Some("anthropic")), "one model from its provider");
    assert_eq!(seen[1].header("x-goog-api-key"), Some("gk-gem"), "each provider its own key pool");
    assert_eq!(seen[2].header("x-api-key"), Some("ak-claude"));
}

#[test]
fn an_alias_falls_over_across_protocols_before_the_first_byte() {
    let mock = Mock::start();
    let down = format!("http://127.0.0.1:{}/v1beta", closed_port());
    let alias = "[[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"claude-haiku-4-5\", \"gpt-4o-mini\"]\nstrategy = \"fallback\"\n";
    let gw = gateway(&mock, Some(down), alias);
    // Gemini is down (connect refused) and Anthropic rate-limits its key: OpenAI serves.
    let r = chat(&gw, "fast", &[("x-mock-429-key", "ak-claude")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from mock", "one clean answer");
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(row["model"], "fast");
    assert_eq!(served_by(&row), ("openai".into(), "gpt-4o-mini".into(), 3, Some("rate_limit_exceeded".into())));
    let seen = mock.requests();
    assert_eq!(seen.len(), 2, "Anthropic once, OpenAI once");
    assert_eq!(seen[1].json()["model"], "gpt-4o-mini", "the alias's target model is what the provider is asked for");
    // Streams fall over too, before the first byte.
    let auth = format!("Bearer {MASTER}");
    let body = json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post_json("/v1/chat/completions", &[("authorization", &auth), ("x-mock-429-key", "ak-claude")], &body);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("tok0") && r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
}

#[test]
fn a_failure_after_the_first_byte_is_never_retried_elsewhere() {
    let mock = Mock::start();
    let alias = "[[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"gpt-4o-mini\"]\n";
    let gw = gateway(&mock, None, alias);
    let auth = format!("Bearer {MASTER}");
    let body = json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post_json("/v1/chat/completions", &[("authorization", &auth), ("x-mock-gemini", "stream-error")], &body);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"error\""), "the failure reaches the client: {}", r.text());
    assert_eq!(mock.requests().len(), 1, "OpenAI never called once bytes went out");
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(served_by(&row), ("gem".into(), "gemini-2.5-flash".into(), 1, None));
}

#[test]
fn strategies_and_attempt_limits_shape_the_plan() {
    let mock = Mock::start();
    let down = format!("http://127.0.0.1:{}/v1beta", closed_port());
    let aliases = "[[gateway.route_aliases]]\nalias = \"rr\"\nmodels = [\"gpt-4o-mini\", \"claude-haiku-4-5\"]\nstrategy = \"round-robin\"\n\n\
                   [[gateway.route_aliases]]\nalias = \"only\"\nmodels = [\"gemini-2.5-flash\", \"gpt-4o-mini\"]\nstrategy = \"first\"\n\n\
                   [[gateway.route_aliases]]\nalias = \"one-try\"\nmodels = [\"gemini-2.5-flash\", \"gpt-4o-mini\"]\nmax_attempts = 1\n\n\
                   [[gateway.route_aliases]]\nalias = \"cheap\"\nmodels = [\"claude-haiku-4-5\", \"gpt-4o-mini\"]\nstrategy = \"lowest-cost\"\n";
    let gw = gateway(&mock, Some(down), aliases);
    let providers: Vec<String> =
        (0..4).map(|_| row_of(&gw, MASTER, &chat(&gw, "rr", &[]))["provider"].as_str().unwrap().to_string()).collect();
    assert!(
        providers[0] != providers[1] && providers[0] == providers[2] && providers[1] == providers[3],
        "{providers:?}"
    );
    let r = chat(&gw, "only", &[]);
    assert_eq!((r.status, r.code()), (502, "upstream_unreachable".to_string()), "`first` has no fallback");
    let r = chat(&gw, "one-try", &[]);
    assert_eq!(r.status, 502, "one attempt in all: no fallback");
    let r = chat(&gw, "cheap", &[]);
    assert_eq!(row_of(&gw, MASTER, &r)["provider"], "openai", "gpt-4o-mini costs less than Haiku 4.5");
}

#[test]
fn a_budgeted_key_on_an_alias_reserves_the_costliest_target() {
    let mock = Mock::start();
    let down = format!("http://127.0.0.1:{}/v1beta", closed_port());
    let extra = "[[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"claude-sonnet-4-5\"]\n\n\
                 [[gateway.virtual_keys]]\nname = \"team\"\ntoken_env = \"TEAM_KEY\"\nallowed_models = [\"fast\"]\nbudget_usd = 5.0\n";
    let policy = format!(
        "[[gateway.providers]]\nname = \"gem\"\nkind = \"gemini\"\nbase_url = \"{down}\"\napi_key_env = \"GEM_KEY\"\nmodels = [\"gemini-*\"]\n\n\
         [[gateway.providers]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"http://{m}/anthropic/v1\"\napi_key_env = \"CLAUDE_KEY\"\nmodels = [\"claude-*\"]\n\n{extra}",
        m = mock.addr
    );
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some(Box::leak(policy.into_boxed_str())),
        env: vec![
            ("PRODEX_GATEWAY_TOKEN", MASTER.into()),
            ("GEM_KEY", "gk-gem".into()),
            ("CLAUDE_KEY", "ak-claude".into()),
            ("TEAM_KEY", "pk-team-0123456789abcdef".into()),
        ],
        ..Opts::default()
    });
    let auth = "Bearer pk-team-0123456789abcdef";
    let body = json!({"model": "fast", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post_json("/v1/chat/completions", &[("authorization", auth)], &body);
    assert_eq!(r.status, 200, "an alias is allowed when its name is: {}", r.text());
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(served_by(&row).0, "claude");
    // Reserved at Sonnet's worst case (1,000 output tokens at $15/M = 15,000 micro-USD and the
    // input), not Flash's ($2.50/M); billed at what Sonnet served.
    assert!(row["reserved_microusd"].as_u64().unwrap() > 15_000, "{row}");
    assert_eq!(row["cost_microusd"].as_u64(), Some(135));
    // The key's model list shows the alias it may call; the alias answers as a model.
    let list = gw.get_with("/v1/models", &[("authorization", auth)]).json();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["fast"], "the allowlist filters the provider's models; the alias is listed");
    let one = gw.get_with("/v1/models/fast", &[("authorization", auth)]);
    assert_eq!((one.status, one.json()["owned_by"].as_str()), (200, Some("prodex-alias")));
    // The alias's targets are reached through it; named directly they are not allowed.
    let direct =
        json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw.post_json("/v1/chat/completions", &[("authorization", auth)], &direct).status, 403);
}

#[test]
fn check_refuses_a_routing_table_with_two_answers() {
    let home = crate::support::TempDir::new("routing-check");
    let policy = "[[gateway.providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodels = [\"gpt-*\"]\n\n\
                  [[gateway.providers]]\nname = \"b\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:2/v1\"\nmodels = [\"gpt-*\"]\n\n\
                  [[gateway.route_aliases]]\nalias = \"x\"\nmodels = [\"gpt-*\"]\nmax_attempts = 0\n";
    std::fs::write(home.0.join("policy.toml"), policy).unwrap();
    let out = std::process::Command::new(crate::support::bin())
        .args(["gateway", "check"])
        .env_clear()
        .env("HOME", &home.0)
        .env("PRODEX_HOME", &home.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("policy.toml:11: gateway.providers[1].models: `gpt-*` is claimed by providers a and b"),
        "file and line: {text}"
    );
    assert!(text.contains("an alias names models, not globs"), "{text}");
    assert!(text.contains("max_attempts: must be at least 1"), "{text}");
}

#[test]
fn the_provider_listing_shows_each_providers_aliases_and_pool_size() {
    let home = crate::support::TempDir::new("routing-providers");
    let policy = "[[gateway.providers]]\nname = \"gem\"\nkind = \"gemini\"\nbase_url = \"http://127.0.0.1:1/v1beta\"\napi_key_env = \"GEM_KEY\"\nmodels = [\"gemini-*\"]\n\n\
                  [[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"gpt-4o-mini\"]\nstrategy = \"lowest-latency\"\nmax_attempts = 2\n";
    std::fs::write(home.0.join("policy.toml"), policy).unwrap();
    let out = std::process::Command::new(crate::support::bin())
        .args(["gateway", "providers", "--json"])
        .env_clear()
        .env("HOME", &home.0)
        .env("PRODEX_HOME", &home.0)
        .env("GEM_KEY", "gk-1,gk-2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!text.contains("gk-1"), "no secret in the listing");
    let list: Value = serde_json::from_str(&text).unwrap();
    let find = |name: &str| list.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    let gem = find("gem");
    assert_eq!(gem["keys"], 2);
    assert_eq!(
        gem["aliases"],
        json!([{"alias": "fast", "strategy": "lowest-latency", "models": ["gemini-2.5-flash"], "max_attempts": 2}])
    );
    assert_eq!(find("openai")["aliases"][0]["models"], json!(["gpt-4o-mini"]), "the default provider takes the rest");
}

#[test]
fn a_failing_target_is_skipped_once_its_circuit_opens_and_readiness_stays_up() {
    let mock = Mock::start();
    let down = format!("http://127.0.0.1:{}/v1beta", closed_port());
    let alias = "[[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"gpt-4o-mini\"]\n";
    let gw = gateway(&mock, Some(down), alias);
    for i in 0..5 {
        let r = chat(&gw, "fast", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        let row = row_of(&gw, MASTER, &r);
        assert_eq!(
            (row["attempts"].as_u64(), row["fallback_error"].as_str()),
            (Some(2), Some("upstream_unreachable")),
            "call {i}"
        );
    }
    // Five failures in a row: Gemini's circuit is open, so the next call goes straight to OpenAI.
    let r = chat(&gw, "fast", &[]);
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(served_by(&row), ("openai".into(), "gpt-4o-mini".into(), 1, None));
    let ready = gw.get("/readyz");
    assert_eq!(ready.status, 200, "one bad provider does not take the node out");
    assert_eq!(
        ready.json()["degraded_upstreams"],
        json!([{"provider": "gem", "model": "gemini-2.5-flash", "circuit": "open"}])
    );
    let metrics = crate::support::admin::get(&gw, MASTER, "metrics").text();
    for line in [
        "prodex_gateway_upstream_health{provider=\"gem\",model=\"gemini-2.5-flash\"} 0",
        "prodex_gateway_upstream_health{provider=\"openai\",model=\"gpt-4o-mini\"} 1",
        "prodex_gateway_upstream_attempts_total{provider=\"gem\",outcome=\"failed\"} 5",
        "prodex_gateway_upstream_attempts_total{provider=\"openai\",outcome=\"ok\"} 6",
        "prodex_gateway_target_failures_total{provider=\"gem\",kind=\"upstream_unreachable\"} 5",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[test]
fn the_openai_sdk_sees_a_fallback_as_one_call() {
    let mock = Mock::start();
    let down = format!("http://127.0.0.1:{}/v1beta", closed_port());
    let alias = "[[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"claude-haiku-4-5\", \"gpt-4o-mini\"]\n";
    let gw = gateway(&mock, Some(down), alias);
    let stdout = crate::sdk::run_script(&gw, "fallback_sdk.py", MASTER);
    assert!(stdout.contains("ALL OK"), "{stdout}");
}

#[test]
fn check_names_a_routed_provider_without_a_key() {
    let home = crate::support::TempDir::new("routing-nokey");
    // The built-in gemini provider given models, its key left to GEMINI_API_KEY.
    let policy = "[[gateway.providers]]\nname = \"gemini\"\nmodels = [\"gemini-*\"]\n";
    std::fs::write(home.0.join("policy.toml"), policy).unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(crate::support::bin());
        cmd.args(["gateway", "check"]).env_clear().env("HOME", &home.0).env("PRODEX_HOME", &home.0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
    };
    let (code, text) = run(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("provider gemini (kind gemini) has no API key (set GEMINI_API_KEY)"), "{text}");
    assert!(
        text.contains("provider openai has no API key (set OPENAI_API_KEY)"),
        "F1: the default provider too: {text}"
    );
    let (_, text) = run(&[("GEMINI_API_KEY", "gk-1"), ("OPENAI_API_KEY", "sk-1")]);
    assert!(!text.contains("has no API key"), "{text}");
}

#[test]
fn a_500_and_a_529_fall_over_like_a_refused_connection() {
    let mock = Mock::start();
    let alias = "[[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"claude-haiku-4-5\", \"gpt-4o-mini\"]\nmax_attempts = 5\n";
    let gw = gateway(&mock, None, alias);
    let r = chat(&gw, "fast", &[("x-mock-gemini", "internal"), ("x-mock-anthropic", "overloaded")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(served_by(&row), ("openai".into(), "gpt-4o-mini".into(), 3, Some("upstream_overloaded".into())));
    let paths: Vec<String> = mock.requests().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        ["/v1beta/models/gemini-2.5-flash:generateContent", "/anthropic/v1/messages", "/v1/chat/completions"]
    );
}

#[test]
fn a_target_that_times_out_before_its_headers_falls_over() {
    let mock = Mock::start();
    let extra = "[gateway]\nupstream_idle_timeout_seconds = 1\n\n\
                 [[gateway.route_aliases]]\nalias = \"fast\"\nmodels = [\"gemini-2.5-flash\", \"gpt-4o-mini\"]\n";
    let gw = gateway(&mock, None, extra);
    let t0 = std::time::Instant::now();
    let r = chat(&gw, "fast", &[("x-mock-gemini", "hang")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(t0.elapsed() < std::time::Duration::from_millis(2900), "the timeout, not the hang, ended the first try");
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(served_by(&row), ("openai".into(), "gpt-4o-mini".into(), 2, Some("upstream_timeout".into())));
}
