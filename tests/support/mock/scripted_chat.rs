//! Scripted chat completions of the OpenAI dialect beyond plain text, chosen by `x-mock-openai`:
//! `tools` (two parallel tool calls; streamed, each call's arguments split over several chunks
//! and the second call's id and name only in its first chunk, as OpenAI streams them) and
//! `reasoning` (`reasoning_content` before the answer, as DeepSeek and vLLM send it).

use std::io::Write;
use std::net::TcpStream;

use serde_json::{json, Value};

use super::{chunked, send, stream_head, usage_json, Seen};

/// The reasoning text of the `reasoning` mode.
pub const REASONING: &str = "Let me think.";

fn calls() -> Value {
    json!([{"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
           {"id": "call_t2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}])
}

/// Answers a chat completion in a scripted mode; `None` when the request asked for none.
pub fn respond(out: &mut TcpStream, req: &Seen, json: &Value) -> Option<std::io::Result<bool>> {
    let mode = req.header("x-mock-openai")?;
    let stream = json["stream"] == true;
    let include_usage = json["stream_options"]["include_usage"] == true;
    Some(if stream { stream_mode(out, mode, include_usage) } else { whole(out, mode, json) })
}

fn whole(out: &mut TcpStream, mode: &str, json: &Value) -> std::io::Result<bool> {
    let (message, finish) = match mode {
        "tools" => (json!({"role": "assistant", "content": null, "tool_calls": calls()}), "tool_calls"),
        _ => (json!({"role": "assistant", "content": "Hello from mock", "reasoning_content": REASONING}), "stop"),
    };
    let body = json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": json["model"],
                      "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage_json(false)});
    send(out, 200, "application/json", body.to_string().as_bytes())
}

fn stream_mode(out: &mut TcpStream, mode: &str, include_usage: bool) -> std::io::Result<bool> {
    stream_head(out)?;
    let frame = |out: &mut TcpStream, delta: Value, finish: Option<&str>| {
        let chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        chunked(out, format!("data: {chunk}\n\n").as_bytes())
    };
    frame(out, json!({"role": "assistant", "content": ""}), None)?;
    let finish = match mode {
        "tools" => {
            let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
                let mut c = json!({"index": index, "function": {"arguments": args}});
                if let (Some(id), Some(name)) = (id, name) {
                    c["id"] = json!(id);
                    c["type"] = json!("function");
                    c["function"]["name"] = json!(name);
                }
                json!({"tool_calls": [c]})
            };
            frame(out, call(0, Some("call_w1"), Some("get_weather"), ""), None)?;
            frame(out, call(0, None, None, "{\"city\":"), None)?;
            frame(out, call(1, Some("call_t2"), Some("get_time"), "{}"), None)?;
            frame(out, call(0, None, None, "\"Paris\"}"), None)?;
            "tool_calls"
        }
        _ => {
            let (a, z) = REASONING.split_at(5);
            frame(out, json!({"reasoning_content": a}), None)?;
            frame(out, json!({"reasoning_content": z}), None)?;
            frame(out, json!({"content": "Hello from mock"}), None)?;
            "stop"
        }
    };
    frame(out, json!({}), Some(finish))?;
    if include_usage {
        let chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [], "usage": usage_json(false)});
        chunked(out, format!("data: {chunk}\n\n").as_bytes())?;
    }
    chunked(out, b"data: [DONE]\n\n")?;
    out.write_all(b"0\r\n\r\n")?;
    Ok(true)
}
