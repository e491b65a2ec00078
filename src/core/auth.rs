//! Admin principals: who is calling the admin plane, with which role and scope, and the pure
//! decisions made from that (may it write? may it see this key, row or tenant?). The shell resolves
//! a request's credential into a `Principal` once (master secret, `[[gateway.admin_tokens]]`, and —
//! through the same type — OIDC and trusted-proxy SSO); every handler receives it and asks it.
//!
//! Invariants: an unscoped principal has no tenant and no prefixes; a scoped principal's narrowing
//! only ever removes visibility (`narrow_*` returns `None` for "nothing visible", never widens);
//! admin secrets are compared as digests in constant time and every configured secret is compared
//! (no early exit that would reveal which one matched).

use crate::core::credential::ct_eq;
use crate::core::keys::name_has_prefix;

/// What a principal may do: `viewer` reads, `admin` also writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Admin,
}

impl Role {
    /// `viewer` or `admin`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Self::Viewer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Admin => "admin",
        }
    }
}

/// How a principal authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `PRODEX_GATEWAY_TOKEN`: unscoped admin.
    Master,
    /// A `[[gateway.admin_tokens]]` entry.
    AdminToken,
    /// A verified OIDC/JWT bearer.
    Oidc,
    /// Headers injected by a trusted SSO proxy.
    SsoProxy,
}

impl Source {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::AdminToken => "admin_token",
            Self::Oidc => "oidc",
            Self::SsoProxy => "sso_proxy",
        }
    }
}

/// An authenticated admin caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Display name (an admin token's `name`, a user's e-mail); never a credential.
    pub name: String,
    pub source: Source,
    pub role: Role,
    /// `Some`: sees and touches only this tenant's keys, rows, series, users and audit entries.
    pub tenant_id: Option<String>,
    /// Non-empty: further narrowed to key names starting with one of these.
    pub key_prefixes: Vec<String>,
}

/// One configured admin credential, as the shell hands it to `authenticate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminCredential {
    pub name: String,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    pub role: Role,
    pub tenant_id: Option<String>,
    pub key_prefixes: Vec<String>,
}

/// Why a request was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No credential at all.
    Missing,
    /// A credential that matches nothing configured for the admin plane (virtual keys included),
    /// or identity claims that are unusable (no user, unknown role).
    Unknown,
    /// The user is provisioned through SCIM and deactivated.
    Inactive,
    /// Neither the identity provider nor a SCIM user says which tenant the user belongs to, and
    /// the configuration sets no default scope: no tenant's data is opened by default.
    NoScope,
}

/// What an identity-provider principal gets when neither its claims nor a SCIM user name a
/// tenant (`[gateway.sso] default_tenant_id` / `default_unscoped`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DefaultScope {
    /// Refused (the default): an unknown user never sees every tenant.
    #[default]
    Refuse,
    Tenant(String),
    /// Every tenant, as the operator explicitly chose.
    Unscoped,
}

impl Principal {
    /// The master secret's principal.
    #[must_use]
    pub fn master() -> Self {
        Self {
            name: "_gateway".into(),
            source: Source::Master,
            role: Role::Admin,
            tenant_id: None,
            key_prefixes: vec![],
        }
    }

    /// Whether anything narrows what this principal sees.
    #[must_use]
    pub fn scoped(&self) -> bool {
        self.tenant_id.is_some() || !self.key_prefixes.is_empty()
    }

