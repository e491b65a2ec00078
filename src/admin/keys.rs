//! Key routes (`keys`, `keys/{name}`, `keys/{name}/{rotate,disable,enable}`, `usage`) and the key
//! lifecycle operations the CLI shares with them (create, rotate, enable/disable, delete).
//!
//! Invariants: a key outside the principal's scope is answered as if it did not exist (404, never
//! 403, so scopes do not reveal names); a scoped admin creates keys only inside its scope; policy
//! keys are read-only; every write is compare-and-swap on `version` (412 on `If-Match` mismatch or
//! a lost race); every mutation is audited and may be made idempotent with `Idempotency-Key`; the
//! local key map is refreshed after each write so a rotated or disabled token stops working here
//! at once.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::admin::auth::{entry, record};
use crate::admin::Reply;
use crate::clock;
use crate::core::auth::Principal;
use crate::core::credential::digest;
use crate::core::directory::IdempotencyRecord;
use crate::core::keys::{in_namespace, name_fits, token_from_bytes, token_hint, KeyRecord, KeySource};
use crate::core::keyspec::{key_json, parse_create, parse_patch, usage_json, FieldError, KeyEdit};
use crate::core::ledger::encode_cursor;
use crate::core::query::Params;
use crate::error::ApiError;
use crate::http::server::{BodyError, Exchange};
use crate::state::Shared;
use crate::store::{KeyFilter, Store, StoreError};

/// `POST keys/{name}/…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Rotate,
    Disable,
    Enable,
}

impl Action {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "rotate" => Some(Self::Rotate),
            "disable" => Some(Self::Disable),
            "enable" => Some(Self::Enable),
            _ => None,
        }
    }
}

/// Largest admin request body.
const MAX_BODY: usize = 1024 * 1024;
/// How long an idempotency record is replayed.
const IDEMPOTENCY_TTL_MS: u64 = 24 * 3600 * 1000;

fn state_error(shared: &Shared, e: &StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("key_not_found", "no such key"),
        StoreError::Conflict(_) => ApiError::conflict("key_exists", "a key with this name already exists"),
        StoreError::VersionMismatch { current } => ApiError::version_mismatch(*current),
        _ => {
            shared.note_state_error();
            log::error!("admin: state backend error: {e}");
            ApiError::state_unavailable()
        }
    }
}

fn field_error(e: FieldError) -> ApiError {
    ApiError::invalid_parameter(&e.param, e.message)
}

/// Why a key lifecycle operation failed.
#[derive(Debug)]
pub enum LifecycleError {
    /// The store refused or failed (`Conflict`, `VersionMismatch`, `NotFound`, `Unavailable`…).
    Store(StoreError),
    /// The OS random number generator failed (no token can be made).
    Random,
    /// The name is in another tenant's namespace (`tenant-b:…` for a key of tenant-a).
    Namespace(String),
}

impl std::fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::Random => f.write_str("the OS random number generator failed"),
            Self::Namespace(name) => write!(f, "`{name}` is in another tenant's namespace"),
        }
    }
}

impl LifecycleError {
    /// The outcome recorded in the audit log (the admin API's error code for the same failure).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(StoreError::Conflict(_)) => "key_exists",
            Self::Store(StoreError::VersionMismatch { .. }) => "version_mismatch",
            Self::Store(StoreError::NotFound) => "key_not_found",
            Self::Store(_) => "state_unavailable",
            Self::Random => "internal_error",
            Self::Namespace(_) => "scope_forbidden",
        }
    }
}

impl From<StoreError> for LifecycleError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn lifecycle_error(shared: &Shared, e: &LifecycleError) -> ApiError {
    match e {
        LifecycleError::Store(e) => state_error(shared, e),
        LifecycleError::Random => ApiError::internal("the OS random number generator failed"),
        LifecycleError::Namespace(_) => ApiError::permission("scope_forbidden", e.to_string()),
    }
}

