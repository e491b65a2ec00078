//! `prodex gateway state import | export | migrate`, including the seed gateway's JSON files.

use std::process::Command;

use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

use prodex::core::ledger::LedgerQuery;
use prodex::store::Store;

use crate::support::mock::Mock;
use crate::support::{bin, Gateway, Opts, TempDir};

fn state(home: &TempDir, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(bin())
        .args(["gateway", "state"])
        .args(args)
        .arg("--home")
        .arg(&home.0)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "state {args:?} failed: {text}");
    text
}

fn write_seed_files(dir: &std::path::Path) {
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"pk-seed-token"));
    let keys = json!({"version": 3, "keys": [{
        "name": "seed-team", "token_hash_base64": hash, "tenant_id": "tenant-s", "team_id": null, "project_id": null,
        "user_id": null, "budget_id": null, "allowed_models": ["gpt-4o-mini"], "budget_microusd": 5_000_000,
        "request_budget": null, "rpm_limit": 100, "tpm_limit": null, "disabled": false,
        "created_at_epoch": 1_790_000_000, "updated_at_epoch": 1_790_000_100
    }]});
    std::fs::write(dir.join("gateway-virtual-keys.json"), keys.to_string()).unwrap();
    std::fs::write(
        dir.join("gateway-virtual-key-usage.json"),
        json!({"seed-team": {"requests_total": 42, "spend_microusd": 1234}}).to_string(),
    )
    .unwrap();
    let rows: Vec<String> = (0..3)
        .map(|i| json!({"call_id": format!("seed-{i}"), "key_name": "seed-team", "tenant_id": "tenant-s", "model": "gpt-4o-mini",
            "input_tokens": 10, "output_tokens": 5, "response_status": 200, "final_cost_microusd": 7, "created_at_epoch": 1_790_000_000 + i}).to_string())
        .collect();
    std::fs::write(dir.join("gateway-billing-ledger.jsonl"), rows.join("\n") + "\n").unwrap();
}

