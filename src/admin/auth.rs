//! Resolves an admin request's credential into a `Principal` (master secret, then
//! `[[gateway.admin_tokens]]`, then a trusted SSO proxy's headers; OIDC slots in before the proxy,
//! producing the same type through `core::auth::federated`) and writes the audit log.
//!
//! Invariants: virtual keys never authenticate here (only admin secrets are consulted); SSO headers
//! count only with the proxy's shared secret (compared in constant time), and are audited when
//! ignored; a deactivated SCIM user never gets in; an audit entry names the principal, never its
//! credential; every denial is audited.

use serde_json::{json, Value};

use crate::clock;
use crate::core::auth::{authenticate, federated, split_list, Claims, Denial, Principal, Provisioned, Source};
use crate::core::credential::{ct_eq, digest, presented};
use crate::core::directory::AuditEntry;
use crate::error::ApiError;
use crate::http::server::Exchange;
use crate::state::Shared;

/// The request's principal, or the 401 to answer (already audited). Order (gateway.md §7): the
/// master secret, `[[gateway.admin_tokens]]`, then a trusted SSO proxy's headers.
pub fn principal(shared: &Shared, ex: &Exchange<'_>) -> Result<Principal, ApiError> {
    let hash = presented(&ex.head.headers).map(digest);
    let denial = match authenticate(hash.as_ref(), shared.master_digest.as_ref(), &shared.admin_credentials) {
        Ok(p) => return Ok(p),
        Err(denial) => denial,
    };
    let denial = match sso_proxy(shared, ex) {
        Some(Ok(p)) => return Ok(p),
        Some(Err(SsoRefusal::State)) => return Err(ApiError::state_unavailable()),
        Some(Err(SsoRefusal::Denied(d))) => d,
        None => denial,
    };
    let actor = match denial {
        Denial::Missing => "anonymous",
        Denial::Unknown => "unknown_credential",
        Denial::Inactive => "inactive_user",
        Denial::NoScope => "unscoped_sso_user",
    };
    record(
        shared,
        AuditEntry {
            actor: actor.into(),
            actor_source: "anonymous".into(),
            action: "authenticate".into(),
            target: Some(ex.head.path().to_string()),
            outcome: "denied".into(),
            call_id: Some(ex.call_id.clone()),
            source_ip: Some(ex.peer.ip().to_string()),
            ..AuditEntry::default()
        },
    );
    Err(ApiError::invalid_admin_credential(denial == Denial::Missing))
}

enum SsoRefusal {
    Denied(Denial),
    /// The SCIM lookup could not be made.
    State,
}

/// Trusted-proxy SSO: `None` when it does not apply (not configured, or no matching proxy token —
/// then any SSO headers are ignored, and audited as such).
fn sso_proxy(shared: &Shared, ex: &Exchange<'_>) -> Option<Result<Principal, SsoRefusal>> {
    let cfg = &shared.config.sso;
    let header = |name: &str| ex.head.header(&name.to_ascii_lowercase()).filter(|v| !v.trim().is_empty());
    let identity = [&cfg.user_header, &cfg.role_header, &cfg.tenant_header, &cfg.key_prefixes_header];
    let trusted = match (&shared.sso_digest, header(&cfg.token_header)) {
        (Some(expected), Some(token)) => ct_eq(&digest(token), expected),
        _ => false,
    };
    if !trusted {
        if identity.iter().any(|h| header(h).is_some()) {
            let e = AuditEntry {
                actor: "unknown".into(),
                actor_source: "sso_proxy".into(),
                action: "sso_headers_ignored".into(),
                target: Some(ex.head.path().to_string()),
                outcome: "denied".into(),
                call_id: Some(ex.call_id.clone()),
                source_ip: Some(ex.peer.ip().to_string()),
                ..AuditEntry::default()
            };
            record(shared, e);
        }
        return None;
    }
    let user = header(&cfg.user_header).unwrap_or("").trim().to_string();
    let claims = Claims {
        role: header(&cfg.role_header).map(|r| r.trim().to_string()),
        tenant_id: header(&cfg.tenant_header).map(|t| t.trim().to_string()),
        key_prefixes: header(&cfg.key_prefixes_header).map(split_list),
        user,
    };
    let records = if claims.user.is_empty() {
        Vec::new()
    } else {
        match shared.store.scim_by_user_name(&claims.user) {
            Ok(u) => u,
            Err(e) => {
                shared.note_state_error();
                log::error!("sso: looking up the SCIM user failed: {e}");
                return Some(Err(SsoRefusal::State));
            }
        }
    };
    let provisioned: Vec<Provisioned<'_>> = records
        .iter()
        .map(|u| Provisioned {
            active: u.active,
            role: u.role.as_deref(),
            tenant_id: u.tenant_id.as_deref(),
            key_prefixes: &u.key_prefixes,
            confined: u.confined,
        })
        .collect();
    Some(
        federated(Source::SsoProxy, &claims, &provisioned, cfg.default_role, &cfg.default_scope)
            .map_err(SsoRefusal::Denied),
    )
}

