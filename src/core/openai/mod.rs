//! The OpenAI wire protocol as the gateway needs it (routes are in `core::route`): how a chat request is
//! prepared for metering (`stream_options.include_usage`), how usage is read from responses and
//! stream events, and how the injected usage is hidden from clients that did not ask for it.
//!
//! `chat.rs`, `responses.rs` and `embed.rs` are its dialect of the intermediate form (`core::ir`) for calls
//! translated to other providers.
//!
//! Invariants: a client that did not ask for usage in its stream sees byte-for-byte what it would
//! have seen without the gateway's injection; usage is read from provider output only.

pub mod chat;
pub(crate) mod dialect;
pub mod egress;
#[cfg(test)]
mod egress_tests;
pub mod embed;
pub mod responses;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::core::route::{check_path, classify, holds_objects, BadPath, Route, RouteMatch};

pub use crate::core::usage::{InvalidUsage, Usage, UsageRead, MAX_REPORTED_TOKENS};

fn u(v: &Value, path: &[&str]) -> Result<u64, InvalidUsage> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return Ok(0),
        }
    }
    match cur {
        Value::Null => Ok(0),
        Value::Number(n) => match n.as_u64() {
            Some(t) if t <= MAX_REPORTED_TOKENS => Ok(t),
            Some(t) => Err(InvalidUsage(format!("usage `{}` reports {t} tokens", path.join(".")))),
            // Integral floats (`12.0`) are still counts; anything else is not.
            None => match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= MAX_REPORTED_TOKENS as f64 => {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let t = f as u64;
                    Ok(t)
                }
                _ => Err(InvalidUsage(format!("usage `{}` is {n}, not a token count", path.join(".")))),
            },
        },
        other => Err(InvalidUsage(format!("usage `{}` is a {}, not a token count", path.join("."), kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads a `usage` object in either the chat/completions/embeddings shape (`prompt_tokens`) or the
/// responses shape (`input_tokens`). `None` when there is no usage object (`null` included).
#[must_use]
pub fn usage_of(usage: &Value) -> Option<UsageRead> {
    match usage {
        Value::Null => return None,
        Value::Object(_) => {}
        other => return Some(Err(InvalidUsage(format!("`usage` is a {}, not an object", kind(other))))),
    }
    let read = || -> UsageRead {
        if usage.get("input_tokens").is_some() || usage.get("output_tokens").is_some() {
            return Ok(Usage {
                input_tokens: u(usage, &["input_tokens"])?,
                cached_input_tokens: u(usage, &["input_tokens_details", "cached_tokens"])?,
                cache_write_tokens: u(usage, &["input_tokens_details", "cache_write_tokens"])?,
                cache_write_1h_tokens: 0,
                output_tokens: u(usage, &["output_tokens"])?,
                reasoning_tokens: u(usage, &["output_tokens_details", "reasoning_tokens"])?,
            });
        }
        Ok(Usage {
            input_tokens: u(usage, &["prompt_tokens"])?,
            cached_input_tokens: u(usage, &["prompt_tokens_details", "cached_tokens"])?,
            cache_write_tokens: u(usage, &["prompt_tokens_details", "cache_write_tokens"])?,
            cache_write_1h_tokens: 0,
            output_tokens: u(usage, &["completion_tokens"])?,
            reasoning_tokens: u(usage, &["completion_tokens_details", "reasoning_tokens"])?,
        })
    };
    Some(read())
}

/// Usage from a whole (non-streamed) response body.
#[must_use]
pub fn response_usage(body: &Value) -> Option<UsageRead> {
    body.get("usage").and_then(usage_of)
}

/// How a chat request was prepared for streaming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPlan {
    pub stream: bool,
    /// The client itself asked for `stream_options.include_usage`.
    pub client_wants_usage: bool,
}

/// For a streaming chat request, asks upstream for usage (`stream_options.include_usage = true`)
/// and remembers whether the client asked for it. Returns whether the body changed.
pub fn prepare_chat(body: &mut Map<String, Value>) -> (StreamPlan, bool) {
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        return (StreamPlan { stream, client_wants_usage: false }, false);
    }
    let options = body.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
    if options.is_null() {
        // `"stream_options": null` means "no options": metering still needs usage.
        *options = Value::Object(Map::new());
    }
    let Some(options) = options.as_object_mut() else {
        // Not an object: leave it for the upstream to reject in its own words.
        return (StreamPlan { stream, client_wants_usage: false }, false);
    };
    let client_wants_usage = options.get("include_usage").and_then(Value::as_bool).unwrap_or(false);
    if client_wants_usage {
        return (StreamPlan { stream, client_wants_usage }, false);
    }
    options.insert("include_usage".into(), Value::Bool(true));
    (StreamPlan { stream, client_wants_usage }, true)
}

/// What to do with one chat-completions stream event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatEvent {
    /// Relay the event as received.
    Forward,
    /// Relay these bytes instead (the injected `"usage":null` removed).
    Rewrite(Vec<u8>),
    /// Do not relay (the usage-only chunk the client did not ask for).
    Drop,
}

