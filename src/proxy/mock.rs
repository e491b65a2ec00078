//! Calls to the built-in `mock` provider (`core::mock`): answered in process after admission,
//! in the caller's dialect, whole or streamed word by word at `x-mock-interval-ms` (default 20 ms
//! a word), and billed like any provider's (usage from the answer, the `mock-*` prices).
//!
//! Invariant: a mock call goes through the same admission, ledger row and metrics as a real one;
//! only the upstream is missing.

use std::time::Duration;

use super::relay::note_usage;
use super::translate::{answer_headers, cost_header, encoder_for, id_seed, start_stream, whole_answer};
use super::{Call, Tail};
use crate::clock;
use crate::core::ir;
use crate::core::mock;
use crate::core::openai::{embed, Route};
use crate::core::route::Dialect;
use crate::error::ApiError;
use crate::http::server::Exchange;

/// Pause between streamed words when the request does not say.
const DEFAULT_INTERVAL_MS: u64 = 20;

/// Longest pause between streamed words a request may ask for.
const MAX_INTERVAL_MS: u64 = 10_000;

/// A generation call.
pub(super) fn answer(
    ex: &mut Exchange<'_>,
    dialect: Dialect,
    request: &ir::Request,
    ignored: &[String],
    include_usage: bool,
    call: &mut Call,
) -> Result<Tail, ApiError> {
    let answer = mock::answer(request, &id_seed(call));
    call.status = 200;
    call.upstream_ok = true;
    if !request.stream {
        note_usage(call, answer.usage.map(Ok));
        return Ok(whole_answer(ex, dialect, &answer, ignored, call));
    }
    let interval = ex
        .head
        .headers
        .iter()
        .find(|(k, _)| k == "x-mock-interval-ms")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_INTERVAL_MS)
        .min(MAX_INTERVAL_MS);
    call.stream = true;
    let mut encoder = encoder_for(dialect, &id_seed(call), &request.model, include_usage);
    if !start_stream(ex, ignored, call) {
        return Ok(Tail::Nothing);
    }
    for (i, event) in mock::events(&answer).iter().enumerate() {
        if i > 0 && interval > 0 && matches!(event, ir::Event::Text { .. }) {
            may::coroutine::sleep(Duration::from_millis(interval));
        }
        match event {
            ir::Event::Usage(u) => note_usage(call, Some(Ok(*u))),
            ir::Event::Text { text, .. } => call.relayed_bytes += text.len() as u64,
            _ => {}
        }
        call.relayed_events += 1;
        let bytes = encoder.encode(event);
        if !bytes.is_empty() && ex.send_chunk(&bytes).is_err() {
            call.client_disconnected = true;
            return Ok(Tail::Nothing);
        }
    }
    if ex.send_chunk(&encoder.finish()).is_err() {
        call.client_disconnected = true;
        return Ok(Tail::Nothing);
    }
    Ok(Tail::EndOfStream)
}

/// An embeddings call.
pub(super) fn embeddings(ex: &Exchange<'_>, req: &ir::EmbedRequest, ignored: &[String], call: &mut Call) -> Tail {
    let (vectors, input_tokens) = mock::embed(req);
    call.status = 200;
    call.upstream_ok = true;
    note_usage(call, Some(Ok(crate::core::usage::Usage { input_tokens, ..Default::default() })));
    let out = embed::encode_response(&req.model, &vectors, input_tokens, req.base64);
    let mut headers = answer_headers(call, "application/json", ignored);
    cost_header(&mut headers, call);
    call.ttfb = Some(clock::elapsed(ex.started));
    Tail::Body { status: 200, headers, body: out.to_string().into_bytes() }
}

/// `GET /v1/models` (filtered by the key's allowlist) and `GET /v1/models/{id}` (any id).
pub(super) fn models(ex: &Exchange<'_>, route: &Route, call: &mut Call) -> Tail {
    let out = if let Route::Model(id) = route {
        embed::encode_model(&ir::ModelInfo { id: id.clone(), owned_by: "prodex-mock" })
    } else {
        let all: Vec<ir::ModelInfo> =
            mock::models().into_iter().filter(|m| call.key.as_ref().is_none_or(|k| k.allows(&m.id))).collect();
        embed::encode_models(&all)
    };
    call.status = 200;
    call.ttfb = Some(clock::elapsed(ex.started));
    let headers = answer_headers(call, "application/json", &[]);
    Tail::Body { status: 200, headers, body: out.to_string().into_bytes() }
}
