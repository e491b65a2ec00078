use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

fn check(policy: &str, env_pairs: &[(&str, &str)], flags: &Flags) -> Result<Config, Vec<String>> {
    let env = env(env_pairs);
    let inputs = Inputs { flags, env: &env, home: PathBuf::from("/h"), policy: Some(("policy.toml", policy)), cpus: 2 };
    load(&inputs).map_err(|errs| errs.iter().map(ToString::to_string).collect())
}

#[test]
fn no_config_means_loopback_openai_without_auth() {
    let c = check("", &[], &Flags::default()).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:4000");
    assert_eq!(c.default_provider, "openai");
    assert_eq!(c.provider("openai").unwrap().base_url, "https://api.openai.com/v1");
    assert_eq!(c.require_auth, None);
    assert!(!c.auth_required(0), "no credential anywhere: open on loopback");
    assert!(c.auth_required(1), "a key in the store turns auth on");
    assert!(c.auth_status(0).unwrap().starts_with("client auth is off"));
    assert_eq!(c.auth_status(3).unwrap(), "client auth is on: calls must present 3 virtual key(s)");
    assert_eq!(c.server.max_body_bytes, 64 << 20);
    assert_eq!(c.shutdown_grace.as_secs(), 30);
    assert_eq!(c.workers, 2);
    assert_eq!(c.state.backend, Backend::Redb);
    assert_eq!(c.state.redb_path, PathBuf::from("/h/gateway-state.redb"));
    assert_eq!(c.logs.dir, PathBuf::from("/h/logs"));
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let policy = "[gateway]\nlisten_adr = \"1.2.3.4:1\"\nprovider = 5\n\n[gateway.ledger]\ndurability = \"sometimes\"\n\n[gateway.bogus]\n";
    let errs = check(policy, &[], &Flags::default()).unwrap_err();
    let all = errs.join("\n");
    assert!(all.contains("policy.toml:2: gateway.listen_adr: unknown key (did you mean `listen_addr`?)"), "{all}");
    assert!(all.contains("policy.toml:3: gateway.provider: expected a string, found integer"), "{all}");
    assert!(all.contains("policy.toml:6: gateway.ledger.durability: expected commit or async"), "{all}");
    assert!(all.contains("gateway.bogus: unknown key"), "{all}");
    assert_eq!(errs.len(), 4, "{all}");
}

#[test]
fn syntax_errors_name_the_line() {
    let errs = check("[gateway]\nlisten_addr = \n", &[], &Flags::default()).unwrap_err();
    assert!(errs[0].starts_with("policy.toml:2: (syntax)"), "{errs:?}");
}

#[test]
fn missing_env_vars_are_errors_without_values() {
    let policy = "[[gateway.virtual_keys]]\nname = \"team-a\"\ntoken_env = \"TEAM_A_KEY\"\n\n[[gateway.admin_tokens]]\nname = \"auditor\"\ntoken_env = \"AUDITOR\"\nrole = \"root\"\n";
    let errs = check(policy, &[], &Flags::default()).unwrap_err();
    let all = errs.join("\n");
    assert!(
        all.contains("policy.toml:3: gateway.virtual_keys[0].token_env: environment variable TEAM_A_KEY is not set"),
        "{all}"
    );
    assert!(all.contains("gateway.admin_tokens[0].token_env: environment variable AUDITOR is not set"), "{all}");
    assert!(all.contains("policy.toml:8: gateway.admin_tokens[0].role: expected viewer or admin"), "{all}");
}

#[test]
fn non_loopback_requires_client_auth() {
    let flags = Flags { listen: Some("0.0.0.0:4000".into()), ..Flags::default() };
    let c = check("", &[], &flags).unwrap();
    let err = c.auth_status(0).unwrap_err();
    assert!(err.contains("refusing to listen on non-loopback 0.0.0.0:4000"), "{err}");
    assert!(c.auth_required(0), "a public listener never runs without auth");
    assert_eq!(c.auth_status(2).unwrap(), "client auth is on: calls must present 2 virtual key(s)");
    let c = check("", &[("PRODEX_GATEWAY_TOKEN", "s3cret-0123456789abcdef")], &flags).unwrap();
    assert!(c.auth_required(0));
    assert_eq!(c.auth_status(0).unwrap(), "client auth is on: calls must present the master token");
    let c = check("[gateway]\nrequire_auth = true\n", &[], &Flags::default()).unwrap();
    assert!(c.auth_status(0).unwrap().contains("every data-plane call gets 401 until a virtual key is created"));
    let c = check("[gateway]\nrequire_auth = false\n", &[], &Flags::default()).unwrap();
    assert!(!c.auth_required(5));
    assert!(c.auth_status(5).unwrap().starts_with("client auth is off (require_auth = false)"));
    let errs =
        check("[gateway]\nrequire_auth = false\n", &[("PRODEX_GATEWAY_TOKEN", "s3cret-0123456789abcdef")], &flags)
            .unwrap_err();
    assert!(errs[0].contains("require_auth: false is only allowed on a loopback"), "{errs:?}");
}

