//! Gemini embeddings (`batchEmbedContents`) and model lists, to and from the intermediate form.
//!
//! Invariants: a batch holds at most `EMBED_BATCH` inputs and every item names the model (the
//! API requires it per item); vectors come back in input order and their count must equal the
//! batch's, else the answer is invalid; usage is read only where Gemini reports it
//! (`usageMetadata.promptTokenCount`), otherwise the caller estimates it.

use serde_json::{json, Value};

use crate::core::ir::{EmbedRequest, ModelInfo};
use crate::core::openai::MAX_REPORTED_TOKENS;

/// The body of one batch: `inputs` is a slice of the request's inputs.
#[must_use]
pub fn encode_batch(req: &EmbedRequest, model: &str, inputs: &[String]) -> Value {
    let requests: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let mut item = json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
            if let Some(d) = req.dimensions {
                item["outputDimensionality"] = json!(d);
            }
            item
        })
        .collect();
    json!({"requests": requests})
}

/// The vectors of one batch answer (`expected` of them) and its input tokens, when reported.
pub fn decode_batch(body: &Value, expected: usize) -> Result<(Vec<Vec<f32>>, Option<u64>), String> {
    let list = body.get("embeddings").and_then(Value::as_array).ok_or("the answer has no `embeddings` list")?;
    if list.len() != expected {
        return Err(format!("asked for {expected} embeddings, got {}", list.len()));
    }
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        let values = e.get("values").and_then(Value::as_array).ok_or("an embedding has no `values`")?;
        #[allow(clippy::cast_possible_truncation)] // embeddings are f32 on the wire of both APIs
        let v: Option<Vec<f32>> = values.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
        out.push(v.ok_or("an embedding value is not a number")?);
    }
    let tokens = body
        .pointer("/usageMetadata/promptTokenCount")
        .map(|t| {
            t.as_u64()
                .filter(|n| *n <= MAX_REPORTED_TOKENS)
                .ok_or("usageMetadata.promptTokenCount is not a token count")
        })
        .transpose()?;
    Ok((out, tokens))
}

/// A `models` list page: the models and the next page's token.
pub fn decode_models(body: &Value) -> Result<(Vec<ModelInfo>, Option<String>), String> {
    let list = body.get("models").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let models = list.iter().map(decode_model).collect::<Result<Vec<_>, _>>()?;
    let next = body.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string);
    Ok((models, next))
}

/// One `Model` resource.
pub fn decode_model(m: &Value) -> Result<ModelInfo, String> {
    let name = m.get("name").and_then(Value::as_str).ok_or("a model has no `name`")?;
    Ok(ModelInfo { id: name.strip_prefix("models/").unwrap_or(name).to_string(), owned_by: "google" })
}
