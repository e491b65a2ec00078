//! The intermediate form → a Gemini `generateContent` body.
//!
//! Invariants: instructions go to `systemInstruction`; assistant turns are `model` turns; every
//! tool result of a turn is one `user` content; tool schemas travel as full JSON Schema
//! (`parametersJsonSchema`, `responseJsonSchema`), never through the OpenAPI subset that rejects
//! common keywords; a replayed call keeps the signature it came with, and the first call of a
//! model turn that has none (history from elsewhere) gets Gemini's documented
//! `skip_thought_signature_validator` on the models that validate signatures (Gemini 3 on).

use serde_json::{json, Map, Value};

use super::REFUSED;
use crate::core::ir::{self, Effort, Feature, Format, Part, Role, ToolChoice, Unsupported};

/// The signature Gemini documents for replayed calls that never had one.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Whether `model` validates thought signatures and takes `thinkingLevel` (Gemini 3 and later).
#[must_use]
pub fn is_gemini3_or_later(model: &str) -> bool {
    let rest = model.strip_prefix("gemini-").unwrap_or("");
    rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n >= 3)
}

/// Gemini's function-name rule: a letter or `_` first, then `a-zA-Z0-9_.:-`, at most 128.
#[must_use]
pub fn valid_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 128
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn refused(feature: Feature) -> Result<(), Unsupported> {
    match REFUSED.iter().find(|(f, _)| *f == feature) {
        Some((_, why)) => Err(Unsupported { feature, index: None, param: None, why: (*why).to_string() }),
        None => Ok(()),
    }
}

/// The thinking budget for an effort on models that take budgets (Gemini 2.5): Gemini's own
/// OpenAI-compatible layer uses 1K/8K/24K for low/medium/high; minimal is the smallest budget
/// every 2.5 model accepts; none turns thinking off.
fn thinking(model: &str, effort: Effort) -> Result<Value, Unsupported> {
    if is_gemini3_or_later(model) {
        let level = match effort {
            Effort::None => {
                return Err(Unsupported {
                    feature: Feature::Effort,
                    index: None,
                    param: None,
                    why: "Gemini 3 models cannot turn thinking off; use reasoning_effort minimal".into(),
                })
            }
            Effort::Minimal => "MINIMAL",
            Effort::Low => "LOW",
            Effort::Medium => "MEDIUM",
            Effort::High => "HIGH",
        };
        return Ok(json!({"thinkingLevel": level}));
    }
    let budget = match effort {
        Effort::None => 0,
        Effort::Minimal => 128,
        Effort::Low => 1_024,
        Effort::Medium => 8_192,
        Effort::High => 24_576,
    };
    Ok(json!({"thinkingBudget": budget}))
}

/// A client's thinking budget: Gemini 2.5 takes it as it is; Gemini 3 takes a level, the one
/// whose budget (as `thinking` maps efforts) is nearest at or above it.
fn budget_config(model: &str, budget: u64) -> Value {
    if is_gemini3_or_later(model) {
        let level = match budget {
            0..=1_024 => "LOW",
            1_025..=8_192 => "MEDIUM",
            _ => "HIGH",
        };
        return json!({"thinkingLevel": level});
    }
    json!({"thinkingBudget": budget})
}

fn part(p: &Part, signature_first: &mut bool, validate: bool) -> Value {
    match p {
        Part::Text(t) => json!({"text": t}),
        Part::Media { mime, data } => json!({"inlineData": {"mimeType": mime, "data": data}}),
        Part::ToolCall { name, arguments, signature, .. } => {
            let mut v = json!({"functionCall": {"name": name, "args": arguments}});
            let first = std::mem::take(signature_first);
            match signature {
                Some(sig) => v["thoughtSignature"] = json!(sig),
                None if first && validate => v["thoughtSignature"] = json!(SKIP_SIGNATURE),
                None => {}
            }
            v
        }
        Part::Thinking(_) => Value::Null, // filtered out by the caller
        // `encode` refuses requests that still hold one (the shell fetches them first).
        Part::Remote { url, .. } => json!({"fileData": {"fileUri": url}}),
        Part::ToolResult { name, content, .. } => {
            // A JSON result is passed as JSON; any other text as a string, both under `output`.
            let output = serde_json::from_str::<Value>(content).unwrap_or_else(|_| json!(content));
            json!({"functionResponse": {"name": name, "response": {"output": output}}})
        }
    }
}

