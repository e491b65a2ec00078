//! The OpenAI Responses dialect of the intermediate form, for calls translated to other
//! providers: the request decoder (`instructions` and `input` items → instructions and turns,
//! `max_output_tokens`, `text.format`, `reasoning.effort`), the whole-response encoder, and the
//! stream encoder with the full event lifecycle (providers.md §1.11).
//!
//! Invariants: every top-level parameter is in `PARAMS`; requests that need server-side state
//! (`previous_response_id`, `conversation`, item references) are refused by name, since a
//! translated provider stores nothing; every streamed event carries `event:` and the same `type`
//! inside `data` with a `sequence_number` that grows by one; an output item is always added before
//! its deltas and done before the next item starts; the stream ends with exactly one terminal
//! event (`response.completed`, `response.incomplete` or `response.failed`) carrying the whole
//! response with its usage.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::dialect::{boolean, common, push_result, screen, tool_choice, tool_def};
use super::dialect::{
    call_id, clip, count, data_url, effort, from_url_safe, kind, no_op, number, push_once, split_call_id, string,
    Decoded, Disposition, Refusal,
};
use crate::core::ir::{self, Event, Finish, Format, Part, Role, StreamEncoder, Turn};
use crate::core::openai::Usage;

use Disposition::{Hint, Rejected, Translated};

/// Every Responses parameter the gateway knows (the decoder and `providers --json` read it).
pub const PARAMS: &[(&str, Disposition)] = &[
    ("model", Translated(None)),
    ("input", Translated(None)),
    ("instructions", Translated(None)),
    ("stream", Translated(None)),
    ("stream_options", Translated(None)),
    ("max_output_tokens", Translated(None)),
    ("temperature", Translated(Some(ir::Feature::Temperature))),
    ("top_p", Translated(Some(ir::Feature::TopP))),
    ("tools", Translated(None)),
    ("tool_choice", Translated(None)),
    ("parallel_tool_calls", Translated(Some(ir::Feature::SingleToolCall))),
    ("text", Translated(Some(ir::Feature::JsonSchema))),
    ("reasoning", Translated(Some(ir::Feature::Effort))),
    ("user", Hint),
    ("safety_identifier", Hint),
    ("metadata", Hint),
    ("store", Hint),
    ("service_tier", Hint),
    ("prompt_cache_key", Hint),
    ("prompt_cache_retention", Hint),
    ("truncation", Hint),
    ("previous_response_id", Rejected),
    ("conversation", Rejected),
    ("include", Translated(None)),
    ("background", Rejected),
    ("max_tool_calls", Rejected),
    ("top_logprobs", Rejected),
    ("prompt", Rejected),
];

/// Nested hints, named once in `x-prodex-ignored-params`.
pub const NESTED_HINTS: &[&str] =
    &["input[].content[].detail", "reasoning.summary", "tools[].strict", "stream_options.include_obfuscation"];

fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Refusal {
    Refusal::unsupported(param, message)
}

/// Reads a Responses body into the intermediate form.
pub fn decode_request(body: &Map<String, Value>) -> Result<Decoded, Refusal> {
    let mut ignored = screen(body, PARAMS, "Responses", |name| match name {
        "previous_response_id" | "conversation" => {
            "this provider stores no responses: send the whole conversation in `input`"
        }
        _ => "no equivalent at this provider; remove it or use an OpenAI upstream",
    })?;
    let (model, stream, _) = common(body, &mut ignored)?;
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    let mut system = Vec::new();
    if let Some(i) = get("instructions") {
        system.push(string(i, "instructions")?.to_string());
    }
    let turns = input(get("input"), &mut system, &mut ignored)?;
    let sampling = ir::Sampling {
        max_tokens: get("max_output_tokens").map(|v| count(v, "max_output_tokens")).transpose()?,
        temperature: get("temperature").map(|v| number(v, "temperature")).transpose()?,
        top_p: get("top_p").map(|v| number(v, "top_p")).transpose()?,
        ..ir::Sampling::default()
    };
    let tools = tools(get("tools"), &mut ignored)?;
    let tool_choice = get("tool_choice").map(|v| tool_choice(v, "tool_choice.name")).transpose()?;
    let parallel_tool_calls = get("parallel_tool_calls").map(|v| boolean(v, "parallel_tool_calls")).transpose()?;
    let format = match get("text") {
        None => Format::Text,
        Some(t) => text_format(t)?,
    };
    let effort = match get("reasoning") {
        None => None,
        Some(r) => {
            let r = r.as_object().ok_or_else(|| Refusal::invalid("reasoning", "`reasoning` must be an object"))?;
            for (k, v) in r {
                match k.as_str() {
                    "effort" => {}
                    "summary" | "generate_summary" if !v.is_null() => push_once(&mut ignored, "reasoning.summary"),
                    _ if no_op(v) => {}
                    _ => return Err(unsupported(format!("reasoning.{k}"), "not translated")),
                }
            }
            r.get("effort").filter(|e| !e.is_null()).map(effort).transpose()?
        }
    };
    include(get("include"))?;
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
        thinking_budget: None,
        stream,
    };
    Ok(Decoded { request, ignored, include_usage: true })
}

