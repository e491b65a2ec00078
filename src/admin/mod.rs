//! The admin plane under `/v1/prodex/gateway/` (and `/prodex/gateway/`): the route table, the
//! principal every handler receives, and the one place replies and errors are written.
//!
//! Invariants: every route but the public `admin` shell resolves a principal first (a denial is
//! answered 401 and audited); the role a route needs is checked here, before its handler runs
//! (viewers get 403 `role_forbidden` on every mutation); handlers apply the principal's scope to
//! every key, row, series and entry they return or touch.

pub mod auth;
mod keys;
mod ledger;
pub mod metrics;
mod scim;

use serde_json::Value;

use crate::core::auth::{Principal, Role};
use crate::error::ApiError;
use crate::http::server::Exchange;
use crate::state::Shared;

pub use auth::audit_json;
pub use keys::{create_key, delete_key, rotate_key, set_disabled, update_key, LifecycleError};

/// The path under the admin prefix, if `path` is an admin route.
#[must_use]
pub fn admin_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/prodex/gateway/").or_else(|| path.strip_prefix("/prodex/gateway/"))
}

/// What a handler produced.
pub(crate) enum Reply {
    Json {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
    Bytes {
        content_type: &'static str,
        body: Vec<u8>,
        headers: Vec<(&'static str, String)>,
    },
    /// A SCIM resource or error (`application/scim+json`).
    Scim {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
    /// No body (SCIM DELETE).
    Empty {
        status: u16,
    },
    /// The handler wrote the response itself (streams).
    Sent,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Self::Json { status: 200, body, headers: Vec::new() }
    }
}

/// One admin operation, decoded from method + path.
enum Op<'p> {
    OpenApi,
    Shell,
    Whoami,
    ListKeys,
    CreateKey,
    GetKey(&'p str),
    PatchKey(&'p str),
    DeleteKey(&'p str),
    KeyAction(&'p str, keys::Action),
    Usage,
    Ledger,
    LedgerCsv,
    Summary,
    SummaryCsv,
    Metrics,
    Audit,
    Scim(scim::ScimOp<'p>),
}

impl Op<'_> {
    fn role(&self) -> Role {
        match self {
            Self::CreateKey | Self::PatchKey(_) | Self::DeleteKey(_) | Self::KeyAction(..) | Self::Audit => Role::Admin,
            Self::Scim(op) if op.writes() => Role::Admin,
            _ => Role::Viewer,
        }
    }
}

/// Decodes `rest` (the path after the prefix); `Err(Some(allow))` for a known path with the wrong
/// method, `Err(None)` for an unknown path.
fn classify<'p>(method: &str, rest: &'p str) -> Result<Op<'p>, Option<&'static str>> {
    let get = |op: Op<'p>| if method == "GET" || method == "HEAD" { Ok(op) } else { Err(Some("GET, HEAD")) };
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["openapi.json"] => get(Op::OpenApi),
        ["admin"] => get(Op::Shell),
        ["whoami"] => get(Op::Whoami),
        ["usage"] => get(Op::Usage),
        ["ledger"] => get(Op::Ledger),
        ["ledger.csv"] => get(Op::LedgerCsv),
        ["ledger", "summary"] => get(Op::Summary),
        ["ledger", "summary.csv"] => get(Op::SummaryCsv),
        ["metrics"] => get(Op::Metrics),
        ["audit"] => get(Op::Audit),
        ["scim", "v2", rest @ ..] => scim::classify(method, rest).map(Op::Scim),
        ["keys"] => match method {
            "GET" | "HEAD" => Ok(Op::ListKeys),
            "POST" => Ok(Op::CreateKey),
            _ => Err(Some("GET, HEAD, POST")),
        },
        ["keys", name] if !name.is_empty() => match method {
            "GET" | "HEAD" => Ok(Op::GetKey(name)),
            "PATCH" => Ok(Op::PatchKey(name)),
            "DELETE" => Ok(Op::DeleteKey(name)),
            _ => Err(Some("GET, HEAD, PATCH, DELETE")),
        },
        ["keys", name, action] if !name.is_empty() => {
            let action = keys::Action::parse(action).ok_or(None)?;
            if method == "POST" {
                Ok(Op::KeyAction(name, action))
            } else {
                Err(Some("POST"))
            }
        }
        _ => Err(None),
    }
}

/// Handles one admin request; `rest` is the path after the admin prefix.
pub fn handle(shared: &Shared, ex: &mut Exchange<'_>, rest: &str) {
    let method = ex.head.method.clone();
    let op = match classify(&method, rest) {
        Ok(op) => op,
        Err(Some(allow)) => {
            let _ = ex.send_error(&ApiError::method_not_allowed(&method, allow));
            return;
        }
        Err(None) => {
            let path = ex.head.path().to_string();
            let _ = ex.send_error(&ApiError::route_not_found(&method, &path));
            return;
        }
    };
    if matches!(op, Op::Shell) {
        send(ex, Ok(shell()));
        return;
    }
    let principal = match auth::principal(shared, ex) {
        Ok(p) => p,
        Err(e) => {
            send(ex, Err(e));
            return;
        }
    };
    if principal.role < op.role() {
        auth::audit_denial(shared, ex, &principal, rest);
        send(ex, Err(ApiError::permission("role_forbidden", format!("this needs the `{}` role", op.role().as_str()))));
        return;
    }
    let reply = dispatch(shared, ex, &principal, op);
    send(ex, reply);
}

fn dispatch(shared: &Shared, ex: &mut Exchange<'_>, p: &Principal, op: Op<'_>) -> Result<Reply, ApiError> {
    match op {
        Op::OpenApi => {
            Ok(Reply::Bytes { content_type: "application/json", body: shared.openapi.clone(), headers: vec![] })
        }
        Op::Shell => Ok(shell()),
        Op::Whoami => Ok(Reply::ok(auth::whoami(p))),
        Op::ListKeys => keys::list(shared, ex, p),
        Op::CreateKey => keys::create(shared, ex, p),
        Op::GetKey(name) => keys::get(shared, p, name),
        Op::PatchKey(name) => keys::patch(shared, ex, p, name),
        Op::DeleteKey(name) => keys::delete(shared, ex, p, name),
        Op::KeyAction(name, action) => keys::act(shared, ex, p, name, action),
        Op::Usage => keys::usage(shared, ex, p),
        Op::Ledger => ledger::page(shared, ex, p),
        Op::LedgerCsv => ledger::csv(shared, ex, p),
        Op::Summary => ledger::summary(shared, ex, p, false),
        Op::SummaryCsv => ledger::summary(shared, ex, p, true),
        Op::Metrics => Ok(metrics::render(shared, p)),
        Op::Audit => ledger::audit(shared, ex, p),
        Op::Scim(op) => Ok(scim::handle(shared, ex, p, op)),
    }
}

fn send(ex: &mut Exchange<'_>, reply: Result<Reply, ApiError>) {
    let _ = match reply {
        Ok(Reply::Json { status, body, headers }) => {
            let bytes = crate::core::json::to_vec(&body);
            let mut all: Vec<(&str, &str)> = vec![("content-type", "application/json"), ("cache-control", "no-store")];
            all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            ex.send(status, &all, &bytes)
        }
        Ok(Reply::Bytes { content_type, body, headers }) => {
            let mut all: Vec<(&str, &str)> = vec![("content-type", content_type), ("cache-control", "no-store")];
            all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            ex.send(200, &all, &body)
        }
        Ok(Reply::Scim { status, body, headers }) => {
            let bytes = crate::core::json::to_vec(&body);
            let mut all: Vec<(&str, &str)> =
                vec![("content-type", "application/scim+json"), ("cache-control", "no-store")];
            all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            ex.send(status, &all, &bytes)
        }
        Ok(Reply::Empty { status }) => ex.send(status, &[("cache-control", "no-store")], b""),
        Ok(Reply::Sent) => Ok(()),
        Err(e) => ex.send_error(&e),
    };
}

/// The public dashboard shell: static, with no data in it (every datum comes from the API with
/// the user's own credential). The dashboard itself replaces this page.
fn shell() -> Reply {
    Reply::Bytes {
        content_type: "text/html; charset=utf-8",
        body: SHELL_HTML.as_bytes().to_vec(),
        headers: vec![
            ("content-security-policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'".into()),
            ("x-content-type-options", "nosniff".into()),
            ("referrer-policy", "no-referrer".into()),
        ],
    }
}

const SHELL_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'self'\">\
<title>Prodex Gateway admin</title></head><body><h1>Prodex Gateway admin</h1>\
<p>The admin API lives under <code>/v1/prodex/gateway/</code>; its OpenAPI document is at \
<code>/v1/prodex/gateway/openapi.json</code> (send your admin bearer token).</p></body></html>\n";
