//! The storage conformance suite: the same checks against every backend (`store::Store`). Each
//! backend gets a fresh store per test; Postgres and Redis join when their backends exist.

use std::sync::Arc;

use prodex::core::admission::{Ask, Refusal};
use prodex::core::keys::{KeyRecord, Limits};
use prodex::core::ledger::{summarize, Dimension, LedgerQuery, LedgerRow, StatusFilter};
use prodex::store::postgres::PgStore;
use prodex::store::redb::RedbStore;
use prodex::store::redis::RedisStore;
use prodex::store::{Finished, KeyFilter, Reservation, Settlement, Store, StoreError};

use crate::support::TempDir;

/// A fresh store of each backend under test (the temp dir lives as long as the store is used).
/// Every backend the conformance suite runs on: redb, Postgres, Redis, and Postgres and Redis
/// once more over verified TLS (the servers `scripts/test.sh` starts with a test CA).
pub(crate) fn backends() -> Vec<(Arc<dyn Store>, TempDir)> {
    let dir = TempDir::new("redb");
    let store = RedbStore::open(&dir.0.join("state.redb")).unwrap();
    let pg = PgStore::open(&fresh_postgres_db(), 8).unwrap();
    let redis = RedisStore::open(&fresh_redis_db(), 8).unwrap();
    let pg_tls = PgStore::open(&fresh_postgres_tls_db(), 8).unwrap();
    let redis_tls = RedisStore::open_with_root(&fresh_redis_tls_db(), 8, Some(tls_file("ca.pem"))).unwrap();
    vec![
        (Arc::new(store), dir),
        (Arc::new(pg), TempDir::new("pg")),
        (Arc::new(redis), TempDir::new("redis")),
        (Arc::new(pg_tls), TempDir::new("pg-tls")),
        (Arc::new(redis_tls), TempDir::new("redis-tls")),
    ]
}

/// A file of the test TLS material `scripts/test.sh` generated (`scripts/test-certs.sh`).
pub(crate) fn tls_file(name: &str) -> Vec<u8> {
    std::fs::read(tls_path(name)).unwrap()
}

pub(crate) fn tls_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("PRODEX_TEST_TLS_DIR")
        .expect("PRODEX_TEST_TLS_DIR is not set: run the suite through scripts/test.sh, which generates a test CA");
    std::path::Path::new(&dir).join(name)
}

/// A new database on the Postgres with TLS; its URL (verify-full against the test CA).
fn fresh_postgres_tls_db() -> String {
    let base = std::env::var("PRODEX_TEST_POSTGRES_TLS_URL")
        .expect("PRODEX_TEST_POSTGRES_TLS_URL is not set: run the suite through scripts/test.sh");
    let (url, query) = base.split_once('?').unwrap();
    let name =
        format!("prodex_tls_{}_{}", std::process::id(), TLS_DBS.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("{}/{name}?{query}", url.rsplit_once('/').unwrap().0)
}

static TLS_DBS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An empty numbered database on the Redis with TLS; its `rediss://` URL.
fn fresh_redis_tls_db() -> String {
    let base = std::env::var("PRODEX_TEST_REDIS_TLS_URL")
        .expect("PRODEX_TEST_REDIS_TLS_URL is not set: run the suite through scripts/test.sh");
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let db = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert!(db < 64, "more redis databases needed than the server has");
    let url = format!("{}/{db}", base.trim_end_matches('/'));
    let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(tls_file("ca.pem")) };
    let mut con = redis::Client::build_with_tls(url.as_str(), certs).unwrap().get_connection().unwrap();
    redis::cmd("FLUSHDB").exec(&mut con).unwrap();
    url
}

/// An empty logical database on the throwaway Redis `scripts/test.sh` started; its URL. Tests run
/// in parallel, so each gets its own of the server's numbered databases (flushed first).
pub(crate) fn fresh_redis_db() -> String {
    let base = std::env::var("PRODEX_TEST_REDIS_URL").expect(
        "PRODEX_TEST_REDIS_URL is not set: run the suite through scripts/test.sh, which starts a throwaway Redis",
    );
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let db = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert!(db < 64, "more redis databases needed than the server has (raise --databases)");
    let url = format!("{}{db}", base.trim_end_matches('/').to_string() + "/");
    let mut con = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    redis::cmd("FLUSHDB").exec(&mut con).unwrap();
    url
}

