//! SCIM filters (RFC 7644 §3.4.2.2) over the User attributes the gateway stores: the grammar
//! parsed into a typed [`Filter`], and its evaluation against a [`ScimUser`].
//!
//! Invariants: a parsed filter names only known attributes and compares each with a literal of its
//! type (anything else is `400 invalidFilter` at parse time), so evaluation cannot fail; input is
//! bounded (4096 bytes, nesting 32) and `and`/`or` chains are flat lists, so parsing, evaluation
//! and drop never recurse deeper than the nesting limit; parsing never panics on any input.

use std::cmp::Ordering;

use crate::core::directory::ScimUser;
use crate::core::time::{parse_rfc3339, UnixMs};

use super::{resolve_scope, unstored, ScimError, Scope};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of `(…)`, `not(…)` and `[…]` accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `attr op value`.
    Compare(Attr, Op, Operand),
    /// `attr pr`.
    Present(Attr),
    /// `a and b and …`.
    And(Vec<Filter>),
    /// `a or b or …`.
    Or(Vec<Filter>),
    /// `not (a)`.
    Not(Box<Filter>),
    /// `emails[…]`: some value of the attribute matches the inner filter (whose attributes are
    /// [`Attr::Element`]).
    Values(Multi, Box<Filter>),
}

/// An attribute a filter can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    Id,
    UserName,
    ExternalId,
    /// `displayName`, also `name.formatted`.
    DisplayName,
    Active,
    Created,
    LastModified,
    Role,
    TenantId,
    /// A sub-attribute of every value of a multi-valued attribute (`emails.value`, `emails.type`).
    Each(Multi, Sub),
    /// Inside `[…]`: a sub-attribute of the value under test.
    Element(Multi, Sub),
    /// A core User attribute the gateway does not store (`name.familyName`, `title`, …): unassigned.
    Unassigned,
}

/// A multi-valued attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Multi {
    Emails,
    KeyPrefixes,
}

/// A sub-attribute of a multi-valued attribute's values (stored emails are all `type` `work`, the
/// first one `primary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Value,
    Type,
    Primary,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal, already converted to the attribute's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    Str(String),
    Bool(bool),
    Time(UnixMs),
    /// `eq null` is "not present", `ne null` is "present".
    Null,
}

/// Parses a filter (the `filter` query parameter, already percent-decoded).
pub fn parse_filter(s: &str) -> Result<Filter, ScimError> {
    parse_with(s, None)
}

/// Parses the filter inside `emails[…]` of a PATCH path.
pub(super) fn parse_value_filter(m: Multi, s: &str) -> Result<Filter, ScimError> {
    parse_with(s, Some(m))
}

fn parse_with(s: &str, inner: Option<Multi>) -> Result<Filter, ScimError> {
    if s.len() > MAX_FILTER_LEN {
        return Err(invalid(format!("the filter is longer than {MAX_FILTER_LEN} bytes")));
    }
    let mut p = Parser { tokens: lex(s)?, pos: 0, inner };
    if p.tokens.is_empty() {
        return Err(invalid("the filter is empty"));
    }
    let f = p.parse_or(0)?;
    match p.tokens.get(p.pos) {
        None => Ok(f),
        Some(t) => Err(invalid(format!("unexpected {} after a complete expression", t.describe()))),
    }
}

/// Whether the user matches the filter.
#[must_use]
pub fn matches(f: &Filter, u: &ScimUser) -> bool {
    eval(f, &Ctx::User(u))
}

/// The `userName` a matching user must have (case-insensitively), when the filter says so at its
/// top level (`userName eq "x"`, possibly `and`-ed with more): lets the shell use its index, then
/// [`matches`] on the candidates.
#[must_use]
pub fn user_name_eq(f: &Filter) -> Option<&str> {
    match f {
        Filter::Compare(Attr::UserName, Op::Eq, Operand::Str(s)) => Some(s),
        Filter::And(terms) => terms.iter().find_map(user_name_eq),
        _ => None,
    }
}

