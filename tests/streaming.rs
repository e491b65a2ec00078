use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::client::{self, read_response};
use crate::support::mock::Mock;
use crate::support::Gateway;

fn stream_request(
    gw: &Gateway,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> (client::Response, Vec<(Instant, Vec<u8>)>) {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    let mut s = client::connect(gw.addr);
    s.write_all(&client::build("POST", "/v1/chat/completions", &h, body.to_string().as_bytes())).unwrap();
    read_response(&mut s, false).unwrap()
}

fn data_lines(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body).lines().filter_map(|l| l.strip_prefix("data: ")).map(String::from).collect()
}

#[test]
fn events_arrive_spaced_as_the_upstream_sent_them() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": []});
    let (r, chunks) = stream_request(&gw, &[("x-mock-chunks", "5"), ("x-mock-interval-ms", "300")], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.header("x-prodex-call-id").is_some());
    let content: Vec<&(Instant, Vec<u8>)> =
        chunks.iter().filter(|(_, d)| String::from_utf8_lossy(d).contains("tok")).collect();
    assert_eq!(content.len(), 5, "one chunk per event");
    for pair in content.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= Duration::from_millis(200), "events were buffered: gap {gap:?}");
    }
    let total = content[4].0 - content[0].0;
    assert!(total >= Duration::from_millis(1000), "{total:?}");
}

#[test]
fn usage_is_injected_upstream_and_hidden_unless_asked() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let plain = json!({"model": "gpt-4o-mini", "stream": true, "messages": []});
    let (r, _) = stream_request(&gw, &[], &plain);
    let lines = data_lines(&r.body);
    assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
    assert!(!r.text().contains("usage"), "the client did not ask for usage: {}", r.text());
    assert_eq!(lines.len(), 5, "3 content chunks, the stop chunk, [DONE]: {lines:?}");
    assert_eq!(mock.requests()[0].json()["stream_options"]["include_usage"], true, "upstream was asked for usage");

    let asked =
        json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": []});
    let (r, _) = stream_request(&gw, &[], &asked);
    let lines = data_lines(&r.body);
    let usage: serde_json::Value = serde_json::from_str(&lines[lines.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 7, "the client asked and got the usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(mock.requests()[1].json(), asked, "a body that already asks is forwarded unchanged");
    // Both access lines, each with the provider's usage (the log writer flushes every 20 ms).
    let line = "stream=true status=200 error=- input_tokens=11 cached_input_tokens=3 cache_write_input_tokens=0 output_tokens=7";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.stderr_text().matches(line).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", gw.stderr_text());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(gw.stderr_text().matches(line).count(), 2);
}

#[test]
fn responses_stream_is_relayed_and_metered() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let mut s = client::connect(gw.addr);
    let body = json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}).to_string();
    s.write_all(&client::build("POST", "/v1/responses", &[("content-type", "application/json")], body.as_bytes()))
        .unwrap();
    let (r, _) = read_response(&mut s, false).unwrap();
    assert!(r.text().contains("event: response.completed"), "{}", r.text());
    gw.wait_for_log("route=responses model=gpt-4o-mini provider=openai stream=true status=200 error=- input_tokens=11");
}

#[test]
fn client_disconnect_closes_the_upstream_and_bills_partial() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let mut s = client::connect(gw.addr);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": []}).to_string();
    let req = client::build(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-chunks", "200"), ("x-mock-interval-ms", "20")],
        body.as_bytes(),
    );
    s.write_all(&req).unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    let log = gw.wait_for_log("client_disconnected=true");
    assert!(log.contains("usage_source=partial"), "{log}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.closed_early.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the upstream connection was not closed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn upstream_reset_mid_stream_truncates_the_client_stream() {
    let mock = Mock::start();
    let gw = Gateway::in_front_of(&mock);
    let mut s = client::connect(gw.addr);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": []}).to_string();
    s.write_all(&client::build(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-fault", "reset-mid-stream")],
        body.as_bytes(),
    ))
    .unwrap();
    let err = read_response(&mut s, false).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "a cut stream must not look complete");
    gw.wait_for_log("error=upstream_stream_broken");
}
