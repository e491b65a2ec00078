//! The OpenAI chat-completions dialect of the intermediate form (`core::ir`): the decoder of a
//! request body and the encoder of responses, stream chunks and errors, for calls the gateway
//! translates to another provider.
//!
//! Invariants: every top-level parameter is in `PARAMS` as translated, hint (accepted, no effect,
//! named in `x-prodex-ignored-params`) or rejected; a parameter not in the table, a rejected one
//! with an effective value, or a value the decoder cannot place is a `Refusal` naming its dotted
//! path — nothing is dropped. A tool-call id the encoder writes carries the provider's replay
//! signature (`__ts_` + base64url), and the decoder takes it back out, so a client that echoes
//! only standard fields replays it. Stream chunks follow OpenAI's exact sequence: role first,
//! each tool call whole with a stable index, the finish chunk, the usage chunk when asked for,
//! `data: [DONE]`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::core::ir::{self, Feature, Finish, Format, Part, Role, Turn};
use crate::core::openai::Usage;

use super::dialect::{
    boolean, clip, common, count, data_url, effort, from_url_safe, kind, no_op, number, push_once, push_result, screen,
    string, tool_choice, tool_def,
};
pub use super::dialect::{call_id, split_call_id, Decoded, Disposition, Refusal};
use Disposition::{Hint, Rejected, Translated};

/// Every chat-completions parameter the gateway knows, the one table the decoder and
/// `prodex gateway providers --json` read.
pub const PARAMS: &[(&str, Disposition)] = &[
    ("model", Translated(None)),
    ("messages", Translated(None)),
    ("stream", Translated(None)),
    ("stream_options", Translated(None)),
    ("max_completion_tokens", Translated(None)),
    ("max_tokens", Translated(None)),
    ("temperature", Translated(Some(Feature::Temperature))),
    ("top_p", Translated(Some(Feature::TopP))),
    ("n", Translated(Some(Feature::Choices))),
    ("seed", Translated(Some(Feature::Seed))),
    ("stop", Translated(Some(Feature::Stop))),
    ("presence_penalty", Translated(Some(Feature::Penalties))),
    ("frequency_penalty", Translated(Some(Feature::Penalties))),
    ("tools", Translated(None)),
    ("tool_choice", Translated(None)),
    ("parallel_tool_calls", Translated(Some(Feature::SingleToolCall))),
    ("response_format", Translated(Some(Feature::JsonSchema))),
    ("reasoning_effort", Translated(Some(Feature::Effort))),
    ("user", Hint),
    ("safety_identifier", Hint),
    ("metadata", Hint),
    ("store", Hint),
    ("service_tier", Hint),
    ("prompt_cache_key", Hint),
    ("prompt_cache_retention", Hint),
    ("logit_bias", Rejected),
    ("logprobs", Rejected),
    ("top_logprobs", Rejected),
    ("modalities", Rejected),
    ("audio", Rejected),
    ("prediction", Rejected),
    ("web_search_options", Rejected),
    ("verbosity", Rejected),
    ("functions", Rejected),
    ("function_call", Rejected),
];

/// Nested hints: accepted anywhere they appear, named once in the header.
pub const NESTED_HINTS: &[&str] = &[
    "messages[].name",
    "messages[].content[].image_url.detail",
    "tools[].function.strict",
    "stream_options.include_obfuscation",
    "messages[].reasoning_content",
];

/// The parameter that asks for `feature` (for an egress's refusal).
#[must_use]
pub fn param_of(feature: Feature, index: Option<usize>) -> String {
    let name = match feature {
        Feature::Choices => "n",
        Feature::Seed => "seed",
        Feature::Penalties => "presence_penalty",
        Feature::SingleToolCall => "parallel_tool_calls",
        Feature::Effort => "reasoning_effort",
        Feature::JsonObject | Feature::JsonSchema => "response_format",
        Feature::Stop => "stop",
        Feature::TopP => "top_p",
        Feature::Temperature => "temperature",
        Feature::Media => "messages",
        Feature::ToolName => return format!("tools[{}].function.name", index.unwrap_or(0)),
        Feature::TopK => "top_k",
        Feature::ForcedTool => "tool_choice",
        Feature::ThinkingReplay => "messages[].thinking_blocks",
    };
    name.to_string()
}

/// An egress's refusal in this dialect.
#[must_use]
pub fn refuse(u: &ir::Unsupported) -> Refusal {
    Refusal::unsupported(u.param.clone().unwrap_or_else(|| param_of(u.feature, u.index)), u.why.clone())
}