/// Whether value `index` of a multi-valued attribute matches a value filter from
/// [`parse_value_filter`].
pub(super) fn element_matches(f: &Filter, m: Multi, value: &str, index: usize) -> bool {
    eval(f, &Ctx::Element(Element::of(m, value, index)))
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidFilter", detail)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Word(String),
    Str(String),
    Num(String),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "`(`".into(),
            Token::Close => "`)`".into(),
            Token::OpenBracket => "`[`".into(),
            Token::CloseBracket => "`]`".into(),
            Token::Word(w) | Token::Num(w) => format!("`{w}`"),
            Token::Str(s) => format!("string {s:?}"),
        }
    }

    fn is_word(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

fn lex(s: &str) -> Result<Vec<Token>, ScimError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let start = i;
        i += 1;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'(' => out.push(Token::Open),
            b')' => out.push(Token::Close),
            b'[' => out.push(Token::OpenBracket),
            b']' => out.push(Token::CloseBracket),
            b'"' => {
                while let Some(&c) = b.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    if c == b'"' {
                        break;
                    }
                }
                let text = s.get(start..i).filter(|t| t.len() >= 2 && t.ends_with('"'));
                let value = text.and_then(|t| serde_json::from_str::<String>(t).ok());
                out.push(Token::Str(value.ok_or_else(|| invalid(format!("bad string literal at byte {start}")))?));
            }
            c if c.is_ascii_alphabetic() => {
                while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':')) {
                    i += 1;
                }
                out.push(Token::Word(s.get(start..i).unwrap_or_default().to_string()));
            }
            c if c.is_ascii_digit() || c == b'-' => {
                while b.get(i).is_some_and(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')) {
                    i += 1;
                }
                let text = s.get(start..i).unwrap_or_default();
                if serde_json::from_str::<serde_json::Number>(text).is_err() {
                    return Err(invalid(format!("bad number `{text}`")));
                }
                out.push(Token::Num(text.to_string()));
            }
            _ => {
                let ch = s.get(start..).and_then(|t| t.chars().next()).unwrap_or_default();
                return Err(invalid(format!("unexpected character {ch:?} at byte {start}")));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Inside `[…]` of this attribute: names are its sub-attributes.
    inner: Option<Multi>,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, keyword: &str) -> bool {
        let hit = self.peek().is_some_and(|t| t.is_word(keyword));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, want: &Token, what: &str) -> Result<(), ScimError> {
        match self.next() {
            Some(t) if t == *want => Ok(()),
            Some(t) => Err(invalid(format!("expected {what}, found {}", t.describe()))),
            None => Err(invalid(format!("expected {what} at the end of the filter"))),
        }
    }

    fn parse_or(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut terms = vec![self.parse_and(depth)?];
        while self.keyword("or") {
            terms.push(self.parse_and(depth)?);
        }
        Ok(if terms.len() == 1 { terms.swap_remove(0) } else { Filter::Or(terms) })
    }

    fn parse_and(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut terms = vec![self.parse_unary(depth)?];
        while self.keyword("and") {
            terms.push(self.parse_unary(depth)?);
        }
        Ok(if terms.len() == 1 { terms.swap_remove(0) } else { Filter::And(terms) })
    }

    fn parse_unary(&mut self, depth: usize) -> Result<Filter, ScimError> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!("the filter nests deeper than {MAX_DEPTH} levels")));
        }
        let not = self.peek().is_some_and(|t| t.is_word("not")) && self.tokens.get(self.pos + 1) == Some(&Token::Open);
        if not {
            self.pos += 1;
        }
        match self.next() {
            Some(Token::Open) => {
                let f = self.parse_or(depth + 1)?;
                self.expect(&Token::Close, "`)`")?;
                Ok(if not { Filter::Not(Box::new(f)) } else { f })
            }
            Some(Token::Word(path)) => self.parse_attr_exp(&path, depth),
            Some(t) => Err(invalid(format!("expected an attribute, `(` or `not(`, found {}", t.describe()))),
            None => Err(invalid("the filter ends where an expression was expected")),
        }
    }

    fn parse_attr_exp(&mut self, path: &str, depth: usize) -> Result<Filter, ScimError> {
        if self.peek() == Some(&Token::OpenBracket) {
            if self.inner.is_some() {
                return Err(invalid("value filters cannot be nested"));
            }
            let m = resolve_multi(path)?;
            self.pos += 1;
            self.inner = Some(m);
            let f = self.parse_or(depth + 1);
            self.inner = None;
            let f = f?;
            self.expect(&Token::CloseBracket, "`]`")?;
            return Ok(Filter::Values(m, Box::new(f)));
        }
        let attr = match self.inner {
            Some(m) => resolve_sub(m, path)?,
            None => resolve_attr(path)?,
        };
        if self.keyword("pr") {
            return Ok(Filter::Present(attr));
        }
        let op = match self.next() {
            Some(Token::Word(w)) => parse_op(&w).ok_or_else(|| invalid(format!("unknown operator `{w}`")))?,
            Some(t) => return Err(invalid(format!("expected an operator after `{path}`, found {}", t.describe()))),
            None => return Err(invalid(format!("expected an operator after `{path}`"))),
        };
        let literal = self.next().ok_or_else(|| invalid(format!("expected a value after `{path}`")))?;
        Ok(Filter::Compare(attr, op, operand(attr, op, literal, path)?))
    }
}

