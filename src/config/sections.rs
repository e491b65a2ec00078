//! The `[gateway]` table and its sections, read key by key into a `Config` with every problem
//! recorded in `Diagnostics` (see `policy.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use super::policy::{Diagnostics, Section};
use super::{
    split_list, AdminToken, AuditConfig, Backend, BudgetPeriod, Config, ConfigError, Durability, Env, Inputs,
    LedgerConfig, LogConfig, LogFormat, MetricsConfig, PriceOverride, Provider, ProviderKind, Role, Secret,
    ServerConfig, SsoConfig, StateConfig, StaticKey, UpstreamConfig, BUILTIN_PROVIDERS,
};
use crate::core::time::parse_rfc3339;

pub(super) fn build(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>, env: &Env<'_>, inputs: &Inputs<'_>) -> Config {
    let flags = inputs.flags;
    let mut notices = Vec::new();

    // [gateway] scalars.
    let policy_listen = gw.string(d, "listen_addr");
    let listen_src = flags
        .listen
        .as_deref()
        .map(|v| (v.to_string(), "--listen".to_string()))
        .or_else(|| env.get("PRODEX_GATEWAY_LISTEN").map(|v| (v.to_string(), "env PRODEX_GATEWAY_LISTEN".to_string())))
        .or_else(|| policy_listen.map(|v| (v, format!("{}:{}", d.file, d.line_of(gw.offset_of("listen_addr"))))));
    let listen = match &listen_src {
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000),
        Some((text, location)) => parse_listen(text).unwrap_or_else(|msg| {
            d.errors.push(ConfigError { location: location.clone(), key: "gateway.listen_addr".into(), message: msg });
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000)
        }),
    };
    let policy_provider = gw.string(d, "provider");
    let policy_base_url = gw.string(d, "base_url");
    let require_auth = gw.boolean(d, "require_auth");
    let policy_max_body = gw.uint(d, "max_request_body_bytes");
    let grace = gw.uint(d, "shutdown_grace_seconds").unwrap_or(30);
    let stored_context_input_tokens = gw.uint(d, "stored_context_input_tokens").unwrap_or(200_000);
    let allow_key_object_routes = gw.boolean(d, "allow_key_object_routes").unwrap_or(false);
    let policy_workers = gw.uint(d, "workers");
    let max_connections = gw.uint(d, "max_connections").unwrap_or(16_384);
    let header_timeout = gw.uint(d, "header_timeout_seconds").unwrap_or(10);
    let body_timeout = gw.uint(d, "body_timeout_seconds").unwrap_or(300);
    let idle_timeout = gw.uint(d, "idle_timeout_seconds").unwrap_or(75);
    let connect_timeout = gw.uint(d, "upstream_connect_timeout_seconds").unwrap_or(5);
    let upstream_idle = gw.uint(d, "upstream_idle_timeout_seconds").unwrap_or(300);

    let max_body_bytes = match env.get("PRODEX_GATEWAY_MAX_BODY_BYTES") {
        Some(v) => v.parse::<u64>().unwrap_or_else(|_| {
            Env::error(d, "PRODEX_GATEWAY_MAX_BODY_BYTES", "expected a number of bytes");
            64 << 20
        }),
        None => policy_max_body.unwrap_or(64 << 20),
    };
    let workers = flags
        .workers
        .map(|w| w as u64)
        .or_else(|| env.get("PRODEX_GATEWAY_WORKERS").and_then(|v| v.parse().ok()))
        .or(policy_workers)
        .unwrap_or(inputs.cpus.max(1) as u64);
    if workers == 0 || workers > 256 {
        d.errors.push(ConfigError {
            location: "--workers".into(),
            key: "gateway.workers".into(),
            message: "must be between 1 and 256".into(),
        });
    }
    if max_connections == 0 {
        d.error_at(gw.offset_of("max_connections"), "gateway.max_connections", "must be at least 1");
    }

    // Providers: built-ins, then [[gateway.providers]] overriding or adding by name.
    let mut providers: Vec<Provider> = BUILTIN_PROVIDERS
        .iter()
        .map(|(name, kind, url, url_env, key_envs)| Provider {
            name: (*name).to_string(),
            kind: *kind,
            base_url: url_env.and_then(|e| env.get(e)).unwrap_or(url).trim_end_matches('/').to_string(),
            api_keys: env.pool(key_envs),
            models: Vec::new(),
            organization: None,
            project: None,
        })
        .collect();
    let mut configured: Vec<String> = Vec::new();
    // Where each configured provider's `models` is, for the routing table's errors.
    let mut models_at: Vec<(String, usize, String)> = Vec::new();
    for mut p in gw.tables(d, "providers") {
        let name = p.string(d, "name");
        let kind = p.string(d, "kind");
        let base_url = p.string(d, "base_url");
        let key = p.string(d, "api_key_env");
        let models = p.string_list(d, "models").unwrap_or_default();
        if let Some(n) = &name {
            models_at.push((n.clone(), p.offset_of("models"), format!("{}.models", p.path)));
        }
        let organization = p.string(d, "organization");
        let project = p.string(d, "project");
        let path = p.path.clone();
        let Some(name) = name else {
            d.error_at(p.offset_of("name"), &format!("{path}.name"), "is required");
            p.finish(d);
            continue;
        };
        configured.push(name.clone());
        let builtin = providers.iter().position(|x| x.name == name);
        let kind = match kind.as_deref().map(ProviderKind::parse) {
            Some(Some(k)) => k,
            Some(None) => {
                d.error_at(p.offset_of("kind"), &format!("{path}.kind"), "expected openai, gemini, anthropic or mock");
                ProviderKind::OpenAi
            }
            None => match builtin {
                Some(i) => providers[i].kind,
                None => {
                    d.error_at(
                        p.offset_of("name"),
                        &format!("{path}.kind"),
                        "is required for a provider that is not built in",
                    );
                    ProviderKind::OpenAi
                }
            },
        };
        let base_url = match (base_url, builtin) {
            (Some(u), _) => check_url(d, p.offset_of("base_url"), &format!("{path}.base_url"), &u),
            (None, Some(i)) => providers[i].base_url.clone(),
            (None, None) => {
                d.error_at(
                    p.offset_of("name"),
                    &format!("{path}.base_url"),
                    "is required for a provider that is not built in",
                );
                String::new()
            }
        };
        let api_keys = match key {
            Some(var) => match env.get(&var) {
                Some(v) => split_list(v).into_iter().map(|k| Secret::new(k, var.clone())).collect(),
                None => {
                    d.error_at(
                        p.offset_of("api_key_env"),
                        &format!("{path}.api_key_env"),
                        format!("environment variable {var} is not set"),
                    );
                    Vec::new()
                }
            },
            None => builtin.map(|i| providers[i].api_keys.clone()).unwrap_or_default(),
        };
        check_globs(d, &p, "models", &models);
        for (field, value) in [("organization", &organization), ("project", &project)] {
            if value.as_deref().is_some_and(|v| v.is_empty() || v.chars().any(|c| c.is_control())) {
                d.error_at(p.offset_of(field), &format!("{path}.{field}"), "expected a non-empty header value");
            }
        }
        let provider = Provider { name: name.clone(), kind, base_url, api_keys, models, organization, project };
        match builtin {
            Some(i) => providers[i] = provider,
            None => providers.push(provider),
        }
        p.finish(d);
    }
    let (provider_name, provider_loc) = flags
        .provider
        .clone()
        .map(|p| (p, "--provider".to_string()))
        .or_else(|| env.get("PRODEX_GATEWAY_PROVIDER").map(|p| (p.to_string(), "env PRODEX_GATEWAY_PROVIDER".into())))
        .or_else(|| policy_provider.map(|p| (p, format!("{}:{}", d.file, d.line_of(gw.offset_of("provider"))))))
        .unwrap_or_else(|| ("openai".into(), "default".into()));
    if let Some(i) = providers.iter().position(|p| p.name == provider_name) {
        let base =
            flags.base_url.clone().map(|u| (u, "--base-url".to_string())).or_else(|| {
                policy_base_url.map(|u| (u, format!("{}:{}", d.file, d.line_of(gw.offset_of("base_url")))))
            });
        if let Some((url, location)) = base {
            if url.starts_with("http://") || url.starts_with("https://") {
                providers[i].base_url = url.trim_end_matches('/').to_string();
            } else {
                d.errors.push(ConfigError {
                    location,
                    key: "gateway.base_url".into(),
                    message: "expected an http:// or https:// URL".into(),
                });
            }
        }
    } else {
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        d.errors.push(ConfigError {
            location: provider_loc,
            key: "gateway.provider".into(),
            message: format!("unknown provider `{provider_name}`; known: {}", names.join(", ")),
        });
    }

    let route_aliases = super::routes::read_aliases(gw, d, &providers, &models_at);
    notices.extend(super::routes::keyless_notices(&providers, &provider_name, &route_aliases));
    let pricing = read_pricing(gw, d);
    let virtual_keys = read_virtual_keys(gw, d, env);
    let state = read_state(gw, d, env, &inputs.home, &mut notices);
    let ledger = read_ledger(gw, d);
    let audit = read_audit(gw, d);
    let media = super::media::read(gw, d);
    let admin_tokens = read_admin_tokens(gw, d, env);
    let sso = read_sso(gw, d, env);
    let metrics = read_metrics(gw, d);
    let logs = read_logs(d, env, inputs);

    let gateway_token = env.get("PRODEX_GATEWAY_TOKEN").map(|t| Secret::new(t, "PRODEX_GATEWAY_TOKEN"));
    // Whether anyone can authenticate depends on the keys in the store too, so the non-loopback
    // rule is checked once the store is open (`Config::auth_status`); only the setting is here.
    if !listen.ip().is_loopback() && require_auth == Some(false) {
        d.error_at(
            gw.offset_of("require_auth"),
            "gateway.require_auth",
            "false is only allowed on a loopback listen address",
        );
    }
    let secrets = gateway_token.iter().chain(admin_tokens.iter().map(|t| &t.token)).chain(sso.proxy_token.iter());
    for secret in secrets {
        let Some(why) = weak_secret(secret.expose()) else { continue };
        if listen.ip().is_loopback() {
            notices.push(format!(
                "${} is {why}: accepted on loopback only; generate a real one with `openssl rand -hex 32`",
                secret.source
            ));
        } else {
            d.errors.push(ConfigError {
                location: format!("env {}", secret.source),
                key: secret.source.clone(),
                message: format!(
                    "is {why}: refused on the non-loopback listener {listen}; generate one with `openssl rand -hex 32`"
                ),
            });
        }
    }
    if sso.oidc_issuer.is_some() || sso.oidc_audience.is_some() {
        notices.push(
            "[gateway.sso] oidc_* is set, but this build does not verify OIDC/JWT bearers yet: they get 401 on the \
             admin plane (trusted-proxy SSO and admin tokens work)"
                .into(),
        );
    }

    Config {
        home: inputs.home.clone(),
        policy_file: inputs.policy.map(|(f, _)| f.to_string()),
        listen,
        workers: usize::try_from(workers.clamp(1, 256)).unwrap_or(1),
        default_provider: provider_name,
        providers,
        gateway_token,
        require_auth,
        shutdown_grace: Duration::from_secs(grace),
        server: ServerConfig {
            max_body_bytes,
            max_connections: usize::try_from(max_connections.max(1)).unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(header_timeout.max(1)),
            idle_timeout: Duration::from_secs(idle_timeout.max(1)),
            io_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(body_timeout.max(1)),
        },
        upstream: UpstreamConfig {
            connect_timeout: Duration::from_secs(connect_timeout.max(1)),
            idle_timeout: Duration::from_secs(upstream_idle.max(1)),
            max_idle_per_host: 64,
        },
        stored_context_input_tokens,
        allow_key_object_routes,
        route_aliases,
        pricing,
        virtual_keys,
        state,
        ledger,
        audit,
        media,
        admin_tokens,
        sso,
        metrics,
        logs,
        notices,
    }
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        }
    }
    Err(format!("`{text}` is not IP:PORT (e.g. 127.0.0.1:4000, 0.0.0.0:4000, [::1]:4000)"))
}

