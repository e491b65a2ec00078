//! The data plane, in phase order: authenticate → read the request → allowlist and price → admit
//! (reserve) → call upstream (retrying only before the first byte) → relay (`relay.rs`) → settle
//! and record the ledger row → send the response's last byte.
//!
//! Invariants: client credentials never reach the upstream; every call ends in exactly one
//! `finish` (one ledger row, rejected calls included) and one access line; with
//! `ledger.durability = "commit"` a response's last byte leaves only after its row is durable;
//! a retry happens only while nothing was sent and the body is replayable, at most 3 attempts.

mod attempts;
mod mock;
mod objects;
mod plan;
mod relay;
mod translate;

use attempts::{call_streaming_body, call_upstream, via_values};

use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::config::{Durability, Provider};
use crate::core::admission::{self, Headroom, Refusal};
use crate::core::credential::{ct_eq, digest, presented, CREDENTIAL_HEADERS};
use crate::core::hops;
use crate::core::ir::Credential;
use crate::core::keys::{KeyRecord, Limits};
use crate::core::ledger::LedgerRow;
use crate::core::objects::{self as core_objects, ObjectUse};
use crate::core::openai::{self, RequestPeek, Route, StreamPlan, Usage};
use crate::core::pricing::{self, Price};
use crate::core::provider::ProviderKind;
use crate::core::route::Dialect;
use crate::core::usage;
use crate::error::ApiError;
use crate::http::codec::Framing;
use crate::http::server::Exchange;
use crate::logs;
use crate::state::Shared;
use crate::store::{Finished, Reservation, Settlement};
use crate::upstream::Payload;

pub use crate::core::usage::UsageSource;

/// Everything known about one call while it runs.
pub(crate) struct Call {
    pub call_id: String,
    pub key_name: String,
    pub key: Option<Arc<KeyRecord>>,
    pub route: &'static str,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub error_code: Option<String>,
    pub usage: Usage,
    pub usage_source: UsageSource,
    pub ttfb: Option<Duration>,
    pub upstream: Duration,
    pub client_disconnected: bool,
    pub price: Option<Price>,
    pub reservation: Option<Reservation>,
    pub headroom: Option<Headroom>,
    /// Estimated input tokens of the request (for reservations and estimated usage).
    pub input_estimate: u64,
    /// Bytes of generated content relayed in a stream (delta text, tool-call arguments; not the
    /// SSE framing or JSON envelopes), for estimating output when usage never arrived.
    pub relayed_bytes: u64,
    /// Stream events relayed: a stream that relayed events is billed (at least its input) even
    /// when no content in a shape we count came with them.
    pub relayed_events: u64,
    /// The upstream answered 2xx (so a missing usage means estimate, not release).
    pub upstream_ok: bool,
    /// Why the provider's usage could not be billed, when it could not (`core::openai::InvalidUsage`).
    pub usage_invalid: Option<String>,
    /// The worst-case usage the reservation was priced at (billed when `usage_invalid`).
    pub worst: Usage,
    /// Whether the call is admitted and billed at all (model listings are free: they check the
    /// key but take nothing from budgets or rate limits).
    pub metered: bool,
    /// A Responses call whose stored response is recorded as the key's (`allow_key_object_routes`).
    pub track_response: bool,
    /// The stored response a Responses stream created, when `track_response`.
    pub created_response: Option<String>,
    /// The model asked of the provider that served, when it is not the requested name (an alias).
    pub upstream_model: Option<String>,
    /// Upstream attempts the current target may still make (`None`: the default).
    pub attempt_cap: Option<usize>,
    /// Upstream attempts made, across every target.
    pub attempts: u32,
    /// The error of the last attempt that failed over to another target, when one did.
    pub fallback_error: Option<String>,
    /// A model list is read whole (to add the aliases to it), even with no allowlist to apply.
    pub list_whole: bool,
}