#[test]
fn precedence_is_flag_then_env_then_policy() {
    let policy = "[gateway]\nlisten_addr = \"127.0.0.1:5000\"\nmax_request_body_bytes = 100\n";
    let c = check(policy, &[], &Flags::default()).unwrap();
    assert_eq!(c.listen.port(), 5000);
    assert_eq!(c.server.max_body_bytes, 100);
    let c = check(
        policy,
        &[("PRODEX_GATEWAY_LISTEN", "127.0.0.1:6000"), ("PRODEX_GATEWAY_MAX_BODY_BYTES", "200")],
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.listen.port(), 6000);
    assert_eq!(c.server.max_body_bytes, 200);
    let flags = Flags {
        listen: Some("localhost:7000".into()),
        base_url: Some("http://127.0.0.1:9/v1/".into()),
        ..Flags::default()
    };
    let c = check(policy, &[("PRODEX_GATEWAY_LISTEN", "127.0.0.1:6000"), ("OPENAI_BASE_URL", "http://x/v1")], &flags)
        .unwrap();
    assert_eq!(c.listen.port(), 7000);
    assert_eq!(c.provider("openai").unwrap().base_url, "http://127.0.0.1:9/v1");
}

#[test]
fn key_pools_and_providers() {
    let c = check("", &[("OPENAI_API_KEYS", "a, b\nc"), ("OPENAI_API_KEY", "ignored")], &Flags::default()).unwrap();
    let keys: Vec<&str> = c.provider("openai").unwrap().api_keys.iter().map(Secret::expose).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    let policy = "[[gateway.providers]]\nname = \"local\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"\nmodels = [\"llama-*\"]\n";
    let c = check(policy, &[], &Flags { provider: Some("local".into()), ..Flags::default() }).unwrap();
    assert_eq!(c.default_provider, "local");
    assert_eq!(c.provider("local").unwrap().models, ["llama-*"]);
    let errs = check("", &[], &Flags { provider: Some("nope".into()), ..Flags::default() }).unwrap_err();
    assert!(errs[0].contains("unknown provider `nope`"), "{errs:?}");
    let errs = check("[[gateway.providers]]\nname = \"x\"\nmodels = [\"a*b\"]\n", &[], &Flags::default()).unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn seed_backends_mean_redb_and_are_noted() {
    let c = check(
        "[gateway.state]\nbackend = \"sqlite\"\nsqlite_path = \"gateway-state.sqlite\"\n",
        &[],
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.state.backend, Backend::Redb);
    assert_eq!(c.state.redb_path, PathBuf::from("/h/gateway-state.sqlite"));
    assert!(c.notices.iter().any(|n| n.contains("`sqlite` means the embedded redb store")));
    let errs = check("[gateway.state]\nbackend = \"postgres\"\n", &[], &Flags::default()).unwrap_err();
    assert!(errs[0].contains("PRODEX_GATEWAY_POSTGRES_URL is not set"), "{errs:?}");
    let c = check(
        "",
        &[("PRODEX_GATEWAY_STATE_BACKEND", "redis"), ("PRODEX_GATEWAY_REDIS_URL", "redis://127.0.0.1/")],
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.state.backend, Backend::Redis);
}

#[test]
fn the_full_example_schema_parses() {
    let policy = include_str!("../../deploy/policy.example.toml");
    let c = check(
        policy,
        &[
            ("GEMINI_API_KEY", "g"),
            ("ANTHROPIC_API_KEY", "a"),
            ("TEAM_A_CI_KEY", "pk-team-a"),
            ("PRODEX_GATEWAY_AUDITOR_TOKEN", "aud"),
            ("PRODEX_GATEWAY_SSO_PROXY_TOKEN", "sso"),
        ],
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.virtual_keys[0].budget_microusd, Some(50_000_000));
    assert_eq!(c.virtual_keys[0].expires_at, Some(1_798_761_600_000));
    assert_eq!(c.route_aliases[0].strategy, RouteStrategy::Fallback);
    assert_eq!(c.route_aliases[0].max_attempts, Some(3));
    // The several-provider example routes each of the alias's models to its provider.
    let globs = crate::config::model_globs(&c.providers);
    let default = c.default_provider_index().unwrap();
    let plan = crate::core::routing::plan("prodex-fast", &c.route_aliases, &globs, default, 0, |_| Default::default());
    let served: Vec<&str> = plan.targets.iter().map(|t| c.providers[t.provider].name.as_str()).collect();
    assert_eq!(served, ["gemini", "anthropic", "openai"]);
    assert_eq!(c.admin_tokens[0].role, Role::Viewer);
    assert!(c.sso.proxy_token.is_some());
}

#[test]
fn rendered_config_never_shows_secrets() {
    let c = check(
        "",
        &[("PRODEX_GATEWAY_TOKEN", "master-secret-value"), ("OPENAI_API_KEY", "sk-live-secret")],
        &Flags::default(),
    )
    .unwrap();
    let text = c.render_redacted();
    assert!(!text.contains("master-secret-value") && !text.contains("sk-live-secret"), "{text}");
    assert!(text.contains("<redacted: $PRODEX_GATEWAY_TOKEN>"), "{text}");
    assert!(!format!("{c:?}").contains("sk-live-secret"));
    toml::from_str::<toml::Table>(&text).unwrap();
}

#[test]
fn oidc_settings_are_noted_as_not_verified_in_this_build() {
    let policy =
        "[gateway.sso]\noidc_issuer = \"https://idp.example.com/realms/main\"\noidc_audience = \"prodex-gateway\"\n";
    let c = check(policy, &[], &Flags::default()).unwrap();
    assert!(c.notices.iter().any(|n| n.contains("does not verify OIDC/JWT bearers yet")), "{:?}", c.notices);
    assert!(!check("", &[], &Flags::default()).unwrap().notices.iter().any(|n| n.contains("OIDC")));
}

#[test]
fn userinfo_is_redacted_from_urls() {
    for (url, want) in [
        ("http://user:pa55word@host:8000/v1", "http://***@host:8000/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://host/v1/a@b", "http://host/v1/a@b"),
        ("http://tok@host?x=@", "http://***@host?x=@"),
        ("nonsense", "nonsense"),
    ] {
        assert_eq!(redact_url(url), want, "{url}");
    }
    let flags = Flags { base_url: Some("http://u:hunter2-secret@127.0.0.1:9/v1".into()), ..Flags::default() };
    let c = check("", &[], &flags).unwrap();
    assert!(!c.render_redacted().contains("hunter2-secret"), "{}", c.render_redacted());
}

#[test]
fn weak_secrets_are_refused_off_loopback_and_noted_on_it() {
    let public = Flags { listen: Some("0.0.0.0:4000".into()), ..Flags::default() };
    let policy = "[[gateway.admin_tokens]]\nname = \"auditor\"\ntoken_env = \"AUD\"\n\n[gateway.sso]\nproxy_token_env = \"SSO\"\n";
    let env = [
        ("PRODEX_GATEWAY_TOKEN", "replace-with-a-long-random-token"),
        ("AUD", "a"),
        ("SSO", "changeme-please-0123456789"),
    ];
    let errs = check(policy, &env, &public).unwrap_err();
    let all = errs.join("\n");
    assert!(all.contains("env PRODEX_GATEWAY_TOKEN: PRODEX_GATEWAY_TOKEN: is a placeholder from the example env file: refused on the non-loopback listener 0.0.0.0:4000"), "{all}");
    assert!(all.contains("env AUD: AUD: is shorter than 16 characters"), "{all}");
    assert!(all.contains("env SSO: SSO: is a placeholder"), "{all}");
    assert_eq!(errs.len(), 3, "{all}");
    let c = check(policy, &env, &Flags::default()).unwrap();
    assert_eq!(c.notices.iter().filter(|n| n.contains("accepted on loopback only")).count(), 3, "{:?}", c.notices);
    let strong =
        [("PRODEX_GATEWAY_TOKEN", "0123456789abcdef"), ("AUD", "q8Zt3vLm0pR6wXy1"), ("SSO", "f00dfeedcafe1234beef")];
    let c = check(policy, &strong, &public).unwrap();
    assert!(!c.notices.iter().any(|n| n.contains("loopback only")), "{:?}", c.notices);
    let dup = "[[gateway.admin_tokens]]\nname = \"ops\"\ntoken_env = \"AUD\"\n\n[[gateway.admin_tokens]]\nname = \"OPS\"\ntoken_env = \"AUD\"\n";
    let errs = check(dup, &strong, &Flags::default()).unwrap_err();
    assert!(errs[0].contains("gateway.admin_tokens[1].name: `OPS` is used by another admin token"), "{errs:?}");
}

#[test]
fn retention_must_keep_at_least_a_day() {
    let errs = check("[gateway.ledger]\nretention_days = 0\n", &[], &Flags::default()).unwrap_err();
    assert!(errs[0].contains("policy.toml:2: gateway.ledger.retention_days: must be at least 1"), "{errs:?}");
    assert_eq!(
        check("[gateway.ledger]\nretention_days = 1\n", &[], &Flags::default()).unwrap().ledger.retention_days,
        1
    );
}
