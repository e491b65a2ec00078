//! SCIM PATCH (RFC 7644 §3.5.2) on a stored User: `add`, `replace` and `remove` (op names in any
//! case), with a path (`active`, `emails[type eq "work"].value`, `urn:…:User:role`, …) or without
//! one (a value object whose keys are attribute names or full URN paths, as Azure AD and Okta send).
//!
//! Invariants: operations apply in order to a copy, which is returned only if every one succeeds
//! and the result still passes `parse_user`'s limits (no partial application); `id`, `meta`,
//! `version` and timestamps are never changed (the shell bumps version and `updated_at`); core
//! attributes the gateway does not store (`name.givenName`, `addresses[…]`, the enterprise
//! extension, other schemas' URNs) are accepted and ignored; nothing panics on any input.

use serde_json::{Map, Value};

use crate::core::directory::ScimUser;

use super::filter::{element_matches, parse_value_filter, Filter, Multi, Sub};
use super::{
    check_lists, check_schemas, email_values, field, flag, invalid_value, merge, name_formatted, prefix_values,
    resolve_scope, role, text, unknown_extension_attribute, unstored, user_name, ScimError, Scope, MAX_TEXT,
};

/// The PATCH request schema.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Most operations in one request.
pub const MAX_OPERATIONS: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Add,
    Replace,
    Remove,
}

/// What a path designates.
enum Target {
    UserName,
    ExternalId,
    DisplayName,
    /// The `name` object (only `formatted` is stored, as the display name).
    Name,
    Active,
    Role,
    TenantId,
    /// `emails`, optionally narrowed by a value filter, optionally `.value`.
    Emails(Option<Filter>, Option<Sub>),
    KeyPrefixes(Option<Filter>),
    /// The extension object as a whole.
    Extension,
    /// `id`, `meta`, `schemas`: refused on an explicit path, skipped as a key of a path-less value.
    ReadOnly,
    /// Not stored: accepted and ignored.
    Ignored,
}

/// Applies a PatchOp body to a copy of `u` and returns it.
pub fn apply_patch(u: &ScimUser, body: &Value) -> Result<ScimUser, ScimError> {
    let obj = body.as_object().ok_or_else(|| syntax("the body must be a JSON object"))?;
    check_schemas(obj)?;
    let ops = match field(obj, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => return Err(syntax("`Operations` must be a non-empty array")),
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(syntax(format!("at most {MAX_OPERATIONS} operations per request")));
    }
    let mut next = u.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_operation(&mut next, op)
            .and_then(|()| check_lists(&next.emails, &next.key_prefixes))
            .map_err(|e| ScimError { detail: format!("Operations[{i}]: {}", e.detail), ..e })?;
    }
    Ok(next)
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidSyntax", detail)
}

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidPath", detail)
}

fn apply_operation(u: &mut ScimUser, op: &Value) -> Result<(), ScimError> {
    let obj = op.as_object().ok_or_else(|| syntax("an operation must be an object"))?;
    let verb = match field(obj, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => Verb::Add,
        Some("replace") => Verb::Replace,
        Some("remove") => Verb::Remove,
        _ => return Err(syntax("`op` must be add, replace or remove")),
    };
    let value = field(obj, "value");
    match field(obj, "path") {
        Some(Value::String(p)) if !p.trim().is_empty() => match resolve_path(p)? {
            Target::ReadOnly => Err(ScimError::bad("mutability", format!("`{p}` is read-only"))),
            target => apply_target(u, verb, target, value),
        },
        None | Some(Value::Null | Value::String(_)) => match (verb, value) {
            (Verb::Remove, _) => Err(ScimError::bad("noTarget", "a remove operation needs a `path`")),
            (_, Some(Value::Object(m))) => apply_object(u, verb, m, false),
            _ => Err(invalid_value("an add or replace without `path` needs an object `value`")),
        },
        Some(_) => Err(invalid_path("`path` must be a string")),
    }
}

/// A path-less value: each key is a path (in the extension object, an extension attribute).
fn apply_object(u: &mut ScimUser, verb: Verb, m: &Map<String, Value>, in_extension: bool) -> Result<(), ScimError> {
    for (key, v) in m {
        let target = if in_extension {
            extension_target(key, &key.to_ascii_lowercase()).map_err(|_| unknown_extension_attribute(key))?
        } else {
            resolve_path(key)?
        };
        match target {
            Target::ReadOnly | Target::Ignored => {}
            target => apply_target(u, verb, target, Some(v))?,
        }
    }
    Ok(())
}