/// Every refusal `encode` would make, without building the body (so a call is refused before
/// admission). Remote media is not refused here: the shell fetches it after admission.
pub fn check(req: &ir::Request) -> Result<(), Unsupported> {
    for (i, t) in req.tools.iter().enumerate() {
        if !valid_function_name(&t.name) {
            return Err(Unsupported {
                feature: Feature::ToolName,
                index: Some(i),
                param: None,
                why: "Gemini function names start with a letter or `_` and hold only letters, digits, `_ . : -` (at most 128)".into(),
            });
        }
    }
    if req.parallel_tool_calls == Some(false) {
        refused(Feature::SingleToolCall)?;
    }
    if let Some(effort) = req.effort {
        thinking(&req.model, effort)?;
    }
    Ok(())
}

/// The `generateContent` body for `req` (the model goes in the URL, not here).
pub fn encode(req: &ir::Request) -> Result<Value, Unsupported> {
    check(req)?;
    if let Some(param) = req.remote_media() {
        return Err(Unsupported {
            feature: Feature::Media,
            index: None,
            param: Some(param.to_string()),
            why: format!(
                "`{param}`: remote URLs are not fetched (the operator has not turned on [gateway.media] fetch_remote); send the media as a data: URL"
            ),
        });
    }
    let mut body = Map::new();
    if !req.system.is_empty() {
        let parts: Vec<Value> = req.system.iter().map(|t| json!({"text": t})).collect();
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    let validate = is_gemini3_or_later(&req.model);
    let contents: Vec<Value> = req
        .turns
        .iter()
        .filter(|t| !t.parts.is_empty())
        .map(|t| {
            let mut first = true;
            // Another provider's thinking has no Gemini input form (Gemini replays its own through
            // `thoughtSignature`): it is left out of the history.
            let parts: Vec<Value> = t
                .parts
                .iter()
                .filter(|p| !matches!(p, Part::Thinking(_)))
                .map(|p| part(p, &mut first, validate))
                .collect();
            json!({"role": if t.role == Role::User { "user" } else { "model" }, "parts": parts})
        })
        .collect();
    body.insert("contents".into(), Value::Array(contents));
    if !req.tools.is_empty() {
        let mut decls = Vec::with_capacity(req.tools.len());
        for t in &req.tools {
            let mut d = json!({"name": t.name});
            if let Some(desc) = &t.description {
                d["description"] = json!(desc);
            }
            if let Some(schema) = &t.schema {
                d["parametersJsonSchema"] = schema.clone();
            }
            decls.push(d);
        }
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(choice) = &req.tool_choice {
        let cfg = match choice {
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
        };
        body.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
    }
    let s = &req.sampling;
    let mut g = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            g.insert(k.into(), v);
        }
    };
    put("temperature", s.temperature.map(|v| json!(v)));
    put("topP", s.top_p.map(|v| json!(v)));
    put("topK", s.top_k.map(|v| json!(v)));
    put("maxOutputTokens", s.max_tokens.map(|v| json!(v)));
    put("candidateCount", s.n.filter(|n| *n > 1).map(|v| json!(v)));
    put("seed", s.seed.map(|v| json!(v)));
    put("stopSequences", Some(&s.stop).filter(|l| !l.is_empty()).map(|l| json!(l)));
    put("presencePenalty", s.presence_penalty.map(|v| json!(v)));
    put("frequencyPenalty", s.frequency_penalty.map(|v| json!(v)));
    match &req.format {
        Format::Text => {}
        Format::JsonObject => put("responseMimeType", Some(json!("application/json"))),
        Format::JsonSchema(schema) => {
            put("responseMimeType", Some(json!("application/json")));
            put("responseJsonSchema", Some(schema.clone()));
        }
    }
    if let Some(effort) = req.effort {
        put("thinkingConfig", Some(thinking(&req.model, effort)?));
    }
    if let Some(budget) = req.thinking_budget {
        put("thinkingConfig", Some(budget_config(&req.model, budget)));
    }
    if !g.is_empty() {
        body.insert("generationConfig".into(), Value::Object(g));
    }
    Ok(Value::Object(body))
}
