//! The OpenAI embeddings and model-list dialect of the intermediate form, for translated
//! providers: the embeddings request decoder and the response encoders.
//!
//! Invariants: `input` is a string or a list of strings (token-id arrays cannot be translated:
//! 400 naming `input`); `encoding_format` base64 is little-endian f32, what the OpenAI SDK asks
//! for by default and decodes; every parameter is in `PARAMS`.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::chat::{Disposition, Refusal};
use crate::core::ir::{EmbedRequest, ModelInfo};

/// The embeddings parameters.
pub const PARAMS: &[(&str, Disposition)] = &[
    ("model", Disposition::Translated(None)),
    ("input", Disposition::Translated(None)),
    ("dimensions", Disposition::Translated(None)),
    ("encoding_format", Disposition::Translated(None)),
    ("user", Disposition::Hint),
];

fn refuse(code: &'static str, param: &str, message: &str) -> Refusal {
    Refusal { code, param: param.to_string(), message: message.to_string() }
}

/// Reads an embeddings body; the second value lists the hints present.
pub fn decode_request(body: &Map<String, Value>) -> Result<(EmbedRequest, Vec<String>), Refusal> {
    let mut ignored = Vec::new();
    for (name, v) in body {
        match PARAMS.iter().find(|(n, _)| n == name) {
            None => {
                return Err(refuse(
                    "unsupported_parameter",
                    name,
                    "not an embeddings parameter this provider can translate",
                ))
            }
            Some((_, Disposition::Hint)) if !v.is_null() => ignored.push(name.clone()),
            _ => {}
        }
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("invalid_parameter", "model", "`model` must be a string"))?;
    let inputs = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => {
            a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>().ok_or_else(|| {
                refuse("unsupported_value", "input", "only text inputs are translated (token-id arrays are not)")
            })?
        }
        _ => {
            return Err(refuse("invalid_parameter", "input", "`input` must be a string or a non-empty list of strings"))
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|d| *d > 0)
                .ok_or_else(|| refuse("invalid_parameter", "dimensions", "`dimensions` must be a positive integer"))?,
        ),
    };
    let base64 = match body.get("encoding_format").and_then(|v| if v.is_null() { None } else { Some(v) }) {
        None => false,
        Some(v) => match v.as_str() {
            Some("float") => false,
            Some("base64") => true,
            _ => {
                return Err(refuse("unsupported_value", "encoding_format", "`encoding_format` must be float or base64"))
            }
        },
    };
    Ok((EmbedRequest { model: model.to_string(), inputs, dimensions, base64 }, ignored))
}

/// The OpenAI embeddings list.
#[must_use]
pub fn encode_response(model: &str, vectors: &[Vec<f32>], input_tokens: u64, base64: bool) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens}})
}

/// One OpenAI model object.
#[must_use]
pub fn encode_model(m: &ModelInfo) -> Value {
    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by})
}

/// The OpenAI model list.
#[must_use]
pub fn encode_models(models: &[ModelInfo]) -> Value {
    json!({"object": "list", "data": models.iter().map(encode_model).collect::<Vec<_>>()})
}