/// Reads a chat-completions body into the intermediate form.
pub fn decode_request(body: &Map<String, Value>) -> Result<Decoded, Refusal> {
    let mut ignored = screen(body, PARAMS, "chat-completions", |_| {
        "no equivalent at this provider; remove it or use an OpenAI upstream"
    })?;
    let (model, stream, include_usage) = common(body, &mut ignored)?;
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    let (system, turns) = messages(get("messages"), &mut ignored)?;
    let mut sampling = ir::Sampling {
        max_tokens: get("max_completion_tokens")
            .or(get("max_tokens"))
            .map(|v| count(v, "max_completion_tokens"))
            .transpose()?,
        temperature: get("temperature").map(|v| number(v, "temperature")).transpose()?,
        top_p: get("top_p").map(|v| number(v, "top_p")).transpose()?,
        top_k: None,
        n: get("n").map(|v| count(v, "n")).transpose()?,
        seed: get("seed")
            .map(|v| v.as_i64().ok_or_else(|| Refusal::invalid("seed", "`seed` must be an integer")))
            .transpose()?,
        stop: Vec::new(),
        presence_penalty: get("presence_penalty").map(|v| number(v, "presence_penalty")).transpose()?,
        frequency_penalty: get("frequency_penalty").map(|v| number(v, "frequency_penalty")).transpose()?,
    };
    if sampling.n == Some(0) {
        return Err(Refusal::invalid("n", "`n` must be at least 1"));
    }
    match get("stop") {
        None => {}
        Some(Value::String(s)) => sampling.stop.push(s.clone()),
        Some(Value::Array(a)) => {
            for (i, s) in a.iter().enumerate() {
                sampling.stop.push(string(s, &format!("stop[{i}]"))?.to_string());
            }
        }
        Some(other) => {
            return Err(Refusal::invalid("stop", format!("`stop` must be a string or an array, not {}", kind(other))))
        }
    }
    let tools = tools(get("tools"), &mut ignored)?;
    let tool_choice = get("tool_choice").map(|v| tool_choice(v, "tool_choice.function.name")).transpose()?;
    let parallel_tool_calls = get("parallel_tool_calls").map(|v| boolean(v, "parallel_tool_calls")).transpose()?;
    let format = get("response_format").map(format).transpose()?.unwrap_or(Format::Text);
    let effort = get("reasoning_effort").map(effort).transpose()?;
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
    Ok(Decoded { request, ignored, include_usage })
}

fn format(v: &Value) -> Result<Format, Refusal> {
    let t = v.get("type").and_then(Value::as_str).unwrap_or("");
    match t {
        "text" => Ok(Format::Text),
        "json_object" => Ok(Format::JsonObject),
        "json_schema" => {
            let schema = v.pointer("/json_schema/schema").filter(|s| s.is_object()).ok_or_else(|| {
                Refusal::invalid(
                    "response_format.json_schema.schema",
                    "`response_format.json_schema.schema` must be an object",
                )
            })?;
            Ok(Format::JsonSchema(schema.clone()))
        }
        _ => Err(Refusal::value(
            "response_format.type",
            "`response_format.type` must be text, json_object or json_schema",
        )),
    }
}

fn tools(v: Option<&Value>, ignored: &mut Vec<String>) -> Result<Vec<ir::Tool>, Refusal> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v.as_array().ok_or_else(|| Refusal::invalid("tools", "`tools` must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(Refusal::unsupported(format!("tools[{i}].type"), "only function tools are translated"));
        }
        let f = t.get("function").filter(|f| f.is_object()).ok_or_else(|| {
            Refusal::invalid(format!("tools[{i}].function"), "a function tool needs a `function` object")
        })?;
        out.push(tool_def(f, &format!("tools[{i}].function"), ignored, "tools[].function.strict")?);
    }
    Ok(out)
}