/// `include`: only `reasoning.encrypted_content`, which translated answers always carry (the
/// gateway keeps no state, so reasoning is replayable only from what the client sends back).
fn include(v: Option<&Value>) -> Result<(), Refusal> {
    let Some(v) = v else { return Ok(()) };
    let list = v.as_array().ok_or_else(|| Refusal::invalid("include", "`include` must be an array"))?;
    for (i, x) in list.iter().enumerate() {
        if x.as_str() != Some("reasoning.encrypted_content") {
            return Err(unsupported(format!("include[{i}]"), "only reasoning.encrypted_content is translated"));
        }
    }
    Ok(())
}

fn text_format(t: &Value) -> Result<Format, Refusal> {
    let t = t.as_object().ok_or_else(|| Refusal::invalid("text", "`text` must be an object"))?;
    for (k, v) in t {
        if k != "format" && !no_op(v) {
            return Err(unsupported(format!("text.{k}"), format!("`text.{k}` has no equivalent at this provider")));
        }
    }
    let Some(f) = t.get("format").filter(|f| !f.is_null()) else { return Ok(Format::Text) };
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::JsonObject),
        Some("json_schema") => {
            let schema = f
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| Refusal::invalid("text.format.schema", "`text.format.schema` must be an object"))?;
            Ok(Format::JsonSchema(schema.clone()))
        }
        _ => Err(Refusal::value("text.format.type", "`text.format.type` must be text, json_object or json_schema")),
    }
}

fn tools(v: Option<&Value>, ignored: &mut Vec<String>) -> Result<Vec<ir::Tool>, Refusal> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v.as_array().ok_or_else(|| Refusal::invalid("tools", "`tools` must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(unsupported(format!("tools[{i}].type"), "only function tools are translated"));
        }
        out.push(tool_def(t, &format!("tools[{i}]"), ignored, "tools[].strict")?);
    }
    Ok(out)
}

