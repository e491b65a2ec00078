//! Calls translated to a provider that does not speak the caller's protocol (Gemini for every
//! route, Anthropic for OpenAI clients): the request is decoded into the intermediate form by
//! the ingress dialect (`core::openai::{chat, responses, embed}`, `core::anthropic::messages`),
//! refused by name or admitted, encoded for the provider (through `ProviderKind`'s dispatch), sent through the same
//! attempts as a passthrough call (retries and key rotation before the first byte), and the
//! answer is decoded and re-encoded — whole, or event by event for streams.
//!
//! Invariants: a refusal happens before admission (no reservation is taken for a request the
//! provider could not have served); the provider's usage is read from every answer (the last
//! cumulative value in streams) and billed as for passthrough; a provider error is answered in
//! the caller's dialect with its status mapped once (`ApiError::provider`); a translated stream
//! ends with the exact OpenAI sequence, or with an error event when the provider failed.

use serde_json::{Map, Value};

use super::attempts::call_upstream_as;
use super::relay::{header_refs, note_usage, read_events, read_whole, StreamBroke};
use super::{admit, printable, ratelimit_headers, Call, Tail, UsageSource};
use crate::clock;
use crate::config::Provider;
use crate::core::anthropic::{self, messages};
use crate::core::gemini::{self, embed as gembed};
use crate::core::ir::{self, StreamDecoder, StreamEncoder};
use crate::core::openai::{chat, embed, responses, RequestPeek, Route};
use crate::core::pricing;
use crate::core::provider::ProviderKind;
use crate::core::route::Dialect;
use crate::core::sse;
use crate::error::ApiError;
use crate::http::server::Exchange;
use crate::state::Shared;
use crate::upstream;

type Response = upstream::UpstreamResponse;

/// Most model-list pages read from the provider for one `GET /v1/models`.
const MAX_MODEL_PAGES: usize = 20;

fn refused(r: &chat::Refusal) -> ApiError {
    ApiError::refused(r.code, &r.param, r.message.clone())
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid_json("the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid_json(e)),
    }
}

fn model_segment(model: &str) -> Result<&str, ApiError> {
    gemini::model_segment(model).map_err(|_| {
        ApiError::invalid_parameter(
            "model",
            format!("`{}` is not a model name this provider can address", printable(model)),
        )
    })
}

/// A short, id-safe tag of this call for ids the provider left unnamed.
pub(super) fn id_seed(call: &Call) -> String {
    let hex: String = call.call_id.chars().filter(char::is_ascii_hexdigit).collect();
    hex[hex.len().saturating_sub(12)..].to_string()
}

/// The headers of a translated answer: its content type, the ignored hints, the rate limits.
pub(super) fn answer_headers(call: &Call, content_type: &str, ignored: &[String]) -> Vec<(String, String)> {
    let mut headers = vec![("content-type".to_string(), content_type.to_string())];
    if !ignored.is_empty() {
        headers.push(("x-prodex-ignored-params".into(), ignored.join(", ")));
    }
    headers.extend(ratelimit_headers(call));
    headers
}

/// The provider's error answer as the client's.
fn provider_error(ex: &mut Exchange<'_>, kind: ProviderKind, resp: Response, call: &mut Call) -> ApiError {
    let status = resp.status();
    let retry = resp.header("retry-after").map(str::to_string);
    call.status = status;
    let body = match read_whole(ex, resp, call) {
        Ok(body) => body,
        Err(e) => return e,
    };
    let err = ApiError::provider(&kind.error(status, &body, retry.as_deref()));
    log::info!(
        "call {}: upstream {} answered {status} ({})",
        call.call_id,
        call.provider.as_deref().unwrap_or("-"),
        err.code
    );
    err
}

/// The provider's 2xx JSON answer, or its error as the client's; `what` names the body in the
/// message when it is not JSON.
fn json_answer(
    ex: &mut Exchange<'_>,
    kind: ProviderKind,
    resp: Response,
    call: &mut Call,
    what: &str,
) -> Result<Value, ApiError> {
    if !(200..300).contains(&resp.status()) {
        return Err(provider_error(ex, kind, resp, call));
    }
    call.upstream_ok = true;
    let raw = read_whole(ex, resp, call)?;
    serde_json::from_slice(&raw).map_err(|_| ApiError::upstream_invalid_response(format!("{what} is not JSON")))
}

