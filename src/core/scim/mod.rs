//! SCIM 2.0 (RFC 7643 / RFC 7644) Users for the admin plane: errors, POST/PUT bodies parsed into
//! [`UserFields`], the User resource and list responses as JSON. Filters live in `filter`, PATCH in
//! `patch`, the discovery documents in `discovery`; the shell does storage, uniqueness, ETags,
//! paging and scoping.
//!
//! Invariants: only stored attributes are read or written — role, tenant and key prefixes live in
//! the extension [`EXTENSION`]; attribute names and schema URNs match case-insensitively; every
//! value passes the same limits whether it arrives by POST, PUT or PATCH; `id`, `meta`, `version`
//! and timestamps are never taken from a body; nothing here panics on any input.

mod discovery;
mod filter;
mod patch;

use std::fmt;

use serde_json::{json, Map, Value};

use crate::core::directory::ScimUser;
use crate::core::time::format_rfc3339;

pub use discovery::{resource_types, schemas, service_provider_config, MAX_RESULTS};
pub use filter::{
    matches, parse_filter, user_name_eq, Attr, Filter, Multi, Op, Operand, Sub, MAX_DEPTH, MAX_FILTER_LEN,
};
pub use patch::{apply_patch, MAX_OPERATIONS, PATCH_OP};

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The gateway's User extension: `role`, `tenantId`, `keyPrefixes`.
pub const EXTENSION: &str = "urn:prodex:params:scim:schemas:gateway:2.0:User";

/// Every attribute of [`EXTENSION`].
pub const EXTENSION_ATTRIBUTES: [&str; 3] = ["role", "tenantId", "keyPrefixes"];

/// 400 `invalidValue` for an attribute the gateway's extension does not define.
pub(crate) fn unknown_extension_attribute(name: &str) -> ScimError {
    invalid_value(format!(
        "unknown attribute `{name}` in `{EXTENSION}` (its attributes are {})",
        EXTENSION_ATTRIBUTES.join(", ")
    ))
}
/// The enterprise User extension: accepted and ignored (nothing of it is stored).
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Longest `userName`, `externalId`, `displayName`, email or `tenantId`, in characters.
pub const MAX_TEXT: usize = 256;
pub const MAX_EMAILS: usize = 16;
pub const MAX_PREFIXES: usize = 32;
/// Longest key prefix, in characters.
pub const MAX_PREFIX_LEN: usize = 128;

/// A SCIM error (RFC 7644 §3.12): HTTP status, optional `scimType`, human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    /// `invalidFilter`, `invalidSyntax`, `invalidPath`, `invalidValue`, `mutability`, `uniqueness`,
    /// `noTarget`, `tooMany`, …
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    /// A `400 Bad Request` with this `scimType`.
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError { status: 400, scim_type: Some(scim_type), detail: detail.into() }
    }
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scim_type {
            Some(t) => write!(f, "{} {t}: {}", self.status, self.detail),
            None => write!(f, "{}: {}", self.status, self.detail),
        }
    }
}

impl std::error::Error for ScimError {}

/// The error response body; `status` is a string, as RFC 7644 shows it.
#[must_use]
pub fn error_json(e: &ScimError) -> Value {
    let mut out = json!({"schemas": [ERROR_SCHEMA], "status": e.status.to_string(), "detail": e.detail});
    if let (Some(t), Some(obj)) = (e.scim_type, out.as_object_mut()) {
        obj.insert("scimType".into(), t.into());
    }
    out
}

/// The fields of a POST or PUT body, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFields {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    /// Primary first, no case-insensitive duplicates.
    pub emails: Vec<String>,
    pub active: bool,
    /// `viewer` or `admin`.
    pub role: Option<String>,
    pub tenant_id: Option<String>,
    pub key_prefixes: Vec<String>,
}

impl UserFields {
    /// Replaces every client-writable field of `u` (PUT semantics); id, version and timestamps
    /// stay as they are.
    pub fn apply(self, u: &mut ScimUser) {
        u.user_name = self.user_name;
        u.external_id = self.external_id;
        u.display_name = self.display_name;
        u.emails = self.emails;
        u.active = self.active;
        u.role = self.role;
        u.tenant_id = self.tenant_id;
        u.key_prefixes = self.key_prefixes;
    }
}

