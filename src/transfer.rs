//! Moving state: `prodex gateway state export | import | migrate`.
//!
//! The file layout is the seed gateway's (gateway.md §2): `gateway-virtual-keys.json`
//! (`{"version":3,"keys":[…]}`), `gateway-virtual-key-usage.json` (key name → totals) and
//! `gateway-billing-ledger.jsonl`, plus this gateway's `gateway-scim-users.json` and
//! `gateway-audit.jsonl`. Export writes the seed's field names plus the full records, so an export
//! imports back losslessly; import also reads files written by the seed gateway (token hashes as
//! standard base64 of SHA-256, epochs in seconds), so its keys keep working.
//!
//! Idempotency records are not moved: they only make an admin retry within their 24-hour life
//! replay instead of re-run, and a re-run after a move is refused as a conflict anyway (names are
//! unique), so nothing is lost with them.
//!
//! Invariant: import and migrate are idempotent — keys and SCIM users that exist are skipped
//! (counted), ledger rows are recorded once per call id, audit entries once per id, usage is set
//! (not added); migrate then verifies every count on the target.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::core::admission::Counters;
use crate::core::directory::{AuditEntry, AuditQuery, ScimUser};
use crate::core::keys::{KeyRecord, KeySource, Limits};
use crate::core::ledger::{LedgerQuery, LedgerRow};
use crate::store::{Finished, KeyFilter, Settlement, Store, StoreError};

pub const KEYS_FILE: &str = "gateway-virtual-keys.json";
pub const USAGE_FILE: &str = "gateway-virtual-key-usage.json";
pub const LEDGER_FILE: &str = "gateway-billing-ledger.jsonl";
pub const SCIM_FILE: &str = "gateway-scim-users.json";
pub const AUDIT_FILE: &str = "gateway-audit.jsonl";
const ALL_FILES: [&str; 5] = [KEYS_FILE, USAGE_FILE, LEDGER_FILE, SCIM_FILE, AUDIT_FILE];

/// How much was moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub keys: usize,
    pub keys_skipped: usize,
    pub usage: usize,
    pub ledger_rows: usize,
    pub scim_users: usize,
    pub scim_skipped: usize,
    pub audit_entries: usize,
}

impl Moved {
    /// The summary line of an import or migrate.
    #[must_use]
    pub fn copied(&self) -> String {
        format!(
            "keys: {} copied, {} already present; usage scopes: {}; ledger rows: {}; SCIM users: {} copied, {} already \
             present; audit entries: {}",
            self.keys, self.keys_skipped, self.usage, self.ledger_rows, self.scim_users, self.scim_skipped, self.audit_entries
        )
    }

    /// The summary line of an export.
    #[must_use]
    pub fn wrote(&self, dir: &Path) -> String {
        format!(
            "wrote {} key(s), {} usage scope(s), {} ledger row(s), {} SCIM user(s) and {} audit entr{} to {}",
            self.keys,
            self.usage,
            self.ledger_rows,
            self.scim_users,
            self.audit_entries,
            if self.audit_entries == 1 { "y" } else { "ies" },
            dir.display()
        )
    }
}

fn all_scim(store: &dyn Store) -> Result<Vec<ScimUser>, StoreError> {
    let mut out = Vec::new();
    loop {
        let (page, total) = store.scim_list(None, out.len() + 1, 500)?;
        let n = page.len();
        out.extend(page);
        if n == 0 || out.len() >= total {
            return Ok(out);
        }
    }
}

/// Audit entries oldest first.
fn all_audit(store: &dyn Store) -> Result<Vec<AuditEntry>, StoreError> {
    let mut out: Vec<AuditEntry> = Vec::new();
    loop {
        let q = AuditQuery { after: out.last().map(|e| (e.at, e.id.clone())), limit: 500, ..AuditQuery::default() };
        let page = store.audit_list(&q)?;
        let n = page.len();
        out.extend(page);
        if n < 500 {
            out.reverse();
            return Ok(out);
        }
    }
}

/// Creates `users` in `to` (skipping names that exist); returns (copied, skipped).
fn put_scim(to: &dyn Store, users: &[ScimUser]) -> Result<(usize, usize), String> {
    let (mut copied, mut skipped) = (0, 0);
    for u in users {
        match to.scim_create(u) {
            Ok(()) => copied += 1,
            Err(StoreError::Conflict(_)) => skipped += 1,
            Err(e) => return Err(format!("SCIM user `{}`: {e}", u.user_name)),
        }
    }
    Ok((copied, skipped))
}

