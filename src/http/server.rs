//! The HTTP/1.1 server on may coroutines: an accept loop, one coroutine per connection, and the
//! `Exchange` a handler uses to read the request body and write a fixed or streamed response.
//!
//! Why our own loop: may_minihttp buffers whole responses (no SSE) and silently drops requests with
//! more than 16 headers (runtime.md §2). This loop parses with httparse (`codec.rs`) and writes each
//! streamed chunk with one `write_all` on a TCP_NODELAY socket, so events leave as they are produced.
//!
//! Invariants:
//! - every request that can be answered gets a status line (malformed ones get their 4xx, a panic
//!   in a handler gets a 500); a connection is dropped without a status only when the peer is gone
//!   or the response had already started streaming;
//! - nothing here blocks a may worker: every socket operation is a may socket operation with a
//!   timeout, and the counters are atomics;
//! - every response carries `x-prodex-call-id` and `x-prodex-overhead-ms`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use may::net::{TcpListener, TcpStream};

use crate::clock;
use crate::error::ApiError;
use crate::http::codec::{self, BodyKind, ChunkedDecoder, Framing, HeadError, HeadLimits, RequestHead};
use crate::lifecycle::Lifecycle;

/// Connection and request limits (all configurable through `[gateway]`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub head: HeadLimits,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: u64,
    /// Time allowed from a request's first byte to the end of its head (408 after it).
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub idle_timeout: Duration,
    /// Per read/write timeout while a request body is read or a response written.
    pub io_timeout: Duration,
    /// Time allowed to receive a whole request body (408 after it): a client trickling one byte
    /// per `io_timeout` cannot hold a connection and an upstream slot forever.
    pub body_timeout: Duration,
    /// Open connections above this get 503 `overloaded`.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head: HeadLimits::default(),
            max_body_bytes: 64 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            io_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(300),
            max_connections: 16_384,
        }
    }
}

/// What the server calls for every parsed request.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, exchange: &mut Exchange<'_>);
}

/// Starts the accept loop on `listener` in a coroutine. It stops (dropping the listener, so new
/// connections are refused) once `lifecycle.draining` is set and the loop is woken by a connect.
pub fn spawn(
    listener: TcpListener,
    limits: Limits,
    handler: Arc<dyn Handler>,
    lifecycle: Arc<Lifecycle>,
) -> may::coroutine::JoinHandle<()> {
    may::go!(move || accept_loop(&listener, limits, &handler, &lifecycle))
}