/// Parses a POST or PUT body. Unknown attributes and schemas, and the read-only `id` and `meta`,
/// are ignored, as are the URNs in `schemas` (which must still be a list of strings);
/// `displayName` falls back to `name.formatted`; `active` defaults to true.
pub fn parse_user(body: &Value) -> Result<UserFields, ScimError> {
    let obj = body.as_object().ok_or_else(|| ScimError::bad("invalidSyntax", "the body must be a JSON object"))?;
    check_schemas(obj)?;
    let user_name = user_name(field(obj, "userName").unwrap_or(&Value::Null))?;
    // `name` is checked even when `displayName` wins: what is accepted is what the document allows.
    let formatted = field(obj, "name").map(name_formatted).transpose()?.flatten();
    let display_name = match field(obj, "displayName").map(|v| text("displayName", v, MAX_TEXT)).transpose()? {
        Some(Some(d)) => Some(d),
        _ => formatted,
    };
    let ext = match field(obj, EXTENSION) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid_value(format!("`{EXTENSION}` must be an object"))),
    };
    // The extension carries security attributes: a misspelt one must not silently leave an admin
    // unscoped (core attributes this gateway does not store are still ignored, per RFC 7643).
    if let Some(unknown) = ext.keys().find(|k| !EXTENSION_ATTRIBUTES.iter().any(|a| a.eq_ignore_ascii_case(k))) {
        return Err(unknown_extension_attribute(unknown));
    }
    // Names match in any case, so one attribute may come twice (`role`, `ROLE`): every spelling
    // must hold a valid value, and the exact spelling (else the first) is the one kept.
    for (k, v) in &ext {
        if k.eq_ignore_ascii_case("role") {
            role(v)?;
        } else if k.eq_ignore_ascii_case("tenantId") {
            text("tenantId", v, MAX_TEXT)?;
        } else {
            check_lists(&[], &prefix_values(v)?)?;
        }
    }
    let fields = UserFields {
        user_name,
        external_id: field(obj, "externalId").map(|v| text("externalId", v, MAX_TEXT)).transpose()?.flatten(),
        display_name,
        emails: field(obj, "emails").map(email_values).transpose()?.unwrap_or_default(),
        active: match field(obj, "active") {
            None | Some(Value::Null) => true,
            Some(v) => flag("active", v)?,
        },
        role: field(&ext, "role").map(role).transpose()?.flatten(),
        tenant_id: field(&ext, "tenantId").map(|v| text("tenantId", v, MAX_TEXT)).transpose()?.flatten(),
        key_prefixes: field(&ext, "keyPrefixes").map(prefix_values).transpose()?.unwrap_or_default(),
    };
    check_lists(&fields.emails, &fields.key_prefixes)?;
    Ok(fields)
}

/// The `ETag` of a user: `W/"<version>"`.
#[must_use]
pub fn etag(u: &ScimUser) -> String {
    format!("W/\"{}\"", u.version)
}

/// The User resource as returned; `base` is the SCIM root URL (`…/scim/v2`). Stored emails are
/// rendered as `work` emails, the first one primary.
#[must_use]
pub fn user_json(u: &ScimUser, base: &str) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([USER_SCHEMA, EXTENSION]));
    out.insert("id".into(), u.id.clone().into());
    if let Some(x) = &u.external_id {
        out.insert("externalId".into(), x.clone().into());
    }
    out.insert("userName".into(), u.user_name.clone().into());
    if let Some(d) = &u.display_name {
        out.insert("displayName".into(), d.clone().into());
        out.insert("name".into(), json!({"formatted": d}));
    }
    if !u.emails.is_empty() {
        let emails = u.emails.iter().enumerate().map(|(i, e)| json!({"value": e, "type": "work", "primary": i == 0}));
        out.insert("emails".into(), Value::Array(emails.collect()));
    }
    out.insert("active".into(), u.active.into());
    let mut ext = Map::new();
    if let Some(r) = &u.role {
        ext.insert("role".into(), r.clone().into());
    }
    if let Some(t) = &u.tenant_id {
        ext.insert("tenantId".into(), t.clone().into());
    }
    if !u.key_prefixes.is_empty() {
        ext.insert("keyPrefixes".into(), json!(u.key_prefixes));
    }
    out.insert(EXTENSION.into(), Value::Object(ext));
    let meta = json!({
        "resourceType": "User",
        "created": format_rfc3339(u.created_at),
        "lastModified": format_rfc3339(u.updated_at),
        "version": etag(u),
        "location": format!("{}/Users/{}", base.trim_end_matches('/'), u.id),
    });
    out.insert("meta".into(), meta);
    Value::Object(out)
}

