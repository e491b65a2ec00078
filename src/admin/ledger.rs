//! Ledger routes: `ledger` (JSON pages by cursor), `ledger.csv` (streamed, chunked, no row cap),
//! `ledger/summary` and `ledger/summary.csv`, and the `audit` log.
//!
//! Invariants: the principal's tenant and prefixes are set on every query (`tenant_scope`,
//! `prefix_scope`), on top of what was asked, so a row is visible by the scope it was recorded
//! with; CSV is written while the store is read (bounded memory whatever the row count) and a
//! failure mid-stream ends the response without its last chunk, so a truncated export never looks
//! complete; long scans yield their worker periodically, so an export of millions of rows never
//! starves the other connections of its may worker.

use serde_json::{json, Map, Value};

use crate::admin::auth::audit_json;
use crate::admin::Reply;
use crate::core::auth::Principal;
use crate::core::csv::{ledger_header, push_bucket, push_ledger_row, summary_header};
use crate::core::directory::AuditQuery;
use crate::core::ledger::{encode_cursor, Bucket, Dimension, LedgerQuery, Summarizer};
use crate::core::pricing::micros_to_usd;
use crate::core::query::{group_by, ledger_query, ParamError, Params, LEDGER_FILTERS};
use crate::core::time::format_rfc3339;
use crate::error::ApiError;
use crate::http::server::Exchange;
use crate::state::Shared;

/// Bytes of CSV gathered before one chunk is written.
const CSV_CHUNK: usize = 64 * 1024;
/// Rows folded into a summary between yields of the coroutine.
const SUMMARY_YIELD_ROWS: u32 = 4096;

fn param(e: ParamError) -> ApiError {
    ApiError::invalid_parameter(&e.param, e.message)
}

fn unavailable(shared: &Shared, e: &crate::store::StoreError) -> ApiError {
    shared.note_state_error();
    log::error!("admin: state backend error: {e}");
    ApiError::state_unavailable()
}

/// Parses the request's parameters (only `extra` besides the ledger filters) into a scoped query.
fn scoped_query(ex: &Exchange<'_>, p: &Principal, extra: &[&str]) -> Result<(Params, Option<LedgerQuery>), ApiError> {
    let params = Params::parse(ex.head.query()).map_err(param)?;
    let known: Vec<&str> = LEDGER_FILTERS.iter().chain(extra).copied().collect();
    params.only(&known, &["group_by"]).map_err(param)?;
    let mut q = ledger_query(&params).map_err(param)?;
    // A filter outside the principal's scope selects nothing (not an error: scopes are not secret
    // from their holder, but the answer must not widen).
    if p.narrow_tenant(q.tenant_id.as_deref()).is_none() {
        return Ok((params, None));
    }
    q.tenant_scope.clone_from(&p.tenant_id);
    q.prefix_scope.clone_from(&p.key_prefixes);
    Ok((params, Some(q)))
}

/// `GET ledger`.
pub(crate) fn page(shared: &Shared, ex: &Exchange<'_>, p: &Principal) -> Result<Reply, ApiError> {
    let (params, q) = scoped_query(ex, p, &["limit", "cursor"])?;
    let limit = params.limit(100, 1000).map_err(param)?;
    let after = params.cursor().map_err(param)?;
    let Some(q) = q else { return Ok(empty_list()) };
    let page = shared.store.ledger_page(&q, after.as_ref(), limit).map_err(|e| unavailable(shared, &e))?;
    let data: Vec<Value> = page.rows.iter().map(crate::core::ledger::LedgerRow::to_json).collect();
    let next = page.next.map(|(at, id)| encode_cursor(at, &id));
    Ok(Reply::ok(json!({"object": "list", "data": data, "next_cursor": next})))
}

fn empty_list() -> Reply {
    Reply::ok(json!({"object": "list", "data": [], "next_cursor": null}))
}

