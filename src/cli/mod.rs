//! The command line: `prodex gateway [flags] [check | healthcheck | providers | state | keys]` and
//! `--version`.
//! Parses flags with clap, reads the policy file and environment, and hands the validated config
//! to `serve`. Exit codes: 0 ok, 1 runtime failure, 2 configuration error.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, Flags, Inputs, ProviderKind};
use crate::serve;

mod keys;

#[derive(Parser, Debug)]
#[command(name = "prodex", version, about = "prodex: a self-hosted, OpenAI-compatible LLM gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (or one of its tools).
    Gateway(GatewayArgs),
}

#[derive(Args, Debug)]
struct GatewayArgs {
    /// Address to listen on, e.g. 127.0.0.1:4000 (env PRODEX_GATEWAY_LISTEN).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Default upstream provider: openai | gemini | anthropic | deepseek | a configured name.
    #[arg(long, global = true)]
    provider: Option<String>,
    /// Base URL of the default provider, e.g. http://127.0.0.1:8000/v1.
    #[arg(long = "base-url", global = true)]
    base_url: Option<String>,
    /// State and policy directory (env PRODEX_HOME, default ~/.prodex).
    #[arg(long, global = true)]
    home: Option<PathBuf>,
    /// Policy file (default $PRODEX_HOME/policy.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Run-log directory (env PRODEX_RUNTIME_LOG_DIR, default $PRODEX_HOME/logs).
    #[arg(long = "log-dir", global = true)]
    log_dir: Option<PathBuf>,
    /// may worker threads (default: CPUs available).
    #[arg(long, global = true)]
    workers: Option<usize>,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Validate policy.toml and the environment; print the effective config with secrets redacted.
    Check,
    /// Exit 0 when /readyz answers ready (for container health checks).
    Healthcheck {
        /// The gateway's base URL (`http://host:port`, /readyz is added) or a full readiness URL
        /// (default: http://<listen>/readyz).
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the admin API's OpenAPI 3.1 document (the bytes `GET /v1/prodex/gateway/openapi.json` serves).
    Openapi,
    /// List provider adapters and the routes each serves.
    Providers {
        #[arg(long)]
        json: bool,
    },
    /// Move state between backends and files.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Manage virtual keys directly in the configured store (no admin token needed; with the
    /// default redb store, run it while the gateway is stopped: one writer per file).
    Keys {
        #[command(subcommand)]
        action: keys::KeysAction,
    },
}

#[derive(Subcommand, Debug)]
enum StateAction {
    /// Copy keys, usage, the ledger, SCIM users and the audit log from the configured backend to
    /// another, then verify counts.
    Migrate {
        /// redb | postgres | redis (URLs come from the environment as for the gateway).
        #[arg(long)]
        to: String,
    },
    /// Write keys, usage, SCIM users (JSON), the ledger and the audit log (JSONL) to a directory.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Read an export, or the seed gateway's JSON state files, into the configured backend.
    Import {
        #[arg(long)]
        from: PathBuf,
    },
}

/// Entry point for `main`.
#[must_use]
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let Command::Gateway(args) = cli.command;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let config = match load_config(&args, &env) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("prodex gateway: configuration has {} problem(s):", errors.len());
            for e in &errors {
                eprintln!("  {e}");
            }
            return ExitCode::from(2);
        }
    };
    match args.action {
        None => serve::run(config),
        Some(Action::Check) => check(&config),
        Some(Action::Healthcheck { url }) => healthcheck(&config, url.as_deref()),
        Some(Action::Providers { json }) => providers(&config, json),
        Some(Action::Openapi) => {
            let mut out = std::io::stdout().lock();
            match out
                .write_all(&crate::core::openapi::rendered(env!("CARGO_PKG_VERSION")))
                .and_then(|()| out.write_all(b"\n"))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            }
        }
        Some(Action::State { action }) => state(&config, &action),
        Some(Action::Keys { action }) => keys::run(&config, &action),
    }
}