/// The `input`: a string, or items (messages, function calls and their outputs).
fn input(v: Option<&Value>, system: &mut Vec<String>, ignored: &mut Vec<String>) -> Result<Vec<Turn>, Refusal> {
    let items = match v {
        Some(Value::String(s)) => return Ok(vec![Turn { role: Role::User, parts: vec![Part::Text(s.clone())] }]),
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(Refusal::invalid("input", "`input` must be a string or a non-empty array of items")),
    };
    let mut turns: Vec<Turn> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let t = item.get("type").and_then(Value::as_str).unwrap_or("message");
        match t {
            "message" => {
                let role = string(item.get("role").unwrap_or(&Value::Null), &format!("{at}.role"))?;
                let parts = content(item.get("content").unwrap_or(&Value::Null), &format!("{at}.content"), ignored)?;
                match role {
                    "system" | "developer" => {
                        for p in parts {
                            match p {
                                Part::Text(t) => system.push(t),
                                _ => return Err(unsupported(format!("{at}.content"), "instructions hold text only")),
                            }
                        }
                    }
                    "user" => turns.push(Turn { role: Role::User, parts }),
                    "assistant" => push(&mut turns, Role::Assistant, parts),
                    other => {
                        return Err(Refusal::value(
                            format!("{at}.role"),
                            format!("role `{}` is not translated", clip(other)),
                        ))
                    }
                }
            }
            "function_call" => {
                let raw_id = string(item.get("call_id").unwrap_or(&Value::Null), &format!("{at}.call_id"))?;
                let name = string(item.get("name").unwrap_or(&Value::Null), &format!("{at}.name"))?;
                let raw = item.get("arguments").and_then(Value::as_str).unwrap_or("");
                let arguments = if raw.trim().is_empty() {
                    Value::Object(Map::new())
                } else {
                    serde_json::from_str::<Value>(raw).ok().filter(Value::is_object).ok_or_else(|| {
                        Refusal::invalid(format!("{at}.arguments"), "the call's arguments must be a JSON object")
                    })?
                };
                let (id, signature) = split_call_id(raw_id);
                names.insert(id.to_string(), name.to_string());
                let signature = signature.map(from_url_safe);
                push(
                    &mut turns,
                    Role::Assistant,
                    vec![Part::ToolCall { id: id.to_string(), name: name.to_string(), arguments, signature }],
                );
            }
            "reasoning" => match reasoning_part(item) {
                Some(part) => push(&mut turns, Role::Assistant, vec![part]),
                // Reasoning without its encrypted content cannot be replayed to any provider.
                None => push_once(ignored, "input[].reasoning"),
            },
            "function_call_output" => {
                let raw_id = string(item.get("call_id").unwrap_or(&Value::Null), &format!("{at}.call_id"))?;
                let call_id = split_call_id(raw_id).0.to_string();
                let name = names.get(&call_id).cloned().ok_or_else(|| {
                    Refusal::invalid(format!("{at}.call_id"), "no earlier function_call item has this call_id")
                })?;
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(_)) => content(&item["output"], &format!("{at}.output"), ignored)?
                        .into_iter()
                        .map(|p| {
                            if let Part::Text(t) = p {
                                Ok(t)
                            } else {
                                Err(unsupported(format!("{at}.output"), "tool outputs hold text only here"))
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join(""),
                    _ => {
                        return Err(Refusal::invalid(format!("{at}.output"), "`output` must be a string or text parts"))
                    }
                };
                let part = Part::ToolResult { call_id, name, content: output };
                push_result(&mut turns, part);
            }
            other => {
                return Err(unsupported(
                    format!("{at}.type"),
                    format!(
                        "`{}` items are not translated (they refer to state or tools of another provider)",
                        clip(other)
                    ),
                ))
            }
        }
    }
    Ok(turns)
}

/// Appends to the last turn when it is the same speaker's (an assistant message and its calls).
fn push(turns: &mut Vec<Turn>, role: Role, parts: Vec<Part>) {
    match turns.last_mut() {
        Some(t) if t.role == role && role == Role::Assistant => t.parts.extend(parts),
        _ => turns.push(Turn { role, parts }),
    }
}

/// A message's content: a string, or input/output parts.
fn content(v: &Value, path: &str, ignored: &mut Vec<String>) -> Result<Vec<Part>, Refusal> {
    let list = match v {
        Value::String(s) => return Ok(vec![Part::Text(s.clone())]),
        Value::Array(a) => a,
        other => {
            return Err(Refusal::invalid(path, format!("`{path}` must be a string or an array, not {}", kind(other))))
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, p) in list.iter().enumerate() {
        let at = format!("{path}[{j}]");
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(Part::Text(string(p.get("text").unwrap_or(&Value::Null), &format!("{at}.text"))?.to_string()));
            }
            Some("refusal") => out.push(Part::Text(p.get("refusal").and_then(Value::as_str).unwrap_or("").to_string())),
            Some("input_image") => {
                if p.get("detail").is_some_and(|d| !d.is_null()) {
                    push_once(ignored, "input[].content[].detail");
                }
                let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                    return Err(unsupported(
                        format!("{at}.file_id"),
                        "uploaded file ids are not translated; send image_url as a data: URL",
                    ));
                };
                out.push(data_url(url, &format!("{at}.image_url"))?);
            }
            Some("input_file") => {
                let Some(data) = p.get("file_data").and_then(Value::as_str) else {
                    return Err(unsupported(
                        format!("{at}.file_id"),
                        "uploaded file ids and file URLs are not translated; send file_data",
                    ));
                };
                out.push(data_url(data, &format!("{at}.file_data"))?);
            }
            _ => return Err(unsupported(format!("{at}.type"), "this content part type is not translated")),
        }
    }
    Ok(out)
}

/// Marks a redacted thinking block's data in a reasoning item's `encrypted_content`.
const REDACTED: &str = "redacted_thinking:";

