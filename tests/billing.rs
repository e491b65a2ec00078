//! Billing integrity under hostile input (the hostile tester's issue): the reservation bounds
//! what a call can cost, streamed usage cannot be hidden, malformed usage is never billed as 0.
//! The mock bills like the real API (`n` × output).

use std::io::Write as _;

use serde_json::{json, Value};

use crate::support::admin::call;
use crate::support::client::Response;
use crate::support::mock::Mock;
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-token-billing-0123456789";

fn gateway(mock: &Mock) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into())],
        ..Opts::default()
    })
}

/// A key with a spend budget; its token once it has loaded.
fn budgeted_key(gw: &Gateway, name: &str, budget_usd: f64) -> String {
    crate::support::admin::create_key(gw, MASTER, &json!({"name": name, "budget_usd": budget_usd}))
}

fn post(gw: &Gateway, token: &str, path: &str, body: &Value, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {token}");
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(extra);
    gw.post_json(path, &h, body)
}

/// The ledger row of the call that answered `r`.
fn row_of(gw: &Gateway, r: &Response) -> Value {
    crate::support::admin::row_of(gw, MASTER, r)
}

fn u(row: &Value, field: &str) -> u64 {
    row[field].as_u64().unwrap_or_else(|| panic!("{field} in {row}"))
}

/// `n` is in the worst case: a call billed for 128 choices was reserved for 128 choices.
#[test]
fn the_reservation_counts_every_choice() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let key = budgeted_key(&gw, "n-key", 1.0);
    let body = json!({"model": "gpt-4o-mini", "n": 128, "max_completion_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, &key, "/v1/chat/completions", &body, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let row = row_of(&gw, &r);
    assert_eq!(u(&row, "output_tokens"), 7 * 128, "the mock bills every choice");
    assert!(u(&row, "reserved_microusd") >= u(&row, "cost_microusd"), "the reservation bounds the call: {row}");
    // 128 × 10 output tokens at $0.60/M is $0.000768 on its own.
    assert!(u(&row, "reserved_microusd") >= 768, "{row}");
    for bad in [json!(0), json!(129), json!("2")] {
        let body = json!({"model": "gpt-4o-mini", "n": bad, "messages": []});
        let r = post(&gw, &key, "/v1/chat/completions", &body, &[]);
        assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("n")), "{}", r.text());
    }
}

/// A parameter of another route bounds nothing: `max_output_tokens` on a chat call is ignored, so
/// the reservation is the model's full output.
#[test]
fn only_the_routes_own_output_bound_shrinks_the_reservation() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let key = budgeted_key(&gw, "bound-key", 1.0);
    let chat = |extra: Value| {
        let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        row_of(&gw, &post(&gw, &key, "/v1/chat/completions", &body, &[]))
    };
    let foreign = chat(json!({"max_output_tokens": 1}));
    let unbounded = chat(json!({}));
    let bounded = chat(json!({"max_completion_tokens": 1}));
    // Equal but for the few bytes the extra parameter adds to the input estimate.
    assert!(
        u(&foreign, "reserved_microusd").abs_diff(u(&unbounded, "reserved_microusd")) < 10,
        "{foreign}\n{unbounded}"
    );
    assert!(u(&bounded, "reserved_microusd") < u(&unbounded, "reserved_microusd") / 100, "{bounded}");
}