/// `prodex gateway check`: the notices, what client auth amounts to with the keys the store holds,
/// and the effective config. Exit 2 when the gateway would refuse to start.
fn check(config: &Config) -> ExitCode {
    for n in &config.notices {
        println!("# note: {n}");
    }
    // A redb file that does not exist yet holds no key (and `check` must not create it).
    let fresh = config.state.backend == crate::config::Backend::Redb && !config.state.redb_path.exists();
    let keys = if fresh {
        Ok(0)
    } else {
        crate::store::open(config, config.state.backend).and_then(|store| {
            let ring = crate::keyring::Keyring::default();
            ring.refresh(store.as_ref()).map(|_| ring.len()).map_err(|e| e.to_string())
        })
    };
    let problem = match keys {
        Ok(n) => match config.auth_status(n) {
            Ok(status) => {
                println!("# note: {status}");
                None
            }
            Err(e) => Some(e),
        },
        Err(e) => {
            println!(
                "# note: cannot count the virtual keys in the {} store ({e}); client auth turns on once it holds one",
                config.state.backend_alias
            );
            None
        }
    };
    let problem = problem.or_else(|| serve::self_loop(config, config.listen).filter(|_| config.listen.port() != 0));
    print!("{}", config.render_redacted());
    if let Some(e) = problem {
        eprintln!("prodex gateway: configuration has 1 problem(s):\n  {e}");
        return ExitCode::from(2);
    }
    println!("# configuration OK");
    ExitCode::SUCCESS
}

