//! Anthropic Messages answers read into the intermediate form, for calls translated from OpenAI
//! clients: whole messages, the stream's events, usage and error bodies.
//!
//! Invariants: usage is Anthropic's, mapped once (§1.13): input is `input_tokens` plus the cache
//! reads and writes (Anthropic's `input_tokens` excludes them), the cache reads and writes are
//! kept apart for their own prices, and a stream's counts are cumulative — `message_start` gives
//! the input, each `message_delta` the output so far (its placeholder `output_tokens` in
//! `message_start` is never billed); tool calls are numbered from 0 in the order their blocks
//! start (never the content-block index); a thinking block keeps its signature for replay;
//! `pause_turn` and unknown stop reasons are upstream errors, never a silent `stop`.

use serde_json::Value;

use crate::core::ir::{self, Choice, Event, Finish, ProviderError, Thinking, ToolCall};
use crate::core::usage::{InvalidUsage, Usage, UsageRead, MAX_REPORTED_TOKENS};

/// Anthropic's counts as far as an answer has given them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    input: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    cache_write_1h: Option<u64>,
    output: Option<u64>,
    thinking: Option<u64>,
}

fn count(u: &Value, path: &[&str]) -> Result<Option<u64>, InvalidUsage> {
    let mut v = u;
    for p in path {
        match v.get(p) {
            Some(next) => v = next,
            None => return Ok(None),
        }
    }
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(c) if c <= MAX_REPORTED_TOKENS => Ok(Some(c)),
            _ => Err(InvalidUsage(format!("usage `{}` is not a token count: {n}", path.join(".")))),
        },
        _ => Err(InvalidUsage(format!("usage `{}` is not a number", path.join(".")))),
    }
}

impl Counts {
    /// Takes what `usage` says over what was known (a later event's counts replace earlier ones).
    pub fn update(&mut self, usage: &Value, with_output: bool) -> Result<(), InvalidUsage> {
        if !usage.is_object() {
            return Err(InvalidUsage("`usage` is not an object".into()));
        }
        let fields: [(&mut Option<u64>, &[&str]); 4] = [
            (&mut self.input, &["input_tokens"]),
            (&mut self.cache_read, &["cache_read_input_tokens"]),
            (&mut self.cache_write, &["cache_creation_input_tokens"]),
            (&mut self.cache_write_1h, &["cache_creation", "ephemeral_1h_input_tokens"]),
        ];
        for (slot, path) in fields {
            if let Some(c) = count(usage, path)? {
                *slot = Some(c);
            }
        }
        if with_output {
            if let Some(c) = count(usage, &["output_tokens"])? {
                self.output = Some(c);
            }
            if let Some(c) = count(usage, &["output_tokens_details", "thinking_tokens"])? {
                self.thinking = Some(c);
            }
        }
        Ok(())
    }

    /// The gateway's usage (§1.13).
    #[must_use]
    pub fn usage(&self) -> Usage {
        let (read, write) = (self.cache_read.unwrap_or(0), self.cache_write.unwrap_or(0));
        let output = self.output.unwrap_or(0);
        Usage {
            input_tokens: self.input.unwrap_or(0) + read + write,
            cached_input_tokens: read,
            cache_write_tokens: write,
            cache_write_1h_tokens: self.cache_write_1h.unwrap_or(0).min(write),
            output_tokens: output,
            reasoning_tokens: self.thinking.unwrap_or(0).min(output),
        }
    }
}

/// The usage of a whole message body (or of an Anthropic-shaped `usage` object).
#[must_use]
pub fn usage(body: &Value) -> Option<UsageRead> {
    let u = body.get("usage").filter(|u| !u.is_null())?;
    let mut c = Counts::default();
    Some(c.update(u, true).map(|()| c.usage()))
}

/// The usage after one stream event of a relayed (passthrough) Anthropic stream, when the event
/// carries output counts; `counts` keeps what earlier events said.
pub fn stream_usage(counts: &mut Counts, data: &str) -> Option<UsageRead> {
    if !data.contains("\"usage\"") {
        return None;
    }
    let v: Value = serde_json::from_str(data).ok()?;
    match v.get("type").and_then(Value::as_str)? {
        "message_start" => {
            let u = v.pointer("/message/usage").filter(|u| !u.is_null())?;
            counts.update(u, false).err().map(Err)
        }
        "message_delta" => {
            let u = v.get("usage").filter(|u| !u.is_null())?;
            Some(counts.update(u, true).map(|()| counts.usage()))
        }
        _ => None,
    }
}

