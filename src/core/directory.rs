//! Records the admin plane keeps besides keys: SCIM-provisioned users, the audit log, and
//! idempotency records for safe retries of admin mutations. Plain data with their filters; the
//! SCIM protocol (filters, PATCH) and the audit policy live with the admin plane.
//!
//! Invariants: user names are unique case-insensitively; audit entries carry the scope they
//! concern (tenant, key name) so scoped principals see only their own; no record holds a secret.

use serde::{Deserialize, Serialize};

use crate::core::keys::name_has_prefix;
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
    /// Provisioned (or last written) by a tenant-scoped admin: it never assigns a tenant to a
    /// person (`core::auth::speaking`). `userName`s are unique within a tenant, not across.
    #[serde(default)]
    pub confined: bool,
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
    /// The client address of a denied request.
    #[serde(default)]
    pub source_ip: Option<String>,
    /// A summary of identical denials folded into one entry ([`Denials`]): how many there were.
    #[serde(default)]
    pub repeated: Option<u64>,
}

/// Folds floods of identical denials (same client address, same reason, same action) into one
/// entry per window, so bad credentials cannot grow the audit log without bound: the first is
/// written at once, the rest of its window are counted, and when the window ends one summary
/// entry with `repeated` = their number is written. Pure: the caller passes the time.
#[derive(Debug, Default)]
pub struct Denials {
    open: std::collections::BTreeMap<String, OpenWindow>,
    /// How long identical denials are folded together (0: never).
    window_ms: UnixMs,
}

#[derive(Debug)]
struct OpenWindow {
    until: UnixMs,
    folded: u64,
    first: AuditEntry,
}

impl Denials {
    /// Folds identical denials within `window_ms` (0 writes every one).
    #[must_use]
    pub fn new(window_ms: UnixMs) -> Self {
        Self { open: std::collections::BTreeMap::new(), window_ms }
    }

    /// Windows open at once at most: past it, denials are written as they come.
    pub const MAX_OPEN: usize = 10_000;

    fn key(e: &AuditEntry) -> String {
        let ip = e.source_ip.as_deref().unwrap_or("");
        format!("{ip}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}", e.actor_source, e.actor, e.action, e.outcome)
    }

    /// Whether to write the denial `e` now (`false`: it was counted into an open window).
    pub fn admit(&mut self, e: &AuditEntry, now: UnixMs) -> bool {
        if self.window_ms == 0 {
            return true;
        }
        let key = Self::key(e);
        let open = self.open.len();
        match self.open.get_mut(&key) {
            Some(w) if now < w.until => {
                w.folded += 1;
                false
            }
            Some(_) => true, // ended: `expired` writes its summary; this one opens no new window yet
            None if open < Self::MAX_OPEN => {
                self.open.insert(key, OpenWindow { until: now + self.window_ms, folded: 0, first: e.clone() });
                true
            }
            None => true,
        }
    }

    /// Summaries of the windows that ended by `now` and folded anything (the first denial's
    /// fields, `repeated` = how many were folded, `target` dropped as they may differ).
    pub fn expired(&mut self, now: UnixMs) -> Vec<AuditEntry> {
        let ended: Vec<String> = self.open.iter().filter(|(_, w)| now >= w.until).map(|(k, _)| k.clone()).collect();
        ended
            .into_iter()
            .filter_map(|k| self.open.remove(&k))
            .filter(|w| w.folded > 0)
            .map(|w| AuditEntry { repeated: Some(w.folded), target: None, call_id: None, ..w.first })
            .collect()
    }
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
                || e.target.as_ref().is_some_and(|t| self.prefix_scope.iter().any(|p| name_has_prefix(t, p))))
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

/// One entry of the SCIM name index (redb and Redis): the ids of the users sharing a lower-cased
/// `userName`, by tenant (`""` = tenantless). Names are unique per tenant, so this is the
/// uniqueness check and the SSO lookup at once. Stored as a JSON object; an entry written before
/// names were per tenant is a bare id, read through [`NameIds::parse`]'s `legacy` lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameIds(pub std::collections::BTreeMap<String, String>);

impl NameIds {
    /// Reads a stored entry; a legacy bare `id` is placed under the tenant `legacy(id)` names
    /// (`None` when that user is gone, which drops it).
    pub fn parse<E>(
        raw: Option<&str>,
        legacy: impl FnOnce(&str) -> Result<Option<Option<String>>, E>,
    ) -> Result<Self, E> {
        let mut ids = std::collections::BTreeMap::new();
        match raw {
            None => {}
            Some(r) if r.starts_with('{') => {
                if let Ok(map) = serde_json::from_str(r) {
                    ids = map;
                }
            }
            Some(id) => {
                if let Some(tenant) = legacy(id)? {
                    ids.insert(tenant.unwrap_or_default(), id.to_string());
                }
            }
        }
        Ok(Self(ids))
    }