fn check_url(d: &mut Diagnostics<'_>, offset: usize, key: &str, url: &str) -> String {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        d.error_at(offset, key, "expected an http:// or https:// URL");
    }
    url.trim_end_matches('/').to_string()
}

fn check_globs(d: &mut Diagnostics<'_>, s: &Section<'_, '_>, key: &str, globs: &[String]) {
    for g in globs {
        if g.is_empty() || g[..g.len() - 1].contains('*') {
            d.error_at(
                s.offset_of(key),
                &format!("{}.{key}", s.path),
                format!("`{g}`: expected an exact model name or a trailing-* glob"),
            );
        }
    }
}

fn read_pricing(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>) -> Vec<PriceOverride> {
    let mut out = Vec::new();
    for mut s in gw.tables(d, "pricing") {
        let model = s.string(d, "model");
        let input = s.number(d, "input");
        let output = s.number(d, "output");
        let cached_input = s.number(d, "cached_input");
        let cache_write_input = s.number(d, "cache_write_input");
        let cache_write_1h_input = s.number(d, "cache_write_1h_input");
        for (key, v) in [("model", model.is_some()), ("input", input.is_some()), ("output", output.is_some())] {
            if !v {
                d.error_at(s.offset_of(key), &format!("{}.{key}", s.path), "is required");
            }
        }
        if let (Some(model), Some(input), Some(output)) = (model, input, output) {
            out.push(PriceOverride { model, input, output, cached_input, cache_write_input, cache_write_1h_input });
        }
        s.finish(d);
    }
    out
}