/// Remote media a request may make the gateway fetch.
const MAX_FETCHES: usize = 16;

/// Replaces each remote media part by the fetched bytes, when the operator turned fetching on
/// (`[gateway.media] fetch_remote`); otherwise the request is refused naming the URL's parameter.
fn fetch_media(shared: &Shared, request: &mut ir::Request, call: &mut Call) -> Result<(), ApiError> {
    use base64::Engine as _;
    let mut fetched = 0;
    for part in request.turns.iter_mut().flat_map(|t| t.parts.iter_mut()) {
        let ir::Part::Remote { url, param } = part else { continue };
        let Some(fetcher) = shared.upstream.fetcher() else {
            return Err(ApiError::refused(
                "unsupported_parameter",
                param,
                "remote URLs are not fetched (the operator has not turned on [gateway.media] fetch_remote); send the media as a data: URL",
            ));
        };
        fetched += 1;
        if fetched > MAX_FETCHES {
            return Err(ApiError::refused(
                "unsupported_parameter",
                param,
                format!("at most {MAX_FETCHES} remote media URLs per request"),
            ));
        }
        let t0 = clock::now();
        let got = fetcher.get(url);
        call.upstream += clock::elapsed(t0);
        let (mime, bytes) = got.map_err(|e| {
            ApiError::refused("invalid_parameter", param, format!("the media could not be fetched: {e}"))
        })?;
        if !(mime.starts_with("image/") || mime.starts_with("audio/") || mime == "application/pdf") {
            return Err(ApiError::refused(
                "invalid_parameter",
                param,
                "the URL did not answer with an image, audio or PDF",
            ));
        }
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        *part = ir::Part::Media { mime, data };
    }
    Ok(())
}

/// Chat completions, Responses, messages and embeddings to a translating provider, for the
/// plan's `target_model`.
#[allow(clippy::too_many_arguments)]
pub(super) fn generate(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    route: &Route,
    provider: &Provider,
    body: &[u8],
    peek: &RequestPeek,
    target_model: &str,
    call: &mut Call,
    now: u64,
) -> Result<Tail, ApiError> {
    let json = object(body)?;
    if *route == Route::Embeddings {
        let (req, ignored) = embed::decode_request(&json).map_err(|r| refused(&r))?;
        let model = model_segment(target_model)?.to_string();
        admit(shared, call, target_model, peek, now)?;
        if provider.kind == ProviderKind::Mock {
            return Ok(super::mock::embeddings(ex, &req, &ignored, call));
        }
        return embeddings(shared, ex, provider, &req, &model, &ignored, call);
    }
    let dialect = route.dialect();
    let decoded = match dialect {
        Dialect::OpenAiResponses => responses::decode_request(&json),
        Dialect::AnthropicMessages => messages::decode_request(&json, false),
        _ => chat::decode_request(&json),
    };
    let mut decoded = decoded.map_err(|r| refused(&r))?;
    if dialect == Dialect::AnthropicMessages && ex.head.headers.iter().any(|(k, _)| k == "anthropic-beta") {
        decoded.ignored.push("anthropic-beta".into());
    }
    let kind = provider.kind;
    // The plan's target model (the requested one, or an alias's).
    let model =
        if kind == ProviderKind::Gemini { model_segment(target_model)?.to_string() } else { target_model.to_string() };
    let mut request = decoded.request;
    request.model.clone_from(&model);
    let refuse = |u: ir::Unsupported| {
        refused(&match dialect {
            Dialect::OpenAiResponses => responses::refuse(&u),
            Dialect::AnthropicMessages => anthropic::refuse(&u),
            _ => chat::refuse(&u),
        })
    };
    kind.check(&request).map_err(refuse)?;
    admit(shared, call, &model, peek, now)?;
    if kind == ProviderKind::Mock {
        return super::mock::answer(ex, dialect, &request, &decoded.ignored, decoded.include_usage, call);
    }
    if kind.fetches_media() {
        fetch_media(shared, &mut request, call)?;
    }
    let out = kind.generate_request(&request).map_err(refuse)?;
    let resp = call_upstream_as(shared, ex, provider, &out, call)?;
    if !(200..300).contains(&resp.status()) {
        return Err(provider_error(ex, kind, resp, call));
    }
    call.status = 200;
    call.upstream_ok = true;
    if request.stream {
        let encoder = encoder_for(dialect, &id_seed(call), &model, decoded.include_usage);
        return stream(ex, kind, resp, encoder, &decoded.ignored, call);
    }
    let value = json_answer(ex, kind, resp, call, "the body")?;
    note_usage(call, kind.usage(&value));
    let answer = kind.decode(&value, &model, &id_seed(call)).map_err(|e| ApiError::provider(&e))?;
    Ok(whole_answer(ex, dialect, &answer, &decoded.ignored, call))
}