/// A new key token from the OS RNG.
fn new_token() -> Result<String, LifecycleError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| LifecycleError::Random)?;
    Ok(token_from_bytes(&bytes))
}

/// Creates an admin key named `name` with `edit` applied; returns it and its token (shown once).
pub fn create_key(
    store: &dyn Store,
    name: &str,
    edit: &KeyEdit,
    now: u64,
) -> Result<(KeyRecord, String), LifecycleError> {
    let token = new_token()?;
    let mut key = KeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        token_hash: digest(&token),
        token_hint: token_hint(&token),
        source: KeySource::Admin,
        created_at: now,
        updated_at: now,
        version: 1,
        ..KeyRecord::default()
    };
    edit.apply(&mut key);
    if !name_fits(&key.name, key.tenant_id.as_deref()) {
        return Err(LifecycleError::Namespace(key.name));
    }
    store.create_key(&key)?;
    Ok((key, token))
}

/// Replaces `key` with `change` applied, if it is still at its version.
fn update(
    store: &dyn Store,
    key: &KeyRecord,
    now: u64,
    change: impl FnOnce(&mut KeyRecord),
) -> Result<KeyRecord, StoreError> {
    let mut next = key.clone();
    change(&mut next);
    next.version = key.version + 1;
    next.updated_at = now;
    store.update_key(&next, key.version)?;
    Ok(next)
}

/// Applies `edit` to `key` (if it is still at its version); a namespaced key keeps its tenant.
pub fn update_key(store: &dyn Store, key: &KeyRecord, edit: &KeyEdit, now: u64) -> Result<KeyRecord, LifecycleError> {
    if let Some(tenant) = &edit.tenant_id {
        if !name_fits(&key.name, tenant.as_deref()) {
            return Err(LifecycleError::Namespace(key.name.clone()));
        }
    }
    Ok(update(store, key, now, |k| edit.apply(k))?)
}

/// Gives `key` a new token; the old one stops working. Returns the key and the new token.
pub fn rotate_key(store: &dyn Store, key: &KeyRecord, now: u64) -> Result<(KeyRecord, String), LifecycleError> {
    let token = new_token()?;
    let next = update(store, key, now, |k| {
        k.token_hash = digest(&token);
        k.token_hint = token_hint(&token);
    })?;
    Ok((next, token))
}

/// Disables or enables `key`.
pub fn set_disabled(store: &dyn Store, key: &KeyRecord, disabled: bool, now: u64) -> Result<KeyRecord, LifecycleError> {
    Ok(update(store, key, now, |k| k.disabled = disabled)?)
}

/// Deletes `key` (if still at its version).
pub fn delete_key(store: &dyn Store, key: &KeyRecord) -> Result<KeyRecord, LifecycleError> {
    Ok(store.delete_key(&key.name, Some(key.version))?)
}

/// `GET keys`.
pub(crate) fn list(shared: &Shared, ex: &Exchange<'_>, p: &Principal) -> Result<Reply, ApiError> {
    let (keys, next) = visible_page(shared, ex, p, &["prefix", "tenant_id", "disabled", "limit", "cursor"])?;
    let data: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(Reply::ok(json!({"object": "list", "data": data, "next_cursor": next})))
}

/// `GET usage`: each visible key's counters now.
pub(crate) fn usage(shared: &Shared, ex: &Exchange<'_>, p: &Principal) -> Result<Reply, ApiError> {
    let (keys, next) = visible_page(shared, ex, p, &["prefix", "tenant_id", "limit", "cursor"])?;
    let now = clock::unix_ms();
    let mut data = Vec::with_capacity(keys.len());
    for k in &keys {
        let counters = shared.store.counters(&k.limit_scope(), &k.limits, now).map_err(|e| state_error(shared, &e))?;
        data.push(usage_json(k, &counters, now));
    }
    Ok(Reply::ok(json!({"object": "list", "data": data, "next_cursor": next})))
}