fn read_virtual_keys(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>, env: &Env<'_>) -> Vec<StaticKey> {
    let mut out: Vec<StaticKey> = Vec::new();
    for mut s in gw.tables(d, "virtual_keys") {
        let path = s.path.clone();
        let name = s.string(d, "name");
        let token = env.secret(d, &mut s, "token_env");
        let budget_period = match s.string(d, "budget_period").as_deref() {
            None | Some("total") => BudgetPeriod::Total,
            Some("daily") => BudgetPeriod::Daily,
            Some("weekly") => BudgetPeriod::Weekly,
            Some("monthly") => BudgetPeriod::Monthly,
            Some(_) => {
                d.error_at(
                    s.offset_of("budget_period"),
                    &format!("{path}.budget_period"),
                    "expected total, daily, weekly or monthly",
                );
                BudgetPeriod::Total
            }
        };
        let expires_at = s.string(d, "expires_at").and_then(|t| match parse_rfc3339(&t) {
            Ok(ms) => Some(ms),
            Err(msg) => {
                d.error_at(s.offset_of("expires_at"), &format!("{path}.expires_at"), msg);
                None
            }
        });
        let allowed_models = s.string_list(d, "allowed_models").unwrap_or_default();
        check_globs(d, &s, "allowed_models", &allowed_models);
        let key = StaticKey {
            name: name.clone().unwrap_or_default(),
            token: token.clone().unwrap_or_else(|| Secret::new("", "")),
            tenant_id: s.string(d, "tenant_id"),
            team_id: s.string(d, "team_id"),
            project_id: s.string(d, "project_id"),
            user_id: s.string(d, "user_id"),
            budget_id: s.string(d, "budget_id"),
            allowed_models,
            budget_microusd: s.number(d, "budget_usd").map(usd_to_micros),
            budget_period,
            request_budget: s.uint(d, "request_budget"),
            rpm_limit: s.uint(d, "rpm_limit"),
            tpm_limit: s.uint(d, "tpm_limit"),
            max_parallel_requests: s.uint(d, "max_parallel_requests"),
            expires_at,
        };
        match &name {
            None => d.error_at(s.offset_of("name"), &format!("{path}.name"), "is required"),
            Some(n) if !crate::core::keys::valid_name(n) => d.error_at(
                s.offset_of("name"),
                &format!("{path}.name"),
                "must be 1-128 characters of A-Z a-z 0-9 . _ - (with at most one `:` after a tenant namespace)",
            ),
            Some(n) if !crate::core::keys::name_fits(n, key.tenant_id.as_deref()) => d.error_at(
                s.offset_of("name"),
                &format!("{path}.name"),
                format!("`{n}` is in the namespace of another tenant (names `T:…` belong to keys of tenant T)"),
            ),
            Some(n) if out.iter().any(|k| k.name.eq_ignore_ascii_case(n)) => {
                d.error_at(
                    s.offset_of("name"),
                    &format!("{path}.name"),
                    format!("duplicate key name `{n}` (names are unique case-insensitively)"),
                );
            }
            Some(_) => {}
        }
        if token.is_none() && s.string(d, "token_env").is_none() {
            d.error_at(s.offset_of("name"), &format!("{path}.token_env"), "is required");
        }
        if let Some(t) = &token {
            if out.iter().any(|k| k.token.expose() == t.expose()) {
                d.error_at(
                    s.offset_of("token_env"),
                    &format!("{path}.token_env"),
                    "two virtual keys use the same token",
                );
            }
        }
        if name.is_some() && token.is_some() {
            out.push(key);
        }
        s.finish(d);
    }
    out
}