/// Bytes of generated content in one Anthropic stream event (text, thinking, tool input), for
/// the estimate of a stream cut before its usage.
#[must_use]
pub fn generated_bytes(data: &str) -> u64 {
    if !data.contains("content_block_delta") {
        return 0;
    }
    let Ok(v) = serde_json::from_str::<Value>(data) else { return 0 };
    let d = v.get("delta").unwrap_or(&Value::Null);
    ["text", "thinking", "partial_json"]
        .iter()
        .filter_map(|k| d.get(k).and_then(Value::as_str))
        .map(|s| s.len() as u64)
        .sum()
}

fn finish_of(reason: &str) -> Result<Finish, ProviderError> {
    match reason {
        "end_turn" | "stop_sequence" => Ok(Finish::Stop),
        "max_tokens" | "model_context_window_exceeded" => Ok(Finish::Length),
        "tool_use" => Ok(Finish::ToolCalls),
        "refusal" => Ok(Finish::ContentFilter),
        other => Err(ProviderError {
            status: 502,
            code: if other == "pause_turn" { "upstream_pause_turn" } else { "upstream_invalid_response" },
            message: format!("anthropic stopped with `{}`, which has no OpenAI equivalent", clip(other)),
            retry_after_secs: None,
        }),
    }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn invalid(message: &str) -> ProviderError {
    ProviderError {
        status: 502,
        code: "upstream_invalid_response",
        message: format!("anthropic: {message}"),
        retry_after_secs: None,
    }
}

fn thinking_of(b: &Value) -> Option<Thinking> {
    match b.get("type").and_then(Value::as_str)? {
        "thinking" => Some(Thinking {
            text: b.get("thinking").and_then(Value::as_str).unwrap_or("").to_string(),
            signature: b.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
            redacted: false,
        }),
        "redacted_thinking" => Some(Thinking {
            text: String::new(),
            signature: b.get("data").and_then(Value::as_str).map(str::to_string),
            redacted: true,
        }),
        _ => None,
    }
}

/// A whole message as the intermediate response.
pub fn decode(body: &Value, model: &str, fallback_id: &str) -> Result<ir::Response, ProviderError> {
    let id = body.get("id").and_then(Value::as_str).unwrap_or(fallback_id).to_string();
    let model = body.get("model").and_then(Value::as_str).unwrap_or(model).to_string();
    let blocks =
        body.get("content").and_then(Value::as_array).ok_or_else(|| invalid("the message has no content list"))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut thinking = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b.get("id").and_then(Value::as_str).map(str::to_string),
                name: b.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                arguments: b.get("input").map_or_else(|| "{}".to_string(), Value::to_string),
                signature: None,
            }),
            _ => thinking.extend(thinking_of(b)),
        }
    }
    let reason = body.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    let finish = finish_of(reason)?;
    let text = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let usage = usage(body).and_then(Result::ok);
    Ok(ir::Response {
        id,
        model,
        choices: vec![Choice { index: 0, text, tool_calls, thinking, finish: Some(finish) }],
        usage,
    })
}

/// A content block of the stream as it builds.
#[derive(Debug)]
enum Block {
    Text,
    Thinking(Thinking),
    Tool { id: Option<String>, name: String, json: String },
    Other,
}

/// The state of one Anthropic stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Open blocks by content-block index.
    blocks: Vec<(u64, Block)>,
    calls: u64,
    counts: Counts,
    /// Why the last usage could not be billed, when it could not.
    pub invalid_usage: Option<String>,
    /// `message_stop` arrived, or the stream failed.
    pub finished: bool,
}

ir::stream_decoder!(StreamDecoder);

impl StreamDecoder {
    fn note_usage(&mut self, u: Option<&Value>, with_output: bool) -> Option<Event> {
        let u = u.filter(|u| !u.is_null())?;
        match self.counts.update(u, with_output) {
            Ok(()) => {
                self.invalid_usage = None;
                with_output.then(|| Event::Usage(self.counts.usage()))
            }
            Err(e) => {
                self.invalid_usage = Some(e.0);
                None
            }
        }
    }

