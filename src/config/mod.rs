//! Configuration: `policy.toml` + environment + command-line flags → one validated `Config`.
//!
//! Pure: the caller reads the file and the environment and passes them in, so every rule here is
//! testable without a filesystem. Precedence everywhere: flag > env > policy.toml > default.
//!
//! Invariants: every problem is reported (not just the first), each naming its key and file:line
//! or env variable; secrets are held in `Secret`, whose `Debug` never prints the value.

mod media;
mod policy;
mod render;
mod routes;
mod sections;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use crate::core::time::UnixMs;
use policy::{Diagnostics, Section};

/// One configuration problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `policy.toml:12`, `env PRODEX_GATEWAY_MAX_BODY_BYTES` or `--listen`.
    pub location: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.key, self.message)
    }
}

/// A secret value and where it came from. `Debug`/`Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    /// The environment variable it was read from (shown instead of the value).
    pub source: String,
}

impl Secret {
    #[must_use]
    pub fn new(value: impl Into<String>, source: impl Into<String>) -> Self {
        Self { value: value.into(), source: source.into() }
    }

    /// The secret itself. Call sites are the only places a secret leaves this type.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted: ${}>", self.source)
    }
}

/// Command-line flags of `prodex gateway` (already parsed by clap).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub listen: Option<String>,
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub log_dir: Option<PathBuf>,
    pub workers: Option<usize>,
}

/// Everything `load` reads.
pub struct Inputs<'a> {
    pub flags: &'a Flags,
    pub env: &'a BTreeMap<String, String>,
    /// `$PRODEX_HOME`, already resolved (flag > env > `~/.prodex`).
    pub home: PathBuf,
    /// The policy file's display name and its text, when it exists.
    pub policy: Option<(&'a str, &'a str)>,
    /// CPUs available to the process, for the default worker count.
    pub cpus: usize,
}

pub use crate::core::provider::ProviderKind;

/// An upstream the gateway can forward to.
#[derive(Clone, Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The key pool; empty means requests go upstream without a provider credential.
    pub api_keys: Vec<Secret>,
    /// Requested models routed here (exact or trailing-`*` globs).
    pub models: Vec<String>,
    /// `OpenAI-Organization` / `OpenAI-Project` sent on every call to this provider. Clients'
    /// own values are always dropped: a key holder never picks which org or project pays.
    pub organization: Option<String>,
    pub project: Option<String>,
}

/// `[[gateway.route_aliases]]`: a name clients call, its models and how they are ordered.
pub use crate::core::routing::{Alias as RouteAlias, Strategy as RouteStrategy};

/// A price override in USD per million tokens (`[[gateway.pricing]]`).
pub use crate::core::pricing::Override as PriceOverride;

pub use crate::core::keys::BudgetPeriod;

/// A key declared in `[[gateway.virtual_keys]]` (read-only through the admin API).
#[derive(Clone, Debug)]
pub struct StaticKey {
    pub name: String,
    pub token: Secret,
    pub tenant_id: Option<String>,
    pub team_id: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub budget_id: Option<String>,
    pub allowed_models: Vec<String>,
    pub budget_microusd: Option<u64>,
    pub budget_period: BudgetPeriod,
    pub request_budget: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub expires_at: Option<UnixMs>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
    Redis,
}

#[derive(Clone, Debug)]
pub struct StateConfig {
    pub backend: Backend,
    /// What the operator wrote (`file`, `sqlite`, `embedded` all mean redb).
    pub backend_alias: String,
    pub redb_path: PathBuf,
    pub postgres_url: Option<Secret>,
    pub redis_url: Option<Secret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// A response's last byte leaves only after its ledger row is durable.
    Commit,
    /// Rows are group-committed behind the response.
    Async,
}

#[derive(Clone, Debug)]
pub struct LedgerConfig {
    pub retention_days: u64,
    pub durability: Durability,
}

/// `[gateway.audit]`: how long the audit log is kept, and how floods of identical denials fold.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub retention_days: u64,
    /// Identical denials (same address, reason, action) within this many seconds are one entry
    /// plus a summary with their count; 0 writes every one.
    pub collapse_window_seconds: u64,
}

pub use crate::core::auth::Role;
pub use media::MediaConfig;

