//! HTTP/1.1 wire format, pure: request heads parsed from bytes, chunked bodies decoded, response
//! heads and chunks encoded into bytes. No sockets here; `server.rs` owns the socket.
//!
//! Invariants: every malformed input maps to a `HeadError` (never a panic); a request carrying both
//! `Content-Length` and `Transfer-Encoding`, or two different lengths, is refused (no smuggling).

use std::io::Write as _;

/// How many header slots httparse gets. Real SDKs send ~20; more than this is a 431, not a drop.
pub const MAX_HEADERS: usize = 100;

/// Size limits applied while parsing a request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Whole head (request line + headers), bytes.
    pub max_head_bytes: usize,
    /// Request target, bytes.
    pub max_uri_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self { max_head_bytes: 32 * 1024, max_uri_bytes: 8 * 1024 }
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head. Header names are lower-cased.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: String,
    /// Raw request target (path and query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// Whether the client allows the connection to be reused after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl RequestHead {
    /// The first value of header `name` (lower-case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The path without the query string.
    #[must_use]
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(p, _)| p)
    }

    /// The query string without `?`, if any.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// Why a head could not be parsed; each maps to one 4xx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// 400: syntax, bad Content-Length, conflicting framing.
    Malformed(&'static str),
    /// 431: head too large or too many headers.
    TooLarge(&'static str),
    /// 414: request target too long.
    UriTooLong,
    /// 501: a transfer coding other than chunked.
    UnsupportedTransferEncoding,
    /// 505: not HTTP/1.x.
    UnsupportedVersion,
}

/// Parses a request head from the start of `buf`. `Ok(None)` means "need more bytes".
/// On success returns the head and the number of bytes it occupied.
pub fn parse_head(buf: &[u8], limits: HeadLimits) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge("too many headers")),
        Err(httparse::Error::Version) => return Err(HeadError::UnsupportedVersion),
        Err(_) => return Err(HeadError::Malformed("invalid request line or header syntax")),
    };
    let len = match status {
        httparse::Status::Partial => {
            let line_end = buf.iter().position(|&b| b == b'\n');
            if line_end.map_or(buf.len(), |e| e) > limits.max_uri_bytes + 32 {
                return Err(HeadError::UriTooLong);
            }
            if buf.len() > limits.max_head_bytes {
                return Err(HeadError::TooLarge("header block exceeds the limit"));
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if len > limits.max_head_bytes {
        return Err(HeadError::TooLarge("header block exceeds the limit"));
    }
    let target = req.path.unwrap_or("/");
    if target.len() > limits.max_uri_bytes {
        return Err(HeadError::UriTooLong);
    }
    let version = req.version.unwrap_or(1);
    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut connection_close = version == 0;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        match name.as_str() {
            "content-length" => {
                let n = parse_content_length(&value)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::Malformed("conflicting Content-Length headers"));
                }
                content_length = Some(n);
            }
            "transfer-encoding" => {
                let te = transfer_encoding.get_or_insert_with(String::new);
                if !te.is_empty() {
                    te.push(',');
                }
                te.push_str(&value.to_ascii_lowercase());
            }
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        connection_close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && version == 0 {
                        connection_close = false;
                    }
                }
            }
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
        headers.push((name, value));
    }
    let framing = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(HeadError::Malformed("both Transfer-Encoding and Content-Length")),
        (Some(te), None) => {
            let codings: Vec<&str> = te.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
            if codings.as_slice() != ["chunked"] {
                return Err(HeadError::UnsupportedTransferEncoding);
            }
            Framing::Chunked
        }
        (None, Some(0) | None) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
    };
    let head = RequestHead {
        method: req.method.unwrap_or("GET").to_string(),
        target: target.to_string(),
        version,
        headers,
        framing,
        keep_alive: !connection_close,
        expect_continue: expect_continue && framing != Framing::None,
    };
    Ok(Some((head, len)))
}

fn parse_content_length(value: &str) -> Result<u64, HeadError> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Malformed("invalid Content-Length"));
    }
    value.parse().map_err(|_| HeadError::Malformed("invalid Content-Length"))
}

/// Incremental decoder for `Transfer-Encoding: chunked` request bodies.
#[derive(Clone, Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size line; holds the size parsed so far and whether we are in an extension.
    #[default]
    SizeStart,
    Size {
        size: u64,
        digits: u8,
        in_ext: bool,
        /// Bytes of this line's extension so far (bounded across reads, not per read).
        ext_len: usize,
    },
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty line. `line_len` counts the current
    /// line, `total` the whole trailer section.
    Trailer {
        line_len: usize,
        total: usize,
    },
    TrailerLf {
        line_len: usize,
        total: usize,
    },
    Done,
}