/// The messages: leading and later system/developer messages become the instructions (in order;
/// no provider here has a mid-conversation system turn), consecutive tool results one turn.
fn messages(v: Option<&Value>, ignored: &mut Vec<String>) -> Result<(Vec<String>, Vec<Turn>), Refusal> {
    let list = v
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| Refusal::invalid("messages", "`messages` must be a non-empty array"))?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, m) in list.iter().enumerate() {
        let at = |k: &str| format!("messages[{i}].{k}");
        let m =
            m.as_object().ok_or_else(|| Refusal::invalid(format!("messages[{i}]"), "a message must be an object"))?;
        let role = string(m.get("role").unwrap_or(&Value::Null), &at("role"))?;
        for (k, value) in m {
            match k.as_str() {
                "role" | "content" => {}
                "name" => push_once(ignored, "messages[].name"),
                "tool_calls" | "refusal" | "thinking_blocks" if role == "assistant" => {}
                // The text of the thinking; the signed blocks are what replays it.
                "reasoning_content" if role == "assistant" => push_once(ignored, "messages[].reasoning_content"),
                "tool_call_id" if role == "tool" => {}
                _ if no_op(value) => {}
                _ => return Err(Refusal::unsupported(at(k), format!("`{k}` on a {role} message is not translated"))),
            }
        }
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.extend(texts(content, &at("content"))?),
            "user" => {
                let parts = user_parts(content, i, ignored)?;
                turns.push(Turn { role: Role::User, parts });
            }
            "assistant" => {
                let mut parts = match m.get("thinking_blocks").filter(|b| !b.is_null()) {
                    Some(b) => thinking_blocks(b, &at("thinking_blocks"))?,
                    None => Vec::new(),
                };
                parts.extend(texts(content, &at("content"))?.into_iter().filter(|t| !t.is_empty()).map(Part::Text));
                if let Some(calls) = m.get("tool_calls").filter(|c| !c.is_null()) {
                    let calls = calls
                        .as_array()
                        .ok_or_else(|| Refusal::invalid(at("tool_calls"), "`tool_calls` must be an array"))?;
                    for (j, c) in calls.iter().enumerate() {
                        let part = tool_call(c, &format!("messages[{i}].tool_calls[{j}]"))?;
                        if let Part::ToolCall { id, name, .. } = &part {
                            call_names.insert(id.clone(), name.clone());
                        }
                        parts.push(part);
                    }
                }
                turns.push(Turn { role: Role::Assistant, parts });
            }
            "tool" => {
                let raw_id = string(m.get("tool_call_id").unwrap_or(&Value::Null), &at("tool_call_id"))?;
                let call_id = split_call_id(raw_id).0.to_string();
                let name = call_names.get(&call_id).cloned().ok_or_else(|| {
                    Refusal::invalid(at("tool_call_id"), "no earlier assistant tool call has this id")
                })?;
                let content = texts(content, &at("content"))?.join("");
                let part = Part::ToolResult { call_id, name, content };
                push_result(&mut turns, part);
            }
            other => return Err(Refusal::value(at("role"), format!("role `{}` is not translated", clip(other)))),
        }
    }
    Ok((system, turns))
}

fn tool_call(c: &Value, path: &str) -> Result<Part, Refusal> {
    if c.get("type").and_then(Value::as_str).is_some_and(|t| t != "function") {
        return Err(Refusal::unsupported(format!("{path}.type"), "only function tool calls are translated"));
    }
    let id = string(c.get("id").unwrap_or(&Value::Null), &format!("{path}.id"))?;
    let f = c.get("function").unwrap_or(&Value::Null);
    let name = string(f.get("name").unwrap_or(&Value::Null), &format!("{path}.function.name"))?;
    let args_path = format!("{path}.function.arguments");
    let raw = f.get("arguments").and_then(Value::as_str).unwrap_or("");
    let arguments = if raw.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str::<Value>(raw)
            .map_err(|_| Refusal::invalid(&args_path, "the tool-call arguments are not JSON"))?
    };
    if !arguments.is_object() {
        return Err(Refusal::invalid(args_path, "the tool-call arguments must be a JSON object"));
    }
    let (id, signature) = split_call_id(id);
    Ok(Part::ToolCall {
        id: id.to_string(),
        name: name.to_string(),
        arguments,
        signature: signature.map(from_url_safe),
    })
}

/// A message's text: a string, or an array of text (and refusal) parts.
fn texts(content: &Value, path: &str) -> Result<Vec<String>, Refusal> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => {
                    Ok(string(p.get("text").unwrap_or(&Value::Null), &format!("{path}[{j}].text"))?.to_string())
                }
                Some("refusal") => Ok(p.get("refusal").and_then(Value::as_str).unwrap_or("").to_string()),
                _ => Err(Refusal::unsupported(format!("{path}[{j}].type"), "only text parts are translated here")),
            })
            .collect(),
        other => Err(Refusal::invalid(path, format!("`{path}` must be a string or an array, not {}", kind(other)))),
    }
}