/// What is still to be sent once the call is recorded (the response's last byte).
pub(crate) enum Tail {
    /// A whole response.
    Body { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// A started stream whose terminating chunk is still to be written.
    EndOfStream,
    /// The client or the upstream is gone: nothing more to send.
    Nothing,
}

/// Handles one data-plane request for `route`, forwarding to `suffix` under the provider's base URL.
pub fn handle(shared: &Shared, ex: &mut Exchange<'_>, route: &Route, suffix: &str) {
    let mut call = Call {
        call_id: ex.call_id.clone(),
        key_name: "_anonymous".into(),
        key: None,
        route: route.name(),
        model: None,
        provider: None,
        stream: false,
        status: 0,
        error_code: None,
        usage: Usage::default(),
        usage_source: UsageSource::None,
        ttfb: None,
        upstream: Duration::ZERO,
        client_disconnected: false,
        price: None,
        reservation: None,
        headroom: None,
        input_estimate: 0,
        relayed_bytes: 0,
        relayed_events: 0,
        upstream_ok: false,
        metered: !matches!(route, Route::Models | Route::Model(_) | Route::CountTokens),
        usage_invalid: None,
        worst: Usage::default(),
        track_response: false,
        created_response: None,
        upstream_model: None,
        attempt_cap: None,
        attempts: 0,
        fallback_error: None,
        list_whole: false,
    };
    let tail = match run(shared, ex, route, suffix, &mut call) {
        Ok(tail) => tail,
        Err(err) => {
            call.error_code = Some(err.code.to_string());
            call.status = err.status;
            if ex.response_started() {
                Tail::Nothing
            } else {
                error_tail(&err, ratelimit_headers(&call), route.dialect())
            }
        }
    };
    let durable = shared.config.ledger.durability == Durability::Commit;
    if durable {
        let recorded = record(shared, ex, &mut call, true);
        // No success leaves without its row: a response is replaced by the store's error, and
        // a stream is cut before its terminating chunk (the client sees it incomplete).
        let tail = match tail {
            Tail::Body { status, .. } if !recorded && status < 400 => {
                error_tail(&ApiError::state_unavailable(), vec![], route.dialect())
            }
            Tail::EndOfStream if !recorded => Tail::Nothing,
            tail => tail,
        };
        deliver(ex, tail, &mut call);
    } else {
        deliver(ex, tail, &mut call);
        record(shared, ex, &mut call, false);
    }
}

/// The whole response for `err`: its error body in the caller's dialect, its own headers and
/// `extra`.
fn error_tail(err: &ApiError, extra: Vec<(String, String)>, dialect: Dialect) -> Tail {
    let mut headers: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    headers.extend(err.headers.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
    headers.extend(extra);
    Tail::Body { status: err.status, headers, body: err.body_in(dialect) }
}

fn deliver(ex: &mut Exchange<'_>, tail: Tail, call: &mut Call) {
    let sent = match tail {
        Tail::Body { status, headers, body } => ex.send(status, &relay::header_refs(&headers), &body),
        Tail::EndOfStream => ex.finish(),
        Tail::Nothing => Ok(()),
    };
    if sent.is_err() {
        call.client_disconnected = true;
    }
}

/// Settles (or releases) the reservation and appends the ledger row; logs the access line.
/// Returns whether the store took the row (durably, when `wait_durable`).
fn record(shared: &Shared, ex: &Exchange<'_>, call: &mut Call, wait_durable: bool) -> bool {
    let now = clock::unix_ms();
    finalize_usage(call);
    let cost = call.price.map(|p| pricing::cost(&call.usage, &p));
    let billable = call.usage_source != UsageSource::None;
    let settlement = if billable {
        Settlement::Used {
            cost_microusd: cost.unwrap_or(0),
            tokens: call.usage.input_tokens + call.usage.output_tokens,
        }
    } else {
        Settlement::Released
    };
    let latency = clock::elapsed(ex.started);
    let overhead = ex.overhead();
    let key = call.key.as_deref();
    let row = LedgerRow {
        call_id: call.call_id.clone(),
        created_at: now,
        key_name: call.key_name.clone(),
        key_id: key.map(|k| k.id.clone()),
        tenant_id: key.and_then(|k| k.tenant_id.clone()),
        team_id: key.and_then(|k| k.team_id.clone()),
        project_id: key.and_then(|k| k.project_id.clone()),
        user_id: key.and_then(|k| k.user_id.clone()),
        budget_id: key.and_then(|k| k.budget_id.clone()),
        provider: call.provider.clone(),
        route: call.route.to_string(),
        model: call.model.clone(),
        upstream_model: call.upstream_model.clone().or_else(|| call.model.clone()),
        attempts: call.attempts,
        fallback_error: call.fallback_error.clone(),
        stream: call.stream,
        status: if call.status == 0 { ex.status() } else { call.status },
        error_code: call.error_code.clone(),
        input_tokens: call.usage.input_tokens,
        cached_input_tokens: call.usage.cached_input_tokens,
        cache_write_input_tokens: call.usage.cache_write_tokens,
        output_tokens: call.usage.output_tokens,
        reasoning_tokens: call.usage.reasoning_tokens,
        usage_source: call.usage_source.as_str().to_string(),
        reserved_microusd: call.reservation.as_ref().map_or(0, |r| r.ask.cost_microusd),
        cost_microusd: if billable { cost } else { cost.map(|_| 0) },
        price_version: call.price.map(|_| shared.prices.version.clone()),
        latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        ttfb_ms: call.ttfb.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        upstream_ms: u64::try_from(call.upstream.as_millis()).unwrap_or(u64::MAX),
        overhead_us: u64::try_from(overhead.as_micros()).unwrap_or(u64::MAX),
        client_disconnected: call.client_disconnected,
    };
    // The key's spend headroom after this settlement (from the reservation's view; approximate
    // while other calls of the same scope run).
    let budget_remaining = call.key.as_ref().filter(|k| k.limits.budget_microusd.is_some()).map(|_| {
        let reserved = call.reservation.as_ref().map_or(0, |r| r.ask.cost_microusd);
        let spent = if let Settlement::Used { cost_microusd, .. } = settlement { cost_microusd } else { 0 };
        admission::spend_left_after(call.headroom.and_then(|h| h.spend_remaining_microusd), reserved, spent)
    });
    let finished = Finished { reservation: call.reservation.take(), settlement, row, wait_durable, now };
    if call.key_name == "_unauthenticated" && !shared.sample_refusal(now) {
        // Anonymous traffic cannot fill the disk: refused credentials are counted (metrics, access
        // log) and sampled into the ledger, one row per second at most.
        shared.observe(&finished.row, None);
        log_access(ex, &finished.row, call.usage_source);
        return true;
    }
    let recorded = match shared.store.finish(&finished) {
        Ok(()) => true,
        Err(e) => {
            shared.note_state_error();
            log::error!("call {}: recording the ledger row failed: {e}", call.call_id);
            shared.retry_finish(finished.clone());
            false
        }
    };
    shared.observe(&finished.row, budget_remaining);
    log_access(ex, &finished.row, call.usage_source);
    recorded
}

/// Decides the usage to bill when the provider did not report it (`core::usage::fallback`).
fn finalize_usage(call: &mut Call) {
    if call.usage_source == UsageSource::Provider {
        return;
    }
    let outcome = usage::Outcome {
        metered: call.metered,
        invalid_usage: call.usage_invalid.is_some(),
        worst: call.worst,
        upstream_ok: call.upstream_ok,
        stream: call.stream,
        relayed_bytes: call.relayed_bytes,
        relayed_events: call.relayed_events,
        input_estimate: call.input_estimate,
        cut: call.client_disconnected || call.error_code.is_some(),
    };
    let Some((billed, source)) = usage::fallback(&outcome) else { return };
    if source == UsageSource::Reserved {
        log::warn!(
            "call {}: upstream {}: {}; billed at the reservation",
            call.call_id,
            call.provider.as_deref().unwrap_or("-"),
            call.usage_invalid.as_deref().unwrap_or("")
        );
        call.error_code.get_or_insert_with(|| "upstream_invalid_usage".into());
    }
    call.usage = billed;
    call.usage_source = source;
}

/// The principal of a data-plane call: the master token, a virtual key, or nobody.
fn authenticate(shared: &Shared, ex: &Exchange<'_>, call: &mut Call, now: u64) -> Result<(), ApiError> {
    let credential = presented(&ex.head.headers);
    if let Some(c) = credential {
        let hash = digest(c);
        if shared.master_digest.as_ref().is_some_and(|m| ct_eq(&hash, m)) {
            call.key_name = "_gateway".into();
            return Ok(());
        }
        // The map is keyed by digest: the lookup itself is the constant-time-safe comparison
        // (equal digests are found, no byte-by-byte comparison of secrets happens).
        if let Some(key) = shared.keyring.get(&hash) {
            call.key_name = key.name.clone();
            if !key.usable(now) {
                let err = if key.disabled { ApiError::key_disabled() } else { ApiError::key_expired() };
                call.key = Some(key);
                return Err(err);
            }
            call.key = Some(key);
            return Ok(());
        }
        call.key_name = "_unauthenticated".into();
        return Err(ApiError::invalid_api_key());
    }
    if shared.config.auth_required(shared.keyring.len()) {
        call.key_name = "_unauthenticated".into();
        Err(ApiError::invalid_api_key())
    } else {
        Ok(())
    }
}

fn run(shared: &Shared, ex: &mut Exchange<'_>, route: &Route, suffix: &str, call: &mut Call) -> Result<Tail, ApiError> {
    let now = clock::unix_ms();
    hops::check(via_values(ex), &shared.instance).map_err(|l| ApiError::loop_detected(l.message()))?;
    authenticate(shared, ex, call, now)?;
    let target = match ex.head.query() {
        Some(q) => format!("{suffix}?{q}"),
        None => suffix.to_string(),
    };
    match route {
        Route::ChatCompletions | Route::Responses | Route::Embeddings | Route::Completions | Route::Messages => {
            let body = ex.read_body_to_end().map_err(|e| e.to_api_error())?;
            let peek = openai::peek_request(route, &body).map_err(|e| match e {
                openai::PeekError::Json(m) => ApiError::invalid_json(m),
                openai::PeekError::Param { param, message } => ApiError::invalid_parameter(param, message),
            })?;
            let Some(model) = peek.model.clone() else {
                return Err(ApiError::bad_request("missing_parameter", "`model` is required").with_param("model"));
            };
            call.model = Some(printable(&model));
            call.stream = peek.stream;
            check_model(call, &model)?;
            call.input_estimate = admission::estimate_input_tokens(body.len());
            plan::serve(shared, ex, route, &target, &body, &peek, &model, call, now)
        }
        Route::Models | Route::Model(_) => {
            if let (Route::Model(id), Some(key)) = (route, &call.key) {
                if !key.allows(id) {
                    return Err(ApiError::model_not_found(id));
                }
            }
            if let Some(alias) = plan::alias_model(shared, route, call) {
                return Ok(alias);
            }
            // Free: no reservation, so nothing is taken from budgets, RPM or the request count.
            // One model goes to the provider it routes to; the list is the default provider's,
            // with the other routed providers' and the aliases added.
            let id = if let Route::Model(id) = route { Some(id.as_str()) } else { None };
            let provider = pick_provider(shared, id, route, ex.head.path(), call)?;
            let others = if id.is_none() { plan::listed_providers(shared, provider) } else { Vec::new() };
            call.list_whole = !shared.config.route_aliases.is_empty() || !others.is_empty();
            let tail = list_models(shared, ex, route, provider, &target, call)?;
            let tail = plan::with_models_of(shared, ex, route, &others, call, tail);
            Ok(plan::with_aliases(shared, route, call, tail))
        }
        Route::CountTokens => {
            // Free, like model listings: the key and its allowlist are checked, nothing is reserved.
            let body = ex.read_body_to_end().map_err(|e| e.to_api_error())?;
            let peek = openai::peek_request(route, &body).map_err(|e| match e {
                openai::PeekError::Json(m) => ApiError::invalid_json(m),
                openai::PeekError::Param { param, message } => ApiError::invalid_parameter(param, message),
            })?;
            let Some(model) = peek.model else {
                return Err(ApiError::bad_request("missing_parameter", "`model` is required").with_param("model"));
            };
            call.model = Some(printable(&model));
            check_model(call, &model)?;
            let provider = pick_provider(shared, Some(&model), route, ex.head.path(), call)?;
            if provider.kind.translates(route) {
                return translate::count_tokens(shared, ex, provider, &body, call);
            }
            let resp = call_upstream(shared, ex, provider, &target, Payload::Bytes(&body), call)?;
            relay::relay_whole(ex, resp, call)
        }
        Route::Passthrough => {
            if call.key.is_some() && openai::holds_objects(suffix) && !shared.config.allow_key_object_routes {
                return Err(ApiError::permission(
                    "object_route_forbidden",
                    format!(
                        "{} reaches files, batches, uploads or stored responses, which live in the one provider \
                         account every key shares; virtual keys may not use them unless the operator sets \
                         allow_key_object_routes = true",
                        ex.head.path()
                    ),
                ));
            }
            if let Some(key) = &call.key {
                // A free route (the provider charges nothing) needs no price and names no model a
                // key's allowlist governs: budgeted and allowlisted keys may use it (F12).
                let free = openai::free_route(&ex.head.method, suffix);
                if !free && (!key.allowed_models.is_empty() || key.limits.budget_microusd.is_some()) {
                    return Err(ApiError::permission(
                        "model_not_allowed",
                        format!(
                            "this key is limited to listed models or a spend budget; {} cannot be checked or priced",
                            ex.head.path()
                        ),
                    ));
                }
            }
            // With object routes on, a key reaches only the objects its tenant (or itself) created.
            let use_ = core_objects::object_use(&ex.head.method, suffix);
            let owner = if openai::holds_objects(suffix) { objects::owner(shared, call) } else { None };
            let mut whole = None;
            if let Some(owner) = &owner {
                objects::check_item(shared, owner, use_)?;
                if use_ == ObjectUse::Create && suffix.starts_with("/batches") {
                    let body = ex.read_body_to_end().map_err(|e| e.to_api_error())?;
                    objects::check_refs(shared, owner, &body)?;
                    whole = Some(body);
                }
            }
            let provider = pick_provider(shared, None, route, ex.head.path(), call)?;
            admit(shared, call, "", &RequestPeek::default(), now)?;
            let resp = match &whole {
                Some(body) => call_upstream(shared, ex, provider, &target, Payload::Bytes(body), call)?,
                None if ex.head.framing == Framing::None => {
                    call_upstream(shared, ex, provider, &target, Payload::Empty, call)?
                }
                None => call_streaming_body(shared, ex, provider, &target, call)?,
            };
            match &owner {
                Some(owner) if matches!(use_, ObjectUse::Create | ObjectUse::List) => {
                    let tail = relay::relay_whole(ex, resp, call)?;
                    objects::settle(shared, owner, use_, tail, call)
                }
                _ => relay::relay(ex, route, resp, StreamPlan { stream: false, client_wants_usage: true }, call),
            }
        }
    }
}

/// Allowlist (on the requested model, before any alias) and pricing rules.
fn check_model(call: &mut Call, model: &str) -> Result<(), ApiError> {
    if let Some(key) = &call.key {
        if !key.allows(model) {
            return Err(ApiError::permission(
                "model_not_allowed",
                format!("this key may not use model `{}`", printable(model)),
            )
            .with_param("model"));
        }
    }
    Ok(())
}

/// Prices the call and takes its reservation (every principal is metered; limits apply to keys).
/// The worst case is every choice (`n`, `best_of`) running to the route's output bound (else the
/// model's maximum output), on the body's input estimate plus, for stored-context calls, the
/// configured `stored_context_input_tokens`.
fn admit(shared: &Shared, call: &mut Call, model: &str, peek: &RequestPeek, now: u64) -> Result<(), ApiError> {
    let limits = call.key.as_ref().map_or_else(Limits::default, |k| k.limits.clone());
    call.price = if model.is_empty() { None } else { shared.prices.get(model) };
    let budgeted_unpriced = limits.budget_microusd.is_some() && call.price.is_none() && !model.is_empty();
    if call.reservation.is_some() && !budgeted_unpriced {
        // A plan's later target: reserved on the plan's costliest already; billed at this one's price.
        return Ok(());
    }
    if budgeted_unpriced {
        return Err(ApiError::permission(
            "model_not_priced",
            format!("model `{}` has no price and this key has a spend budget", printable(model)),
        )
        .with_param("model"));
    }
    let stored = if peek.stored_context { shared.config.stored_context_input_tokens } else { 0 };
    let (worst, ask) = admission::worst_case(
        call.input_estimate.saturating_add(stored),
        peek.max_output_tokens,
        peek.choices,
        call.price.as_ref(),
    );
    call.worst = worst;
    let scope = call.key.as_ref().map_or_else(|| format!("key:{}", call.key_name), |k| k.limit_scope());
    let reservation = Reservation { call_id: call.call_id.clone(), scope, limits: limits.clone(), ask, at: now };
    let reserved = shared.store.reserve(&reservation);
    if reserved.is_ok() {
        shared.note_state_ok();
    }
    match reserved {
        Ok(Ok(headroom)) => {
            call.headroom = Some(headroom);
            call.reservation = Some(reservation);
            Ok(())
        }
        Ok(Err(refusal)) => {
            let counters = shared.store.counters(&reservation.scope, &limits, now).ok();
            call.headroom = counters.as_ref().map(|c| admission::headroom(c, &limits, now));
            let mut err = refusal_error(refusal);
            if let (Refusal::SpendBudget, Some(c), Some(budget)) = (refusal, &counters, limits.budget_microusd) {
                err.message = admission::spend_refusal_message(c, budget, ask);
            }
            Err(err)
        }
        Err(e) => {
            shared.note_state_error();
            log::error!("call {}: admission failed: {e}", call.call_id);
            Err(ApiError::state_unavailable())
        }
    }
}

fn refusal_error(r: Refusal) -> ApiError {
    match r {
        Refusal::RequestBudget => ApiError::quota(r.code(), "this key's request budget is used up"),
        Refusal::SpendBudget => ApiError::quota(r.code(), "this key's spend budget is used up"),
        Refusal::Rpm { retry_after_secs } => {
            ApiError::rate_limited(r.code(), "requests per minute limit reached", retry_after_secs)
        }
        Refusal::Tpm { retry_after_secs } => {
            ApiError::rate_limited(r.code(), "tokens per minute limit reached", retry_after_secs)
        }
        Refusal::Parallel => ApiError::rate_limited(r.code(), "too many requests in flight for this key", 1),
    }
}

/// OpenAI's `x-ratelimit-*` headers for keys with RPM or TPM limits.
pub(crate) fn ratelimit_headers(call: &Call) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(h) = call.headroom else { return out };
    for (kind, window) in [("requests", h.requests), ("tokens", h.tokens)] {
        if let Some((limit, remaining, reset)) = window {
            out.push((format!("x-ratelimit-limit-{kind}"), limit.to_string()));
            out.push((format!("x-ratelimit-remaining-{kind}"), remaining.to_string()));
            out.push((format!("x-ratelimit-reset-{kind}"), format!("{reset}s")));
        }
    }
    out
}

/// A provider's model list (or one model), relayed or translated.
fn list_models(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    route: &Route,
    provider: &Provider,
    target: &str,
    call: &mut Call,
) -> Result<Tail, ApiError> {
    if provider.kind.translates(route) {
        return translate::models(shared, ex, route, provider, call);
    }
    let resp = call_upstream(shared, ex, provider, target, Payload::Empty, call)?;
    relay::relay(ex, route, resp, StreamPlan { stream: false, client_wants_usage: true }, call)
}

/// The provider for `model`, when its kind serves `route` (an OpenAI-compatible upstream serves
/// every route; a translated one the routes its protocol module lists).
fn pick_provider<'s>(
    shared: &'s Shared,
    model: Option<&str>,
    route: &Route,
    path: &str,
    call: &mut Call,
) -> Result<&'s Provider, ApiError> {
    let provider = shared.provider_for(model).ok_or_else(|| ApiError::internal("no provider configured"))?;
    call.provider = Some(provider.name.clone());
    if !provider.kind.serves(route) {
        return Err(ApiError::unsupported_route(path, provider.kind.as_str()));
    }
    Ok(provider)
}

