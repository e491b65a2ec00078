//! `/v1/messages` ⇄ the intermediate form: the request decoder, `encode_message` (a whole
//! response) and `EventEncoder` (message_start → content blocks → message_delta → message_stop).
//!
//! Invariants: usage is written the Anthropic way — `input_tokens` excludes cache reads and
//! writes, which have their own fields (providers.md §1.13); block indexes count every content
//! block of the message; a tool call always gets one `input_json_delta` holding its whole input.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::PARAMS;
use crate::core::ir::{self, Effort, Event, Finish, Format, Part, Role, StreamEncoder, ToolChoice, Turn};
use crate::core::openai::chat::{call_id, split_call_id, Decoded, Refusal};
use crate::core::openai::dialect::{
    boolean, clip, count, data_url, from_url_safe, kind, no_op, number, push_once, push_result, screen, string,
    tool_def,
};
use crate::core::usage::Usage;

/// Reads a Messages body (`count_only`: a `count_tokens` body, where `max_tokens` is not required).
pub fn decode_request(body: &Map<String, Value>, count_only: bool) -> Result<Decoded, Refusal> {
    let mut ignored =
        screen(body, PARAMS, "Messages", |_| "no equivalent at this provider; remove it or use an Anthropic upstream")?;
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    let model = string(get("model").unwrap_or(&Value::Null), "model")?.to_string();
    let stream = get("stream").map(|v| boolean(v, "stream")).transpose()?.unwrap_or(false);
    let max_tokens = match get("max_tokens") {
        Some(v) => Some(count(v, "max_tokens")?),
        None if count_only => None,
        None => return Err(Refusal::invalid("max_tokens", "`max_tokens` is required")),
    };
    let mut system = Vec::new();
    match get("system") {
        None => {}
        Some(Value::String(s)) => system.push(s.clone()),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                if b.get("cache_control").is_some() {
                    push_once(&mut ignored, "system[].cache_control");
                }
                system.push(string(b.get("text").unwrap_or(&Value::Null), &format!("system[{i}].text"))?.to_string());
            }
        }
        Some(other) => {
            return Err(Refusal::invalid(
                "system",
                format!("`system` must be a string or text blocks, not {}", kind(other)),
            ))
        }
    }
    let turns = messages(get("messages"), &mut system, &mut ignored)?;
    let mut sampling = ir::Sampling {
        max_tokens,
        temperature: get("temperature").map(|v| number(v, "temperature")).transpose()?,
        top_p: get("top_p").map(|v| number(v, "top_p")).transpose()?,
        top_k: get("top_k").map(|v| count(v, "top_k")).transpose()?,
        ..ir::Sampling::default()
    };
    if let Some(stops) = get("stop_sequences") {
        let list =
            stops.as_array().ok_or_else(|| Refusal::invalid("stop_sequences", "`stop_sequences` must be an array"))?;
        for (i, s) in list.iter().enumerate() {
            sampling.stop.push(string(s, &format!("stop_sequences[{i}]"))?.to_string());
        }
    }
    let mut tools = Vec::new();
    if let Some(list) = get("tools") {
        let list = list.as_array().ok_or_else(|| Refusal::invalid("tools", "`tools` must be an array"))?;
        for (i, t) in list.iter().enumerate() {
            if t.get("type").and_then(Value::as_str).is_some_and(|ty| ty != "custom") {
                return Err(Refusal::unsupported(
                    format!("tools[{i}].type"),
                    "server tools are not translated; only client tools are",
                ));
            }
            if t.get("cache_control").is_some() {
                push_once(&mut ignored, "tools[].cache_control");
            }
            let mut def = t.clone();
            if let Some(schema) = t.get("input_schema") {
                def["parameters"] = schema.clone();
            }
            tools.push(tool_def(&def, &format!("tools[{i}]"), &mut ignored, "tools[].strict")?);
        }
    }
    let (tool_choice, parallel_tool_calls) = match get("tool_choice") {
        None => (None, None),
        Some(c) => choice(c)?,
    };
    let (effort, thinking_budget) = match get("thinking") {
        None => (None, None),
        Some(t) => match t.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                (None, Some(count(t.get("budget_tokens").unwrap_or(&Value::Null), "thinking.budget_tokens")?))
            }
            Some("disabled") => (Some(Effort::None), None),
            Some("adaptive") => (None, None),
            _ => return Err(Refusal::value("thinking.type", "`thinking.type` must be enabled, disabled or adaptive")),
        },
    };
    let mut format = Format::Text;
    let mut effort = effort;
    if let Some(cfg) = get("output_config").and_then(Value::as_object) {
        for (k, v) in cfg {
            match k.as_str() {
                "format" if !v.is_null() => {
                    let schema = v.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
                        Refusal::invalid(
                            "output_config.format.schema",
                            "`output_config.format.schema` must be an object",
                        )
                    })?;
                    format = Format::JsonSchema(schema.clone());
                }
                "effort" if !v.is_null() => {
                    effort = Some(crate::core::openai::dialect::effort(v).map_err(|mut r| {
                        r.param = "output_config.effort".into();
                        r
                    })?);
                }
                _ if no_op(v) => {}
                _ => return Err(Refusal::unsupported(format!("output_config.{k}"), "not translated")),
            }
        }
    }
    let request = ir::Request {
        model,
        system,
        turns,
        tools,
        tool_choice,
        parallel_tool_calls,
        format,
        sampling,
        effort,
        thinking_budget,
        stream,
    };
    Ok(Decoded { request, ignored, include_usage: true })
}