/// Bytes a chunk extension or one trailer line may take before we call it abuse.
const MAX_CHUNK_LINE: usize = 4096;
/// Bytes the whole trailer section may take.
const MAX_TRAILERS: usize = 16 * 1024;

impl ChunkedDecoder {
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input` into `out`. Returns `(consumed, produced)`. Stops early when `out` is
    /// full or the body ends. Errors name the framing problem.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), &'static str> {
        let (mut i, mut o) = (0usize, 0usize);
        while i < input.len() {
            let b = input[i];
            match &mut self.state {
                ChunkState::SizeStart | ChunkState::Size { .. } => {
                    let (mut size, mut digits, mut in_ext, mut ext_len) = match self.state {
                        ChunkState::Size { size, digits, in_ext, ext_len } => (size, digits, in_ext, ext_len),
                        _ => (0, 0, false, 0),
                    };
                    i += 1;
                    if b == b'\r' {
                        if digits == 0 {
                            return Err("missing chunk size");
                        }
                        self.state = ChunkState::SizeLf { size };
                        continue;
                    }
                    if in_ext {
                        ext_len += 1;
                        if ext_len > MAX_CHUNK_LINE {
                            return Err("chunk extension too long");
                        }
                    } else if let Some(v) = (b as char).to_digit(16) {
                        if digits >= 15 {
                            return Err("chunk size too large");
                        }
                        size = size * 16 + u64::from(v);
                        digits += 1;
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        in_ext = true;
                    } else {
                        return Err("invalid chunk size");
                    }
                    self.state = ChunkState::Size { size, digits, in_ext, ext_len };
                }
                ChunkState::SizeLf { size } => {
                    if b != b'\n' {
                        return Err("chunk size line not terminated by CRLF");
                    }
                    i += 1;
                    self.state = if *size == 0 {
                        ChunkState::Trailer { line_len: 0, total: 0 }
                    } else {
                        ChunkState::Data { remaining: *size }
                    };
                }
                ChunkState::Data { remaining } => {
                    if o == out.len() {
                        break;
                    }
                    let avail = input.len() - i;
                    let room = out.len() - o;
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(avail).min(room);
                    out[o..o + n].copy_from_slice(&input[i..i + n]);
                    i += n;
                    o += n;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err("chunk data not followed by CRLF");
                    }
                    i += 1;
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err("chunk data not followed by CRLF");
                    }
                    i += 1;
                    self.state = ChunkState::SizeStart;
                }
                ChunkState::Trailer { line_len, total } => {
                    i += 1;
                    *total += 1;
                    if *total > MAX_TRAILERS {
                        return Err("chunked trailers too long");
                    }
                    if b == b'\r' {
                        let (line_len, total) = (*line_len, *total);
                        self.state = ChunkState::TrailerLf { line_len, total };
                    } else {
                        *line_len += 1;
                        if *line_len > MAX_CHUNK_LINE {
                            return Err("chunked trailer too long");
                        }
                    }
                }
                ChunkState::TrailerLf { line_len, total } => {
                    if b != b'\n' {
                        return Err("trailer line not terminated by CRLF");
                    }
                    i += 1;
                    let total = *total + 1;
                    self.state =
                        if *line_len == 0 { ChunkState::Done } else { ChunkState::Trailer { line_len: 0, total } };
                }
                ChunkState::Done => break,
            }
        }
        Ok((i, o))
    }
}

/// The standard reason phrase for `status`.
#[must_use]
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// How a response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Length(u64),
    Chunked,
    /// HTTP/1.0 streaming: the body ends when the connection closes.
    UntilClose,
}

/// Encodes a response head. `headers` must not contain framing or connection headers; they are
/// written here from `body` and `close`.
pub fn encode_head(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)], body: BodyKind, close: bool) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        // Header values are ours or copied from upstream; strip CR/LF so nothing can inject lines.
        out.extend(value.bytes().filter(|&b| b != b'\r' && b != b'\n'));
        out.extend_from_slice(b"\r\n");
    }
    match body {
        // RFC 9110 §8.6: no Content-Length on 1xx and 204 (they never have a body).
        BodyKind::Length(0) if status == 204 || status < 200 => {}
        BodyKind::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        BodyKind::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyKind::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes one chunk of a chunked body (never empty: an empty chunk would end the body).
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The terminating chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
        parse_head(raw.as_bytes(), HeadLimits::default())
    }

    #[test]
    fn parses_a_simple_request() {
        let raw = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Y: z\r\n\r\nhello";
        let (head, n) = parse(raw).unwrap().unwrap();
        assert_eq!(n, raw.len() - 5);
        assert_eq!(head.method, "POST");
        assert_eq!(head.path(), "/v1/chat/completions");
        assert_eq!(head.query(), Some("x=1"));
        assert_eq!(head.header("x-y"), Some("z"));
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn framing_and_connection_rules() {
        type Case = (&'static str, Result<(Framing, bool), HeadError>);
        let cases: &[Case] = &[
            ("GET / HTTP/1.0\r\n\r\n", Ok((Framing::None, false))),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", Ok((Framing::None, true))),
            ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", Ok((Framing::None, false))),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", Ok((Framing::Chunked, true))),
            ("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", Ok((Framing::None, true))),
            ("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", Ok((Framing::Length(3), true))),
            ("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", Err(HeadError::Malformed("invalid Content-Length"))),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", Err(HeadError::Malformed("invalid Content-Length"))),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Err(HeadError::Malformed("invalid Content-Length")),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                Err(HeadError::Malformed("conflicting Content-Length headers")),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HeadError::Malformed("both Transfer-Encoding and Content-Length")),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Err(HeadError::UnsupportedTransferEncoding),
            ),
            ("GET / HTTP/2.0\r\n\r\n", Err(HeadError::UnsupportedVersion)),
            ("\x01\x02garbage\r\n\r\n", Err(HeadError::Malformed("invalid request line or header syntax"))),
        ];
        for (raw, want) in cases {
            let got = parse(raw).map(|h| h.map(|(h, _)| (h.framing, h.keep_alive)).unwrap());
            assert_eq!(&got, want, "{raw:?}");
        }
    }

    #[test]
    fn limits_give_431_and_414() {
        let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooLarge("too many headers")
        );
        let thirty: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
        assert!(parse(&format!("GET / HTTP/1.1\r\n{thirty}\r\n")).unwrap().is_some());
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(40_000));
        assert_eq!(parse(&big).unwrap_err(), HeadError::TooLarge("header block exceeds the limit"));
        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(&long_uri).unwrap_err(), HeadError::UriTooLong);
        let long_uri_partial = format!("GET /{}", "a".repeat(9000));
        assert_eq!(parse(&long_uri_partial).unwrap_err(), HeadError::UriTooLong);
    }

    #[test]
    fn extensions_and_trailers_are_bounded_across_reads() {
        // An extension fed one byte per read is still bounded.
        let mut d = ChunkedDecoder::default();
        let mut out = [0u8; 16];
        let mut failed = None;
        d.decode(b"5;", &mut out).unwrap();
        for _ in 0..5000 {
            if let Err(e) = d.decode(b"x", &mut out) {
                failed = Some(e);
                break;
            }
        }
        assert_eq!(failed, Some("chunk extension too long"));
        // Many short trailer lines are bounded as a whole.
        let mut d = ChunkedDecoder::default();
        d.decode(b"0\r\n", &mut out).unwrap();
        let mut failed = None;
        for _ in 0..5000 {
            if let Err(e) = d.decode(b"X: y\r\n", &mut out) {
                failed = Some(e);
                break;
            }
        }
        assert_eq!(failed, Some("chunked trailers too long"));
    }

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), &'static str> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        let mut pos = 0;
        while pos < input.len() && !d.is_done() {
            let end = (pos + step).min(input.len());
            let mut slice = &input[pos..end];
            while !slice.is_empty() && !d.is_done() {
                let (c, p) = d.decode(slice, &mut buf)?;
                out.extend_from_slice(&buf[..p]);
                slice = &slice[c..];
                pos += c;
                if c == 0 && p == 0 {
                    break;
                }
            }
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunked_decoding_in_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        for step in 1..body.len() {
            assert_eq!(decode_all(body, step).unwrap(), (b"hello world".to_vec(), true), "step {step}");
        }
    }

    #[test]
    fn chunked_errors() {
        for bad in [&b"zz\r\n"[..], b"\r\n", b"5\r\nhelloXX", b"5\nhello", b"fffffffffffffffff\r\n"] {
            assert!(decode_all(bad, 64).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encodes_heads_and_chunks_without_injection() {
        let mut out = Vec::new();
        encode_head(&mut out, 200, &[("x-a", "1\r\nevil: yes")], BodyKind::Chunked, true);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "HTTP/1.1 200 OK\r\nx-a: 1evil: yes\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n");
        let mut c = Vec::new();
        encode_chunk(&mut c, b"hello world!!!!!");
        encode_chunk(&mut c, b"");
        assert_eq!(c, b"10\r\nhello world!!!!!\r\n");
    }
}
