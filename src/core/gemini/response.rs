//! Gemini responses and stream chunks → the intermediate form, and `usageMetadata` → usage.
//!
//! Invariants (providers.md §1.2–1.3, §1.13–1.14):
//! - usage is `prompt + toolUsePrompt` in, `candidates + thoughts` out, cached and thoughts
//!   reported apart; in a stream it is cumulative, so the last chunk's is the call's (never a sum);
//!   a malformed or absurd count is an error, never 0;
//! - a choice that made a function call and ended in `STOP` finished with `tool_calls`, however
//!   many chunks apart the two arrived; tool calls are numbered 0.. per choice across the stream;
//! - `SAFETY`-like reasons and a blocked prompt are `content_filter`; `MALFORMED_FUNCTION_CALL`,
//!   `UNEXPECTED_TOOL_CALL` and `TOO_MANY_TOOL_CALLS` are an upstream error, never a silent stop;
//! - thought parts (`thought: true`) are not output text; a function call's `thoughtSignature`
//!   rides on its tool call (only the first call of a parallel set has one).

use serde_json::Value;

use crate::core::ir::{self, Choice, Event, Finish, ProviderError, ToolCall};
use crate::core::openai::{InvalidUsage, Usage, UsageRead, MAX_REPORTED_TOKENS};

fn count(meta: &Value, field: &str) -> Result<u64, InvalidUsage> {
    match meta.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= MAX_REPORTED_TOKENS)
            .ok_or_else(|| InvalidUsage(format!("usageMetadata.{field} is not a plausible token count"))),
    }
}

/// The usage in a response's or chunk's `usageMetadata` (`None` when there is none).
#[must_use]
pub fn usage(body: &Value) -> Option<UsageRead> {
    let meta = body.get("usageMetadata").filter(|m| !m.is_null())?;
    if !meta.is_object() {
        return Some(Err(InvalidUsage("usageMetadata is not an object".into())));
    }
    let read = || -> UsageRead {
        let prompt = count(meta, "promptTokenCount")?;
        let tool_prompt = count(meta, "toolUsePromptTokenCount")?;
        let candidates = count(meta, "candidatesTokenCount")?;
        let thoughts = count(meta, "thoughtsTokenCount")?;
        let cached = count(meta, "cachedContentTokenCount")?;
        Ok(Usage {
            input_tokens: prompt + tool_prompt,
            cached_input_tokens: cached.min(prompt),
            output_tokens: candidates + thoughts,
            reasoning_tokens: thoughts,
            ..Usage::default()
        })
    };
    Some(read())
}

/// What a `finishReason` means: a finish, or an error.
fn finish_of(reason: &str) -> Result<Option<Finish>, &'static str> {
    Ok(Some(match reason {
        "STOP" | "LANGUAGE" | "OTHER" | "FINISH_REASON_UNSPECIFIED" => Finish::Stop,
        "MAX_TOKENS" => Finish::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER"
        | "NO_IMAGE" => Finish::ContentFilter,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS" => {
            return Err("upstream_malformed_function_call")
        }
        _ => Finish::Stop,
    }))
}

fn malformed(reason: &str) -> ProviderError {
    ProviderError {
        status: 502,
        code: "upstream_malformed_function_call",
        message: format!(
            "gemini ended the generation with {reason}: the model produced a tool call it could not complete"
        ),
        retry_after_secs: None,
    }
}

/// A function-call part as a tool call.
fn call_of(part: &Value) -> Option<ToolCall> {
    let fc = part.get("functionCall")?;
    let name = fc.get("name").and_then(Value::as_str)?.to_string();
    let args =
        fc.get("args").filter(|a| !a.is_null()).cloned().unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    Some(ToolCall {
        id: fc.get("id").and_then(Value::as_str).map(str::to_string),
        name,
        arguments: args.to_string(),
        signature: part.get("thoughtSignature").and_then(Value::as_str).map(str::to_string),
    })
}

fn parts(candidate: &Value) -> impl Iterator<Item = &Value> {
    candidate.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten()
}

/// Output text of a part (thoughts are not output).
fn text_of(part: &Value) -> Option<&str> {
    if part.get("thought").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    part.get("text").and_then(Value::as_str)
}

fn blocked(body: &Value) -> bool {
    body.get("candidates").and_then(Value::as_array).is_none_or(Vec::is_empty)
        && body.pointer("/promptFeedback/blockReason").is_some_and(|r| !r.is_null())
}