/// A new, empty database on the throwaway server `scripts/test.sh` started; its URL.
pub(crate) fn fresh_postgres_db() -> String {
    let base = std::env::var("PRODEX_TEST_POSTGRES_URL")
        .expect("PRODEX_TEST_POSTGRES_URL is not set: run the suite through scripts/test.sh, which starts a throwaway PostgreSQL");
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!("prodex_t_{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

fn key(name: &str, hash_byte: u8) -> KeyRecord {
    KeyRecord {
        id: format!("id-{name}"),
        name: name.into(),
        token_hash: [hash_byte; 32],
        token_hint: "pk-…abcd".into(),
        tenant_id: Some(if name.starts_with("a-") { "tenant-a" } else { "tenant-b" }.into()),
        version: 1,
        created_at: 1,
        updated_at: 1,
        ..KeyRecord::default()
    }
}

fn row(call_id: &str, at: u64, key: &str, status: u16, cost: Option<u64>) -> LedgerRow {
    LedgerRow {
        call_id: call_id.into(),
        created_at: at,
        key_name: key.into(),
        tenant_id: Some(if key.starts_with("a-") { "tenant-a" } else { "tenant-b" }.into()),
        model: Some(if at % 2 == 0 { "gpt-4o-mini" } else { "gpt-4o" }.into()),
        provider: Some("openai".into()),
        route: "chat.completions".into(),
        status,
        error_code: (status >= 400).then(|| "budget_exceeded".to_string()),
        input_tokens: at % 7,
        output_tokens: at % 5,
        usage_source: "provider".into(),
        cost_microusd: cost,
        ..LedgerRow::default()
    }
}

fn record(store: &dyn Store, r: LedgerRow) {
    store
        .finish(&Finished { reservation: None, settlement: Settlement::Released, row: r, wait_durable: true, now: 0 })
        .unwrap();
}

#[test]
fn keys_are_unique_versioned_and_fed_as_changes() {
    for (store, _dir) in backends() {
        let s = store.as_ref();
        let start = s.key_changes(0).unwrap().seq;
        s.create_key(&key("a-ci", 1)).unwrap();
        s.create_key(&key("b-web", 2)).unwrap();
        assert!(matches!(s.create_key(&key("A-CI", 3)), Err(StoreError::Conflict(_))), "names are case-insensitive");
        assert!(matches!(s.create_key(&key("other", 1)), Err(StoreError::Conflict(_))), "tokens are unique");
        assert_eq!(s.key("A-Ci").unwrap().unwrap().name, "a-ci");
        assert_eq!(s.key_by_hash(&[2; 32]).unwrap().unwrap().name, "b-web");
        assert_eq!(s.key_by_hash(&[9; 32]).unwrap(), None);

        let mut updated = key("a-ci", 4);
        updated.version = 2;
        updated.disabled = true;
        assert_eq!(s.update_key(&updated, 5), Err(StoreError::VersionMismatch { current: 1 }));
        s.update_key(&updated, 1).unwrap();
        assert_eq!(s.key_by_hash(&[1; 32]).unwrap(), None, "the old token stops working at once");
        assert!(s.key_by_hash(&[4; 32]).unwrap().unwrap().disabled);

        let listed = s.keys(&KeyFilter { prefixes: vec!["a-".into()], ..KeyFilter::default() }, None, 10).unwrap();
        assert_eq!(listed.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["a-ci"]);
        let page1 = s.keys(&KeyFilter::default(), None, 1).unwrap();
        let page2 = s.keys(&KeyFilter::default(), Some(&page1[0].name.to_ascii_lowercase()), 10).unwrap();
        assert_eq!((page1[0].name.as_str(), page2.len(), page2[0].name.as_str()), ("a-ci", 1, "b-web"));
        let tenant_b = KeyFilter { tenant_id: Some("tenant-b".into()), disabled: Some(false), ..KeyFilter::default() };
        assert_eq!(s.keys(&tenant_b, None, 10).unwrap().len(), 1);

        let changes = s.key_changes(start).unwrap();
        assert!(changes.seq > start);
        assert_eq!(changes.upserted.len(), 2);
        assert_eq!(s.delete_key("B-WEB", Some(7)), Err(StoreError::VersionMismatch { current: 1 }));
        assert_eq!(s.delete_key("B-WEB", Some(1)).unwrap().name, "b-web");
        assert_eq!(s.delete_key("b-web", None), Err(StoreError::NotFound));
        let later = s.key_changes(changes.seq).unwrap();
        assert_eq!(later.deleted, ["b-web"]);
        assert!(later.upserted.is_empty());
        assert_eq!(s.key_changes(later.seq).unwrap().deleted.len(), 0);
    }
}

#[test]
fn concurrent_reservations_never_overrun_a_budget() {
    for (store, _dir) in backends() {
        let limits = Limits { budget_microusd: Some(10_000), ..Limits::default() };
        let now = 1_800_000_000_000;
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let store = Arc::clone(&store);
                let limits = limits.clone();
                std::thread::spawn(move || {
                    let r = Reservation {
                        call_id: format!("c{i}"),
                        scope: "budget:shared".into(),
                        limits,
                        ask: Ask { cost_microusd: 1_000, tokens: 10 },
                        at: now,
                    };
                    store.reserve(&r).unwrap().is_ok()
                })
            })
            .collect();
        let admitted = handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
        assert_eq!(admitted, 10, "{}: 200 racing calls, budget for 10", store.backend());
        let c = store.counters("budget:shared", &limits, now).unwrap();
        assert_eq!((c.reserved_microusd, c.in_flight, c.requests), (10_000, 10, 10));
    }
}