fn choice(c: &Value) -> Result<(Option<ToolChoice>, Option<bool>), Refusal> {
    let parallel = c.get("disable_parallel_tool_use").and_then(Value::as_bool).filter(|d| *d).map(|_| false);
    let choice = match c.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Required,
        Some("none") => ToolChoice::None,
        Some("tool") => {
            ToolChoice::Named(string(c.get("name").unwrap_or(&Value::Null), "tool_choice.name")?.to_string())
        }
        _ => return Err(Refusal::value("tool_choice.type", "`tool_choice.type` must be auto, any, tool or none")),
    };
    Ok((Some(choice), parallel))
}

/// The conversation: user and assistant messages of text, media, tool calls and results; a
/// `system` message in the middle joins the instructions.
fn messages(v: Option<&Value>, system: &mut Vec<String>, ignored: &mut Vec<String>) -> Result<Vec<Turn>, Refusal> {
    let list = v
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| Refusal::invalid("messages", "`messages` must be a non-empty array"))?;
    let mut turns: Vec<Turn> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = string(m.get("role").unwrap_or(&Value::Null), &format!("{at}.role"))?;
        let blocks = match m.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(a)) => a.clone(),
            _ => {
                return Err(Refusal::invalid(
                    format!("{at}.content"),
                    "`content` must be a string or an array of blocks",
                ))
            }
        };
        let mut parts = Vec::with_capacity(blocks.len());
        let mut results = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let path = format!("{at}.content[{j}]");
            if b.get("cache_control").is_some() {
                push_once(ignored, "messages[].content[].cache_control");
            }
            if b.get("citations").is_some_and(|c| !no_op(c)) {
                push_once(ignored, "messages[].content[].citations");
            }
            match b.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let t = string(b.get("text").unwrap_or(&Value::Null), &format!("{path}.text"))?;
                    if role == "system" {
                        system.push(t.to_string());
                    } else {
                        parts.push(Part::Text(t.to_string()));
                    }
                }
                Some("image" | "document") => {
                    parts.push(source(b.get("source").unwrap_or(&Value::Null), &format!("{path}.source"))?)
                }
                Some("tool_use") if role == "assistant" => {
                    let raw = string(b.get("id").unwrap_or(&Value::Null), &format!("{path}.id"))?;
                    let name = string(b.get("name").unwrap_or(&Value::Null), &format!("{path}.name"))?;
                    let input = b.get("input").filter(|v| v.is_object()).cloned().ok_or_else(|| {
                        Refusal::invalid(format!("{path}.input"), "a tool_use block's `input` must be an object")
                    })?;
                    let (id, sig) = split_call_id(raw);
                    names.insert(id.to_string(), name.to_string());
                    parts.push(Part::ToolCall {
                        id: id.to_string(),
                        name: name.to_string(),
                        arguments: input,
                        signature: sig.map(from_url_safe),
                    });
                }
                Some("tool_result") if role == "user" => {
                    let raw = string(b.get("tool_use_id").unwrap_or(&Value::Null), &format!("{path}.tool_use_id"))?;
                    let call_id = split_call_id(raw).0.to_string();
                    let name = names.get(&call_id).cloned().ok_or_else(|| {
                        Refusal::invalid(format!("{path}.tool_use_id"), "no earlier tool_use block has this id")
                    })?;
                    let content = match b.get("content") {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Array(items)) => items
                            .iter()
                            .map(|x| match x.get("type").and_then(Value::as_str) {
                                Some("text") => Ok(x.get("text").and_then(Value::as_str).unwrap_or("").to_string()),
                                _ => Err(Refusal::unsupported(
                                    format!("{path}.content"),
                                    "tool results hold text only here",
                                )),
                            })
                            .collect::<Result<Vec<_>, _>>()?
                            .join(""),
                        Some(_) => {
                            return Err(Refusal::invalid(
                                format!("{path}.content"),
                                "`content` must be a string or text blocks",
                            ))
                        }
                    };
                    results.push(Part::ToolResult { call_id, name, content });
                }
                // Another provider's signed reasoning: it cannot be replayed here, so it is dropped
                // and named in the ignored header.
                Some("thinking" | "redacted_thinking") if role == "assistant" => {
                    push_once(ignored, "messages[].content[].thinking")
                }
                Some(other) => {
                    return Err(Refusal::unsupported(
                        format!("{path}.type"),
                        format!("`{}` blocks are not translated on a {role} message", clip(other)),
                    ))
                }
                None => return Err(Refusal::invalid(format!("{path}.type"), "a content block needs a `type`")),
            }
        }
        match role {
            "user" => {
                for r in results {
                    push_result(&mut turns, r);
                }
                if !parts.is_empty() {
                    turns.push(Turn { role: Role::User, parts });
                }
            }
            "assistant" => turns.push(Turn { role: Role::Assistant, parts }),
            "system" => {}
            other => {
                return Err(Refusal::value(format!("{at}.role"), format!("role `{}` is not translated", clip(other))))
            }
        }
    }
    Ok(turns)
}

