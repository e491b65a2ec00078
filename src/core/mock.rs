//! The built-in `mock` provider (`--provider mock`): answers chat completions, Responses,
//! messages, embeddings and model lists from the request alone — deterministic text, realistic
//! usage, tool calls when tools are offered — so keys, budgets, the ledger and the metrics can be
//! tried on a fresh machine with no provider account, and clients load-tested against it.
//!
//! Invariants: the same request gets the same answer (nothing random, no clock); usage is the
//! request's estimated input and the answer's output, never 0 for a non-empty answer; nothing
//! from the prompt is echoed (an answer says how long the prompt was, not what it said).

use crate::core::ir::{self, EmbedRequest, Event, Finish, ModelInfo, Part, Role, ToolCall, ToolChoice};
use crate::core::usage::Usage;

/// The models it lists (any other name is answered too).
pub const MODELS: &[&str] = &["mock-chat", "mock-embed"];

/// The routes it serves, with what each does.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST /v1/chat/completions", "answered locally: deterministic text or a tool call, streamed word by word"),
    ("POST /v1/responses", "answered locally, with the full Responses event lifecycle when streaming"),
    ("POST /v1/messages", "answered locally in Anthropic's shape and event sequence"),
    ("POST /v1/messages/count_tokens", "the gateway's estimate"),
    ("POST /v1/embeddings", "deterministic unit vectors (8 dimensions, or `dimensions`)"),
    ("GET /v1/models", "mock-chat, mock-embed"),
    ("GET /v1/models/{id}", "any id"),
];

/// Output tokens of `text` (about 4 bytes a token, at least 1).
fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

/// The answer to `req`: a call of the first offered tool when the conversation asks for one
/// (tools offered, the last turn the user's, `tool_choice` not `none`), else text.
#[must_use]
pub fn answer(req: &ir::Request, id: &str) -> ir::Response {
    let last_is_user = req.turns.last().is_some_and(|t| t.role == Role::User);
    let answered_tool = req.turns.last().is_some_and(|t| t.parts.iter().any(|p| matches!(p, Part::ToolResult { .. })));
    let named = match &req.tool_choice {
        Some(ToolChoice::Named(n)) => req.tools.iter().find(|t| t.name == *n),
        Some(ToolChoice::None) => None,
        _ => req.tools.first(),
    };
    let input = req.estimated_tokens().max(1);
    let (text, calls, finish) = match named {
        Some(tool) if last_is_user && !answered_tool => {
            let call = ToolCall {
                id: Some(format!("call_mock{id}")),
                name: tool.name.clone(),
                arguments: "{}".into(),
                signature: None,
            };
            (None, vec![call], Finish::ToolCalls)
        }
        _ => {
            let turns = req.turns.len();
            let plural = if turns == 1 { "" } else { "s" };
            let text = format!(
                "This is the mock provider answering a {input}-token prompt of {turns} turn{plural}. Every answer is deterministic."
            );
            (Some(text), Vec::new(), Finish::Stop)
        }
    };
    let cap = req.sampling.max_tokens.unwrap_or(u64::MAX);
    let (text, finish) = match text {
        Some(t) if tokens(&t) > cap => {
            let keep = usize::try_from(cap.saturating_mul(4)).unwrap_or(usize::MAX).min(t.len());
            let cut = (0..=keep).rev().find(|i| t.is_char_boundary(*i)).unwrap_or(0);
            (Some(t[..cut].to_string()), Finish::Length)
        }
        other => (other, finish),
    };
    let output = text.as_deref().map_or(0, tokens) + calls.iter().map(|c| tokens(&c.name) + 1).sum::<u64>();
    let usage = Usage { input_tokens: input, output_tokens: output, ..Usage::default() };
    let choice = ir::Choice { index: 0, text, tool_calls: calls, thinking: Vec::new(), finish: Some(finish) };
    ir::Response { id: id.to_string(), model: req.model.clone(), choices: vec![choice], usage: Some(usage) }
}