/// Appends the entries of `entries` that `to` does not hold yet (by id); returns how many.
fn put_audit(to: &dyn Store, entries: &[AuditEntry]) -> Result<usize, String> {
    let held: std::collections::HashSet<String> =
        all_audit(to).map_err(|e| e.to_string())?.into_iter().map(|e| e.id).collect();
    let mut n = 0;
    for e in entries.iter().filter(|e| !held.contains(&e.id)) {
        to.audit_append(e).map_err(|err| format!("audit entry {}: {err}", e.id))?;
        n += 1;
    }
    Ok(n)
}

fn all_keys(store: &dyn Store) -> Result<Vec<KeyRecord>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.keys(&KeyFilter::default(), after.as_deref(), 500)?;
        let n = page.len();
        after = page.last().map(|k| k.name.to_ascii_lowercase());
        out.extend(page);
        if n < 500 {
            return Ok(out);
        }
    }
}

/// Rows oldest first.
fn all_rows(store: &dyn Store) -> Result<Vec<LedgerRow>, StoreError> {
    let mut rows = Vec::new();
    store.ledger_scan(&LedgerQuery::default(), &mut |r| {
        rows.push(r.clone());
        true
    })?;
    rows.reverse();
    Ok(rows)
}

fn io(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Writes the store's keys, usage and ledger to `dir`.
pub fn export(store: &dyn Store, dir: &Path, now: u64) -> Result<Moved, String> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| io(dir, e))?;
    let keys = all_keys(store).map_err(|e| e.to_string())?;
    let mut moved = Moved::default();
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "name": k.name,
                "token_hash_base64": base64::engine::general_purpose::STANDARD.encode(k.token_hash),
                "tenant_id": k.tenant_id, "team_id": k.team_id, "project_id": k.project_id,
                "user_id": k.user_id, "budget_id": k.budget_id, "allowed_models": k.allowed_models,
                "budget_microusd": k.limits.budget_microusd, "request_budget": k.limits.request_budget,
                "rpm_limit": k.limits.rpm_limit, "tpm_limit": k.limits.tpm_limit, "disabled": k.disabled,
                "created_at_epoch": k.created_at / 1000, "updated_at_epoch": k.updated_at / 1000,
                "record": k,
            })
        })
        .collect();
    moved.keys = records.len();
    let path = dir.join(KEYS_FILE);
    let text = serde_json::to_string_pretty(&json!({"version": 3, "keys": records})).map_err(|e| io(&path, e))?;
    write_private(&path, text.as_bytes())?;

    let mut usage = BTreeMap::new();
    for k in &keys {
        let c = store.counters(&k.limit_scope(), &k.limits, now).map_err(|e| e.to_string())?;
        usage.insert(k.name.clone(), json!({"requests_total": c.requests, "spend_microusd": c.spend_microusd, "period_start_ms": c.period_start, "scope": k.limit_scope()}));
    }
    moved.usage = usage.len();
    let path = dir.join(USAGE_FILE);
    write_private(&path, serde_json::to_string_pretty(&usage).map_err(|e| io(&path, e))?.as_bytes())?;

    let path = dir.join(LEDGER_FILE);
    let mut out = BufWriter::new(create_private(&path)?);
    for row in all_rows(store).map_err(|e| e.to_string())? {
        let mut v = serde_json::to_value(&row).map_err(|e| io(&path, e))?;
        v["response_status"] = json!(row.status);
        v["final_cost_microusd"] = json!(row.cost_microusd);
        v["created_at_epoch"] = json!(row.created_at / 1000);
        serde_json::to_writer(&mut out, &v).map_err(|e| io(&path, e))?;
        out.write_all(b"\n").map_err(|e| io(&path, e))?;
        moved.ledger_rows += 1;
    }
    out.flush().map_err(|e| io(&path, e))?;
    drop(out);

    let users = all_scim(store).map_err(|e| e.to_string())?;
    moved.scim_users = users.len();
    let path = dir.join(SCIM_FILE);
    let text = serde_json::to_string_pretty(&json!({"users": users})).map_err(|e| io(&path, e))?;
    write_private(&path, text.as_bytes())?;

    let path = dir.join(AUDIT_FILE);
    let mut text = Vec::new();
    for e in all_audit(store).map_err(|e| e.to_string())? {
        serde_json::to_writer(&mut text, &e).map_err(|err| io(&path, err))?;
        text.push(b'\n');
        moved.audit_entries += 1;
    }
    write_private(&path, &text)?;
    Ok(moved)
}

/// Writes `bytes` to a new file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut f = create_private(path)?;
    f.write_all(bytes).map_err(|e| io(path, e))
}

/// Creates (or truncates) a file with mode 0600: exports hold token hashes, spend and identities.
fn create_private(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    // `mode` applies to new files only; an existing one is narrowed too.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| io(path, e))?;
    Ok(f)
}

