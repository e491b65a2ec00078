//! The neutral intermediate form every translated call passes through: one request, response and
//! stream-event vocabulary, so each protocol needs one decoder and one encoder (N translators for
//! N protocols, not N²). OpenAI → OpenAI never comes here: it stays byte-for-byte passthrough.
//!
//! Invariants: the form holds only what some protocol can express and the gateway translates;
//! a field an ingress could not place here is refused by that ingress (400 naming it), and a
//! feature an egress cannot honour is refused by that egress through `Feature` (the ingress names
//! the parameter in its own dialect). Nothing is dropped on the way.

use serde_json::Value;

use crate::core::openai::Usage;

/// Who spoke a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One piece of a turn.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    /// Inline media: a MIME type and base64 data (images, audio, PDFs).
    Media {
        mime: String,
        data: String,
    },
    /// A tool call the assistant made. `arguments` is a JSON object; `signature` is the provider's
    /// opaque replay token for the call (Gemini's `thoughtSignature`), when it had one.
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
        signature: Option<String>,
    },
    /// A tool's answer to the call `call_id` (whose name the ingress looked up in the history).
    ToolResult {
        call_id: String,
        name: String,
        content: String,
    },
    /// Media at a URL the client gave (`param` names where): the shell fetches it into `Media`
    /// when the operator allows fetching (or the provider takes URLs itself), else the request is
    /// refused naming `param`.
    Remote {
        url: String,
        param: String,
    },
    /// A signed thinking block the assistant produced, replayed unmodified (Anthropic requires
    /// it before the tool calls of a turn when thinking is on).
    Thinking(Thinking),
}

/// A provider's thinking: its text and the signature that lets it be replayed, or (redacted)
/// only the provider's opaque data in `signature`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Thinking {
    pub text: String,
    pub signature: Option<String>,
    pub redacted: bool,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema of the arguments (absent: no arguments).
    pub schema: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    Text,
    JsonObject,
    JsonSchema(Value),
}

/// How hard the model should think.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
}

/// Generation controls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub n: Option<u64>,
    pub seed: Option<i64>,
    pub stop: Vec<String>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
}

