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

/// Key names: 1–128 of `[A-Za-z0-9._-]`.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
}