/// `attrPath`, `attrPath[valFilter]` or `attrPath[valFilter].subAttr`.
fn resolve_path(p: &str) -> Result<Target, ScimError> {
    let (head, filter_text, sub) = match (p.find('['), p.rfind(']')) {
        (None, None) => (p, None, None),
        (Some(open), Some(close)) if open < close => {
            let sub = match p.get(close + 1..).unwrap_or_default() {
                "" => None,
                tail => Some(tail.strip_prefix('.').filter(|s| is_name(s)).ok_or_else(|| bad_path(p))?),
            };
            (p.get(..open).unwrap_or_default(), p.get(open + 1..close), sub)
        }
        _ => return Err(bad_path(p)),
    };
    if !is_name(head) {
        return Err(bad_path(p));
    }
    let lower = head.to_ascii_lowercase();
    let target = match resolve_scope(&lower) {
        Scope::Core(rest) => match rest {
            "username" => Target::UserName,
            "externalid" => Target::ExternalId,
            "displayname" | "name.formatted" => Target::DisplayName,
            "name" => Target::Name,
            "active" => Target::Active,
            "emails" => Target::Emails(None, None),
            "emails.value" => Target::Emails(None, Some(Sub::Value)),
            "emails.type" | "emails.primary" | "emails.display" => Target::Ignored,
            "id" | "meta" | "schemas" => Target::ReadOnly,
            _ if rest.starts_with("meta.") => Target::ReadOnly,
            _ if unstored(rest) => Target::Ignored,
            _ => extension_target(p, rest)?,
        },
        Scope::Extension("") => Target::Extension,
        Scope::Extension(rest) => extension_target(p, rest)?,
        Scope::Enterprise | Scope::Foreign => Target::Ignored,
    };
    let filter = |m| match filter_text {
        Some(f) => parse_value_filter(m, f).map(Some).map_err(|e| invalid_path(format!("`{p}`: {}", e.detail))),
        None => Ok(None),
    };
    let sub = sub.map(|s| s.to_ascii_lowercase());
    match (target, sub.as_deref()) {
        (Target::Ignored, _) => Ok(Target::Ignored),
        (Target::Emails(None, s), None) => Ok(Target::Emails(filter(Multi::Emails)?, s)),
        (Target::Emails(None, None), Some("value")) if filter_text.is_some() => {
            Ok(Target::Emails(filter(Multi::Emails)?, Some(Sub::Value)))
        }
        (Target::Emails(None, None), Some("type" | "primary" | "display")) if filter_text.is_some() => {
            filter(Multi::Emails).map(|_| Target::Ignored)
        }
        (Target::KeyPrefixes(None), None) => Ok(Target::KeyPrefixes(filter(Multi::KeyPrefixes)?)),
        (target, None) if filter_text.is_none() => Ok(target),
        _ => Err(bad_path(p)),
    }
}

fn extension_target(p: &str, rest: &str) -> Result<Target, ScimError> {
    match rest {
        "role" => Ok(Target::Role),
        "tenantid" => Ok(Target::TenantId),
        "keyprefixes" => Ok(Target::KeyPrefixes(None)),
        _ => Err(bad_path(p)),
    }
}

fn bad_path(p: &str) -> ScimError {
    invalid_path(format!("`{p}` is not a path to a User attribute"))
}

fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