/// RPM at a second boundary, with calls reaching the store out of order (two nodes, two workers):
/// a call stamped in second N after one stamped N+1 must still see that one (the hostile tester
/// got 36/30 on Postgres and 31/30 on Redis). Same result on every backend.
#[test]
fn rate_windows_hold_when_calls_arrive_out_of_order() {
    for (store, _dir) in backends() {
        let limits = Limits { rpm_limit: Some(3), ..Limits::default() };
        let base: u64 = 1_800_000_060_000;
        // Stamps straddling a second boundary, deliberately out of order.
        let stamps = [base + 999, base + 1_001, base + 500, base + 1_200, base + 10, base + 1_999];
        let admitted: Vec<bool> = stamps
            .iter()
            .enumerate()
            .map(|(i, at)| {
                let r = Reservation {
                    call_id: format!("w{i}"),
                    scope: "key:window".into(),
                    limits: limits.clone(),
                    ask: Ask { cost_microusd: 0, tokens: 1 },
                    at: *at,
                };
                store.reserve(&r).unwrap().is_ok()
            })
            .collect();
        assert_eq!(admitted.iter().filter(|ok| **ok).count(), 3, "{}: {admitted:?}", store.backend());
        assert_eq!(admitted, [true, true, true, false, false, false], "{}", store.backend());
    }
}

#[test]
fn settle_release_and_retried_finish_count_once() {
    for (store, dir) in backends() {
        let s = store.as_ref();
        let limits = Limits { budget_microusd: Some(1_000), request_budget: Some(100), ..Limits::default() };
        let now = 1_800_000_000_000;
        let reserve = |id: &str| Reservation {
            call_id: id.into(),
            scope: "key:k".into(),
            limits: limits.clone(),
            ask: Ask { cost_microusd: 400, tokens: 0 },
            at: now,
        };
        assert!(s.reserve(&reserve("c1")).unwrap().is_ok());
        assert!(s.reserve(&reserve("c2")).unwrap().is_ok());
        assert_eq!(s.reserve(&reserve("c3")).unwrap(), Err(Refusal::SpendBudget));
        let settled = Finished {
            reservation: Some(reserve("c1")),
            settlement: Settlement::Used { cost_microusd: 150, tokens: 20 },
            row: row("c1", now, "k", 200, Some(150)),
            wait_durable: true,
            now,
        };
        s.finish(&settled).unwrap();
        s.finish(&settled).unwrap();
        s.finish(&Finished {
            reservation: Some(reserve("c2")),
            settlement: Settlement::Released,
            row: row("c2", now + 1, "k", 502, None),
            wait_durable: true,
            now,
        })
        .unwrap();
        let c = s.counters("key:k", &limits, now).unwrap();
        assert_eq!((c.spend_microusd, c.reserved_microusd, c.in_flight, c.requests), (150, 0, 0, 1));
        let page = s.ledger_page(&LedgerQuery::default(), None, 10).unwrap();
        assert_eq!(page.rows.len(), 2, "one row per call id");
        if s.backend() == "redb" {
            // Durable: a fresh process sees the settled spend and the rows.
            drop(store);
            let reopened = RedbStore::open(&dir.0.join("state.redb")).unwrap();
            let c = reopened.counters("key:k", &limits, now).unwrap();
            assert_eq!((c.spend_microusd, c.requests, c.reserved_microusd), (150, 1, 0));
            assert_eq!(reopened.ledger_page(&LedgerQuery::default(), None, 10).unwrap().rows.len(), 2);
        }
    }
}