/// The stream encoder of the caller's dialect.
pub(super) fn encoder_for(dialect: Dialect, seed: &str, model: &str, include_usage: bool) -> Box<dyn StreamEncoder> {
    let created = clock::unix_ms() / 1000;
    match dialect {
        Dialect::OpenAiResponses => Box::new(responses::EventEncoder::new(seed, model, created, seed)),
        Dialect::AnthropicMessages => Box::new(messages::EventEncoder::new(seed, model, seed)),
        _ => Box::new(chat::ChunkEncoder::new(seed, model, created, seed, include_usage)),
    }
}

/// A whole answer in the caller's dialect, with its headers (cost included).
pub(super) fn whole_answer(
    ex: &Exchange<'_>,
    dialect: Dialect,
    answer: &ir::Response,
    ignored: &[String],
    call: &mut Call,
) -> Tail {
    let created = clock::unix_ms() / 1000;
    let out = match dialect {
        Dialect::OpenAiResponses => responses::encode_response(answer, created, &id_seed(call)),
        Dialect::AnthropicMessages => messages::encode_message(answer, &id_seed(call)),
        _ => chat::encode_response(answer, created, &id_seed(call)),
    };
    let mut headers = answer_headers(call, "application/json", ignored);
    cost_header(&mut headers, call);
    call.ttfb = Some(clock::elapsed(ex.started));
    Tail::Body { status: 200, headers, body: out.to_string().into_bytes() }
}

/// Starts a translated stream (its headers, the time to first byte); `false`: the client is gone.
pub(super) fn start_stream(ex: &mut Exchange<'_>, ignored: &[String], call: &mut Call) -> bool {
    let mut headers = answer_headers(call, "text/event-stream", ignored);
    headers.insert(1, ("cache-control".to_string(), "no-cache".to_string()));
    if ex.start_stream(200, &header_refs(&headers)).is_err() {
        call.client_disconnected = true;
        return false;
    }
    call.ttfb = Some(clock::elapsed(ex.started));
    true
}

pub(super) fn cost_header(headers: &mut Vec<(String, String)>, call: &Call) {
    if let Some(price) = call.price {
        let billed = if call.usage_invalid.is_some() { call.worst } else { call.usage };
        headers.push((
            "x-prodex-cost-usd".into(),
            format!("{:.6}", pricing::micros_to_usd(pricing::cost(&billed, &price))),
        ));
    }
}

/// A provider's SSE stream relayed in the client's dialect, event by event.
fn stream(
    ex: &mut Exchange<'_>,
    kind: ProviderKind,
    resp: Response,
    mut encoder: Box<dyn StreamEncoder>,
    ignored: &[String],
    call: &mut Call,
) -> Result<Tail, ApiError> {
    call.stream = true;
    let mut reader = resp.into_reader();
    let mut frames = sse::Decoder::default();
    let mut decoder = kind.stream_decoder();
    if !start_stream(ex, ignored, call) {
        return Ok(Tail::Nothing);
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut failed = false;
    'read: loop {
        let events = match read_events(ex, call, &mut reader, &mut buf, &mut frames) {
            Ok(Some(events)) => events,
            Ok(None) => break,
            Err(StreamBroke) => return Ok(Tail::Nothing),
        };
        for frame in events.iter().filter(|f| !f.data.is_empty()) {
            match forward(ex, call, decoder.as_mut(), encoder.as_mut(), &frame.data) {
                Forwarded::Sent => {}
                Forwarded::Failed => {
                    failed = true;
                    break 'read;
                }
                Forwarded::ClientGone => return Ok(Tail::Nothing),
            }
        }
    }
    if let Some(rest) = frames.finish().filter(|f| !f.data.is_empty() && !failed) {
        // A last chunk without its blank line still counts (the stream ends at EOF).
        match forward(ex, call, decoder.as_mut(), encoder.as_mut(), &rest.data) {
            Forwarded::Sent => {}
            Forwarded::Failed => failed = true,
            Forwarded::ClientGone => return Ok(Tail::Nothing),
        }
    }
    if !failed && !decoder.finished() {
        // Gemini ends every stream with a finish reason, Anthropic with message_stop: EOF
        // before it is a cut stream.
        call.error_code = Some("upstream_stream_broken".into());
        let cut = ir::ProviderError {
            status: 502,
            code: "upstream_stream_broken",
            message: format!("{} ended the stream before its end", kind.as_str()),
            retry_after_secs: None,
        };
        let _ = ex.send_chunk(&encoder.encode(&ir::Event::Error(cut)));
    }
    if ex.send_chunk(&encoder.finish()).is_err() {
        call.client_disconnected = true;
        return Ok(Tail::Nothing);
    }
    Ok(Tail::EndOfStream)
}