/// Request headers for the upstream: the client's, minus credentials, hop-by-hop and framing
/// headers and anything of ours, plus the provider key.
fn upstream_headers(
    ex: &Exchange<'_>,
    instance: &str,
    provider: &Provider,
    key_index: usize,
    keep_length: bool,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ex
        .head
        .headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            !CREDENTIAL_HEADERS.contains(&n)
                && !matches!(
                    n,
                    "host"
                        | "connection"
                        | "keep-alive"
                        | "transfer-encoding"
                        | "te"
                        | "trailer"
                        | "upgrade"
                        | "expect"
                        | "accept-encoding"
                        | "cookie"
                        | "proxy-authorization"
                        | "proxy-connection"
                        | "openai-organization"
                        | "openai-project"
                        | "via"
                )
                && (keep_length || n != "content-length")
                && !n.starts_with("x-prodex-")
                && !n.starts_with("x-forwarded-")
        })
        .cloned()
        .collect();
    if !provider.api_keys.is_empty() {
        let key = &provider.api_keys[key_index % provider.api_keys.len()];
        match provider.kind.credential() {
            Credential::Bearer => out.push(("authorization".into(), format!("Bearer {}", key.expose()))),
            Credential::Header(name) => out.push((name.into(), key.expose().to_string())),
        }
    }
    if provider.kind == ProviderKind::Anthropic && !out.iter().any(|(k, _)| k == "anthropic-version") {
        out.push(("anthropic-version".into(), crate::core::anthropic::VERSION.into()));
    }
    out.push(("via".into(), hops::forwarded_via(via_values(ex), instance)));
    if let Some(org) = &provider.organization {
        out.push(("openai-organization".into(), org.clone()));
    }
    if let Some(project) = &provider.project {
        out.push(("openai-project".into(), project.clone()));
    }
    out
}

/// Client-supplied text made safe for a log line: bounded, no control characters or spaces.
fn printable(s: &str) -> String {
    s.chars().take(128).map(|c| if c.is_control() || c == ' ' { '?' } else { c }).collect()
}

fn log_access(ex: &Exchange<'_>, row: &LedgerRow, source: UsageSource) {
    use crate::core::ledger::AccessValue::Str;
    let path = printable(ex.head.path());
    let peer = ex.peer.to_string();
    let mut fields = crate::core::ledger::access_fields(row, source.as_str());
    fields.extend([("method", Str(&ex.head.method)), ("path", Str(&path)), ("peer", Str(&peer))]);
    logs::access(&fields);
}
