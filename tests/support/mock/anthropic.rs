//! The mock's Anthropic dialect (paths under `/anthropic/v1/`, so the gateway's base URL is
//! `http://<mock>/anthropic/v1`), spoken like the real Messages API: `x-api-key` and
//! `anthropic-version` required (a bearer token is refused), `max_tokens` required, Anthropic's
//! request rules checked (no empty text blocks, tool results first in the one user message after
//! the calls, tool ids in `[A-Za-z0-9_-]{1,64}`, a thinking budget of at least 1,024 below
//! `max_tokens`, no temperature but 1 with thinking, and with thinking on the answered tool turn
//! starting with its thinking block, whose signature must be the mock's), `event:` lines on
//! every streamed event, cumulative usage with cache reads and writes, `count_tokens`, paged
//! `models`, and Anthropic error bodies (529 `overloaded_error` included).
//!
//! Scripted by `x-mock-status` (an error of that status), `x-mock-429-key` (matched against
//! `x-api-key`), and `x-mock-anthropic`: `tools` (text then two parallel tool calls, the input
//! split over several `input_json_delta`s), `refusal`, `pause`, `stream-error` (an `error` event
//! after the first text), `cut` (EOF before `message_stop`), `overloaded` (a 529 for messages
//! only, so other dialects of the same request answer). A request with thinking on gets a
//! signed thinking block first.

use std::io::Write;
use std::net::TcpStream;

use serde_json::{json, Value};

use super::{chunked, send, stream_head, Seen};

/// The signature the mock signs its thinking with (and requires back).
pub const SIGNATURE: &str = "EqQBCkYIARgCIkDmockSignature+/=";

/// The thinking text the mock produces.
pub const THINKING: &str = "The user wants the weather.";

/// Fresh input, cache reads, cache writes (of which 1-hour), output, thinking.
pub const USAGE: (u64, u64, u64, u64, u64, u64) = (5, 3, 3, 1, 7, 2);

fn error(out: &mut TcpStream, status: u16, message: &str) -> std::io::Result<bool> {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"});
    send(out, status, "application/json", body.to_string().as_bytes())
}

fn usage(thinking: bool, start: bool) -> Value {
    let (fresh, read, write, write_1h, output, thought) = USAGE;
    let mut u = json!({"input_tokens": fresh, "cache_read_input_tokens": read, "cache_creation_input_tokens": write,
                       "cache_creation": {"ephemeral_5m_input_tokens": write - write_1h, "ephemeral_1h_input_tokens": write_1h},
                       "output_tokens": if start { 1 } else { output }});
    if thinking && !start {
        u["output_tokens_details"] = json!({"thinking_tokens": thought});
    }
    u
}