#[test]
fn ledger_paging_filters_summaries_and_retention() {
    for (store, _dir) in backends() {
        let s = store.as_ref();
        let mut all = Vec::new();
        for i in 0..1_500u64 {
            let key = ["a-ci", "a-web", "b-x"][(i % 3) as usize];
            let status = if i % 10 == 0 { 429 } else { 200 };
            let r = row(&format!("call-{i:05}"), 1_000_000 + i * 1_000, key, status, (status == 200).then_some(i));
            all.push(r.clone());
            s.finish(&Finished {
                reservation: None,
                settlement: Settlement::Released,
                row: r,
                wait_durable: i == 1_499,
                now: 0,
            })
            .unwrap();
        }
        // Cursor paging: every matching row exactly once, newest first.
        let q =
            LedgerQuery { key_prefix: Some("a-".into()), status: StatusFilter::parse("2xx"), ..LedgerQuery::default() };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s.ledger_page(&q, after.as_ref(), 97).unwrap();
            seen.extend(page.rows.iter().map(|r| r.call_id.clone()));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut expected: Vec<String> = all.iter().filter(|r| q.matches(r)).map(|r| r.call_id.clone()).collect();
        expected.reverse();
        assert_eq!(seen, expected);
        // An exact key over a time window uses the key index and agrees with the filter.
        let q = LedgerQuery {
            key: Some("b-x".into()),
            from: Some(1_100_000),
            to: Some(1_400_000),
            ..LedgerQuery::default()
        };
        let page = s.ledger_page(&q, None, 1_000).unwrap();
        assert_eq!(page.rows.len(), all.iter().filter(|r| q.matches(r)).count());
        assert!(page.rows.iter().all(|r| r.key_name == "b-x" && (1_100_000..1_400_000).contains(&r.created_at)));
        // Summaries equal a brute-force fold over the rows.
        for dims in [vec![], vec![Dimension::Key], vec![Dimension::Tenant, Dimension::Model, Dimension::Hour]] {
            let q = LedgerQuery { tenant_scope: Some("tenant-a".into()), ..LedgerQuery::default() };
            let got = s.ledger_summary(&q, &dims).unwrap();
            let want = summarize(all.iter().filter(|r| q.matches(r)), &dims);
            assert_eq!(got, want, "{dims:?}");
        }
        let mut n = 0;
        s.ledger_scan(&LedgerQuery::default(), &mut |_| {
            n += 1;
            n < 10
        })
        .unwrap();
        assert_eq!(n, 10, "a scan stops when asked");
        // Retention drops old rows in bulk and nothing else.
        let dropped = s.drop_ledger_before(1_000_000 + 500 * 1_000).unwrap();
        assert_eq!(dropped, 500);
        let left = s.ledger_summary(&LedgerQuery::default(), &[]).unwrap().1;
        assert_eq!(left.requests, 1_000);
        // The tenant index lost the dropped rows too (tenant-a holds 2 of every 3 rows).
        let q = LedgerQuery { tenant_scope: Some("tenant-a".into()), ..LedgerQuery::default() };
        let want = all.iter().filter(|r| r.created_at >= 1_500_000 && q.matches(r)).count();
        assert_eq!(s.ledger_summary(&q, &[]).unwrap().1.requests, want as u64, "{}", s.backend());
        record(s, row("late", 5, "a-ci", 200, Some(1)));
        assert_eq!(s.ledger_summary(&LedgerQuery::default(), &[]).unwrap().1.requests, 1_001);
    }
}