fn parse_op(w: &str) -> Option<Op> {
    let ops = [
        ("eq", Op::Eq),
        ("ne", Op::Ne),
        ("co", Op::Co),
        ("sw", Op::Sw),
        ("ew", Op::Ew),
        ("gt", Op::Gt),
        ("ge", Op::Ge),
        ("lt", Op::Lt),
        ("le", Op::Le),
    ];
    ops.iter().find(|(name, _)| w.eq_ignore_ascii_case(name)).map(|(_, op)| *op)
}

fn resolve_attr(path: &str) -> Result<Attr, ScimError> {
    let lower = path.to_ascii_lowercase();
    let attr = match resolve_scope(&lower) {
        Scope::Core(rest) => match rest {
            "id" => Some(Attr::Id),
            "username" => Some(Attr::UserName),
            "externalid" => Some(Attr::ExternalId),
            "displayname" | "name.formatted" => Some(Attr::DisplayName),
            "active" => Some(Attr::Active),
            "emails" | "emails.value" => Some(Attr::Each(Multi::Emails, Sub::Value)),
            "emails.type" => Some(Attr::Each(Multi::Emails, Sub::Type)),
            "emails.primary" => Some(Attr::Each(Multi::Emails, Sub::Primary)),
            "meta.created" => Some(Attr::Created),
            "meta.lastmodified" => Some(Attr::LastModified),
            _ if unstored(rest) => Some(Attr::Unassigned),
            _ => resolve_extension(rest),
        },
        Scope::Extension(rest) => resolve_extension(rest),
        Scope::Enterprise => Some(Attr::Unassigned),
        Scope::Foreign => None,
    };
    attr.ok_or_else(|| invalid(format!("unknown attribute `{path}`")))
}

fn resolve_extension(rest: &str) -> Option<Attr> {
    match rest {
        "role" => Some(Attr::Role),
        "tenantid" => Some(Attr::TenantId),
        "keyprefixes" => Some(Attr::Each(Multi::KeyPrefixes, Sub::Value)),
        _ => None,
    }
}

fn resolve_multi(path: &str) -> Result<Multi, ScimError> {
    match resolve_scope(&path.to_ascii_lowercase()) {
        Scope::Core("emails") => Ok(Multi::Emails),
        Scope::Core("keyprefixes") | Scope::Extension("keyprefixes") => Ok(Multi::KeyPrefixes),
        _ => Err(invalid(format!("`{path}[…]`: value filters apply to emails and keyPrefixes"))),
    }
}

fn resolve_sub(m: Multi, path: &str) -> Result<Attr, ScimError> {
    let lower = path.to_ascii_lowercase();
    match (m, lower.as_str()) {
        (_, "value") => Ok(Attr::Element(m, Sub::Value)),
        (Multi::Emails, "type") => Ok(Attr::Element(m, Sub::Type)),
        (Multi::Emails, "primary") => Ok(Attr::Element(m, Sub::Primary)),
        _ => Err(invalid(format!("unknown sub-attribute `{path}` in a value filter"))),
    }
}

/// The type of an attribute, which decides the operators and literals it accepts.
#[derive(Clone, Copy)]
enum Kind {
    Text { case_exact: bool },
    Flag,
    Time,
    Any,
}