    #[must_use]
    pub fn can_write(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether a key (or a row or series attributed to it) named `name` in `tenant` is in scope.
    #[must_use]
    pub fn sees(&self, name: &str, tenant: Option<&str>) -> bool {
        self.tenant_id.as_deref().is_none_or(|t| tenant == Some(t)) && name_in(&self.key_prefixes, name)
    }

    /// The tenant filter to apply given what the caller asked for: `None` = nothing visible.
    #[must_use]
    pub fn narrow_tenant(&self, requested: Option<&str>) -> Option<Option<String>> {
        match (self.tenant_id.as_deref(), requested) {
            (Some(own), Some(asked)) if own != asked => None,
            (Some(own), _) => Some(Some(own.to_string())),
            (None, asked) => Some(asked.map(String::from)),
        }
    }

    /// The name prefixes to apply given a requested prefix: `None` = nothing visible; an empty
    /// list = every name.
    #[must_use]
    pub fn narrow_prefixes(&self, requested: Option<&str>) -> Option<Vec<String>> {
        let Some(asked) = requested else { return Some(self.key_prefixes.clone()) };
        if self.key_prefixes.is_empty() {
            return Some(vec![asked.to_string()]);
        }
        // Names starting with `asked` and with one of ours: the longer prefix of each compatible pair.
        let narrowed: Vec<String> = self
            .key_prefixes
            .iter()
            .filter_map(|own| {
                if asked.starts_with(own.as_str()) {
                    Some(asked.to_string())
                } else if own.starts_with(asked) {
                    Some(own.clone())
                } else {
                    None
                }
            })
            .collect();
        if narrowed.is_empty() {
            None
        } else {
            Some(narrowed)
        }
    }
}

/// What a trusted SSO proxy (or, later, a verified OIDC token) says about the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// The user (e-mail or login); required.
    pub user: String,
    pub role: Option<String>,
    pub tenant_id: Option<String>,
    /// `None` = not stated; `Some(empty)` = stated as "no prefixes".
    pub key_prefixes: Option<Vec<String>>,
}

/// A SCIM user's say in a principal (looked up by `userName`).
#[derive(Clone, Copy, Debug)]
pub struct Provisioned<'a> {
    pub active: bool,
    pub role: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub key_prefixes: &'a [String],
    /// Provisioned by a tenant-scoped admin: it speaks only for principals whose tenant is already
    /// known (stated by the identity provider, or the default scope's), never assigns one.
    pub confined: bool,
}

/// Which of the SCIM records named like the user speaks for it. Names are unique per tenant, so
/// there is at most one per tenant: the stated tenant's; with no stated tenant, the one record an
/// unscoped admin provisioned (`!confined`), else the default tenant's. Several unconfined records
/// in different tenants and no stated tenant is ambiguous: none speaks.
#[must_use]
pub fn speaking<'a>(
    stated_tenant: Option<&str>,
    default_scope: &DefaultScope,
    records: &[Provisioned<'a>],
) -> Option<Provisioned<'a>> {
    let of = |t: &str| records.iter().copied().find(|u| u.tenant_id == Some(t));
    if let Some(t) = stated_tenant {
        return of(t);
    }
    let mut assigned = records.iter().copied().filter(|u| !u.confined);
    match (assigned.next(), assigned.next()) {
        (Some(u), None) => Some(u),
        (Some(_), Some(_)) => None,
        (None, _) => match default_scope {
            DefaultScope::Tenant(t) => of(t),
            DefaultScope::Refuse | DefaultScope::Unscoped => None,
        },
    }
}

/// The principal for identity-provider claims: stated values first, then those of the SCIM user
/// that speaks for it ([`speaking`]), then `default_role`; the tenant from the claims, else the
/// SCIM user's (a SCIM user provisioned without one is unscoped, as its unscoped provisioner
/// chose), else `default_scope`. An inactive SCIM user, an empty user, an unknown role or no scope
/// at all is refused.
pub fn federated(
    source: Source,
    claims: &Claims,
    records: &[Provisioned<'_>],
    default_role: Role,
    default_scope: &DefaultScope,
) -> Result<Principal, Denial> {
    let user = claims.user.trim();
    if user.is_empty() || user.chars().any(char::is_control) {
        return Err(Denial::Unknown);
    }
    // Whoever provisioned a name first cannot lock out or re-scope a person of another tenant.
    let scim = speaking(claims.tenant_id.as_deref(), default_scope, records);
    if scim.is_some_and(|u| !u.active) {
        return Err(Denial::Inactive);
    }
    let role = match claims.role.as_deref().or(scim.and_then(|u| u.role)) {
        Some(r) => Role::parse(r).ok_or(Denial::Unknown)?,
        None => default_role,
    };
    let tenant_id = match (&claims.tenant_id, scim) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(u)) => u.tenant_id.map(String::from),
        (None, None) => match default_scope {
            DefaultScope::Refuse => return Err(Denial::NoScope),
            DefaultScope::Tenant(t) => Some(t.clone()),
            DefaultScope::Unscoped => None,
        },
    };
    let key_prefixes = match &claims.key_prefixes {
        Some(p) => p.clone(),
        None => scim.map(|u| u.key_prefixes.to_vec()).unwrap_or_default(),
    };
    Ok(Principal { name: user.to_string(), source, role, tenant_id, key_prefixes })
}

