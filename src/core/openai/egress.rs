//! OpenAI chat completions as a provider protocol, for calls translated from clients that speak
//! another one (Anthropic's `/v1/messages` to an OpenAI-compatible server): the intermediate form
//! written as a chat body, and chat answers, chunks and error bodies read back into it.
//!
//! Invariants: a feature chat completions cannot take is refused through `Unsupported` (`top_k`,
//! URL documents); a stream always asks for usage (`stream_options.include_usage`) so it is
//! metered; tool calls streamed in pieces are emitted whole, numbered in the order they started,
//! once the choice finishes (or the stream ends), so an Anthropic client always gets a
//! `tool_use` block with its input; `reasoning_content` (DeepSeek, vLLM, LiteLLM) is thinking.

use serde_json::{json, Map, Value};

use crate::core::ir::{
    self, Effort, Event, Feature, Finish, Format, Part, ProviderError, Role, ToolChoice, Unsupported,
};
use crate::core::openai::usage_of;

/// The routes translated to an OpenAI-compatible server (every other route passes untouched).
pub const ROUTES: &[(&str, &str)] = &[
    (
        "POST /v1/messages",
        "POST chat/completions, translated both ways (streams with Anthropic's event sequence; reasoning_content as thinking)",
    ),
    (
        "POST /v1/messages/count_tokens",
        "a local estimate (chat completions have no counter), marked x-prodex-token-count: estimated",
    ),
];

/// Intermediate-form features chat completions has no equivalent for.
pub const REFUSED: &[(Feature, &str)] = &[(Feature::TopK, "OpenAI's chat completions have no top_k")];

fn unsupported(feature: Feature, why: &str) -> Unsupported {
    Unsupported { feature, index: None, param: None, why: why.into() }
}

/// A thinking budget as the nearest `reasoning_effort`.
fn effort_of(req: &ir::Request) -> Option<&'static str> {
    if let Some(e) = req.effort {
        return Some(match e {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        });
    }
    req.thinking_budget.map(|b| match b {
        0..=2_048 => "low",
        2_049..=16_384 => "medium",
        _ => "high",
    })
}

fn user_content(parts: &[&Part]) -> Result<Value, Unsupported> {
    if let [Part::Text(t)] = parts {
        return Ok(json!(t));
    }
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        out.push(match p {
            Part::Text(t) => json!({"type": "text", "text": t}),
            Part::Media { mime, data } if mime.starts_with("image/") => {
                json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{data}")}})
            }
            Part::Media { mime, data } if mime == "audio/wav" || mime == "audio/mp3" || mime == "audio/mpeg" => {
                let format = if mime == "audio/wav" { "wav" } else { "mp3" };
                json!({"type": "input_audio", "input_audio": {"data": data, "format": format}})
            }
            Part::Media { mime, data } if mime == "application/pdf" => {
                json!({"type": "file", "file": {"filename": "document.pdf", "file_data": format!("data:{mime};base64,{data}")}})
            }
            Part::Remote { url, param } if !param.contains("document") => {
                json!({"type": "image_url", "image_url": {"url": url}})
            }
            Part::Remote { param, .. } => {
                return Err(Unsupported {
                    feature: Feature::Media,
                    index: None,
                    param: Some(param.clone()),
                    why: "chat completions take documents only inline; send the PDF as base64".into(),
                })
            }
            Part::Media { mime, .. } => {
                return Err(unsupported(Feature::Media, &format!("chat completions take images, wav/mp3 audio and PDFs, not {mime}")))
            }
            // Placed by `messages` (results are tool messages, thinking is not replayed).
            Part::ToolResult { .. } | Part::ToolCall { .. } | Part::Thinking(_) => continue,
        });
    }
    Ok(Value::Array(out))
}

