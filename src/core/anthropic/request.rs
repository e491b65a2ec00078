//! The Anthropic Messages request encoder for calls translated from OpenAI clients (chat
//! completions, Responses): the intermediate form written as a `/v1/messages` body.
//!
//! Invariants: every feature Anthropic cannot honour is refused through `Unsupported` (the ingress
//! names its parameter) — `n` > 1, `seed`, penalties, schema-less JSON mode, a temperature above
//! 1, and with thinking on any sampling change or a forced tool; `max_tokens` is always sent
//! (the client's, else the model's catalog maximum); a thinking budget is at least 1,024 and below
//! `max_tokens`; tool results of one turn are one user message, before its text; tool-call ids
//! are sent in Anthropic's charset and length, the same id in `tool_use` and `tool_result`;
//! signed thinking is replayed unmodified, first in its turn, and a tool loop whose thinking the
//! client dropped is refused by name (never sent with thinking silently off).

use serde_json::{json, Map, Value};

use super::{DEFAULT_MAX_TOKENS, REFUSED};
use crate::core::ir::{self, Effort, Feature, Format, Part, Role, ToolChoice, Unsupported};
use crate::core::pricing;

/// The smallest thinking budget Anthropic takes.
pub const MIN_THINKING_BUDGET: u64 = 1_024;

/// Image types Anthropic takes inline.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

fn unsupported(feature: Feature, why: impl Into<String>) -> Unsupported {
    Unsupported { feature, index: None, param: None, why: why.into() }
}

/// A feature Anthropic never honours, refused with the reason its `REFUSED` entry gives.
fn never(feature: Feature) -> Unsupported {
    let why = REFUSED.iter().find(|(f, _)| *f == feature).map_or("Anthropic has no equivalent", |(_, w)| w);
    unsupported(feature, why)
}

/// The thinking budget an effort asks for (`None`: no thinking).
#[must_use]
pub fn effort_budget(effort: Effort) -> Option<u64> {
    match effort {
        Effort::None => None,
        Effort::Minimal => Some(MIN_THINKING_BUDGET),
        Effort::Low => Some(2_048),
        Effort::Medium => Some(8_192),
        Effort::High => Some(24_576),
    }
}

/// `max_tokens` for `model` when the client gave none: the model's largest completion from the
/// built-in catalog, else `DEFAULT_MAX_TOKENS`.
#[must_use]
pub fn default_max_tokens(model: &str) -> u64 {
    pricing::builtin_max_output(model).filter(|m| *m > 0).unwrap_or(DEFAULT_MAX_TOKENS)
}

/// A tool-call id in Anthropic's charset (`[A-Za-z0-9_-]`, at most 64): an id already in it is
/// kept; any other becomes `toolu_` and a digest of it, the same for the same id.
#[must_use]
pub fn tool_id(id: &str) -> String {
    let legal =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if legal {
        return id.to_string();
    }
    let digest = crate::core::credential::digest(id);
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("toolu_x{hex}")
}

/// The thinking `{type, budget_tokens}` and the `max_tokens` to send.
fn thinking(req: &ir::Request) -> Result<(Option<u64>, u64), Unsupported> {
    let asked = req.sampling.max_tokens;
    let budget = req.thinking_budget.or_else(|| req.effort.and_then(effort_budget));
    let max_tokens = asked.unwrap_or_else(|| default_max_tokens(&req.model));
    let Some(budget) = budget else { return Ok((None, max_tokens)) };
    if max_tokens <= MIN_THINKING_BUDGET {
        return Err(unsupported(
            Feature::Effort,
            format!("thinking needs a max_tokens above {MIN_THINKING_BUDGET} (the budget counts towards it)"),
        ));
    }
    // The budget counts towards max_tokens: keep room for the answer.
    let budget = budget.max(MIN_THINKING_BUDGET).min(max_tokens - 1);
    Ok((Some(budget), max_tokens))
}

/// The rules Anthropic sets on a request with thinking on.
fn thinking_rules(req: &ir::Request) -> Result<(), Unsupported> {
    let s = &req.sampling;
    if s.temperature.is_some_and(|t| (t - 1.0).abs() > f64::EPSILON) {
        return Err(unsupported(
            Feature::Temperature,
            "with thinking on, Anthropic takes only temperature 1 (or none)",
        ));
    }
    if s.top_p.is_some_and(|p| p < 0.95) {
        return Err(unsupported(Feature::TopP, "with thinking on, Anthropic takes top_p only between 0.95 and 1"));
    }
    if s.top_k.is_some() {
        return Err(unsupported(Feature::TopK, "with thinking on, Anthropic takes no top_k"));
    }
    if matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Named(_))) {
        return Err(unsupported(Feature::ForcedTool, "with thinking on, Anthropic cannot be forced to call a tool"));
    }
    // The turn that made the calls now answered must start with its thinking block.
    let last_calls = req.turns.iter().rposition(|t| t.role == Role::Assistant);
    if let Some(i) = last_calls {
        let t = &req.turns[i];
        let calls = t.parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
        let answered = req.turns[i + 1..].iter().any(|t| t.parts.iter().any(|p| matches!(p, Part::ToolResult { .. })));
        let thought = t.parts.iter().any(|p| matches!(p, Part::Thinking(_)));
        if calls && answered && !thought {
            return Err(Unsupported {
                feature: Feature::ThinkingReplay,
                index: Some(i),
                param: None,
                why: "with thinking on, the assistant turn whose tool calls are answered must carry its thinking blocks back (echo the message's thinking_blocks as the gateway returned them)".into(),
            });
        }
    }
    Ok(())
}