/// A ListResponse (RFC 7644 §3.4.2): one page of resources, the total across pages, and the
/// 1-based index of the first one.
#[must_use]
pub fn list_json(resources: &[Value], total: usize, start_index: usize) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// Which schema an attribute path (lowercased) belongs to, and the rest of it.
enum Scope<'a> {
    /// A core attribute (with or without the core URN prefix), or a short extension name.
    Core(&'a str),
    /// Under [`EXTENSION`]; empty for the extension itself.
    Extension(&'a str),
    /// Under [`ENTERPRISE`]: nothing of it is stored.
    Enterprise,
    /// Another schema's URN.
    Foreign,
}

fn resolve_scope(lower: &str) -> Scope<'_> {
    if let Some(rest) = strip_urn(lower, EXTENSION) {
        Scope::Extension(rest)
    } else if let Some(rest) = strip_urn(lower, USER_SCHEMA) {
        Scope::Core(rest)
    } else if strip_urn(lower, ENTERPRISE).is_some() {
        Scope::Enterprise
    } else if lower.contains(':') {
        Scope::Foreign
    } else {
        Scope::Core(lower)
    }
}

/// `urn` itself → `""`; `urn:rest` → `rest`.
fn strip_urn<'a>(path: &'a str, urn: &str) -> Option<&'a str> {
    let head = path.get(..urn.len())?;
    let rest = path.get(urn.len()..)?;
    if !head.eq_ignore_ascii_case(urn) {
        None
    } else if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix(':')
    }
}

/// Core User attributes (RFC 7643 §4.1) the gateway does not store; `rest` is lowercase.
fn unstored(rest: &str) -> bool {
    const UNSTORED: [&str; 16] = [
        "nickname",
        "profileurl",
        "title",
        "usertype",
        "preferredlanguage",
        "locale",
        "timezone",
        "password",
        "phonenumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509certificates",
    ];
    const NAME_PARTS: [&str; 5] = ["familyname", "givenname", "middlename", "honorificprefix", "honorificsuffix"];
    match rest.split_once('.') {
        Some(("name", sub)) => NAME_PARTS.contains(&sub),
        Some((head, _)) => UNSTORED.contains(&head),
        None => UNSTORED.contains(&rest),
    }
}

/// `schemas`, when present, is a list of strings (RFC 7643 §3); the URNs themselves are not checked.
fn check_schemas(obj: &Map<String, Value>) -> Result<(), ScimError> {
    match field(obj, "schemas") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(urns)) if urns.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(ScimError::bad("invalidSyntax", "`schemas` must be a list of schema URNs")),
    }
}

/// An object's member by case-insensitive name.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidValue", detail)
}

/// An optional string: `null` and `""` are unassigned; at most `max` characters, no control
/// characters.
fn text(name: &str, v: &Value, max: usize) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.chars().count() > max => {
            Err(invalid_value(format!("`{name}` is longer than {max} characters")))
        }
        Value::String(s) if s.chars().any(char::is_control) => {
            Err(invalid_value(format!("`{name}` contains control characters")))
        }
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(invalid_value(format!("`{name}` must be a string"))),
    }
}

fn user_name(v: &Value) -> Result<String, ScimError> {
    match text("userName", v, MAX_TEXT)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid_value(format!("`userName` is required: 1-{MAX_TEXT} printable characters"))),
    }
}

/// A boolean; also the strings `"True"`/`"False"` that Azure AD sends.
fn flag(name: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid_value(format!("`{name}` must be a boolean"))),
    }
}