#[derive(Clone, Debug)]
pub struct AdminToken {
    pub name: String,
    pub token: Secret,
    pub role: Role,
    pub allowed_key_prefixes: Vec<String>,
    pub tenant_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SsoConfig {
    pub proxy_token: Option<Secret>,
    pub token_header: String,
    pub user_header: String,
    pub role_header: String,
    pub key_prefixes_header: String,
    pub tenant_header: String,
    pub default_role: Role,
    /// The scope of an SSO user with no tenant from its headers or a SCIM user.
    pub default_scope: crate::core::auth::DefaultScope,
    pub oidc_issuer: Option<String>,
    pub oidc_audience: Option<String>,
    pub oidc_jwks_url: Option<String>,
    pub oidc_user_claim: String,
    pub oidc_role_claim: String,
    pub oidc_tenant_claim: String,
    pub oidc_key_prefixes_claim: String,
}

#[derive(Clone, Debug)]
pub struct MetricsConfig {
    pub per_key_labels: bool,
    pub max_label_keys: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub format: LogFormat,
    pub level: log::LevelFilter,
    /// Run logs kept (older ones are removed, at startup and at each rotation).
    pub keep_runs: usize,
    /// Size at which the run log starts a new file and `prodex-audit.log` moves to `.1`.
    pub max_bytes: u64,
}

/// Upstream client settings.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Longest silence allowed between bytes of an upstream response (streams included).
    pub idle_timeout: Duration,
    /// Idle pooled connections kept per host.
    pub max_idle_per_host: usize,
}

/// Server limits (see `http::server::Limits`).
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    pub max_body_bytes: u64,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub io_timeout: Duration,
    /// Time allowed for a whole request body (`body_timeout_seconds`).
    pub body_timeout: Duration,
}

/// The validated, effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub home: PathBuf,
    pub policy_file: Option<String>,
    pub listen: SocketAddr,
    pub workers: usize,
    /// Name of the provider used when no `models` glob matches.
    pub default_provider: String,
    pub providers: Vec<Provider>,
    pub gateway_token: Option<Secret>,
    /// `require_auth` as configured; `None` means "on once a credential exists" (see
    /// `Config::auth_required`).
    pub require_auth: Option<bool>,
    pub shutdown_grace: Duration,
    /// Input tokens reserved for what a Responses call draws from stored context the gateway
    /// cannot see (`previous_response_id`, `conversation`).
    pub stored_context_input_tokens: u64,
    /// Whether virtual keys may use the passthrough routes that hold provider objects (files,
    /// batches, uploads, stored responses), which every key shares. Off by default.
    pub allow_key_object_routes: bool,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub route_aliases: Vec<RouteAlias>,
    pub pricing: Vec<PriceOverride>,
    pub virtual_keys: Vec<StaticKey>,
    pub state: StateConfig,
    pub ledger: LedgerConfig,
    pub audit: AuditConfig,
    pub media: MediaConfig,
    pub admin_tokens: Vec<AdminToken>,
    pub sso: SsoConfig,
    pub metrics: MetricsConfig,
    pub logs: LogConfig,
    /// Things the operator should know (printed by `check` and logged at startup).
    pub notices: Vec<String>,
}

impl Config {
    /// The provider named `name`.
    #[must_use]
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The default provider's index in `providers`.
    #[must_use]
    pub fn default_provider_index(&self) -> Option<usize> {
        self.providers.iter().position(|p| p.name == self.default_provider)
    }

    /// The index of the provider `model` routes to (`core::routing::provider_of`).
    #[must_use]
    pub fn provider_of(&self, model: &str) -> usize {
        crate::core::routing::provider_of(
            &model_globs(&self.providers),
            self.default_provider_index().unwrap_or(0),
            model,
        )
    }

    /// Whether data-plane calls must present a credential, given how many virtual keys the store
    /// holds (policy keys are synced into it, so they count too). Unless `require_auth` says
    /// otherwise, auth is on as soon as the master token or any virtual key exists, and always on
    /// a non-loopback listener — deleting the last key never opens a public port.
    #[must_use]
    pub fn auth_required(&self, store_keys: usize) -> bool {
        self.require_auth.unwrap_or(self.gateway_token.is_some() || store_keys > 0 || !self.listen.ip().is_loopback())
    }

    /// What client auth amounts to once the store's key count is known: `Err` when the gateway
    /// must not start (a non-loopback listener nobody could authenticate on), else the notice
    /// for the startup log and `check`.
    pub fn auth_status(&self, store_keys: usize) -> Result<String, String> {
        let has_credentials = self.gateway_token.is_some() || store_keys > 0;
        let listen = self.listen;
        if !listen.ip().is_loopback() && !has_credentials {
            return Err(format!(
                "refusing to listen on non-loopback {listen} without client auth: set PRODEX_GATEWAY_TOKEN, declare \
                 [[gateway.virtual_keys]] or create a key (prodex gateway keys create NAME)"
            ));
        }
        let what = match (self.gateway_token.is_some(), store_keys) {
            (true, 0) => "the master token".to_string(),
            (true, n) => format!("the master token and {n} virtual key(s)"),
            (false, n) => format!("{n} virtual key(s)"),
        };
        Ok(match (self.auth_required(store_keys), has_credentials) {
            (true, true) => format!("client auth is on: calls must present {what}"),
            (true, false) => "client auth is on (require_auth = true) but no credential exists yet: every data-plane \
                              call gets 401 until a virtual key is created"
                .to_string(),
            (false, false) => format!(
                "client auth is off: anyone who can reach {listen} can use the upstream credentials; it turns on \
                 by itself once a virtual key exists"
            ),
            (false, true) => format!(
                "client auth is off (require_auth = false): anyone who can reach {listen} can call without a key, \
                 although {what} exist"
            ),
        })
    }