/// Every object in a JSON Schema must forbid extra properties for Anthropic's structured output.
fn strict_objects(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            let is_object = m
                .get("type")
                .is_some_and(|t| t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object"))));
            if is_object && m.get("additionalProperties") != Some(&Value::Bool(false)) {
                return false;
            }
            m.values().all(strict_objects)
        }
        Value::Array(a) => a.iter().all(strict_objects),
        _ => true,
    }
}

fn media(mime: &str, source: Value) -> Result<Value, Unsupported> {
    if mime == "application/pdf" {
        return Ok(json!({"type": "document", "source": source}));
    }
    if IMAGE_TYPES.contains(&mime) {
        return Ok(json!({"type": "image", "source": source}));
    }
    Err(unsupported(Feature::Media, format!("Anthropic takes JPEG, PNG, GIF and WebP images and PDFs, not {mime}")))
}

fn block(p: &Part) -> Result<Option<Value>, Unsupported> {
    Ok(Some(match p {
        // Anthropic refuses empty and whitespace-only text blocks; they say nothing.
        Part::Text(t) if t.trim().is_empty() => return Ok(None),
        Part::Text(t) => json!({"type": "text", "text": t}),
        Part::Media { mime, data } => media(mime, json!({"type": "base64", "media_type": mime, "data": data}))?,
        Part::Remote { url, param } => {
            let kind = if param.contains("file") { "document" } else { "image" };
            json!({"type": kind, "source": {"type": "url", "url": url}})
        }
        Part::ToolCall { id, name, arguments, .. } => {
            json!({"type": "tool_use", "id": tool_id(id), "name": name, "input": arguments})
        }
        Part::ToolResult { call_id, content, .. } => {
            json!({"type": "tool_result", "tool_use_id": tool_id(call_id), "content": content})
        }
        Part::Thinking(t) if t.redacted => json!({"type": "redacted_thinking", "data": t.signature}),
        Part::Thinking(t) => json!({"type": "thinking", "thinking": t.text, "signature": t.signature}),
    }))
}

/// The messages: consecutive turns of one role are one message; in a user message the tool
/// results come first, in an assistant message the thinking.
fn messages(turns: &[ir::Turn]) -> Result<Vec<Value>, Unsupported> {
    let mut out: Vec<(Role, Vec<Value>, Vec<Value>)> = Vec::new();
    for t in turns {
        let mut blocks = Vec::with_capacity(t.parts.len());
        for p in &t.parts {
            if let Some(b) = block(p)? {
                blocks.push((matches!(p, Part::ToolResult { .. } | Part::Thinking(_)), b));
            }
        }
        // A turn with nothing left to say is no message (and does not split its neighbours).
        if blocks.is_empty() {
            continue;
        }
        if out.last().is_none_or(|(r, _, _)| *r != t.role) {
            out.push((t.role, Vec::new(), Vec::new()));
        }
        let Some((_, first, rest)) = out.last_mut() else { continue };
        for (leads, b) in blocks {
            if leads {
                first.push(b);
            } else {
                rest.push(b);
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(role, mut first, rest)| {
            first.extend(rest);
            let role = if role == Role::User { "user" } else { "assistant" };
            json!({"role": role, "content": first})
        })
        .collect())
}

/// Every refusal `encode` would make, without building the body.
pub fn check(req: &ir::Request) -> Result<(), Unsupported> {
    encode(req).map(|_| ())
}

/// The `/v1/messages` body for `req`.
pub fn encode(req: &ir::Request) -> Result<Value, Unsupported> {
    let s = &req.sampling;
    if s.n.is_some_and(|n| n > 1) {
        return Err(never(Feature::Choices));
    }
    if s.seed.is_some() {
        return Err(never(Feature::Seed));
    }
    if s.presence_penalty.is_some() || s.frequency_penalty.is_some() {
        return Err(never(Feature::Penalties));
    }
    if s.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(unsupported(Feature::Temperature, "Anthropic takes a temperature between 0 and 1"));
    }
    let (budget, max_tokens) = thinking(req)?;
    if budget.is_some() {
        thinking_rules(req)?;
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(max_tokens));
    let system: Vec<Value> =
        req.system.iter().filter(|t| !t.trim().is_empty()).map(|t| json!({"type": "text", "text": t})).collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages(&req.turns)?));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let schema = t.schema.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                let mut v = json!({"name": t.name, "input_schema": schema});
                if let Some(d) = &t.description {
                    v["description"] = json!(d);
                }
                v
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let single = req.parallel_tool_calls == Some(false);
    let choice = match &req.tool_choice {
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Named(n)) => Some(json!({"type": "tool", "name": n})),
        None if single && !req.tools.is_empty() => Some(json!({"type": "auto"})),
        None => None,
    };
    if let Some(mut c) = choice {
        if single && c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
        body.insert("tool_choice".into(), c);
    }
    match &req.format {
        Format::Text => {}
        Format::JsonObject => return Err(never(Feature::JsonObject)),
        Format::JsonSchema(schema) => {
            if !strict_objects(schema) {
                return Err(Unsupported {
                    feature: Feature::JsonSchema,
                    index: None,
                    param: None,
                    why: "Anthropic's structured output needs `additionalProperties: false` on every object of the schema".into(),
                });
            }
            body.insert("output_config".into(), json!({"format": {"type": "json_schema", "schema": schema}}));
        }
    }
    if let Some(b) = budget {
        body.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": b}));
    }
    for (k, v) in [("temperature", s.temperature), ("top_p", s.top_p)] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    if let Some(k) = s.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if !s.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(s.stop));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(body))
}
