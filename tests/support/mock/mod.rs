//! A scripted, OpenAI-shaped upstream for tests and benchmarks: std threads, one per connection,
//! keep-alive, Content-Length and chunked request bodies. Behaviour is chosen per request by
//! `x-mock-*` headers (the gateway forwards them like any other client header):
//!
//! - `x-mock-delay-ms: N`        wait before the response head
//! - `x-mock-status: N`          answer N with an OpenAI error body (N >= 400)
//! - `x-mock-chunks: N`          SSE chunks of content (default 3)
//! - `x-mock-interval-ms: N`     gap between SSE chunks (default 0)
//! - `x-mock-fault: F`           `close-before-headers`, `reset-mid-stream`, `malformed-json`,
//!   `hang` (no answer for 60 s)
//! - `x-mock-usage: none`        omit usage from the response
//! - `x-mock-usage-json: J`      report the JSON `J` as the usage object, verbatim (malformed usage)
//!
//! Like the real API, chat usage bills every choice: `completion_tokens` is 7 × `n`.
//! - `x-mock-429-key: K`         answer 429 when the request carries `Authorization: Bearer K`
//!
//! Every request is recorded (method, path, headers, body) for assertions.
//!
//! Paths under `/v1beta/` speak Gemini instead (`gemini.rs`), paths under `/anthropic/v1/`
//! Anthropic (`anthropic.rs`); `x-mock-openai` scripts tool calls and reasoning (`scripted_chat.rs`).

#![allow(dead_code)]

pub mod anthropic;
pub mod gemini;
pub mod scripted_chat;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Usage the mock reports on every metered response.
pub const USAGE: (u64, u64, u64, u64) = (11, 7, 3, 2); // prompt, completion, cached, reasoning

pub struct Mock {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections whose request was cut by the peer (used to check upstream closes).
    pub closed_early: Arc<AtomicUsize>,
}

impl Mock {
    pub fn start() -> Mock {
        Self::start_on("127.0.0.1:0", false)
    }

