//! ureq's socket layer on may: a `Connector` that opens `may::net::TcpStream`s and a `Transport`
//! over them, so an upstream call parks the coroutine instead of pinning a worker thread
//! (runtime.md §3: plain ureq on std sockets served 10 req/s on 2 workers; this, ~2,700).
//!
//! Invariants: every read and write applies the timeout ureq hands us; `is_open` never blocks.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use may::net::TcpStream;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
};
use ureq::{Error, Timeout};

/// Opens TCP connections on may sockets (the first link of the connector chain that opens a socket).
#[derive(Debug, Default)]
pub struct MayTcpConnector;

impl<In: Transport> Connector<In> for MayTcpConnector {
    type Out = Either<In, MayTcpTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, Error> {
        if chained.is_some() {
            // An earlier connector (the CONNECT proxy) already produced the transport.
            return Ok(chained.map(Either::A));
        }
        let timeout = details.timeout.not_zero().map_or(Duration::from_secs(30), |d| *d);
        let mut last: Option<io::Error> = None;
        for addr in details.addrs.iter() {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    // may sockets are non-blocking already; make sure, once, so `is_open` can peek.
                    let _ = stream.inner().set_nonblocking(true);
                    let buffers =
                        LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
                    let transport = MayTcpTransport {
                        stream,
                        buffers,
                        peer: *addr,
                        read_timeout: None,
                        write_timeout: None,
                        pending: Vec::new(),
                        write_reason: Timeout::SendRequest,
                    };
                    return Ok(Some(Either::B(transport)));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Error::Timeout(Timeout::Connect)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(Error::ConnectionFailed, Error::Io))
    }
}

/// A may TCP socket with ureq's buffers.
pub struct MayTcpTransport {
    stream: TcpStream,
    buffers: LazyBuffers,
    peer: SocketAddr,
    /// Timeouts last applied: setting one is a setsockopt, so it is done only when it changes.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Output handed over by ureq but not yet written (see `transmit_output`).
    pending: Vec<u8>,
    write_reason: Timeout,
}

/// Output is written once this much is pending, even before the response is awaited.
const COALESCE_BYTES: usize = 64 * 1024;

impl MayTcpTransport {
    fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.pending).map_err(|e| io_error(e, self.write_reason));
        self.pending.clear();
        result
    }
}

impl fmt::Debug for MayTcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MayTcpTransport").field("peer", &self.peer).finish()
    }
}

fn io_error(e: io::Error, reason: Timeout) -> Error {
    if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        Error::Timeout(reason)
    } else {
        Error::Io(e)
    }
}

impl Transport for MayTcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        let wanted = timeout.not_zero().map(|d| *d);
        if wanted != self.write_timeout {
            let _ = self.stream.set_write_timeout(wanted);
            self.write_timeout = wanted;
        }
        // Coalesce: the request head and a small body leave in one segment, when the response is
        // awaited (or once enough is pending), instead of one write per piece ureq hands us.
        self.pending.extend_from_slice(&self.buffers.output()[..amount]);
        self.write_reason = timeout.reason;
        if self.pending.len() >= COALESCE_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.flush()?;
        let timeout = timeout.for_read();
        let wanted = timeout.not_zero().map(|d| *d);
        if wanted != self.read_timeout {
            let _ = self.stream.set_read_timeout(wanted);
            self.read_timeout = wanted;
        }
        let input = self.buffers.input_append_buf();
        let n = self.stream.read(input).map_err(|e| io_error(e, timeout.reason))?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // A pooled connection is reusable only if the peer has not closed it: a non-blocking peek
        // must report "nothing to read yet" (WouldBlock). EOF or stray bytes mean discard it.
        let mut probe = [0u8; 1];
        matches!(self.stream.inner().peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}