/// Inspects one chat stream event: returns its usage, if any, and what to relay.
#[must_use]
pub fn chat_event(raw: &[u8], data: &str, client_wants_usage: bool) -> (Option<UsageRead>, ChatEvent) {
    if !data.contains("\"usage\"") {
        return (None, ChatEvent::Forward);
    }
    let Ok(chunk) = serde_json::from_str::<Value>(data) else {
        return (None, ChatEvent::Forward);
    };
    let usage = chunk.get("usage").and_then(usage_of);
    if client_wants_usage {
        return (usage, ChatEvent::Forward);
    }
    let no_choices = chunk.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
    if usage.is_some() && no_choices {
        return (usage, ChatEvent::Drop);
    }
    if chunk.get("usage").is_some_and(Value::is_null) {
        for pattern in [&b",\"usage\":null"[..], b"\"usage\":null,", b", \"usage\": null", b"\"usage\": null, "] {
            if let Some(at) = find(raw, pattern) {
                let mut out = Vec::with_capacity(raw.len());
                out.extend_from_slice(&raw[..at]);
                out.extend_from_slice(&raw[at + pattern.len()..]);
                return (usage, ChatEvent::Rewrite(out));
            }
        }
    }
    (usage, ChatEvent::Forward)
}

/// Usage carried by a responses-API or completions stream event (`response.completed` etc.).
#[must_use]
pub fn stream_event_usage(data: &str) -> Option<UsageRead> {
    if !data.contains("\"usage\"") {
        return None;
    }
    let v: Value = serde_json::from_str(data).ok()?;
    v.get("response").and_then(|r| r.get("usage")).and_then(usage_of).or_else(|| v.get("usage").and_then(usage_of))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Passthrough routes the provider charges nothing for (OpenAI's moderations), so a key with an
/// allowlist or a spend budget may call them: there is no model to allow and nothing to price.
pub const FREE_ROUTES: &[(&str, &str)] = &[("POST", "/moderations")];

/// Whether `method` `suffix` (the path under `/v1`) is one of `FREE_ROUTES`.
#[must_use]
pub fn free_route(method: &str, suffix: &str) -> bool {
    let path = suffix.split('?').next().unwrap_or("");
    FREE_ROUTES.iter().any(|(m, p)| *m == method && *p == path)
}

/// What the gateway needs from a JSON request body, read without building the whole tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestPeek {
    pub model: Option<String>,
    pub stream: bool,
    /// `stream_options.include_usage`, when the client set it.
    pub include_usage: Option<bool>,
    /// The output bound of the route's own parameter: chat `max_completion_tokens` (else the
    /// deprecated `max_tokens`), Responses `max_output_tokens`, completions `max_tokens`;
    /// `Some(0)` for embeddings (no output). A parameter of another route is not read: it bounds
    /// nothing the provider generates here.
    pub max_output_tokens: Option<u64>,
    /// Completions the provider generates and bills: `n` (chat, completions) and completions'
    /// `best_of`, the larger. At least 1.
    pub choices: u64,
    /// The request draws on input the gateway cannot see (Responses `previous_response_id` or
    /// `conversation`).
    pub stored_context: bool,
}

/// Largest `n` / `best_of` accepted (OpenAI's own limit is 128).
pub const MAX_CHOICES: u64 = 128;

/// Why a request body cannot be admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeekError {
    /// Not JSON, or not an object with a string `model` (the message says which).
    Json(String),
    /// A parameter the reservation depends on is not what the route defines.
    Param { param: &'static str, message: String },
}

#[derive(Deserialize)]
struct PeekWire<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<Value>,
    #[serde(default)]
    max_tokens: Option<Value>,
    #[serde(default)]
    max_completion_tokens: Option<Value>,
    #[serde(default)]
    max_output_tokens: Option<Value>,
    #[serde(default)]
    n: Option<Value>,
    #[serde(default)]
    best_of: Option<Value>,
    #[serde(default)]
    previous_response_id: Option<Value>,
    #[serde(default)]
    conversation: Option<Value>,
    /// Completions: how many prompts (counted without building them).
    #[serde(default)]
    prompt: Option<Prompts>,
}

