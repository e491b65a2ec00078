//! What the client dialects (OpenAI chat and Responses, Anthropic Messages) share when they decode a request into
//! the intermediate form and encode tool calls back: the parameter screen, refusals, value
//! readers, media URLs, tool definitions and choices, tool-result grouping, and the tool-call
//! ids that carry a provider's replay signature.
//!
//! Invariants: a refusal always names the parameter by its dotted path in the caller's request;
//! an id written by `call_id` gives back exactly its signature through `split_call_id`
//! (base64url, so the id stays `[A-Za-z0-9_-]` plus the provider's own id).

use serde_json::{Map, Value};

use crate::core::ir::{self, Effort, Feature, Part, Role, ToolChoice, Turn};

/// Separator between a tool-call id and the signature it carries.
const SIG: &str = "__ts_";

/// What the gateway does with a chat parameter on a translated route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Mapped into the intermediate form; an egress may still refuse the `Feature`.
    Translated(Option<Feature>),
    /// Accepted with no effect, named in `x-prodex-ignored-params`.
    Hint,
    /// No equivalent anywhere: 400 unless its value is a no-op (null, false, empty).
    Rejected,
}

/// A request the gateway refuses, naming the parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `unsupported_parameter`, `unsupported_value` or `invalid_parameter`.
    pub code: &'static str,
    pub param: String,
    pub message: String,
}

impl Refusal {
    pub(crate) fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: "unsupported_parameter", param: param.into(), message: message.into() }
    }
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: "invalid_parameter", param: param.into(), message: message.into() }
    }
    pub(crate) fn value(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: "unsupported_value", param: param.into(), message: message.into() }
    }
}

/// A decoded chat request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub request: ir::Request,
    /// Hint parameters present (no effect on the provider), for `x-prodex-ignored-params`.
    pub ignored: Vec<String>,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

pub(crate) fn no_op(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn string<'v>(v: &'v Value, path: &str) -> Result<&'v str, Refusal> {
    v.as_str().ok_or_else(|| Refusal::invalid(path, format!("`{path}` must be a string, not {}", kind(v))))
}

pub(crate) fn number(v: &Value, path: &str) -> Result<f64, Refusal> {
    v.as_f64().ok_or_else(|| Refusal::invalid(path, format!("`{path}` must be a number, not {}", kind(v))))
}

pub(crate) fn count(v: &Value, path: &str) -> Result<u64, Refusal> {
    v.as_u64().ok_or_else(|| Refusal::invalid(path, format!("`{path}` must be a non-negative integer")))
}

pub(crate) fn push_once(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

pub(crate) fn effort(v: &Value) -> Result<Effort, Refusal> {
    Ok(match string(v, "reasoning_effort")? {
        "none" => Effort::None,
        "minimal" => Effort::Minimal,
        "low" => Effort::Low,
        "medium" => Effort::Medium,
        "high" | "xhigh" => Effort::High,
        other => {
            return Err(Refusal::value("reasoning_effort", format!("unknown `reasoning_effort` `{}`", clip(other))))
        }
    })
}

/// A `data:<mime>;base64,<data>` URL as inline media; anything else is refused by name.
pub(crate) fn data_url(url: &str, path: &str) -> Result<Part, Refusal> {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            if let Some(mime) = meta.strip_suffix(";base64").filter(|m| m.contains('/')) {
                return Ok(Part::Media { mime: mime.to_string(), data: data.to_string() });
            }
        }
        return Err(Refusal::invalid(path, "a data URL must be data:<type>/<subtype>;base64,<data>"));
    }
    if url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return Ok(Part::Remote { url: url.to_string(), param: path.to_string() });
    }
    Err(Refusal::unsupported(path, "only data: URLs and https URLs are accepted for media"))
}

pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

/// Splits an id the encoder wrote into the original id and its signature (base64url).
#[must_use]
pub fn split_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(SIG) {
        Some((id, sig)) if !sig.is_empty() => (id, Some(sig)),
        _ => (id, None),
    }
}