    /// The effective configuration as TOML with every secret replaced by its source.
    #[must_use]
    pub fn render_redacted(&self) -> String {
        render::redacted(self)
    }
}

/// Each provider's `models`, in configuration order: the routing table `core::routing` reads.
#[must_use]
pub fn model_globs(providers: &[Provider]) -> Vec<&[String]> {
    providers.iter().map(|p| p.models.as_slice()).collect()
}

/// `url` with any userinfo (`user:password@`) replaced by `***@`, for logs, errors and `check`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A built-in provider: name, kind, default base URL, base-URL env, key env names (plural first).
type Builtin = (&'static str, ProviderKind, &'static str, Option<&'static str>, &'static [&'static str]);

pub(crate) const BUILTIN_PROVIDERS: &[Builtin] = &[
    (
        "openai",
        ProviderKind::OpenAi,
        "https://api.openai.com/v1",
        Some("OPENAI_BASE_URL"),
        &["OPENAI_API_KEYS", "OPENAI_API_KEY"],
    ),
    (
        "gemini",
        ProviderKind::Gemini,
        "https://generativelanguage.googleapis.com/v1beta",
        Some("GEMINI_BASE_URL"),
        &["GEMINI_API_KEYS", "GEMINI_API_KEY", "GOOGLE_API_KEYS", "GOOGLE_API_KEY"],
    ),
    (
        "anthropic",
        ProviderKind::Anthropic,
        "https://api.anthropic.com/v1",
        Some("ANTHROPIC_BASE_URL"),
        &["ANTHROPIC_API_KEYS", "ANTHROPIC_API_KEY"],
    ),
    ("deepseek", ProviderKind::OpenAi, "https://api.deepseek.com/v1", None, &["DEEPSEEK_API_KEYS", "DEEPSEEK_API_KEY"]),
    // Answered in process (`core::mock`): nothing is sent, so no URL is called and no key is needed.
    ("mock", ProviderKind::Mock, "mock://in-process", None, &[]),
];

/// Builds the effective configuration, or every problem found.
pub fn load(inputs: &Inputs<'_>) -> Result<Config, Vec<ConfigError>> {
    let text = inputs.policy.map_or("", |(_, t)| t);
    let file = inputs.policy.map_or_else(|| "policy.toml".to_string(), |(f, _)| f.to_string());
    let mut d = Diagnostics { file, text, errors: Vec::new() };
    let parsed = match DeTable::parse(text) {
        Ok(t) => Some(t),
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            d.error_at(offset, "(syntax)", e.message().to_string());
            None
        }
    };
    let empty = DeTable::default();
    let root_table = parsed.as_ref().map_or(&empty, |t| t.get_ref());
    let mut root = Section::new("", root_table, 0);
    let mut gw = root.table(&mut d, "gateway").unwrap_or_else(|| Section::new("gateway", &empty, 0));
    root.finish(&mut d);
    let env = Env { map: inputs.env };
    let config = sections::build(&mut gw, &mut d, &env, inputs);
    gw.finish(&mut d);
    if d.errors.is_empty() {
        Ok(config)
    } else {
        Err(d.errors)
    }
}

/// The environment, with the "set but empty means unset" rule applied once.
pub(crate) struct Env<'a> {
    map: &'a BTreeMap<String, String>,
}

impl Env<'_> {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(crate) fn error(d: &mut Diagnostics<'_>, name: &str, message: impl Into<String>) {
        d.errors.push(ConfigError { location: format!("env {name}"), key: name.to_string(), message: message.into() });
    }

    /// A secret named by a `*_env` key; a missing variable is an error at that key.
    pub(crate) fn secret(&self, d: &mut Diagnostics<'_>, section: &mut Section<'_, '_>, key: &str) -> Option<Secret> {
        let var = section.string(d, key)?;
        if let Some(v) = self.get(&var) {
            Some(Secret::new(v, var))
        } else {
            let at = section.offset_of(key);
            d.error_at(at, &format!("{}.{key}", section.path), format!("environment variable {var} is not set"));
            None
        }
    }

    /// A comma/newline separated key pool from the first set variable of `names`.
    pub(crate) fn pool(&self, names: &[&str]) -> Vec<Secret> {
        names
            .iter()
            .find_map(|n| self.get(n).map(|v| (n, v)))
            .map(|(n, v)| split_list(v).into_iter().map(|k| Secret::new(k, *n)).collect())
            .unwrap_or_default()
    }
}

pub(crate) fn split_list(v: &str) -> Vec<String> {
    v.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests;
