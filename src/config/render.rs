//! The effective configuration as TOML for `prodex gateway check`, every secret replaced by the
//! name of the environment variable it came from.

use serde_json::{json, Map, Value};

use crate::config::{Backend, BudgetPeriod, Config, Durability, LogFormat, Secret};
use crate::core::time::format_rfc3339;

fn secret(s: &Secret) -> Value {
    Value::String(format!("<redacted: ${}>", s.source))
}

fn opt_secret(s: Option<&Secret>) -> Value {
    s.map_or(Value::String("<unset>".into()), secret)
}

/// Drops nulls so the TOML stays valid (TOML has no null).
fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, prune(v))).collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).collect()),
        other => other,
    }
}

pub(super) fn redacted(c: &Config) -> String {
    let providers: Vec<Value> = c
        .providers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "kind": p.kind.as_str(),
                "base_url": super::redact_url(&p.base_url),
                "api_keys": p.api_keys.iter().map(secret).collect::<Vec<_>>(),
                "models": p.models,
                "organization": p.organization,
                "project": p.project,
            })
        })
        .collect();
    let aliases: Vec<Value> = c
        .route_aliases
        .iter()
        .map(|a| {
            json!({
                "alias": a.name,
                "models": a.models,
                "strategy": a.strategy.as_str(),
                "max_attempts": a.max_attempts.unwrap_or(crate::core::routing::DEFAULT_ATTEMPTS),
            })
        })
        .collect();
    let pricing: Vec<Value> = c
        .pricing
        .iter()
        .map(|p| {
            json!({
                "model": p.model, "input": p.input, "output": p.output, "cached_input": p.cached_input,
                "cache_write_input": p.cache_write_input, "cache_write_1h_input": p.cache_write_1h_input,
            })
        })
        .collect();
    let keys: Vec<Value> = c
        .virtual_keys
        .iter()
        .map(|k| {
            json!({
                "name": k.name,
                "token": secret(&k.token),
                "tenant_id": k.tenant_id, "team_id": k.team_id, "project_id": k.project_id,
                "user_id": k.user_id, "budget_id": k.budget_id,
                "allowed_models": k.allowed_models,
                "budget_microusd": k.budget_microusd,
                "budget_period": match k.budget_period {
                    BudgetPeriod::Total => "total", BudgetPeriod::Daily => "daily",
                    BudgetPeriod::Weekly => "weekly", BudgetPeriod::Monthly => "monthly",
                },
                "request_budget": k.request_budget, "rpm_limit": k.rpm_limit, "tpm_limit": k.tpm_limit,
                "max_parallel_requests": k.max_parallel_requests,
                "expires_at": k.expires_at.map(format_rfc3339),
            })
        })
        .collect();
    let admin_tokens: Vec<Value> = c
        .admin_tokens
        .iter()
        .map(|t| {
            json!({
                "name": t.name, "token": secret(&t.token), "role": t.role.as_str(),
                "allowed_key_prefixes": t.allowed_key_prefixes, "tenant_id": t.tenant_id,
            })
        })
        .collect();
    let (sso, logs) = (sso_section(c), logs_section(c));
    let doc = json!({
        "gateway": {
            "home": c.home.display().to_string(),
            "policy_file": c.policy_file.clone().unwrap_or_else(|| "<none: defaults>".into()),
            "listen_addr": c.listen.to_string(),
            "workers": c.workers,
            "provider": c.default_provider,
            "gateway_token": opt_secret(c.gateway_token.as_ref()),
            "require_auth": c.require_auth,
            "max_request_body_bytes": c.server.max_body_bytes,
            "max_connections": c.server.max_connections,
            "header_timeout_seconds": c.server.header_timeout.as_secs(),
            "idle_timeout_seconds": c.server.idle_timeout.as_secs(),
            "body_timeout_seconds": c.server.body_timeout.as_secs(),
            "upstream_connect_timeout_seconds": c.upstream.connect_timeout.as_secs(),
            "upstream_idle_timeout_seconds": c.upstream.idle_timeout.as_secs(),
            "shutdown_grace_seconds": c.shutdown_grace.as_secs(),
            "stored_context_input_tokens": c.stored_context_input_tokens,
            "allow_key_object_routes": c.allow_key_object_routes,
            "providers": providers,
            "route_aliases": aliases,
            "pricing": pricing,
            "virtual_keys": keys,
            "state": {
                "backend": match c.state.backend { Backend::Redb => "redb", Backend::Postgres => "postgres", Backend::Redis => "redis" },
                "configured_as": c.state.backend_alias,
                "redb_path": c.state.redb_path.display().to_string(),
                "postgres_url": opt_secret(c.state.postgres_url.as_ref()),
                "redis_url": opt_secret(c.state.redis_url.as_ref()),
            },
            "ledger": {
                "retention_days": c.ledger.retention_days,
                "durability": match c.ledger.durability { Durability::Commit => "commit", Durability::Async => "async" },
            },
            "audit": {
                "retention_days": c.audit.retention_days,
                "collapse_window_seconds": c.audit.collapse_window_seconds,
            },
            "media": {
                "fetch_remote": c.media.fetch_remote,
                "max_bytes": c.media.max_bytes,
                "timeout_seconds": c.media.timeout_seconds,
                "allow_private_addresses": c.media.allow_private_addresses,
            },
            "admin_tokens": admin_tokens,
            "sso": sso,
            "metrics": { "per_key_labels": c.metrics.per_key_labels, "max_label_keys": c.metrics.max_label_keys },
            "logs": logs,
        }
    });
    toml::to_string_pretty(&prune(doc)).unwrap_or_else(|e| format!("# could not render the configuration: {e}\n"))
}

fn sso_section(c: &Config) -> Value {
    json!({
                "proxy_token": opt_secret(c.sso.proxy_token.as_ref()),
                "token_header": c.sso.token_header, "user_header": c.sso.user_header,
                "role_header": c.sso.role_header, "key_prefixes_header": c.sso.key_prefixes_header,
                "tenant_header": c.sso.tenant_header, "default_role": c.sso.default_role.as_str(),
                "default_tenant_id": match &c.sso.default_scope { crate::core::auth::DefaultScope::Tenant(t) => Some(t.as_str()), _ => None },
                "default_unscoped": c.sso.default_scope == crate::core::auth::DefaultScope::Unscoped,
                "oidc_issuer": c.sso.oidc_issuer, "oidc_audience": c.sso.oidc_audience,
                "oidc_jwks_url": c.sso.oidc_jwks_url, "oidc_user_claim": c.sso.oidc_user_claim,
                "oidc_role_claim": c.sso.oidc_role_claim, "oidc_tenant_claim": c.sso.oidc_tenant_claim,
                "oidc_key_prefixes_claim": c.sso.oidc_key_prefixes_claim,
    })
}

fn logs_section(c: &Config) -> Value {
    json!({
                "dir": c.logs.dir.display().to_string(),
                "format": match c.logs.format { LogFormat::Text => "text", LogFormat::Json => "json" },
                "level": c.logs.level.to_string().to_ascii_lowercase(),
                "keep_runs": c.logs.keep_runs,
                "max_bytes": c.logs.max_bytes,
    })
}
