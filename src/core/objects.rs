//! Ownership of provider objects (files, batches, uploads, stored responses) created through
//! virtual keys when the operator sets `allow_key_object_routes = true`: they live in the one
//! provider account every key shares, so the gateway records who created each id and answers only
//! the owner. What a request does to objects, who owns what, and which ids a response creates or a
//! list may show are decided here; the proxy stores and enforces.
//!
//! Invariants: a key reaches an object id only if the store records the key's owner for it (an
//! id the gateway never saw created is nobody's: 404, never the provider's answer); the owner is
//! the key's tenant, or the key itself when it has none; lists show only the caller's objects;
//! a create that names another object (a batch's `input_file_id`, a response's
//! `previous_response_id`) needs that object to be the caller's too.

use serde_json::Value;

/// What a passthrough request does to objects (`suffix` as `route::classify` returns it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectUse<'a> {
    /// Creates an object; its id is in the response (`POST /files`, `/batches`, `/uploads`).
    Create,
    /// Lists objects (`GET /files`, `/batches`): the response's `data` is filtered.
    List,
    /// Reads, changes or deletes one object, or a part of it (`GET /files/{id}/content`,
    /// `POST /batches/{id}/cancel`, `DELETE /responses/{id}`…).
    Item(&'a str),
    /// Not an object route.
    None,
}

/// Passthrough families whose objects live in the provider account every key shares.
pub const FAMILIES: [&str; 4] = ["files", "batches", "uploads", "responses"];

/// Classifies `method suffix` (suffix starting with `/`, without the query).
#[must_use]
pub fn object_use<'a>(method: &str, suffix: &'a str) -> ObjectUse<'a> {
    let mut parts = suffix.trim_start_matches('/').splitn(3, '/');
    let family = parts.next().unwrap_or("");
    if !FAMILIES.contains(&family) {
        return ObjectUse::None;
    }
    match (parts.next().filter(|id| !id.is_empty()), method) {
        (Some(id), _) => ObjectUse::Item(id),
        // Stored responses are created by the Responses route itself, not here.
        (None, "POST") if family != "responses" => ObjectUse::Create,
        (None, "GET" | "HEAD") if family != "responses" && family != "uploads" => ObjectUse::List,
        (None, _) => ObjectUse::None,
    }
}

/// The owner recorded for objects a key creates: its tenant, else the key itself.
#[must_use]
pub fn owner_of(tenant_id: Option<&str>, key_name: &str) -> String {
    match tenant_id {
        Some(t) => format!("tenant:{t}"),
        None => format!("key:{key_name}"),
    }
}

/// The id a create answered with: the top-level `id` of a JSON object.
#[must_use]
pub fn created_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()).map(String::from)
}

/// The stored response a Responses stream creates: `response.id` of its first event that has one.
#[must_use]
pub fn stream_response_id(data: &str) -> Option<String> {
    if !data.contains("\"response\"") {
        return None;
    }
    let v: Value = serde_json::from_str(data).ok()?;
    v.pointer("/response/id").and_then(Value::as_str).filter(|id| !id.is_empty()).map(String::from)
}

/// Object ids a create body refers to, which must be the caller's too: a batch's input file, a
/// response's previous response. `None` when the body is not JSON.
#[must_use]
pub fn referenced_ids(body: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let ids = ["input_file_id", "previous_response_id"]
        .iter()
        .filter_map(|field| v.get(*field).and_then(Value::as_str))
        .map(String::from)
        .collect();
    Some(ids)
}

