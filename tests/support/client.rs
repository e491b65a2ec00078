//! A tiny blocking HTTP/1.1 client for tests: sends exactly the bytes given, parses the response
//! (Content-Length, chunked or close-delimited) and records when each body chunk arrived.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The OpenAI error code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

pub fn build(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(&build(method, path, headers, body))?;
    read_response(&mut s, method == "HEAD").map(|(r, _)| r)
}

pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_request(addr, method, path, headers, body).expect("request")
}

/// Sends raw bytes and returns everything the server wrote until it closed (or 10 s passed).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response from `s`. Also returns, for chunked bodies, the arrival time of each chunk.
pub type Chunks = Vec<(Instant, Vec<u8>)>;

pub fn read_response(s: &mut TcpStream, head_only: bool) -> std::io::Result<(Response, Chunks)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&buf)),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap_or("").split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    let mut chunks = Vec::new();
    if head_only || status == 100 || status == 204 || status == 304 {
        // no body
    } else if let Some(len) = get("content-length") {
        body.resize(len.parse().unwrap_or(0), 0);
        s.read_exact(&mut body)?;
    } else if get("transfer-encoding").is_some_and(|t| t == "chunked") {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                if s.read(&mut byte)? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "chunked body cut"));
                }
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap_or(0);
            let mut data = vec![0u8; size + 2];
            s.read_exact(&mut data)?;
            if size == 0 {
                break;
            }
            data.truncate(size);
            chunks.push((Instant::now(), data.clone()));
            body.extend_from_slice(&data);
        }
    } else {
        s.read_to_end(&mut body)?;
    }
    Ok((Response { status, headers, body }, chunks))
}