fn user_parts(content: &Value, i: usize, ignored: &mut Vec<String>) -> Result<Vec<Part>, Refusal> {
    let Value::Array(list) = content else {
        return Ok(texts(content, &format!("messages[{i}].content"))?.into_iter().map(Part::Text).collect());
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, p) in list.iter().enumerate() {
        let path = format!("messages[{i}].content[{j}]");
        match p.get("type").and_then(Value::as_str) {
            Some("text") => out
                .push(Part::Text(string(p.get("text").unwrap_or(&Value::Null), &format!("{path}.text"))?.to_string())),
            Some("image_url") => {
                let img = p.get("image_url").unwrap_or(&Value::Null);
                if img.get("detail").is_some_and(|d| !d.is_null()) {
                    push_once(ignored, "messages[].content[].image_url.detail");
                }
                let url = string(img.get("url").unwrap_or(&Value::Null), &format!("{path}.image_url.url"))?;
                out.push(data_url(url, &format!("{path}.image_url.url"))?);
            }
            Some("input_audio") => {
                let a = p.get("input_audio").unwrap_or(&Value::Null);
                let data = string(a.get("data").unwrap_or(&Value::Null), &format!("{path}.input_audio.data"))?;
                let mime = match a.get("format").and_then(Value::as_str) {
                    Some("wav") => "audio/wav",
                    Some("mp3") => "audio/mp3",
                    _ => {
                        return Err(Refusal::value(
                            format!("{path}.input_audio.format"),
                            "audio format must be wav or mp3",
                        ))
                    }
                };
                out.push(Part::Media { mime: mime.into(), data: data.to_string() });
            }
            Some("file") => {
                let f = p.get("file").unwrap_or(&Value::Null);
                let Some(data) = f.get("file_data").and_then(Value::as_str) else {
                    return Err(Refusal::unsupported(
                        format!("{path}.file.file_id"),
                        "uploaded file ids are not translated; send file_data",
                    ));
                };
                out.push(data_url(data, &format!("{path}.file.file_data"))?);
            }
            _ => return Err(Refusal::unsupported(format!("{path}.type"), "this content part type is not translated")),
        }
    }
    Ok(out)
}

pub(super) fn finish_reason(f: Option<Finish>) -> &'static str {
    match f {
        Some(Finish::Length) => "length",
        Some(Finish::ToolCalls) => "tool_calls",
        Some(Finish::ContentFilter) => "content_filter",
        Some(Finish::Stop) | None => "stop",
    }
}

/// The chat `usage` object.
#[must_use]
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens, "cache_write_tokens": u.cache_write_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    })
}

/// A thinking block as chat clients carry it (`message.thinking_blocks`, the shape LiteLLM made
/// common): echoed back on the next turn, it replays the provider's signed thinking.
#[must_use]
pub fn thinking_block(t: &ir::Thinking) -> Value {
    if t.redacted {
        return json!({"type": "redacted_thinking", "data": t.signature});
    }
    json!({"type": "thinking", "thinking": t.text, "signature": t.signature})
}

/// `message.thinking_blocks` read back into thinking parts.
fn thinking_blocks(v: &Value, path: &str) -> Result<Vec<Part>, Refusal> {
    let list = v.as_array().ok_or_else(|| Refusal::invalid(path, "`thinking_blocks` must be an array"))?;
    list.iter()
        .enumerate()
        .map(|(k, b)| {
            let at = |f: &str| format!("{path}[{k}].{f}");
            let field = |f: &str| string(b.get(f).unwrap_or(&Value::Null), &at(f)).map(str::to_string);
            match b.get("type").and_then(Value::as_str) {
                Some("thinking") => Ok(Part::Thinking(ir::Thinking {
                    text: field("thinking")?,
                    signature: b.get("signature").and_then(Value::as_str).map(str::to_string),
                    redacted: false,
                })),
                Some("redacted_thinking") => Ok(Part::Thinking(ir::Thinking {
                    text: String::new(),
                    signature: Some(field("data")?),
                    redacted: true,
                })),
                _ => Err(Refusal::value(at("type"), "a thinking block is `thinking` or `redacted_thinking`")),
            }
        })
        .collect()
}