#[test]
fn a_redb_file_from_before_the_tenant_indexes_is_indexed_at_open() {
    use prodex::core::directory::{AuditEntry, AuditQuery};
    let dir = TempDir::new("redb-backfill");
    let path = dir.0.join("state.redb");
    {
        let s = RedbStore::open(&path).unwrap();
        for i in 0..40u64 {
            record(&s, row(&format!("c{i}"), 1_000 + i, if i % 4 == 0 { "b-x" } else { "a-ci" }, 200, Some(1)));
        }
        s.audit_append(&AuditEntry {
            id: "e1".into(),
            at: 5,
            tenant_id: Some("tenant-a".into()),
            ..AuditEntry::default()
        })
        .unwrap();
    }
    {
        // Make it an old file: no tenant index tables, no marker.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for t in ["ledger_by_tenant", "audit_by_tenant", "meta"] {
            let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(t);
            let _ = txn.delete_table(def);
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new(t);
            let _ = txn.delete_table(def);
        }
        txn.commit().unwrap();
    }
    let s = RedbStore::open(&path).unwrap();
    let q = LedgerQuery { tenant_scope: Some("tenant-a".into()), ..LedgerQuery::default() };
    assert_eq!(s.ledger_summary(&q, &[]).unwrap().1.requests, 30);
    let q = LedgerQuery { tenant_id: Some("tenant-b".into()), ..LedgerQuery::default() };
    assert_eq!(s.ledger_summary(&q, &[]).unwrap().1.requests, 10);
    let audit = s.audit_list(&AuditQuery { tenant_scope: Some("tenant-a".into()), limit: 10, ..AuditQuery::default() });
    assert_eq!(audit.unwrap().len(), 1);
}

