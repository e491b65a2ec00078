//! A generation call across its plan (`core::routing`): the targets its model or alias routes
//! to, tried in order — each in its own protocol (passthrough to OpenAI-compatible servers,
//! translated to the others) — until one answers or the attempts run out.
//!
//! Invariants: one reservation per call, priced on the plan's costliest target and settled at
//! the price of the one that served; a target is left for the next only on an upstream failure
//! before any byte reached the client (connect errors, timeouts before headers, 429, 529, 5xx),
//! never on the gateway's own refusals or once a stream started; a budgeted key never reaches a
//! target without a price; the ledger row names the target that served, the attempts made and
//! the last failure that fell over.

use serde_json::Value;

use super::attempts::{call_upstream, retryable_status};
use super::{admit, objects, relay, translate, Call, Tail};
use crate::config::Provider;
use crate::core::admission;
use crate::core::objects as core_objects;
use crate::core::openai::{self, RequestPeek, Route, StreamPlan};
use crate::core::pricing;
use crate::core::routing::{Gate, Target};
use crate::error::{ApiError, Side};
use crate::http::server::Exchange;
use crate::state::Shared;
use crate::upstream::Payload;

/// The worst case of this request at `model`, in micro-USD (`None`: unpriced).
fn worst_cost(shared: &Shared, call: &Call, peek: &RequestPeek, model: &str) -> Option<u64> {
    let price = shared.prices.get(model)?;
    let (worst, _) = admission::worst_case(call.input_estimate, peek.max_output_tokens, peek.choices, Some(&price));
    Some(pricing::cost(&worst, &price))
}

/// Why an answer should go to the next target instead (its error code), if it should.
fn fell_over(result: &Result<Tail, ApiError>) -> Option<String> {
    match result {
        Err(e) if e.side == Side::Upstream && (e.status == 429 || e.status >= 500) => Some(e.code.to_string()),
        Ok(Tail::Body { status, .. }) if retryable_status(*status) => Some(format!("upstream_{status}")),
        _ => None,
    }
}

/// Serves a generation call for `requested` (a model or an alias) on `route`.
#[allow(clippy::too_many_arguments)]
pub(super) fn serve(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    route: &Route,
    target_path: &str,
    body: &[u8],
    peek: &RequestPeek,
    requested: &str,
    call: &mut Call,
    now: u64,
) -> Result<Tail, ApiError> {
    let plan = shared
        .plan(requested, |m| worst_cost(shared, call, peek, m))
        .ok_or_else(|| ApiError::internal("no provider configured"))?;
    let budgeted = call.key.as_ref().is_some_and(|k| k.limits.budget_microusd.is_some());
    let targets: Vec<(&Provider, &Target)> = plan
        .targets
        .iter()
        .filter_map(|t| shared.config.providers.get(t.provider).map(|p| (p, t)))
        .filter(|(p, _)| p.kind.serves(route))
        // A budgeted key cannot be billed at an unpriced target; with others left, it is skipped.
        .filter(|(_, t)| !budgeted || plan.targets.len() == 1 || shared.prices.get(&t.model).is_some())
        .collect();
    // Targets whose circuit is open sit out, unless every one is open (then all are tried: a
    // call that can only fail is better told by the provider than by a cool-down).
    let now_ms = crate::clock::unix_ms();
    let gates: Vec<Gate> = targets.iter().map(|(_, t)| shared.targets.gate(t, now_ms)).collect();
    let targets: Vec<(&Provider, &Target)> = if gates.iter().all(|g| *g == Gate::Open) {
        targets
    } else {
        targets.into_iter().zip(&gates).filter(|(_, g)| **g != Gate::Open).map(|(t, _)| t).collect()
    };
    if targets.is_empty() {
        let p = plan.targets.first().and_then(|t| shared.config.providers.get(t.provider));
        call.provider = p.map(|p| p.name.clone());
        return Err(ApiError::unsupported_route(ex.head.path(), p.map_or("configured", |p| p.kind.as_str())));
    }
    if targets.len() > 1 {
        // One reservation for the whole plan, on its costliest target.
        let costliest = targets.iter().max_by_key(|(_, t)| worst_cost(shared, call, peek, &t.model));
        let model = costliest.map_or(requested, |(_, t)| t.model.as_str()).to_string();
        admit(shared, call, &model, peek, now)?;
    }
    let mut left = plan.max_attempts;
    for (i, (provider, target)) in targets.iter().enumerate() {
        let more = i + 1 < targets.len();
        // With targets left, this one gets a try per key of its pool; the last one what remains.
        call.attempt_cap = Some(if more { provider.api_keys.len().clamp(1, left) } else { left });
        call.provider = Some(provider.name.clone());
        call.upstream_model = (target.model != requested).then(|| target.model.clone());
        let before = call.attempts;
        let mut live = shared.targets.begin(target);
        let result = one(shared, ex, route, target_path, body, peek, provider, &target.model, requested, call, now);
        live.ttfb_us = call.ttfb.map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX));
        drop(live);
        let made = call.attempts - before;
        left = left.saturating_sub(usize::try_from(made).unwrap_or(usize::MAX));
        let failure = fell_over(&result);
        if made > 0 {
            // Only calls that reached the provider count for its circuit and counters.
            shared.targets.outcome(target, u64::from(made), failure.as_deref(), crate::clock::unix_ms());
        }
        match failure {
            Some(code) if more && left > 0 => {
                log::info!(
                    "call {}: target {}/{} failed ({code}); trying the next target",
                    call.call_id,
                    provider.name,
                    target.model
                );
                call.fallback_error = Some(code);
                call.status = 0;
                call.error_code = None;
                call.upstream_ok = false;
                call.ttfb = None;
            }
            _ => return result,
        }
    }
    Err(ApiError::upstream_unreachable("every target of the plan failed"))
}

