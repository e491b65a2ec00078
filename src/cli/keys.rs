//! `prodex gateway keys list|show|create|update|rotate|disable|enable|delete`: key lifecycle against the
//! configured store, for bootstrapping keys with no admin token. Validation is the admin API's
//! (`core::keyspec`), so the CLI and the API accept exactly the same keys.
//!
//! Invariants: a token is printed once, on create and rotate, and never stored; policy keys are
//! read-only here as in the API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::admin::{create_key, delete_key, rotate_key, set_disabled, update_key};
use crate::config::Config;
use crate::core::directory::AuditEntry;
use crate::core::keys::{KeyRecord, KeySource};
use crate::core::keyspec::{key_json, parse_create, parse_patch};
use crate::store::{KeyFilter, Store};

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// List keys (name order).
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long = "tenant-id")]
        tenant_id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one key (never its token).
    Show(NameArg),
    /// Create a key; prints its token once.
    Create(Box<CreateArgs>),
    /// Change a key's settings: the flags given are set, the others left as they are (use the
    /// admin API's PATCH with `null` to clear one).
    Update(Box<CreateArgs>),
    /// Give a key a new token (the old one stops working); prints the new token once.
    Rotate(NameArg),
    /// Disable a key (its calls get 401 until enabled).
    Disable(NameArg),
    /// Enable a disabled key.
    Enable(NameArg),
    /// Delete a key (its ledger rows stay).
    Delete(NameArg),
}

#[derive(Args, Debug)]
pub struct NameArg {
    name: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// 1-128 of A-Z a-z 0-9 . _ -
    name: String,
    #[arg(long = "tenant-id")]
    tenant_id: Option<String>,
    #[arg(long = "team-id")]
    team_id: Option<String>,
    #[arg(long = "project-id")]
    project_id: Option<String>,
    #[arg(long = "user-id")]
    user_id: Option<String>,
    /// Keys sharing a budget id share budgets and rate limits.
    #[arg(long = "budget-id")]
    budget_id: Option<String>,
    /// Comma-separated model names or trailing-* globs (default: every model).
    #[arg(long = "allowed-models", value_delimiter = ',')]
    allowed_models: Vec<String>,
    #[arg(long = "budget-usd")]
    budget_usd: Option<f64>,
    /// total | daily | weekly | monthly
    #[arg(long = "budget-period")]
    budget_period: Option<String>,
    #[arg(long = "request-budget")]
    request_budget: Option<u64>,
    #[arg(long = "rpm-limit")]
    rpm_limit: Option<u64>,
    #[arg(long = "tpm-limit")]
    tpm_limit: Option<u64>,
    #[arg(long = "max-parallel-requests")]
    max_parallel_requests: Option<u64>,
    /// RFC 3339 or unix seconds.
    #[arg(long = "expires-at")]
    expires_at: Option<String>,
    #[arg(long)]
    json: bool,
}

impl CreateArgs {
    /// The same JSON body the admin API takes.
    fn body(&self) -> Value {
        let mut body = self.changes();
        if let Some(m) = body.as_object_mut() {
            m.insert("name".into(), json!(self.name));
        }
        body
    }

    /// The settings given, as the admin API's PATCH body (no name: a key is never renamed).
    fn changes(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                m.insert(k.into(), v);
            }
        };
        put("tenant_id", json!(self.tenant_id));
        put("team_id", json!(self.team_id));
        put("project_id", json!(self.project_id));
        put("user_id", json!(self.user_id));
        put("budget_id", json!(self.budget_id));
        if !self.allowed_models.is_empty() {
            put("allowed_models", json!(self.allowed_models));
        }
        put("budget_usd", json!(self.budget_usd));
        put("budget_period", json!(self.budget_period));
        put("request_budget", json!(self.request_budget));
        put("rpm_limit", json!(self.rpm_limit));
        put("tpm_limit", json!(self.tpm_limit));
        put("max_parallel_requests", json!(self.max_parallel_requests));
        put("expires_at", json!(self.expires_at));
        Value::Object(m)
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("prodex gateway keys: {msg}");
    ExitCode::from(1)
}

/// The OS user running the CLI, for the audit trail.
fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)))
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            format!("uid-{}", unsafe { libc::getuid() })
        })
}

/// Records a CLI key mutation like the admin API records its own: in the store's audit log and in
/// `prodex-audit.log`, with actor `cli:<os user>` (source `cli`). A failure to record is reported.
fn audit(config: &Config, store: &dyn Store, action: &str, name: &str, tenant: Option<&str>, outcome: &str) {
    let entry = AuditEntry {
        id: crate::clock::call_id(),
        at: crate::clock::unix_ms(),
        actor: format!("cli:{}", os_user()),
        actor_source: "cli".into(),
        role: Some("admin".into()),
        tenant_id: tenant.map(String::from),
        action: action.into(),
        target: Some(name.into()),
        outcome: outcome.into(),
        ..AuditEntry::default()
    };
    let line = serde_json::to_vec(&crate::admin::audit_json(&entry)).unwrap_or_default();
    if let Err(e) = crate::logs::audit_to_file(&config.logs.dir, line) {
        eprintln!("prodex gateway keys: warning: cannot append to the audit log in {}: {e}", config.logs.dir.display());
    }
    if let Err(e) = store.audit_append(&entry).and_then(|()| store.flush()) {
        eprintln!("prodex gateway keys: warning: the audit entry was not stored: {e}");
    }
}

