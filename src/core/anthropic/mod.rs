//! The Anthropic Messages protocol as an ingress dialect of the intermediate form: the
//! `/v1/messages` request decoder (`PARAMS`, content blocks, tools, tool choice, thinking), the
//! whole-message encoder and the stream encoder with Anthropic's exact event sequence
//! (`messages.rs`), for calls translated to other providers.
//!
//! Invariants: every top-level field is in `PARAMS` (translated, hint or rejected; unknown ones
//! are refused by name); the fields coding agents send everywhere (`metadata`, `cache_control`,
//! `service_tier`, betas, a mid-conversation `system`) are accepted, mapped where an equivalent
//! exists and named in `x-prodex-ignored-params` where not; every streamed event has its
//! `event:` line (the Anthropic SDK ignores frames without one); a tool call is streamed as a
//! `tool_use` block with at least one `input_json_delta`.

pub mod messages;
#[cfg(test)]
mod tests;

use crate::core::ir::{Feature, Unsupported};
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
    ("top_k", Translated(None)),
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
    });
    Refusal { code: "unsupported_parameter", param, message: u.why.clone() }
}