/// USD → integer micro-USD, rounded to the nearest micro.
#[must_use]
pub(crate) fn usd_to_micros(usd: f64) -> u64 {
    let micros = (usd * 1_000_000.0).round();
    if micros <= 0.0 {
        0
    } else if micros >= 1.8e19 {
        u64::MAX
    } else {
        // Range checked above; the cast is exact for integral values below 2^64.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let m = micros as u64;
        m
    }
}

fn read_state(
    gw: &mut Section<'_, '_>,
    d: &mut Diagnostics<'_>,
    env: &Env<'_>,
    home: &std::path::Path,
    notices: &mut Vec<String>,
) -> StateConfig {
    let empty = DeTable::default();
    let mut s = gw.table(d, "state").unwrap_or_else(|| Section::new("gateway.state", &empty, 0));
    let policy_backend = s.string(d, "backend");
    let (alias, location) = match env.get("PRODEX_GATEWAY_STATE_BACKEND") {
        Some(b) => (b.to_string(), "env PRODEX_GATEWAY_STATE_BACKEND".to_string()),
        None => (
            policy_backend.unwrap_or_else(|| "redb".into()),
            format!("{}:{}", d.file, d.line_of(s.offset_of("backend"))),
        ),
    };
    let backend = match alias.as_str() {
        "redb" => Backend::Redb,
        "file" | "sqlite" | "embedded" => {
            notices.push(format!("state backend `{alias}` means the embedded redb store (single node, one file)"));
            Backend::Redb
        }
        "postgres" => Backend::Postgres,
        "redis" => Backend::Redis,
        other => {
            d.errors.push(ConfigError {
                location,
                key: "gateway.state.backend".into(),
                message: format!(
                    "unknown backend `{other}`; expected redb, postgres or redis (file, sqlite and embedded mean redb)"
                ),
            });
            Backend::Redb
        }
    };
    let redb_path = s.string(d, "redb_path");
    let sqlite_path = s.string(d, "sqlite_path");
    let rel = redb_path.or(sqlite_path).unwrap_or_else(|| "gateway-state.redb".into());
    let pg_env = s.string(d, "postgres_url_env").unwrap_or_else(|| "PRODEX_GATEWAY_POSTGRES_URL".into());
    let redis_env = s.string(d, "redis_url_env").unwrap_or_else(|| "PRODEX_GATEWAY_REDIS_URL".into());
    let postgres_url = env.get(&pg_env).map(|v| Secret::new(v, pg_env.clone()));
    let redis_url = env.get(&redis_env).map(|v| Secret::new(v, redis_env.clone()));
    if backend == Backend::Postgres && postgres_url.is_none() {
        d.errors.push(ConfigError {
            location: format!("env {pg_env}"),
            key: "gateway.state.postgres_url_env".into(),
            message: format!("backend is postgres but {pg_env} is not set"),
        });
    }
    if backend == Backend::Redis && redis_url.is_none() {
        d.errors.push(ConfigError {
            location: format!("env {redis_env}"),
            key: "gateway.state.redis_url_env".into(),
            message: format!("backend is redis but {redis_env} is not set"),
        });
    }
    let cfg = StateConfig { backend, backend_alias: alias, redb_path: home.join(rel), postgres_url, redis_url };
    s.finish(d);
    cfg
}