/// An image or document `source`: base64 data, or a URL (fetched by the shell when allowed).
fn source(s: &Value, path: &str) -> Result<Part, Refusal> {
    match s.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let mime = string(s.get("media_type").unwrap_or(&Value::Null), &format!("{path}.media_type"))?;
            let data = string(s.get("data").unwrap_or(&Value::Null), &format!("{path}.data"))?;
            Ok(Part::Media { mime: mime.to_string(), data: data.to_string() })
        }
        Some("url") => {
            data_url(string(s.get("url").unwrap_or(&Value::Null), &format!("{path}.url"))?, &format!("{path}.url"))
        }
        _ => Err(Refusal::unsupported(format!("{path}.type"), "only base64 and url sources are translated")),
    }
}

/// The Anthropic `stop_reason` for a finish.
fn stop_reason(f: Option<Finish>) -> &'static str {
    match f {
        Some(Finish::Length) => "max_tokens",
        Some(Finish::ToolCalls) => "tool_use",
        Some(Finish::ContentFilter) => "refusal",
        Some(Finish::Stop) | None => "end_turn",
    }
}

/// Usage the Anthropic way: `input_tokens` without the cache reads and writes.
#[must_use]
pub fn usage_json(u: &Usage) -> Value {
    let fresh = u.input_tokens.saturating_sub(u.cached_input_tokens).saturating_sub(u.cache_write_tokens);
    json!({"input_tokens": fresh, "cache_creation_input_tokens": u.cache_write_tokens,
           "cache_read_input_tokens": u.cached_input_tokens, "output_tokens": u.output_tokens})
}

fn tool_use_id(call: &ir::ToolCall, seed: &str, index: u64) -> String {
    let id = call_id(call, seed, 0, index);
    match id.strip_prefix("call_") {
        Some(rest) if call.id.is_none() => format!("toolu_{rest}"),
        _ => id,
    }
}

/// A thinking block as Anthropic writes it (a provider's reasoning without a signature gets an
/// empty one: it cannot be replayed to Anthropic, and other providers do not ask for it).
fn thinking_block(t: &ir::Thinking) -> Value {
    if t.redacted {
        return json!({"type": "redacted_thinking", "data": t.signature});
    }
    json!({"type": "thinking", "thinking": t.text, "signature": t.signature.as_deref().unwrap_or("")})
}

/// A whole `message` for `resp` (its first choice: Messages has no `n`).
#[must_use]
pub fn encode_message(resp: &ir::Response, seed: &str) -> Value {
    let choice = resp.choices.first();
    let mut content: Vec<Value> =
        choice.map_or(&[][..], |c| c.thinking.as_slice()).iter().map(thinking_block).collect();
    if let Some(text) = choice.and_then(|c| c.text.as_deref()).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for (i, call) in choice.map_or(&[][..], |c| c.tool_calls.as_slice()).iter().enumerate() {
        let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
        content.push(
            json!({"type": "tool_use", "id": tool_use_id(call, seed, i as u64), "name": call.name, "input": input}),
        );
    }
    json!({"id": format!("msg_{}", resp.id), "type": "message", "role": "assistant", "model": resp.model,
           "content": content, "stop_reason": stop_reason(choice.and_then(|c| c.finish)), "stop_sequence": null,
           "usage": usage_json(&resp.usage.unwrap_or_default())})
}

/// The kind of the content block a stream has open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    None,
    Text,
    Thinking,
}

