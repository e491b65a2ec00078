use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::client::{self, read_response};
use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

fn status_of(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn malformed_requests_each_get_their_4xx_and_a_call_id() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_MAX_BODY_BYTES", "1000".into())],
        ..Opts::default()
    });
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n".to_vec(), 400, "malformed_request"),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n".to_vec(), 400, "malformed_request"),
        (format!("GET / HTTP/1.1\r\nx-big: {}\r\n\r\n", "a".repeat(40_000)).into_bytes(), 431, "headers_too_large"),
        (format!("GET / HTTP/1.1\r\n{many}\r\n").into_bytes(), 431, "headers_too_large"),
        (format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(10_000)).into_bytes(), 414, "uri_too_long"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec(), 413, "request_too_large"),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n"
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'a', 2000))
                .chain(*b"\r\n0\r\n\r\n")
                .collect(),
            413,
            "request_too_large",
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            400,
            "malformed_request",
        ),
    ];
    for (raw, status, code) in cases {
        let response = client::raw(gw.addr, &raw);
        assert_eq!(
            status_of(&response),
            status,
            "{:?} → {response}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        );
        assert!(response.contains(&format!("\"code\":\"{code}\"")), "{response}");
        assert!(response.contains("x-prodex-call-id: prodex-"), "{response}");
    }
    let r = gw.get("/readyz");
    assert_eq!(r.status, 200, "the process survived every malformed request");
    assert_eq!(mock.count(), 0);
}

#[test]
fn slow_headers_get_408() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        policy: Some("[gateway]\nheader_timeout_seconds = 1\n"),
        ..Opts::default()
    });
    let mut s = client::connect(gw.addr);
    s.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n").unwrap();
    let start = Instant::now();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert_eq!(status_of(&out), 408, "{out}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn thirty_headers_chunked_bodies_keep_alive_and_pipelining() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let headers: Vec<(String, String)> = (0..30).map(|i| (format!("x-extra-{i}"), format!("v{i}"))).collect();
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = gw.post_json("/v1/chat/completions", &refs, &json!({"model": "gpt-4o-mini", "messages": []}));
    assert_eq!(r.status, 200);
    assert_eq!(mock.requests()[0].header("x-extra-29"), Some("v29"));

    // chunked request body, then a pipelined second request on the same connection
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "chunked"}]}).to_string();
    let (a, b) = body.split_at(10);
    let mut raw = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n", a.len(), b.len()).into_bytes();
    raw.extend_from_slice(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut s = client::connect(gw.addr);
    s.write_all(&raw).unwrap();
    let (first, _) = read_response(&mut s, false).unwrap();
    let (second, _) = read_response(&mut s, false).unwrap();
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(second.json()["object"], "list");
    assert_eq!(mock.requests()[1].json()["messages"][0]["content"], "chunked");
    // Connection: close is honoured
    s.write_all(b"GET /livez HTTP/1.1\r\nconnection: close\r\n\r\n").unwrap();
    let (third, _) = read_response(&mut s, false).unwrap();
    assert_eq!(third.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "the server closed the connection");
}

#[test]
fn expect_100_continue_is_answered() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let body = json!({"model": "gpt-4o-mini", "messages": []}).to_string();
    let mut s = client::connect(gw.addr);
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (interim, _) = read_response(&mut s, true).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(body.as_bytes()).unwrap();
    let (r, _) = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn a_thousand_concurrent_calls_to_a_slow_upstream_do_not_queue() {
    // With plain blocking sockets, 2 workers would serve 10 calls/s and this would take ~100 s.
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let addr = gw.addr;
    let start = Instant::now();
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let body = json!({"model": "gpt-4o-mini", "messages": []}).to_string();
                    client::request(
                        addr,
                        "POST",
                        "/v1/chat/completions",
                        &[("x-mock-delay-ms", "200")],
                        body.as_bytes(),
                    )
                    .status
                })
                .unwrap()
        })
        .collect();
    let ok = handles.into_iter().map(|h| h.join().unwrap()).filter(|s| *s == 200).count();
    let took = start.elapsed();
    assert_eq!(ok, 1000);
    assert!(took < Duration::from_secs(10), "1000 × 200 ms calls took {took:?}: the workers are blocking");
    eprintln!("1000 concurrent calls to a 200 ms upstream took {took:?}");
}
