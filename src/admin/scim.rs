//! SCIM 2.0 user provisioning under `scim/v2/` (RFC 7643/7644): `Users` (list with `filter`,
//! `startIndex`, `count`; create), `Users/{id}` (get, PUT, PATCH, DELETE), and the discovery
//! documents `ServiceProviderConfig`, `ResourceTypes`, `Schemas`. The protocol rules (filters,
//! PATCH, resource JSON) are `core::scim`; this file applies scope, stores and audits.
//!
//! Invariants: a tenant-scoped principal sees and changes only users of its tenant (others are
//! 404); a scoped admin's users get its tenant, and key prefixes inside its own; replacements are
//! compare-and-swap on `version` (`If-Match` honoured, 412 on mismatch); every mutation is audited.

use serde_json::Value;

use crate::admin::auth::{entry, record};
use crate::admin::Reply;
use crate::clock;
use crate::core::auth::Principal;
use crate::core::directory::ScimUser;
use crate::core::query::Params;
use crate::core::scim::{
    apply_patch, error_json, list_json, matches, parse_filter, parse_user, resource_types, schemas,
    service_provider_config, user_json, user_name_eq, ScimError,
};
use crate::http::server::Exchange;
use crate::state::Shared;
use crate::store::StoreError;

/// Users per page at most.
const MAX_COUNT: usize = 500;
/// Largest SCIM request body.
const MAX_BODY: usize = 256 * 1024;

/// One SCIM operation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ScimOp<'p> {
    List,
    Create,
    Get(&'p str),
    Replace(&'p str),
    Patch(&'p str),
    Delete(&'p str),
    Config,
    Types,
    Schemas,
}

impl ScimOp<'_> {
    pub(crate) fn writes(self) -> bool {
        matches!(self, Self::Create | Self::Replace(_) | Self::Patch(_) | Self::Delete(_))
    }
}

/// Decodes `scim/v2/…` (after the admin prefix): `Err(Some(allow))` on a wrong method.
pub(crate) fn classify<'p>(method: &str, segments: &[&'p str]) -> Result<ScimOp<'p>, Option<&'static str>> {
    let read = method == "GET" || method == "HEAD";
    match segments {
        ["Users"] => match method {
            _ if read => Ok(ScimOp::List),
            "POST" => Ok(ScimOp::Create),
            _ => Err(Some("GET, HEAD, POST")),
        },
        ["Users", id] if !id.is_empty() => match method {
            _ if read => Ok(ScimOp::Get(id)),
            "PUT" => Ok(ScimOp::Replace(id)),
            "PATCH" => Ok(ScimOp::Patch(id)),
            "DELETE" => Ok(ScimOp::Delete(id)),
            _ => Err(Some("GET, HEAD, PUT, PATCH, DELETE")),
        },
        ["ServiceProviderConfig"] if read => Ok(ScimOp::Config),
        ["ResourceTypes"] if read => Ok(ScimOp::Types),
        ["Schemas"] if read => Ok(ScimOp::Schemas),
        ["ServiceProviderConfig" | "ResourceTypes" | "Schemas"] => Err(Some("GET, HEAD")),
        _ => Err(None),
    }
}

fn scim(status: u16, body: Value) -> Reply {
    Reply::Scim { status, body, headers: Vec::new() }
}

fn fail(e: &ScimError) -> Reply {
    scim(e.status, error_json(e))
}