enum Forwarded {
    Sent,
    /// The provider failed; its error event went out and the stream ends.
    Failed,
    ClientGone,
}

/// Translates one provider chunk and sends what it becomes.
fn forward(
    ex: &mut Exchange<'_>,
    call: &mut Call,
    decoder: &mut dyn StreamDecoder,
    encoder: &mut dyn StreamEncoder,
    data: &str,
) -> Forwarded {
    let mut out = Vec::new();
    let mut failed = false;
    for event in decoder.chunk(data) {
        match &event {
            ir::Event::Usage(u) => note_usage(call, Some(Ok(*u))),
            ir::Event::Text { text, .. } | ir::Event::ThinkingDelta { text, .. } => {
                call.relayed_bytes += text.len() as u64;
            }
            ir::Event::ThinkingBlock { .. } => {}
            ir::Event::ToolCall { call: c, .. } => call.relayed_bytes += (c.name.len() + c.arguments.len()) as u64,
            ir::Event::Error(e) => {
                call.error_code = Some(e.code.to_string());
                failed = true;
            }
            ir::Event::Finish { .. } => {}
        }
        out.extend(encoder.encode(&event));
    }
    call.relayed_events += 1;
    if let Some(why) = decoder.take_invalid_usage() {
        if call.usage_source != UsageSource::Provider {
            call.usage_invalid = Some(why);
        }
    }
    if !out.is_empty() && ex.send_chunk(&out).is_err() {
        call.client_disconnected = true;
        return Forwarded::ClientGone; // dropping the reader closes the upstream connection
    }
    if failed {
        Forwarded::Failed
    } else {
        Forwarded::Sent
    }
}

/// Embeddings in batches of the provider's cap; usage summed when every batch reported it.
fn embeddings(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    provider: &Provider,
    req: &ir::EmbedRequest,
    model: &str,
    ignored: &[String],
    call: &mut Call,
) -> Result<Tail, ApiError> {
    let mut vectors = Vec::with_capacity(req.inputs.len());
    let mut reported = Some(0u64);
    for batch in req.inputs.chunks(gemini::EMBED_BATCH) {
        let resp = call_upstream_as(shared, ex, provider, &gemini::embed_request(req, model, batch), call)?;
        let value = json_answer(ex, provider.kind, resp, call, "the body")?;
        let (v, tokens) = gembed::decode_batch(&value, batch.len()).map_err(ApiError::upstream_invalid_response)?;
        vectors.extend(v);
        reported = reported.zip(tokens).map(|(a, b)| a + b);
    }
    call.status = 200;
    let input_tokens = match reported {
        Some(t) => {
            note_usage(call, Some(Ok(crate::core::openai::Usage { input_tokens: t, ..Default::default() })));
            t
        }
        // Gemini reports no usage for most embedding models: the ledger marks it estimated.
        None => call.input_estimate.div_ceil(2),
    };
    let out = embed::encode_response(&req.model, &vectors, input_tokens, req.base64);
    let mut headers = answer_headers(call, "application/json", ignored);
    if call.usage_source == UsageSource::Provider {
        cost_header(&mut headers, call);
    }
    call.ttfb = Some(clock::elapsed(ex.started));
    Ok(Tail::Body { status: 200, headers, body: out.to_string().into_bytes() })
}