fn kind(a: Attr) -> Kind {
    match a {
        Attr::Id | Attr::ExternalId | Attr::TenantId => Kind::Text { case_exact: true },
        Attr::UserName | Attr::DisplayName | Attr::Role => Kind::Text { case_exact: false },
        Attr::Active => Kind::Flag,
        Attr::Created | Attr::LastModified => Kind::Time,
        Attr::Each(m, s) | Attr::Element(m, s) => match (m, s) {
            (_, Sub::Primary) => Kind::Flag,
            (Multi::KeyPrefixes, _) => Kind::Text { case_exact: true },
            (Multi::Emails, _) => Kind::Text { case_exact: false },
        },
        Attr::Unassigned => Kind::Any,
    }
}

fn operand(a: Attr, op: Op, literal: Token, path: &str) -> Result<Operand, ScimError> {
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    match (kind(a), literal) {
        (_, t) if t.is_word("null") => match op {
            Op::Eq | Op::Ne => Ok(Operand::Null),
            _ => Err(invalid(format!("`{path}`: null compares only with eq and ne"))),
        },
        (Kind::Any | Kind::Flag, t) if t.is_word("true") || t.is_word("false") => match op {
            Op::Eq | Op::Ne => Ok(Operand::Bool(t.is_word("true"))),
            _ => Err(invalid(format!("`{path}`: booleans compare only with eq and ne"))),
        },
        (Kind::Any | Kind::Text { .. }, Token::Str(s)) => Ok(Operand::Str(s)),
        (Kind::Any, Token::Num(n)) => Ok(Operand::Str(n)),
        (Kind::Time, Token::Str(s)) if !substring => match parse_rfc3339(&s) {
            Ok(ms) => Ok(Operand::Time(ms)),
            Err(e) => Err(invalid(format!("`{path}`: {e}"))),
        },
        (Kind::Time, Token::Str(_)) => Err(invalid(format!("`{path}` is a dateTime: co, sw and ew do not apply"))),
        (Kind::Flag, _) if ordering || substring => {
            Err(invalid(format!("`{path}` is a boolean: only eq, ne and pr apply")))
        }
        (Kind::Flag, t) => Err(invalid(format!("`{path}` is a boolean, not {}", t.describe()))),
        (Kind::Time, t) => {
            Err(invalid(format!("`{path}` is a dateTime (a quoted RFC 3339 string), not {}", t.describe())))
        }
        (Kind::Text { .. } | Kind::Any, t) => Err(invalid(format!("`{path}` is a string, not {}", t.describe()))),
    }
}

/// What a filter is evaluated against: the user, or (inside `[…]`) one value of an attribute.
enum Ctx<'a> {
    User(&'a ScimUser),
    Element(Element<'a>),
}

/// One value of a multi-valued attribute with its sub-attributes.
struct Element<'a> {
    value: &'a str,
    kind: Option<&'static str>,
    primary: Option<bool>,
}

impl<'a> Element<'a> {
    fn of(m: Multi, value: &'a str, index: usize) -> Self {
        match m {
            Multi::Emails => Element { value, kind: Some("work"), primary: Some(index == 0) },
            Multi::KeyPrefixes => Element { value, kind: None, primary: None },
        }
    }

    fn get(&self, s: Sub) -> Option<Val<'a>> {
        match s {
            Sub::Value => Some(Val::Text(self.value)),
            Sub::Type => self.kind.map(Val::Text),
            Sub::Primary => self.primary.map(Val::Flag),
        }
    }
}

/// One assigned value of an attribute.
enum Val<'a> {
    Text(&'a str),
    Flag(bool),
    Time(UnixMs),
}

