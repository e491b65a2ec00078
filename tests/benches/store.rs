//! Storage benchmark: `cargo bench --bench store -- [--rows N]`.
//!
//! 1. The admission round trip of one call — reserve, then settle with its ledger row — from 32
//!    threads at once, per backend (redb always; Postgres and Redis when PRODEX_TEST_POSTGRES_URL /
//!    PRODEX_TEST_REDIS_URL point at servers).
//! 2. The ledger on redb with N rows (default 1,000,000): one key's one-day summary, a JSON page,
//!    and a full scan (the work a CSV export does per row, minus CSV encoding).
//! 3. The admin plane over HTTP on that ledger (the release `prodex` binary started on it): a JSON
//!    page of 100 rows, and `ledger.csv` exported in full (rows/s, MB/s).
//! 4. `metrics` rendering with 1,000 keys × 3 models in the registry (what one scrape costs).
//!
//! Prints a markdown table.

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::Instant;

use prodex::core::admission::Ask;
use prodex::core::keys::Limits;
use prodex::core::ledger::{Dimension, LedgerQuery, LedgerRow};
use prodex::store::postgres::PgStore;
use prodex::store::redb::RedbStore;
use prodex::store::redis::RedisStore;
use prodex::store::{Finished, Reservation, Settlement, Store};

const CALLS: usize = 20_000;
const THREADS: usize = 32;

fn row(i: u64, at: u64, key: &str) -> LedgerRow {
    LedgerRow {
        call_id: format!("bench-{i:012}"),
        created_at: at,
        key_name: key.into(),
        tenant_id: Some("tenant-a".into()),
        model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        route: "chat.completions".into(),
        status: 200,
        input_tokens: 11,
        output_tokens: 7,
        usage_source: "provider".into(),
        cost_microusd: Some(6),
        ..LedgerRow::default()
    }
}