/// Runs one `keys` subcommand.
pub fn run(config: &Config, action: &KeysAction) -> ExitCode {
    let store = match crate::store::open_for_cli(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let store = store.as_ref();
    let now = crate::clock::unix_ms();
    match action {
        KeysAction::List { prefix, tenant_id, json } => list(store, prefix.as_deref(), tenant_id.clone(), *json),
        KeysAction::Create(args) => match parse_create(&args.body())
            .and_then(|(name, edit)| crate::core::keyspec::check_not_expired(&edit, now).map(|()| (name, edit)))
        {
            Err(e) => {
                eprintln!("prodex gateway keys create: --{}: {}", e.param.replace('_', "-"), e.message);
                ExitCode::from(2)
            }
            Ok((name, edit)) => match create_key(store, &name, &edit, now) {
                Ok((key, token)) => {
                    audit(config, store, "key.create", &key.name, key.tenant_id.as_deref(), "ok");
                    show(&key, Some(&token), args.json)
                }
                Err(e) => {
                    audit(config, store, "key.create", &name, None, e.code());
                    fail(e)
                }
            },
        },
        KeysAction::Show(a) => match store.key(&a.name) {
            Ok(Some(k)) => show(&k, None, a.json),
            Ok(None) => fail(format!("no key named `{}`", a.name)),
            Err(e) => fail(e),
        },
        KeysAction::Update(args) => {
            let edit = match parse_patch(&args.changes()) {
                Ok(edit) => edit,
                Err(e) => {
                    eprintln!("prodex gateway keys update: --{}: {}", e.param.replace('_', "-"), e.message);
                    return ExitCode::from(2);
                }
            };
            let key = match writable(store, &args.name) {
                Ok(k) => k,
                Err(code) => return code,
            };
            let done = update_key(store, &key, &edit, now);
            let outcome = done.as_ref().map_or_else(|e| e.code(), |_| "ok");
            audit(config, store, "key.update", &key.name, key.tenant_id.as_deref(), outcome);
            match done {
                Ok(k) => show(&k, None, args.json),
                Err(e) => fail(e),
            }
        }
        KeysAction::Rotate(a) | KeysAction::Disable(a) | KeysAction::Enable(a) | KeysAction::Delete(a) => {
            let key = match writable(store, &a.name) {
                Ok(k) => k,
                Err(code) => return code,
            };
            let (verb, done) = match action {
                KeysAction::Rotate(_) => ("key.rotate", rotate_key(store, &key, now).map(|(k, t)| (k, Some(t)))),
                KeysAction::Disable(_) => ("key.disable", set_disabled(store, &key, true, now).map(|k| (k, None))),
                KeysAction::Enable(_) => ("key.enable", set_disabled(store, &key, false, now).map(|k| (k, None))),
                _ => ("key.delete", delete_key(store, &key).map(|k| (k, None))),
            };
            let outcome = done.as_ref().map_or_else(|e| e.code(), |_| "ok");
            audit(config, store, verb, &key.name, key.tenant_id.as_deref(), outcome);
            match done {
                Ok((k, token)) if matches!(action, KeysAction::Delete(_)) => {
                    if a.json {
                        println!(
                            "{}",
                            json!({"object": "gateway.key.deleted", "id": k.id, "name": k.name, "deleted": true})
                        );
                    } else {
                        println!("deleted {}", k.name);
                    }
                    drop(token);
                    ExitCode::SUCCESS
                }
                Ok((k, token)) => show(&k, token.as_deref(), a.json),
                Err(e) => fail(e),
            }
        }
    }
}

fn writable(store: &dyn Store, name: &str) -> Result<KeyRecord, ExitCode> {
    match store.key(name) {
        Ok(Some(k)) if k.source == KeySource::Policy => {
            Err(fail(format!("`{name}` is declared in policy.toml and is read-only here")))
        }
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(fail(format!("no key named `{name}`"))),
        Err(e) => Err(fail(e)),
    }
}

fn show(key: &KeyRecord, token: Option<&str>, as_json: bool) -> ExitCode {
    if as_json {
        let mut v = key_json(key);
        if let Some(t) = token {
            v["token"] = json!(t);
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_table(std::slice::from_ref(key));
        if let Some(t) = token {
            println!("\ntoken (shown once; store it now): {t}");
        }
    }
    ExitCode::SUCCESS
}

fn list(store: &dyn Store, prefix: Option<&str>, tenant_id: Option<String>, as_json: bool) -> ExitCode {
    let filter = KeyFilter { prefixes: prefix.map(String::from).into_iter().collect(), tenant_id, disabled: None };
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = match store.keys(&filter, after.as_deref(), 500) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let full = page.len() == 500;
        after = page.last().map(|k| k.name.to_ascii_lowercase());
        all.extend(page);
        if !full {
            break;
        }
    }
    if as_json {
        let data: Vec<Value> = all.iter().map(key_json).collect();
        println!("{}", serde_json::to_string_pretty(&json!({"object": "list", "data": data})).unwrap_or_default());
    } else {
        print_table(&all);
    }
    ExitCode::SUCCESS
}

fn print_table(keys: &[KeyRecord]) {
    let rows: Vec<[String; 7]> = keys
        .iter()
        .map(|k| {
            [
                k.name.clone(),
                k.tenant_id.clone().unwrap_or_else(|| "-".into()),
                if k.source == KeySource::Policy { "policy" } else { "admin" }.into(),
                if k.disabled { "yes" } else { "no" }.into(),
                k.limits.budget_microusd.map_or("-".into(), crate::core::pricing::usd_text),
                k.version.to_string(),
                k.token_hint.clone(),
            ]
        })
        .collect();
    let header = ["NAME", "TENANT", "SOURCE", "DISABLED", "BUDGET_USD", "VERSION", "TOKEN"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}
