//! Retention: a background OS thread drops ledger rows older than `[gateway.ledger]
//! retention_days` (`Store::drop_ledger_before`: redb range deletes, Postgres partition drops,
//! Redis sorted-set ranges) and audit entries older than `[gateway.audit] retention_days`
//! (`Store::drop_audit_before`), in bulk, at startup and then every hour.
//!
//! Invariants: retention never runs on a request path or a may worker; a failed pass is logged
//! and retried at the next tick; the cut-off is whole days before the pass's own clock reading.

use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::store::Store;

/// Time between passes.
const EVERY: Duration = Duration::from_secs(3600);
const DAY_MS: u64 = 86_400_000;

/// Drops what is older than the given unix ms; returns how much.
type DropBefore<'a> = dyn Fn(u64) -> crate::store::Result<u64> + 'a;

/// Starts the retention thread: `ledger_days` of ledger history, `audit_days` of audit log.
pub fn spawn(store: Arc<dyn Store>, ledger_days: u64, audit_days: u64) {
    let spawned = std::thread::Builder::new().name("prodex-retention".into()).spawn(move || {
        crate::background::lower_this_thread();
        loop {
            let now = clock::unix_ms();
            let drops: [(&str, u64, &DropBefore<'_>); 2] = [
                ("ledger row", ledger_days, &|before| store.drop_ledger_before(before)),
                ("audit entry", audit_days, &|before| store.drop_audit_before(before)),
            ];
            for (what, days, drop) in drops {
                let before = now.saturating_sub(days.saturating_mul(DAY_MS));
                match drop(before) {
                    Ok(0) => {}
                    Ok(n) => log::info!(
                        "retention: dropped {n} {what}(s) older than {days} day(s) (before {})",
                        crate::core::time::format_rfc3339(before)
                    ),
                    Err(e) => {
                        log::warn!(
                            "retention: dropping {what}s older than {days} day(s) failed: {e}; retrying in an hour"
                        );
                    }
                }
            }
            std::thread::sleep(EVERY);
        }
    });
    if let Err(e) = spawned {
        log::warn!("retention: cannot start the retention thread: {e}");
    }
}