fn scim_error(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> ScimError {
    ScimError { status, scim_type, detail: detail.into() }
}

fn unavailable(shared: &Shared, e: &StoreError) -> ScimError {
    shared.note_state_error();
    log::error!("scim: state backend error: {e}");
    scim_error(503, None, "the gateway's state backend is unavailable; retry shortly")
}

/// The base URL resources are located under (as the client addressed us).
fn base(ex: &Exchange<'_>) -> String {
    let path = ex.head.path();
    let prefix = if path.starts_with("/v1/") { "/v1/prodex/gateway/scim/v2" } else { "/prodex/gateway/scim/v2" };
    match ex.head.header("host") {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ']) => format!("http://{host}{prefix}"),
        _ => prefix.to_string(),
    }
}

/// Runs one SCIM operation for `p` (its role was checked by the caller).
pub(crate) fn handle(shared: &Shared, ex: &mut Exchange<'_>, p: &Principal, op: ScimOp<'_>) -> Reply {
    let base = base(ex);
    let result = match op {
        ScimOp::Config => Ok(scim(200, service_provider_config(&base))),
        ScimOp::Types => Ok(scim(200, resource_types(&base))),
        ScimOp::Schemas => Ok(scim(200, schemas())),
        ScimOp::List => list(shared, ex, p, &base),
        ScimOp::Get(id) => visible(shared, p, id).map(|u| with_etag(200, &u, &base)),
        ScimOp::Create | ScimOp::Replace(_) | ScimOp::Patch(_) | ScimOp::Delete(_) => {
            let outcome = mutate(shared, ex, p, op, &base);
            let (label, target, tenant) = match (&outcome, op) {
                (Ok((_, u)), _) => ("ok".to_string(), Some(u.id.clone()), u.tenant_id.clone()),
                (Err(e), ScimOp::Replace(id) | ScimOp::Patch(id) | ScimOp::Delete(id)) => {
                    (format!("scim_{}", e.status), Some(id.to_string()), None)
                }
                (Err(e), _) => (format!("scim_{}", e.status), None, None),
            };
            let action = match op {
                ScimOp::Create => "scim.user.create",
                ScimOp::Replace(_) => "scim.user.replace",
                ScimOp::Patch(_) => "scim.user.patch",
                _ => "scim.user.delete",
            };
            record(shared, entry(p, action, target.as_deref(), tenant.as_deref(), &label, &ex.call_id));
            outcome.map(|(reply, _)| reply)
        }
    };
    result.unwrap_or_else(|e| fail(&e))
}

fn with_etag(status: u16, u: &ScimUser, base: &str) -> Reply {
    Reply::Scim { status, body: user_json(u, base), headers: vec![("etag", format!("W/\"{}\"", u.version))] }
}

fn list(shared: &Shared, ex: &Exchange<'_>, p: &Principal, base: &str) -> Result<Reply, ScimError> {
    let params = Params::parse(ex.head.query()).map_err(|e| scim_error(400, Some("invalidValue"), e.message))?;
    params
        .only(&["filter", "startIndex", "count", "attributes", "excludedAttributes"], &[])
        .map_err(|e| scim_error(400, Some("invalidValue"), e.message))?;
    // RFC 7644 §3.4.2.4: startIndex < 1 means 1; count < 0 means 0; we cap count.
    let start = params
        .get("startIndex")
        .map_or(Ok(1), |v| v.parse::<i64>())
        .map_err(|_| scim_error(400, Some("invalidValue"), "startIndex must be an integer"))?;
    let count = params
        .get("count")
        .map_or(Ok(100), |v| v.parse::<i64>())
        .map_err(|_| scim_error(400, Some("invalidValue"), "count must be an integer"))?;
    let start = usize::try_from(start.max(1)).unwrap_or(1);
    let count = usize::try_from(count.max(0)).unwrap_or(0).min(MAX_COUNT);
    let filter = params.get("filter").map(parse_filter).transpose()?;
    let tenant = p.tenant_id.as_deref();
    let store = shared.store.as_ref();
    let (page, total) = match &filter {
        None => store.scim_list(tenant, start, count).map_err(|e| unavailable(shared, &e))?,
        Some(f) => {
            let candidates: Vec<ScimUser> = match user_name_eq(f) {
                Some(name) => store.scim_by_user_name(name).map_err(|e| unavailable(shared, &e))?,
                None => all_users(shared, tenant)?,
            };
            let hits: Vec<ScimUser> = candidates.into_iter().filter(|u| in_tenant(p, u) && matches(f, u)).collect();
            let total = hits.len();
            (hits.into_iter().skip(start - 1).take(count).collect(), total)
        }
    };
    let resources: Vec<Value> = page.iter().map(|u| user_json(u, base)).collect();
    Ok(scim(200, list_json(&resources, total, start)))
}

/// Every user of `tenant` (all users when `None`), in pages.
fn all_users(shared: &Shared, tenant: Option<&str>) -> Result<Vec<ScimUser>, ScimError> {
    let mut out = Vec::new();
    loop {
        let (page, total) =
            shared.store.scim_list(tenant, out.len() + 1, MAX_COUNT).map_err(|e| unavailable(shared, &e))?;
        let got = page.len();
        out.extend(page);
        if got == 0 || out.len() >= total {
            return Ok(out);
        }
    }
}

fn in_tenant(p: &Principal, u: &ScimUser) -> bool {
    p.tenant_id.as_deref().is_none_or(|t| u.tenant_id.as_deref() == Some(t))
}

fn visible(shared: &Shared, p: &Principal, id: &str) -> Result<ScimUser, ScimError> {
    match shared.store.scim_get(id).map_err(|e| unavailable(shared, &e))? {
        Some(u) if in_tenant(p, &u) => Ok(u),
        _ => Err(scim_error(404, None, format!("no user {id}"))),
    }
}

/// Holds a scoped admin's users inside its scope: tenant forced, key prefixes within its own.
fn confine(p: &Principal, u: &mut ScimUser) -> Result<(), ScimError> {
    u.confined = p.tenant_id.is_some();
    if let Some(own) = &p.tenant_id {
        match &u.tenant_id {
            Some(t) if t != own => {
                return Err(scim_error(403, None, "you may only provision users in your own tenant"));
            }
            _ => u.tenant_id = Some(own.clone()),
        }
    }
    if !p.key_prefixes.is_empty() {
        if u.key_prefixes.is_empty() {
            u.key_prefixes.clone_from(&p.key_prefixes);
        }
        let inside = u.key_prefixes.iter().all(|up| p.key_prefixes.iter().any(|own| up.starts_with(own.as_str())));
        if !inside {
            return Err(scim_error(403, None, "the user's key prefixes must lie inside yours"));
        }
    }
    Ok(())
}

fn if_match_ok(ex: &Exchange<'_>, version: u64) -> bool {
    let want = version.to_string();
    ex.head.header("if-match").is_none_or(|h| {
        h.split(',').map(str::trim).any(|t| {
            let t = t.strip_prefix("W/").unwrap_or(t);
            t == "*" || t == want || t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(want.as_str())
        })
    })
}

fn read_json(ex: &mut Exchange<'_>) -> Result<Value, ScimError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match ex.read_body(&mut chunk) {
            Ok(0) => break,
            Ok(n) if out.len() + n > MAX_BODY => return Err(scim_error(413, None, "request body too large")),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(scim_error(400, Some("invalidSyntax"), "the request body could not be read")),
        }
    }
    serde_json::from_slice(&out).map_err(|e| scim_error(400, Some("invalidSyntax"), format!("body is not JSON: {e}")))
}

