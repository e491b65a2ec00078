//! Virtual keys: the record, its token format, and the pure checks made on every call (usable at
//! `now`? model allowed?). Tokens are `pk-` + base64url(32 OS-random bytes); only their SHA-256 is
//! kept, so a lookup is a hash-map hit on the digest and nothing at rest can authenticate.
//!
//! Invariants: a key record never holds a token; `version` increases on every change (it is the
//! ETag and the compare-and-swap guard); names are unique case-insensitively.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::model_matches;
use crate::core::time::UnixMs;

/// SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// Calendar period of a spend or request budget (UTC boundaries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    #[default]
    Total,
    Daily,
    Weekly,
    Monthly,
}

/// Where a key was declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// `[[gateway.virtual_keys]]`: read-only through the API.
    Policy,
    /// Created through the admin API or the CLI.
    #[default]
    Admin,
}

/// Limits of one key (or of the budget group it belongs to).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub budget_microusd: Option<u64>,
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    pub request_budget: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
}

impl Limits {
    /// Whether any limit is set (unlimited keys skip the reservation round trip's checks).
    #[must_use]
    pub fn any(&self) -> bool {
        self.budget_microusd.is_some()
            || self.request_budget.is_some()
            || self.rpm_limit.is_some()
            || self.tpm_limit.is_some()
            || self.max_parallel_requests.is_some()
    }
}

/// A virtual key as stored (gateway.md §4), without its token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// UUIDv7.
    pub id: String,
    pub name: String,
    #[serde(with = "hex32")]
    pub token_hash: TokenHash,
    /// `pk-…` + the token's last 4 characters, for humans.
    pub token_hint: String,
    pub tenant_id: Option<String>,
    pub team_id: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    /// Keys sharing a budget id share budgets and rate limits.
    pub budget_id: Option<String>,
    /// Exact names or trailing-`*` globs; empty = every model.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    #[serde(flatten)]
    pub limits: Limits,
    pub expires_at: Option<UnixMs>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub source: KeySource,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    pub last_used_at: Option<UnixMs>,
    pub version: u64,
}

impl KeyRecord {
    /// The id that budgets and rate limits are counted under. A shared pool (`budget_id`) belongs
    /// to the key's tenant: the same `budget_id` in two tenants is two pools, so no tenant can
    /// join, read or exhaust another's.
    #[must_use]
    pub fn limit_scope(&self) -> String {
        match (&self.budget_id, &self.tenant_id) {
            (Some(b), Some(t)) => format!("budget:{t}/{b}"),
            (Some(b), None) => format!("budget:{b}"),
            (None, _) => format!("key:{}", self.id),
        }
    }

    /// The scope this key's pool was counted under before pools were tenant-scoped, when it
    /// differs (its counters are carried over once, see `keyring::carry_tenant_pools`).
    #[must_use]
    pub fn legacy_limit_scope(&self) -> Option<String> {
        match (&self.budget_id, &self.tenant_id) {
            (Some(b), Some(_)) => Some(format!("budget:{b}")),
            _ => None,
        }
    }

    /// Whether the key may be used at `now` (not disabled, not expired).
    #[must_use]
    pub fn usable(&self, now: UnixMs) -> bool {
        !self.disabled && self.expires_at.is_none_or(|t| now < t)
    }

    /// Whether the key may call `model` (checked on the requested model, before aliases).
    #[must_use]
    pub fn allows(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|p| model_matches(p, model))
    }
}

/// Key names: 1–128 of `[A-Za-z0-9._-]`, optionally in a tenant's namespace: `tenant-a:ci`
/// (one `:`, with a non-empty namespace and name on either side).
#[must_use]
pub fn valid_name(name: &str) -> bool {
    let plain =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (1..=128).contains(&name.len())
        && match name.split_once(NAMESPACE_SEP) {
            Some((ns, local)) => plain(ns) && plain(local),
            None => plain(name),
        }
}

/// Separates a tenant's namespace from a key's own name.
pub const NAMESPACE_SEP: char = ':';

/// The namespace of a name (`tenant-a` of `tenant-a:ci`), if it has one.
#[must_use]
pub fn namespace(name: &str) -> Option<&str> {
    name.split_once(NAMESPACE_SEP).map(|(ns, _)| ns)
}

/// A name without its namespace (`ci` of `tenant-a:ci`).
#[must_use]
pub fn local_name(name: &str) -> &str {
    name.split_once(NAMESPACE_SEP).map_or(name, |(_, local)| local)
}

/// Whether a key of `tenant` may carry `name`: a namespaced name belongs to its namespace's tenant
/// only. Key names are unique across tenants, so a tenant's admin (who names keys only inside its
/// namespace, see [`in_namespace`]) can never collide with, and so never learn, another tenant's.
#[must_use]
pub fn name_fits(name: &str, tenant: Option<&str>) -> bool {
    namespace(name).is_none_or(|ns| tenant == Some(ns))
}

/// The name a tenant-scoped principal's new key gets: `name` in `tenant`'s namespace (kept when it
/// is already there). `Err` names the problem: another namespace, or a tenant id that cannot be one.
pub fn in_namespace(name: &str, tenant: &str) -> Result<String, String> {
    match namespace(name) {
        Some(ns) if ns == tenant => Ok(name.to_string()),
        Some(ns) => Err(format!("`{ns}:` is another tenant's namespace; your keys are named `{tenant}:…`")),
        None => {
            let full = format!("{tenant}{NAMESPACE_SEP}{name}");
            if valid_name(&full) {
                Ok(full)
            } else {
                Err(format!(
                    "keys of tenant `{tenant}` are named `{tenant}:{name}`, which is not a valid key name \
                     (1-128 characters of A-Z a-z 0-9 . _ - around one `:`)"
                ))
            }
        }
    }
}