/// The call at one target: translated when its kind does not speak the route's protocol, else
/// passed through with the target's model name.
#[allow(clippy::too_many_arguments)]
fn one(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    route: &Route,
    target_path: &str,
    body: &[u8],
    peek: &RequestPeek,
    provider: &Provider,
    model: &str,
    requested: &str,
    call: &mut Call,
    now: u64,
) -> Result<Tail, ApiError> {
    if provider.kind.translates(route) {
        return translate::generate(shared, ex, route, provider, body, peek, model, call, now);
    }
    let owner = if *route == Route::Responses { objects::owner(shared, call) } else { None };
    if let Some(owner) = &owner {
        objects::check_refs(shared, owner, body)?;
        call.track_response = true;
    }
    admit(shared, call, model, peek, now)?;
    let mut plan = StreamPlan { stream: peek.stream, client_wants_usage: true };
    let mut bytes = std::borrow::Cow::Borrowed(body);
    let stream_usage = *route == Route::ChatCompletions && peek.stream && peek.include_usage != Some(true);
    if stream_usage || model != requested {
        // Only these change the body: ask upstream for usage in the stream, name an alias's
        // target model. A body that cannot be rewritten is refused: metering is never skipped.
        let Ok(Value::Object(mut json)) = serde_json::from_slice::<Value>(body) else {
            return Err(ApiError::invalid_json(
                "the body nests deeper than 128 levels, so the gateway cannot rewrite it for the upstream",
            ));
        };
        let mut changed = model != requested;
        if changed {
            json.insert("model".into(), Value::String(model.to_string()));
        }
        if stream_usage {
            let (p, added) = openai::prepare_chat(&mut json);
            plan = p;
            changed |= added;
        }
        if changed {
            bytes = std::borrow::Cow::Owned(serde_json::to_vec(&json).map_err(|e| ApiError::internal(&e.to_string()))?);
        }
    }
    let resp = call_upstream(shared, ex, provider, target_path, Payload::Bytes(&bytes), call)?;
    let tail = relay::relay(ex, route, resp, plan, call)?;
    if let Some(owner) = &owner {
        let created = match &tail {
            Tail::Body { status, body, .. } if (200..300).contains(status) => core_objects::created_id(body),
            _ => call.created_response.take(),
        };
        if let Some(id) = created {
            objects::record(shared, owner, &id);
        }
    }
    Ok(tail)
}

/// An alias as a model-list entry.
fn alias_entry(name: &str) -> Value {
    serde_json::json!({"id": name, "object": "model", "created": 0, "owned_by": "prodex-alias"})
}