/// A comma-separated header list (`team-a-, team-b-`), blanks dropped.
#[must_use]
pub fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Whether `name` starts with one of `prefixes` (an empty list allows every name).
#[must_use]
pub fn name_in(prefixes: &[String], name: &str) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| name_has_prefix(name, p))
}

/// Resolves a presented credential's digest against the master secret and the admin tokens.
/// Every configured digest is compared, in constant time each.
pub fn authenticate(
    presented: Option<&[u8; 32]>,
    master: Option<&[u8; 32]>,
    tokens: &[AdminCredential],
) -> Result<Principal, Denial> {
    let Some(presented) = presented else { return Err(Denial::Missing) };
    let is_master = master.is_some_and(|m| ct_eq(presented, m));
    let mut found: Option<&AdminCredential> = None;
    for t in tokens {
        if ct_eq(presented, &t.digest) && found.is_none() {
            found = Some(t);
        }
    }
    if is_master {
        return Ok(Principal::master());
    }
    found
        .map(|t| Principal {
            name: t.name.clone(),
            source: Source::AdminToken,
            role: t.role,
            tenant_id: t.tenant_id.clone(),
            key_prefixes: t.key_prefixes.clone(),
        })
        .ok_or(Denial::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::credential::digest;

    fn principal(tenant: Option<&str>, prefixes: &[&str]) -> Principal {
        Principal {
            name: "p".into(),
            source: Source::AdminToken,
            role: Role::Viewer,
            tenant_id: tenant.map(String::from),
            key_prefixes: prefixes.iter().map(|p| (*p).to_string()).collect(),
        }
    }

    #[test]
    fn master_wins_then_tokens_then_denial() {
        let tokens = vec![AdminCredential {
            name: "auditor".into(),
            digest: digest("aud"),
            role: Role::Viewer,
            tenant_id: Some("tenant-a".into()),
            key_prefixes: vec!["team-a-".into()],
        }];
        let master = digest("m");
        assert_eq!(authenticate(Some(&digest("m")), Some(&master), &tokens), Ok(Principal::master()));
        let p = authenticate(Some(&digest("aud")), Some(&master), &tokens).unwrap();
        assert_eq!((p.name.as_str(), p.role, p.source), ("auditor", Role::Viewer, Source::AdminToken));
        assert!(p.scoped() && !p.can_write());
        assert_eq!(authenticate(Some(&digest("x")), Some(&master), &tokens), Err(Denial::Unknown));
        assert_eq!(authenticate(None, Some(&master), &tokens), Err(Denial::Missing));
        assert_eq!(authenticate(Some(&digest("m")), None, &[]), Err(Denial::Unknown));
    }

    #[test]
    fn visibility_follows_tenant_and_prefixes() {
        let cases = [
            (principal(None, &[]), "b-x", Some("tenant-b"), true),
            (principal(None, &[]), "k", None, true),
            (principal(Some("tenant-a"), &[]), "a-1", Some("tenant-a"), true),
            (principal(Some("tenant-a"), &[]), "a-1", Some("tenant-b"), false),
            (principal(Some("tenant-a"), &[]), "a-1", None, false),
            (principal(Some("tenant-a"), &["team-a-"]), "team-a-ci", Some("tenant-a"), true),
            (principal(Some("tenant-a"), &["team-a-"]), "team-b-ci", Some("tenant-a"), false),
            (principal(None, &["x-", "y-"]), "y-1", None, true),
        ];
        for (p, name, tenant, want) in cases {
            assert_eq!(p.sees(name, tenant), want, "{p:?} {name} {tenant:?}");
        }
    }

    #[test]
    fn narrowing_never_widens() {
        let a = principal(Some("tenant-a"), &["team-a-"]);
        assert_eq!(a.narrow_tenant(None), Some(Some("tenant-a".into())));
        assert_eq!(a.narrow_tenant(Some("tenant-a")), Some(Some("tenant-a".into())));
        assert_eq!(a.narrow_tenant(Some("tenant-b")), None);
        assert_eq!(principal(None, &[]).narrow_tenant(Some("t")), Some(Some("t".into())));
        assert_eq!(principal(None, &[]).narrow_tenant(None), Some(None));
        assert_eq!(a.narrow_prefixes(None), Some(vec!["team-a-".into()]));
        assert_eq!(a.narrow_prefixes(Some("team-a-ci")), Some(vec!["team-a-ci".into()]));
        assert_eq!(a.narrow_prefixes(Some("team")), Some(vec!["team-a-".into()]));
        assert_eq!(a.narrow_prefixes(Some("team-b-")), None);
        assert_eq!(principal(None, &[]).narrow_prefixes(Some("q")), Some(vec!["q".into()]));
        assert_eq!(principal(None, &[]).narrow_prefixes(None), Some(vec![]));
    }

    #[test]
    fn federated_claims_fall_back_to_scim_then_default() {
        let claims = |role: Option<&str>, tenant: Option<&str>, prefixes: Option<&[&str]>| Claims {
            user: "ada@example.com".into(),
            role: role.map(String::from),
            tenant_id: tenant.map(String::from),
            key_prefixes: prefixes.map(|p| p.iter().map(|s| (*s).to_string()).collect()),
        };
        let prefixes = vec!["team-a-".to_string()];
        let scim = Provisioned {
            active: true,
            role: Some("admin"),
            tenant_id: Some("tenant-a"),
            key_prefixes: &prefixes,
            confined: false,
        };
        let refuse = DefaultScope::Refuse;
        let p = federated(Source::SsoProxy, &claims(None, None, None), &[scim], Role::Viewer, &refuse).unwrap();
        assert_eq!((p.role, p.tenant_id.as_deref(), p.key_prefixes.len()), (Role::Admin, Some("tenant-a"), 1));
        let p =
            federated(Source::SsoProxy, &claims(Some("viewer"), Some("t-b"), Some(&[])), &[scim], Role::Admin, &refuse)
                .unwrap();
        assert_eq!((p.role, p.tenant_id.as_deref(), p.key_prefixes.len()), (Role::Viewer, Some("t-b"), 0));
        // No tenant from the headers and no SCIM user: refused unless a default scope is set.
        assert_eq!(
            federated(Source::SsoProxy, &claims(None, None, None), &[], Role::Viewer, &refuse),
            Err(Denial::NoScope)
        );
        assert_eq!(
            federated(Source::SsoProxy, &claims(Some("admin"), None, None), &[], Role::Viewer, &refuse),
            Err(Denial::NoScope)
        );
        let p =
            federated(Source::SsoProxy, &claims(None, None, None), &[], Role::Viewer, &DefaultScope::Unscoped).unwrap();
        assert_eq!((p.role, p.scoped(), p.source), (Role::Viewer, false, Source::SsoProxy));
        let home = DefaultScope::Tenant("t-h".into());
        let p = federated(Source::SsoProxy, &claims(None, None, None), &[], Role::Viewer, &home).unwrap();
        assert_eq!(p.tenant_id.as_deref(), Some("t-h"));
        let unscoped_scim = Provisioned { tenant_id: None, ..scim };
        let p =
            federated(Source::SsoProxy, &claims(None, None, None), &[unscoped_scim], Role::Viewer, &refuse).unwrap();
        assert_eq!(p.tenant_id, None, "provisioned without a tenant by an unscoped admin: no default applies");
        // Another tenant's record of the same name is ignored when the tenant is stated.
        let squatted = Provisioned { active: false, tenant_id: Some("tenant-x"), ..scim };
        let p = federated(Source::SsoProxy, &claims(None, Some("tenant-a"), None), &[squatted], Role::Viewer, &refuse)
            .unwrap();
        assert_eq!((p.role, p.tenant_id.as_deref(), p.key_prefixes.len()), (Role::Viewer, Some("tenant-a"), 0));
        let inactive = Provisioned { active: false, ..scim };
        assert_eq!(
            federated(Source::SsoProxy, &claims(Some("admin"), None, None), &[inactive], Role::Viewer, &refuse),
            Err(Denial::Inactive)
        );
        assert_eq!(
            federated(Source::SsoProxy, &claims(Some("root"), None, None), &[], Role::Viewer, &home),
            Err(Denial::Unknown)
        );
        let nobody = Claims { user: " ".into(), ..Claims::default() };
        assert_eq!(federated(Source::SsoProxy, &nobody, &[], Role::Viewer, &home), Err(Denial::Unknown));
        assert_eq!(split_list(" team-a-, ,team-b-"), vec!["team-a-".to_string(), "team-b-".to_string()]);
    }

    #[test]
    fn only_the_right_scim_record_speaks_for_a_person() {
        let rec = |tenant: Option<&'static str>, confined: bool| Provisioned {
            active: true,
            role: None,
            tenant_id: tenant,
            key_prefixes: &[],
            confined,
        };
        let (a_op, a_own, b_own, none_op) =
            (rec(Some("a"), false), rec(Some("a"), true), rec(Some("b"), true), rec(None, false));
        let home = DefaultScope::Tenant("b".into());
        let refuse = DefaultScope::Refuse;
        // (stated tenant, default scope, records) → the tenant of the record that speaks.
        type Case<'a> = (Option<&'a str>, &'a DefaultScope, Vec<Provisioned<'a>>, Option<Option<&'a str>>);
        let cases: Vec<Case<'_>> = vec![
            (Some("a"), &refuse, vec![a_own, b_own], Some(Some("a"))),
            (Some("b"), &refuse, vec![a_op], None),
            (Some("c"), &home, vec![a_op, b_own], None),
            // No stated tenant: an operator-provisioned record assigns the tenant…
            (None, &refuse, vec![a_op, b_own], Some(Some("a"))),
            (None, &refuse, vec![none_op], Some(None)),
            // …a tenant admin's record never does (the squatting case) unless it is the default's.
            (None, &refuse, vec![a_own], None),
            (None, &DefaultScope::Unscoped, vec![a_own], None),
            (None, &home, vec![a_own, b_own], Some(Some("b"))),
            // Two operator records in different tenants: ambiguous, none speaks.
            (None, &home, vec![a_op, rec(Some("b"), false)], None),
            (None, &refuse, vec![], None),
        ];
        for (stated, scope, records, want) in cases {
            let got = speaking(stated, scope, &records).map(|u| u.tenant_id);
            assert_eq!(got, want, "stated {stated:?}, scope {scope:?}, records {records:?}");
        }
        // A tenant admin who provisions and deactivates another team's person cannot lock it out.
        let squat = Provisioned { active: false, ..a_own };
        let claims = Claims { user: "boss@corp".into(), ..Claims::default() };
        let p = federated(Source::SsoProxy, &claims, &[squat], Role::Viewer, &DefaultScope::Unscoped).unwrap();
        assert_eq!(p.tenant_id, None);
        assert_eq!(federated(Source::SsoProxy, &claims, &[squat], Role::Viewer, &refuse), Err(Denial::NoScope));
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(Role::parse(" Admin "), Some(Role::Admin));
        assert_eq!(Role::parse("viewer"), Some(Role::Viewer));
        assert_eq!(Role::parse("root"), None);
        assert!(Role::Admin > Role::Viewer);
    }
}