fn messages(req: &ir::Request) -> Result<Vec<Value>, Unsupported> {
    let mut out: Vec<Value> = req.system.iter().map(|s| json!({"role": "system", "content": s})).collect();
    for t in &req.turns {
        match t.role {
            Role::User => {
                // Tool results first (each its own tool message, right after the calls), then the rest.
                for p in &t.parts {
                    if let Part::ToolResult { call_id, content, .. } = p {
                        out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
                    }
                }
                let rest: Vec<&Part> = t.parts.iter().filter(|p| !matches!(p, Part::ToolResult { .. })).collect();
                if !rest.is_empty() {
                    out.push(json!({"role": "user", "content": user_content(&rest)?}));
                }
            }
            Role::Assistant => {
                let text: String = t
                    .parts
                    .iter()
                    .filter_map(|p| if let Part::Text(s) = p { Some(s.as_str()) } else { None })
                    .collect();
                let calls: Vec<Value> = t
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall { id, name, arguments, .. } => Some(
                            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}),
                        ),
                        _ => None,
                    })
                    .collect();
                let mut m = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    m["tool_calls"] = Value::Array(calls);
                }
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// The chat-completions body for `req`.
pub fn encode(req: &ir::Request) -> Result<Value, Unsupported> {
    let s = &req.sampling;
    if s.top_k.is_some() {
        return Err(unsupported(Feature::TopK, REFUSED[0].1));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(messages(req)?));
    if let Some(m) = s.max_tokens {
        body.insert("max_completion_tokens".into(), json!(m));
    }
    for (k, v) in [
        ("temperature", s.temperature),
        ("top_p", s.top_p),
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    if let Some(n) = s.n.filter(|n| *n > 1) {
        body.insert("n".into(), json!(n));
    }
    if let Some(seed) = s.seed {
        body.insert("seed".into(), json!(seed));
    }
    if !s.stop.is_empty() {
        body.insert("stop".into(), json!(s.stop));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.schema.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}))});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = &req.tool_choice {
        let v = match c {
            ToolChoice::None => json!("none"),
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
        };
        body.insert("tool_choice".into(), v);
    }
    if let Some(p) = req.parallel_tool_calls.filter(|_| !req.tools.is_empty()) {
        body.insert("parallel_tool_calls".into(), json!(p));
    }
    match &req.format {
        Format::Text => {}
        Format::JsonObject => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Format::JsonSchema(schema) => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}),
            );
        }
    }
    if let Some(e) = effort_of(req) {
        body.insert("reasoning_effort".into(), json!(e));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(body))
}

fn finish_of(reason: &str) -> Finish {
    match reason {
        "length" => Finish::Length,
        "tool_calls" | "function_call" => Finish::ToolCalls,
        "content_filter" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

fn reasoning_of(v: &Value) -> Option<&str> {
    v.get("reasoning_content").or_else(|| v.get("reasoning")).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A whole `chat.completion` as the intermediate response.
pub fn decode(body: &Value, model: &str, fallback_id: &str) -> Result<ir::Response, ProviderError> {
    let choices = body.get("choices").and_then(Value::as_array).ok_or_else(|| ProviderError {
        status: 502,
        code: "upstream_invalid_response",
        message: "the chat completion has no choices".into(),
        retry_after_secs: None,
    })?;
    let choices = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let m = c.get("message").unwrap_or(&Value::Null);
            let tool_calls: Vec<ir::ToolCall> = m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| ir::ToolCall {
                    id: t.get("id").and_then(Value::as_str).map(str::to_string),
                    name: t.pointer("/function/name").and_then(Value::as_str).unwrap_or("").to_string(),
                    arguments: t.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}").to_string(),
                    signature: None,
                })
                .collect();
            let thinking = reasoning_of(m).map(|t| ir::Thinking { text: t.to_string(), ..ir::Thinking::default() });
            ir::Choice {
                index: c.get("index").and_then(Value::as_u64).unwrap_or(i as u64),
                text: m.get("content").and_then(Value::as_str).map(str::to_string),
                tool_calls,
                thinking: thinking.into_iter().collect(),
                finish: Some(finish_of(c.get("finish_reason").and_then(Value::as_str).unwrap_or("stop"))),
            }
        })
        .collect();
    Ok(ir::Response {
        id: body.get("id").and_then(Value::as_str).unwrap_or(fallback_id).to_string(),
        model: body.get("model").and_then(Value::as_str).unwrap_or(model).to_string(),
        choices,
        usage: body.get("usage").and_then(usage_of).and_then(Result::ok),
    })
}

/// A tool call being streamed in pieces.
#[derive(Debug, Default)]
struct Pending {
    choice: u64,
    index: u64,
    id: Option<String>,
    name: String,
    arguments: String,
}

/// The state of one chat-completions stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<Pending>,
    /// (choice, calls emitted so far)
    emitted: Vec<(u64, u64)>,
    /// Thinking text per choice, for the block that closes it.
    thinking: Vec<(u64, String)>,
    pub invalid_usage: Option<String>,
    /// `data: [DONE]` arrived, or the stream failed.
    pub finished: bool,
}

impl StreamDecoder {
    /// The thinking of `choice` as one block, once its reasoning is over (the answer began).
    fn close_thinking(&mut self, choice: u64, out: &mut Vec<Event>) {
        if let Some(at) = self.thinking.iter().position(|(c, _)| *c == choice) {
            let (_, text) = self.thinking.remove(at);
            out.push(Event::ThinkingBlock { choice, block: ir::Thinking { text, ..ir::Thinking::default() } });
        }
    }