    /// `quiet`: do not record requests (benchmarks).
    pub fn start_on(addr: &str, quiet: bool) -> Mock {
        let listener = TcpListener::bind(addr).expect("bind mock");
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let closed_early = Arc::new(AtomicUsize::new(0));
        let (s, c) = (Arc::clone(&seen), Arc::clone(&closed_early));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, c) = (Arc::clone(&s), Arc::clone(&c));
                let _ = thread::Builder::new().stack_size(256 * 1024).spawn(move || serve(stream, &s, &c, quiet));
            }
        });
        Mock { addr, seen, closed_early }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        body.resize(len.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Seen { method, path, headers, body })
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, closed_early: &AtomicUsize, quiet: bool) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    while let Some(req) = read_request(&mut reader) {
        if !quiet {
            seen.lock().unwrap().push(req.clone());
        }
        match respond(&mut out, &req) {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => {
                closed_early.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn num(req: &Seen, name: &str, default: u64) -> u64 {
    req.header(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn send(out: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<bool> {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-request-id: req-mock\r\n\r\n",
        body.len()
    );
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    out.write_all(&all)?;
    Ok(true)
}

fn usage_json(responses_shape: bool) -> serde_json::Value {
    usage_for(responses_shape, 1)
}

/// The usage of a call that generated `choices` completions.
fn usage_for(responses_shape: bool, choices: u64) -> serde_json::Value {
    let (p, c, cached, r) = USAGE;
    let c = c * choices;
    if responses_shape {
        serde_json::json!({"input_tokens": p, "output_tokens": c, "total_tokens": p + c,
            "input_tokens_details": {"cached_tokens": cached}, "output_tokens_details": {"reasoning_tokens": r}})
    } else {
        serde_json::json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": r}})
    }
}

/// Answers one request; `Ok(false)` closes the connection.
fn respond(out: &mut TcpStream, req: &Seen) -> std::io::Result<bool> {
    let delay = num(req, "x-mock-delay-ms", 0);
    if delay > 0 {
        thread::sleep(Duration::from_millis(delay));
    }
    let fault = req.header("x-mock-fault").unwrap_or("").to_string();
    match fault.as_str() {
        "close-before-headers" => {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(false);
        }
        "hang" => {
            thread::sleep(Duration::from_secs(60));
            return Ok(false);
        }
        "malformed-json" => return send(out, 200, "application/json", b"{not json"),
        _ => {}
    }
    let gemini_path = req.path.split('?').next().unwrap_or("");
    if gemini_path.starts_with("/v1beta/") {
        return gemini::respond(out, req, gemini_path);
    }
    if gemini_path.starts_with("/anthropic/") {
        return anthropic::respond(out, req, gemini_path);
    }
    let mut status = num(req, "x-mock-status", 200);
    if let Some(key) = req.header("x-mock-429-key") {
        if req.header("authorization") == Some(&format!("Bearer {key}")) {
            status = 429;
        }
    }
    if status >= 400 {
        let body = serde_json::json!({"error": {"message": format!("mock error {status}"), "type": "mock_error", "param": null, "code": "mock"}});
        let content_type = match req.header("x-mock-retry-after") {
            // `retry-after` rides on the content-type line's end (the head is written in one piece).
            Some(after) => format!("application/json\r\nretry-after: {after}"),
            None => "application/json".to_string(),
        };
        return send(out, u16::try_from(status).unwrap_or(500), &content_type, body.to_string().as_bytes());
    }
    let no_usage = req.header("x-mock-usage") == Some("none");
    let path = req.path.split('?').next().unwrap_or("");
    let json = req.json();
    let stream = json.get("stream").and_then(serde_json::Value::as_bool).unwrap_or(false);
    if path == "/v1/chat/completions" {
        if let Some(answered) = scripted_chat::respond(out, req, &json) {
            return answered;
        }
    }
    match (req.method.as_str(), path) {
        ("POST", "/v1/chat/completions") if stream => {
            let include_usage = json["stream_options"]["include_usage"].as_bool().unwrap_or(false);
            stream_chat(out, req, include_usage && !no_usage, fault == "reset-mid-stream")
        }
        ("POST", "/v1/chat/completions") => {
            let mut body = serde_json::json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": json["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from mock"}, "finish_reason": "stop"}]});
            if let Some(raw) = req.header("x-mock-usage-json") {
                body["usage"] = serde_json::from_str(raw).unwrap_or(serde_json::Value::Null);
            } else if !no_usage {
                body["usage"] = usage_for(false, json["n"].as_u64().unwrap_or(1));
            }
            send(out, 200, "application/json", body.to_string().as_bytes())
        }
        ("POST", "/v1/responses") if stream => stream_responses(out, req),
        ("POST", "/v1/responses") => {
            let id = format!("resp_{}", OBJECT_IDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            let body = serde_json::json!({"id": id, "object": "response", "status": "completed", "model": json["model"],
                "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]}],
                "usage": usage_json(true)});
            send(out, 200, "application/json", body.to_string().as_bytes())
        }
        ("POST", "/v1/embeddings") => {
            let body = serde_json::json!({"object": "list", "model": json["model"],
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "usage": {"prompt_tokens": USAGE.0, "total_tokens": USAGE.0}});
            send(out, 200, "application/json", body.to_string().as_bytes())
        }
        ("GET", "/v1/models") => {
            let body = serde_json::json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "mock"},
                {"id": "text-embedding-3-small", "object": "model", "created": 1, "owned_by": "mock"}]});
            send(out, 200, "application/json", body.to_string().as_bytes())
        }
        ("POST", "/v1/files" | "/v1/batches") | ("GET", "/v1/files" | "/v1/batches") => objects(out, req, path, &json),
        ("GET" | "DELETE", p)
            if (p.starts_with("/v1/files/") || p.starts_with("/v1/batches/")) && p.matches('/').count() == 3 =>
        {
            objects(out, req, p, &json)
        }
        ("GET", p) if p.starts_with("/v1/models/") => {
            let id = &p["/v1/models/".len()..];
            let body = serde_json::json!({"id": id, "object": "model", "created": 1, "owned_by": "mock"});
            send(out, 200, "application/json", body.to_string().as_bytes())
        }
        _ => {
            let body = serde_json::json!({"method": req.method, "path": req.path, "body_len": req.body.len(),
                "content_type": req.header("content-type"), "body_sha_prefix": req.body.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()});
            send(out, 200, "application/json", body.to_string().as_bytes())
        }
    }
}

/// Ids of objects the mock creates, unique across every mock of the test process.
static OBJECT_IDS: AtomicUsize = AtomicUsize::new(1);
/// The mock provider account's files and batches (one account, as at a real provider: shared by
/// every mock of the process, so lists hold other tests' objects too).
static OBJECTS: Mutex<Vec<serde_json::Value>> = Mutex::new(Vec::new());

/// Files and batches like the provider's: create, list, get, delete.
fn objects(out: &mut TcpStream, req: &Seen, path: &str, json: &serde_json::Value) -> std::io::Result<bool> {
    let mut all = OBJECTS.lock().unwrap();
    let family = if path.starts_with("/v1/files") { "file" } else { "batch" };
    let item = path.splitn(4, '/').nth(3).filter(|id| !id.is_empty());
    let body = match (req.method.as_str(), item) {
        ("POST", None) => {
            let id = format!("{family}-{}", OBJECT_IDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            let obj = serde_json::json!({"id": id, "object": family, "input_file_id": json["input_file_id"]});
            all.push(obj.clone());
            obj
        }
        ("GET", None) => {
            let data: Vec<_> = all.iter().filter(|o| o["object"] == family).cloned().collect();
            serde_json::json!({"object": "list", "data": data, "has_more": false})
        }
        (method, Some(id)) => match all.iter().position(|o| o["id"] == id) {
            Some(i) if method == "DELETE" => {
                all.remove(i);
                serde_json::json!({"id": id, "object": family, "deleted": true})
            }
            Some(i) => all[i].clone(),
            None => {
                let body = serde_json::json!({"error": {"message": format!("No such {family}: {id}"), "type": "invalid_request_error"}});
                return send(out, 404, "application/json", body.to_string().as_bytes());
            }
        },
        _ => serde_json::json!({}),
    };
    drop(all);
    send(out, 200, "application/json", body.to_string().as_bytes())
}

fn chunked(out: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
    framed.extend_from_slice(data);
    framed.extend_from_slice(b"\r\n");
    out.write_all(&framed)
}

fn stream_head(out: &mut TcpStream) -> std::io::Result<()> {
    out.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nx-request-id: req-mock\r\n\r\n")
}

fn stream_chat(out: &mut TcpStream, req: &Seen, include_usage: bool, reset: bool) -> std::io::Result<bool> {
    let chunks = num(req, "x-mock-chunks", 3);
    let interval = num(req, "x-mock-interval-ms", 0);
    stream_head(out)?;
    let usage_null = if include_usage { ",\"usage\":null" } else { "" };
    for i in 0..chunks {
        if i > 0 && interval > 0 {
            thread::sleep(Duration::from_millis(interval));
        }
        let event = format!("data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]{usage_null}}}\n\n");
        chunked(out, event.as_bytes())?;
        if reset && i == 1 {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(false);
        }
    }
    let last = format!("data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]{usage_null}}}\n\n");
    chunked(out, last.as_bytes())?;
    if include_usage {
        let usage = format!("data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{}}}\n\n", usage_json(false));
        chunked(out, usage.as_bytes())?;
    }
    chunked(out, b"data: [DONE]\n\n")?;
    out.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

fn stream_responses(out: &mut TcpStream, req: &Seen) -> std::io::Result<bool> {
    let chunks = num(req, "x-mock-chunks", 3);
    stream_head(out)?;
    for i in 0..chunks {
        let event = format!("event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"tok{i}\"}}\n\n");
        chunked(out, event.as_bytes())?;
    }
    let done = format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"id\":\"resp_mock\",\"status\":\"completed\",\"usage\":{}}}}}\n\n", usage_json(true));
    chunked(out, done.as_bytes())?;
    out.write_all(b"0\r\n\r\n")?;
    Ok(true)
}