/// Audits a request refused for its role or scope.
pub fn audit_denial(shared: &Shared, ex: &Exchange<'_>, p: &Principal, target: &str) {
    let action = format!("{} {}", ex.head.method, target);
    let mut e = entry(p, &action, Some(target), None, "denied", &ex.call_id);
    e.source_ip = Some(ex.peer.ip().to_string());
    record(shared, e);
}

/// An audit entry for `p` doing `action` on `target` in `tenant` (the target's, else the actor's).
#[must_use]
pub fn entry(
    p: &Principal,
    action: &str,
    target: Option<&str>,
    tenant: Option<&str>,
    outcome: &str,
    call_id: &str,
) -> AuditEntry {
    AuditEntry {
        actor: p.name.clone(),
        actor_source: p.source.as_str().into(),
        role: Some(p.role.as_str().into()),
        tenant_id: tenant.map(String::from).or_else(|| p.tenant_id.clone()),
        action: action.into(),
        target: target.map(String::from),
        outcome: outcome.into(),
        call_id: Some(call_id.into()),
        ..AuditEntry::default()
    }
}

/// Stores an audit entry and appends it to `prodex-audit.log`. A storage failure is logged, never
/// hidden: the entry still reaches the audit file.
pub fn record(shared: &Shared, mut e: AuditEntry) {
    e.at = clock::unix_ms();
    // A flood of identical denials becomes one entry per window (`core::directory::Denials`).
    if e.outcome == "denied" && !shared.admit_denial(&e) {
        return;
    }
    write(shared, e);
}

/// Writes summaries of the denial windows that ended (called every second).
pub fn flush_denials(shared: &Shared) {
    for summary in shared.expired_denials(clock::unix_ms()) {
        write(shared, summary);
    }
}

fn write(shared: &Shared, mut e: AuditEntry) {
    e.id = clock::call_id();
    crate::logs::audit(serde_json::to_vec(&audit_json(&e)).unwrap_or_default());
    if let Err(err) = shared.store.audit_append(&e) {
        shared.note_state_error();
        log::error!("audit entry {} not stored: {err}", e.id);
    }
}

/// An audit entry as the API returns it.
#[must_use]
pub fn audit_json(e: &AuditEntry) -> Value {
    json!({
        "object": "gateway.audit_entry",
        "id": e.id,
        "at": crate::core::time::format_rfc3339(e.at),
        "actor": e.actor,
        "actor_source": e.actor_source,
        "role": e.role,
        "tenant_id": e.tenant_id,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "call_id": e.call_id,
        "source_ip": e.source_ip,
        "repeated": e.repeated,
    })
}

/// `GET whoami`.
#[must_use]
pub fn whoami(p: &Principal) -> Value {
    json!({
        "object": "gateway.principal",
        "name": p.name,
        "source": p.source.as_str(),
        "role": p.role.as_str(),
        "tenant_id": p.tenant_id,
        "allowed_key_prefixes": p.key_prefixes,
    })
}