    /// The events of one SSE `data` payload (the `type` inside it names the event).
    pub fn chunk(&mut self, data: &str) -> Vec<Event> {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            self.finished = true;
            return vec![Event::Error(invalid("a stream event is not JSON"))];
        };
        let mut out = Vec::new();
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                // Its output_tokens is a placeholder: only the input counts are taken.
                out.extend(self.note_usage(m.get("usage"), false));
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let b = v.get("content_block").unwrap_or(&Value::Null);
                let block = match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = b.get("text").and_then(Value::as_str).unwrap_or("");
                        if !t.is_empty() {
                            out.push(Event::Text { choice: 0, text: t.to_string() });
                        }
                        Block::Text
                    }
                    Some("tool_use") => Block::Tool {
                        id: b.get("id").and_then(Value::as_str).map(str::to_string),
                        name: b.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                        json: String::new(),
                    },
                    _ => thinking_of(b).map_or(Block::Other, Block::Thinking),
                };
                self.blocks.push((index, block));
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta").unwrap_or(&Value::Null);
                let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let block = self.blocks.iter_mut().rev().find(|(i, _)| *i == index).map(|(_, b)| b);
                match (d.get("type").and_then(Value::as_str), block) {
                    (Some("text_delta"), _) => {
                        let text = s("text");
                        if !text.is_empty() {
                            out.push(Event::Text { choice: 0, text });
                        }
                    }
                    (Some("thinking_delta"), Some(Block::Thinking(t))) => {
                        let text = s("thinking");
                        t.text.push_str(&text);
                        out.push(Event::ThinkingDelta { choice: 0, text });
                    }
                    (Some("signature_delta"), Some(Block::Thinking(t))) => t.signature = Some(s("signature")),
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => json.push_str(&s("partial_json")),
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(at) = self.blocks.iter().rposition(|(i, _)| *i == index) {
                    match self.blocks.remove(at).1 {
                        Block::Tool { id, name, json } => {
                            let arguments = if json.trim().is_empty() { "{}".to_string() } else { json };
                            let call = ToolCall { id, name, arguments, signature: None };
                            out.push(Event::ToolCall { choice: 0, index: self.calls, call });
                            self.calls += 1;
                        }
                        Block::Thinking(block) => out.push(Event::ThinkingBlock { choice: 0, block }),
                        Block::Text | Block::Other => {}
                    }
                }
            }
            "message_delta" => {
                // The usage is billed even when the stop reason fails the call: it was generated.
                let usage = self.note_usage(v.get("usage"), true);
                match v.pointer("/delta/stop_reason").and_then(Value::as_str).map(finish_of) {
                    Some(Ok(finish)) => out.push(Event::Finish { choice: 0, finish }),
                    Some(Err(e)) => {
                        self.finished = true;
                        out.extend(usage);
                        out.push(Event::Error(e));
                        return out;
                    }
                    None => {}
                }
                out.extend(usage);
            }
            "message_stop" => self.finished = true,
            "error" => {
                self.finished = true;
                out.push(Event::Error(error_value(200, &v, None)));
            }
            // `ping` and event types added later carry nothing to translate.
            _ => {}
        }
        out
    }
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`, parsed) with HTTP
/// status `status` — 200 for an in-stream `error` event, whose type then says which — as the
/// error the client gets; `retry_after` is the `retry-after` header.
#[must_use]
pub fn error_value(status: u16, parsed: &Value, retry_after: Option<&str>) -> ProviderError {
    let kind = parsed.pointer("/error/type").and_then(Value::as_str).unwrap_or("");
    let (typed, code) = match kind {
        "invalid_request_error" => (400, "invalid_request_error"),
        "authentication_error" => (401, "upstream_authentication_error"),
        "permission_error" => (403, "upstream_permission_error"),
        "not_found_error" => (404, "not_found_error"),
        "request_too_large" => (413, "request_too_large"),
        "rate_limit_error" => (429, "rate_limit_exceeded"),
        "overloaded_error" => (529, "upstream_overloaded"),
        "timeout_error" => (504, "upstream_timeout"),
        "billing_error" => (402, "upstream_billing_error"),
        _ => (502, "upstream_error"),
    };
    let status = if status == 200 { typed } else { status };
    let message = parsed.pointer("/error/message").and_then(Value::as_str);
    // Overloaded (529) is the provider's "try again shortly": a 503 to OpenAI clients.
    let answered = if status == 529 { 503 } else { ir::answered_status(status) };
    ProviderError::answered(answered, code, "anthropic: ", message, retry_after, None)
}
