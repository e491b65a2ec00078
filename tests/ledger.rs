//! Ledger queries over HTTP against thousands of rows seeded through the store trait: every filter
//! agrees with `LedgerQuery::matches`, cursor paging visits each row once in order, summary totals
//! equal the sum of the matching rows, CSV exports parse with a real CSV parser (hostile cells
//! included), and metrics restored at startup count the stored rows.

use std::collections::BTreeSet;

use prodex::core::ledger::{LedgerQuery, LedgerRow, StatusFilter};
use prodex::store::redb::RedbStore;
use prodex::store::{Finished, Settlement, Store};

use crate::support::admin::{column, get, parse_csv};
use crate::support::{Gateway, Opts, TempDir};

const MASTER: &str = "master-secret-ledger";
const ROWS: u64 = 3_000;
/// 2026-11-01T00:00:00Z.
const T0: u64 = 1_793_491_200_000;

fn row(i: u64) -> LedgerRow {
    let keys = ["team-a-ci", "team-a-ops", "team-b-ci", "-evil"];
    let key = keys[(i % 4) as usize];
    let status = [200u16, 200, 429, 502, 200][(i % 5) as usize];
    LedgerRow {
        call_id: format!("prodex-seed-{i:06}"),
        created_at: T0 + i * 60_000,
        key_name: key.into(),
        tenant_id: Some(if key.starts_with("team-b") { "tenant-b" } else { "tenant-a" }.into()),
        provider: Some(if i % 3 == 0 { "openai" } else { "gemini" }.into()),
        route: "chat.completions".into(),
        model: Some(if i % 7 == 0 { "=HYPERLINK(\"http://x\",\"a,b\")" } else { "gpt-4o-mini" }.into()),
        status,
        error_code: match status {
            429 => Some("rpm_limit_exceeded".into()),
            502 => Some("upstream_unreachable".into()),
            _ => None,
        },
        input_tokens: i % 100,
        output_tokens: i % 10,
        cost_microusd: Some(i * 3),
        usage_source: "provider".into(),
        ..LedgerRow::default()
    }
}

fn seeded_gateway() -> (Gateway, Vec<LedgerRow>) {
    let home = TempDir::new("ledger");
    let rows: Vec<LedgerRow> = (0..ROWS).map(row).collect();
    {
        let store = RedbStore::open(&home.0.join("gateway-state.redb")).unwrap();
        for r in &rows {
            let f = Finished {
                reservation: None,
                settlement: Settlement::Released,
                row: r.clone(),
                wait_durable: false,
                now: r.created_at,
            };
            store.finish(&f).unwrap();
        }
        store.flush().unwrap();
    }
    let gw = Gateway::start(Opts {
        home: Some(home),
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into())],
        ..Opts::default()
    });
    (gw, rows)
}

fn matching<'a>(rows: &'a [LedgerRow], q: &LedgerQuery) -> Vec<&'a LedgerRow> {
    let mut out: Vec<&LedgerRow> = rows.iter().filter(|r| q.matches(r)).collect();
    out.sort_by(|a, b| (b.created_at, &b.call_id).cmp(&(a.created_at, &a.call_id)));
    out
}