/// One page of keys the principal may see, filtered by the request; and the next cursor.
fn visible_page(
    shared: &Shared,
    ex: &Exchange<'_>,
    p: &Principal,
    known: &[&str],
) -> Result<(Vec<KeyRecord>, Option<String>), ApiError> {
    let params = Params::parse(ex.head.query()).map_err(|e| ApiError::invalid_parameter(&e.param, e.message))?;
    params.only(known, &[]).map_err(|e| ApiError::invalid_parameter(&e.param, e.message))?;
    let limit = params.limit(100, 500).map_err(|e| ApiError::invalid_parameter(&e.param, e.message))?;
    let disabled = params.boolean("disabled").map_err(|e| ApiError::invalid_parameter(&e.param, e.message))?;
    let after = params
        .get("cursor")
        .map(|c| crate::core::ledger::decode_cursor(c).map(|(_, name)| name))
        .map(|c| c.ok_or_else(|| ApiError::invalid_parameter("cursor", "invalid cursor")))
        .transpose()?;
    let (Some(tenant_id), Some(prefixes)) =
        (p.narrow_tenant(params.get("tenant_id")), p.narrow_prefixes(params.get("prefix")))
    else {
        return Ok((vec![], None));
    };
    let filter = KeyFilter { prefixes, tenant_id, disabled };
    let mut keys = shared.store.keys(&filter, after.as_deref(), limit + 1).map_err(|e| state_error(shared, &e))?;
    let next = if keys.len() > limit {
        keys.truncate(limit);
        keys.last().map(|k| encode_cursor(0, &k.name.to_ascii_lowercase()))
    } else {
        None
    };
    Ok((keys, next))
}

/// The key named `name` if the principal may see it.
fn visible(shared: &Shared, p: &Principal, name: &str) -> Result<KeyRecord, ApiError> {
    match shared.store.key(name).map_err(|e| state_error(shared, &e))? {
        Some(k) if p.sees(&k.name, k.tenant_id.as_deref()) => Ok(k),
        _ => Err(ApiError::not_found("key_not_found", "no such key (or it is outside your scope)")),
    }
}

fn etag(k: &KeyRecord) -> Vec<(&'static str, String)> {
    vec![("etag", format!("\"{}\"", k.version))]
}

/// `GET keys/{name}`.
pub(crate) fn get(shared: &Shared, p: &Principal, name: &str) -> Result<Reply, ApiError> {
    let k = visible(shared, p, name)?;
    Ok(Reply::Json { status: 200, body: key_json(&k), headers: etag(&k) })
}

/// `POST keys`.
pub(crate) fn create(shared: &Shared, ex: &mut Exchange<'_>, p: &Principal) -> Result<Reply, ApiError> {
    mutate(shared, ex, p, "key.create", None, |shared, input| {
        let body = input
            .body
            .ok_or_else(|| ApiError::invalid_parameter("body", "a JSON body with at least `name` is required"))?;
        let (mut name, mut edit) = parse_create(&body).map_err(field_error)?;
        if let Some(own) = &p.tenant_id {
            match &edit.tenant_id {
                Some(Some(asked)) if asked != own => {
                    return Err(ApiError::permission("scope_forbidden", "you may only create keys in your own tenant"));
                }
                _ => edit.tenant_id = Some(Some(own.clone())),
            }
            // A tenant's admin names keys inside the tenant's namespace, so a taken name is never
            // another tenant's (no cross-tenant existence oracle in the 409).
            if crate::core::keys::namespace(&name).is_some_and(|ns| ns != own) {
                return Err(ApiError::permission(
                    "scope_forbidden",
                    format!("that name is in another tenant's namespace; your keys are named `{own}:…`"),
                ));
            }
            name = in_namespace(&name, own).map_err(|m| ApiError::invalid_parameter("name", m))?;
        }
        if !crate::core::auth::name_in(&p.key_prefixes, &name) {
            return Err(ApiError::permission(
                "scope_forbidden",
                "the key name must start with one of your key prefixes",
            ));
        }
        crate::core::keyspec::check_not_expired(&edit, clock::unix_ms()).map_err(field_error)?;
        let (key, token) = create_key(shared.store.as_ref(), &name, &edit, clock::unix_ms())
            .map_err(|e| lifecycle_error(shared, &e))?;
        let mut body = key_json(&key);
        body["token"] = Value::String(token);
        Ok((Reply::Json { status: 201, body, headers: etag(&key) }, key))
    })
}

