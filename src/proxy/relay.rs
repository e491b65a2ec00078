//! Relaying the upstream's answer: whole JSON bodies (read for usage), SSE streams event by event
//! (usage read from the events, injected usage hidden), and anything else byte for byte. Each
//! returns the `Tail` — what is left to send after the call is recorded.

use std::io::Read;

use serde_json::Value;

use super::{ratelimit_headers, Call, Tail, UsageSource};
use crate::clock;
use crate::core::anthropic::{self, response::Counts};
use crate::core::objects;
use crate::core::openai::{self, ChatEvent, Route, StreamPlan, UsageRead};
use crate::core::pricing;
use crate::core::sse;
use crate::error::ApiError;
use crate::http::server::Exchange;
use crate::upstream;

/// Largest non-streamed upstream body read whole (for usage, errors and model lists).
const MAX_WHOLE_BODY: u64 = 256 * 1024 * 1024;

pub(super) fn header_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

type Response = upstream::UpstreamResponse;

/// Relays `resp` for `route`.
pub(super) fn relay(
    ex: &mut Exchange<'_>,
    route: &Route,
    resp: Response,
    plan: StreamPlan,
    call: &mut Call,
) -> Result<Tail, ApiError> {
    let status = resp.status();
    let mut headers = resp.relayed_headers();
    headers.extend(ratelimit_headers(call));
    let is_sse = resp.is_event_stream();
    call.status = status;
    if !(200..300).contains(&status) {
        call.error_code = Some("upstream_error".into());
        let body = read_whole(ex, resp, call)?;
        return Ok(Tail::Body { status, headers, body });
    }
    call.upstream_ok = true;
    if is_sse {
        return relay_sse(ex, route, status, &headers, resp, plan, call);
    }
    if route.meters_usage() {
        let body = read_whole(ex, resp, call)?;
        let usage = if *route == Route::Messages {
            // An Anthropic message (passthrough to an Anthropic upstream): its own usage shape.
            serde_json::from_slice::<Value>(&body).map(|v| anthropic::response::usage(&v))
        } else {
            openai::body_usage(&body).map_err(|_| serde_json::Error::io(std::io::ErrorKind::InvalidData.into()))
        };
        let usage = usage.map_err(|_| ApiError::upstream_invalid_response("the body is not JSON"))?;
        note_usage(call, usage);
        if let Some(price) = call.price {
            // What the ledger will bill: the reservation when the provider's usage was malformed.
            let billed = if call.usage_invalid.is_some() { call.worst } else { call.usage };
            headers.push((
                "x-prodex-cost-usd".into(),
                format!("{:.6}", pricing::micros_to_usd(pricing::cost(&billed, &price))),
            ));
        }
        call.ttfb = Some(clock::elapsed(ex.started));
        return Ok(Tail::Body { status, headers, body });
    }
    if *route == Route::Models && (call.list_whole || call.key.as_ref().is_some_and(|k| !k.allowed_models.is_empty())) {
        let body = read_whole(ex, resp, call)?;
        let filtered = filter_models(&body, |id| call.key.as_ref().is_none_or(|k| k.allows(id)))
            .ok_or_else(|| ApiError::upstream_invalid_response("the model list is not JSON"))?;
        call.ttfb = Some(clock::elapsed(ex.started));
        return Ok(Tail::Body { status, headers, body: filtered });
    }
    relay_raw(ex, status, &headers, resp, call)
}

/// Reads the whole answer (a create's or a list's, for `proxy::objects`) into a `Tail::Body`.
pub(super) fn relay_whole(ex: &mut Exchange<'_>, resp: Response, call: &mut Call) -> Result<Tail, ApiError> {
    let status = resp.status();
    let mut headers = resp.relayed_headers();
    headers.extend(ratelimit_headers(call));
    call.status = status;
    if (200..300).contains(&status) {
        call.upstream_ok = true;
    } else {
        call.error_code = Some("upstream_error".into());
    }
    let body = read_whole(ex, resp, call)?;
    call.ttfb = Some(clock::elapsed(ex.started));
    Ok(Tail::Body { status, headers, body })
}

/// Keeps the entries of an OpenAI model list whose id passes `keep`.
fn filter_models(body: &[u8], keep: impl Fn(&str) -> bool) -> Option<Vec<u8>> {
    let mut list: Value = serde_json::from_slice(body).ok()?;
    let data = list.get_mut("data")?.as_array_mut()?;
    data.retain(|m| m.get("id").and_then(Value::as_str).is_some_and(&keep));
    serde_json::to_vec(&list).ok()
}

pub(super) fn read_whole(ex: &mut Exchange<'_>, resp: Response, call: &mut Call) -> Result<Vec<u8>, ApiError> {
    let t0 = clock::now();
    let read = resp.read_to_vec(MAX_WHOLE_BODY);
    let waited = clock::elapsed(t0);
    ex.add_upstream_time(waited);
    call.upstream += waited;
    read.map_err(|e| ApiError::upstream_invalid_response(format!("reading the body failed: {e}")))
}

/// Streams an upstream body through untouched (chunked to the client).
fn relay_raw(
    ex: &mut Exchange<'_>,
    status: u16,
    headers: &[(String, String)],
    resp: Response,
    call: &mut Call,
) -> Result<Tail, ApiError> {
    let mut reader = resp.into_reader();
    let mut buf = vec![0u8; 16 * 1024];
    if !start(ex, status, headers, call) {
        return Ok(Tail::Nothing);
    }
    loop {
        match timed_read(ex, call, &mut reader, &mut buf) {
            Ok(0) => return Ok(Tail::EndOfStream),
            Ok(n) => {
                if ex.send_chunk(&buf[..n]).is_err() {
                    call.client_disconnected = true;
                    return Ok(Tail::Nothing);
                }
            }
            Err(e) => {
                log::warn!("call {}: upstream body broke: {e}", call.call_id);
                call.error_code = Some("upstream_stream_broken".into());
                return Ok(Tail::Nothing); // the unfinished chunked body tells the client it was cut
            }
        }
    }
}