/// A generation request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub model: String,
    /// System and developer instructions, in order.
    pub system: Vec<String>,
    pub turns: Vec<Turn>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)`: at most one tool call per turn.
    pub parallel_tool_calls: Option<bool>,
    pub format: Format,
    pub sampling: Sampling,
    pub effort: Option<Effort>,
    /// A thinking budget in tokens, when the client gave one (Anthropic's `budget_tokens`).
    pub thinking_budget: Option<u64>,
    pub stream: bool,
}

/// Tokens an image is counted as by `Request::estimated_tokens` (about a 1-megapixel image).
pub const IMAGE_TOKENS: u64 = 1_600;

impl Request {
    /// The prompt's size in tokens, estimated where the provider has no counter: text, tool
    /// definitions and arguments at 4 bytes a token (rounded up per piece), media at
    /// `IMAGE_TOKENS` each.
    #[must_use]
    pub fn estimated_tokens(&self) -> u64 {
        let text = |s: &str| (s.len() as u64).div_ceil(4);
        let parts = self.turns.iter().flat_map(|t| &t.parts).map(|p| match p {
            Part::Text(t) => text(t),
            Part::Media { .. } | Part::Remote { .. } => IMAGE_TOKENS,
            Part::ToolCall { name, arguments, .. } => text(name) + text(&arguments.to_string()),
            Part::ToolResult { content, .. } => text(content),
            Part::Thinking(t) => text(&t.text),
        });
        let tools = self.tools.iter().map(|t| {
            text(&t.name)
                + t.description.as_deref().map_or(0, text)
                + t.schema.as_ref().map_or(0, |s| text(&s.to_string()))
        });
        self.system.iter().map(|s| text(s)).chain(parts).chain(tools).sum()
    }

    /// Where the request still holds remote media (the first such part's parameter), if it does.
    #[must_use]
    pub fn remote_media(&self) -> Option<&str> {
        self.turns.iter().flat_map(|t| &t.parts).find_map(|p| match p {
            Part::Remote { param, .. } => Some(param.as_str()),
            _ => None,
        })
    }
}

/// Features an egress may not support; the ingress maps each to its own parameter name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    Choices,
    Seed,
    Penalties,
    SingleToolCall,
    Effort,
    JsonObject,
    JsonSchema,
    Stop,
    TopP,
    Temperature,
    Media,
    /// A tool name the provider's naming rule refuses (`index`: which tool).
    ToolName,
    TopK,
    /// Forcing a tool call (`required` or a named tool).
    ForcedTool,
    /// A thinking block the history lacks (`index`: which turn).
    ThinkingReplay,
}

/// An egress cannot honour a request feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub feature: Feature,
    /// Which item, for per-item features (tools).
    pub index: Option<usize>,
    /// The parameter as the caller named it, when the form recorded it (remote media).
    pub param: Option<String>,
    pub why: String,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

/// A tool call in a response.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub id: Option<String>,
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
    pub signature: Option<String>,
}

/// One generated alternative.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub index: u64,
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// The provider's thinking, in order (empty when it gave none).
    pub thinking: Vec<Thinking>,
    pub finish: Option<Finish>,
}

/// A whole response.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub id: String,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Option<Usage>,
}

/// A failure the provider reported (as a status or inside a stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    /// The HTTP status to answer with.
    pub status: u16,
    /// A stable snake_case code.
    pub code: &'static str,
    pub message: String,
    /// Seconds the provider asked to wait, when it said.
    pub retry_after_secs: Option<u64>,
}

/// Longest provider message kept in an error.
pub const MAX_PROVIDER_MESSAGE: usize = 2_000;

impl ProviderError {
    /// A provider's failure as the client gets it: `answered` the status (see `answered_status`),
    /// the provider's message (or a stand-in) made printable, bounded and behind `prefix`
    /// (`"gemini: "`), and a wait — the `retry-after` header's, else `delay` — kept only where
    /// the answer is one to retry (429, 503).
    #[must_use]
    pub fn answered(
        answered: u16,
        code: &'static str,
        prefix: &str,
        message: Option<&str>,
        retry_after: Option<&str>,
        delay: Option<u64>,
    ) -> Self {
        let text = message.unwrap_or("the provider failed without a message");
        let mut out = String::with_capacity(prefix.len() + text.len().min(MAX_PROVIDER_MESSAGE));
        out.push_str(prefix);
        out.extend(text.chars().filter(|c| !c.is_control()).take(MAX_PROVIDER_MESSAGE));
        let header = retry_after.and_then(|h| h.trim().parse::<u64>().ok());
        let retry_after_secs = if answered == 429 || answered == 503 { header.or(delay) } else { None };
        Self { status: answered, code, message: out, retry_after_secs }
    }
}

/// What a provider's stream chunk means, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Text for choice `choice`.
    Text { choice: u64, text: String },
    /// Thinking text for choice `choice` as it arrives.
    ThinkingDelta { choice: u64, text: String },
    /// A whole thinking block, once complete (its text again, with the signature to replay it).
    ThinkingBlock { choice: u64, block: Thinking },
    /// A whole tool call; `index` counts the calls of the choice from 0 across the stream.
    ToolCall { choice: u64, index: u64, call: ToolCall },
    /// The choice is done.
    Finish { choice: u64, finish: Finish },
    /// The usage so far (cumulative: the last one is the call's).
    Usage(Usage),
    /// The provider failed mid-stream: the stream ends after it.
    Error(ProviderError),
}

/// Reads a provider's stream, one SSE `data` payload at a time, into events.
pub trait StreamDecoder {
    /// The events of one payload, in order.
    fn chunk(&mut self, data: &str) -> Vec<Event>;
    /// Whether the stream reached its end (or failed): EOF before it is a cut stream.
    fn finished(&self) -> bool;
    /// Why the last usage could not be billed, once.
    fn take_invalid_usage(&mut self) -> Option<String>;
}

/// Implements `StreamDecoder` for a decoder type with an inherent `chunk` and the public fields
/// `finished` and `invalid_usage` (each protocol's decoder has them).
macro_rules! stream_decoder {
    ($t:ty) => {
        impl $crate::core::ir::StreamDecoder for $t {
            fn chunk(&mut self, data: &str) -> Vec<$crate::core::ir::Event> {
                <$t>::chunk(self, data)
            }
            fn finished(&self) -> bool {
                self.finished
            }
            fn take_invalid_usage(&mut self) -> Option<String> {
                self.invalid_usage.take()
            }
        }
    };
}
pub(crate) use stream_decoder;

/// Writes a stream's events in a client dialect (chat chunks, Responses events, …).
pub trait StreamEncoder {
    /// The bytes for one event (possibly none).
    fn encode(&mut self, event: &Event) -> Vec<u8>;
    /// The closing bytes once the provider's stream ended (none after an error event).
    fn finish(&mut self) -> Vec<u8>;
}

/// An embeddings request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedRequest {
    pub model: String,
    pub inputs: Vec<String>,
    pub dimensions: Option<u64>,
    /// Vectors as base64 of little-endian f32 (the OpenAI SDK's default) instead of numbers.
    pub base64: bool,
}

/// A model a provider serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    pub owned_by: &'static str,
}

/// Where the provider credential goes on an upstream request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// A header of its own (e.g. `x-goog-api-key`).
    Header(&'static str),
}

/// An upstream request the core built; the shell inserts the secret and sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub method: &'static str,
    /// Path and query under the provider's base URL.
    pub target: String,
    pub body: Option<Vec<u8>>,
}

/// How a provider error status is answered: 429 stays 429, 503 stays 503, other 5xx are 502,
/// and 4xx keep their status.
#[must_use]
pub fn answered_status(upstream: u16) -> u16 {
    match upstream {
        400..=499 | 503 => upstream,
        _ => 502,
    }
}
