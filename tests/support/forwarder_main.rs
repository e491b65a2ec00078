//! `prodex-bench-forwarder`: the cheapest HTTP/1.1 proxy we can write, used by `scripts/bench` to
//! measure the ceiling any proxy reaches on the bench machine. One OS thread per client
//! connection with its own blocking upstream connection; it copies each request (head plus a
//! `Content-Length` body) upstream byte for byte and the response back, parsing nothing but the
//! framing: no auth, no JSON, no ledger, no event loop, no allocation per call. Whatever ratio it
//! reaches against direct-to-mock is the most a proxy on these cores can reach.
//!
//! `prodex-bench-forwarder --listen ADDR --upstream HOST:PORT`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let upstream = arg(&args, "--upstream").expect("--upstream HOST:PORT");
    let listener = TcpListener::bind(&listen).expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        std::thread::spawn(move || {
            let Ok(server) = TcpStream::connect(&upstream) else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = relay(client, server);
        });
    }
}

/// Forwards exchanges until either side closes.
fn relay(mut client: TcpStream, mut server: TcpStream) -> std::io::Result<()> {
    let mut request = Message::default();
    let mut response = Message::default();
    loop {
        if !request.read_from(&mut client)? {
            return Ok(());
        }
        server.write_all(request.bytes())?;
        if !response.read_from(&mut server)? {
            return Ok(());
        }
        client.write_all(response.bytes())?;
    }
}

/// One message's bytes (head and `Content-Length` body), in a buffer reused across messages;
/// bytes read past the message's end (a pipelined next one) are kept for the next read.
#[derive(Default)]
struct Message {
    buf: Vec<u8>,
    len: usize,
    filled: usize,
}

impl Message {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Reads the next message; false on a clean close before its first byte.
    fn read_from(&mut self, from: &mut TcpStream) -> std::io::Result<bool> {
        self.buf.copy_within(self.len..self.filled, 0);
        self.filled -= self.len;
        self.len = 0;
        if self.buf.len() < 64 * 1024 {
            self.buf.resize(64 * 1024, 0);
        }
        loop {
            if let Some(end) = message_end(&self.buf[..self.filled]) {
                if self.filled >= end {
                    self.len = end;
                    return Ok(true);
                }
                if self.buf.len() < end {
                    self.buf.resize(end, 0);
                }
            }
            let n = from.read(&mut self.buf[self.filled..])?;
            if n == 0 {
                return if self.filled == 0 { Ok(false) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
            }
            self.filled += n;
        }
    }
}

/// Where the message starting at `data[0]` ends, once its head is complete.
fn message_end(data: &[u8]) -> Option<usize> {
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&data[..head_end]).ok()?;
    let body = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some(head_end + body)
}