/// `PATCH keys/{name}`.
pub(crate) fn patch(shared: &Shared, ex: &mut Exchange<'_>, p: &Principal, name: &str) -> Result<Reply, ApiError> {
    mutate(shared, ex, p, "key.update", Some(name), |shared, input| {
        let body = input
            .body
            .ok_or_else(|| ApiError::invalid_parameter("body", "a JSON object of fields to change is required"))?;
        let edit = parse_patch(&body).map_err(field_error)?;
        let key = writable(shared, p, name, input.if_match.as_deref())?;
        if p.tenant_id.is_some() && edit.tenant_id.as_ref().is_some_and(|t| *t != key.tenant_id) {
            return Err(ApiError::permission("scope_forbidden", "you may not move a key to another tenant"));
        }
        if let Some(tenant) = &edit.tenant_id {
            if !name_fits(&key.name, tenant.as_deref()) {
                return Err(ApiError::permission(
                    "scope_forbidden",
                    format!("`{}` is named in its tenant's namespace and cannot move to another tenant", key.name),
                ));
            }
        }
        let next = update(shared.store.as_ref(), &key, clock::unix_ms(), |k| edit.apply(k))
            .map_err(|e| state_error(shared, &e))?;
        Ok((Reply::Json { status: 200, body: key_json(&next), headers: etag(&next) }, next))
    })
}

/// `DELETE keys/{name}`.
pub(crate) fn delete(shared: &Shared, ex: &mut Exchange<'_>, p: &Principal, name: &str) -> Result<Reply, ApiError> {
    mutate(shared, ex, p, "key.delete", Some(name), |shared, input| {
        let key = writable(shared, p, name, input.if_match.as_deref())?;
        let gone = delete_key(shared.store.as_ref(), &key).map_err(|e| lifecycle_error(shared, &e))?;
        let body = json!({"object": "gateway.key.deleted", "id": gone.id, "name": gone.name, "deleted": true});
        Ok((Reply::ok(body), gone))
    })
}

/// `POST keys/{name}/rotate|disable|enable`.
pub(crate) fn act(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    p: &Principal,
    name: &str,
    action: Action,
) -> Result<Reply, ApiError> {
    let label = match action {
        Action::Rotate => "key.rotate",
        Action::Disable => "key.disable",
        Action::Enable => "key.enable",
    };
    mutate(shared, ex, p, label, Some(name), |shared, input| {
        let key = writable(shared, p, name, input.if_match.as_deref())?;
        let now = clock::unix_ms();
        let store = shared.store.as_ref();
        let fail = |e: LifecycleError| lifecycle_error(shared, &e);
        match action {
            Action::Rotate => {
                let (next, token) = rotate_key(store, &key, now).map_err(fail)?;
                let mut body = key_json(&next);
                body["token"] = Value::String(token);
                Ok((Reply::Json { status: 200, body, headers: etag(&next) }, next))
            }
            Action::Disable | Action::Enable => {
                let next = set_disabled(store, &key, action == Action::Disable, now).map_err(fail)?;
                Ok((Reply::Json { status: 200, body: key_json(&next), headers: etag(&next) }, next))
            }
        }
    })
}

/// What a mutation's handler gets: the parsed body (if any) and the `If-Match` header.
pub(crate) struct Input {
    body: Option<Value>,
    if_match: Option<String>,
}

