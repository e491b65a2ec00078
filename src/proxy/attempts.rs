//! Calling the upstream: the attempts of one call (a replayable body is retried by
//! `core::retry`'s policy, with the key pool rotated; a streamed body gets one attempt), and the
//! time they take, counted into the call.
//!
//! Invariant: no retry once a byte has gone to the client (every attempt here happens before the
//! relay starts).

use std::time::Duration;

use super::{upstream_headers, Call};
use crate::clock;
use crate::config::Provider;
use crate::core::ir::Outbound;
use crate::core::retry;
use crate::error::ApiError;
use crate::http::codec::Framing;
use crate::http::server::Exchange;
use crate::state::Shared;
use crate::upstream::{Failure, Payload, UpstreamResponse};

/// Upstream attempts per call (first try included).
const MAX_ATTEMPTS: usize = 3;

/// The request's `Via` header values.
pub(super) fn via_values<'e>(ex: &'e Exchange<'_>) -> impl Iterator<Item = &'e str> {
    ex.head.headers.iter().filter(|(k, _)| k == "via").map(|(_, v)| v.as_str())
}

/// A draw in `[0, 1)` for the retry jitter (the OS RNG; the clock's bits if it fails).
fn jitter() -> f64 {
    let bits = getrandom::u32().unwrap_or_else(|_| u32::try_from(clock::unix_ms() % 1_000_003).unwrap_or(0));
    f64::from(bits) / (f64::from(u32::MAX) + 1.0)
}

/// 429 and 5xx (529 included) are retried — but not 508: a loop answers the same on every attempt.
pub(super) fn retryable_status(status: u16) -> bool {
    status == 429 || (status >= 500 && status != 508)
}

fn failure_error(f: Failure) -> ApiError {
    match f {
        Failure::Connect(why) => ApiError::upstream_unreachable(why),
        Failure::Timeout => ApiError::upstream_timeout(),
        Failure::Broken(why) => ApiError::upstream_invalid_response(why),
    }
}

/// Calls upstream with a replayable body, retrying on connect errors, 429 and 5xx.
pub(super) fn call_upstream(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    provider: &Provider,
    target: &str,
    payload: Payload<'_>,
    call: &mut Call,
) -> Result<UpstreamResponse, ApiError> {
    let method = ex.head.method.clone();
    send_attempts(shared, ex, provider, &method, target, payload, call)
}

/// A request the core built (a translated call): its method, target and body.
pub(super) fn call_upstream_as(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    provider: &Provider,
    out: &Outbound,
    call: &mut Call,
) -> Result<UpstreamResponse, ApiError> {
    let payload = out.body.as_deref().map_or(Payload::Empty, Payload::Bytes);
    send_attempts(shared, ex, provider, out.method, &out.target, payload, call)
}