fn csv_headers(name: &str) -> [(&'static str, String); 3] {
    [
        ("content-type", "text/csv; charset=utf-8; header=present".into()),
        ("content-disposition", format!("attachment; filename=\"{name}\"")),
        ("cache-control", "no-store".into()),
    ]
}

/// `GET ledger.csv`: every matching row, newest first, streamed.
pub(crate) fn csv(shared: &Shared, ex: &mut Exchange<'_>, p: &Principal) -> Result<Reply, ApiError> {
    let (_, q) = scoped_query(ex, p, &[])?;
    // Check the backend answers before committing to a 200.
    shared.store.ping().map_err(|e| unavailable(shared, &e))?;
    let headers = csv_headers("ledger.csv");
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if ex.start_stream(200, &refs).is_err() || ex.head.method == "HEAD" {
        return Ok(Reply::Sent);
    }
    let mut buf = ledger_header();
    let mut client_gone = false;
    if let Some(q) = q {
        let scanned = shared.store.ledger_scan(&q, &mut |row| {
            push_ledger_row(&mut buf, row);
            if buf.len() >= CSV_CHUNK {
                client_gone = ex.send_chunk(buf.as_bytes()).is_err();
                buf.clear();
                // A fast reader never blocks the socket, so give the worker back explicitly: an
                // export of millions of rows must not starve this worker's other connections.
                may::coroutine::yield_now();
            }
            !client_gone
        });
        if let Err(e) = scanned {
            unavailable(shared, &e);
            return Ok(Reply::Sent); // no last chunk: the client sees a truncated transfer
        }
    }
    if !client_gone && ex.send_chunk(buf.as_bytes()).is_ok() {
        let _ = ex.finish();
    }
    Ok(Reply::Sent)
}

/// `GET ledger/summary` and `ledger/summary.csv`.
pub(crate) fn summary(shared: &Shared, ex: &mut Exchange<'_>, p: &Principal, as_csv: bool) -> Result<Reply, ApiError> {
    let (params, q) = scoped_query(ex, p, &["group_by"])?;
    let dims = group_by(&params).map_err(param)?;
    let mut summary = Summarizer::new(&dims);
    if let Some(q) = q {
        let mut rows = 0u32;
        let scanned = shared.store.ledger_scan(&q, &mut |row| {
            summary.add(row);
            rows = rows.wrapping_add(1);
            if rows % SUMMARY_YIELD_ROWS == 0 {
                may::coroutine::yield_now(); // long summaries share the worker (see `csv`)
            }
            true
        });
        scanned.map_err(|e| unavailable(shared, &e))?;
    }
    let (buckets, totals) = summary.finish();
    if !as_csv {
        let data: Vec<Value> = buckets.iter().map(|b| bucket_json(b, &dims)).collect();
        let names: Vec<&str> = dims.iter().map(|d| d.name()).collect();
        return Ok(Reply::ok(json!({
            "object": "gateway.ledger.summary",
            "group_by": names,
            "data": data,
            "totals": bucket_json(&totals, &[]),
        })));
    }
    let mut out = summary_header(&dims);
    for b in &buckets {
        push_bucket(&mut out, b, &dims, false);
    }
    push_bucket(&mut out, &totals, &dims, true);
    let headers = csv_headers("ledger-summary.csv");
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if ex.start_stream(200, &refs).is_ok() && ex.send_chunk(out.as_bytes()).is_ok() {
        let _ = ex.finish();
    }
    Ok(Reply::Sent)
}

fn bucket_json(b: &Bucket, dims: &[Dimension]) -> Value {
    let mut m = Map::new();
    for (d, v) in dims.iter().zip(&b.group) {
        m.insert(d.name().into(), v.clone().map_or(Value::Null, Value::String));
    }
    let rest = json!({
        "requests": b.requests,
        "succeeded": b.succeeded,
        "rejected": b.rejected,
        "failed": b.failed,
        "input_tokens": b.input_tokens,
        "cached_input_tokens": b.cached_input_tokens,
        "cache_write_input_tokens": b.cache_write_input_tokens,
        "output_tokens": b.output_tokens,
        "reasoning_tokens": b.reasoning_tokens,
        "cost_microusd": b.cost_microusd,
        "cost_usd": micros_to_usd(b.cost_microusd),
        "first_at": b.first_at.map(format_rfc3339),
        "last_at": b.last_at.map(format_rfc3339),
    });
    if let Value::Object(r) = rest {
        m.extend(r);
    }
    Value::Object(m)
}

/// `GET audit`: newest first, by cursor, in the principal's scope.
pub(crate) fn audit(shared: &Shared, ex: &Exchange<'_>, p: &Principal) -> Result<Reply, ApiError> {
    let params = Params::parse(ex.head.query()).map_err(param)?;
    params.only(&["from", "to", "limit", "cursor"], &[]).map_err(param)?;
    let limit = params.limit(100, 500).map_err(param)?;
    let q = AuditQuery {
        from: params.time("from").map_err(param)?,
        to: params.time("to").map_err(param)?,
        tenant_scope: p.tenant_id.clone(),
        prefix_scope: p.key_prefixes.clone(),
        after: params.cursor().map_err(param)?,
        limit: limit + 1,
    };
    let mut entries = shared.store.audit_list(&q).map_err(|e| unavailable(shared, &e))?;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| encode_cursor(e.at, &e.id))
    } else {
        None
    };
    let data: Vec<Value> = entries.iter().map(audit_json).collect();
    Ok(Reply::ok(json!({"object": "list", "data": data, "next_cursor": next})))
}
