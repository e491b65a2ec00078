//! Records the admin plane keeps besides keys: SCIM-provisioned users, the audit log, and
//! idempotency records for safe retries of admin mutations. Plain data with their filters; the
//! SCIM protocol (filters, PATCH) and the audit policy live with the admin plane.
//!
//! Invariants: user names are unique case-insensitively; audit entries carry the scope they
//! concern (tenant, key name) so scoped principals see only their own; no record holds a secret.

use serde::{Deserialize, Serialize};

use crate::core::time::UnixMs;

/// A user provisioned through SCIM (RFC 7643), with the gateway's extension fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimUser {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub emails: Vec<String>,
    pub active: bool,
    /// `viewer` or `admin`.
    pub role: Option<String>,
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub key_prefixes: Vec<String>,
    pub version: u64,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// One admin mutation or auth denial.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UUIDv7 (time-ordered).
    pub id: String,
    pub at: UnixMs,
    /// Who: principal name (never a credential).
    pub actor: String,
    /// `master`, `admin_token`, `oidc`, `sso_proxy` or `anonymous`.
    pub actor_source: String,
    pub role: Option<String>,
    /// The tenant the action concerns (the target's, else the actor's).
    pub tenant_id: Option<String>,
    pub action: String,
    /// What was acted on (a key name, a SCIM user id, a route).
    pub target: Option<String>,
    /// `ok`, `denied` or an error code.
    pub outcome: String,
    pub call_id: Option<String>,
}

/// Which audit entries to list: newest first, after a cursor, narrowed by scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub from: Option<UnixMs>,
    pub to: Option<UnixMs>,
    pub tenant_scope: Option<String>,
    /// Non-empty: the target must start with one of these.
    pub prefix_scope: Vec<String>,
    /// `(at, id)` of the last entry of the previous page.
    pub after: Option<(UnixMs, String)>,
    pub limit: usize,
}

impl AuditQuery {
    #[must_use]
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
            && self.tenant_scope.as_ref().is_none_or(|t| e.tenant_id.as_ref() == Some(t))
            && (self.prefix_scope.is_empty()
                || e.target.as_ref().is_some_and(|t| self.prefix_scope.iter().any(|p| t.starts_with(p.as_str()))))
            && self.after.as_ref().is_none_or(|(at, id)| (e.at, e.id.as_str()) < (*at, id.as_str()))
    }
}

/// A stored response to an admin mutation, replayed for a retry with the same key and body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The client's `Idempotency-Key`, namespaced by principal.
    pub key: String,
    /// SHA-256 (hex) of method, path and body: the same key with another body is a conflict.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub expires_at: UnixMs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_scopes_and_cursor() {
        let e = AuditEntry {
            id: "b".into(),
            at: 10,
            tenant_id: Some("t-a".into()),
            target: Some("team-a-ci".into()),
            ..AuditEntry::default()
        };
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            q.matches(&e)
        };
        assert!(q(|_| {}));
        assert!(!q(|q| q.tenant_scope = Some("t-b".into())));
        assert!(q(|q| q.prefix_scope = vec!["team-a-".into()]) && !q(|q| q.prefix_scope = vec!["team-b-".into()]));
        assert!(q(|q| q.after = Some((10, "c".into()))) && !q(|q| q.after = Some((10, "b".into()))));
        assert!(!q(|q| q.from = Some(11)) && q(|q| q.to = Some(11)));
    }
}