/// `GET /v1/models/{id}` for an alias the key may call: answered here (it is no provider's).
pub(super) fn alias_model(shared: &Shared, route: &Route, call: &mut Call) -> Option<Tail> {
    let Route::Model(id) = route else { return None };
    shared.config.route_aliases.iter().find(|a| a.name == *id)?;
    call.status = 200;
    let body = alias_entry(id).to_string().into_bytes();
    Some(Tail::Body { status: 200, headers: vec![("content-type".into(), "application/json".into())], body })
}

/// `GET /v1/models` with the aliases the key may call added to the provider's list.
pub(super) fn with_aliases(shared: &Shared, route: &Route, call: &Call, tail: Tail) -> Tail {
    let aliases = &shared.config.route_aliases;
    let Tail::Body { status, headers, body } = tail else { return tail };
    if *route != Route::Models || aliases.is_empty() || !(200..300).contains(&status) {
        return Tail::Body { status, headers, body };
    }
    let Ok(mut list) = serde_json::from_slice::<Value>(&body) else { return Tail::Body { status, headers, body } };
    if let Some(data) = list.get_mut("data").and_then(Value::as_array_mut) {
        let allowed = aliases.iter().filter(|a| call.key.as_ref().is_none_or(|k| k.allows(&a.name)));
        data.extend(allowed.filter(|a| !data_has(data, &a.name)).map(|a| alias_entry(&a.name)).collect::<Vec<_>>());
    }
    let body = serde_json::to_vec(&list).unwrap_or(body);
    let headers = headers.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")).collect();
    Tail::Body { status, headers, body }
}

fn data_has(data: &[Value], id: &str) -> bool {
    data.iter().any(|m| m.get("id").and_then(Value::as_str) == Some(id))
}

/// The providers besides the default whose models the list also shows: those with `models`
/// configured (the ones calls are routed to by name), in configuration order.
pub(super) fn listed_providers<'s>(shared: &'s Shared, default: &Provider) -> Vec<(usize, &'s Provider)> {
    shared
        .config
        .providers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name != default.name && !p.models.is_empty() && p.kind.serves(&Route::Models))
        .collect()
}

/// `GET /v1/models` with the models of `others` added: each provider's own list, keeping the
/// models that route to it (a provider that fails to list is left out, and logged).
pub(super) fn with_models_of(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    route: &Route,
    others: &[(usize, &Provider)],
    call: &mut Call,
    tail: Tail,
) -> Tail {
    let Tail::Body { status, headers, body } = tail else { return tail };
    if others.is_empty() || !(200..300).contains(&status) {
        return Tail::Body { status, headers, body };
    }
    let Ok(mut list) = serde_json::from_slice::<Value>(&body) else { return Tail::Body { status, headers, body } };
    let globs = crate::config::model_globs(&shared.config.providers);
    let default = shared.config.default_provider_index().unwrap_or(0);
    let (status_before, ok_before) = (call.status, call.upstream_ok);
    for &(i, provider) in others {
        let got = super::list_models(shared, ex, route, provider, "/models", call);
        let entries = match got {
            Ok(Tail::Body { status, body, .. }) if (200..300).contains(&status) => {
                serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("data").and_then(Value::as_array).cloned())
                    .unwrap_or_default()
            }
            other => {
                let why = other.err().map_or_else(|| "no list".to_string(), |e| e.code.to_string());
                log::warn!(
                    "call {}: provider {} did not list its models ({why}); left out",
                    call.call_id,
                    provider.name
                );
                continue;
            }
        };
        if let Some(data) = list.get_mut("data").and_then(Value::as_array_mut) {
            let routed = entries.into_iter().filter(|m| {
                m.get("id").and_then(Value::as_str).is_some_and(|id| {
                    crate::core::routing::provider_of(&globs, default, id) == i && !data_has(data, id)
                })
            });
            let routed: Vec<Value> = routed.collect();
            data.extend(routed);
        }
    }
    (call.status, call.upstream_ok) = (status_before, ok_before);
    let body = serde_json::to_vec(&list).unwrap_or(body);
    let headers = headers.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")).collect();
    Tail::Body { status, headers, body }
}