/// Writes stream events as Anthropic SSE: `message_start`, then each content block
/// (`content_block_start`, deltas, `content_block_stop`), `message_delta` with the stop reason and
/// the final cumulative usage, `message_stop`; an `error` event ends a failed stream.
#[derive(Debug)]
pub struct EventEncoder {
    id: String,
    model: String,
    seed: String,
    started: bool,
    /// Blocks opened so far (the next block's index).
    blocks: u64,
    /// The open block (its index is `blocks - 1`), if one is.
    open: Open,
    usage: Option<Usage>,
    finish: Option<Finish>,
    failed: bool,
}

impl EventEncoder {
    #[must_use]
    pub fn new(id: &str, model: &str, seed: &str) -> Self {
        Self {
            id: format!("msg_{id}"),
            model: model.to_string(),
            seed: seed.to_string(),
            started: false,
            blocks: 0,
            open: Open::None,
            usage: None,
            finish: None,
            failed: false,
        }
    }

    fn emit(out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        out.extend_from_slice(format!("event: {kind}\ndata: {data}\n\n").as_bytes());
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let message = json!({"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                                 "stop_reason": null, "stop_sequence": null,
                                 "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}});
            Self::emit(out, "message_start", json!({"message": message}));
        }
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        if self.open != Open::None {
            self.open = Open::None;
            Self::emit(out, "content_block_stop", json!({"index": self.blocks - 1}));
        }
    }

    /// Opens a block of `kind` unless one is open (closing another kind first).
    fn open(&mut self, out: &mut Vec<u8>, kind: Open) {
        if self.open == kind {
            return;
        }
        self.close_text(out);
        self.open = kind;
        self.blocks += 1;
        let block = match kind {
            Open::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            _ => json!({"type": "text", "text": ""}),
        };
        Self::emit(out, "content_block_start", json!({"index": self.blocks - 1, "content_block": block}));
    }
}

impl StreamEncoder for EventEncoder {
    fn encode(&mut self, event: &Event) -> Vec<u8> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        self.start(&mut out);
        match event {
            Event::ThinkingDelta { choice: 0, text } => {
                self.open(&mut out, Open::Thinking);
                Self::emit(
                    &mut out,
                    "content_block_delta",
                    json!({"index": self.blocks - 1, "delta": {"type": "thinking_delta", "thinking": text}}),
                );
            }
            Event::ThinkingBlock { choice: 0, block } if block.redacted => {
                self.close_text(&mut out);
                self.blocks += 1;
                let at = self.blocks - 1;
                Self::emit(
                    &mut out,
                    "content_block_start",
                    json!({"index": at, "content_block": thinking_block(block)}),
                );
                Self::emit(&mut out, "content_block_stop", json!({"index": at}));
            }
            Event::ThinkingBlock { choice: 0, block } => {
                if self.open != Open::Thinking {
                    // The whole block at once (no deltas came before it).
                    self.open(&mut out, Open::Thinking);
                    let delta = json!({"type": "thinking_delta", "thinking": block.text});
                    Self::emit(&mut out, "content_block_delta", json!({"index": self.blocks - 1, "delta": delta}));
                }
                let delta = json!({"type": "signature_delta", "signature": block.signature.as_deref().unwrap_or("")});
                Self::emit(&mut out, "content_block_delta", json!({"index": self.blocks - 1, "delta": delta}));
                self.close_text(&mut out);
            }
            Event::Text { choice: 0, text } => {
                self.open(&mut out, Open::Text);
                Self::emit(
                    &mut out,
                    "content_block_delta",
                    json!({"index": self.blocks - 1, "delta": {"type": "text_delta", "text": text}}),
                );
            }
            Event::ToolCall { choice: 0, index, call } => {
                self.close_text(&mut out);
                let at = self.blocks;
                self.blocks += 1;
                let block = json!({"type": "tool_use", "id": tool_use_id(call, &self.seed, *index), "name": call.name, "input": {}});
                Self::emit(&mut out, "content_block_start", json!({"index": at, "content_block": block}));
                Self::emit(
                    &mut out,
                    "content_block_delta",
                    json!({"index": at, "delta": {"type": "input_json_delta", "partial_json": call.arguments}}),
                );
                Self::emit(&mut out, "content_block_stop", json!({"index": at}));
            }
            Event::Finish { choice: 0, finish } => self.finish = Some(*finish),
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => {
                self.failed = true;
                let kind = if e.status == 429 {
                    "rate_limit_error"
                } else if e.status == 503 {
                    "overloaded_error"
                } else {
                    "api_error"
                };
                Self::emit(&mut out, "error", json!({"error": {"type": kind, "message": e.message}}));
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        self.start(&mut out);
        self.close_text(&mut out);
        let usage = usage_json(&self.usage.unwrap_or_default());
        Self::emit(
            &mut out,
            "message_delta",
            json!({"delta": {"stop_reason": stop_reason(self.finish), "stop_sequence": null}, "usage": usage}),
        );
        Self::emit(&mut out, "message_stop", json!({}));
        out
    }
}
