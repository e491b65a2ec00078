//! The data plane's side of provider-object ownership (`core::objects`), on when the operator
//! sets `allow_key_object_routes = true`: before a call, an object id (or one a create body
//! refers to) must be the key's; after a create, the id it returned is recorded as the key's; a
//! list shows only the key's objects. The master token is the operator and sees the whole account.
//!
//! Invariants: checks run before admission (a refused call reserves nothing); an id is recorded
//! before its response reaches the client (a stored response streamed to the client is recorded
//! when the stream ends, before its terminating chunk); a failed lookup refuses (503), and a
//! failed record leaves the object unreachable through keys (logged), never open to others.

use super::{Call, Tail};
use crate::clock;
use crate::core::objects::{self, ObjectUse};
use crate::error::ApiError;
use crate::state::Shared;

/// The owner whose objects `call` may reach, when ownership applies to it.
pub(super) fn owner(shared: &Shared, call: &Call) -> Option<String> {
    let key = call.key.as_ref().filter(|_| shared.config.allow_key_object_routes)?;
    Some(objects::owner_of(key.tenant_id.as_deref(), &key.name))
}

fn owned(shared: &Shared, owner: &str, id: &str) -> Result<bool, ApiError> {
    match shared.store.object_owner(id) {
        Ok(found) => Ok(found.as_deref() == Some(owner)),
        Err(e) => {
            shared.note_state_error();
            log::error!("objects: looking up an owner failed: {e}");
            Err(ApiError::state_unavailable())
        }
    }
}

fn not_found(id: &str) -> ApiError {
    let shown: String = id.chars().filter(|c| !c.is_control()).take(128).collect();
    ApiError::not_found("object_not_found", format!("no object `{shown}` (or it belongs to another tenant or key)"))
}

/// Refuses a request for an object that is not `owner`'s.
pub(super) fn check_item(shared: &Shared, owner: &str, use_: ObjectUse<'_>) -> Result<(), ApiError> {
    match use_ {
        ObjectUse::Item(id) if !owned(shared, owner, id)? => Err(not_found(id)),
        _ => Ok(()),
    }
}

/// Refuses a create whose body names an object (`input_file_id`, `previous_response_id`) that
/// is not `owner`'s.
pub(super) fn check_refs(shared: &Shared, owner: &str, body: &[u8]) -> Result<(), ApiError> {
    for id in objects::referenced_ids(body).unwrap_or_default() {
        if !owned(shared, owner, &id)? {
            return Err(not_found(&id));
        }
    }
    Ok(())
}

/// Records `id` as `owner`'s. On failure the id stays nobody's: unreachable through keys.
pub(super) fn record(shared: &Shared, owner: &str, id: &str) {
    if let Err(e) = shared.store.set_object_owner(id, owner, clock::unix_ms()) {
        shared.note_state_error();
        log::error!("objects: recording the owner of a new object failed ({e}); keys cannot reach it");
    }
}

/// After a create or a list: records what a create returned, filters what a list shows.
pub(super) fn settle(
    shared: &Shared,
    owner: &str,
    use_: ObjectUse<'_>,
    tail: Tail,
    call: &Call,
) -> Result<Tail, ApiError> {
    let Tail::Body { status, headers, body } = tail else { return Ok(tail) };
    if !(200..300).contains(&status) {
        return Ok(Tail::Body { status, headers, body });
    }
    match use_ {
        ObjectUse::Create => {
            if let Some(id) = objects::created_id(&body) {
                record(shared, owner, &id);
            } else {
                log::warn!("call {}: a create answered without an object id; nothing recorded", call.call_id);
            }
            Ok(Tail::Body { status, headers, body })
        }
        ObjectUse::List => {
            let mut failed = None;
            let filtered = objects::filter_list(&body, |id| match owned(shared, owner, id) {
                Ok(mine) => mine,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })
            .ok_or_else(|| ApiError::upstream_invalid_response("the object list is not JSON"))?;
            match failed {
                Some(e) => Err(e),
                None => Ok(Tail::Body { status, headers, body: filtered }),
            }
        }
        _ => Ok(Tail::Body { status, headers, body }),
    }
}