/// The entries of a provider list (`{"data": [{"id": …}, …]}`) whose id passes `mine`; `None`
/// when the body is not such a list.
#[must_use]
pub fn filter_list(body: &[u8], mut mine: impl FnMut(&str) -> bool) -> Option<Vec<u8>> {
    let mut list: Value = serde_json::from_slice(body).ok()?;
    let data = list.get_mut("data")?.as_array_mut()?;
    data.retain(|o| o.get("id").and_then(Value::as_str).is_some_and(&mut mine));
    // The paging hints described the unfiltered page; keep them consistent with what is shown.
    if let Some(obj) = list.as_object_mut() {
        let ids: Vec<Option<Value>> = {
            let data = obj.get("data").and_then(Value::as_array);
            let first = data.and_then(|d| d.first()).and_then(|o| o.get("id")).cloned();
            let last = data.and_then(|d| d.last()).and_then(|o| o.get("id")).cloned();
            vec![first, last]
        };
        for (field, id) in ["first_id", "last_id"].iter().zip(ids) {
            if obj.contains_key(*field) {
                obj.insert((*field).to_string(), id.unwrap_or(Value::Null));
            }
        }
    }
    serde_json::to_vec(&list).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_what_they_do_to_objects() {
        let cases = [
            ("POST", "/files", ObjectUse::Create),
            ("GET", "/files", ObjectUse::List),
            ("GET", "/files/file-1", ObjectUse::Item("file-1")),
            ("GET", "/files/file-1/content", ObjectUse::Item("file-1")),
            ("DELETE", "/files/file-1", ObjectUse::Item("file-1")),
            ("POST", "/batches", ObjectUse::Create),
            ("GET", "/batches", ObjectUse::List),
            ("POST", "/batches/b1/cancel", ObjectUse::Item("b1")),
            ("POST", "/uploads", ObjectUse::Create),
            ("POST", "/uploads/u1/parts", ObjectUse::Item("u1")),
            ("GET", "/uploads", ObjectUse::None),
            ("GET", "/responses/resp_1", ObjectUse::Item("resp_1")),
            ("GET", "/responses/resp_1/input_items", ObjectUse::Item("resp_1")),
            ("POST", "/responses", ObjectUse::None),
            ("GET", "/files/", ObjectUse::List),
            ("POST", "/images/generations", ObjectUse::None),
            ("GET", "/vector_stores", ObjectUse::None),
        ];
        for (method, suffix, want) in cases {
            assert_eq!(object_use(method, suffix), want, "{method} {suffix}");
        }
    }

    #[test]
    fn owners_ids_references_and_lists() {
        assert_eq!(owner_of(Some("tenant-a"), "k"), "tenant:tenant-a");
        assert_eq!(owner_of(None, "k"), "key:k");
        assert_ne!(owner_of(Some("k"), "k"), owner_of(None, "k"), "a tenant and a key never share an owner");
        assert_eq!(created_id(br#"{"id":"file-1","object":"file"}"#).as_deref(), Some("file-1"));
        assert_eq!(created_id(br#"{"id":""}"#), None);
        assert_eq!(created_id(b"[1]"), None);
        let created = r#"{"type":"response.created","response":{"id":"resp_9","status":"in_progress"}}"#;
        assert_eq!(stream_response_id(created).as_deref(), Some("resp_9"));
        assert_eq!(stream_response_id(r#"{"type":"response.output_text.delta","delta":"hi"}"#), None);
        let refs = referenced_ids(br#"{"input_file_id":"file-1","endpoint":"/v1/chat/completions"}"#).unwrap();
        assert_eq!(refs, ["file-1"]);
        assert_eq!(referenced_ids(br#"{"previous_response_id":"resp_1"}"#).unwrap(), ["resp_1"]);
        assert_eq!(referenced_ids(b"not json"), None);
        let list = br#"{"object":"list","data":[{"id":"a"},{"id":"b"},{"id":"c"}],"first_id":"a","last_id":"c","has_more":false}"#;
        let out: Value = serde_json::from_slice(&filter_list(list, |id| id != "a").unwrap()).unwrap();
        assert_eq!(out["data"], serde_json::json!([{"id": "b"}, {"id": "c"}]));
        assert_eq!((out["first_id"].as_str(), out["last_id"].as_str()), (Some("b"), Some("c")));
        let out: Value = serde_json::from_slice(&filter_list(list, |_| false).unwrap()).unwrap();
        assert_eq!((out["data"].as_array().unwrap().len(), out["first_id"].is_null()), (0, true));
        assert_eq!(filter_list(br#"{"data":{}}"#, |_| true), None);
    }
}