/// Tenant-scoped reads are served by the tenant indexes even from a cached generic plan (the
/// plan a prepared statement settles on), where `$1 IS NULL OR tenant_id = $1` could not be.
#[test]
fn postgres_tenant_reads_use_the_tenant_indexes_with_a_generic_plan() {
    use prodex::store::postgres::sql::{audit_sql, ledger_sql};
    let url = fresh_postgres_db();
    let store = PgStore::open(&url, 2).unwrap();
    record(&store, row("c1", 1_000, "a-ci", 200, Some(1))); // creates the month's partition
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off").unwrap();
    let (ledger, _) = ledger_sql(0, None, None, Some("tenant-a".into()));
    let (audit, _) = audit_sql(None, Some("tenant-a".into()));
    for (name, types, sql, args) in
        [("l", "(bigint, text)", ledger, "(0, 'tenant-a')"), ("a", "(text)", audit, "('tenant-a')")]
    {
        c.batch_execute(&format!("PREPARE {name} {types} AS {sql}")).unwrap();
        let plan: Vec<String> =
            c.query(&format!("EXPLAIN EXECUTE {name}{args}"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
        let plan = plan.join("\n");
        assert!(
            plan.lines().any(|l| l.contains("Index Cond") && l.contains("tenant_id = $")),
            "{name}: the tenant index is used:\n{plan}"
        );
    }
}

/// Claiming an idempotency key is atomic on every backend: of 16 concurrent first attempts,
/// exactly one claims it.
#[test]
fn concurrent_idempotency_claims_have_one_winner() {
    use prodex::core::directory::IdempotencyRecord;
    for (store, _dir) in backends() {
        for round in 0..5 {
            let key = format!("admin:race-{round}");
            let barrier = Arc::new(std::sync::Barrier::new(16));
            let wins: usize = (0..16)
                .map(|i| {
                    let (store, barrier, key) = (Arc::clone(&store), Arc::clone(&barrier), key.clone());
                    std::thread::spawn(move || {
                        let now = 1_800_000_000_000;
                        let claim = IdempotencyRecord {
                            key,
                            fingerprint: format!("f{i}"),
                            status: 0,
                            body: String::new(),
                            expires_at: now + 60_000,
                        };
                        barrier.wait();
                        usize::from(store.idempotency_put(&claim, now).unwrap())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum();
            assert_eq!(wins, 1, "{} round {round}", store.backend());
        }
    }
}

#[test]
fn a_second_process_cannot_open_the_same_redb_file() {
    let dir = TempDir::new("redb-lock");
    let path = dir.0.join("state.redb");
    let _first = RedbStore::open(&path).unwrap();
    let err = RedbStore::open(&path).err().unwrap().to_string();
    assert!(err.contains(&path.display().to_string()) && err.contains(&format!("pid {}", std::process::id())), "{err}");
}

#[test]
fn two_postgres_store_instances_race_for_one_budget() {
    // Two independent stores (as two gateway nodes would have) on one database.
    let url = fresh_postgres_db();
    let a: Arc<dyn Store> = Arc::new(PgStore::open(&url, 8).unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::open(&url, 8).unwrap());
    let limits = Limits { budget_microusd: Some(25_000), ..Limits::default() };
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let limits = limits.clone();
            std::thread::spawn(move || {
                let r = Reservation {
                    call_id: format!("x{i}"),
                    scope: "budget:shared".into(),
                    limits,
                    ask: Ask { cost_microusd: 1_000, tokens: 0 },
                    at: 1,
                };
                store.reserve(&r).unwrap().is_ok()
            })
        })
        .collect();
    let admitted = handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(admitted, 25);
}

#[test]
fn two_redis_store_instances_race_for_one_budget() {
    let url = fresh_redis_db();
    let a: Arc<dyn Store> = Arc::new(RedisStore::open(&url, 8).unwrap());
    let b: Arc<dyn Store> = Arc::new(RedisStore::open(&url, 8).unwrap());
    let limits = Limits { budget_microusd: Some(25_000), ..Limits::default() };
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let limits = limits.clone();
            std::thread::spawn(move || {
                let r = Reservation {
                    call_id: format!("x{i}"),
                    scope: "budget:shared".into(),
                    limits,
                    ask: Ask { cost_microusd: 1_000, tokens: 0 },
                    at: 1,
                };
                store.reserve(&r).unwrap().is_ok()
            })
        })
        .collect();
    let admitted = handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(admitted, 25);
}

#[test]
fn scim_users_idempotency_records_and_audit_entries() {
    use prodex::core::directory::{AuditEntry, AuditQuery, IdempotencyRecord, ScimUser};
    for (store, _dir) in backends() {
        let s = store.as_ref();
        let user = |id: &str, name: &str, tenant: &str| ScimUser {
            id: id.into(),
            user_name: name.into(),
            active: true,
            role: Some("viewer".into()),
            tenant_id: Some(tenant.into()),
            key_prefixes: vec!["team-a-".into()],
            version: 1,
            ..ScimUser::default()
        };
        s.scim_create(&user("u1", "Alice@Example.com", "tenant-a")).unwrap();
        s.scim_create(&user("u2", "bob@example.com", "tenant-b")).unwrap();
        s.scim_create(&user("u3", "carol@example.com", "tenant-a")).unwrap();
        assert!(
            matches!(s.scim_create(&user("u9", "alice@example.com", "tenant-a")), Err(StoreError::Conflict(_))),
            "{}",
            s.backend()
        );
        // Names are unique per tenant: another tenant's alice is another user, not a conflict.
        s.scim_create(&user("u4", "ALICE@example.com", "tenant-x")).unwrap();
        let ids = |name: &str| -> Vec<String> {
            let mut v: Vec<String> = s.scim_by_user_name(name).unwrap().into_iter().map(|u| u.id).collect();
            v.sort();
            v
        };
        assert_eq!(ids("alice@EXAMPLE.com"), ["u1", "u4"], "{}", s.backend());
        // Moving a user to a tenant where its name is taken conflicts, and changes nothing.
        let mut moved = user("u4", "alice@example.com", "tenant-a");
        moved.version = 2;
        assert!(matches!(s.scim_replace(&moved, 1), Err(StoreError::Conflict(_))), "{}", s.backend());
        moved.tenant_id = Some("tenant-y".into());
        s.scim_replace(&moved, 1).unwrap();
        assert_eq!(ids("alice@example.com"), ["u1", "u4"]);
        s.scim_create(&user("u5", "alice@example.com", "tenant-x")).unwrap();
        assert_eq!(ids("alice@example.com"), ["u1", "u4", "u5"], "the move freed tenant-x's name");
        s.scim_delete("u4").unwrap();
        s.scim_delete("u5").unwrap();
        assert_eq!(ids("ALICE@example.com"), ["u1"]);
        assert_eq!(s.scim_get("u2").unwrap().unwrap().user_name, "bob@example.com");
        let (page, total) = s.scim_list(Some("tenant-a"), 1, 1).unwrap();
        assert_eq!((page.len(), total, page[0].id.as_str()), (1, 2, "u1"));
        let (page, total) = s.scim_list(None, 2, 10).unwrap();
        assert_eq!((page.len(), total), (2, 3));
        let mut changed = user("u1", "alice2@example.com", "tenant-a");
        changed.active = false;
        changed.version = 2;
        assert_eq!(s.scim_replace(&changed, 7), Err(StoreError::VersionMismatch { current: 1 }));
        s.scim_replace(&changed, 1).unwrap();
        assert!(s.scim_by_user_name("alice@example.com").unwrap().is_empty(), "renames free the old name");
        assert!(!s.scim_by_user_name("alice2@example.com").unwrap()[0].active);
        s.scim_delete("u2").unwrap();
        assert_eq!(s.scim_delete("u2"), Err(StoreError::NotFound));
        assert!(s.scim_by_user_name("bob@example.com").unwrap().is_empty());

        let rec = |fp: &str, expires| IdempotencyRecord {
            key: "admin:k1".into(),
            fingerprint: fp.into(),
            status: 201,
            body: "{}".into(),
            expires_at: expires,
        };
        assert!(s.idempotency_put(&rec("a", 1_000), 10).unwrap());
        assert!(!s.idempotency_put(&rec("b", 1_000), 10).unwrap(), "the first record wins while it lives");
        assert_eq!(s.idempotency_get("admin:k1", 10).unwrap().unwrap().fingerprint, "a");
        assert_eq!(s.idempotency_get("admin:k1", 1_000).unwrap(), None, "expired");
        assert_eq!(s.idempotency_get("admin:other", 10).unwrap(), None);
        // A claim (pending record) is replaced by its reply, or released so a retry can run.
        let now = 1_700_000_000_000u64
            .max(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64);
        let claim = IdempotencyRecord { key: "admin:claim".into(), status: 0, expires_at: now + 60_000, ..rec("c", 0) };
        assert!(s.idempotency_put(&claim, now).unwrap());
        assert!(!s.idempotency_put(&claim, now).unwrap(), "a concurrent claim loses");
        s.idempotency_finish(&IdempotencyRecord {
            status: 201,
            body: "{\"ok\":1}".into(),
            expires_at: now + 86_400_000,
            ..claim.clone()
        })
        .unwrap();
        let done = s.idempotency_get("admin:claim", now).unwrap().unwrap();
        assert_eq!((done.status, done.body.as_str()), (201, "{\"ok\":1}"), "{}", s.backend());
        let other = IdempotencyRecord { key: "admin:claim2".into(), ..claim.clone() };
        assert!(s.idempotency_put(&other, now).unwrap());
        s.idempotency_release("admin:claim2").unwrap();
        assert_eq!(s.idempotency_get("admin:claim2", now).unwrap(), None);
        assert!(s.idempotency_put(&other, now).unwrap(), "released: the retry claims it");

        for i in 0..30u64 {
            let tenant = if i % 3 == 0 { "tenant-b" } else { "tenant-a" };
            s.audit_append(&AuditEntry {
                id: format!("a{i:03}"),
                at: 1_000 + i,
                actor: "root".into(),
                tenant_id: Some(tenant.into()),
                action: "key.create".into(),
                target: Some(format!("team-{}-{i}", &tenant[7..])),
                outcome: "ok".into(),
                ..AuditEntry::default()
            })
            .unwrap();
        }
        let q = AuditQuery { tenant_scope: Some("tenant-a".into()), limit: 7, ..AuditQuery::default() };
        let first = s.audit_list(&q).unwrap();
        assert_eq!(first.len(), 7);
        assert_eq!(first[0].id, "a029", "newest first");
        assert!(first.iter().all(|e| e.tenant_id.as_deref() == Some("tenant-a")));
        let last = first.last().unwrap();
        let next =
            s.audit_list(&AuditQuery { after: Some((last.at, last.id.clone())), limit: 100, ..q.clone() }).unwrap();
        assert_eq!(first.len() + next.len(), 20);
        assert!(next.iter().all(|e| e.at < last.at));
        let by_prefix = s
            .audit_list(&AuditQuery { prefix_scope: vec!["team-b-".into()], limit: 100, ..AuditQuery::default() })
            .unwrap();
        assert_eq!(by_prefix.len(), 10);
        // Retention drops old entries, with their tenant index entries.
        assert_eq!(s.drop_audit_before(1_010).unwrap(), 10, "{}", s.backend());
        let left = s.audit_list(&AuditQuery { limit: 100, ..AuditQuery::default() }).unwrap();
        assert_eq!((left.len(), left.last().map(|e| e.at)), (20, Some(1_010)));
        let a =
            s.audit_list(&AuditQuery { tenant_scope: Some("tenant-a".into()), limit: 100, ..AuditQuery::default() });
        assert_eq!(a.unwrap().len(), 14, "tenant-a keeps its 14 entries from 1010 on");
    }
}

#[test]
fn reservations_of_a_crashed_node_expire_on_shared_backends() {
    // On redb, reservations live in the process and vanish with it; on Postgres and Redis another
    // node releases them once they are an hour old.
    for (store, _dir) in backends().into_iter().filter(|(s, _)| s.backend() != "redb") {
        let limits = Limits { max_parallel_requests: Some(1), ..Limits::default() };
        let r = |id: &str, at| Reservation {
            call_id: id.into(),
            scope: "key:crashy".into(),
            limits: limits.clone(),
            ask: Ask { cost_microusd: 5, tokens: 1 },
            at,
        };
        assert!(store.reserve(&r("lost", 16)).unwrap().is_ok());
        assert_eq!(store.reserve(&r("blocked", 32)).unwrap(), Err(Refusal::Parallel), "{}", store.backend());
        let later = 2 * 3_600_000 + 16;
        assert!(
            store.reserve(&r("after", later)).unwrap().is_ok(),
            "{}: the abandoned reservation expired",
            store.backend()
        );
        let c = store.counters("key:crashy", &limits, later).unwrap();
        assert_eq!((c.in_flight, c.reserved_microusd), (1, 5));
    }
}

/// `ledger.durability = "async"`: nobody waits for the row and nothing wakes the redb writer for
/// it, yet it lands within the writer's window on its own; a later awaited write (a key create)
/// commits at once and carries every async row queued before it.
#[test]
fn async_rows_commit_on_their_own_and_ride_along_with_awaited_writes() {
    let dir = TempDir::new("store-async");
    let store = RedbStore::open(&dir.0.join("state.redb")).unwrap();
    let now = 1_800_000_000_000;
    let finish = |id: &str, at: u64| Finished {
        reservation: None,
        settlement: Settlement::Released,
        row: row(id, at, "k", 200, None),
        wait_durable: false,
        now,
    };
    store.finish(&finish("a1", now)).unwrap();
    let visible = || store.ledger_page(&LedgerQuery::default(), None, 10).unwrap().rows.len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while visible() < 1 {
        assert!(std::time::Instant::now() < deadline, "an async row was never committed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for i in 0..50 {
        store.finish(&finish(&format!("b{i}"), now + 1 + i)).unwrap();
    }
    store.create_key(&key("after-async", 7)).unwrap();
    let all = store.ledger_page(&LedgerQuery::default(), None, 100).unwrap().rows.len();
    assert_eq!(all, 51, "the awaited commit carried every async row queued before it");
}
