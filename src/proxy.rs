//! The data plane, in phase order: authenticate → read and prepare the request → pick the
//! provider → call upstream (retrying only before the first byte) → relay the response (SSE event
//! by event) → record the call. Every decision is a core function; this file performs them.
//!
//! Invariants: client credentials never reach the upstream; a retry happens only while nothing
//! has been sent to the client and the request body is replayable; every call ends in exactly one
//! `CallRecord` (logged as the access line; persisted by the ledger).

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::clock;
use crate::config::{Provider, ProviderKind};
use crate::core::credential::{ct_eq, digest, presented, CREDENTIAL_HEADERS};
use crate::core::openai::{self, ChatEvent, Route, StreamPlan, Usage};
use crate::core::sse;
use crate::error::ApiError;
use crate::http::codec::Framing;
use crate::http::server::Exchange;
use crate::state::Shared;
use crate::upstream::{self, Failure, Payload};

/// Where a call's usage numbers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageSource {
    Provider,
    Partial,
    Estimated,
    None,
}

impl UsageSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Partial => "partial",
            Self::Estimated => "estimated",
            Self::None => "none",
        }
    }
}

/// What one data-plane call did; becomes the access line (and, with the ledger, a ledger row).
#[derive(Clone, Debug)]
pub struct CallRecord {
    pub call_id: String,
    pub key_name: String,
    pub route: &'static str,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub error_code: Option<String>,
    pub usage: Usage,
    pub usage_source: UsageSource,
    pub latency: Duration,
    pub ttfb: Option<Duration>,
    pub upstream: Duration,
    pub client_disconnected: bool,
}

/// Upstream attempts per call (first try included).
const MAX_ATTEMPTS: usize = 3;
/// Largest non-streamed upstream body read for usage.
const MAX_METERED_BODY: u64 = 256 * 1024 * 1024;

/// Handles one data-plane request for `route`, forwarding to `suffix` under the provider's base URL.
pub fn handle(shared: &Shared, ex: &mut Exchange<'_>, route: &Route, suffix: &str) {
    let mut rec = CallRecord {
        call_id: ex.call_id.clone(),
        key_name: "_anonymous".into(),
        route: route.name(),
        model: None,
        provider: None,
        stream: false,
        status: 0,
        error_code: None,
        usage: Usage::default(),
        usage_source: UsageSource::None,
        latency: Duration::ZERO,
        ttfb: None,
        upstream: Duration::ZERO,
        client_disconnected: false,
    };
    if let Err(err) = run(shared, ex, route, suffix, &mut rec) {
        rec.error_code = Some(err.code.to_string());
        rec.status = err.status;
        if !ex.response_started() {
            let _ = ex.send_error(&err);
        }
    }
    if rec.status == 0 {
        rec.status = ex.status();
    }
    rec.latency = clock::elapsed(ex.started);
    log_access(&rec, ex.overhead());
}

fn authenticate(shared: &Shared, ex: &Exchange<'_>) -> Result<String, ApiError> {
    let credential = presented(&ex.head.headers);
    if let (Some(c), Some(master)) = (credential, &shared.master_digest) {
        if ct_eq(&digest(c), master) {
            return Ok("_gateway".into());
        }
    }
    if shared.config.require_auth {
        Err(ApiError::invalid_api_key())
    } else {
        Ok("_anonymous".into())
    }
}

