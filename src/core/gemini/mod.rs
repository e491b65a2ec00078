//! The Gemini protocol (`generativelanguage.googleapis.com/v1beta`): which routes it serves and
//! where they go, where the credential goes, its error bodies, and (in the submodules) the encoder
//! of requests (`request.rs`), the decoder of responses and stream chunks (`response.rs`), and
//! embeddings and model lists (`embed.rs`).
//!
//! Invariants: the provider key travels only in `x-goog-api-key`, never in the URL; a model name
//! reaches the URL path only when it is one safe segment (letters, digits, `.`, `_`, `-`), so a
//! client cannot steer the request to another path; a Gemini error becomes an OpenAI-dialect
//! `ProviderError` with the provider's message kept and its status mapped by
//! `ir::answered_status`.

pub mod embed;
pub mod request;
pub mod response;
#[cfg(test)]
mod responses_tests;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::core::ir::{self, Credential, Feature, Outbound, ProviderError};

/// Where the key goes.
pub const CREDENTIAL: Credential = Credential::Header("x-goog-api-key");

/// The routes this provider serves, with what each becomes (the table `providers --json` prints
/// and the data plane dispatches on).
pub const ROUTES: &[(&str, &str)] = &[
    (
        "POST /v1/chat/completions",
        "POST models/{model}:generateContent, or :streamGenerateContent?alt=sse when streaming",
    ),
    ("POST /v1/responses", "POST models/{model}:generateContent, or :streamGenerateContent?alt=sse with the full Responses event lifecycle"),
    ("POST /v1/messages", "POST models/{model}:generateContent, or :streamGenerateContent?alt=sse with Anthropic's event sequence"),
    ("POST /v1/messages/count_tokens", "POST models/{model}:countTokens (the whole request: system, tools, contents)"),
    ("POST /v1/embeddings", "POST models/{model}:batchEmbedContents, in batches of at most 100 inputs"),
    ("GET /v1/models", "GET models (every page), in OpenAI's list shape, filtered by the key's allowlist"),
    ("GET /v1/models/{id}", "GET models/{id}, in OpenAI's model shape"),
];

/// Intermediate-form features Gemini has no equivalent for, and why.
pub const REFUSED: &[(Feature, &str)] = &[(
    Feature::SingleToolCall,
    "Gemini has no switch that limits a turn to one tool call (parallel_tool_calls: false)",
)];

/// Items per `batchEmbedContents` call (the API's cap).
pub const EMBED_BATCH: usize = 100;

/// Page size asked for when listing models.
pub const MODELS_PAGE: u32 = 1000;

/// Why a model name cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadModel;

/// The model as one URL path segment (`models/` prefix removed), or `BadModel`.
pub fn model_segment(model: &str) -> Result<&str, BadModel> {
    let m = model.strip_prefix("models/").unwrap_or(model);
    let ok = !m.is_empty()
        && m.len() <= 128
        && m.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && m.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(m)
    } else {
        Err(BadModel)
    }
}

/// The upstream request for a generation (`model` already a safe segment).
pub fn generate_request(req: &ir::Request, model: &str) -> Result<Outbound, ir::Unsupported> {
    let body = request::encode(req)?;
    Ok(Outbound {
        method: "POST",
        target: generate_target(model, req.stream),
        body: Some(body.to_string().into_bytes()),
    })
}

/// The upstream request that counts `req`'s input tokens (`countTokens` with the whole
/// generation request, so instructions and tools are counted too).
pub fn count_request(req: &ir::Request, model: &str) -> Result<Outbound, ir::Unsupported> {
    let mut inner = request::encode(req)?;
    inner["model"] = serde_json::json!(format!("models/{model}"));
    let body = serde_json::json!({"generateContentRequest": inner});
    Ok(Outbound {
        method: "POST",
        target: format!("/models/{model}:countTokens"),
        body: Some(body.to_string().into_bytes()),
    })
}