/// The key named `name` if the principal may change it: visible, not a policy key, and at the
/// version `If-Match` names (when given).
fn writable(shared: &Shared, p: &Principal, name: &str, if_match: Option<&str>) -> Result<KeyRecord, ApiError> {
    let key = visible(shared, p, name)?;
    if key.source == KeySource::Policy {
        return Err(ApiError::permission(
            "key_read_only",
            "this key is declared in policy.toml ([[gateway.virtual_keys]]) and is read-only here",
        ));
    }
    if let Some(tags) = if_match {
        if !etag_matches(tags, key.version) {
            return Err(ApiError::version_mismatch(key.version));
        }
    }
    Ok(key)
}

/// `If-Match` (strong comparison): `*`, or a list of `"<version>"` tags.
fn etag_matches(header: &str, version: u64) -> bool {
    let want = version.to_string();
    header
        .split(',')
        .map(str::trim)
        // RFC 9110 wants `"2"`; a bare `2` (what people type) names the same version.
        .any(|t| t == "*" || t == want || t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(&want))
}

/// Runs a key mutation: reads the body, replays or refuses an `Idempotency-Key` retry, runs `op`,
/// stores the idempotent response, refreshes the local key map and audits the outcome.
fn mutate(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    p: &Principal,
    action: &str,
    target: Option<&str>,
    op: impl FnOnce(&Shared, Input) -> Result<(Reply, KeyRecord), ApiError>,
) -> Result<Reply, ApiError> {
    let outcome = run_mutation(shared, ex, p, op);
    let (outcome_label, tenant, name) = match &outcome {
        Ok((_, Some(k))) => ("ok".to_string(), k.tenant_id.clone(), Some(k.name.clone())),
        Ok((_, None)) => ("replayed".to_string(), p.tenant_id.clone(), target.map(String::from)),
        Err(e) => {
            // An unscoped actor's failure is filed under the target key's tenant (so that tenant's
            // admins see it); a scoped actor's stays in its own tenant.
            let tenant = if p.tenant_id.is_none() {
                target.and_then(|t| shared.store.key(t).ok().flatten()).and_then(|k| k.tenant_id)
            } else {
                None
            };
            (e.code.to_string(), tenant, target.map(String::from))
        }
    };
    record(shared, entry(p, action, name.as_deref(), tenant.as_deref(), &outcome_label, &ex.call_id));
    outcome.map(|(reply, _)| reply)
}

fn run_mutation(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    p: &Principal,
    op: impl FnOnce(&Shared, Input) -> Result<(Reply, KeyRecord), ApiError>,
) -> Result<(Reply, Option<KeyRecord>), ApiError> {
    let bytes = read_body(ex)?;
    let now = clock::unix_ms();
    let idempotency = match ex.head.header("idempotency-key") {
        Some(k) if k.is_empty() || k.len() > 255 || k.chars().any(char::is_control) => {
            return Err(ApiError::invalid_parameter(
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 printable characters",
            ));
        }
        Some(k) => {
            let mut h = Sha256::new();
            h.update(ex.head.method.as_bytes());
            h.update(b"\n");
            h.update(ex.head.path().as_bytes());
            h.update(b"\n");
            h.update(&bytes);
            let fingerprint: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            // Keyed by the principal's identity (source and name, length-prefixed so that no two
            // principals' records can meet whatever their names contain).
            Some((format!("{}:{}:{}:{k}", p.source.as_str(), p.name.len(), p.name), fingerprint))
        }
        None => None,
    };
    if let Some((key, fingerprint)) = &idempotency {
        if let Some(replay) = claim(shared, key, fingerprint, now)? {
            return Ok((replay, None));
        }
    }
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<Value>(&bytes).map_err(ApiError::invalid_json)?)
    };
    let input = Input { body, if_match: ex.head.header("if-match").map(String::from) };
    let (reply, key) = match op(shared, input) {
        Ok(done) => done,
        Err(e) => {
            // The mutation did not happen: give the key back so that a retry runs it.
            if let Some((key, _)) = &idempotency {
                if let Err(e) = shared.store.idempotency_release(key) {
                    log::warn!("admin: releasing an idempotency claim failed: {e}");
                }
            }
            return Err(e);
        }
    };
    if let Err(e) = shared.keyring.refresh(shared.store.as_ref()) {
        log::warn!("admin: refreshing the key map after a change failed: {e}");
    }
    if let (Some((key, fingerprint)), Reply::Json { status, body, .. }) = (idempotency.clone(), &reply) {
        // Tokens are never stored: a replayed create or rotate returns the key without its token.
        let mut stored = body.clone();
        if let Some(obj) = stored.as_object_mut() {
            if obj.remove("token").is_some() {
                obj.insert("token_redacted".into(), Value::Bool(true));
            }
        }
        let rec = IdempotencyRecord {
            key,
            fingerprint,
            status: *status,
            body: stored.to_string(),
            expires_at: now + IDEMPOTENCY_TTL_MS,
        };
        if let Err(e) = shared.store.idempotency_finish(&rec) {
            log::warn!("admin: storing an idempotency record failed: {e}");
        }
    } else if let Some((key, _)) = &idempotency {
        // A reply with no body to replay: nothing to keep the key for.
        if let Err(e) = shared.store.idempotency_release(key) {
            log::warn!("admin: releasing an idempotency claim failed: {e}");
        }
    }
    Ok((reply, Some(key)))
}