/// Calls per second of reserve + finish(settle, row) from `THREADS` threads; `run` keeps call ids
/// of separate runs apart.
fn admission_rate(store: Arc<dyn Store>, wait_durable: bool, run: usize) -> f64 {
    let limits = Limits {
        budget_microusd: Some(u64::MAX / 4),
        rpm_limit: Some(u64::MAX / 4),
        tpm_limit: Some(u64::MAX / 4),
        ..Limits::default()
    };
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, limits) = (Arc::clone(&store), limits.clone());
            std::thread::spawn(move || {
                for n in 0..CALLS / THREADS {
                    let run = run;
                    let i = (run * THREADS * CALLS + t * CALLS + n) as u64;
                    let now = prodex::clock::unix_ms();
                    let r = Reservation {
                        call_id: format!("bench-{i:012}"),
                        scope: format!("key:bench-{}", t % 8),
                        limits: limits.clone(),
                        ask: Ask { cost_microusd: 10_000, tokens: 100 },
                        at: now,
                    };
                    assert!(store.reserve(&r).unwrap().is_ok());
                    let finished = Finished {
                        reservation: Some(r),
                        settlement: Settlement::Used { cost_microusd: 6, tokens: 18 },
                        row: row(i, now, "bench"),
                        wait_durable,
                        now,
                    };
                    store.finish(&finished).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    store.flush().unwrap();
    (CALLS / THREADS * THREADS) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("prodex-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    println!("| store | reserve + settle + ledger row, 32 threads | calls/s |");
    println!("|---|---|---|");
    let redb: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.join("admission.redb")).unwrap());
    println!(
        "| redb | durability commit (each call waits for its group commit) | {:.0} |",
        admission_rate(Arc::clone(&redb), true, 0)
    );
    println!("| redb | durability async | {:.0} |", admission_rate(redb, false, 1));
    if let Ok(url) = std::env::var("PRODEX_TEST_POSTGRES_URL") {
        let db = format!("prodex_bench_{}", std::process::id());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        let pg: Arc<dyn Store> =
            Arc::new(PgStore::open(&format!("{}/{db}", url.rsplit_once('/').unwrap().0), 16).unwrap());
        println!("| postgres | every call committed | {:.0} |", admission_rate(pg, true, 0));
    } else {
        println!("| postgres | not measured: PRODEX_TEST_POSTGRES_URL unset | - |");
    }
    if let Ok(url) = std::env::var("PRODEX_TEST_REDIS_URL") {
        let url = format!("{}63", url.trim_end_matches('/').to_string() + "/");
        let mut con = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
        redis::cmd("FLUSHDB").exec(&mut con).unwrap();
        let store: Arc<dyn Store> = Arc::new(RedisStore::open(&url, 16).unwrap());
        println!("| redis | every call acknowledged | {:.0} |", admission_rate(store, true, 0));
    } else {
        println!("| redis | not measured: PRODEX_TEST_REDIS_URL unset | - |");
    }

    // Ledger on redb: rows spread over 30 days, 100 keys.
    let ledger = RedbStore::open(&dir.join("ledger.redb")).unwrap();
    let day = 86_400_000u64;
    let t0 = 1_800_000_000_000u64;
    let seed_start = Instant::now();
    for i in 0..rows {
        let at = t0 + i * (30 * day / rows.max(1));
        let key = format!("key-{:03}", i % 100);
        let f = Finished {
            reservation: None,
            settlement: Settlement::Released,
            row: row(i, at, &key),
            wait_durable: false,
            now: at,
        };
        ledger.finish(&f).unwrap();
    }
    ledger.flush().unwrap();
    let seeded = seed_start.elapsed();
    let q = LedgerQuery {
        key: Some("key-042".into()),
        from: Some(t0 + 10 * day),
        to: Some(t0 + 11 * day),
        ..LedgerQuery::default()
    };
    let start = Instant::now();
    let (_, totals) = ledger.ledger_summary(&q, &[Dimension::Model, Dimension::Hour]).unwrap();
    let summary = start.elapsed();
    let start = Instant::now();
    let page = ledger.ledger_page(&LedgerQuery::default(), None, 100).unwrap();
    let first_page = start.elapsed();
    let start = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    ledger
        .ledger_scan(&LedgerQuery::default(), &mut |r| {
            n += 1;
            bytes += r.call_id.len() + r.key_name.len();
            true
        })
        .unwrap();
    let scan = start.elapsed();
    std::hint::black_box(bytes);
    println!();
    println!("| ledger on redb, {rows} rows | result |");
    println!("|---|---|");
    println!("| seeding through the store (async group commit) | {:.0} rows/s |", rows as f64 / seeded.as_secs_f64());
    println!(
        "| one key, one day, grouped by model and hour ({} rows) | {:.1} ms |",
        totals.requests,
        summary.as_secs_f64() * 1000.0
    );
    println!(
        "| newest page of 100 (JSON API) | {:.2} ms ({} rows) |",
        first_page.as_secs_f64() * 1000.0,
        page.rows.len()
    );
    println!("| full scan, newest first (what a CSV export reads) | {:.0} rows/s |", n as f64 / scan.as_secs_f64());
    drop(ledger);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::rename(dir.join("ledger.redb"), home.join("gateway-state.redb")).unwrap();
    admin_over_http(&home, rows);
    metrics_render();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the release binary on `home` and measures the ledger routes over HTTP.
fn admin_over_http(home: &std::path::Path, rows: u64) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_prodex"))
        .env_clear()
        .env("PRODEX_HOME", home)
        .env("PRODEX_GATEWAY_TOKEN", "bench-admin")
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("gateway exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let get = |path: &str| -> Vec<u8> {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nhost: b\r\nauthorization: Bearer bench-admin\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    };
    let mut page_ms: Vec<f64> = (0..20)
        .map(|_| {
            let start = Instant::now();
            let body = get("/v1/prodex/gateway/ledger?limit=100");
            assert!(body.starts_with(b"HTTP/1.1 200"));
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    page_ms.sort_by(f64::total_cmp);
    let start = Instant::now();
    let csv = get("/v1/prodex/gateway/ledger.csv");
    let export = start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    println!();
    println!("| admin API over HTTP, {rows} rows on redb | result |");
    println!("|---|---|");
    println!("| `GET ledger?limit=100` (median of 20) | {:.2} ms |", page_ms[page_ms.len() / 2]);
    println!(
        "| `GET ledger.csv`, every row streamed ({:.0} MB chunked) | {:.0} rows/s, {:.0} MB/s |",
        csv.len() as f64 / 1e6,
        rows as f64 / export,
        csv.len() as f64 / 1e6 / export
    );
}

/// One scrape's rendering cost with 1,000 keys × 3 models.
fn metrics_render() {
    use prodex::core::metrics::{render, Process, Registry, Sample, View};
    let mut reg = Registry::new();
    let models = ["gpt-4o-mini", "gpt-4o", "gemini-2.5-flash"];
    for k in 0..1000u64 {
        let key = format!("key-{k:04}");
        let tenant = format!("tenant-{}", k % 10);
        for (i, m) in models.iter().enumerate() {
            reg.observe(&Sample {
                at: 1_800_000_000_000,
                tenant: Some(&tenant),
                key: &key,
                route: "chat.completions",
                provider: Some("openai"),
                model: Some(m),
                status: 200,
                error_code: None,
                rejected: false,
                input_tokens: 100,
                cached_input_tokens: 0,
                cache_write_input_tokens: 0,
                output_tokens: 20,
                reasoning_tokens: 0,
                cost_microusd: Some(42),
                latency_us: 1_000 * (i as u64 + 1),
                overhead_us: 80,
                ttfb_us: Some(500),
            });
        }
        reg.set_budget_remaining(Some(&tenant), &key, Some(1_000_000));
    }
    let process = Process { version: "bench", backend: "redb", in_flight: 0, state_errors: 0 };
    let views = [
        ("unscoped", View { tenant: None, prefixes: &[], per_key_labels: true, max_label_keys: 1000 }),
        (
            "one tenant (100 keys)",
            View { tenant: Some("tenant-3"), prefixes: &[], per_key_labels: true, max_label_keys: 1000 },
        ),
    ];
    println!();
    println!("| `metrics` render, 1,000 keys × 3 models | time per scrape | size |");
    println!("|---|---|---|");
    for (label, view) in &views {
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                let start = Instant::now();
                let text = render(&reg, &process, view, 1_800_000_000_000);
                std::hint::black_box(&text);
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let size = render(&reg, &process, view, 1_800_000_000_000).len();
        println!("| {label} | {:.2} ms (median of 20) | {:.0} KB |", times[10], size as f64 / 1e3);
    }
}