    /// The calls of `choice` collected so far, whole and in order (its thinking closed first).
    fn flush(&mut self, choice: u64, out: &mut Vec<Event>) {
        self.close_thinking(choice, out);
        let mut calls: Vec<Pending> = Vec::new();
        self.pending.retain_mut(|p| {
            if p.choice == choice {
                calls.push(std::mem::take(p));
                false
            } else {
                true
            }
        });
        calls.sort_by_key(|p| p.index);
        for p in calls {
            let at = match self.emitted.iter().position(|(c, _)| *c == choice) {
                Some(at) => at,
                None => {
                    self.emitted.push((choice, 0));
                    self.emitted.len() - 1
                }
            };
            let index = self.emitted[at].1;
            self.emitted[at].1 += 1;
            let arguments = if p.arguments.trim().is_empty() { "{}".to_string() } else { p.arguments };
            out.push(Event::ToolCall {
                choice,
                index,
                call: ir::ToolCall { id: p.id, name: p.name, arguments, signature: None },
            });
        }
    }

    /// The events of one SSE `data` payload.
    pub fn chunk(&mut self, data: &str) -> Vec<Event> {
        let mut out = Vec::new();
        if data.trim() == "[DONE]" {
            let open: Vec<u64> =
                self.pending.iter().map(|p| p.choice).chain(self.thinking.iter().map(|(c, _)| *c)).collect();
            for c in open {
                self.flush(c, &mut out);
            }
            self.finished = true;
            return out;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            self.finished = true;
            return vec![Event::Error(ProviderError {
                status: 502,
                code: "upstream_invalid_response",
                message: "a stream chunk is not JSON".into(),
                retry_after_secs: None,
            })];
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            self.finished = true;
            return vec![Event::Error(error_value(502, &v, None))];
        }
        for (i, c) in v.get("choices").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let choice = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            let d = c.get("delta").unwrap_or(&Value::Null);
            if let Some(t) = reasoning_of(d) {
                match self.thinking.iter_mut().find(|(c, _)| *c == choice) {
                    Some((_, all)) => all.push_str(t),
                    None => self.thinking.push((choice, t.to_string())),
                }
                out.push(Event::ThinkingDelta { choice, text: t.to_string() });
            }
            if let Some(t) = d.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                self.close_thinking(choice, &mut out);
                out.push(Event::Text { choice, text: t.to_string() });
            }
            for t in d.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                self.close_thinking(choice, &mut out);
                let index = t.get("index").and_then(Value::as_u64).unwrap_or(0);
                let at = match self.pending.iter().position(|p| p.choice == choice && p.index == index) {
                    Some(at) => at,
                    None => {
                        self.pending.push(Pending { choice, index, ..Pending::default() });
                        self.pending.len() - 1
                    }
                };
                let p = &mut self.pending[at];
                if let Some(id) = t.get("id").and_then(Value::as_str) {
                    p.id = Some(id.to_string());
                }
                if let Some(n) = t.pointer("/function/name").and_then(Value::as_str) {
                    p.name.push_str(n);
                }
                if let Some(a) = t.pointer("/function/arguments").and_then(Value::as_str) {
                    p.arguments.push_str(a);
                }
            }
            if let Some(reason) = c.get("finish_reason").and_then(Value::as_str) {
                self.flush(choice, &mut out);
                out.push(Event::Finish { choice, finish: finish_of(reason) });
            }
        }
        match v.get("usage").and_then(usage_of) {
            Some(Ok(u)) => {
                self.invalid_usage = None;
                out.push(Event::Usage(u));
            }
            Some(Err(e)) => self.invalid_usage = Some(e.0),
            None => {}
        }
        out
    }
}

ir::stream_decoder!(StreamDecoder);

/// An OpenAI error body (`{"error":{message,type,code,param}}`, parsed) with HTTP status
/// `status`, as the error the client gets; `retry_after` is the `retry-after` header.
#[must_use]
pub fn error_value(status: u16, parsed: &Value, retry_after: Option<&str>) -> ProviderError {
    let e = parsed.get("error").unwrap_or(&Value::Null);
    let message = e.get("message").and_then(Value::as_str).or_else(|| e.as_str());
    let answered = ir::answered_status(status);
    let code = match answered {
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        503 => "upstream_unavailable",
        _ => "upstream_error",
    };
    ProviderError::answered(answered, code, "upstream: ", message, retry_after, None)
}