fn accept_loop(listener: &TcpListener, limits: Limits, handler: &Arc<dyn Handler>, lifecycle: &Arc<Lifecycle>) {
    loop {
        let accepted = listener.accept();
        if lifecycle.draining.load(Ordering::Acquire) {
            log::info!("listener closed: draining");
            return;
        }
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                log::warn!("accept failed: {e}");
                may::coroutine::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let open = lifecycle.open_connections.fetch_add(1, Ordering::AcqRel) + 1;
        let lifecycle = Arc::clone(lifecycle);
        if open > limits.max_connections {
            may::go!(move || {
                refuse_overloaded(stream);
                lifecycle.open_connections.fetch_sub(1, Ordering::AcqRel);
            });
            continue;
        }
        let handler = Arc::clone(handler);
        may::go!(move || {
            let mut conn = Conn { stream, buf: ReadBuf::default(), peer, read_timeout: None };
            conn.serve(limits, handler.as_ref(), &lifecycle);
            lifecycle.open_connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

fn refuse_overloaded(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let err = ApiError::overloaded();
    let _ = stream.write_all(&error_response_bytes(&err, &clock::call_id(), Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = stream.read(&mut sink);
}

fn error_response_bytes(err: &ApiError, call_id: &str, overhead: Duration) -> Vec<u8> {
    let body = err.body();
    let overhead_ms = format_ms(overhead);
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("x-prodex-call-id", call_id),
        ("x-prodex-overhead-ms", &overhead_ms),
    ];
    headers.extend(err.headers.iter().map(|(k, v)| (*k, v.as_str())));
    let mut out = Vec::with_capacity(256 + body.len());
    codec::encode_head(&mut out, err.status, &headers, BodyKind::Length(body.len() as u64), true);
    out.extend_from_slice(&body);
    out
}

/// Milliseconds with microsecond precision, as sent in `x-prodex-overhead-ms`.
#[must_use]
pub fn format_ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// One client connection: the socket and the bytes read but not yet consumed.
struct Conn {
    stream: TcpStream,
    buf: ReadBuf,
    peer: SocketAddr,
    /// The read timeout last applied (each change is a setsockopt, so unchanged ones are skipped).
    read_timeout: Option<Duration>,
}

/// A connection's read buffer: bytes `start..end` of `data` are received but not yet consumed.
/// Allocated (and zeroed) once per connection; grows only for large heads or fast senders.
struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        Self { data: vec![0; 4096], start: 0, end: 0 }
    }
}

impl ReadBuf {
    /// Largest the buffer grows to (a head is limited well below this).
    const MAX: usize = 64 * 1024;

    fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space to read into, making room first (compacting, then growing up to `MAX`).
    fn spare(&mut self) -> &mut [u8] {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.data.len() < Self::MAX {
                self.data.resize((self.data.len() * 2).min(Self::MAX), 0);
            }
        }
        &mut self.data[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }
}

enum HeadRead {
    Head(RequestHead, Instant),
    /// The peer closed or stayed idle: close quietly.
    Closed,
    /// Answer with this error and close.
    Reject(ApiError, Instant),
}

impl Conn {
    fn serve(&mut self, limits: Limits, handler: &dyn Handler, lifecycle: &Lifecycle) {
        let _ = self.stream.set_nodelay(true);
        let _ = self.stream.set_write_timeout(Some(limits.io_timeout));
        loop {
            let (head, started) = match self.read_head(limits) {
                HeadRead::Head(head, started) => (head, started),
                HeadRead::Closed => return,
                HeadRead::Reject(err, started) => {
                    log::info!("rejected malformed request from {}: {err}", self.peer);
                    let bytes = error_response_bytes(&err, &clock::call_id(), started.elapsed());
                    let _ = self.stream.write_all(&bytes);
                    self.linger_close();
                    return;
                }
            };
            lifecycle.in_flight.fetch_add(1, Ordering::AcqRel);
            let keep_going = self.exchange(head, started, limits, handler, lifecycle);
            lifecycle.in_flight.fetch_sub(1, Ordering::AcqRel);
            if !keep_going {
                return;
            }
        }
    }

    /// Runs one request/response exchange; returns whether the connection may be reused.
    fn exchange(
        &mut self,
        head: RequestHead,
        started: Instant,
        limits: Limits,
        handler: &dyn Handler,
        lifecycle: &Lifecycle,
    ) -> bool {
        let body = match head.framing {
            Framing::None => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::default()),
        };
        let draining = lifecycle.draining.load(Ordering::Acquire);
        let mut ex = Exchange {
            call_id: clock::call_id(),
            started,
            peer: self.peer,
            draining,
            close_after: !head.keep_alive || draining,
            head,
            upstream: Duration::ZERO,
            conn: self,
            body,
            body_read: 0,
            max_body: limits.max_body_bytes,
            io_timeout: limits.io_timeout,
            body_deadline: started + limits.body_timeout,
            continue_sent: false,
            body_failed: None,
            response: ResponseState::NotStarted,
            status: 0,
        };
        if let Framing::Length(n) = ex.head.framing {
            if n > limits.max_body_bytes {
                let _ = ex.send_error(&ApiError::request_too_large(limits.max_body_bytes));
                return false;
            }
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(&mut ex)));
        if outcome.is_err() {
            log::error!("handler panicked on {} {} (call {})", ex.head.method, ex.head.path(), ex.call_id);
            if ex.response == ResponseState::NotStarted {
                let _ = ex.send_error(&ApiError::internal("the request could not be handled"));
            }
            return false;
        }
        match ex.response {
            ResponseState::Done => {}
            ResponseState::NotStarted => {
                let _ = ex.send_error(&ApiError::internal("no response was produced"));
                return false;
            }
            ResponseState::Streaming(_) | ResponseState::Broken => return false,
        }
        if ex.close_after {
            return false;
        }
        ex.discard_rest_of_body()
    }

    /// Reads until a full request head is buffered, applying the idle and header timeouts.
    fn read_head(&mut self, limits: Limits) -> HeadRead {
        let mut first_byte: Option<Instant> = None;
        loop {
            if !self.buf.is_empty() {
                let started = *first_byte.get_or_insert_with(clock::now);
                match codec::parse_head(self.buf.bytes(), limits.head) {
                    Ok(Some((head, used))) => {
                        self.buf.consume(used);
                        return HeadRead::Head(head, started);
                    }
                    Ok(None) => {}
                    Err(e) => return HeadRead::Reject(head_error(&e), started),
                }
            }
            let timeout = match first_byte {
                None => limits.idle_timeout,
                Some(t) => match limits.header_timeout.checked_sub(t.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return HeadRead::Reject(ApiError::request_timeout(), t),
                },
            };
            self.set_read_timeout(timeout);
            match self.fill() {
                Ok(0) => return HeadRead::Closed,
                Ok(_) => {
                    first_byte.get_or_insert_with(clock::now);
                }
                Err(e) if is_timeout(&e) => match first_byte {
                    None => return HeadRead::Closed,
                    Some(t) => return HeadRead::Reject(ApiError::request_timeout(), t),
                },
                Err(_) => return HeadRead::Closed,
            }
        }
    }

    fn set_read_timeout(&mut self, timeout: Duration) {
        // Round to 100 ms so a shrinking header deadline does not cost a syscall per read.
        let timeout = Duration::from_millis(timeout.as_millis().div_ceil(100).max(1) as u64 * 100);
        if self.read_timeout != Some(timeout) {
            let _ = self.stream.set_read_timeout(Some(timeout));
            self.read_timeout = Some(timeout);
        }
    }

    /// Reads more bytes from the socket into `buf`; returns how many (0 = peer closed).
    fn fill(&mut self) -> io::Result<usize> {
        let spare = self.buf.spare();
        let n = self.stream.read(spare)?;
        self.buf.filled(n);
        Ok(n)
    }

    /// Half-closes and reads briefly so the client sees our response instead of a reset.
    fn linger_close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut sink = [0u8; 8192];
        for _ in 0..64 {
            match self.stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

fn head_error(e: &HeadError) -> ApiError {
    match e {
        HeadError::Malformed(what) => ApiError::malformed_request(what),
        HeadError::TooLarge(what) => ApiError::headers_too_large(what),
        HeadError::UriTooLong => ApiError::uri_too_long(HeadLimits::default().max_uri_bytes),
        HeadError::UnsupportedTransferEncoding => {
            let mut e = ApiError::malformed_request("only chunked transfer coding is supported");
            e.status = 501;
            e
        }
        HeadError::UnsupportedVersion => {
            let mut e = ApiError::malformed_request("only HTTP/1.0 and HTTP/1.1 are supported");
            e.status = 505;
            e
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

#[derive(Debug)]
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseState {
    NotStarted,
    Streaming(BodyKind),
    Done,
    /// A write failed: the client is gone.
    Broken,
}

/// Why reading a request body failed.
#[derive(Debug)]
pub enum BodyError {
    /// The body exceeds the configured limit (413).
    TooLarge(u64),
    /// Chunked framing error or truncated body (400).
    Malformed(&'static str),
    /// The client stopped sending (408).
    Timeout,
    /// The client went away.
    Io(io::Error),
}

impl BodyError {
    /// The error answered to the client.
    #[must_use]
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::TooLarge(limit) => ApiError::request_too_large(*limit),
            Self::Malformed(what) => ApiError::malformed_request(what),
            Self::Timeout => ApiError::request_timeout(),
            Self::Io(_) => ApiError::malformed_request("connection closed while reading the body"),
        }
    }
}

impl From<BodyError> for io::Error {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Io(e) => e,
            BodyError::Timeout => io::Error::new(io::ErrorKind::TimedOut, "request body timeout"),
            BodyError::TooLarge(_) => io::Error::new(io::ErrorKind::InvalidData, "request body too large"),
            BodyError::Malformed(what) => io::Error::new(io::ErrorKind::InvalidData, what),
        }
    }
}

/// One request and its response. Handlers read the body through it and answer through it.
pub struct Exchange<'c> {
    pub head: RequestHead,
    /// `prodex-<UUIDv7>`, sent as `x-prodex-call-id` and used in logs and the ledger.
    pub call_id: String,
    /// When the request's first byte arrived.
    pub started: Instant,
    pub peer: SocketAddr,
    /// The gateway was draining when this request arrived.
    pub draining: bool,
    close_after: bool,
    /// Time spent waiting on the upstream, excluded from `x-prodex-overhead-ms`.
    upstream: Duration,
    conn: &'c mut Conn,
    body: BodyState,
    body_read: u64,
    max_body: u64,
    io_timeout: Duration,
    body_deadline: Instant,
    continue_sent: bool,
    /// Why reading the body through a `BodyReader` failed (too large, too slow, malformed): the
    /// client's fault, to be answered as such even when the read happened inside an upstream send.
    pub body_failed: Option<ApiError>,
    response: ResponseState,
    status: u16,
}

impl<'c> Exchange<'c> {
    /// Adds time spent waiting on the upstream (excluded from the overhead header).
    pub fn add_upstream_time(&mut self, d: Duration) {
        self.upstream += d;
    }

    /// Gateway time so far: elapsed minus upstream time.
    #[must_use]
    pub fn overhead(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.upstream)
    }

    /// The status sent, or 0 before the head went out.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the response head has been written.
    #[must_use]
    pub fn response_started(&self) -> bool {
        self.response != ResponseState::NotStarted
    }

    /// Reads request body bytes into `out`; 0 means the body is complete.
    pub fn read_body(&mut self, out: &mut [u8]) -> Result<usize, BodyError> {
        if out.is_empty() || matches!(self.body, BodyState::Done) {
            return Ok(0);
        }
        if self.head.expect_continue && !self.continue_sent && self.response == ResponseState::NotStarted {
            self.continue_sent = true;
            self.conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(BodyError::Io)?;
        }
        loop {
            let n = match &mut self.body {
                BodyState::Done => return Ok(0),
                BodyState::Length(remaining) => {
                    if self.conn.buf.is_empty() {
                        self.fill_for_body()?;
                        continue;
                    }
                    let available = self.conn.buf.bytes();
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(available.len()).min(out.len());
                    out[..n].copy_from_slice(&available[..n]);
                    self.conn.buf.consume(n);
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.body = BodyState::Done;
                    }
                    n
                }
                BodyState::Chunked(decoder) => {
                    if self.conn.buf.is_empty() {
                        self.fill_for_body()?;
                        continue;
                    }
                    let (used, produced) = decoder.decode(self.conn.buf.bytes(), out).map_err(BodyError::Malformed)?;
                    self.conn.buf.consume(used);
                    if decoder.is_done() {
                        self.body = BodyState::Done;
                    }
                    if produced == 0 && !matches!(self.body, BodyState::Done) {
                        continue;
                    }
                    produced
                }
            };
            self.body_read += n as u64;
            if self.body_read > self.max_body {
                self.close_after = true;
                return Err(BodyError::TooLarge(self.max_body));
            }
            return Ok(n);
        }
    }

    fn fill_for_body(&mut self) -> Result<(), BodyError> {
        let left = self.body_deadline.saturating_duration_since(clock::now());
        if left.is_zero() {
            self.close_after = true;
            return Err(BodyError::Timeout);
        }
        self.conn.set_read_timeout(self.io_timeout.min(left));
        match self.conn.fill() {
            Ok(0) => {
                self.close_after = true;
                Err(BodyError::Malformed("request body ended early"))
            }
            Ok(_) => Ok(()),
            Err(e) if is_timeout(&e) => {
                self.close_after = true;
                Err(BodyError::Timeout)
            }
            Err(e) => {
                self.close_after = true;
                Err(BodyError::Io(e))
            }
        }
    }

    /// Reads the whole body (bounded by the configured limit).
    pub fn read_body_to_end(&mut self) -> Result<Vec<u8>, BodyError> {
        let hint = match self.head.framing {
            Framing::Length(n) => usize::try_from(n.min(self.max_body)).unwrap_or(0),
            _ => 0,
        };
        let mut body = Vec::with_capacity(hint);
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = self.read_body(&mut chunk)?;
            if n == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }

    /// The body as an `io::Read`, for streaming it upstream without buffering it whole.
    pub fn body_reader(&mut self) -> BodyReader<'_, 'c> {
        BodyReader { exchange: self }
    }

    /// Consumes whatever the handler did not read, so the connection can serve the next request.
    /// Returns false when the connection must close instead.
    fn discard_rest_of_body(&mut self) -> bool {
        if matches!(self.body, BodyState::Done) {
            return true;
        }
        if self.head.expect_continue && !self.continue_sent {
            return false; // the client is waiting for 100-continue; it may or may not send the body
        }
        let mut sink = [0u8; 16 * 1024];
        let mut budget: u64 = 1024 * 1024;
        loop {
            match self.read_body(&mut sink) {
                Ok(0) => return true,
                Ok(n) => {
                    budget = budget.saturating_sub(n as u64);
                    if budget == 0 {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn common_headers(&self) -> [(&'static str, String); 2] {
        [("x-prodex-call-id", self.call_id.clone()), ("x-prodex-overhead-ms", format_ms(self.overhead()))]
    }

    fn write_head(&mut self, status: u16, headers: &[(&str, &str)], kind: BodyKind, body: &[u8]) -> io::Result<()> {
        let common = self.common_headers();
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
        all.extend(common.iter().map(|(k, v)| (*k, v.as_str())));
        all.extend(headers.iter().filter(|(k, _)| !is_framing_header(k)).copied());
        let mut out = Vec::with_capacity(256 + body.len().min(64 * 1024));
        let close = self.close_after || kind == BodyKind::UntilClose;
        codec::encode_head(&mut out, status, &all, kind, close);
        self.status = status;
        let result = if body.len() <= 64 * 1024 {
            out.extend_from_slice(body);
            self.conn.stream.write_all(&out)
        } else {
            self.conn.stream.write_all(&out).and_then(|()| self.conn.stream.write_all(body))
        };
        if result.is_err() {
            self.response = ResponseState::Broken;
        }
        result
    }

    /// Sends a complete response with `Content-Length`. For HEAD, the body is not sent.
    pub fn send(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
        if self.response != ResponseState::NotStarted {
            return Err(io::Error::other("response already started"));
        }
        let payload = if self.head.method == "HEAD" { &[][..] } else { body };
        self.write_head(status, headers, BodyKind::Length(body.len() as u64), payload)?;
        self.response = ResponseState::Done;
        Ok(())
    }

    /// Sends an OpenAI error object.
    pub fn send_error(&mut self, err: &ApiError) -> io::Result<()> {
        if err.status >= 400 && !matches!(self.body, BodyState::Done) {
            // We answer before reading the body: do not try to reuse the connection.
            self.close_after =
                self.close_after || !self.continue_sent && self.head.expect_continue || err.status == 413;
        }
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        headers.extend(err.headers.iter().map(|(k, v)| (*k, v.as_str())));
        self.send(err.status, &headers, &err.body())
    }

    /// Starts a streamed response (chunked on HTTP/1.1, close-delimited on HTTP/1.0).
    pub fn start_stream(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
        if self.response != ResponseState::NotStarted {
            return Err(io::Error::other("response already started"));
        }
        let kind = if self.head.version == 0 { BodyKind::UntilClose } else { BodyKind::Chunked };
        self.write_head(status, headers, kind, &[])?;
        self.response = if self.head.method == "HEAD" { ResponseState::Done } else { ResponseState::Streaming(kind) };
        Ok(())
    }

    /// Writes one piece of a streamed body in a single socket write.
    pub fn send_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        let ResponseState::Streaming(kind) = self.response else {
            return if self.response == ResponseState::Done {
                Ok(())
            } else {
                Err(io::Error::other("no stream started"))
            };
        };
        if data.is_empty() {
            return Ok(());
        }
        let result = if kind == BodyKind::Chunked {
            let mut framed = Vec::with_capacity(data.len() + 16);
            codec::encode_chunk(&mut framed, data);
            self.conn.stream.write_all(&framed)
        } else {
            self.conn.stream.write_all(data)
        };
        if result.is_err() {
            self.response = ResponseState::Broken;
        }
        result
    }

    /// Ends a streamed response.
    pub fn finish(&mut self) -> io::Result<()> {
        match self.response {
            ResponseState::Streaming(BodyKind::Chunked) => {
                let result = self.conn.stream.write_all(codec::LAST_CHUNK);
                self.response = if result.is_ok() { ResponseState::Done } else { ResponseState::Broken };
                result
            }
            ResponseState::Streaming(_) => {
                self.close_after = true;
                self.response = ResponseState::Done;
                Ok(())
            }
            ResponseState::Done => Ok(()),
            _ => Err(io::Error::other("no stream started")),
        }
    }

    /// Asks for the connection to be closed after this exchange.
    pub fn close_after(&mut self) {
        self.close_after = true;
    }
}

fn is_framing_header(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "keep-alive"].iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// `io::Read` over the request body (see `Exchange::body_reader`).
pub struct BodyReader<'e, 'c> {
    exchange: &'e mut Exchange<'c>,
}

impl Read for BodyReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.exchange.read_body(out).map_err(|e| {
            if !matches!(e, BodyError::Io(_)) {
                self.exchange.body_failed = Some(e.to_api_error());
            }
            io::Error::from(e)
        })
    }
}