fn opt_str(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(String::from)
}

fn opt_u64(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// Epoch seconds (the seed's unit) or milliseconds → milliseconds.
fn epoch_ms(v: Option<u64>, default: u64) -> u64 {
    match v {
        Some(t) if t < 100_000_000_000 => t * 1000,
        Some(t) => t,
        None => default,
    }
}

/// A key from an export (full record) or from the seed's file.
fn key_from(v: &Value, now: u64) -> Result<KeyRecord, String> {
    if let Some(record) = v.get("record") {
        return serde_json::from_value(record.clone()).map_err(|e| format!("key record: {e}"));
    }
    let name = opt_str(v, "name").ok_or("a key without a name")?;
    let hash_b64 = opt_str(v, "token_hash_base64").ok_or_else(|| format!("key `{name}` has no token_hash_base64"))?;
    let hash = base64::engine::general_purpose::STANDARD
        .decode(hash_b64.trim())
        .map_err(|e| format!("key `{name}`: token_hash_base64: {e}"))?;
    let token_hash: [u8; 32] =
        hash.try_into().map_err(|_| format!("key `{name}`: token hash is not 32 bytes (SHA-256)"))?;
    let created_at = epoch_ms(opt_u64(v, "created_at_epoch"), now);
    Ok(KeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        token_hash,
        token_hint: "pk-…(imported)".into(),
        tenant_id: opt_str(v, "tenant_id"),
        team_id: opt_str(v, "team_id"),
        project_id: opt_str(v, "project_id"),
        user_id: opt_str(v, "user_id"),
        budget_id: opt_str(v, "budget_id"),
        allowed_models: v
            .get("allowed_models")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default(),
        limits: Limits {
            budget_microusd: opt_u64(v, "budget_microusd"),
            request_budget: opt_u64(v, "request_budget"),
            rpm_limit: opt_u64(v, "rpm_limit"),
            tpm_limit: opt_u64(v, "tpm_limit"),
            ..Limits::default()
        },
        disabled: v.get("disabled").and_then(Value::as_bool).unwrap_or(false),
        source: KeySource::Admin,
        created_at,
        updated_at: epoch_ms(opt_u64(v, "updated_at_epoch"), created_at),
        version: 1,
        ..KeyRecord::default()
    })
}

/// A ledger row from an export (full row) or from the seed's file.
fn row_from(v: &Value) -> Result<LedgerRow, String> {
    if v.get("status").is_some() && v.get("route").is_some() {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            for k in ["response_status", "final_cost_microusd", "created_at_epoch"] {
                o.remove(k);
            }
        }
        return serde_json::from_value(v).map_err(|e| format!("ledger row: {e}"));
    }
    let call_id = opt_str(v, "call_id").ok_or("a ledger row without call_id")?;
    Ok(LedgerRow {
        call_id,
        created_at: epoch_ms(opt_u64(v, "created_at_epoch"), 0),
        key_name: opt_str(v, "key_name").unwrap_or_default(),
        tenant_id: opt_str(v, "tenant_id"),
        route: "chat.completions".into(),
        model: opt_str(v, "model"),
        status: opt_u64(v, "response_status").and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
        input_tokens: opt_u64(v, "input_tokens").unwrap_or(0),
        output_tokens: opt_u64(v, "output_tokens").unwrap_or(0),
        usage_source: "provider".into(),
        cost_microusd: opt_u64(v, "final_cost_microusd"),
        ..LedgerRow::default()
    })
}

