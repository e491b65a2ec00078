//! The mock's Gemini dialect (`/v1beta/...`), spoken like the real API: `x-goog-api-key` required
//! (a key in the URL or a bearer token is refused), camelCase bodies, `:generateContent`,
//! `:streamGenerateContent?alt=sse` (no `[DONE]`, the stream ends at EOF), `:countTokens`, `:batchEmbedContents`
//! (at most 100 items, every item naming its model), paged `models`, and google.rpc error bodies.
//! Like Gemini 3, a model named `gemini-3…` refuses a replayed function call without its
//! `thoughtSignature`.
//!
//! Scripted by the same `x-mock-*` headers as the OpenAI dialect (`x-mock-status`,
//! `x-mock-chunks`, `x-mock-usage: none`, `x-mock-429-key` matched against `x-goog-api-key`,
//! `x-mock-crlf: 1` for CRLF frames), plus `x-mock-gemini`:
//! `tools` (two parallel calls, the signature on the first, in separate chunks when streaming),
//! `blocked` (a blocked prompt), `malformed-call`, `stream-error` (an error chunk mid-stream),
//! `cut` (EOF before the finish reason), `internal` (a 500 for this dialect only), `hang` (no
//! answer for 3 s, then the connection closes).

use std::io::Write;
use std::net::TcpStream;

use serde_json::{json, Value};

use super::{chunked, num, send, stream_head, Seen, USAGE};

/// The signature the mock puts on the first function call (standard base64 with `+`, `/`, `=`).
pub const SIGNATURE: &str = "CikBcsja+fK1/x9=";

fn error(out: &mut TcpStream, status: u16, message: &str) -> std::io::Result<bool> {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut err = json!({"error": {"code": status, "message": message, "status": name}});
    if status == 429 {
        err["error"]["details"] = json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]);
    }
    send(out, status, "application/json; charset=UTF-8", err.to_string().as_bytes())
}

fn usage_meta(candidates: u64) -> Value {
    let (prompt, completion, cached, thoughts) = USAGE;
    let _ = completion;
    json!({"promptTokenCount": prompt, "cachedContentTokenCount": cached, "candidatesTokenCount": candidates,
           "thoughtsTokenCount": thoughts, "totalTokenCount": prompt + candidates + thoughts})
}

fn calls() -> [Value; 2] {
    [
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE}),
        json!({"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}}),
    ]
}

/// A replayed model turn's function calls without a signature, on a model that checks them.
fn missing_signature(json: &Value, model: &str) -> bool {
    if !model.starts_with("gemini-3") {
        return false;
    }
    json["contents"].as_array().into_iter().flatten().filter(|c| c["role"] == "model").any(|c| {
        let calls: Vec<&Value> =
            c["parts"].as_array().into_iter().flatten().filter(|p| p.get("functionCall").is_some()).collect();
        calls.first().is_some_and(|p| p.get("thoughtSignature").is_none())
    })
}

/// Answers a `/v1beta/...` request.
pub fn respond(out: &mut TcpStream, req: &Seen, path: &str) -> std::io::Result<bool> {
    let query = req.path.split_once('?').map_or("", |(_, q)| q);
    if query.split('&').any(|kv| kv.starts_with("key=")) || req.header("authorization").is_some() {
        return error(out, 400, "the mock accepts the key only in x-goog-api-key");
    }
    let Some(key) = req.header("x-goog-api-key") else {
        return error(out, 403, "Method doesn't allow unregistered callers. Please use API Key.");
    };
    if req.header("x-mock-429-key") == Some(key) {
        return error(out, 429, "Resource has been exhausted (e.g. check quota).");
    }
    let status = num(req, "x-mock-status", 200);
    if status >= 400 {
        return error(out, u16::try_from(status).unwrap_or(500), &format!("mock gemini error {status}"));
    }
    match req.header("x-mock-gemini") {
        Some("internal") => return error(out, 500, "An internal error has occurred."),
        Some("hang") => {
            std::thread::sleep(std::time::Duration::from_secs(3));
            return Ok(false);
        }
        _ => {}
    }
    let rest = path.strip_prefix("/v1beta/").unwrap_or("");
    let json = req.json();
    if req.method == "GET" {
        return models(out, rest, query);
    }
    let Some((model, method)) = rest.strip_prefix("models/").and_then(|r| r.split_once(':')) else {
        return error(out, 404, "no such method");
    };
    match method {
        "generateContent" | "streamGenerateContent" => {
            if json.get("contents").and_then(Value::as_array).is_none_or(Vec::is_empty) {
                return error(out, 400, "* GenerateContentRequest.contents: contents is not specified");
            }
            if missing_signature(&json, model) {
                return error(out, 400, "Function call is missing a thought_signature in functionCall parts.");
            }
            if method == "streamGenerateContent" {
                if query != "alt=sse" {
                    return error(out, 400, "the mock streams only with alt=sse");
                }
                return stream(out, req, model);
            }
            generate(out, req, model, &json)
        }
        "batchEmbedContents" => embed(out, req, model, &json),
        "countTokens" => {
            let inner = &json["generateContentRequest"];
            if inner["contents"].as_array().is_none_or(Vec::is_empty)
                || inner["model"] != json!(format!("models/{model}"))
            {
                return error(out, 400, "countTokens takes a generateContentRequest naming its model");
            }
            // Like the real counter: instructions and tools count too (a fixed 10 tokens here).
            let extra = if inner.get("systemInstruction").is_some() || inner.get("tools").is_some() { 10 } else { 0 };
            let body = json!({"totalTokens": 32 + extra});
            send(out, 200, "application/json; charset=UTF-8", body.to_string().as_bytes())
        }
        _ => error(out, 404, "no such method"),
    }
}