    /// The id of `tenant`'s user of this name.
    #[must_use]
    pub fn get(&self, tenant: Option<&str>) -> Option<&str> {
        self.0.get(tenant.unwrap_or("")).map(String::as_str)
    }

    /// Claims the name for `id` in `tenant`: `false` if another user of that tenant holds it.
    pub fn claim(&mut self, tenant: Option<&str>, id: &str) -> bool {
        match self.0.get(tenant.unwrap_or("")) {
            Some(other) if other != id => false,
            _ => {
                self.0.insert(tenant.unwrap_or("").to_string(), id.to_string());
                true
            }
        }
    }

    /// Gives the name up for `id` in `tenant` (if it holds it there).
    pub fn release(&mut self, tenant: Option<&str>, id: &str) {
        if self.get(tenant) == Some(id) {
            self.0.remove(tenant.unwrap_or(""));
        }
    }

    /// The stored form, `None` when no user holds the name any more (delete the entry).
    #[must_use]
    pub fn render(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| serde_json::to_string(&self.0).unwrap_or_default())
    }

    /// Every holder's id, the tenantless one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
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

    #[test]
    fn scim_names_are_unique_per_tenant() {
        let none = |_: &str| -> Result<Option<Option<String>>, ()> { unreachable!() };
        let mut n = NameIds::parse(None, none).unwrap();
        assert!(n.claim(Some("a"), "u1") && n.claim(Some("b"), "u2") && n.claim(None, "u3"));
        assert!(!n.claim(Some("a"), "u4"), "taken within tenant a");
        assert!(n.claim(Some("a"), "u1"), "re-claiming one's own name is fine");
        let stored = n.render().unwrap();
        let back = NameIds::parse(Some(&stored), none).unwrap();
        assert_eq!(back, n);
        assert_eq!(back.ids().collect::<Vec<_>>(), ["u3", "u1", "u2"]);
        let mut back = back;
        back.release(Some("a"), "u9");
        assert_eq!(back.get(Some("a")), Some("u1"), "only the holder releases");
        for (t, id) in [(Some("a"), "u1"), (Some("b"), "u2"), (None, "u3")] {
            back.release(t, id);
        }
        assert_eq!(back.render(), None);
        // A legacy bare id is filed under its user's tenant; a dangling one is dropped.
        let legacy = NameIds::parse(Some("u7"), |id| Ok::<_, ()>(Some(Some(format!("t-{id}"))))).unwrap();
        assert_eq!(legacy.get(Some("t-u7")), Some("u7"));
        assert_eq!(NameIds::parse(Some("u7"), |_| Ok::<_, ()>(None)).unwrap().render(), None);
    }

    #[test]
    fn a_flood_of_identical_denials_becomes_one_entry_per_window() {
        let deny = |ip: &str, actor: &str| AuditEntry {
            actor: actor.into(),
            actor_source: "anonymous".into(),
            action: "authenticate".into(),
            outcome: "denied".into(),
            source_ip: Some(ip.into()),
            target: Some("/v1/prodex/gateway/keys".into()),
            ..AuditEntry::default()
        };
        const WINDOW: u64 = 60_000;
        let mut d = Denials::new(WINDOW);
        let t0 = 1_000_000;
        assert!(d.admit(&deny("10.0.0.1", "unknown_credential"), t0), "the first is written");
        let written = (1..500).filter(|i| d.admit(&deny("10.0.0.1", "unknown_credential"), t0 + i)).count();
        assert_eq!(written, 0, "the rest of the window are counted");
        assert!(d.admit(&deny("10.0.0.2", "unknown_credential"), t0 + 1), "another address is its own window");
        assert!(d.admit(&deny("10.0.0.1", "anonymous"), t0 + 1), "another reason is its own window");
        assert!(d.expired(t0 + WINDOW - 1).is_empty(), "nothing ended yet");
        let summaries = d.expired(t0 + WINDOW);
        assert_eq!(summaries.len(), 1, "only windows that folded something are summarised");
        assert_eq!((summaries[0].repeated, summaries[0].target.as_deref()), (Some(499), None));
        assert!(d.admit(&deny("10.0.0.1", "unknown_credential"), t0 + WINDOW + 1), "a new window");
        // The number of open windows is bounded: past it, denials are simply written.
        let mut d = Denials::new(WINDOW);
        for i in 0..Denials::MAX_OPEN {
            assert!(d.admit(&deny(&format!("ip{i}"), "x"), t0));
        }
        assert!(d.admit(&deny("one-more", "x"), t0) && d.admit(&deny("one-more", "x"), t0));
        let mut off = Denials::new(0);
        assert!((0..3).all(|_| off.admit(&deny("10.0.0.1", "x"), t0)), "a zero window writes every one");
    }
}