/// A section's `retention_days` (default 400; 0 is an error: keeping nothing is not retention).
fn retention_days(s: &mut Section<'_, '_>, d: &mut Diagnostics<'_>, path: &str) -> u64 {
    let days = s.uint(d, "retention_days").unwrap_or(400);
    if days == 0 {
        d.error_at(
            s.offset_of("retention_days"),
            path,
            "must be at least 1 (what is older than this many days is dropped)",
        );
    }
    days
}

fn read_ledger(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>) -> LedgerConfig {
    let mut cfg = LedgerConfig { retention_days: 400, durability: Durability::Commit };
    if let Some(mut s) = gw.table(d, "ledger") {
        cfg.retention_days = retention_days(&mut s, d, "gateway.ledger.retention_days");
        cfg.durability = match s.string(d, "durability").as_deref() {
            None | Some("commit") => Durability::Commit,
            Some("async") => Durability::Async,
            Some(_) => {
                d.error_at(s.offset_of("durability"), "gateway.ledger.durability", "expected commit or async");
                Durability::Commit
            }
        };
        s.finish(d);
    }
    cfg
}

fn read_audit(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>) -> AuditConfig {
    let mut cfg = AuditConfig { retention_days: 400, collapse_window_seconds: 60 };
    if let Some(mut s) = gw.table(d, "audit") {
        cfg.retention_days = retention_days(&mut s, d, "gateway.audit.retention_days");
        cfg.collapse_window_seconds = s.uint(d, "collapse_window_seconds").unwrap_or(60);
        s.finish(d);
    }
    cfg
}