/// How many prompts a completions `prompt` holds: a string or a token list is one; a list of
/// strings or of token lists is one per element (each generates `n` completions). Counted
/// without building the prompt.
struct Prompts(u64);

impl<'de> Deserialize<'de> for Prompts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Count;
        impl<'de> serde::de::Visitor<'de> for Count {
            type Value = Prompts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a prompt")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Prompts, A::Error> {
                let (mut n, mut all_tokens) = (0u64, true);
                while let Some(Element(token)) = seq.next_element::<Element>()? {
                    n += 1;
                    all_tokens &= token;
                }
                Ok(Prompts(if all_tokens { 1 } else { n.max(1) }))
            }
            fn visit_str<E>(self, _: &str) -> Result<Prompts, E> {
                Ok(Prompts(1))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Prompts, E> {
                Ok(Prompts(1))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Prompts, E> {
                Ok(Prompts(1))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Prompts, E> {
                Ok(Prompts(1))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Prompts, E> {
                Ok(Prompts(1))
            }
            fn visit_unit<E>(self) -> Result<Prompts, E> {
                Ok(Prompts(1))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Prompts, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Prompts(1))
            }
        }
        d.deserialize_any(Count)
    }
}

/// One element of a prompt list: `true` for a token id (the list is one tokenized prompt).
struct Element(bool);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Kind;
        impl<'de> serde::de::Visitor<'de> for Kind {
            type Value = Element;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a prompt element")
            }
            fn visit_u64<E>(self, _: u64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_str<E>(self, _: &str) -> Result<Element, E> {
                Ok(Element(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Element, E> {
                Ok(Element(false))
            }
            fn visit_unit<E>(self) -> Result<Element, E> {
                Ok(Element(false))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Element(false))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Element(false))
            }
        }
        d.deserialize_any(Kind)
    }
}