/// A reasoning output item with the provider's thinking, for stateless replay (what OpenAI's
/// `include: ["reasoning.encrypted_content"]` gives): its text as the summary, its signature as
/// `encrypted_content` (a redacted block's data behind `REDACTED`).
fn reasoning_item(id: &str, t: &ir::Thinking) -> Value {
    let encrypted = t.signature.as_ref().map(|s| if t.redacted { format!("{REDACTED}{s}") } else { s.clone() });
    let summary = if t.text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": t.text}]) };
    json!({"type": "reasoning", "id": id, "summary": summary, "encrypted_content": encrypted, "status": "completed"})
}

/// A `reasoning` input item back as a thinking part (`None`: nothing replayable in it).
fn reasoning_part(item: &Value) -> Option<Part> {
    let encrypted = item.get("encrypted_content").and_then(Value::as_str).filter(|e| !e.is_empty())?;
    if let Some(data) = encrypted.strip_prefix(REDACTED) {
        return Some(Part::Thinking(ir::Thinking {
            text: String::new(),
            signature: Some(data.to_string()),
            redacted: true,
        }));
    }
    let text: String = item
        .get("summary")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("text").and_then(Value::as_str))
        .collect();
    Some(Part::Thinking(ir::Thinking { text, signature: Some(encrypted.to_string()), redacted: false }))
}

fn usage_json(u: &Usage) -> Value {
    json!({"input_tokens": u.input_tokens, "input_tokens_details": {"cached_tokens": u.cached_input_tokens, "cache_write_tokens": u.cache_write_tokens},
           "output_tokens": u.output_tokens, "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
           "total_tokens": u.input_tokens + u.output_tokens})
}