fn apply_target(u: &mut ScimUser, verb: Verb, target: Target, value: Option<&Value>) -> Result<(), ScimError> {
    let need = || value.ok_or_else(|| invalid_value("add and replace need a `value`"));
    let remove = verb == Verb::Remove;
    match target {
        Target::ReadOnly | Target::Ignored => {}
        Target::UserName if remove => return Err(invalid_value("`userName` is required; it cannot be removed")),
        Target::UserName => u.user_name = user_name(need()?)?,
        Target::Active if remove => return Err(invalid_value("`active` cannot be removed")),
        Target::Active => u.active = flag("active", need()?)?,
        Target::ExternalId => u.external_id = if remove { None } else { text("externalId", need()?, MAX_TEXT)? },
        Target::DisplayName => u.display_name = if remove { None } else { text("displayName", need()?, MAX_TEXT)? },
        Target::Name if remove => u.display_name = None,
        Target::Name => {
            if let Some(d) = name_formatted(need()?)? {
                u.display_name = Some(d);
            }
        }
        Target::Role => u.role = if remove { None } else { role(need()?)? },
        Target::TenantId => u.tenant_id = if remove { None } else { text("tenantId", need()?, MAX_TEXT)? },
        Target::Emails(filter, sub) => patch_list(&mut u.emails, Multi::Emails, verb, filter.as_ref(), sub, value)?,
        Target::KeyPrefixes(filter) => {
            patch_list(&mut u.key_prefixes, Multi::KeyPrefixes, verb, filter.as_ref(), None, value)?;
        }
        Target::Extension if remove => {
            (u.role, u.tenant_id) = (None, None);
            u.key_prefixes.clear();
        }
        Target::Extension => match need()? {
            Value::Object(m) => apply_object(u, verb, m, true)?,
            _ => return Err(invalid_value("the extension's value must be an object")),
        },
    }
    Ok(())
}