/// How long a claim holds its key while its mutation runs (a node that dies mid-mutation frees
/// the key after this).
const CLAIM_TTL_MS: u64 = 60 * 1000;

/// Claims `key` for this request before the mutation runs, so that two concurrent first attempts
/// never both run: `None` = claimed (run it); `Some(reply)` = the stored reply of an earlier
/// attempt. A concurrent attempt still running is 409 `idempotency_in_progress`; the same key with
/// another request is 409 `idempotency_conflict`.
fn claim(shared: &Shared, key: &str, fingerprint: &str, now: u64) -> Result<Option<Reply>, ApiError> {
    let pending = IdempotencyRecord {
        key: key.to_string(),
        fingerprint: fingerprint.to_string(),
        status: 0,
        body: String::new(),
        expires_at: now + CLAIM_TTL_MS,
    };
    for _ in 0..2 {
        if shared.store.idempotency_put(&pending, now).map_err(|e| state_error(shared, &e))? {
            return Ok(None);
        }
        // Someone holds the key; it may also have expired (or been released) just now: try again.
        let Some(stored) = shared.store.idempotency_get(key, now).map_err(|e| state_error(shared, &e))? else {
            continue;
        };
        if stored.fingerprint != fingerprint {
            return Err(ApiError::conflict(
                "idempotency_conflict",
                "this Idempotency-Key was used with a different request",
            ));
        }
        if stored.status == 0 {
            return Err(ApiError::conflict(
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still running; retry shortly to get its reply",
            ));
        }
        let body = serde_json::from_str(&stored.body).unwrap_or(Value::Null);
        let headers = vec![("idempotent-replayed", "true".to_string())];
        return Ok(Some(Reply::Json { status: stored.status, body, headers }));
    }
    Err(ApiError::conflict(
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still running; retry shortly to get its reply",
    ))
}

fn read_body(ex: &mut Exchange<'_>) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match ex.read_body(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) if out.len() + n > MAX_BODY => return Err(ApiError::request_too_large(MAX_BODY as u64)),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(BodyError::TooLarge(limit)) => return Err(ApiError::request_too_large(limit)),
            Err(BodyError::Timeout) => return Err(ApiError::request_timeout()),
            Err(BodyError::Malformed(what)) => return Err(ApiError::malformed_request(what)),
            Err(BodyError::Io(_)) => return Err(ApiError::malformed_request("request body could not be read")),
        }
    }
}