/// The token count in a `countTokens` answer.
pub fn counted(body: &Value) -> Option<u64> {
    body.get("totalTokens").and_then(Value::as_u64).filter(|n| *n <= crate::core::usage::MAX_REPORTED_TOKENS)
}

/// The upstream request for one embeddings batch.
#[must_use]
pub fn embed_request(req: &ir::EmbedRequest, model: &str, batch: &[String]) -> Outbound {
    let body = embed::encode_batch(req, model, batch);
    Outbound { method: "POST", target: embed_target(model), body: Some(body.to_string().into_bytes()) }
}

/// The upstream request for a page of the model list, or for one model.
#[must_use]
pub fn models_request(page_token: Option<&str>, model: Option<&str>) -> Outbound {
    let target = match model {
        Some(m) => format!("/models/{m}"),
        None => models_target(page_token),
    };
    Outbound { method: "GET", target, body: None }
}

/// `models/{m}:generateContent` or the streaming form.
#[must_use]
pub fn generate_target(model: &str, stream: bool) -> String {
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}

/// `models/{m}:batchEmbedContents`.
#[must_use]
pub fn embed_target(model: &str) -> String {
    format!("/models/{model}:batchEmbedContents")
}

/// `models?pageSize=…[&pageToken=…]`.
#[must_use]
pub fn models_target(page_token: Option<&str>) -> String {
    match page_token {
        Some(t) => format!("/models?pageSize={MODELS_PAGE}&pageToken={}", encode_query(t)),
        None => format!("/models?pageSize={MODELS_PAGE}"),
    }
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// google.rpc status names and the OpenAI-dialect codes they become.
const STATUS_CODES: &[(&str, &str)] = &[
    ("INVALID_ARGUMENT", "invalid_argument"),
    ("FAILED_PRECONDITION", "failed_precondition"),
    ("OUT_OF_RANGE", "out_of_range"),
    ("UNAUTHENTICATED", "upstream_unauthenticated"),
    ("PERMISSION_DENIED", "upstream_permission_denied"),
    ("NOT_FOUND", "model_not_found"),
    ("ABORTED", "aborted"),
    ("ALREADY_EXISTS", "already_exists"),
    ("RESOURCE_EXHAUSTED", "resource_exhausted"),
    ("CANCELLED", "cancelled"),
    ("DATA_LOSS", "data_loss"),
    ("UNKNOWN", "upstream_error"),
    ("INTERNAL", "upstream_error"),
    ("NOT_IMPLEMENTED", "upstream_not_implemented"),
    ("UNAVAILABLE", "upstream_unavailable"),
    ("DEADLINE_EXCEEDED", "upstream_timeout"),
];

/// A Gemini error body (`{"error":{code,message,status,details}}`, or that in a one-element list,
/// parsed) with HTTP status `status` (200 for an in-stream `{"error":…}` chunk), as the error the
/// client gets. `retry_after` is the response's `retry-after` header, when it had one.
#[must_use]
pub fn error_value(status: u16, parsed: &Value, retry_after: Option<&str>) -> ProviderError {
    let err = match parsed {
        Value::Array(a) => a.first().and_then(|e| e.get("error")),
        v => v.get("error"),
    };
    let name = err.and_then(|e| e.get("status")).and_then(Value::as_str).unwrap_or("");
    let code = STATUS_CODES.iter().find(|(n, _)| *n == name).map_or("upstream_error", |(_, c)| *c);
    let status = if status == 200 {
        // In a stream the status line said 200: the error's own code says what it was.
        err.and_then(|e| e.get("code")).and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(502)
    } else {
        status
    };
    let message = err.and_then(|e| e.get("message")).and_then(Value::as_str);
    let delay = err
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse::<f64>().ok())
        .map(|s| s.ceil() as u64);
    ProviderError::answered(ir::answered_status(status), code, "gemini: ", message, retry_after, delay)
}