/// A whole `chat.completion` for `resp`; `seed` makes ids for calls the provider left unnamed.
#[must_use]
pub fn encode_response(resp: &ir::Response, created: u64, seed: &str) -> Value {
    let choices: Vec<Value> = resp
        .choices
        .iter()
        .map(|c| {
            let mut message = json!({"role": "assistant", "content": c.text, "refusal": null});
            if !c.thinking.is_empty() {
                let text: String = c.thinking.iter().filter(|t| !t.redacted).map(|t| t.text.as_str()).collect();
                message["reasoning_content"] = json!(text);
                message["thinking_blocks"] = c.thinking.iter().map(thinking_block).collect();
            }
            if !c.tool_calls.is_empty() {
                let calls: Vec<Value> = c
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        json!({"id": call_id(t, seed, c.index, i as u64), "type": "function",
                           "function": {"name": t.name, "arguments": t.arguments}})
                    })
                    .collect();
                message["tool_calls"] = Value::Array(calls);
            }
            json!({"index": c.index, "message": message, "logprobs": null, "finish_reason": finish_reason(c.finish)})
        })
        .collect();
    let mut out = json!({"id": format!("chatcmpl-{}", resp.id), "object": "chat.completion", "created": created,
                         "model": resp.model, "choices": choices});
    if let Some(u) = &resp.usage {
        out["usage"] = usage_json(u);
    }
    out
}

/// Writes stream events as chat-completion chunks, one SSE frame each.
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    model: String,
    created: u64,
    seed: String,
    include_usage: bool,
    /// Choices whose first chunk (with the role) went out.
    started: Vec<u64>,
    usage: Option<Usage>,
    failed: bool,
}

impl ChunkEncoder {
    #[must_use]
    pub fn new(id: &str, model: &str, created: u64, seed: &str, include_usage: bool) -> Self {
        Self {
            id: format!("chatcmpl-{id}"),
            model: model.to_string(),
            created,
            seed: seed.to_string(),
            include_usage,
            started: Vec::new(),
            usage: None,
            failed: false,
        }
    }

    fn frame(&self, out: &mut Vec<u8>, choices: Value, usage: Option<Value>) {
        let mut chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model, "choices": choices});
        if self.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(chunk.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    fn delta(&mut self, out: &mut Vec<u8>, choice: u64, mut delta: Value, finish: Option<&str>) {
        if !self.started.contains(&choice) {
            self.started.push(choice);
            delta["role"] = json!("assistant");
        }
        self.frame(out, json!([{"index": choice, "delta": delta, "logprobs": null, "finish_reason": finish}]), None);
    }

    /// The bytes for one event (empty for usage, which is sent at the end).
    pub fn encode(&mut self, event: &ir::Event) -> Vec<u8> {
        let mut out = Vec::new();
        match event {
            ir::Event::Text { choice, text } => self.delta(&mut out, *choice, json!({"content": text}), None),
            ir::Event::ThinkingDelta { choice, text } => {
                self.delta(&mut out, *choice, json!({"reasoning_content": text}), None);
            }
            ir::Event::ThinkingBlock { choice, block } => {
                self.delta(&mut out, *choice, json!({"thinking_blocks": [thinking_block(block)]}), None);
            }
            ir::Event::ToolCall { choice, index, call } => {
                let id = call_id(call, &self.seed, *choice, *index);
                let delta = json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                   "function": {"name": call.name, "arguments": call.arguments}}]});
                self.delta(&mut out, *choice, delta, None);
            }
            ir::Event::Finish { choice, finish } => {
                self.delta(&mut out, *choice, json!({}), Some(finish_reason(Some(*finish))))
            }
            ir::Event::Usage(u) => self.usage = Some(*u),
            ir::Event::Error(e) => {
                self.failed = true;
                let body = json!({"error": {"message": e.message, "type": "api_error", "param": null, "code": e.code}});
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(body.to_string().as_bytes());
                out.extend_from_slice(b"\n\n");
            }
        }
        out
    }

    /// The closing bytes: the usage chunk (when asked for) and `data: [DONE]`; nothing after an error.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        if self.include_usage {
            let usage = self.usage.as_ref().map(usage_json);
            self.frame(&mut out, json!([]), Some(usage.unwrap_or(Value::Null)));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }
}

impl ir::StreamEncoder for ChunkEncoder {
    fn encode(&mut self, event: &ir::Event) -> Vec<u8> {
        ChunkEncoder::encode(self, event)
    }
    fn finish(&mut self) -> Vec<u8> {
        ChunkEncoder::finish(self)
    }
}