/// Shortest secret accepted on a non-loopback listener.
const MIN_SECRET_LEN: usize = 16;

/// Why `value` is not fit to guard a public listener: a placeholder left from the env example, or
/// too short to resist guessing.
fn weak_secret(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let placeholder = lower.starts_with("replace-")
        || lower.contains("replace-me")
        || lower.contains("replace-with")
        || lower.contains("changeme")
        || lower.contains("change-me")
        || (lower.starts_with('<') && lower.ends_with('>'));
    if placeholder {
        Some("a placeholder from the example env file".into())
    } else if value.chars().count() < MIN_SECRET_LEN {
        Some(format!("shorter than {MIN_SECRET_LEN} characters"))
    } else {
        None
    }
}

fn read_admin_tokens(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>, env: &Env<'_>) -> Vec<AdminToken> {
    let mut out: Vec<AdminToken> = Vec::new();
    for mut s in gw.tables(d, "admin_tokens") {
        let path = s.path.clone();
        let name = s.string(d, "name");
        let token = env.secret(d, &mut s, "token_env");
        let role = match s.string(d, "role").as_deref().map(Role::parse) {
            None => Role::Viewer,
            Some(Some(r)) => r,
            Some(None) => {
                d.error_at(s.offset_of("role"), &format!("{path}.role"), "expected viewer or admin");
                Role::Viewer
            }
        };
        let allowed_key_prefixes = s.string_list(d, "allowed_key_prefixes").unwrap_or_default();
        let tenant_id = s.string(d, "tenant_id");
        if name.is_none() {
            d.error_at(s.offset_of("name"), &format!("{path}.name"), "is required");
        }
        if let Some(n) = &name {
            // The name is the principal's identity (audit, idempotency namespaces): one per token.
            if out.iter().any(|t| t.name.eq_ignore_ascii_case(n)) {
                d.error_at(
                    s.offset_of("name"),
                    &format!("{path}.name"),
                    format!("`{n}` is used by another admin token"),
                );
            }
        }
        if let (Some(name), Some(token)) = (name, token) {
            out.push(AdminToken { name, token, role, allowed_key_prefixes, tenant_id });
        }
        s.finish(d);
    }
    out
}