#[test]
fn seed_json_state_imports_and_its_keys_keep_working() {
    let seed = TempDir::new("seed");
    write_seed_files(&seed.0);
    let home = TempDir::new("imported");
    let out = state(&home, &["import", "--from", seed.0.to_str().unwrap()], &[]);
    assert!(out.contains("keys: 1 copied") && out.contains("ledger rows: 3"), "{out}");
    let again = state(&home, &["import", "--from", seed.0.to_str().unwrap()], &[]);
    assert!(again.contains("keys: 0 copied, 1 already present"), "import is idempotent: {again}");

    let mock = Mock::start();
    let mut gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        args: vec!["--home", home.0.to_str().unwrap()],
        ..Opts::default()
    });
    let r = gw.post_json(
        "/v1/chat/completions",
        &[("authorization", "Bearer pk-seed-token")],
        &json!({"model": "gpt-4o-mini", "messages": []}),
    );
    assert_eq!(r.status, 200, "the seed key works after import: {}", r.text());
    let r = gw.post_json(
        "/v1/chat/completions",
        &[("authorization", "Bearer pk-seed-token")],
        &json!({"model": "gpt-4o", "messages": []}),
    );
    assert_eq!(r.status, 403, "and keeps its allowlist");
    gw.signal(libc::SIGTERM);
    gw.wait_exit(std::time::Duration::from_secs(10));

    let export = TempDir::new("export");
    state(&home, &["export", "--out", export.0.to_str().unwrap()], &[]);
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.0.join("gateway-virtual-keys.json")).unwrap()).unwrap();
    assert_eq!(keys["version"], 3);
    assert_eq!(keys["keys"][0]["name"], "seed-team");
    assert_eq!(
        keys["keys"][0]["token_hash_base64"],
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"pk-seed-token"))
    );
    let usage: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.0.join("gateway-virtual-key-usage.json")).unwrap())
            .unwrap();
    assert_eq!(usage["seed-team"]["requests_total"], 43, "42 imported + 1 call");
    assert_eq!(usage["seed-team"]["spend_microusd"], 1234 + 6);
    let ledger = std::fs::read_to_string(export.0.join("gateway-billing-ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 5, "3 imported rows + 2 calls");
    assert!(ledger.lines().all(|l| l.contains("\"response_status\"") && l.contains("\"created_at_epoch\"")));
    assert!(!ledger.contains("pk-seed-token"));

    // The export imports losslessly into a fresh home.
    let copy = TempDir::new("copy");
    let out = state(&copy, &["import", "--from", export.0.to_str().unwrap()], &[]);
    assert!(out.contains("keys: 1 copied") && out.contains("ledger rows: 5"), "{out}");
}

#[test]
fn migrate_copies_redb_state_to_postgres_and_redis() {
    let seed = TempDir::new("seed-m");
    write_seed_files(&seed.0);
    let home = TempDir::new("migrate");
    state(&home, &["import", "--from", seed.0.to_str().unwrap()], &[]);
    let pg = crate::store::fresh_postgres_db();
    let out = state(&home, &["migrate", "--to", "postgres"], &[("PRODEX_GATEWAY_POSTGRES_URL", &pg)]);
    assert!(out.contains("keys: 1 copied") && out.contains("ledger rows: 3"), "{out}");
    let store = prodex::store::postgres::PgStore::open(&pg, 2).unwrap();
    assert_eq!(store.key("seed-team").unwrap().unwrap().tenant_id.as_deref(), Some("tenant-s"));
    assert_eq!(store.ledger_summary(&LedgerQuery::default(), &[]).unwrap().1.cost_microusd, 21);
    let redis = crate::store::fresh_redis_db();
    let out = state(&home, &["migrate", "--to", "redis"], &[("PRODEX_GATEWAY_REDIS_URL", &redis)]);
    assert!(out.contains("ledger rows: 3"), "{out}");
    let store = prodex::store::redis::RedisStore::open(&redis, 2).unwrap();
    assert!(store.key("SEED-TEAM").unwrap().is_some());
}

/// B7: SCIM users and the audit log move with export/import and migrate, counts verified; B11: an
/// import from a missing or empty directory fails naming it; F6: exports are private files.
#[test]
fn scim_users_and_the_audit_log_move_too() {
    let mock = Mock::start();
    let master = "master-token-transfer-0123456789";
    let home = TempDir::new("b7");
    let mut gw = Gateway::start(Opts {
        base_url: Some(mock.base_url()),
        home: Some(home),
        env: vec![("PRODEX_GATEWAY_TOKEN", master.into())],
        ..Opts::default()
    });
    let user =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@corp", "active": true});
    let r = crate::support::admin::call(&gw, master, "POST", "scim/v2/Users", Some(&user), &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = crate::support::admin::call(&gw, master, "POST", "keys", Some(&json!({"name": "moved-key"})), &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let audit = crate::support::admin::call(&gw, master, "GET", "audit?limit=500", None, &[]);
    let audit_count = audit.json()["data"].as_array().unwrap().len();
    assert!(audit_count >= 2, "{}", audit.text());
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(std::time::Duration::from_secs(10)).success());
    let home = std::mem::replace(&mut gw.home, TempDir::new("moved"));

    let export = TempDir::new("b7-export");
    let dir = export.0.join("out");
    let out = state(&home, &["export", "--out", dir.to_str().unwrap()], &[]);
    assert!(
        out.contains(&format!(
            "wrote 1 key(s), 1 usage scope(s), 0 ledger row(s), 1 SCIM user(s) and {audit_count} audit entries"
        )),
        "{out}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{:?}", f.path());
    }
    let copy = TempDir::new("b7-copy");
    let out = state(&copy, &["import", "--from", dir.to_str().unwrap()], &[]);
    assert!(out.contains(&format!("SCIM users: 1 copied, 0 already present; audit entries: {audit_count}")), "{out}");
    let again = state(&copy, &["import", "--from", dir.to_str().unwrap()], &[]);
    assert!(again.contains("SCIM users: 0 copied, 1 already present; audit entries: 0"), "idempotent: {again}");

    let pg = crate::store::fresh_postgres_db();
    let out = state(&home, &["migrate", "--to", "postgres"], &[("PRODEX_GATEWAY_POSTGRES_URL", &pg)]);
    assert!(out.contains(&format!("SCIM users: 1 copied, 0 already present; audit entries: {audit_count}")), "{out}");
    let store = prodex::store::postgres::PgStore::open(&pg, 2).unwrap();
    assert_eq!(store.scim_by_user_name("ADA@corp").unwrap()[0].user_name, "ada@corp");
    let q = prodex::core::directory::AuditQuery { limit: 500, ..Default::default() };
    assert_eq!(store.audit_list(&q).unwrap().len(), audit_count);
    let redis = crate::store::fresh_redis_db();
    let out = state(&home, &["migrate", "--to", "redis"], &[("PRODEX_GATEWAY_REDIS_URL", &redis)]);
    assert!(out.contains(&format!("SCIM users: 1 copied, 0 already present; audit entries: {audit_count}")), "{out}");
    let store = prodex::store::redis::RedisStore::open(&redis, 2).unwrap();
    assert_eq!(store.audit_list(&q).unwrap().len(), audit_count);

    for (from, says) in
        [(export.0.join("no-such-dir"), "no such directory"), (export.0.clone(), "no export files found")]
    {
        let out = Command::new(bin())
            .args(["gateway", "state", "import", "--from"])
            .arg(&from)
            .arg("--home")
            .arg(&copy.0)
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{from:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&from.display().to_string()) && err.contains(says), "{err}");
    }
}