/// `resp` as a stream: its text word by word, its tool calls, the finish, the usage.
#[must_use]
pub fn events(resp: &ir::Response) -> Vec<Event> {
    let mut out = Vec::new();
    for c in &resp.choices {
        if let Some(text) = &c.text {
            let mut rest = text.as_str();
            while !rest.is_empty() {
                let end = rest.find(' ').map_or(rest.len(), |i| i + 1);
                out.push(Event::Text { choice: c.index, text: rest[..end].to_string() });
                rest = &rest[end..];
            }
        }
        for (i, call) in c.tool_calls.iter().enumerate() {
            out.push(Event::ToolCall { choice: c.index, index: i as u64, call: call.clone() });
        }
        if let Some(finish) = c.finish {
            out.push(Event::Finish { choice: c.index, finish });
        }
    }
    out.extend(resp.usage.map(Event::Usage));
    out
}

/// Deterministic unit vectors for each input, and the input tokens.
#[must_use]
pub fn embed(req: &EmbedRequest) -> (Vec<Vec<f32>>, u64) {
    let dims = usize::try_from(req.dimensions.unwrap_or(8).clamp(1, 4096)).unwrap_or(8);
    let vectors = req
        .inputs
        .iter()
        .map(|text| {
            // FNV-1a of the text seeds each dimension, then the vector is normalised.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in text.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            let raw: Vec<f32> = (0..dims)
                .map(|d| {
                    let x = h.rotate_left(u32::try_from(d % 64).unwrap_or(0))
                        ^ (d as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    #[allow(clippy::cast_precision_loss)]
                    let v = (x % 2001) as f32 / 1000.0 - 1.0;
                    v
                })
                .collect();
            let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
            raw.into_iter().map(|v| v / norm).collect()
        })
        .collect();
    let input = req.inputs.iter().map(|t| tokens(t)).sum();
    (vectors, input)
}

/// The model list.
#[must_use]
pub fn models() -> Vec<ModelInfo> {
    MODELS.iter().map(|m| ModelInfo { id: (*m).to_string(), owned_by: "prodex-mock" }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::openai::chat;
    use serde_json::json;

    fn request(body: serde_json::Value) -> ir::Request {
        chat::decode_request(body.as_object().unwrap()).unwrap().request
    }

    #[test]
    fn answers_are_deterministic_billed_and_echo_no_prompt() {
        let req = request(
            json!({"model": "mock-chat", "messages": [{"role": "user", "content": "secret plans for tuesday"}]}),
        );
        let a = answer(&req, "1");
        assert_eq!(a, answer(&req, "1"), "the same request, the same answer");
        let text = a.choices[0].text.clone().unwrap();
        assert!(!text.contains("secret"), "{text}");
        let u = a.usage.unwrap();
        assert!(u.input_tokens > 0 && u.output_tokens == tokens(&text), "{u:?}");
        let streamed: String = events(&a)
            .iter()
            .filter_map(|e| if let Event::Text { text, .. } = e { Some(text.as_str()) } else { None })
            .collect();
        assert_eq!(streamed, text, "the stream says what the whole answer says");
        assert!(matches!(events(&a).last(), Some(Event::Usage(_))));
        let short = request(json!({"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}));
        let s = answer(&short, "1");
        assert_eq!((s.choices[0].finish, s.usage.unwrap().output_tokens), (Some(Finish::Length), 3));
    }

    #[test]
    fn offered_tools_are_called_once_then_answered() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather"}}]);
        let req = request(json!({"model": "m", "tools": tools, "messages": [{"role": "user", "content": "weather?"}]}));
        let a = answer(&req, "7");
        assert_eq!(
            (a.choices[0].tool_calls[0].name.as_str(), a.choices[0].finish),
            ("get_weather", Some(Finish::ToolCalls))
        );
        let next = request(json!({"model": "m", "tools": tools, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "call_mock7", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_mock7", "content": "22C"}]}));
        assert_eq!(answer(&next, "8").choices[0].finish, Some(Finish::Stop));
        let none = request(
            json!({"model": "m", "tools": tools, "tool_choice": "none", "messages": [{"role": "user", "content": "x"}]}),
        );
        assert!(answer(&none, "9").choices[0].tool_calls.is_empty());
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let req = EmbedRequest {
            model: "mock-embed".into(),
            inputs: vec!["a".into(), "b".into(), "a".into()],
            dimensions: Some(16),
            base64: false,
        };
        let (v, tokens) = embed(&req);
        assert_eq!((v.len(), v[0].len(), tokens), (3, 16, 3));
        assert_eq!(v[0], v[2]);
        assert_ne!(v[0], v[1]);
        let norm: f32 = v[1].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
}