/// Why the request breaks one of Anthropic's rules, if it does.
fn invalid(json: &Value) -> Option<String> {
    let max = json["max_tokens"].as_u64()?;
    let msgs = json["messages"].as_array().filter(|m| !m.is_empty())?;
    let thinking = json["thinking"]["type"] == "enabled";
    if thinking {
        let budget = json["thinking"]["budget_tokens"].as_u64().unwrap_or(0);
        if budget < 1024 || budget >= max {
            return Some("thinking.budget_tokens: must be ≥ 1024 and less than max_tokens".into());
        }
        if json.get("temperature").is_some_and(|t| t != 1) {
            return Some("`temperature` may only be set to 1 when thinking is enabled".into());
        }
        if json.get("top_k").is_some() {
            return Some("`top_k` must be unset when thinking is enabled".into());
        }
    }
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let blocks =
            m["content"].as_array().cloned().unwrap_or_else(|| vec![json!({"type": "text", "text": m["content"]})]);
        if m["role"] == "user" && !pending.is_empty() {
            let results: Vec<&Value> = blocks.iter().take_while(|b| b["type"] == "tool_result").collect();
            let answered: Vec<String> =
                results.iter().filter_map(|b| b["tool_use_id"].as_str().map(str::to_string)).collect();
            if pending.iter().any(|id| !answered.contains(id)) {
                return Some(format!(
                    "messages.{i}: tool_use ids were found without tool_result blocks immediately after"
                ));
            }
            pending.clear();
        }
        for b in &blocks {
            if b["type"] == "text" && b["text"].as_str().is_none_or(|t| t.trim().is_empty()) && m["role"] == "user" {
                return Some(format!("messages.{i}: text content blocks must be non-empty"));
            }
            if b["type"] == "tool_use" {
                let id = b["id"].as_str().unwrap_or("");
                let legal = !id.is_empty()
                    && id.len() <= 64
                    && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
                if !legal || !b["input"].is_object() {
                    return Some(format!(
                        "messages.{i}: tool_use.id must match ^[a-zA-Z0-9_-]+$ and input be an object"
                    ));
                }
                pending.push(id.to_string());
            }
            if b["type"] == "thinking" && b["signature"] != SIGNATURE {
                return Some(format!("messages.{i}: Invalid `signature` in `thinking` block"));
            }
        }
        let answered_later = msgs[i + 1..].iter().any(|m| m["role"] == "user");
        if thinking && m["role"] == "assistant" && i + 2 == msgs.len() && answered_later {
            let first = blocks.first().map(|b| b["type"].clone()).unwrap_or_default();
            if blocks.iter().any(|b| b["type"] == "tool_use") && first != "thinking" && first != "redacted_thinking" {
                return Some(format!(
                    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{}`",
                    first.as_str().unwrap_or("")
                ));
            }
        }
    }
    None
}

fn blocks(mode: &str, thinking: bool) -> Vec<Value> {
    let mut out = Vec::new();
    if thinking {
        out.push(json!({"type": "thinking", "thinking": THINKING, "signature": SIGNATURE}));
    }
    match mode {
        "tools" => {
            out.push(json!({"type": "text", "text": "Checking."}));
            out.push(json!({"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}));
            out.push(
                json!({"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {"tz": "Europe/Paris"}}),
            );
        }
        "refusal" => {}
        _ => out.push(json!({"type": "text", "text": "Hello from claude"})),
    }
    out
}

fn stop_reason(mode: &str) -> &'static str {
    match mode {
        "tools" => "tool_use",
        "refusal" => "refusal",
        "pause" => "pause_turn",
        _ => "end_turn",
    }
}

/// Answers a `/anthropic/v1/...` request.
pub fn respond(out: &mut TcpStream, req: &Seen, path: &str) -> std::io::Result<bool> {
    if req.header("authorization").is_some() {
        return error(out, 401, "the mock takes the key only in x-api-key");
    }
    let Some(key) = req.header("x-api-key") else {
        return error(out, 401, "x-api-key header is required");
    };
    if req.header("anthropic-version").is_none() {
        return error(out, 400, "anthropic-version: header is required");
    }
    if req.header("x-mock-429-key") == Some(key) {
        return error(out, 429, "Number of request tokens has exceeded your per-minute rate limit");
    }
    if let Some(status) = req.header("x-mock-status").and_then(|s| s.parse::<u16>().ok()) {
        let message = if status == 529 { "Overloaded".to_string() } else { format!("mock anthropic error {status}") };
        return error(out, status, &message);
    }
    let rest = path.strip_prefix("/anthropic/v1/").unwrap_or("");
    let query = req.path.split_once('?').map_or("", |(_, q)| q);
    if req.method == "GET" {
        return models(out, rest, query);
    }
    let json = req.json();
    match rest {
        "messages/count_tokens" => {
            if json.get("max_tokens").is_some() || json["messages"].as_array().is_none_or(Vec::is_empty) {
                return error(out, 400, "count_tokens takes messages and no max_tokens");
            }
            send(out, 200, "application/json", json!({"input_tokens": 42}).to_string().as_bytes())
        }
        "messages" => {
            if json["max_tokens"].as_u64().is_none() {
                return error(out, 400, "max_tokens: Field required");
            }
            if let Some(why) = invalid(&json) {
                return error(out, 400, &why);
            }
            let mode = req.header("x-mock-anthropic").unwrap_or("");
            if mode == "overloaded" {
                return error(out, 529, "Overloaded");
            }
            let thinking = json["thinking"]["type"] == "enabled";
            if json["stream"] == true {
                return stream(out, mode, thinking, &json);
            }
            let body = json!({"id": "msg_mock1", "type": "message", "role": "assistant", "model": json["model"],
                              "content": blocks(mode, thinking), "stop_reason": stop_reason(mode), "stop_sequence": null,
                              "usage": usage(thinking, false)});
            send(out, 200, "application/json", body.to_string().as_bytes())
        }
        _ => error(out, 404, "Not found"),
    }
}

fn stream(out: &mut TcpStream, mode: &str, thinking: bool, json: &Value) -> std::io::Result<bool> {
    stream_head(out)?;
    let ev = |out: &mut TcpStream, v: Value| {
        let kind = v["type"].as_str().unwrap_or("").to_string();
        chunked(out, format!("event: {kind}\ndata: {v}\n\n").as_bytes())
    };
    let message = json!({"id": "msg_mock_s", "type": "message", "role": "assistant", "model": json["model"], "content": [],
                         "stop_reason": null, "stop_sequence": null, "usage": usage(thinking, true)});
    ev(out, json!({"type": "message_start", "message": message}))?;
    ev(out, json!({"type": "ping"}))?;
    for (index, b) in blocks(mode, thinking).iter().enumerate() {
        let delta = |d: Value| json!({"type": "content_block_delta", "index": index, "delta": d});
        match b["type"].as_str() {
            Some("thinking") => {
                ev(
                    out,
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                )?;
                ev(out, delta(json!({"type": "thinking_delta", "thinking": THINKING})))?;
                ev(out, delta(json!({"type": "signature_delta", "signature": SIGNATURE})))?;
            }
            Some("text") => {
                ev(
                    out,
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                )?;
                let text = b["text"].as_str().unwrap_or("");
                let (a, z) = text.split_at(text.len() / 2);
                ev(out, delta(json!({"type": "text_delta", "text": a})))?;
                if mode == "stream-error" {
                    ev(out, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))?;
                    out.write_all(b"0\r\n\r\n")?;
                    return Ok(true);
                }
                ev(out, delta(json!({"type": "text_delta", "text": z})))?;
            }
            _ => {
                let start = json!({"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}});
                ev(out, json!({"type": "content_block_start", "index": index, "content_block": start}))?;
                let input = b["input"].to_string();
                let (a, z) = input.split_at(input.len() / 2);
                for part in ["", a, z] {
                    ev(out, delta(json!({"type": "input_json_delta", "partial_json": part})))?;
                }
            }
        }
        ev(out, json!({"type": "content_block_stop", "index": index}))?;
    }
    if mode == "cut" {
        out.write_all(b"0\r\n\r\n")?;
        return Ok(true);
    }
    let mut u = usage(thinking, false);
    if let Some(m) = u.as_object_mut() {
        m.retain(|k, _| k == "output_tokens" || k == "output_tokens_details");
    }
    ev(
        out,
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(mode), "stop_sequence": null}, "usage": u}),
    )?;
    ev(out, json!({"type": "message_stop"}))?;
    out.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

fn models(out: &mut TcpStream, rest: &str, query: &str) -> std::io::Result<bool> {
    if let Some(id) = rest.strip_prefix("models/") {
        if id == "nope" {
            return error(out, 404, &format!("model: {id}"));
        }
        let body = json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-09-29T00:00:00Z"});
        return send(out, 200, "application/json", body.to_string().as_bytes());
    }
    if rest != "models" {
        return error(out, 404, "Not found");
    }
    let body = if query.contains("after_id=claude-opus-4-5") {
        json!({"data": [{"type": "model", "id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5"}],
               "has_more": false, "first_id": "claude-haiku-4-5", "last_id": "claude-haiku-4-5"})
    } else {
        json!({"data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"},
                        {"type": "model", "id": "claude-opus-4-5", "display_name": "Claude Opus 4.5"}],
               "has_more": true, "first_id": "claude-sonnet-4-5", "last_id": "claude-opus-4-5"})
    };
    send(out, 200, "application/json", body.to_string().as_bytes())
}