fn eval(f: &Filter, ctx: &Ctx<'_>) -> bool {
    match f {
        Filter::And(terms) => terms.iter().all(|t| eval(t, ctx)),
        Filter::Or(terms) => terms.iter().any(|t| eval(t, ctx)),
        Filter::Not(inner) => !eval(inner, ctx),
        Filter::Present(a) => !values(*a, ctx).is_empty(),
        Filter::Values(m, inner) => match ctx {
            Ctx::User(u) => {
                list(*m, u).iter().enumerate().any(|(i, v)| eval(inner, &Ctx::Element(Element::of(*m, v, i))))
            }
            Ctx::Element(_) => false,
        },
        Filter::Compare(a, op, x) => {
            let vals = values(*a, ctx);
            let case_exact = matches!(kind(*a), Kind::Text { case_exact: true });
            match (op, x) {
                (Op::Eq, Operand::Null) => vals.is_empty(),
                (_, Operand::Null) => !vals.is_empty(),
                (Op::Ne, _) => !vals.iter().any(|v| compare(v, Op::Eq, x, case_exact)),
                _ => vals.iter().any(|v| compare(v, *op, x, case_exact)),
            }
        }
    }
}

fn list(m: Multi, u: &ScimUser) -> &[String] {
    match m {
        Multi::Emails => &u.emails,
        Multi::KeyPrefixes => &u.key_prefixes,
    }
}

fn values<'a>(a: Attr, ctx: &Ctx<'a>) -> Vec<Val<'a>> {
    let text = |s: &'a Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(Val::Text).into_iter().collect();
    match (a, ctx) {
        (Attr::Element(_, s), Ctx::Element(e)) => e.get(s).into_iter().collect(),
        (_, Ctx::Element(_)) | (Attr::Element(..) | Attr::Unassigned, _) => Vec::new(),
        (Attr::Id, Ctx::User(u)) => vec![Val::Text(&u.id)],
        (Attr::UserName, Ctx::User(u)) => vec![Val::Text(&u.user_name)],
        (Attr::ExternalId, Ctx::User(u)) => text(&u.external_id),
        (Attr::DisplayName, Ctx::User(u)) => text(&u.display_name),
        (Attr::Role, Ctx::User(u)) => text(&u.role),
        (Attr::TenantId, Ctx::User(u)) => text(&u.tenant_id),
        (Attr::Active, Ctx::User(u)) => vec![Val::Flag(u.active)],
        (Attr::Created, Ctx::User(u)) => vec![Val::Time(u.created_at)],
        (Attr::LastModified, Ctx::User(u)) => vec![Val::Time(u.updated_at)],
        (Attr::Each(m, s), Ctx::User(u)) => {
            list(m, u).iter().enumerate().filter_map(|(i, v)| Element::of(m, v, i).get(s)).collect()
        }
    }
}

fn compare(v: &Val<'_>, op: Op, x: &Operand, case_exact: bool) -> bool {
    match (v, x) {
        (Val::Text(a), Operand::Str(b)) if case_exact => compare_text(a, op, b),
        (Val::Text(a), Operand::Str(b)) => compare_text(&a.to_lowercase(), op, &b.to_lowercase()),
        (Val::Flag(a), Operand::Bool(b)) => compare_order(a.cmp(b), op),
        (Val::Time(a), Operand::Time(b)) => compare_order(a.cmp(b), op),
        _ => false,
    }
}

fn compare_text(a: &str, op: Op, b: &str) -> bool {
    match op {
        Op::Co => a.contains(b),
        Op::Sw => a.starts_with(b),
        Op::Ew => a.ends_with(b),
        _ => compare_order(a.cmp(b), op),
    }
}