/// Starts the streamed response; false when the client is already gone.
fn start(ex: &mut Exchange<'_>, status: u16, headers: &[(String, String)], call: &mut Call) -> bool {
    if ex.start_stream(status, &header_refs(headers)).is_err() {
        call.client_disconnected = true;
        return false;
    }
    call.ttfb = Some(clock::elapsed(ex.started));
    true
}

/// One read from the upstream body, its wait counted as upstream time (not gateway overhead).
pub(super) fn timed_read(
    ex: &mut Exchange<'_>,
    call: &mut Call,
    reader: &mut impl Read,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let t0 = clock::now();
    let n = reader.read(buf);
    let waited = clock::elapsed(t0);
    ex.add_upstream_time(waited);
    call.upstream += waited;
    n
}

/// The upstream stream broke or sent what is not SSE (recorded on the call); the unfinished
/// chunked body tells the client it was cut.
pub(super) struct StreamBroke;

/// The SSE events the next upstream read completes: `None` at the end of the stream.
pub(super) fn read_events(
    ex: &mut Exchange<'_>,
    call: &mut Call,
    reader: &mut impl Read,
    buf: &mut [u8],
    decoder: &mut sse::Decoder,
) -> Result<Option<Vec<sse::Event>>, StreamBroke> {
    let n = match timed_read(ex, call, reader, buf) {
        Ok(0) => return Ok(None),
        Ok(n) => n,
        Err(e) => {
            log::warn!("call {}: upstream stream broke: {e}", call.call_id);
            call.error_code = Some("upstream_stream_broken".into());
            return Err(StreamBroke);
        }
    };
    decoder.feed(&buf[..n]).map(Some).map_err(|_| {
        call.error_code = Some("upstream_invalid_response".into());
        StreamBroke
    })
}

/// Relays an SSE stream event by event, metering usage and hiding injected usage chunks.
fn relay_sse(
    ex: &mut Exchange<'_>,
    route: &Route,
    status: u16,
    headers: &[(String, String)],
    resp: Response,
    plan: StreamPlan,
    call: &mut Call,
) -> Result<Tail, ApiError> {
    call.stream = true;
    let mut reader = resp.into_reader();
    let mut decoder = sse::Decoder::default();
    // Anthropic's counts arrive in pieces (input in message_start, output in message_delta).
    let mut counts = Counts::default();
    let mut buf = vec![0u8; 16 * 1024];
    if !start(ex, status, headers, call) {
        return Ok(Tail::Nothing);
    }
    loop {
        let events = match read_events(ex, call, &mut reader, &mut buf, &mut decoder) {
            Ok(Some(events)) => events,
            Ok(None) => break,
            Err(StreamBroke) => return Ok(Tail::Nothing),
        };
        for event in events {
            let action = if *route == Route::ChatCompletions {
                let (usage, action) = openai::chat_event(&event.raw, &event.data, plan.client_wants_usage);
                note_usage(call, usage);
                action
            } else if *route == Route::Messages {
                note_usage(call, anthropic::response::stream_usage(&mut counts, &event.data));
                ChatEvent::Forward
            } else {
                note_usage(call, openai::stream_event_usage(&event.data));
                if call.track_response && call.created_response.is_none() {
                    call.created_response = objects::stream_response_id(&event.data);
                }
                ChatEvent::Forward
            };
            let sent = match action {
                ChatEvent::Forward => ex.send_chunk(&event.raw),
                ChatEvent::Rewrite(bytes) => ex.send_chunk(&bytes),
                ChatEvent::Drop => Ok(()),
            };
            if sent.is_err() {
                call.client_disconnected = true;
                return Ok(Tail::Nothing); // dropping `reader` closes the upstream connection
            }
            if call.usage_source != UsageSource::Provider {
                call.relayed_bytes += if *route == Route::Messages {
                    anthropic::response::generated_bytes(&event.data)
                } else {
                    openai::generated_bytes(&event.data)
                };
                call.relayed_events += u64::from(event.data != "[DONE]");
            }
        }
    }
    if let Some(rest) = decoder.finish() {
        if ex.send_chunk(&rest.raw).is_err() {
            call.client_disconnected = true;
            return Ok(Tail::Nothing);
        }
    }
    Ok(Tail::EndOfStream)
}

/// Takes the provider's usage; a malformed one is remembered (the call is billed at its
/// reservation unless valid usage follows).
pub(super) fn note_usage(call: &mut Call, usage: Option<UsageRead>) {
    match usage {
        Some(Ok(u)) => {
            call.usage = u;
            call.usage_source = UsageSource::Provider;
            call.usage_invalid = None;
        }
        Some(Err(why)) if call.usage_source != UsageSource::Provider => call.usage_invalid = Some(why.0),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::filter_models;

    #[test]
    fn model_lists_are_filtered_by_the_allowlist() {
        let body = br#"{"object":"list","data":[{"id":"gpt-4o-mini"},{"id":"gpt-4o"},{"id":"o3"}]}"#;
        let out = filter_models(body, |id| id.starts_with("gpt-4o-")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        assert_eq!(filter_models(b"nope", |_| true), None);
    }
}