/// Reads `dir` (an export, or the seed gateway's JSON state) into the store.
pub fn import(store: &dyn Store, dir: &Path, now: u64) -> Result<Moved, String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    if !ALL_FILES.iter().any(|f| dir.join(f).exists()) {
        return Err(format!("{}: no export files found (expected any of {})", dir.display(), ALL_FILES.join(", ")));
    }
    let mut moved = Moved::default();
    let path = dir.join(KEYS_FILE);
    let mut keys_by_name = BTreeMap::new();
    if path.exists() {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| io(&path, e))?)
            .map_err(|e| io(&path, e))?;
        for v in doc.get("keys").and_then(Value::as_array).ok_or_else(|| io(&path, "expected {\"keys\": [...]}"))? {
            let key = key_from(v, now).map_err(|e| io(&path, e))?;
            match store.create_key(&key) {
                Ok(()) => moved.keys += 1,
                Err(StoreError::Conflict(_)) => moved.keys_skipped += 1,
                Err(e) => return Err(io(&path, e)),
            }
            let stored = store.key(&key.name).map_err(|e| io(&path, e))?.unwrap_or(key);
            keys_by_name.insert(stored.name.clone(), stored);
        }
    }
    let path = dir.join(USAGE_FILE);
    if path.exists() {
        let doc: BTreeMap<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| io(&path, e))?)
                .map_err(|e| io(&path, e))?;
        for (name, v) in doc {
            let key = match keys_by_name.get(&name) {
                Some(k) => k.clone(),
                None => store
                    .key(&name)
                    .map_err(|e| io(&path, e))?
                    .ok_or_else(|| io(&path, format!("usage for unknown key `{name}`")))?,
            };
            let counters = Counters {
                period_start: opt_u64(&v, "period_start_ms")
                    .unwrap_or_else(|| crate::core::admission::period_start(key.limits.budget_period, now)),
                requests: opt_u64(&v, "requests_total").unwrap_or(0),
                spend_microusd: opt_u64(&v, "spend_microusd").unwrap_or(0),
                ..Counters::default()
            };
            store.set_counters(&key.limit_scope(), &counters).map_err(|e| io(&path, e))?;
            moved.usage += 1;
        }
    }
    let path = dir.join(LEDGER_FILE);
    if path.exists() {
        let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| io(&path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            let row = row_from(&v).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            let finished =
                Finished { reservation: None, settlement: Settlement::Released, row, wait_durable: false, now };
            store.finish(&finished).map_err(|e| io(&path, e))?;
            moved.ledger_rows += 1;
        }
    }
    let path = dir.join(SCIM_FILE);
    if path.exists() {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| io(&path, e))?)
            .map_err(|e| io(&path, e))?;
        let users: Vec<ScimUser> =
            serde_json::from_value(doc.get("users").cloned().unwrap_or(Value::Null)).map_err(|e| io(&path, e))?;
        (moved.scim_users, moved.scim_skipped) = put_scim(store, &users).map_err(|e| io(&path, e))?;
    }
    let path = dir.join(AUDIT_FILE);
    if path.exists() {
        let mut entries = Vec::new();
        for (n, line) in std::fs::read_to_string(&path).map_err(|e| io(&path, e))?.lines().enumerate() {
            if !line.trim().is_empty() {
                entries.push(serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?);
            }
        }
        moved.audit_entries = put_audit(store, &entries).map_err(|e| io(&path, e))?;
    }
    store.flush().map_err(|e| e.to_string())?;
    Ok(moved)
}

/// Copies everything from `from` to `to`, then checks the counts match.
pub fn migrate(from: &dyn Store, to: &dyn Store, now: u64) -> Result<Moved, String> {
    let mut moved = Moved::default();
    let keys = all_keys(from).map_err(|e| e.to_string())?;
    for k in &keys {
        match to.create_key(k) {
            Ok(()) => moved.keys += 1,
            Err(StoreError::Conflict(_)) => moved.keys_skipped += 1,
            Err(e) => return Err(format!("key `{}`: {e}", k.name)),
        }
        let c = from.counters(&k.limit_scope(), &k.limits, now).map_err(|e| e.to_string())?;
        to.set_counters(&k.limit_scope(), &c).map_err(|e| e.to_string())?;
        moved.usage += 1;
    }
    for row in all_rows(from).map_err(|e| e.to_string())? {
        to.finish(&Finished { reservation: None, settlement: Settlement::Released, row, wait_durable: false, now })
            .map_err(|e| e.to_string())?;
        moved.ledger_rows += 1;
    }
    let users = all_scim(from).map_err(|e| e.to_string())?;
    (moved.scim_users, moved.scim_skipped) = put_scim(to, &users)?;
    let entries = all_audit(from).map_err(|e| e.to_string())?;
    moved.audit_entries = put_audit(to, &entries)?;
    to.flush().map_err(|e| e.to_string())?;
    let (src_users, dst_users) = (users.len(), all_scim(to).map_err(|e| e.to_string())?.len());
    let (src_audit, dst_audit) = (entries.len(), all_audit(to).map_err(|e| e.to_string())?.len());
    if dst_users < src_users || dst_audit < src_audit {
        return Err(format!(
            "verification failed: SCIM users {src_users} → {dst_users}, audit entries {src_audit} → {dst_audit}"
        ));
    }
    let (src_keys, dst_keys) = (keys.len(), all_keys(to).map_err(|e| e.to_string())?.len());
    let (src_rows, dst_rows) = (
        from.ledger_summary(&LedgerQuery::default(), &[]).map_err(|e| e.to_string())?.1.requests,
        to.ledger_summary(&LedgerQuery::default(), &[]).map_err(|e| e.to_string())?.1.requests,
    );
    if dst_keys < src_keys || dst_rows < src_rows {
        return Err(format!("verification failed: keys {src_keys} → {dst_keys}, ledger rows {src_rows} → {dst_rows}"));
    }
    Ok(moved)
}