fn generate(out: &mut TcpStream, req: &Seen, model: &str, json: &Value) -> std::io::Result<bool> {
    let mode = req.header("x-mock-gemini").unwrap_or("");
    let n = json.pointer("/generationConfig/candidateCount").and_then(Value::as_u64).unwrap_or(1);
    let mut body = match mode {
        "blocked" => json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}}),
        "malformed-call" => json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}]}),
        "tools" => {
            json!({"candidates": [{"content": {"role": "model", "parts": calls()}, "finishReason": "STOP", "index": 0,
                                         "finishMessage": "Model generated function call(s)."}]})
        }
        _ => {
            let candidates: Vec<Value> = (0..n)
                .map(|i| json!({"content": {"role": "model", "parts": [{"text": "Hello from gemini"}]}, "finishReason": "STOP", "index": i}))
                .collect();
            json!({"candidates": candidates})
        }
    };
    if req.header("x-mock-usage") != Some("none") {
        body["usageMetadata"] = usage_meta(5 * n);
    }
    body["modelVersion"] = json!(model);
    body["responseId"] = json!("gem-resp-1");
    send(out, 200, "application/json; charset=UTF-8", body.to_string().as_bytes())
}

fn stream(out: &mut TcpStream, req: &Seen, model: &str) -> std::io::Result<bool> {
    let mode = req.header("x-mock-gemini").unwrap_or("").to_string();
    let sep = if req.header("x-mock-crlf") == Some("1") { "\r\n\r\n" } else { "\n\n" };
    let frame = |out: &mut TcpStream, v: &Value| chunked(out, format!("data: {v}{sep}").as_bytes());
    let meta = |c: u64| if req.header("x-mock-usage") == Some("none") { Value::Null } else { usage_meta(c) };
    stream_head(out)?;
    let chunk = |parts: Value, finish: Option<&str>, c: u64| {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        let mut v = json!({"candidates": [cand], "modelVersion": model, "responseId": "gem-stream-1"});
        if !meta(c).is_null() {
            v["usageMetadata"] = meta(c);
        }
        v
    };
    match mode.as_str() {
        "tools" => {
            let [a, b] = calls();
            frame(out, &chunk(json!([{"text": "Checking."}]), None, 1))?;
            frame(out, &chunk(json!([a]), None, 3))?;
            frame(out, &chunk(json!([b]), None, 4))?;
            frame(out, &chunk(json!([{"text": ""}]), Some("STOP"), 5))?;
        }
        "blocked" => frame(
            out,
            &json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": USAGE.0}}),
        )?,
        _ => {
            let chunks = num(req, "x-mock-chunks", 3);
            for i in 0..chunks {
                frame(out, &chunk(json!([{"text": format!("tok{i} ")}]), None, i + 1))?;
                if mode == "stream-error" && i == 0 {
                    frame(
                        out,
                        &json!({"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}),
                    )?;
                    out.write_all(b"0\r\n\r\n")?;
                    return Ok(true);
                }
            }
            if mode != "cut" {
                frame(out, &chunk(json!([{"text": ""}]), Some("STOP"), 5))?;
            }
        }
    }
    out.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

fn embed(out: &mut TcpStream, req: &Seen, model: &str, json: &Value) -> std::io::Result<bool> {
    let items = json["requests"].as_array().cloned().unwrap_or_default();
    if items.is_empty() || items.len() > 100 {
        return error(out, 400, "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch");
    }
    if items.iter().any(|i| i["model"] != json!(format!("models/{model}"))) {
        return error(out, 400, "every request must name the batch's model");
    }
    let embeddings: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let dims = item["outputDimensionality"].as_u64().unwrap_or(3);
            let values: Vec<f64> = (0..dims).map(|d| (i as f64 + 1.0) * 0.25 + d as f64).collect();
            json!({"values": values})
        })
        .collect();
    let mut body = json!({"embeddings": embeddings});
    if req.header("x-mock-usage") == Some("reported") {
        body["usageMetadata"] = json!({"promptTokenCount": 2 * items.len()});
    }
    send(out, 200, "application/json; charset=UTF-8", body.to_string().as_bytes())
}

fn models(out: &mut TcpStream, rest: &str, query: &str) -> std::io::Result<bool> {
    if let Some(id) = rest.strip_prefix("models/") {
        if id == "nope" {
            return error(out, 404, &format!("models/{id} is not found for API version v1beta"));
        }
        let body = json!({"name": format!("models/{id}"), "displayName": id, "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536});
        return send(out, 200, "application/json; charset=UTF-8", body.to_string().as_bytes());
    }
    if rest != "models" {
        return error(out, 404, "no such collection");
    }
    let body = if query.contains("pageToken=p2") {
        json!({"models": [{"name": "models/gemini-embedding-001", "supportedGenerationMethods": ["embedContent"]}]})
    } else {
        json!({"models": [{"name": "models/gemini-2.5-flash", "supportedGenerationMethods": ["generateContent"]},
                          {"name": "models/gemini-2.5-pro", "supportedGenerationMethods": ["generateContent"]}],
               "nextPageToken": "p2"})
    };
    send(out, 200, "application/json; charset=UTF-8", body.to_string().as_bytes())
}