/// Whether `name` starts with `prefix`, or its own part does (`team-a-` matches `tenant-a:team-a-ci`).
#[must_use]
pub fn name_has_prefix(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix) || local_name(name).starts_with(prefix)
}

/// The hint shown for a token: `pk-…` and its last 4 characters.
#[must_use]
pub fn token_hint(token: &str) -> String {
    let tail: String = token.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("pk-…{tail}")
}

/// Renders 32 random bytes as a token: `pk-` + base64url without padding.
#[must_use]
pub fn token_from_bytes(bytes: &[u8; 32]) -> String {
    use base64::Engine as _;
    format!("pk-{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Hex (de)serialization of digests, so stored records stay readable JSON.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(serde::de::Error::custom("token hash must be 64 hex characters"));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyRecord {
        KeyRecord { id: "k1".into(), name: "team-a".into(), version: 1, ..KeyRecord::default() }
    }

    #[test]
    fn usable_and_allowlist_rules() {
        let mut k = key();
        assert!(k.usable(100));
        k.expires_at = Some(100);
        assert!(!k.usable(100) && k.usable(99));
        k.expires_at = None;
        k.disabled = true;
        assert!(!k.usable(0));
        let mut k = key();
        assert!(k.allows("anything"));
        k.allowed_models = vec!["gpt-4o-mini".into(), "gemini-*".into()];
        assert!(k.allows("gpt-4o-mini") && k.allows("gemini-2.5-flash") && !k.allows("gpt-4o"));
    }

    #[test]
    fn scopes_follow_budget_ids() {
        let mut k = key();
        assert_eq!(k.limit_scope(), "key:k1");
        k.budget_id = Some("shared".into());
        assert_eq!(k.limit_scope(), "budget:shared");
        assert_eq!(k.legacy_limit_scope(), None);
        k.tenant_id = Some("tenant-a".into());
        assert_eq!(k.limit_scope(), "budget:tenant-a/shared", "pools are the tenant's own");
        assert_eq!(k.legacy_limit_scope().as_deref(), Some("budget:shared"));
    }

    #[test]
    fn names_tokens_and_records_round_trip() {
        assert!(valid_name("team-a.ci_1") && !valid_name("") && !valid_name("a b") && !valid_name(&"a".repeat(129)));
        let token = token_from_bytes(&[7u8; 32]);
        assert!(token.starts_with("pk-") && token.len() == 3 + 43);
        assert_eq!(token_hint("pk-abcdWXYZ"), "pk-…WXYZ");
        let mut k = key();
        k.token_hash = [0xab; 32];
        k.limits.rpm_limit = Some(60);
        let json = serde_json::to_string(&k).unwrap();
        assert!(json.contains(&"ab".repeat(32)) && json.contains("\"rpm_limit\":60"));
        assert_eq!(serde_json::from_str::<KeyRecord>(&json).unwrap(), k);
    }

    #[test]
    fn tenant_namespaces_partition_key_names() {
        for (name, ok) in [
            ("tenant-a:ci", true),
            (":ci", false),
            ("tenant-a:", false),
            ("a:b:c", false),
            ("a b:c", false),
            ("plain", true),
        ] {
            assert_eq!(valid_name(name), ok, "{name}");
        }
        assert_eq!((namespace("tenant-a:ci"), local_name("tenant-a:ci")), (Some("tenant-a"), "ci"));
        assert_eq!((namespace("ci"), local_name("ci")), (None, "ci"));
        for (name, tenant, fits) in [
            ("tenant-a:ci", Some("tenant-a"), true),
            ("tenant-a:ci", Some("tenant-b"), false),
            ("tenant-a:ci", None, false),
            ("ci", Some("tenant-b"), true),
            ("ci", None, true),
        ] {
            assert_eq!(name_fits(name, tenant), fits, "{name} in {tenant:?}");
        }
        assert_eq!(in_namespace("ci", "tenant-a").as_deref(), Ok("tenant-a:ci"));
        assert_eq!(in_namespace("tenant-a:ci", "tenant-a").as_deref(), Ok("tenant-a:ci"));
        assert!(in_namespace("tenant-b:ci", "tenant-a").unwrap_err().contains("another tenant"));
        assert!(in_namespace("ci", "acme corp").unwrap_err().contains("not a valid key name"));
        assert!(in_namespace(&"x".repeat(128), "t").is_err(), "the namespace counts toward the length");
        // Every name a tenant admin can make fits its tenant and no other.
        for t in ["tenant-a", "t", "a.b"] {
            let n = in_namespace("k", t).unwrap();
            assert!(name_fits(&n, Some(t)) && !name_fits(&n, Some("other")) && !name_fits(&n, None));
        }
        assert!(name_has_prefix("tenant-a:team-a-ci", "team-a-") && name_has_prefix("team-a-ci", "team-a-"));
        assert!(name_has_prefix("tenant-a:ci", "tenant-a:") && !name_has_prefix("tenant-a:ci", "team-a-"));
    }
}