/// The largest of the route's output bounds that are present. A bound must be a non-negative
/// integer (400 otherwise): a value an upstream might coerce must never fall through to a smaller
/// one, and two bounds reserve for the larger, whichever the upstream reads.
fn bound_of(bounds: &[(&'static str, &Option<Value>)]) -> Result<Option<u64>, PeekError> {
    let mut max: Option<u64> = None;
    for (param, v) in bounds {
        match v {
            None | Some(Value::Null) => {}
            Some(v) => {
                let integral = v.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19);
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n = v.as_u64().or(integral.map(|f| f as u64)).ok_or_else(|| PeekError::Param {
                    param,
                    message: format!("`{param}` must be a non-negative integer"),
                })?;
                max = Some(max.map_or(n, |m| m.max(n)));
            }
        }
    }
    Ok(max)
}

/// `n` or `best_of`: absent or null is 1; otherwise an integer in 1..=`MAX_CHOICES`.
fn choices_of(param: &'static str, v: Option<&Value>) -> Result<u64, PeekError> {
    match v {
        None | Some(Value::Null) => Ok(1),
        Some(v) => v.as_u64().filter(|n| (1..=MAX_CHOICES).contains(n)).ok_or_else(|| PeekError::Param {
            param,
            message: format!("`{param}` must be an integer from 1 to {MAX_CHOICES}"),
        }),
    }
}

/// Reads what admission and metering need from a request body for `route`. The whole body is
/// still validated as JSON; an error names what is wrong.
pub fn peek_request(route: &Route, body: &[u8]) -> Result<RequestPeek, PeekError> {
    let w = match serde_json::from_slice::<PeekWire<'_>>(body) {
        Ok(w) => w,
        Err(e) if e.is_data() => {
            return Err(PeekError::Json(format!("expected a JSON object with a string `model` ({e})")))
        }
        Err(e) => return Err(PeekError::Json(e.to_string())),
    };
    let (max_output_tokens, choices) = match route {
        Route::ChatCompletions => (
            bound_of(&[("max_completion_tokens", &w.max_completion_tokens), ("max_tokens", &w.max_tokens)])?,
            choices_of("n", w.n.as_ref())?,
        ),
        Route::Completions => {
            let n = choices_of("n", w.n.as_ref())?.max(choices_of("best_of", w.best_of.as_ref())?);
            let prompts = w.prompt.as_ref().map_or(1, |p| p.0);
            (bound_of(&[("max_tokens", &w.max_tokens)])?, n.saturating_mul(prompts))
        }
        Route::Responses => (bound_of(&[("max_output_tokens", &w.max_output_tokens)])?, 1),
        Route::Messages => (bound_of(&[("max_tokens", &w.max_tokens)])?, 1),
        Route::Embeddings => (Some(0), 1),
        _ => (None, 1),
    };
    let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
    Ok(RequestPeek {
        model: w.model.map(Cow::into_owned),
        stream: w.stream.unwrap_or(false),
        include_usage: w.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool),
        max_output_tokens,
        choices,
        stored_context: *route == Route::Responses && (present(&w.previous_response_id) || present(&w.conversation)),
    })
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    usage: Option<Value>,
}

/// A response body that is not a JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotJson;

/// Usage from a whole response body without building the whole tree. `Err` when the body is not a
/// JSON object (the caller answers 502 `upstream_invalid_response`).
pub fn body_usage(body: &[u8]) -> Result<Option<UsageRead>, NotJson> {
    let wire: UsageWire = serde_json::from_slice(body).map_err(|_| NotJson)?;
    Ok(wire.usage.as_ref().and_then(usage_of))
}

/// One stream event, read only for the text it carries (chat chunks, completions chunks and
/// Responses `*.delta` events); everything else is skipped without being built.
#[derive(Deserialize)]
struct ContentWire<'a> {
    #[serde(default)]
    choices: Option<Vec<ChoiceWire<'a>>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceWire<'a> {
    #[serde(default)]
    delta: Option<DeltaWire<'a>>,
    /// Legacy completions chunks.
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaWire<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallWire<'a>>>,
    /// The legacy `functions` API.
    #[serde(default)]
    function_call: Option<FunctionWire<'a>>,
}

#[derive(Deserialize)]
struct ToolCallWire<'a> {
    #[serde(borrow, default)]
    function: Option<FunctionWire<'a>>,
}

#[derive(Deserialize)]
struct FunctionWire<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