/// Standard base64 → base64url without padding (so the id stays `[A-Za-z0-9_-]`).
fn to_url_safe(sig: &str) -> String {
    sig.chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

pub(crate) fn from_url_safe(sig: &str) -> String {
    let mut s: String = sig
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while s.len() % 4 != 0 {
        s.push('=');
    }
    s
}

/// The id a client sees for a call: the provider's (or one made from `seed`), plus its signature.
#[must_use]
pub fn call_id(call: &ir::ToolCall, seed: &str, choice: u64, index: u64) -> String {
    let mut id = match &call.id {
        Some(id) if !id.is_empty() && !id.contains(SIG) => id.clone(),
        _ => format!("call_{seed}{choice}x{index}"),
    };
    let safe = call.signature.as_deref().map(to_url_safe).unwrap_or_default();
    if !safe.is_empty() {
        id.push_str(SIG);
        id.push_str(&safe);
    }
    id
}

/// The top-level screen: every parameter is in `table`; an unknown one, or a rejected one with an
/// effective value, is refused (`why` says why for a rejected name); the hints present are
/// returned for `x-prodex-ignored-params`.
pub(crate) fn screen(
    body: &Map<String, Value>,
    table: &[(&str, Disposition)],
    dialect: &str,
    why: impl Fn(&str) -> &'static str,
) -> Result<Vec<String>, Refusal> {
    let mut ignored = Vec::new();
    for (name, value) in body {
        match table.iter().find(|(n, _)| n == name).map(|(_, d)| *d) {
            None => {
                return Err(Refusal::unsupported(
                    name.as_str(),
                    format!("`{name}` is not a {dialect} parameter this provider can translate"),
                ))
            }
            Some(Disposition::Rejected) if !no_op(value) => {
                return Err(Refusal::unsupported(name.as_str(), format!("`{name}`: {}", why(name))))
            }
            Some(Disposition::Hint) if !value.is_null() => ignored.push(name.clone()),
            _ => {}
        }
    }
    Ok(ignored)
}

/// `model`, `stream` and `stream_options` (both dialects): (model, stream, include_usage).
pub(crate) fn common(body: &Map<String, Value>, ignored: &mut Vec<String>) -> Result<(String, bool, bool), Refusal> {
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    let model = string(get("model").unwrap_or(&Value::Null), "model")?.to_string();
    let stream = get("stream").map(|v| boolean(v, "stream")).transpose()?.unwrap_or(false);
    let mut include_usage = false;
    if let Some(opts) = get("stream_options") {
        let opts =
            opts.as_object().ok_or_else(|| Refusal::invalid("stream_options", "`stream_options` must be an object"))?;
        for (k, v) in opts {
            match k.as_str() {
                "include_usage" => include_usage = v.as_bool().unwrap_or(false),
                "include_obfuscation" => push_once(ignored, "stream_options.include_obfuscation"),
                _ => return Err(Refusal::unsupported(format!("stream_options.{k}"), "unknown stream option")),
            }
        }
    }
    Ok((model, stream, include_usage))
}

pub(crate) fn boolean(v: &Value, path: &str) -> Result<bool, Refusal> {
    v.as_bool().ok_or_else(|| Refusal::invalid(path, format!("`{path}` must be a boolean")))
}

/// `tool_choice`: none, auto, required, or a named function (`{"type":"function","function":
/// {"name"}}` in chat, `{"type":"function","name"}` in Responses; both are read).
pub(crate) fn tool_choice(v: &Value, name_path: &str) -> Result<ToolChoice, Refusal> {
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            _ => Err(Refusal::value("tool_choice", "`tool_choice` must be none, auto, required or a named function")),
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("function").and_then(|f| f.get("name")).or_else(|| o.get("name")).and_then(Value::as_str);
            name.map(|n| ToolChoice::Named(n.to_string()))
                .ok_or_else(|| Refusal::invalid(name_path, format!("a named `tool_choice` needs `{name_path}`")))
        }
        _ => Err(Refusal::unsupported("tool_choice", "only none, auto, required and a named function are translated")),
    }
}

/// One function tool from its definition (`name`, `description`, `parameters`, `strict`).
pub(crate) fn tool_def(
    def: &Value,
    path: &str,
    ignored: &mut Vec<String>,
    strict_hint: &str,
) -> Result<ir::Tool, Refusal> {
    let name = string(def.get("name").unwrap_or(&Value::Null), &format!("{path}.name"))?;
    if def.get("strict").is_some_and(|s| s.as_bool() == Some(true)) {
        push_once(ignored, strict_hint);
    }
    let description = def.get("description").and_then(Value::as_str).map(str::to_string);
    let schema = def.get("parameters").filter(|p| !p.is_null()).cloned();
    Ok(ir::Tool { name: name.to_string(), description, schema })
}

/// Appends a tool result: every result answering one assistant turn goes into one user turn.
pub(crate) fn push_result(turns: &mut Vec<Turn>, part: Part) {
    match turns.last_mut() {
        Some(t) if t.role == Role::User && t.parts.iter().all(|p| matches!(p, Part::ToolResult { .. })) => {
            t.parts.push(part)
        }
        _ => turns.push(Turn { role: Role::User, parts: vec![part] }),
    }
}
