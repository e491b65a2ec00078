//! SQL for the Postgres store's paged reads, built from only the filters a query sets: never
//! `$n IS NULL OR …`, which a cached generic plan cannot serve from the key or tenant index, so a
//! tenant-scoped ledger or audit read is an index range scan, not a scan of every row.

/// One query parameter.
pub type Param = Box<dyn postgres::types::ToSql + Sync + Send>;

/// A query's filters as a WHERE clause with only the conditions that are set (never
/// `$n IS NULL OR …`, which a cached generic plan cannot serve from the key or tenant index).
/// Each `$?` in a condition takes the next of its values.
fn where_sql(conds: Vec<(&str, Vec<Param>)>) -> (String, Vec<Param>) {
    let mut sql = String::new();
    let mut params: Vec<Param> = Vec::new();
    for (cond, values) in conds {
        sql.push_str(if sql.is_empty() { " WHERE " } else { " AND " });
        let mut parts = cond.split("$?");
        sql.push_str(parts.next().unwrap_or_default());
        for (part, value) in parts.zip(values) {
            params.push(value);
            sql.push_str(&format!("${}{part}", params.len()));
        }
    }
    (sql, params)
}

/// One page of ledger rows (newest first) from `from`, below the `(created_at, call_id)` cursor.
pub fn ledger_sql(
    from: i64,
    below: Option<(i64, String)>,
    key: Option<String>,
    tenant: Option<String>,
) -> (String, Vec<Param>) {
    let mut conds: Vec<(&str, Vec<Param>)> = vec![("created_at >= $?", vec![Box::new(from)])];
    if let Some((at, id)) = below {
        conds.push(("(created_at, call_id) < ($?, $?)", vec![Box::new(at), Box::new(id)]));
    }
    if let Some(k) = key {
        conds.push(("key_name = $?", vec![Box::new(k)]));
    }
    if let Some(t) = tenant {
        conds.push(("tenant_id = $?", vec![Box::new(t)]));
    }
    let (w, params) = where_sql(conds);
    (format!("SELECT row_json FROM prodex_ledger{w} ORDER BY created_at DESC, call_id DESC LIMIT 1000"), params)
}

/// One page of audit entries (newest first) below the `(at, id)` cursor.
pub fn audit_sql(below: Option<(i64, String)>, tenant: Option<String>) -> (String, Vec<Param>) {
    let mut conds: Vec<(&str, Vec<Param>)> = Vec::new();
    if let Some((at, id)) = below {
        conds.push(("(at, id) < ($?, $?)", vec![Box::new(at), Box::new(id)]));
    }
    if let Some(t) = tenant {
        conds.push(("tenant_id = $?", vec![Box::new(t)]));
    }
    let (w, params) = where_sql(conds);
    (format!("SELECT doc FROM prodex_audit{w} ORDER BY at DESC, id DESC LIMIT 500"), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_that_are_set_reach_the_sql() {
        let (sql, params) = ledger_sql(5, None, None, None);
        assert_eq!(sql, "SELECT row_json FROM prodex_ledger WHERE created_at >= $1 ORDER BY created_at DESC, call_id DESC LIMIT 1000");
        assert_eq!(params.len(), 1);
        let (sql, params) = ledger_sql(5, Some((9, "c".into())), None, Some("tenant-a".into()));
        assert!(
            sql.contains("WHERE created_at >= $1 AND (created_at, call_id) < ($2, $3) AND tenant_id = $4 ORDER"),
            "{sql}"
        );
        assert_eq!(params.len(), 4);
        let (sql, params) = ledger_sql(0, None, Some("k".into()), Some("t".into()));
        assert!(sql.contains("key_name = $2 AND tenant_id = $3"), "{sql}");
        assert_eq!(params.len(), 3);
        let (sql, params) = audit_sql(None, None);
        assert_eq!(
            (sql.as_str(), params.len()),
            ("SELECT doc FROM prodex_audit ORDER BY at DESC, id DESC LIMIT 500", 0)
        );
        let (sql, params) = audit_sql(Some((1, "x".into())), Some("t".into()));
        assert!(sql.contains("WHERE (at, id) < ($1, $2) AND tenant_id = $3 ORDER"), "{sql}");
        assert_eq!(params.len(), 3);
        for (sql, _) in [
            ledger_sql(0, Some((1, "x".into())), Some("k".into()), Some("t".into())),
            audit_sql(None, Some("t".into())),
        ] {
            assert!(!sql.contains("IS NULL"), "{sql}");
        }
    }
}