fn compare_order(o: Ordering, op: Op) -> bool {
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> ScimUser {
        ScimUser {
            id: "2819c223".into(),
            user_name: "bjensen@example.com".into(),
            external_id: Some("00u1ab".into()),
            display_name: Some("Barbara Jensen".into()),
            emails: vec!["bjensen@example.com".into(), "babs@Home.example.org".into()],
            active: true,
            role: Some("admin".into()),
            tenant_id: Some("tenant-a".into()),
            key_prefixes: vec!["team-a-".into(), "ci-".into()],
            confined: false,
            version: 3,
            created_at: 1_798_761_600_000,
            updated_at: 1_798_761_600_500,
        }
    }

    #[test]
    fn matches_filters_as_idps_and_operators_send_them() {
        let ext = "urn:prodex:params:scim:schemas:gateway:2.0:User";
        let cases: Vec<(String, bool)> = vec![
            // Okta and Azure AD lookups.
            (r#"userName eq "bjensen@example.com""#.into(), true),
            (r#"userName eq "BJensen@Example.COM""#.into(), true),
            (r#"USERNAME EQ "bjensen@example.com""#.into(), true),
            (r#"userName Eq "nobody@example.com""#.into(), false),
            (r#"externalId eq "00u1ab""#.into(), true),
            (r#"externalId eq "00U1AB""#.into(), false),
            (r#"emails[type eq "work"]"#.into(), true),
            (r#"emails[type eq "work" and value co "@example.com"]"#.into(), true),
            (r#"emails[type eq "home"]"#.into(), false),
            (r#"emails[value eq "babs@home.example.org" and primary eq false]"#.into(), true),
            (r#"emails[value eq "babs@home.example.org" and primary eq true]"#.into(), false),
            (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen@example.com""#.into(), true),
            // Operators and attributes.
            (r#"userName sw "BJ""#.into(), true),
            (r#"userName ew ".com""#.into(), true),
            (r#"userName co "jensen@""#.into(), true),
            (r#"userName ne "bjensen@example.com""#.into(), false),
            (r#"userName gt "a" and userName lt "c""#.into(), true),
            (r#"userName ge "bjensen@example.com" and userName le "bjensen@example.com""#.into(), true),
            (r#"displayName co "barbara""#.into(), true),
            (r#"name.formatted eq "barbara jensen""#.into(), true),
            (r#"id eq "2819c223""#.into(), true),
            ("active eq true".into(), true),
            ("active eq FALSE".into(), false),
            ("active ne false".into(), true),
            ("emails pr".into(), true),
            (r#"emails co "home""#.into(), true),
            (r#"emails.value ew "example.org""#.into(), true),
            (r#"emails.type eq "work""#.into(), true),
            (r#"emails ne "bjensen@example.com""#.into(), false),
            ("externalId pr".into(), true),
            ("externalId eq null".into(), false),
            ("externalId ne null".into(), true),
            (r#"meta.created eq "2027-01-01T00:00:00Z""#.into(), true),
            (r#"meta.lastModified gt "2027-01-01T00:00:00Z""#.into(), true),
            (r#"meta.lastModified lt "2027-01-01T01:00:00+02:00""#.into(), false),
            (format!(r#"{ext}:tenantId eq "tenant-a""#), true),
            (format!(r#"{ext}:tenantId eq "TENANT-A""#), false),
            (format!(r#"{ext}:role eq "ADMIN""#), true),
            (format!(r#"{ext}:keyPrefixes eq "ci-""#), true),
            (format!(r#"{ext}:keyPrefixes[value sw "team-"]"#), true),
            (r#"tenantId eq "tenant-a""#.into(), true),
            // Logic, precedence and grouping.
            (r#"userName eq "x" or active eq true"#.into(), true),
            (r#"userName eq "x" or active eq true and externalId eq "y""#.into(), false),
            (r#"(userName eq "x" or active eq true) and externalId eq "00u1ab""#.into(), true),
            (r#"not (userName eq "x")"#.into(), true),
            (r#"NOT(active eq true)"#.into(), false),
            (r#"not(not(not(active eq true)))"#.into(), false),
            (r#"emails[type eq "work" and value co "@nowhere"] or displayName sw "Bar""#.into(), true),
            // Unstored core attributes are unassigned.
            ("title pr".into(), false),
            (r#"name.familyName eq "Jensen""#.into(), false),
            (r#"name.familyName ne "Jensen""#.into(), true),
            (r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1""#.into(), false),
            // Literals with JSON escapes.
            (r#"displayName eq "Barbara\u0020Jensen""#.into(), true),
            (r#"displayName ne "Barbara \"B\" Jensen""#.into(), true),
            ("userName\teq\t\"bjensen@example.com\"".into(), true),
        ];
        let u = user();
        for (filter, want) in cases {
            let f = parse_filter(&filter).unwrap_or_else(|e| panic!("{filter}: {e:?}"));
            assert_eq!(matches(&f, &u), want, "{filter}");
        }
    }

    #[test]
    fn unassigned_values_and_empty_lists() {
        let u = ScimUser { user_name: "x".into(), ..ScimUser::default() };
        for (filter, want) in [
            ("externalId pr", false),
            ("externalId eq null", true),
            (r#"externalId ne "a""#, true),
            (r#"externalId eq "a""#, false),
            ("emails pr", false),
            (r#"emails[type eq "work"]"#, false),
            (r#"emails ne "a""#, true),
            ("urn:prodex:params:scim:schemas:gateway:2.0:User:role pr", false),
        ] {
            assert_eq!(matches(&parse_filter(filter).unwrap(), &u), want, "{filter}");
        }
    }

    #[test]
    fn refuses_invalid_filters() {
        let deep = format!("{}active eq true{}", "(".repeat(40), ")".repeat(40));
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_LEN));
        let cases = [
            "",
            "   ",
            "userName",
            "userName eq",
            r#"userName eq "x"#,
            r#"userName xx "x""#,
            r#"userName eq "x" and"#,
            r#"userName eq "x" or or active eq true"#,
            r#"userName eq "x")"#,
            r#"(userName eq "x""#,
            r#"nickName2 eq "x""#,
            r#"urn:example:foo:bar eq "x""#,
            "active gt true",
            r#"active eq "true""#,
            "active co true",
            "userName eq 42",
            "userName eq true",
            "userName gt null",
            r#"meta.created eq "yesterday""#,
            r#"meta.created sw "2027""#,
            r#"emails[type eq "work"][value eq "x"]"#,
            r#"emails[type eq "work" and emails[value eq "x"]]"#,
            r#"emails[type eq "work""#,
            r#"emails[nickname eq "x"]"#,
            r#"userName[value eq "x"]"#,
            r#"userName eq "x" ]"#,
            r#"userName eq "\q""#,
            "userName eq \"a\u{1}b\"",
            r#"userName eq 1.2.3"#,
            r#"userName eq "x" & active eq true"#,
            "userName eq 'x'",
            "not userName eq \"x\"",
            "été eq \"x\"",
            &deep,
            &long,
        ];
        for filter in cases {
            let e = parse_filter(filter).expect_err(filter);
            assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")), "{filter}");
            assert!(!e.detail.is_empty());
        }
        let nest = |n: usize| format!("{}active eq true{}", "not(".repeat(n), ")".repeat(n));
        assert!(parse_filter(&nest(MAX_DEPTH)).is_ok() && parse_filter(&nest(MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn finds_the_user_name_for_an_index_lookup() {
        let cases = [
            (r#"userName eq "Bjensen""#, Some("Bjensen")),
            (r#"userName eq "a" and active eq true"#, Some("a")),
            (r#"active eq true and (userName eq "b")"#, Some("b")),
            (r#"userName eq "a" or active eq true"#, None),
            (r#"userName co "a""#, None),
            (r#"not (userName eq "a")"#, None),
            (r#"externalId eq "a""#, None),
        ];
        for (filter, want) in cases {
            assert_eq!(user_name_eq(&parse_filter(filter).unwrap()), want, "{filter}");
        }
    }

    #[test]
    fn value_filters_select_elements() {
        let f = parse_value_filter(Multi::Emails, r#"type eq "work" and primary eq true"#).unwrap();
        assert!(element_matches(&f, Multi::Emails, "a@x", 0));
        assert!(!element_matches(&f, Multi::Emails, "b@x", 1));
        let f = parse_value_filter(Multi::KeyPrefixes, r#"value eq "ci-""#).unwrap();
        assert!(
            element_matches(&f, Multi::KeyPrefixes, "ci-", 3) && !element_matches(&f, Multi::KeyPrefixes, "CI-", 0)
        );
        assert!(parse_value_filter(Multi::KeyPrefixes, r#"type eq "work""#).is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        let u = user();
        let inputs = [
            "\"\\",
            "\"\\u12",
            "\"é\\",
            "(((((((((",
            "not(",
            "emails[",
            "emails[]",
            "-",
            "1e",
            "a eq \"\\ud800\"",
            "userName eq \"\u{1F600}\" and \u{1F600}",
        ];
        for s in inputs {
            if let Ok(f) = parse_filter(s) {
                let _ = matches(&f, &u);
            }
        }
        let wide = vec![r#"userName eq "x""#; 200].join(" or ");
        assert!(!matches(&parse_filter(&wide).unwrap(), &u));
    }
}