/// A whole `generateContent` response. `fallback_id` names it when the provider did not.
pub fn decode(body: &Value, model: &str, fallback_id: &str) -> Result<ir::Response, ProviderError> {
    let id = body.get("responseId").and_then(Value::as_str).unwrap_or(fallback_id).to_string();
    let model = body.get("modelVersion").and_then(Value::as_str).unwrap_or(model).to_string();
    let usage = usage(body).and_then(Result::ok);
    let mut choices = Vec::new();
    if blocked(body) {
        choices.push(Choice {
            index: 0,
            text: None,
            tool_calls: Vec::new(),
            thinking: Vec::new(),
            finish: Some(Finish::ContentFilter),
        });
    }
    for (i, c) in body.get("candidates").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        let text: String = parts(c).filter_map(text_of).collect();
        let tool_calls: Vec<ToolCall> = parts(c).filter_map(call_of).collect();
        let reason = c.get("finishReason").and_then(Value::as_str).unwrap_or("STOP");
        let mut finish = finish_of(reason).map_err(|_| malformed(reason))?;
        if !tool_calls.is_empty() && finish == Some(Finish::Stop) {
            finish = Some(Finish::ToolCalls);
        }
        let text = if text.is_empty() && (finish == Some(Finish::ContentFilter) || !tool_calls.is_empty()) {
            None
        } else {
            Some(text)
        };
        choices.push(Choice { index, text, tool_calls, thinking: Vec::new(), finish });
    }
    if choices.is_empty() {
        return Err(ProviderError {
            status: 502,
            code: "upstream_invalid_response",
            message: "gemini answered with no candidates and no block reason".into(),
            retry_after_secs: None,
        });
    }
    Ok(ir::Response { id, model, choices, usage })
}

/// The state of one Gemini stream: per choice, the tool calls numbered so far and whether one
/// was made (for the `tool_calls` finish that arrives chunks later).
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// (choice, calls so far)
    calls: Vec<(u64, u64)>,
    /// The response id and model version from the first chunk that had them.
    pub id: Option<String>,
    pub model: Option<String>,
    /// Why the last usage could not be billed, when it could not.
    pub invalid_usage: Option<String>,
    /// Whether a chunk ended a choice or the stream failed.
    pub finished: bool,
}

ir::stream_decoder!(StreamDecoder);

impl StreamDecoder {
    fn next_call(&mut self, choice: u64) -> u64 {
        match self.calls.iter_mut().find(|(c, _)| *c == choice) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                self.calls.push((choice, 1));
                0
            }
        }
    }

    fn called(&self, choice: u64) -> bool {
        self.calls.iter().any(|(c, n)| *c == choice && *n > 0)
    }

    /// The events of one SSE `data` payload.
    pub fn chunk(&mut self, data: &str) -> Vec<Event> {
        let Ok(body) = serde_json::from_str::<Value>(data) else {
            self.finished = true;
            return vec![Event::Error(ProviderError {
                status: 502,
                code: "upstream_invalid_response",
                message: "gemini sent a stream chunk that is not JSON".into(),
                retry_after_secs: None,
            })];
        };
        if body.get("error").is_some() || body.as_array().is_some_and(|a| a.iter().any(|e| e.get("error").is_some())) {
            self.finished = true;
            return vec![Event::Error(super::error_value(200, &body, None))];
        }
        if self.id.is_none() {
            self.id = body.get("responseId").and_then(Value::as_str).map(str::to_string);
        }
        if self.model.is_none() {
            self.model = body.get("modelVersion").and_then(Value::as_str).map(str::to_string);
        }
        let mut events = Vec::new();
        if blocked(&body) {
            events.push(Event::Finish { choice: 0, finish: Finish::ContentFilter });
            self.finished = true;
        }
        for (i, c) in body.get("candidates").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let choice = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            for p in parts(c) {
                if let Some(call) = call_of(p) {
                    let index = self.next_call(choice);
                    events.push(Event::ToolCall { choice, index, call });
                } else if let Some(t) = text_of(p).filter(|t| !t.is_empty()) {
                    events.push(Event::Text { choice, text: t.to_string() });
                }
            }
            if let Some(reason) = c.get("finishReason").and_then(Value::as_str) {
                match finish_of(reason) {
                    Ok(Some(mut finish)) => {
                        if finish == Finish::Stop && self.called(choice) {
                            finish = Finish::ToolCalls;
                        }
                        events.push(Event::Finish { choice, finish });
                        self.finished = true;
                    }
                    Ok(None) => {}
                    Err(_) => {
                        self.finished = true;
                        events.push(Event::Error(malformed(reason)));
                        return events;
                    }
                }
            }
        }
        match usage(&body) {
            Some(Ok(u)) => {
                self.invalid_usage = None;
                events.push(Event::Usage(u));
            }
            Some(Err(why)) => self.invalid_usage = Some(why.0),
            None => {}
        }
        events
    }
}