fn run(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    route: &Route,
    suffix: &str,
    rec: &mut CallRecord,
) -> Result<(), ApiError> {
    rec.key_name = authenticate(shared, ex)?;
    let target = match ex.head.query() {
        Some(q) => format!("{suffix}?{q}"),
        None => suffix.to_string(),
    };
    match route {
        Route::ChatCompletions | Route::Responses | Route::Embeddings | Route::Completions => {
            let body = ex.read_body_to_end().map_err(|e| e.to_api_error())?;
            let peek = openai::peek_request(&body).map_err(ApiError::invalid_json)?;
            let Some(model) = peek.model else {
                return Err(ApiError::bad_request("missing_parameter", "`model` is required").with_param("model"));
            };
            rec.model = Some(printable(&model));
            rec.stream = peek.stream;
            let provider = pick_provider(shared, Some(&model), route, rec)?;
            let mut plan = StreamPlan { stream: peek.stream, client_wants_usage: true };
            let mut bytes = body;
            if *route == Route::ChatCompletions && peek.stream && peek.include_usage != Some(true) {
                // Only this case changes the body: ask upstream for usage in the stream.
                if let Ok(Value::Object(mut json)) = serde_json::from_slice::<Value>(&bytes) {
                    let (p, changed) = openai::prepare_chat(&mut json);
                    plan = p;
                    if changed {
                        bytes = serde_json::to_vec(&json).unwrap_or(bytes);
                    }
                }
            }
            let resp = call_upstream(shared, ex, provider, &target, Payload::Bytes(&bytes), rec)?;
            relay(ex, route, resp, plan, rec)
        }
        Route::Models | Route::Model(_) => {
            let provider = pick_provider(shared, None, route, rec)?;
            let resp = call_upstream(shared, ex, provider, &target, Payload::Empty, rec)?;
            relay(ex, route, resp, StreamPlan { stream: false, client_wants_usage: true }, rec)
        }
        Route::Messages => Err(ApiError::bad_request(
            "unsupported_route",
            "POST /v1/messages (Anthropic shape) needs the Anthropic translation, which this build does not include yet",
        )),
        Route::Passthrough => {
            let provider = pick_provider(shared, None, route, rec)?;
            let resp = if ex.head.framing == Framing::None {
                call_upstream(shared, ex, provider, &target, Payload::Empty, rec)?
            } else {
                let mut reader = BodyCopy { ex: &mut *ex };
                let resp = call_streaming_body(shared, &mut reader, provider, &target, rec);
                resp?
            };
            relay(ex, route, resp, StreamPlan { stream: false, client_wants_usage: true }, rec)
        }
    }
}

fn pick_provider<'s>(
    shared: &'s Shared,
    model: Option<&str>,
    route: &Route,
    rec: &mut CallRecord,
) -> Result<&'s Provider, ApiError> {
    let provider = shared.provider_for(model).ok_or_else(|| ApiError::internal("no provider configured"))?;
    rec.provider = Some(provider.name.clone());
    if provider.kind != ProviderKind::OpenAi {
        return Err(ApiError::unsupported_route(&format!("/v1/{}", route.name()), provider.kind.as_str()));
    }
    Ok(provider)
}

/// Request headers for the upstream: the client's, minus credentials, hop-by-hop and framing
/// headers and anything of ours, plus the provider key.
fn upstream_headers(
    ex: &Exchange<'_>,
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
                )
                && (keep_length || n != "content-length")
                && !n.starts_with("x-prodex-")
                && !n.starts_with("x-forwarded-")
        })
        .cloned()
        .collect();
    if !provider.api_keys.is_empty() {
        let key = &provider.api_keys[key_index % provider.api_keys.len()];
        out.push(("authorization".into(), format!("Bearer {}", key.expose())));
    }
    out
}

fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Calls upstream with a replayable body, retrying on connect errors, 429 and 5xx.
fn call_upstream(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    provider: &Provider,
    target: &str,
    payload: Payload<'_>,
    rec: &mut CallRecord,
) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
    let url = format!("{}{target}", provider.base_url);
    let method = ex.head.method.clone();
    let body: Option<&[u8]> = match payload {
        Payload::Bytes(b) => Some(b),
        _ => None,
    };
    let start = shared.next_key_index();
    let mut last_err = ApiError::upstream_unreachable("no attempt made");
    for attempt in 0..MAX_ATTEMPTS {
        let headers = upstream_headers(ex, provider, start + attempt, false);
        let t0 = clock::now();
        let payload = body.map_or(Payload::Empty, Payload::Bytes);
        let result = shared.upstream.send(&method, &url, &headers, payload);
        let waited = clock::elapsed(t0);
        ex.add_upstream_time(waited);
        rec.upstream += waited;
        match result {
            Ok(resp) if retryable_status(resp.status().as_u16()) && attempt + 1 < MAX_ATTEMPTS => {
                log::info!(
                    "call {} attempt {}: upstream {} answered {}; retrying",
                    rec.call_id,
                    attempt + 1,
                    provider.name,
                    resp.status().as_u16()
                );
                last_err = ApiError::upstream_unreachable(format!("status {}", resp.status().as_u16()));
            }
            Ok(resp) => return Ok(resp),
            Err(Failure::Connect(why)) => {
                log::warn!(
                    "call {} attempt {}: cannot reach upstream {}: {why}",
                    rec.call_id,
                    attempt + 1,
                    provider.name
                );
                last_err = ApiError::upstream_unreachable(why);
            }
            Err(Failure::Timeout) => return Err(ApiError::upstream_timeout()),
            Err(Failure::Broken(why)) => return Err(ApiError::upstream_invalid_response(why)),
        }
    }
    Err(last_err)
}