/// Stored context the gateway cannot see is reserved at the configured worst case.
#[test]
fn stored_context_is_reserved_at_its_configured_worst_case() {
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into())],
        policy: Some("[gateway]\nstored_context_input_tokens = 50000\n"),
        ..Opts::default()
    });
    let key = budgeted_key(&gw, "ctx-key", 1.0);
    let plain = json!({"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 10});
    let mut chained = plain.clone();
    chained["previous_response_id"] = json!("resp_earlier");
    let plain = row_of(&gw, &post(&gw, &key, "/v1/responses", &plain, &[]));
    let chained = row_of(&gw, &post(&gw, &key, "/v1/responses", &chained, &[]));
    // 50,000 input tokens at $0.15/M = 7,500 µUSD more (and a few for the longer body).
    let more = u(&chained, "reserved_microusd") - u(&plain, "reserved_microusd");
    assert!((7_500..7_510).contains(&more), "{plain}\n{chained}");
}

/// Malformed or absurd provider usage is an upstream error billed at the reservation.
#[test]
fn malformed_usage_is_billed_at_the_reservation() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let key = budgeted_key(&gw, "usage-key", 5.0);
    for usage in [
        r#"{"prompt_tokens": -5, "completion_tokens": 1}"#,
        r#"{"prompt_tokens": 1, "completion_tokens": 2.5}"#,
        r#"{"prompt_tokens": "12", "completion_tokens": 1}"#,
        r#"{"prompt_tokens": 1, "completion_tokens": 18446744073709551615}"#,
        r#"{"prompt_tokens": 1, "completion_tokens": 1e300}"#,
    ] {
        let body = json!({"model": "gpt-4o-mini", "max_completion_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
        let r = post(&gw, &key, "/v1/chat/completions", &body, &[("x-mock-usage-json", usage)]);
        assert_eq!(r.status, 200, "{}", r.text());
        let row = row_of(&gw, &r);
        assert_eq!(row["usage_source"], "reserved", "{usage}: {row}");
        assert_eq!(row["error_code"], "upstream_invalid_usage", "{row}");
        assert!(u(&row, "cost_microusd") > 0 && u(&row, "cost_microusd") == u(&row, "reserved_microusd"), "{row}");
        assert_eq!(
            r.header("x-prodex-cost-usd").unwrap(),
            format!("{:.6}", u(&row, "cost_microusd") as f64 / 1e6),
            "the header says what is billed"
        );
    }
}

/// `"stream_options": null` does not switch metering off; a body too deep to rewrite is refused.
#[test]
fn streamed_usage_cannot_be_hidden_by_the_client() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let key = budgeted_key(&gw, "stream-key", 5.0);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": null, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, &key, "/v1/chat/completions", &body, &[]);
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("\"usage\""), "the client did not ask for usage: {}", r.text());
    assert_eq!(mock.requests().last().unwrap().json()["stream_options"], json!({"include_usage": true}));
    let row = row_of(&gw, &r);
    assert_eq!((row["usage_source"].as_str(), u(&row, "output_tokens")), (Some("provider"), 7), "{row}");

    let mut deep = json!("x");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": deep}]});
    let before = mock.count();
    let r = post(&gw, &key, "/v1/chat/completions", &body, &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(mock.count(), before, "never forwarded unmetered");
}

/// Mounts a tmpfs of `bytes` at a new directory (root only: the suite runs as root in CI and says
/// so loudly otherwise); unmounted on drop.
struct SmallDisk(crate::support::TempDir);

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the disk-full test mounts a tmpfs and must run as root (CI does)");
        let dir = crate::support::TempDir::new("small-disk");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(&dir.0)
            .output()
            .expect("mount(8) is needed for the disk-full test");
        assert!(out.status.success(), "cannot mount a tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk(dir)
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.0 .0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0 .0).status();
    }
}