/// `(status, incomplete_details)` for how the generation ended.
fn terminal(finish: Option<Finish>) -> (&'static str, Value) {
    match finish {
        Some(Finish::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(Finish::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn call_item(id: &str, call_id: &str, call: &ir::ToolCall, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": call.name, "arguments": arguments, "status": status})
}

fn envelope(
    id: &str,
    model: &str,
    created: u64,
    status: &str,
    output: Vec<Value>,
    usage: Option<&Usage>,
    incomplete: Value,
) -> Value {
    json!({"id": id, "object": "response", "created_at": created, "status": status, "model": model,
           "output": output, "usage": usage.map(usage_json), "error": null, "incomplete_details": incomplete,
           "instructions": null, "metadata": {}, "parallel_tool_calls": true, "temperature": null, "top_p": null,
           "tool_choice": "auto", "tools": []})
}

/// A whole `response` object (only the first choice: Responses has no `n`).
#[must_use]
pub fn encode_response(resp: &ir::Response, created: u64, seed: &str) -> Value {
    let choice = resp.choices.first();
    let mut output: Vec<Value> = choice
        .map_or(&[][..], |c| c.thinking.as_slice())
        .iter()
        .enumerate()
        .map(|(i, t)| reasoning_item(&format!("rs_{seed}x{i}"), t))
        .collect();
    if let Some(text) = choice.and_then(|c| c.text.as_deref()).filter(|t| !t.is_empty()) {
        output.push(message_item(&format!("msg_{seed}"), text, "completed"));
    }
    for (i, call) in choice.map_or(&[][..], |c| c.tool_calls.as_slice()).iter().enumerate() {
        let cid = call_id(call, seed, 0, i as u64);
        output.push(call_item(&format!("fc_{seed}x{i}"), &cid, call, &call.arguments, "completed"));
    }
    let (status, incomplete) = terminal(choice.and_then(|c| c.finish));
    envelope(&format!("resp_{}", resp.id), &resp.model, created, status, output, resp.usage.as_ref(), incomplete)
}

/// Writes stream events as Responses events, with the full item lifecycle.
#[derive(Debug)]
pub struct EventEncoder {
    id: String,
    model: String,
    created: u64,
    seed: String,
    sequence: u64,
    started: bool,
    /// The open message item: (output index, text so far).
    text: Option<(usize, String)>,
    output: Vec<Value>,
    usage: Option<Usage>,
    finish: Option<Finish>,
    failed: bool,
}

impl EventEncoder {
    #[must_use]
    pub fn new(id: &str, model: &str, created: u64, seed: &str) -> Self {
        Self {
            id: format!("resp_{id}"),
            model: model.to_string(),
            created,
            seed: seed.to_string(),
            sequence: 0,
            started: false,
            text: None,
            output: Vec::new(),
            usage: None,
            finish: None,
            failed: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(format!("event: {kind}\ndata: {data}\n\n").as_bytes());
    }

    fn snapshot(&self, status: &str, incomplete: Value) -> Value {
        envelope(&self.id, &self.model, self.created, status, self.output.clone(), self.usage.as_ref(), incomplete)
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let r = self.snapshot("in_progress", Value::Null);
            self.emit(out, "response.created", json!({"response": r}));
            let r = self.snapshot("in_progress", Value::Null);
            self.emit(out, "response.in_progress", json!({"response": r}));
        }
    }

    fn msg_id(&self) -> String {
        format!("msg_{}", self.seed)
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        if let Some((index, text)) = self.text.take() {
            let id = self.msg_id();
            self.emit(
                out,
                "response.output_text.done",
                json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
            );
            self.emit(
                out,
                "response.content_part.done",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": []}}),
            );
            let item = message_item(&id, &text, "completed");
            self.emit(out, "response.output_item.done", json!({"output_index": index, "item": item}));
            self.output.push(item);
        }
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
            Event::ThinkingBlock { choice: 0, block } => {
                // The whole reasoning item once its block is complete (its signature comes last).
                self.close_text(&mut out);
                let index = self.output.len();
                let item = reasoning_item(&format!("rs_{}x{index}", self.seed), block);
                let mut added = item.clone();
                added["summary"] = json!([]);
                added["status"] = json!("in_progress");
                self.emit(&mut out, "response.output_item.added", json!({"output_index": index, "item": added}));
                self.emit(&mut out, "response.output_item.done", json!({"output_index": index, "item": item}));
                self.output.push(item);
            }
            Event::Text { choice: 0, text } => {
                let id = self.msg_id();
                if self.text.is_none() {
                    let index = self.output.len();
                    let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
                    self.emit(&mut out, "response.output_item.added", json!({"output_index": index, "item": item}));
                    self.emit(
                        &mut out,
                        "response.content_part.added",
                        json!({"item_id": id, "output_index": index, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []}}),
                    );
                    self.text = Some((index, String::new()));
                }
                let index = self.text.as_ref().map_or(0, |(i, _)| *i);
                if let Some((_, all)) = self.text.as_mut() {
                    all.push_str(text);
                }
                self.emit(
                    &mut out,
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
                );
            }
            Event::ToolCall { choice: 0, index, call } => {
                self.close_text(&mut out);
                let at = self.output.len();
                let item_id = format!("fc_{}x{index}", self.seed);
                let cid = call_id(call, &self.seed, 0, *index);
                self.emit(
                    &mut out,
                    "response.output_item.added",
                    json!({"output_index": at, "item": call_item(&item_id, &cid, call, "", "in_progress")}),
                );
                self.emit(
                    &mut out,
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": at, "delta": call.arguments}),
                );
                self.emit(
                    &mut out,
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": at, "name": call.name, "arguments": call.arguments}),
                );
                let item = call_item(&item_id, &cid, call, &call.arguments, "completed");
                self.emit(&mut out, "response.output_item.done", json!({"output_index": at, "item": item}));
                self.output.push(item);
            }
            Event::Finish { choice: 0, finish } => self.finish = Some(*finish),
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => {
                self.failed = true;
                let mut r = self.snapshot("failed", Value::Null);
                r["error"] = json!({"code": e.code, "message": e.message});
                self.emit(&mut out, "response.failed", json!({"response": r}));
            }
            // Responses has one choice: other candidates cannot be asked for (no `n`).
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
        let (status, incomplete) = terminal(self.finish);
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        let r = self.snapshot(status, incomplete);
        self.emit(&mut out, kind, json!({"response": r}));
        out
    }
}

/// An egress's refusal, naming the Responses parameter.
#[must_use]
pub fn refuse(u: &ir::Unsupported) -> Refusal {
    let param = match u.feature {
        ir::Feature::Effort => "reasoning.effort".to_string(),
        ir::Feature::ToolName => format!("tools[{}].name", u.index.unwrap_or(0)),
        ir::Feature::JsonObject | ir::Feature::JsonSchema => "text.format".to_string(),
        ir::Feature::Media | ir::Feature::ThinkingReplay => "input".to_string(),
        other => super::chat::param_of(other, u.index),
    };
    Refusal::unsupported(u.param.clone().unwrap_or(param), u.why.clone())
}