/// `io::Read` over the client's request body, for streaming it upstream.
struct BodyCopy<'a, 'c> {
    ex: &'a mut Exchange<'c>,
}

impl Read for BodyCopy<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.ex.read_body(buf).map_err(std::io::Error::from)
    }
}

/// Calls upstream streaming the client's body (not replayable: one attempt).
fn call_streaming_body(
    shared: &Shared,
    reader: &mut BodyCopy<'_, '_>,
    provider: &Provider,
    target: &str,
    rec: &mut CallRecord,
) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
    let url = format!("{}{target}", provider.base_url);
    let keep_length = matches!(reader.ex.head.framing, Framing::Length(_));
    let headers = upstream_headers(reader.ex, provider, shared.next_key_index(), keep_length);
    let method = reader.ex.head.method.clone();
    let t0 = clock::now();
    let result = shared.upstream.send(&method, &url, &headers, Payload::Reader(reader));
    let waited = clock::elapsed(t0);
    reader.ex.add_upstream_time(waited);
    rec.upstream += waited;
    result.map_err(|f| match f {
        Failure::Connect(why) => ApiError::upstream_unreachable(why),
        Failure::Timeout => ApiError::upstream_timeout(),
        Failure::Broken(why) => ApiError::upstream_invalid_response(why),
    })
}

fn header_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Relays the upstream response to the client, reading usage on the way.
fn relay(
    ex: &mut Exchange<'_>,
    route: &Route,
    resp: ureq::http::Response<ureq::Body>,
    plan: StreamPlan,
    rec: &mut CallRecord,
) -> Result<(), ApiError> {
    let status = resp.status().as_u16();
    let headers = upstream::relayed_headers(resp.headers());
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    rec.status = status;
    if !(200..300).contains(&status) {
        rec.error_code = Some("upstream_error".into());
        return relay_raw(ex, status, &headers, resp, rec);
    }
    if is_sse {
        return relay_sse(ex, route, status, &headers, resp, plan, rec);
    }
    if route.meters_usage() {
        let t0 = clock::now();
        let read = resp.into_body().into_with_config().limit(MAX_METERED_BODY).read_to_vec();
        let waited = clock::elapsed(t0);
        ex.add_upstream_time(waited);
        rec.upstream += waited;
        let body = read.map_err(|e| ApiError::upstream_invalid_response(format!("reading the body failed: {e}")))?;
        let usage =
            openai::body_usage(&body).map_err(|_| ApiError::upstream_invalid_response("the body is not JSON"))?;
        if let Some(usage) = usage {
            rec.usage = usage;
            rec.usage_source = UsageSource::Provider;
        }
        rec.ttfb = Some(clock::elapsed(ex.started));
        if ex.send(status, &header_refs(&headers), &body).is_err() {
            rec.client_disconnected = true;
        }
        return Ok(());
    }
    relay_raw(ex, status, &headers, resp, rec)
}

/// Streams an upstream body through untouched (chunked to the client).
fn relay_raw(
    ex: &mut Exchange<'_>,
    status: u16,
    headers: &[(String, String)],
    resp: ureq::http::Response<ureq::Body>,
    rec: &mut CallRecord,
) -> Result<(), ApiError> {
    let mut reader = upstream::body_reader(resp);
    let mut buf = vec![0u8; 16 * 1024];
    ex.start_stream(status, &header_refs(headers)).map_err(|_| client_gone(rec))?;
    rec.ttfb = Some(clock::elapsed(ex.started));
    loop {
        let t0 = clock::now();
        let n = reader.read(&mut buf);
        let waited = clock::elapsed(t0);
        ex.add_upstream_time(waited);
        rec.upstream += waited;
        match n {
            Ok(0) => break,
            Ok(n) => {
                if ex.send_chunk(&buf[..n]).is_err() {
                    rec.client_disconnected = true;
                    return Ok(());
                }
            }
            Err(e) => {
                log::warn!("call {}: upstream body broke: {e}", rec.call_id);
                rec.error_code = Some("upstream_stream_broken".into());
                return Ok(()); // the unfinished chunked body tells the client it was cut
            }
        }
    }
    let _ = ex.finish();
    Ok(())
}