/// `add` appends, `replace` replaces all, `remove` removes the given values or all. With a value
/// filter: `remove` drops the matched values, `add`/`replace` overwrite them with the one new
/// value (appending it when nothing matches, except a `replace` of whole values: `noTarget`).
fn patch_list(
    list: &mut Vec<String>,
    m: Multi,
    verb: Verb,
    filter: Option<&Filter>,
    sub: Option<Sub>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let fold = m == Multi::Emails;
    let parse = |v: &Value| match m {
        Multi::Emails => email_values(v),
        Multi::KeyPrefixes => prefix_values(v),
    };
    let need = || value.ok_or_else(|| invalid_value("add and replace need a `value`"));
    let Some(f) = filter else {
        match (verb, value) {
            (Verb::Add, _) => merge(list, parse(need()?)?, fold),
            (Verb::Replace, _) => *list = parse(need()?)?,
            (Verb::Remove, Some(v)) if !v.is_null() => {
                let gone = parse(v)?;
                list.retain(|x| !gone.iter().any(|g| if fold { g.to_lowercase() == x.to_lowercase() } else { g == x }));
            }
            (Verb::Remove, _) => list.clear(),
        }
        return Ok(());
    };
    let hits: Vec<usize> =
        (0..list.len()).filter(|&i| list.get(i).is_some_and(|v| element_matches(f, m, v, i))).collect();
    if verb == Verb::Remove {
        let mut i = 0;
        list.retain(|_| {
            i += 1;
            !hits.contains(&(i - 1))
        });
        return Ok(());
    }
    let new = match parse(need()?)?.as_slice() {
        [one] => one.clone(),
        _ => return Err(invalid_value("a filtered path takes exactly one value")),
    };
    if hits.is_empty() {
        if verb == Verb::Replace && sub.is_none() {
            return Err(ScimError::bad("noTarget", "no value matches the path's filter"));
        }
        merge(list, [new], fold);
        return Ok(());
    }
    for &i in &hits {
        if let Some(slot) = list.get_mut(i) {
            slot.clone_from(&new);
        }
    }
    let all = std::mem::take(list);
    merge(list, all, fold);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::scim::{EXTENSION, MAX_EMAILS};

    fn user() -> ScimUser {
        ScimUser {
            id: "u-1".into(),
            user_name: "bjensen@example.com".into(),
            external_id: Some("00u1ab".into()),
            display_name: Some("Barbara Jensen".into()),
            emails: vec!["bjensen@example.com".into(), "babs@example.org".into()],
            active: true,
            role: Some("viewer".into()),
            tenant_id: Some("tenant-a".into()),
            key_prefixes: vec!["team-a-".into(), "ci-".into()],
            confined: false,
            version: 4,
            created_at: 1,
            updated_at: 2,
        }
    }

    fn patch(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": ops})
    }

    #[test]
    fn applies_idp_patches() {
        let role = format!("{EXTENSION}:role");
        let prefixes = format!("{EXTENSION}:keyPrefixes");
        type Check = fn(&ScimUser) -> bool;
        let cases: Vec<(&str, Value, Check)> = vec![
            ("okta deactivate", json!([{"op": "replace", "value": {"active": false}}]), |u| !u.active),
            ("path replace active", json!([{"op": "replace", "path": "active", "value": false}]), |u| !u.active),
            ("azure capitalised", json!([{"op": "Replace", "path": "active", "value": "False"}]), |u| !u.active),
            ("azure string true", json!([{"op": "Replace", "path": "active", "value": "True"}]), |u| u.active),
            (
                "azure work email",
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@x.com"}]),
                |u| u.emails == ["new@x.com"],
            ),
            (
                "azure add email on empty",
                json!([{"op": "remove", "path": "emails"}, {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@x"}]),
                |u| u.emails == ["a@x"],
            ),
            (
                "add emails",
                json!([{"op": "add", "path": "emails", "value": [{"value": "c@x", "type": "work"}, {"value": "BABS@example.org"}]}]),
                |u| u.emails == ["bjensen@example.com", "babs@example.org", "c@x"],
            ),
            (
                "replace emails",
                json!([{"op": "replace", "path": "emails", "value": [{"value": "c@x", "primary": true}]}]),
                |u| u.emails == ["c@x"],
            ),
            (
                "remove one email by filter",
                json!([{"op": "remove", "path": "emails[value eq \"BABS@example.org\"]"}]),
                |u| u.emails == ["bjensen@example.com"],
            ),
            (
                "remove email by value",
                json!([{"op": "remove", "path": "emails", "value": [{"value": "bjensen@example.com"}]}]),
                |u| u.emails == ["babs@example.org"],
            ),
            (
                "replace filtered email object",
                json!([{"op": "replace", "path": "emails[value eq \"babs@example.org\"]", "value": {"value": "b@y"}}]),
                |u| u.emails == ["bjensen@example.com", "b@y"],
            ),
            ("remove extension attribute", json!([{"op": "remove", "path": role}]), |u| u.role.is_none()),
            (
                "azure path-less with URN keys",
                json!([{"op": "replace", "value": {
                    "displayName": "B J", "name.givenName": "B", role.clone(): "ADMIN",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "x"}}]),
                |u| u.display_name.as_deref() == Some("B J") && u.role.as_deref() == Some("admin"),
            ),
            (
                "okta path-less profile",
                json!([{"op": "replace", "value": {"id": "other", "userName": "b@x", "name": {"givenName": "B", "formatted": "B X"}, "emails": [{"value": "b@x", "primary": true}]}}]),
                |u| {
                    u.user_name == "b@x"
                        && u.display_name.as_deref() == Some("B X")
                        && u.emails == ["b@x"]
                        && u.id == "u-1"
                },
            ),
            (
                "extension object",
                json!([{"op": "add", "path": EXTENSION, "value": {"tenantId": "t-2", "keyPrefixes": ["x-"]}}]),
                |u| u.tenant_id.as_deref() == Some("t-2") && u.key_prefixes == ["team-a-", "ci-", "x-"],
            ),
            (
                "path-less extension object",
                json!([{"op": "replace", "value": {EXTENSION: {"keyPrefixes": ["x-"], "role": null}}}]),
                |u| u.key_prefixes == ["x-"] && u.role.is_none(),
            ),
            ("remove whole extension", json!([{"op": "remove", "path": EXTENSION}]), |u| {
                u.role.is_none() && u.tenant_id.is_none() && u.key_prefixes.is_empty()
            }),
            (
                "remove key prefix by filter",
                json!([{"op": "remove", "path": format!("{prefixes}[value eq \"ci-\"]")}]),
                |u| u.key_prefixes == ["team-a-"],
            ),
            ("add key prefix", json!([{"op": "add", "path": prefixes, "value": "z-"}]), |u| u.key_prefixes.len() == 3),
            (
                "core URN path",
                json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "Z"}]),
                |u| u.display_name.as_deref() == Some("Z"),
            ),
            ("name.formatted", json!([{"op": "replace", "path": "name.formatted", "value": "N"}]), |u| {
                u.display_name.as_deref() == Some("N")
            }),
            ("remove externalId", json!([{"op": "remove", "path": "externalId"}]), |u| u.external_id.is_none()),
            (
                "ignored attributes",
                json!([{"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "DE"}, {"op": "add", "path": "title", "value": "x"}]),
                |u| *u == user(),
            ),
            (
                "ops in order",
                json!([{"op": "replace", "path": "displayName", "value": "A"}, {"op": "remove", "path": "displayName"}]),
                |u| u.display_name.is_none(),
            ),
        ];
        for (name, ops, check) in cases {
            let out = apply_patch(&user(), &patch(ops)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(check(&out), "{name}: {out:?}");
            assert_eq!((out.id.as_str(), out.version, out.created_at, out.updated_at), ("u-1", 4, 1, 2), "{name}");
        }
    }

    #[test]
    fn refuses_bad_patches_without_partial_application() {
        let many: Vec<Value> = (0..MAX_EMAILS).map(|i| json!({"value": format!("n{i}@x")})).collect();
        let cases = [
            (json!({"Operations": []}), "invalidSyntax"),
            (json!({"schemas": [PATCH_OP]}), "invalidSyntax"),
            (json!({"schemas": {}, "Operations": [{"op": "remove", "path": "displayName"}]}), "invalidSyntax"),
            (json!([]), "invalidSyntax"),
            (patch(json!([{"op": "move", "path": "active", "value": true}])), "invalidSyntax"),
            (patch(json!(["remove"])), "invalidSyntax"),
            (patch(json!([{"op": "remove"}])), "noTarget"),
            (patch(json!([{"op": "Remove", "value": {"active": false}}])), "noTarget"),
            (patch(json!([{"op": "replace", "path": "nickName2", "value": "x"}])), "invalidPath"),
            (patch(json!([{"op": "add", "path": EXTENSION, "value": {"allowedKeyPrefixes": ["a-"]}}])), "invalidValue"),
            (patch(json!([{"op": "replace", "value": {EXTENSION: {"tenant": "t"}}}])), "invalidValue"),
            (patch(json!([{"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}])), "invalidPath"),
            (patch(json!([{"op": "replace", "path": "emails[bogus eq \"work\"].value", "value": "x"}])), "invalidPath"),
            (patch(json!([{"op": "replace", "path": "emails[type eq \"work\"].foo", "value": "x"}])), "invalidPath"),
            (patch(json!([{"op": "replace", "path": "active[value eq true]", "value": true}])), "invalidPath"),
            (patch(json!([{"op": "replace", "path": "user name", "value": "x"}])), "invalidPath"),
            (patch(json!([{"op": "replace", "path": 5, "value": "x"}])), "invalidPath"),
            (patch(json!([{"op": "add", "path": format!("{EXTENSION}:color"), "value": "x"}])), "invalidPath"),
            (patch(json!([{"op": "replace", "value": {"favouriteColor": "x"}}])), "invalidPath"),
            (patch(json!([{"op": "replace", "path": "id", "value": "x"}])), "mutability"),
            (patch(json!([{"op": "replace", "path": "meta.created", "value": "x"}])), "mutability"),
            (
                patch(json!([{"op": "replace", "path": "emails[value eq \"none@x\"]", "value": {"value": "a@x"}}])),
                "noTarget",
            ),
            (patch(json!([{"op": "replace", "path": "active", "value": "maybe"}])), "invalidValue"),
            (patch(json!([{"op": "replace", "path": "active"}])), "invalidValue"),
            (patch(json!([{"op": "remove", "path": "userName"}])), "invalidValue"),
            (patch(json!([{"op": "replace", "path": "userName", "value": ""}])), "invalidValue"),
            (patch(json!([{"op": "replace", "value": "x"}])), "invalidValue"),
            (patch(json!([{"op": "replace", "path": format!("{EXTENSION}:role"), "value": "root"}])), "invalidValue"),
            (patch(json!([{"op": "add", "path": "emails", "value": many}])), "invalidValue"),
            (
                patch(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": ["a@x", "b@x"]}])),
                "invalidValue",
            ),
            (
                patch(
                    json!([{"op": "replace", "path": "active", "value": false}, {"op": "replace", "path": "bogus", "value": 1}]),
                ),
                "invalidPath",
            ),
        ];
        let before = user();
        for (body, want) in cases {
            let e = apply_patch(&before, &body).expect_err(&body.to_string());
            assert_eq!((e.status, e.scim_type), (400, Some(want)), "{body}: {}", e.detail);
        }
        assert_eq!(before, user());
    }

    #[test]
    fn hostile_paths_never_panic() {
        for p in
            ["[", "]", "][", "emails[]", "emails[\"é", "é[x]", "emails[value eq \"]\"].value", ".", "a..b", "emails]x["]
        {
            let _ = apply_patch(&user(), &patch(json!([{"op": "add", "path": p, "value": "x"}])));
        }
    }
}