fn role(v: &Value) -> Result<Option<String>, ScimError> {
    match text("role", v, MAX_TEXT)?.map(|r| r.to_ascii_lowercase()) {
        Some(r) if r != "viewer" && r != "admin" => Err(invalid_value("`role` must be `viewer` or `admin`")),
        r => Ok(r),
    }
}

/// `name.formatted` of a `name` object.
fn name_formatted(v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => {
            field(o, "formatted").map(|f| text("name.formatted", f, MAX_TEXT)).transpose().map(Option::flatten)
        }
        _ => Err(invalid_value("`name` must be an object")),
    }
}

/// The items of a multi-valued attribute: an array, or (as some clients send in PATCH) one item;
/// an item is `{"value": …}` or the bare value.
fn items(v: &Value) -> Vec<(&Value, Option<&Value>)> {
    fn item(i: &Value) -> (&Value, Option<&Value>) {
        match i {
            Value::Object(o) => (field(o, "value").unwrap_or(&Value::Null), field(o, "primary")),
            other => (other, None),
        }
    }
    match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(item).collect(),
        other => vec![item(other)],
    }
}

/// Email addresses, primary first, without case-insensitive duplicates.
fn email_values(v: &Value) -> Result<Vec<String>, ScimError> {
    let items = items(v);
    if items.len() > MAX_EMAILS {
        return Err(invalid_value(format!("at most {MAX_EMAILS} emails")));
    }
    let mut found = Vec::new();
    for (value, primary) in items {
        let value = text("emails.value", value, MAX_TEXT)?.ok_or_else(|| invalid_value("every email needs a value"))?;
        let primary = primary.filter(|p| !p.is_null()).map(|p| flag("emails.primary", p)).transpose()?;
        found.push((value, primary.unwrap_or(false)));
    }
    found.sort_by_key(|(_, primary)| !primary);
    let mut out = Vec::new();
    merge(&mut out, found.into_iter().map(|(v, _)| v), true);
    Ok(out)
}

/// Key-name prefixes, without duplicates.
fn prefix_values(v: &Value) -> Result<Vec<String>, ScimError> {
    let items = items(v);
    if items.len() > MAX_PREFIXES {
        return Err(invalid_value(format!("at most {MAX_PREFIXES} keyPrefixes")));
    }
    let mut out = Vec::new();
    for (value, _) in items {
        let p =
            text("keyPrefixes", value, MAX_PREFIX_LEN)?.ok_or_else(|| invalid_value("a key prefix cannot be empty"))?;
        merge(&mut out, [p], false);
    }
    Ok(out)
}

/// Appends the values not already in `list` (case-insensitively when `fold`).
fn merge(list: &mut Vec<String>, new: impl IntoIterator<Item = String>, fold: bool) {
    for v in new {
        if !list.iter().any(|x| if fold { x.to_lowercase() == v.to_lowercase() } else { *x == v }) {
            list.push(v);
        }
    }
}