fn client_gone(rec: &mut CallRecord) -> ApiError {
    rec.client_disconnected = true;
    ApiError::internal("client went away")
}

/// Relays an SSE stream event by event, metering usage and hiding injected usage chunks.
fn relay_sse(
    ex: &mut Exchange<'_>,
    route: &Route,
    status: u16,
    headers: &[(String, String)],
    resp: ureq::http::Response<ureq::Body>,
    plan: StreamPlan,
    rec: &mut CallRecord,
) -> Result<(), ApiError> {
    rec.stream = true;
    let mut reader = upstream::body_reader(resp);
    let mut decoder = sse::Decoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    ex.start_stream(status, &header_refs(headers)).map_err(|_| client_gone(rec))?;
    rec.ttfb = Some(clock::elapsed(ex.started));
    loop {
        let t0 = clock::now();
        let read = reader.read(&mut buf);
        let waited = clock::elapsed(t0);
        ex.add_upstream_time(waited);
        rec.upstream += waited;
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                log::warn!("call {}: upstream stream broke: {e}", rec.call_id);
                rec.error_code = Some("upstream_stream_broken".into());
                mark_partial(rec);
                return Ok(());
            }
        };
        let Ok(events) = decoder.feed(&buf[..n]) else {
            rec.error_code = Some("upstream_invalid_response".into());
            mark_partial(rec);
            return Ok(());
        };
        for event in events {
            let action = if *route == Route::ChatCompletions {
                let (usage, action) = openai::chat_event(&event.raw, &event.data, plan.client_wants_usage);
                note_usage(rec, usage);
                action
            } else {
                note_usage(rec, openai::stream_event_usage(&event.data));
                ChatEvent::Forward
            };
            let sent = match action {
                ChatEvent::Forward => ex.send_chunk(&event.raw),
                ChatEvent::Rewrite(bytes) => ex.send_chunk(&bytes),
                ChatEvent::Drop => Ok(()),
            };
            if sent.is_err() {
                rec.client_disconnected = true;
                mark_partial(rec);
                return Ok(()); // dropping `reader` closes the upstream connection
            }
        }
    }
    if let Some(rest) = decoder.finish() {
        if ex.send_chunk(&rest.raw).is_err() {
            rec.client_disconnected = true;
        }
    }
    let _ = ex.finish();
    Ok(())
}

fn note_usage(rec: &mut CallRecord, usage: Option<Usage>) {
    if let Some(u) = usage {
        rec.usage = u;
        rec.usage_source = UsageSource::Provider;
    }
}

fn mark_partial(rec: &mut CallRecord) {
    if rec.usage_source != UsageSource::Provider {
        rec.usage_source = UsageSource::Partial;
    }
}

/// Client-supplied text made safe for a log line: bounded, no control characters or spaces.
fn printable(s: &str) -> String {
    s.chars().take(128).map(|c| if c.is_control() || c == ' ' { '?' } else { c }).collect()
}

fn log_access(rec: &CallRecord, overhead: Duration) {
    log::info!(
        target: "access",
        "call={} key={} route={} model={} provider={} stream={} status={} error={} input_tokens={} cached_input_tokens={} output_tokens={} reasoning_tokens={} usage_source={} latency_ms={} ttfb_ms={} upstream_ms={} overhead_us={} client_disconnected={}",
        rec.call_id,
        rec.key_name,
        rec.route,
        rec.model.as_deref().unwrap_or("-"),
        rec.provider.as_deref().unwrap_or("-"),
        rec.stream,
        rec.status,
        rec.error_code.as_deref().unwrap_or("-"),
        rec.usage.input_tokens,
        rec.usage.cached_input_tokens,
        rec.usage.output_tokens,
        rec.usage.reasoning_tokens,
        rec.usage_source.as_str(),
        rec.latency.as_millis(),
        rec.ttfb.map_or(-1, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        rec.upstream.as_millis(),
        overhead.as_micros(),
        rec.client_disconnected,
    );
}