/// Every row of `path` (a ledger query string) through cursor paging.
fn all_pages(gw: &Gateway, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("ledger?{query}{sep}limit={limit}&cursor={c}"),
            None => format!("ledger?{query}{sep}limit={limit}"),
        };
        let page = get(gw, MASTER, &path).json();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        ids.extend(data.iter().map(|r| r["call_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

#[test]
fn filters_paging_summaries_and_csv_agree_with_the_rows() {
    let (gw, rows) = seeded_gateway();
    let from = T0 + 500 * 60_000;
    let to = T0 + 2_500 * 60_000;
    let cases: Vec<(String, LedgerQuery)> = vec![
        (String::new(), LedgerQuery::default()),
        ("key=team-a-ci".into(), LedgerQuery { key: Some("team-a-ci".into()), ..LedgerQuery::default() }),
        ("key_prefix=team-a-".into(), LedgerQuery { key_prefix: Some("team-a-".into()), ..LedgerQuery::default() }),
        ("tenant_id=tenant-b".into(), LedgerQuery { tenant_id: Some("tenant-b".into()), ..LedgerQuery::default() }),
        (
            "provider=openai&status=4xx".into(),
            LedgerQuery {
                provider: Some("openai".into()),
                status: StatusFilter::parse("4xx"),
                ..LedgerQuery::default()
            },
        ),
        (
            "status=502&model=gpt-4o-mini".into(),
            LedgerQuery {
                status: StatusFilter::parse("502"),
                model: Some("gpt-4o-mini".into()),
                ..LedgerQuery::default()
            },
        ),
        (
            format!("from={}&to=2026-11-02T17:40:00Z", from / 1000),
            LedgerQuery { from: Some(from), to: Some(to), ..LedgerQuery::default() },
        ),
    ];
    for (query, q) in &cases {
        let want: Vec<String> = matching(&rows, q).iter().map(|r| r.call_id.clone()).collect();
        assert!(!want.is_empty(), "case {query} selects something");
        let got = all_pages(&gw, query, 700);
        assert_eq!(got.len(), want.len(), "row count for {query:?}");
        assert_eq!(got, want, "rows and their order for {query:?}");
        assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), got.len(), "no row twice");

        let summary = get(&gw, MASTER, &format!("ledger/summary?{query}&group_by=key,model,day")).json();
        let totals = &summary["totals"];
        let m = matching(&rows, q);
        assert_eq!(totals["requests"].as_u64().unwrap(), m.len() as u64, "{query}");
        assert_eq!(totals["cost_microusd"].as_u64().unwrap(), m.iter().map(|r| r.cost_microusd.unwrap()).sum::<u64>());
        assert_eq!(totals["input_tokens"].as_u64().unwrap(), m.iter().map(|r| r.input_tokens).sum::<u64>());
        let bucket_sum: u64 = summary["data"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum();
        assert_eq!(bucket_sum, m.len() as u64, "buckets add up to the totals");
        let succeeded = m.iter().filter(|r| r.status == 200).count() as u64;
        assert_eq!(totals["succeeded"].as_u64().unwrap(), succeeded);

        let csv = parse_csv(&get(&gw, MASTER, &format!("ledger.csv?{query}")));
        assert_eq!(column(&csv, "call_id"), want, "CSV rows for {query:?}");
    }
}

#[test]
fn csv_cells_are_rfc4180_and_guarded() {
    let (gw, rows) = seeded_gateway();
    let csv = parse_csv(&get(&gw, MASTER, "ledger.csv?key=-evil"));
    let keys = column(&csv, "key_name");
    assert_eq!(keys.len(), rows.iter().filter(|r| r.key_name == "-evil").count());
    assert!(keys.iter().all(|k| k == "'-evil"), "formula-like cells get a leading quote");
    let models: BTreeSet<String> = column(&csv, "model").into_iter().collect();
    assert!(models.contains("'=HYPERLINK(\"http://x\",\"a,b\")"), "{models:?}");
    assert!(models.contains("gpt-4o-mini"));
    let summary = parse_csv(&get(&gw, MASTER, "ledger/summary.csv?group_by=model"));
    let requests: u64 = column(&summary, "requests")
        .iter()
        .zip(column(&summary, "is_total"))
        .filter(|(_, t)| t == "false")
        .map(|(r, _)| r.parse::<u64>().unwrap())
        .sum();
    assert_eq!(requests, ROWS);
    // Bad parameters are 400s naming the parameter.
    for (path, param) in [
        ("ledger?status=6xx", "status"),
        ("ledger?from=yesterday", "from"),
        ("ledger?limit=0", "limit"),
        ("ledger?cursor=zzz", "cursor"),
        ("ledger?tenant=a", "tenant"),
        ("ledger/summary?group_by=colour", "group_by"),
    ] {
        let r = get(&gw, MASTER, path);
        assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some(param)), "{path}");
    }
}

#[test]
fn metrics_are_restored_from_the_stored_ledger() {
    let (gw, rows) = seeded_gateway();
    let want = rows.iter().filter(|r| r.key_name == "team-b-ci").count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = get(&gw, MASTER, "metrics").text();
        let got: f64 = text
            .lines()
            .filter(|l| l.starts_with("prodex_gateway_virtual_key_requests_total{") && l.contains("key=\"team-b-ci\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if got as usize == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "metrics never restored ({got} of {want}):\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
