//! The Anthropic Messages protocol, both ways. As an ingress dialect of the intermediate form:
//! the `/v1/messages` request decoder (`PARAMS`, content blocks, tools, tool choice, thinking),
//! the whole-message encoder and the stream encoder with Anthropic's exact event sequence
//! (`messages.rs`), for calls translated to other providers. As a provider (`kind = "anthropic"`):
//! the routes it serves (`ROUTES`: `/v1/messages` and its count passthrough, chat completions and
//! Responses translated), the request encoder (`request.rs`) and the answer decoders
//! (`response.rs`).
//!
//! Invariants: every top-level field is in `PARAMS` (translated, hint or rejected; unknown ones
//! are refused by name); the fields coding agents send everywhere (`metadata`, `cache_control`,
//! `service_tier`, betas, a mid-conversation `system`) are accepted, mapped where an equivalent
//! exists and named in `x-prodex-ignored-params` where not; every streamed event has its
//! `event:` line (the Anthropic SDK ignores frames without one); a tool call is streamed as a
//! `tool_use` block with at least one `input_json_delta`.

#[cfg(test)]
mod egress_tests;
pub mod messages;
pub mod request;
pub mod response;
#[cfg(test)]
mod tests;

use crate::core::ir::{self, Credential, Feature, Outbound, Unsupported};

/// Where the key goes.
pub const CREDENTIAL: Credential = Credential::Header("x-api-key");

/// The `anthropic-version` sent when the client sent none.
pub const VERSION: &str = "2023-06-01";

/// `max_tokens` for a model the catalog does not know.
pub const DEFAULT_MAX_TOKENS: u64 = 4_096;

/// The routes this provider serves, with what each becomes (`providers --json` prints it).
pub const ROUTES: &[(&str, &str)] = &[
    (
        "POST /v1/messages",
        "POST messages, byte for byte (anthropic-version and anthropic-beta forwarded; usage read from the answer)",
    ),
    ("POST /v1/messages/count_tokens", "POST messages/count_tokens, byte for byte (free: nothing is reserved)"),
    (
        "POST /v1/chat/completions",
        "POST messages, translated both ways (streams: Anthropic's events as chat chunks; thinking as reasoning_content and thinking_blocks)",
    ),
    ("POST /v1/responses", "POST messages, translated both ways (streams: the full Responses event lifecycle)"),
    ("GET /v1/models", "GET models (every page), in OpenAI's list shape, filtered by the key's allowlist"),
    ("GET /v1/models/{id}", "GET models/{id}, in OpenAI's model shape"),
];

/// Intermediate-form features Anthropic has no equivalent for, and why (others are refused only
/// in some combinations: a temperature above 1, sampling or a forced tool with thinking on).
pub const REFUSED: &[(Feature, &str)] = &[
    (Feature::Choices, "Anthropic generates one choice per call (n must be 1)"),
    (Feature::Seed, "Anthropic has no seed"),
    (Feature::Penalties, "Anthropic has no presence or frequency penalty"),
    (Feature::JsonObject, "Anthropic has no schema-less JSON mode; send a json_schema"),
];

/// The `POST messages` request for `req`.
pub fn generate_request(req: &ir::Request) -> Result<Outbound, Unsupported> {
    let body = request::encode(req)?;
    Ok(Outbound { method: "POST", target: "/messages".into(), body: Some(body.to_string().into_bytes()) })
}

/// `s` when it is one safe URL path segment or query value (letters, digits, `.`, `_`, `-`), so a
/// client cannot steer a request elsewhere.
#[must_use]
pub fn segment(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    ok.then_some(s)
}

/// `GET models` (the page after `after_id`) or `GET models/{id}`; both already `segment`s.
#[must_use]
pub fn models_request(after_id: Option<&str>, model: Option<&str>) -> Outbound {
    let target = match (model, after_id) {
        (Some(m), _) => format!("/models/{m}"),
        (None, Some(after)) => format!("/models?limit=1000&after_id={after}"),
        (None, None) => "/models?limit=1000".into(),
    };
    Outbound { method: "GET", target, body: None }
}

/// A model list page: the models and the id to continue after, when there are more.
pub fn decode_models(body: &serde_json::Value) -> Result<(Vec<ir::ModelInfo>, Option<String>), String> {
    let list = body.get("data").and_then(serde_json::Value::as_array).ok_or("the model list has no data")?;
    let models = list.iter().map(decode_model).collect::<Result<Vec<_>, _>>()?;
    let more = body.get("has_more").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let last = body.get("last_id").and_then(serde_json::Value::as_str).and_then(segment).map(str::to_string);
    Ok((models, last.filter(|_| more)))
}

/// One model entry.
pub fn decode_model(m: &serde_json::Value) -> Result<ir::ModelInfo, String> {
    let id = m.get("id").and_then(serde_json::Value::as_str).ok_or("a model has no id")?;
    Ok(ir::ModelInfo { id: id.to_string(), owned_by: "anthropic" })
}
use crate::core::openai::chat::{Disposition, Refusal};

use Disposition::{Hint, Rejected, Translated};

/// Every Messages parameter the gateway knows (the decoder and `providers --json` read it).
pub const PARAMS: &[(&str, Disposition)] = &[
    ("model", Translated(None)),
    ("messages", Translated(None)),
    ("system", Translated(None)),
    ("max_tokens", Translated(None)),
    ("stream", Translated(None)),
    ("stop_sequences", Translated(Some(Feature::Stop))),
    ("temperature", Translated(Some(Feature::Temperature))),
    ("top_p", Translated(Some(Feature::TopP))),
    ("top_k", Translated(Some(Feature::TopK))),
    ("tools", Translated(None)),
    ("tool_choice", Translated(None)),
    ("thinking", Translated(Some(Feature::Effort))),
    ("output_config", Translated(Some(Feature::JsonSchema))),
    ("metadata", Hint),
    ("service_tier", Hint),
    ("cache_control", Hint),
    ("context_management", Hint),
    ("container", Rejected),
    ("mcp_servers", Rejected),
    ("inference_geo", Rejected),
];

/// Nested hints, named once in `x-prodex-ignored-params`.
pub const NESTED_HINTS: &[&str] = &[
    "system[].cache_control",
    "messages[].content[].cache_control",
    "messages[].content[].citations",
    "messages[].content[].thinking",
    "tools[].cache_control",
    "anthropic-beta",
];

/// An egress's refusal, naming the Messages parameter.
#[must_use]
pub fn refuse(u: &Unsupported) -> Refusal {
    let param = u.param.clone().unwrap_or_else(|| match u.feature {
        Feature::Choices => "n".into(),
        Feature::Seed => "seed".into(),
        Feature::Penalties => "presence_penalty".into(),
        Feature::SingleToolCall => "tool_choice.disable_parallel_tool_use".into(),
        Feature::Effort => "thinking".into(),
        Feature::JsonObject | Feature::JsonSchema => "output_config.format".into(),
        Feature::Stop => "stop_sequences".into(),
        Feature::TopP => "top_p".into(),
        Feature::Temperature => "temperature".into(),
        Feature::Media => "messages".into(),
        Feature::ToolName => format!("tools[{}].name", u.index.unwrap_or(0)),
        Feature::TopK => "top_k".into(),
        Feature::ForcedTool => "tool_choice".into(),
        Feature::ThinkingReplay => "messages[].content".into(),
    });
    Refusal { code: "unsupported_parameter", param, message: u.why.clone() }
}