/// `POST /v1/messages/count_tokens` by the provider's own counter, or the gateway's estimate where
/// the provider has none (free: nothing is reserved).
pub(super) fn count_tokens(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    provider: &Provider,
    body: &[u8],
    call: &mut Call,
) -> Result<Tail, ApiError> {
    let json = object(body)?;
    let decoded = messages::decode_request(&json, true).map_err(|r| refused(&r))?;
    if matches!(provider.kind, ProviderKind::OpenAi | ProviderKind::Mock) {
        // Chat completions (and the mock) have no counter: the gateway's estimate, marked as one.
        let tokens = decoded.request.estimated_tokens();
        call.status = 200;
        call.ttfb = Some(clock::elapsed(ex.started));
        let mut headers = answer_headers(call, "application/json", &decoded.ignored);
        headers.push(("x-prodex-token-count".into(), "estimated".into()));
        let body = serde_json::json!({"input_tokens": tokens}).to_string().into_bytes();
        return Ok(Tail::Body { status: 200, headers, body });
    }
    let model = model_segment(&decoded.request.model)?.to_string();
    let mut request = decoded.request;
    request.model.clone_from(&model);
    gemini::request::check(&request).map_err(|u| refused(&anthropic::refuse(&u)))?;
    // A count is free (nothing is reserved), and media is fetched only for admitted calls.
    if let Some(param) = request.remote_media() {
        return Err(ApiError::refused(
            "unsupported_parameter",
            param,
            "a token count does not fetch remote media (only admitted calls do); send the media as base64",
        ));
    }
    let out = gemini::count_request(&request, &model).map_err(|u| refused(&anthropic::refuse(&u)))?;
    let resp = call_upstream_as(shared, ex, provider, &out, call)?;
    let value = json_answer(ex, provider.kind, resp, call, "the count")?;
    let tokens =
        gemini::counted(&value).ok_or_else(|| ApiError::upstream_invalid_response("the answer has no totalTokens"))?;
    call.status = 200;
    call.ttfb = Some(clock::elapsed(ex.started));
    let headers = answer_headers(call, "application/json", &decoded.ignored);
    Ok(Tail::Body { status: 200, headers, body: serde_json::json!({"input_tokens": tokens}).to_string().into_bytes() })
}

/// `GET /v1/models` (every page, filtered by the key's allowlist) and `GET /v1/models/{id}`.
pub(super) fn models(
    shared: &Shared,
    ex: &mut Exchange<'_>,
    route: &Route,
    provider: &Provider,
    call: &mut Call,
) -> Result<Tail, ApiError> {
    let kind = provider.kind;
    if kind == ProviderKind::Mock {
        return Ok(super::mock::models(ex, route, call));
    }
    let out = if let Route::Model(id) = route {
        let request = match kind {
            ProviderKind::Anthropic => anthropic::segment(id).map(|s| anthropic::models_request(None, Some(s))),
            _ => gemini::model_segment(id).ok().map(|s| gemini::models_request(None, Some(s))),
        };
        let request = request.ok_or_else(|| ApiError::model_not_found(id))?;
        let resp = call_upstream_as(shared, ex, provider, &request, call)?;
        if resp.status() == 404 {
            return Err(ApiError::model_not_found(id));
        }
        let value = json_answer(ex, kind, resp, call, "the model")?;
        let model = match kind {
            ProviderKind::Anthropic => anthropic::decode_model(&value),
            _ => gembed::decode_model(&value),
        };
        embed::encode_model(&model.map_err(ApiError::upstream_invalid_response)?)
    } else {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let request = match kind {
                ProviderKind::Anthropic => anthropic::models_request(token.as_deref(), None),
                _ => gemini::models_request(token.as_deref(), None),
            };
            let resp = call_upstream_as(shared, ex, provider, &request, call)?;
            let value = json_answer(ex, kind, resp, call, "the model list")?;
            let page = match kind {
                ProviderKind::Anthropic => anthropic::decode_models(&value),
                _ => gembed::decode_models(&value),
            };
            let (page, next) = page.map_err(ApiError::upstream_invalid_response)?;
            all.extend(page.into_iter().filter(|m| call.key.as_ref().is_none_or(|k| k.allows(&m.id))));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        embed::encode_models(&all)
    };
    call.status = 200;
    call.ttfb = Some(clock::elapsed(ex.started));
    let headers = answer_headers(call, "application/json", &[]);
    Ok(Tail::Body { status: 200, headers, body: out.to_string().into_bytes() })
}