fn conflict_or(shared: &Shared, e: &StoreError) -> ScimError {
    match e {
        StoreError::Conflict(_) => scim_error(409, Some("uniqueness"), "a user with this userName already exists"),
        StoreError::VersionMismatch { .. } => scim_error(412, None, "the user changed; fetch it and retry"),
        StoreError::NotFound => scim_error(404, None, "no such user"),
        _ => unavailable(shared, e),
    }
}

fn mutate(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    p: &Principal,
    op: ScimOp<'_>,
    base: &str,
) -> Result<(Reply, ScimUser), ScimError> {
    let now = clock::unix_ms();
    let store = shared.store.as_ref();
    match op {
        ScimOp::Create => {
            let fields = parse_user(&read_json(ex)?)?;
            let mut user = ScimUser {
                id: uuid::Uuid::now_v7().to_string(),
                version: 1,
                created_at: now,
                updated_at: now,
                ..ScimUser::default()
            };
            fields.apply(&mut user);
            confine(p, &mut user)?;
            store.scim_create(&user).map_err(|e| conflict_or(shared, &e))?;
            Ok((with_etag(201, &user, base), user))
        }
        ScimOp::Replace(id) | ScimOp::Patch(id) => {
            let body = read_json(ex)?;
            let current = visible(shared, p, id)?;
            let mut next = if let ScimOp::Patch(_) = op {
                apply_patch(&current, &body)?
            } else {
                let mut u = current.clone();
                parse_user(&body)?.apply(&mut u);
                u
            };
            next.id.clone_from(&current.id);
            next.created_at = current.created_at;
            next.version = current.version + 1;
            next.updated_at = now;
            confine(p, &mut next)?;
            // RFC 7232 §5: a request that would fail without its precondition (400, 403) answers
            // that failure, not 412.
            if !if_match_ok(ex, current.version) {
                return Err(scim_error(412, None, "If-Match does not match the user's version"));
            }
            store.scim_replace(&next, current.version).map_err(|e| conflict_or(shared, &e))?;
            Ok((with_etag(200, &next, base), next))
        }
        ScimOp::Delete(id) => {
            let current = visible(shared, p, id)?;
            if !if_match_ok(ex, current.version) {
                return Err(scim_error(412, None, "If-Match does not match the user's version"));
            }
            store.scim_delete(id).map_err(|e| conflict_or(shared, &e))?;
            Ok((Reply::Empty { status: 204 }, current))
        }
        _ => Err(scim_error(405, None, "not a mutation")),
    }
}
