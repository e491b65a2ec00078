//! Resolves an admin request's credential into a `Principal` (master secret, then
//! `[[gateway.admin_tokens]]`; OIDC and trusted-proxy SSO slot in here, after them, producing the
//! same type) and writes the audit log.
//!
//! Invariants: virtual keys never authenticate here (only admin secrets are consulted); an audit
//! entry names the principal, never its credential; every denial is audited.

use serde_json::{json, Value};

use crate::clock;
use crate::core::auth::{authenticate, Denial, Principal};
use crate::core::credential::{digest, presented};
use crate::core::directory::AuditEntry;
use crate::error::ApiError;
use crate::http::server::Exchange;
use crate::state::Shared;

/// The request's principal, or the 401 to answer (already audited).
pub fn principal(shared: &Shared, ex: &Exchange<'_>) -> Result<Principal, ApiError> {
    let hash = presented(&ex.head.headers).map(digest);
    match authenticate(hash.as_ref(), shared.master_digest.as_ref(), &shared.admin_credentials) {
        Ok(p) => Ok(p),
        Err(denial) => {
            let actor = match denial {
                Denial::Missing => "anonymous",
                Denial::Unknown => "unknown_credential",
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
                    ..AuditEntry::default()
                },
            );
            Err(ApiError::invalid_admin_credential(denial == Denial::Missing))
        }
    }
}

/// Audits a request refused for its role or scope.
pub fn audit_denial(shared: &Shared, ex: &Exchange<'_>, p: &Principal, target: &str) {
    let action = format!("{} {}", ex.head.method, target);
    record(shared, entry(p, &action, Some(target), None, "denied", &ex.call_id));
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
    e.id = clock::call_id();
    e.at = clock::unix_ms();
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
