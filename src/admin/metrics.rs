//! `GET metrics` and the live metrics registry's feed: one `observe` per data-plane call (from the
//! ledger row just recorded), and a one-time restore at startup that folds the stored ledger into
//! the registry on a background thread, so counters survive restarts without making rendering
//! depend on the ledger's size.
//!
//! Invariants: rendering reads only the in-memory registry (cost proportional to the series, not
//! the rows); the restore counts only rows created before this process started, so no call is
//! counted twice; every series is filtered by the caller's scope (core `metrics::render`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::admin::Reply;
use crate::core::auth::Principal;
use crate::core::ledger::LedgerQuery;
use crate::core::metrics::{render as render_text, Process, Registry, View};
use crate::core::time::UnixMs;
use crate::state::Shared;

/// `GET metrics`: Prometheus text exposition 0.0.4, in the principal's scope.
pub(crate) fn render(shared: &Shared, p: &Principal) -> Reply {
    let now = crate::clock::unix_ms();
    let process = Process {
        version: env!("CARGO_PKG_VERSION"),
        backend: shared.store.backend(),
        in_flight: shared.lifecycle.in_flight.load(Ordering::Acquire) as u64,
        state_errors: shared.state_errors.load(Ordering::Relaxed),
    };
    let view = View {
        tenant: p.tenant_id.as_deref(),
        prefixes: &p.key_prefixes,
        per_key_labels: shared.config.metrics.per_key_labels,
        max_label_keys: usize::try_from(shared.config.metrics.max_label_keys).unwrap_or(usize::MAX),
    };
    let mut text = shared.with_metrics(|reg| render_text(reg, &process, &view, now));
    if p.tenant_id.is_none() && p.key_prefixes.is_empty() {
        // The providers are the whole process's: only an unscoped principal sees their health.
        let names = |i: usize| shared.config.providers.get(i).map_or_else(|| i.to_string(), |p| p.name.clone());
        crate::core::metrics::render_upstream(&mut text, &shared.targets.upstream(now, names));
    }
    Reply::Bytes { content_type: "text/plain; version=0.0.4; charset=utf-8", body: text.into_bytes(), headers: vec![] }
}

/// Starts the background restore of counters from rows stored before `started_at`, and of budget
/// gauges from the keys' stored counters.
pub fn spawn_restore(shared: &Arc<Shared>, started_at: UnixMs) {
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new().name("prodex-metrics-restore".into()).spawn(move || {
        crate::background::lower_this_thread();
        let mut base = Registry::new();
        let q = LedgerQuery { to: Some(started_at), ..LedgerQuery::default() };
        let mut rows = 0u64;
        let scanned = shared.store.ledger_scan(&q, &mut |row| {
            base.observe(&crate::core::ledger::sample(row));
            rows += 1;
            true
        });
        if let Err(e) = scanned {
            log::warn!("metrics: restoring counters from the ledger failed after {rows} rows: {e}");
        }
        restore_budgets(&shared, &mut base, started_at);
        shared.with_metrics(|live| live.merge(&base));
        log::info!("metrics: restored counters from {rows} stored ledger rows");
    });
    if let Err(e) = spawned {
        log::warn!("metrics: cannot start the restore thread: {e}");
    }
}

fn restore_budgets(shared: &Shared, reg: &mut Registry, now: UnixMs) {
    let mut after: Option<String> = None;
    loop {
        let Ok(page) = shared.store.keys(&crate::store::KeyFilter::default(), after.as_deref(), 500) else { return };
        for k in page.iter().filter(|k| k.limits.budget_microusd.is_some()) {
            if let Ok(c) = shared.store.counters(&k.limit_scope(), &k.limits, now) {
                let h = crate::core::admission::headroom(&c, &k.limits, now);
                reg.set_budget_remaining(k.tenant_id.as_deref(), &k.name, h.spend_remaining_microusd);
            }
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.name.to_ascii_lowercase()),
            _ => return,
        }
    }
}