fn check_lists(emails: &[String], prefixes: &[String]) -> Result<(), ScimError> {
    if emails.len() > MAX_EMAILS {
        Err(invalid_value(format!("at most {MAX_EMAILS} emails")))
    } else if prefixes.len() > MAX_PREFIXES {
        Err(invalid_value(format!("at most {MAX_PREFIXES} keyPrefixes")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> ScimUser {
        ScimUser {
            id: "u-1".into(),
            user_name: "bjensen@example.com".into(),
            external_id: Some("00u1ab".into()),
            display_name: Some("Barbara Jensen".into()),
            emails: vec!["bjensen@example.com".into(), "babs@example.org".into()],
            active: false,
            role: Some("viewer".into()),
            tenant_id: Some("tenant-a".into()),
            key_prefixes: vec!["team-a-".into()],
            confined: false,
            version: 7,
            created_at: 1_798_761_600_000,
            updated_at: 1_798_761_600_123,
        }
    }

    #[test]
    fn user_json_round_trips_through_parse_user() {
        for u in [stored(), ScimUser { id: "u-2".into(), user_name: "x".into(), active: true, ..ScimUser::default() }] {
            let j = user_json(&u, "https://gw.example/v1/prodex/gateway/scim/v2/");
            let mut back = ScimUser {
                id: u.id.clone(),
                version: u.version,
                created_at: u.created_at,
                updated_at: u.updated_at,
                ..ScimUser::default()
            };
            parse_user(&j).unwrap().apply(&mut back);
            assert_eq!(back, u);
        }
        let j = user_json(&stored(), "https://gw.example/scim/v2/");
        assert_eq!(j["meta"]["location"], "https://gw.example/scim/v2/Users/u-1");
        assert_eq!(j["meta"]["version"], "W/\"7\"");
        assert_eq!(j["meta"]["created"], "2027-01-01T00:00:00.000Z");
        assert_eq!(j["meta"]["lastModified"], "2027-01-01T00:00:00.123Z");
        assert_eq!(j["name"]["formatted"], "Barbara Jensen");
        assert_eq!(j["emails"][0], json!({"value": "bjensen@example.com", "type": "work", "primary": true}));
        assert_eq!(j["emails"][1]["primary"], false);
        assert_eq!(j[EXTENSION], json!({"role": "viewer", "tenantId": "tenant-a", "keyPrefixes": ["team-a-"]}));
        assert_eq!(j["schemas"], json!([USER_SCHEMA, EXTENSION]));
    }

    #[test]
    fn parses_bodies_as_idps_send_them() {
        let okta = json!({
            "schemas": [USER_SCHEMA], "userName": "isaac.brock@example.com",
            "name": {"givenName": "Isaac", "familyName": "Brock", "formatted": "Isaac Brock"},
            "emails": [{"primary": true, "value": "isaac.brock@example.com", "type": "work"}],
            "displayName": "", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7", "groups": [],
            "password": "1mz050nq", "active": true,
            "id": "ignored", "meta": {"resourceType": "Nope"}
        });
        let f = parse_user(&okta).unwrap();
        assert_eq!(f.user_name, "isaac.brock@example.com");
        assert_eq!(f.display_name.as_deref(), Some("Isaac Brock"));
        assert_eq!(f.external_id.as_deref(), Some("00ujl29u0le5T6Aj10h7"));
        assert_eq!(f.emails, ["isaac.brock@example.com"]);
        assert!(f.active);
        let azure = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE, EXTENSION],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "UserName": "Test_User_ab6490ee@testuser.com",
            "Active": "False", "displayName": "Test User",
            "emails": [{"Primary": "false", "type": "home", "value": "b@home.example"}, {"primary": true, "type": "work", "value": "Test_User@testuser.com"}, {"value": "TEST_USER@testuser.com"}],
            ENTERPRISE: {"department": "Sales"},
            "urn:prodex:params:scim:schemas:gateway:2.0:user": {"role": "Admin", "tenantId": "t-1", "keyPrefixes": ["a-", "b-", "a-"]}
        });
        let f = parse_user(&azure).unwrap();
        assert_eq!(f.user_name, "Test_User_ab6490ee@testuser.com");
        assert!(!f.active);
        assert_eq!(f.emails, ["Test_User@testuser.com", "b@home.example"]);
        assert_eq!((f.role.as_deref(), f.tenant_id.as_deref()), (Some("admin"), Some("t-1")));
        assert_eq!(f.key_prefixes, ["a-", "b-"]);
        let minimal = parse_user(&json!({"userName": "a"})).unwrap();
        assert_eq!(minimal, UserFields { user_name: "a".into(), active: true, ..UserFields::default() });
    }

    #[test]
    fn refuses_invalid_bodies() {
        let long = "x".repeat(MAX_TEXT + 1);
        let many: Vec<String> = (0..=MAX_EMAILS).map(|i| format!("u{i}@x")).collect();
        let prefixes: Vec<String> = (0..=MAX_PREFIXES).map(|i| format!("p{i}-")).collect();
        let ext = |v: Value| json!({"userName": "a", EXTENSION: v});
        let cases = [
            (json!([]), "invalidSyntax"),
            (json!("userName"), "invalidSyntax"),
            (json!({"userName": "a", "schemas": USER_SCHEMA}), "invalidSyntax"),
            (json!({"userName": "a", "schemas": [USER_SCHEMA, 1]}), "invalidSyntax"),
            (json!({}), "invalidValue"),
            (json!({"userName": ""}), "invalidValue"),
            (json!({"userName": "   "}), "invalidValue"),
            (json!({"userName": 7}), "invalidValue"),
            (json!({"userName": long}), "invalidValue"),
            (json!({"userName": "a\nb"}), "invalidValue"),
            (json!({"userName": "a", "active": "yes"}), "invalidValue"),
            (json!({"userName": "a", "active": 1}), "invalidValue"),
            (json!({"userName": "a", "externalId": 5}), "invalidValue"),
            (json!({"userName": "a", "displayName": ["x"]}), "invalidValue"),
            (json!({"userName": "a", "name": "Barbara"}), "invalidValue"),
            (json!({"userName": "a", "emails": [{"type": "work"}]}), "invalidValue"),
            (json!({"userName": "a", "emails": [{"value": 3}]}), "invalidValue"),
            (json!({"userName": "a", "emails": [{"value": "a@x", "primary": "maybe"}]}), "invalidValue"),
            (json!({"userName": "a", "emails": many}), "invalidValue"),
            (ext(json!("admin")), "invalidValue"),
            (ext(json!({"role": "owner"})), "invalidValue"),
            (ext(json!({"role": true})), "invalidValue"),
            (ext(json!({"tenantId": {}})), "invalidValue"),
            (ext(json!({"keyPrefixes": [""]})), "invalidValue"),
            (ext(json!({"keyPrefixes": ["x".repeat(MAX_PREFIX_LEN + 1)]})), "invalidValue"),
            (ext(json!({"keyPrefixes": prefixes})), "invalidValue"),
            (ext(json!({"keyPrefixes": [1]})), "invalidValue"),
            (ext(json!({"role": "admin", "allowedKeyPrefixes": ["team-a-"]})), "invalidValue"),
            (ext(json!({"tenant": "t"})), "invalidValue"),
            (ext(json!({"tenantId": "t", "TENANTID": {}})), "invalidValue"),
            (ext(json!({"role": "viewer", "ROLE": 5})), "invalidValue"),
        ];
        for (body, want) in cases {
            let e = parse_user(&body).expect_err(&body.to_string());
            assert_eq!((e.status, e.scim_type), (400, Some(want)), "{body}");
        }
    }

    #[test]
    fn errors_and_lists_have_rfc_shapes() {
        let e = ScimError::bad("invalidFilter", "bad");
        assert_eq!(
            error_json(&e),
            json!({"schemas": [ERROR_SCHEMA], "status": "400", "scimType": "invalidFilter", "detail": "bad"})
        );
        let e = ScimError { status: 404, scim_type: None, detail: "no such user".into() };
        assert_eq!(error_json(&e), json!({"schemas": [ERROR_SCHEMA], "status": "404", "detail": "no such user"}));
        assert_eq!(e.to_string(), "404: no such user");
        let l = list_json(&[json!({"id": "a"})], 10, 3);
        assert_eq!(
            l,
            json!({"schemas": [LIST_SCHEMA], "totalResults": 10, "startIndex": 3, "itemsPerPage": 1, "Resources": [{"id": "a"}]})
        );
    }

    #[test]
    fn scopes_and_unstored_attributes() {
        assert!(matches!(resolve_scope("username"), Scope::Core("username")));
        assert!(matches!(resolve_scope(&USER_SCHEMA.to_ascii_lowercase()), Scope::Core("")));
        assert!(matches!(
            resolve_scope("urn:prodex:params:scim:schemas:gateway:2.0:user:role"),
            Scope::Extension("role")
        ));
        assert!(matches!(resolve_scope("urn:prodex:params:scim:schemas:gateway:2.0:user"), Scope::Extension("")));
        assert!(matches!(resolve_scope("urn:prodex:params:scim:schemas:gateway:2.0:userx"), Scope::Foreign));
        assert!(matches!(
            resolve_scope("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager"),
            Scope::Enterprise
        ));
        assert!(unstored("name.givenname") && unstored("addresses") && unstored("phonenumbers.value"));
        assert!(!unstored("name.formatted") && !unstored("name") && !unstored("emails") && !unstored("nick"));
        assert!(strip_urn("é", EXTENSION).is_none());
    }
}