/// A full disk stops admission (503, `/readyz` 503) instead of letting calls through unbilled;
/// every 200 has its row; the store recovers by itself once space is back.
#[test]
fn a_full_disk_stops_admission_and_recovers_without_a_restart() {
    let disk = SmallDisk::mount(4 << 20);
    let logs = crate::support::TempDir::new("disk-full-logs");
    let mock = Mock::start();
    let home = crate::support::TempDir(disk.0 .0.join("home"));
    std::fs::create_dir_all(&home.0).unwrap();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        home: Some(home),
        args: vec!["--log-dir", logs.0.to_str().unwrap()],
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into())],
        ..Opts::default()
    });
    let key = budgeted_key(&gw, "disk-key", 100.0);
    let filler = disk.fill();
    let body =
        json!({"model": "gpt-4o-mini", "max_completion_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let mut ok_ids = Vec::new();
    let mut refused = 0;
    for _ in 0..3000 {
        let r = post(&gw, &key, "/v1/chat/completions", &body, &[]);
        match r.status {
            200 => ok_ids.push(r.header("x-prodex-call-id").unwrap().to_string()),
            503 => {
                assert_eq!(r.code(), "state_unavailable", "{}", r.text());
                refused += 1;
                if refused >= 5 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(refused >= 5, "the disk never filled up ({} calls passed)", ok_ids.len());
    let ready = gw.get("/readyz");
    assert_eq!((ready.status, ready.json()["status"].as_str()), (503, Some("state_unavailable")), "{}", ready.text());
    gw.wait_for_log("state file write failed");

    std::fs::remove_file(filler).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = post(&gw, &key, "/v1/chat/completions", &body, &[]);
        if r.status == 200 {
            ok_ids.push(r.header("x-prodex-call-id").unwrap().to_string());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never recovered: {} {}", r.status, r.text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    gw.wait_ready();
    // Every call that got a 200 has exactly its row.
    let page = call(&gw, MASTER, "GET", "ledger?limit=1000&key=disk-key", None, &[]);
    let rows: std::collections::BTreeSet<String> =
        page.json()["data"].as_array().unwrap().iter().map(|r| r["call_id"].as_str().unwrap().to_string()).collect();
    for id in &ok_ids {
        assert!(rows.contains(id), "a 200 without its ledger row: {id}");
    }
    gw.wait_for_log("state file writes succeed again");
}

/// Postgres stopped while calls are in flight: those calls are told (503 instead of their last
/// byte, `durability = "commit"`), their rows land once Postgres is back, exactly once; a hung
/// (SIGSTOPped) Postgres turns `/readyz` 503 within seconds.
#[test]
fn calls_in_flight_when_postgres_stops_are_told_and_recorded_later() {
    let mut pg = crate::support::servers::PgServer::start();
    let mock = Mock::start();
    let gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        env: vec![
            ("PRODEX_GATEWAY_TOKEN", MASTER.into()),
            ("PRODEX_GATEWAY_STATE_BACKEND", "postgres".into()),
            ("PRODEX_GATEWAY_POSTGRES_URL", pg.url()),
        ],
        ..Opts::default()
    });
    let key = budgeted_key(&gw, "pg-key", 10.0);
    let addr = gw.addr;
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let key = key.clone();
            std::thread::spawn(move || {
                let body = json!({"model": "gpt-4o-mini", "max_completion_tokens": 5, "messages": []}).to_string();
                let auth = format!("Bearer {key}");
                let h = [
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("x-mock-delay-ms", "1500"),
                ];
                crate::support::client::request(addr, "POST", "/v1/chat/completions", &h, body.as_bytes())
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while mock.count() < 3 {
        assert!(std::time::Instant::now() < deadline, "the slow calls never reached the upstream");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    pg.stop();
    let ids: Vec<String> = slow
        .into_iter()
        .map(|t| {
            let r = t.join().unwrap();
            assert_eq!(
                (r.status, r.code().as_str()),
                (503, "state_unavailable"),
                "no 200 without its row: {}",
                r.text()
            );
            r.header("x-prodex-call-id").unwrap().to_string()
        })
        .collect();
    pg.resume();
    let store = prodex::store::postgres::PgStore::open(&pg.url(), 2).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let rows = prodex::store::Store::ledger_page(&store, &prodex::core::ledger::LedgerQuery::default(), None, 1000)
            .unwrap()
            .rows;
        let landed = ids.iter().filter(|id| rows.iter().filter(|r| &r.call_id == *id).count() == 1).count();
        if landed == ids.len() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{landed} of {} rows landed after Postgres returned", ids.len());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    gw.wait_ready();
    pg.signal_all(libc::SIGSTOP);
    let t0 = std::time::Instant::now();
    while gw.get("/readyz").status != 503 {
        assert!(t0.elapsed() < std::time::Duration::from_secs(6), "a hung Postgres still looks ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    pg.signal_all(libc::SIGCONT);
    // Readiness follows recovery at once: the first call whose state operations succeed marks the
    // backend ready, without waiting for the next ping.
    let auth = format!("Bearer {key}");
    let body = json!({"model": "gpt-4o-mini", "max_completion_tokens": 5, "messages": []}).to_string();
    let t0 = std::time::Instant::now();
    loop {
        let h = [("authorization", auth.as_str()), ("content-type", "application/json")];
        if crate::support::client::request(addr, "POST", "/v1/chat/completions", &h, body.as_bytes()).status == 200 {
            break;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "calls never succeeded after SIGCONT");
    }
    assert_eq!(gw.get("/readyz").status, 200, "a call succeeded, so the backend is ready");
}

/// A stream whose events carry content only in shapes the estimate does not read (or `null`
/// lists) and no usage is still billed (at least its input), never released for free.
#[test]
fn a_stream_without_countable_content_or_usage_is_still_billed() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let key = budgeted_key(&gw, "uncounted-key", 5.0);
    let body = json!({"model": "gpt-4o-mini", "stream": true, "max_completion_tokens": 10, "messages": [{"role": "user", "content": "hi there"}]});
    let r = post(&gw, &key, "/v1/chat/completions", &body, &[("x-mock-usage", "none")]);
    assert_eq!(r.status, 200);
    let row = row_of(&gw, &r);
    assert_eq!(row["usage_source"], "estimated", "{row}");
    assert!(u(&row, "cost_microusd") > 0 && u(&row, "input_tokens") > 0, "{row}");
}

/// Completions with a list of prompts generate `n` completions per prompt: all are reserved.
#[test]
fn every_prompt_of_a_completions_batch_is_reserved() {
    let mock = Mock::start();
    let gw = gateway(&mock);
    let key = budgeted_key(&gw, "batch-key", 5.0);
    let one = json!({"model": "gpt-4o-mini", "prompt": "a", "max_tokens": 1000});
    let many = json!({"model": "gpt-4o-mini", "prompt": ["a", "b", "c", "d"], "max_tokens": 1000});
    let one = row_of(&gw, &post(&gw, &key, "/v1/completions", &one, &[]));
    let many = row_of(&gw, &post(&gw, &key, "/v1/completions", &many, &[]));
    // 1000 output tokens at $0.60/M = 600 µUSD per prompt.
    assert!(u(&many, "reserved_microusd") >= u(&one, "reserved_microusd") + 3 * 600, "{one}\n{many}");
    let r = post(
        &gw,
        &key,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o-mini", "max_completion_tokens": 100000.5, "max_tokens": 1, "messages": []}),
        &[],
    );
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("max_completion_tokens")), "{}", r.text());
}