/// `prodex gateway state …`.
fn state(config: &Config, action: &StateAction) -> ExitCode {
    let now = crate::clock::unix_ms();
    let store = match crate::store::open_for_cli(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("prodex gateway state: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match action {
        StateAction::Export { out } => crate::transfer::export(store.as_ref(), out, now),
        StateAction::Import { from } => crate::transfer::import(store.as_ref(), from, now),
        StateAction::Migrate { to } => {
            let backend = match to.as_str() {
                "redb" | "file" | "sqlite" | "embedded" => crate::config::Backend::Redb,
                "postgres" => crate::config::Backend::Postgres,
                "redis" => crate::config::Backend::Redis,
                other => {
                    eprintln!("prodex gateway state migrate: unknown backend `{other}` (redb, postgres or redis)");
                    return ExitCode::from(2);
                }
            };
            if backend == config.state.backend {
                eprintln!("prodex gateway state migrate: the configured backend is already {to}");
                return ExitCode::from(2);
            }
            match crate::store::open(config, backend) {
                Ok(target) => crate::transfer::migrate(store.as_ref(), target.as_ref(), now),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(m) => {
            match action {
                StateAction::Export { out } => println!("{}", m.wrote(out)),
                StateAction::Import { .. } | StateAction::Migrate { .. } => println!("{}", m.copied()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("prodex gateway state: {e}");
            ExitCode::from(1)
        }
    }
}

fn load_config(args: &GatewayArgs, env: &BTreeMap<String, String>) -> Result<Config, Vec<String>> {
    let home = args
        .home
        .clone()
        .or_else(|| env.get("PRODEX_HOME").filter(|v| !v.is_empty()).map(PathBuf::from))
        .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".prodex")))
        .unwrap_or_else(|| PathBuf::from(".prodex"));
    let path = args.config.clone().unwrap_or_else(|| home.join("policy.toml"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.config.is_none() => None,
        Err(e) => return Err(vec![format!("{}: cannot read: {e}", path.display())]),
    };
    let display = path.display().to_string();
    let flags = Flags {
        listen: args.listen.clone(),
        provider: args.provider.clone(),
        base_url: args.base_url.clone(),
        log_dir: args.log_dir.clone(),
        workers: args.workers,
    };
    let inputs = Inputs {
        flags: &flags,
        env,
        home,
        policy: text.as_deref().map(|t| (display.as_str(), t)),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
    };
    config::load(&inputs).map_err(|errs| errs.iter().map(ToString::to_string).collect())
}

/// `prodex gateway healthcheck`: GET /readyz with a 2 s budget; exit 0 only on 200.
fn healthcheck(config: &Config, url: Option<&str>) -> ExitCode {
    let mut listen = config.listen;
    if listen.ip().is_unspecified() {
        listen.set_ip(if listen.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let default_url = format!("http://{listen}/readyz");
    let url = url.unwrap_or(&default_url);
    match probe(url) {
        Ok((200, body)) => {
            println!("ready: {body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("not ready ({status}): {body}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("not ready: {url}: {e}");
            ExitCode::from(1)
        }
    }
}

fn probe(url: &str) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    // A base URL (no path, or just `/`) means its readiness endpoint.
    let (authority, path) = match rest.split_once('/') {
        None | Some((_, "")) => (rest.trim_end_matches('/'), "/readyz".to_string()),
        Some((a, p)) => (a, format!("/{p}")),
    };
    let addr: SocketAddr = authority.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let budget = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, budget).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(budget)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(budget)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("not an HTTP response")?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim().to_string();
    Ok((status, body))
}

/// `prodex gateway providers`: adapters and the routes each serves in this build, and the
/// aliases whose models route to each (their strategy and attempts); key pools by size only.
fn providers(config: &Config, json: bool) -> ExitCode {
    let routes = |kind: ProviderKind| kind.routes();
    // (alias, strategy, attempts, its models that route to provider i)
    let aliases_of = |i: usize| -> Vec<serde_json::Value> {
        config
            .route_aliases
            .iter()
            .filter_map(|a| {
                let models: Vec<&String> = a.models.iter().filter(|m| config.provider_of(m) == i).collect();
                (!models.is_empty()).then(|| {
                    serde_json::json!({"alias": a.name, "strategy": a.strategy.as_str(), "models": models,
                        "max_attempts": a.max_attempts.unwrap_or(crate::core::routing::DEFAULT_ATTEMPTS)})
                })
            })
            .collect()
    };
    if json {
        let list: Vec<serde_json::Value> = config
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                serde_json::json!({
                    "name": p.name, "kind": p.kind.as_str(), "base_url": config::redact_url(&p.base_url),
                    "keys": p.api_keys.len(), "models": p.models, "default": p.name == config.default_provider,
                    "aliases": aliases_of(i), "routes": routes(p.kind), "translation": translation(p.kind),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
    } else {
        for p in &config.providers {
            let default = if p.name == config.default_provider { " (default)" } else { "" };
            let served = routes(p.kind).join(" ");
            println!(
                "{}{default}\tkind={}\tbase_url={}\tkeys={}\tmodels={}\troutes: {served}",
                p.name,
                p.kind.as_str(),
                config::redact_url(&p.base_url),
                p.api_keys.len(),
                if p.models.is_empty() { "-".to_string() } else { p.models.join(",") }
            );
        }
        for a in &config.route_aliases {
            let to: Vec<String> =
                a.models.iter().map(|m| format!("{m}@{}", config.providers[config.provider_of(m)].name)).collect();
            println!(
                "alias {}\tstrategy={}\tmax_attempts={}\t{}",
                a.name,
                a.strategy.as_str(),
                a.max_attempts.unwrap_or(crate::core::routing::DEFAULT_ATTEMPTS),
                to.join(" ")
            );
        }
    }
    ExitCode::SUCCESS
}

/// What a provider kind does with each route and request parameter, generated from the
/// translators' own tables (`core::openai::{chat, responses, embed}::PARAMS`, each kind's
/// `ROUTES` and `REFUSED`).
fn translation(kind: ProviderKind) -> serde_json::Value {
    use crate::core::openai::chat::{self, Disposition};
    use crate::core::route::Route;
    let refused = kind.refused();
    let params = |table: &[(&str, Disposition)], nested: &[&str]| -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = table
            .iter()
            .map(|(name, d)| match d {
                Disposition::Translated(feature) => match feature.and_then(|f| refused.iter().find(|(r, _)| *r == f)) {
                    Some((_, why)) => serde_json::json!({"name": name, "handling": "translated", "refused_when": why}),
                    None => serde_json::json!({"name": name, "handling": "translated"}),
                },
                Disposition::Hint => serde_json::json!({"name": name, "handling": "ignored"}),
                Disposition::Rejected => serde_json::json!({"name": name, "handling": "rejected"}),
            })
            .collect();
        out.extend(nested.iter().map(|n| serde_json::json!({"name": n, "handling": "ignored", "nested": true})));
        out
    };
    let routes: Vec<serde_json::Value> =
        kind.route_table().iter().map(|(route, to)| serde_json::json!({"route": route, "upstream": to})).collect();
    let mut parameters = serde_json::json!({});
    if kind.translates(&Route::ChatCompletions) {
        parameters["chat.completions"] = serde_json::json!(params(chat::PARAMS, chat::NESTED_HINTS));
        parameters["responses"] = serde_json::json!(params(
            crate::core::openai::responses::PARAMS,
            crate::core::openai::responses::NESTED_HINTS
        ));
    }
    if kind.translates(&Route::Messages) {
        parameters["messages"] =
            serde_json::json!(params(crate::core::anthropic::PARAMS, crate::core::anthropic::NESTED_HINTS));
    }
    if kind.translates(&Route::Embeddings) && kind.serves(&Route::Embeddings) {
        parameters["embeddings"] = serde_json::json!(params(crate::core::openai::embed::PARAMS, &[]));
    }
    // An OpenAI-compatible server gets every OpenAI route untouched; only what is listed is translated.
    let mode = if kind.translates(&Route::ChatCompletions) { "translated" } else { "passthrough" };
    serde_json::json!({
        "mode": mode,
        "routes": routes,
        "parameters": parameters,
        "unknown_parameters": "rejected",
    })
}