fn read_sso(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>, env: &Env<'_>) -> SsoConfig {
    let mut cfg = SsoConfig {
        proxy_token: None,
        token_header: "x-prodex-sso-token".into(),
        user_header: "x-auth-request-email".into(),
        role_header: "x-prodex-role".into(),
        key_prefixes_header: "x-prodex-key-prefixes".into(),
        tenant_header: "x-prodex-tenant".into(),
        default_role: Role::Viewer,
        default_scope: crate::core::auth::DefaultScope::Refuse,
        oidc_issuer: None,
        oidc_audience: None,
        oidc_jwks_url: None,
        oidc_user_claim: "email".into(),
        oidc_role_claim: "prodex_role".into(),
        oidc_tenant_claim: "prodex_tenant".into(),
        oidc_key_prefixes_claim: "prodex_key_prefixes".into(),
    };
    let Some(mut s) = gw.table(d, "sso") else {
        return cfg;
    };
    cfg.proxy_token = env.secret(d, &mut s, "proxy_token_env");
    for (key, slot) in [
        ("token_header", &mut cfg.token_header),
        ("user_header", &mut cfg.user_header),
        ("role_header", &mut cfg.role_header),
        ("key_prefixes_header", &mut cfg.key_prefixes_header),
        ("tenant_header", &mut cfg.tenant_header),
    ] {
        if let Some(v) = s.string(d, key) {
            *slot = v.to_ascii_lowercase();
        }
    }
    if let Some(r) = s.string(d, "default_role") {
        match Role::parse(&r) {
            Some(role) => cfg.default_role = role,
            None => d.error_at(s.offset_of("default_role"), "gateway.sso.default_role", "expected viewer or admin"),
        }
    }
    let default_tenant = s.string(d, "default_tenant_id");
    let default_unscoped = s.boolean(d, "default_unscoped").unwrap_or(false);
    cfg.default_scope = match (default_tenant, default_unscoped) {
        (Some(t), false) => crate::core::auth::DefaultScope::Tenant(t),
        (None, true) => crate::core::auth::DefaultScope::Unscoped,
        (None, false) => crate::core::auth::DefaultScope::Refuse,
        (Some(_), true) => {
            d.error_at(
                s.offset_of("default_unscoped"),
                "gateway.sso.default_unscoped",
                "conflicts with default_tenant_id: set one",
            );
            crate::core::auth::DefaultScope::Refuse
        }
    };
    cfg.oidc_issuer =
        s.string(d, "oidc_issuer").map(|u| check_url(d, s.offset_of("oidc_issuer"), "gateway.sso.oidc_issuer", &u));
    cfg.oidc_audience = s.string(d, "oidc_audience");
    cfg.oidc_jwks_url = s
        .string(d, "oidc_jwks_url")
        .map(|u| check_url(d, s.offset_of("oidc_jwks_url"), "gateway.sso.oidc_jwks_url", &u));
    for (key, slot) in [
        ("oidc_user_claim", &mut cfg.oidc_user_claim),
        ("oidc_role_claim", &mut cfg.oidc_role_claim),
        ("oidc_tenant_claim", &mut cfg.oidc_tenant_claim),
        ("oidc_key_prefixes_claim", &mut cfg.oidc_key_prefixes_claim),
    ] {
        if let Some(v) = s.string(d, key) {
            *slot = v;
        }
    }
    if cfg.oidc_issuer.is_some() != cfg.oidc_audience.is_some() {
        d.error_at(
            s.offset_of("oidc_issuer"),
            "gateway.sso.oidc_audience",
            "oidc_issuer and oidc_audience must be set together",
        );
    }
    s.finish(d);
    cfg
}

fn read_metrics(gw: &mut Section<'_, '_>, d: &mut Diagnostics<'_>) -> MetricsConfig {
    let mut cfg = MetricsConfig { per_key_labels: true, max_label_keys: 1000 };
    if let Some(mut s) = gw.table(d, "metrics") {
        cfg.per_key_labels = s.boolean(d, "per_key_labels").unwrap_or(true);
        cfg.max_label_keys = s.uint(d, "max_label_keys").unwrap_or(1000);
        s.finish(d);
    }
    cfg
}

fn read_logs(d: &mut Diagnostics<'_>, env: &Env<'_>, inputs: &Inputs<'_>) -> LogConfig {
    let dir = inputs
        .flags
        .log_dir
        .clone()
        .or_else(|| env.get("PRODEX_RUNTIME_LOG_DIR").map(PathBuf::from))
        .unwrap_or_else(|| inputs.home.join("logs"));
    let format = match env.get("PRODEX_RUNTIME_LOG_FORMAT") {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(_) => {
            Env::error(d, "PRODEX_RUNTIME_LOG_FORMAT", "expected text or json");
            LogFormat::Text
        }
    };
    let level = match env.get("PRODEX_LOG").map(str::to_ascii_lowercase).as_deref() {
        None | Some("info") => log::LevelFilter::Info,
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        Some("off") => log::LevelFilter::Off,
        Some(_) => {
            Env::error(d, "PRODEX_LOG", "expected error, warn, info, debug, trace or off");
            log::LevelFilter::Info
        }
    };
    let keep_runs = match env.get("PRODEX_RUNTIME_LOG_KEEP") {
        None => 20,
        Some(v) => v.parse().unwrap_or_else(|_| {
            Env::error(d, "PRODEX_RUNTIME_LOG_KEEP", "expected a number of run logs to keep");
            20
        }),
    };
    let max_bytes = match env.get("PRODEX_RUNTIME_LOG_MAX_BYTES") {
        None => 64 << 20,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= 4096 => n,
            _ => {
                Env::error(d, "PRODEX_RUNTIME_LOG_MAX_BYTES", "expected a size in bytes of at least 4096");
                64 << 20
            }
        },
    };
    LogConfig { dir, format, level, keep_runs, max_bytes }
}