/// Bytes of generated content one stream event carries: delta text, reasoning and refusal text,
/// tool-call names and arguments (chat), `text` (completions), or the `delta` of a Responses
/// `*.delta` event — never the SSE framing or the JSON envelope around them. 0 for anything else.
#[must_use]
pub fn generated_bytes(data: &str) -> u64 {
    let Ok(event) = serde_json::from_str::<ContentWire<'_>>(data) else {
        return 0;
    };
    let len = |s: &Option<Cow<'_, str>>| s.as_ref().map_or(0, |s| s.len() as u64);
    let mut n = 0;
    if event.kind.as_deref().is_some_and(|k| k.ends_with(".delta")) {
        n += len(&event.delta);
    }
    let function = |f: &Option<FunctionWire<'_>>| f.as_ref().map_or(0, |f| len(&f.name) + len(&f.arguments));
    for choice in event.choices.iter().flatten() {
        n += len(&choice.text);
        if let Some(d) = &choice.delta {
            n += len(&d.content) + len(&d.reasoning_content) + len(&d.refusal) + function(&d.function_call);
            for call in d.tool_calls.iter().flatten() {
                n += function(&call.function);
            }
        }
    }
    n
}

/// The `model` of a JSON request body.
#[must_use]
pub fn model_of(body: &Map<String, Value>) -> Option<&str> {
    body.get("model").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_bytes_count_content_not_envelopes() {
        let cases = [
            (
                r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok1 "},"finish_reason":null}]}"#,
                5,
            ),
            (r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#, 0),
            (r#"{"choices":[{"delta":{"content":"h\u00e9"}}]}"#, 3),
            (r#"{"choices":[{"delta":{"reasoning_content":"think","refusal":"no"}}]}"#, 7),
            (
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get","arguments":"{\"a\":1}"}}]}}]}"#,
                10,
            ),
            (r#"{"choices":[{"delta":{"content":"ab"}},{"delta":{"content":"cd"}}]}"#, 4),
            (r#"{"choices":[{"text":"legacy"}]}"#, 6),
            (r#"{"type":"response.output_text.delta","delta":"tok0"}"#, 4),
            (r#"{"type":"response.function_call_arguments.delta","delta":"{\"x\""}"#, 4),
            (r#"{"type":"response.completed","response":{"usage":{}}}"#, 0),
            (r#"{"choices":[],"usage":{"prompt_tokens":1}}"#, 0),
            ("[DONE]", 0),
            ("not json", 0),
            (r#"{"choices":[{"delta":{"content":5}}]}"#, 0),
            (r#"{"choices":[{"delta":{"content":"abc","tool_calls":null}}]}"#, 3),
            (r#"{"choices":null,"type":"response.output_text.delta","delta":"xy"}"#, 2),
            (r#"{"choices":[{"delta":{"function_call":{"name":"f","arguments":"{}"}}}]}"#, 3),
        ];
        for (data, want) in cases {
            assert_eq!(generated_bytes(data), want, "{data}");
        }
    }

    #[test]
    fn usage_in_both_shapes() {
        let chat = json!({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}});
        assert_eq!(
            usage_of(&chat),
            Some(Ok(Usage {
                input_tokens: 10,
                cached_input_tokens: 3,
                output_tokens: 5,
                reasoning_tokens: 2,
                ..Usage::default()
            }))
        );
        let resp = json!({"input_tokens": 7, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 1}, "output_tokens_details": {"reasoning_tokens": 1}});
        assert_eq!(
            usage_of(&resp),
            Some(Ok(Usage {
                input_tokens: 7,
                cached_input_tokens: 1,
                output_tokens: 4,
                reasoning_tokens: 1,
                ..Usage::default()
            }))
        );
        let emb = json!({"usage": {"prompt_tokens": 8, "total_tokens": 8}});
        assert_eq!(response_usage(&emb).map(|u| u.unwrap().input_tokens), Some(8));
        assert_eq!(usage_of(&Value::Null), None);
    }

    #[test]
    fn chat_streams_get_usage_injected_once() {
        let mut body = json!({"model": "m", "stream": true}).as_object().cloned().unwrap();
        let (plan, changed) = prepare_chat(&mut body);
        assert_eq!(plan, StreamPlan { stream: true, client_wants_usage: false });
        assert!(changed);
        assert_eq!(body["stream_options"]["include_usage"], true);
        let mut asked =
            json!({"stream": true, "stream_options": {"include_usage": true}}).as_object().cloned().unwrap();
        assert_eq!(prepare_chat(&mut asked), (StreamPlan { stream: true, client_wants_usage: true }, false));
        let mut plain = json!({"stream": false}).as_object().cloned().unwrap();
        assert!(!prepare_chat(&mut plain).1);
        assert!(plain.get("stream_options").is_none());
    }

    #[test]
    fn injected_usage_is_hidden_from_clients_that_did_not_ask() {
        let content = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi \"usage\":null"}}],"usage":null}"#;
        let raw = format!("data: {content}\n\n");
        let (usage, action) = chat_event(raw.as_bytes(), content, false);
        assert_eq!(usage, None);
        assert_eq!(
            action,
            ChatEvent::Rewrite(
                br#"data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi \"usage\":null"}}]}

"#
                .to_vec()
            )
        );
        assert_eq!(chat_event(raw.as_bytes(), content, true).1, ChatEvent::Forward);
        let last = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let raw = format!("data: {last}\n\n");
        let (usage, action) = chat_event(raw.as_bytes(), last, false);
        assert_eq!(usage.map(|u| u.map(|u| (u.input_tokens, u.output_tokens))), Some(Ok((3, 2))));
        assert_eq!(action, ChatEvent::Drop);
        assert_eq!(chat_event(raw.as_bytes(), last, true).1, ChatEvent::Forward);
        assert_eq!(chat_event(b"data: [DONE]\n\n", "[DONE]", false), (None, ChatEvent::Forward));
    }

    #[test]
    fn request_peek_reads_only_what_routing_needs() {
        let chat = Route::ChatCompletions;
        let p = peek_request(
            &chat,
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"a":[1,2]}]}"#,
        );
        assert_eq!(
            p,
            Ok(RequestPeek {
                model: Some("m".into()),
                stream: true,
                include_usage: Some(true),
                max_output_tokens: None,
                choices: 1,
                stored_context: false,
            })
        );
        assert_eq!(peek_request(&chat, br#"{"messages":[]}"#).map(|p| p.model), Ok(None));
        let json_err = |r: Result<RequestPeek, PeekError>| match r {
            Err(PeekError::Json(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(json_err(peek_request(&chat, b"[1]")).contains("expected a JSON object"));
        assert!(
            json_err(peek_request(&chat, br#"{"model":1}"#)).contains("expected a JSON object with a string `model`")
        );
        assert!(peek_request(&chat, b"{nope").is_err());
        assert!(peek_request(&chat, br#"{"model":"m"} trailing"#).is_err());
    }

    #[test]
    fn the_worst_case_reads_each_routes_own_parameters() {
        use Route::{ChatCompletions as Chat, Completions, Embeddings, Responses};
        let cases: &[(Route, &str, Option<u64>, u64, bool)] = &[
            (Chat, r#"{"max_tokens":50,"max_completion_tokens":70}"#, Some(70), 1, false),
            (Chat, r#"{"max_tokens":90,"max_completion_tokens":70}"#, Some(90), 1, false),
            (Chat, r#"{"max_completion_tokens":0,"max_tokens":500}"#, Some(500), 1, false),
            (Chat, r#"{"max_tokens":50}"#, Some(50), 1, false),
            (Completions, r#"{"prompt":["a","b","c"],"n":2,"max_tokens":5}"#, Some(5), 6, false),
            (Completions, r#"{"prompt":[1,2,3,4],"max_tokens":5}"#, Some(5), 1, false),
            (Completions, r#"{"prompt":[[1,2],[3]],"max_tokens":5}"#, Some(5), 2, false),
            (Completions, r#"{"prompt":"one"}"#, None, 1, false),
            (Chat, r#"{"max_output_tokens":5}"#, None, 1, false),
            (Chat, r#"{"n":128,"max_completion_tokens":10}"#, Some(10), 128, false),
            (Chat, r#"{"n":null}"#, None, 1, false),
            (Chat, r#"{"best_of":20}"#, None, 1, false),
            (Completions, r#"{"max_tokens":16,"n":2,"best_of":5}"#, Some(16), 5, false),
            (Completions, r#"{"max_completion_tokens":16,"n":3}"#, None, 3, false),
            (Responses, r#"{"max_output_tokens":9,"max_tokens":1,"n":4}"#, Some(9), 1, false),
            (Responses, r#"{"previous_response_id":"resp_1"}"#, None, 1, true),
            (Responses, r#"{"conversation":{"id":"conv_1"}}"#, None, 1, true),
            (Responses, r#"{"previous_response_id":null}"#, None, 1, false),
            (Chat, r#"{"previous_response_id":"resp_1"}"#, None, 1, false),
            (Embeddings, r#"{"max_tokens":5,"n":3}"#, Some(0), 1, false),
        ];
        for (route, body, max, choices, stored) in cases {
            let p = peek_request(route, body.as_bytes()).unwrap();
            assert_eq!(
                (p.max_output_tokens, p.choices, p.stored_context),
                (*max, *choices, *stored),
                "{route:?} {body}"
            );
        }
        for (route, body, param) in [
            (Chat, r#"{"n":0}"#, "n"),
            (Chat, r#"{"n":129}"#, "n"),
            (Chat, r#"{"n":"2"}"#, "n"),
            (Chat, r#"{"n":1.5}"#, "n"),
            (Completions, r#"{"best_of":-1}"#, "best_of"),
            (Chat, r#"{"max_completion_tokens":100000.5,"max_tokens":1}"#, "max_completion_tokens"),
            (Chat, r#"{"max_tokens":"9"}"#, "max_tokens"),
            (Responses, r#"{"max_output_tokens":-1}"#, "max_output_tokens"),
        ] {
            assert!(
                matches!(peek_request(&route, body.as_bytes()), Err(PeekError::Param { param: p, .. }) if p == param),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_or_absurd_usage_is_never_billed_as_zero() {
        let read = |v: Value| usage_of(&v);
        assert_eq!(read(json!(null)), None);
        assert_eq!(
            read(json!({"prompt_tokens": 3, "completion_tokens": 2.0})),
            Some(Ok(Usage { input_tokens: 3, output_tokens: 2, ..Usage::default() }))
        );
        assert_eq!(read(json!({"prompt_tokens": null, "completion_tokens": 1})).unwrap().unwrap().output_tokens, 1);
        for bad in [
            json!({"prompt_tokens": -5, "completion_tokens": 1}),
            json!({"prompt_tokens": 1, "completion_tokens": 1.5}),
            json!({"prompt_tokens": "12", "completion_tokens": 1}),
            json!({"prompt_tokens": 1, "completion_tokens": 18_446_744_073_709_551_615_u64}),
            json!({"prompt_tokens": 1, "completion_tokens": 1e300}),
            json!({"input_tokens": 1, "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": [1]}}),
            json!({"input_tokens": 100_000_001, "output_tokens": 1}),
            json!("12"),
        ] {
            assert!(matches!(read(bad.clone()), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn null_stream_options_still_get_usage_injected() {
        let mut body = json!({"model": "m", "stream": true, "stream_options": null});
        let (plan, changed) = prepare_chat(body.as_object_mut().unwrap());
        assert!(changed && !plan.client_wants_usage);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn body_usage_validates_and_extracts() {
        assert_eq!(
            body_usage(br#"{"id":"x","usage":{"prompt_tokens":2,"completion_tokens":1}}"#)
                .map(|u| u.map(|u| u.map(|u| u.input_tokens))),
            Ok(Some(Ok(2)))
        );
        assert_eq!(body_usage(br#"{"id":"x"}"#), Ok(None));
        assert_eq!(body_usage(b"{not json"), Err(NotJson));
    }

    #[test]
    fn responses_stream_usage_comes_from_the_completed_event() {
        let data = r#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":6}}}"#;
        assert_eq!(stream_event_usage(data).map(|u| u.map(|u| u.output_tokens)), Some(Ok(6)));
        assert_eq!(stream_event_usage(r#"{"type":"response.output_text.delta","delta":"x"}"#), None);
    }
}