/// The attempts of one request with a replayable body.
fn send_attempts(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    provider: &Provider,
    method: &str,
    target: &str,
    payload: Payload<'_>,
    call: &mut Call,
) -> Result<UpstreamResponse, ApiError> {
    let url = format!("{}{target}", provider.base_url);
    let body: Option<&[u8]> = match payload {
        Payload::Bytes(b) => Some(b),
        _ => None,
    };
    let start = shared.next_key_index(provider);
    let mut waited_total = 0u64;
    // A plan's target may be capped below the default (the rest of the attempts go to the next one).
    let max_attempts = call.attempt_cap.unwrap_or(MAX_ATTEMPTS).max(1);
    for attempt in 0..max_attempts {
        call.attempts += 1;
        let headers = upstream_headers(ex, &shared.instance, provider, start + attempt, false);
        let t0 = clock::now();
        let result = shared.upstream.send(method, &url, &headers, body.map_or(Payload::Empty, Payload::Bytes));
        let waited = clock::elapsed(t0);
        ex.add_upstream_time(waited);
        call.upstream += waited;
        if let Ok(resp) = &result {
            log::debug!(
                "call {} attempt {}: upstream {} answered {} {} with {} in {} us",
                call.call_id,
                attempt + 1,
                provider.name,
                method,
                target.split('?').next().unwrap_or(""),
                resp.status(),
                waited.as_micros()
            );
        }
        let failed = match &result {
            Ok(resp) if retryable_status(resp.status()) && attempt + 1 < max_attempts => {
                let header = |n: &str| resp.header(n);
                retry::Failed::Status(
                    resp.status(),
                    retry::retry_after_ms(header("retry-after"), header("retry-after-ms")),
                )
            }
            Err(Failure::Connect(_)) if attempt + 1 < max_attempts => retry::Failed::Unreachable,
            _ => return conclude(result, call, provider, attempt),
        };
        let attempt_no = u32::try_from(attempt).unwrap_or(u32::MAX);
        match retry::next(failed, attempt_no, provider.api_keys.len(), waited_total, jitter()) {
            retry::Next::GiveUp => {
                log::info!(
                    "call {} attempt {}: upstream {} failed ({failed:?}); passing it on",
                    call.call_id,
                    attempt + 1,
                    provider.name
                );
                return conclude(result, call, provider, attempt);
            }
            retry::Next::RetryIn(ms) => {
                if let Err(Failure::Connect(why)) = result {
                    log::warn!(
                        "call {} attempt {}: cannot reach upstream {}: {why}; retrying in {ms} ms",
                        call.call_id,
                        attempt + 1,
                        provider.name
                    );
                } else {
                    log::info!(
                        "call {} attempt {}: upstream {} failed ({failed:?}); retrying in {ms} ms",
                        call.call_id,
                        attempt + 1,
                        provider.name
                    );
                }
                if ms > 0 {
                    may::coroutine::sleep(Duration::from_millis(ms));
                    waited_total += ms;
                }
            }
        }
    }
    // The last attempt always concludes above; this is only reached with no attempt at all.
    Err(ApiError::upstream_unreachable("no attempt made"))
}

/// An attempt's outcome as the call's: the response, or the error, logged.
fn conclude(
    result: Result<UpstreamResponse, Failure>,
    call: &Call,
    provider: &Provider,
    attempt: usize,
) -> Result<UpstreamResponse, ApiError> {
    match result {
        Ok(resp) => Ok(resp),
        Err(Failure::Connect(why)) => {
            log::warn!("call {} attempt {}: cannot reach upstream {}: {why}", call.call_id, attempt + 1, provider.name);
            Err(ApiError::upstream_unreachable(why))
        }
        Err(other) => {
            let err = failure_error(other);
            log::warn!("call {} attempt {}: upstream {}: {}", call.call_id, attempt + 1, provider.name, err.message);
            Err(err)
        }
    }
}

/// Calls upstream streaming the client's body (not replayable: one attempt).
pub(super) fn call_streaming_body(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    provider: &Provider,
    target: &str,
    call: &mut Call,
) -> Result<UpstreamResponse, ApiError> {
    let url = format!("{}{target}", provider.base_url);
    let keep_length = matches!(ex.head.framing, Framing::Length(_));
    call.attempts += 1;
    let headers = upstream_headers(ex, &shared.instance, provider, shared.next_key_index(provider), keep_length);
    let method = ex.head.method.clone();
    let t0 = clock::now();
    let mut reader = ex.body_reader();
    let result = shared.upstream.send(&method, &url, &headers, Payload::Reader(&mut reader));
    let waited = clock::elapsed(t0);
    ex.add_upstream_time(waited);
    call.upstream += waited;
    // A body the client made too large or too slow is the client's error (413/408), not a 502.
    let client_fault = ex.body_failed.take();
    result.map_err(|f| {
        if let Some(e) = client_fault {
            return e;
        }
        let err = failure_error(f);
        log::warn!("call {}: upstream {}: {}", call.call_id, provider.name, err.message);
        err
    })
}
