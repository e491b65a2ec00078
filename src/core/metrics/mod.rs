//! Prometheus metrics of the data plane: a `Registry` of counters, histograms and minute windows kept per
//! (tenant, key), fed once per call by `observe`, and `render`, which scopes, caps and prints them as text
//! exposition 0.0.4. Invariants: every number is filed under its call's (tenant, key), so a scoped view
//! aggregates only what it may see; rendering costs O(series), never O(calls); output is deterministic;
//! counters saturate instead of overflowing, and no input panics.

mod upstream;
pub use upstream::{render as render_upstream, Upstream};

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::core::keys::name_has_prefix;
use crate::core::time::UnixMs;

/// One finished data-plane call (borrowed from the ledger row the shell just wrote).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample<'a> {
    pub at: UnixMs,
    pub tenant: Option<&'a str>, // the key's tenant at call time (scope snapshot)
    pub key: &'a str,            // key name; "_gateway" (master token), "_unauthenticated", "_anonymous"
    pub route: &'a str,          // "chat.completions", "embeddings", ...
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub status: u16,
    pub error_code: Option<&'a str>, // e.g. "budget_exceeded", "upstream_timeout"
    pub rejected: bool,              // refused by the gateway itself (LedgerRow::rejected())
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_microusd: Option<u64>, // None = the model had no price
    pub latency_us: u64,
    pub overhead_us: u64,
    pub ttfb_us: Option<u64>,
}

/// Process-wide facts only an unscoped principal sees (except `build_info`, which everyone sees).
#[derive(Clone, Copy, Debug, Default)]
pub struct Process<'a> {
    pub version: &'a str,
    pub backend: &'a str,
    pub in_flight: u64,
    pub state_errors: u64,
}

/// Who is looking and how labels are rendered.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub tenant: Option<&'a str>, // Some = only series of calls whose tenant equals this
    pub prefixes: &'a [String],  // non-empty = only keys whose name starts with one of these
    pub per_key_labels: bool,    // [gateway.metrics] per_key_labels
    pub max_label_keys: usize,   // cap on distinct `key` label values; the rest render as key="_other"
}

/// Bucket upper bounds in microseconds: latency and time to first byte, then gateway overhead.
#[rustfmt::skip]
const DURATION_US: [u64; 15] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    30_000_000, 60_000_000, 120_000_000, 300_000_000,
];
const OVERHEAD_US: [u64; 11] = [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000];
const TOKEN_TYPES: [&str; 5] = ["input", "cached_input", "cache_write_input", "output", "reasoning"];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// One-second slots of the minute window.
const MINUTE_SLOTS: usize = 60;

/// Counts that add up, saturating: merging registries and aggregating series use it.
trait Tally {
    fn tally(&mut self, other: &Self);
}

impl Tally for u64 {
    fn tally(&mut self, other: &Self) {
        *self = self.saturating_add(*other);
    }
}

impl<T: Tally, const N: usize> Tally for [T; N] {
    fn tally(&mut self, other: &Self) {
        self.iter_mut().zip(other).for_each(|(mine, theirs)| mine.tally(theirs));
    }
}

impl<V: Tally + Default> Tally for BTreeMap<String, V> {
    fn tally(&mut self, other: &Self) {
        for (key, theirs) in other {
            update(self, key, |mine| mine.tally(theirs));
        }
    }
}

/// Bucket counts (not cumulative; the one after the last bound is `+Inf`), sum and count of a histogram.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; DURATION_US.len() + 1],
    sum_us: u64,
    count: u64,
}

impl Histogram {
    fn record(&mut self, bounds: &[u64], us: u64) {
        bump(self.counts.get_mut(bounds.partition_point(|&upper| upper < us)));
        self.sum_us.tally(&us);
        bump(Some(&mut self.count));
    }
}

impl Tally for Histogram {
    fn tally(&mut self, other: &Self) {
        self.counts.tally(&other.counts);
        self.sum_us.tally(&other.sum_us);
        self.count.tally(&other.count);
    }
}

/// Calls and tokens (input + output) of one Unix second.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    second: u64,
    requests: u64,
    tokens: u64,
}

/// A ring of one-second slots covering the last minute.
#[derive(Clone, Debug)]
struct MinuteWindow([Slot; MINUTE_SLOTS]);

impl Default for MinuteWindow {
    fn default() -> Self {
        Self([Slot::default(); MINUTE_SLOTS])
    }
}

impl MinuteWindow {
    fn record(&mut self, at: UnixMs, tokens: u64) {
        let second = at / 1000;
        let Some(slot) = self.0.get_mut(usize::try_from(second % MINUTE_SLOTS as u64).unwrap_or(0)) else { return };
        if slot.second < second {
            *slot = Slot { second, requests: 0, tokens: 0 };
        }
        if slot.second == second {
            // (A sample older than its slot's second is over a minute old: dropped.)
            bump(Some(&mut slot.requests));
            slot.tokens.tally(&tokens);
        }
    }

    /// (requests, tokens) of the 60 one-second slots ending at `now`'s second.
    fn totals(&self, now: UnixMs) -> [u64; 2] {
        let recent = self.0.iter().filter(|s| s.second.saturating_add(MINUTE_SLOTS as u64) > now / 1000);
        recent.fold([0, 0], |[r, t], s| [r.saturating_add(s.requests), t.saturating_add(s.tokens)])
    }
}

impl Tally for MinuteWindow {
    fn tally(&mut self, other: &Self) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            if theirs.second > mine.second {
                *mine = *theirs;
            } else if theirs.second == mine.second {
                mine.requests.tally(&theirs.requests);
                mine.tokens.tally(&theirs.tokens);
            }
        }
    }
}

/// Counts of one (route, provider, model) of a key.
#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    by_class: [u64; 5],
    tokens: [u64; 5],
    spend_microusd: u64,
    priced: u64,
    unpriced: u64,
}

impl Tally for Cell {
    fn tally(&mut self, other: &Self) {
        self.by_class.tally(&other.by_class);
        self.tokens.tally(&other.tokens);
        self.spend_microusd.tally(&other.spend_microusd);
        self.priced.tally(&other.priced);
        self.unpriced.tally(&other.unpriced);
    }
}

/// Everything known about one (tenant, key). A missing provider, model or error code is stored as "".
#[derive(Clone, Debug, Default)]
struct KeyState {
    cells: BTreeMap<String, BTreeMap<String, BTreeMap<String, Cell>>>, // route → provider → model
    codes: BTreeMap<String, BTreeMap<String, [u64; 2]>>,               // code → provider → [rejected, calls]
    budget_remaining_microusd: Option<u64>,
    minute: MinuteWindow,
    histograms: [Histogram; 3], // latency, overhead, time to first byte
}

impl KeyState {
    fn record(&mut self, s: &Sample<'_>) {
        // Statuses outside 100..=599 count as server errors.
        let class = if (100..600).contains(&s.status) { usize::from(s.status / 100) - 1 } else { 4 };
        let (provider, model) = (s.provider.unwrap_or(""), s.model.unwrap_or(""));
        let unpriced = s.cost_microusd.is_none() && (200..300).contains(&s.status) && !model.is_empty();
        let count = |cell: &mut Cell| {
            bump(cell.by_class.get_mut(class));
            cell.tokens.tally(&[
                s.input_tokens,
                s.cached_input_tokens,
                s.cache_write_input_tokens,
                s.output_tokens,
                s.reasoning_tokens,
            ]);
            if let Some(cost) = s.cost_microusd {
                cell.spend_microusd.tally(&cost);
                bump(Some(&mut cell.priced));
            }
            bump(Some(&mut cell.unpriced).filter(|_| unpriced));
        };
        update(&mut self.cells, s.route, |providers| {
            update(providers, provider, |models| update(models, model, count))
        });
        if s.rejected || s.error_code.is_some() {
            let by_provider = |providers: &mut BTreeMap<String, [u64; 2]>| {
                update(providers, provider, |n| n.tally(&[u64::from(s.rejected), 1]));
            };
            update(&mut self.codes, s.error_code.unwrap_or(""), by_provider);
        }
        self.minute.record(s.at, s.input_tokens.saturating_add(s.output_tokens));
        let [duration, overhead, ttfb] = &mut self.histograms;
        duration.record(&DURATION_US, s.latency_us);
        overhead.record(&OVERHEAD_US, s.overhead_us);
        if let Some(us) = s.ttfb_us {
            ttfb.record(&DURATION_US, us);
        }
    }

    /// (route, provider, model, cell) of every cell, in that order.
    fn cells(&self) -> impl Iterator<Item = (&str, &str, &str, &Cell)> {
        self.cells.iter().flat_map(|(route, providers)| {
            providers.iter().flat_map(move |(provider, models)| {
                models.iter().map(move |(model, cell)| (route.as_str(), provider.as_str(), model.as_str(), cell))
            })
        })
    }
}

impl Tally for KeyState {
    fn tally(&mut self, other: &Self) {
        self.cells.tally(&other.cells);
        self.codes.tally(&other.codes);
        self.budget_remaining_microusd = self.budget_remaining_microusd.or(other.budget_remaining_microusd);
        self.minute.tally(&other.minute);
        self.histograms.tally(&other.histograms);
    }
}

/// All metrics state, per (tenant, key); the shell keeps one behind a lock.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// By key name, then by the tenants the key had at call time (nearly always one).
    keys: BTreeMap<String, Vec<(Option<String>, KeyState)>>,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one finished data-plane call. Allocates only the first time a series is seen.
    pub fn observe(&mut self, s: &Sample<'_>) {
        self.update_key(s.tenant, s.key, |state| state.record(s));
    }

    /// Last known spend headroom of a budgeted key (from admission); `None` removes the series.
    pub fn set_budget_remaining(&mut self, tenant: Option<&str>, key: &str, remaining_microusd: Option<u64>) {
        if remaining_microusd.is_some() {
            self.update_key(tenant, key, |state| state.budget_remaining_microusd = remaining_microusd);
        } else {
            let tenants = self.keys.get_mut(key).into_iter().flatten();
            for (_, state) in tenants.filter(|(t, _)| t.as_deref() == tenant) {
                state.budget_remaining_microusd = None;
            }
        }
    }

    /// Adds another registry's counts (used once at startup: a registry rebuilt from the stored ledger is
    /// merged into the live one). Counters, histograms and minute windows add; budget gauges keep self's.
    pub fn merge(&mut self, other: &Registry) {
        for (key, tenants) in &other.keys {
            for (tenant, theirs) in tenants {
                self.update_key(tenant.as_deref(), key, |state| state.tally(theirs));
            }
        }
    }

    /// Number of (tenant, key) entries plus the (route, provider, model) cells under them, before scoping
    /// and capping (for tests and benchmarks).
    #[must_use]
    pub fn series_count(&self) -> usize {
        self.keys.values().flatten().map(|(_, state)| 1 + state.cells().count()).sum()
    }

    fn update_key(&mut self, tenant: Option<&str>, key: &str, f: impl FnOnce(&mut KeyState)) {
        update(&mut self.keys, key, |tenants| match tenants.iter_mut().find(|(t, _)| t.as_deref() == tenant) {
            Some((_, state)) => f(state),
            None => {
                let mut state = KeyState::default();
                f(&mut state);
                tenants.push((tenant.map(str::to_owned), state));
            }
        });
    }
}

/// Runs `f` on the value under `key`, inserting a default first; allocates only for a new key.
fn update<V: Default>(map: &mut BTreeMap<String, V>, key: &str, f: impl FnOnce(&mut V)) {
    match map.get_mut(key) {
        Some(value) => f(value),
        None => f(map.entry(key.to_owned()).or_default()),
    }
}

fn bump(counter: Option<&mut u64>) {
    if let Some(n) = counter {
        n.tally(&1);
    }
}

/// Name, type and help of a family.
pub(super) type Family = (&'static str, &'static str, &'static str);

const REQUESTS: Family = ("prodex_gateway_requests_total", "counter", "Data-plane calls.");
const DURATION: Family = ("prodex_gateway_request_duration_seconds", "histogram", "Latency of data-plane calls.");
const OVERHEAD: Family = ("prodex_gateway_overhead_seconds", "histogram", "Time the gateway itself added to calls.");
const TTFB: Family = ("prodex_gateway_upstream_ttfb_seconds", "histogram", "Time to the first upstream byte.");
const TOKENS: Family = ("prodex_gateway_tokens_total", "counter", "Tokens by type and model.");
const SPEND: Family = ("prodex_gateway_spend_usd_total", "counter", "Spend in USD of priced calls.");
const BUDGET: Family = ("prodex_gateway_key_budget_remaining_usd", "gauge", "Last known budget headroom in USD.");
const REJECTIONS: Family = ("prodex_gateway_rejections_total", "counter", "Calls refused by the gateway itself.");
const UPSTREAM: Family = ("prodex_gateway_upstream_errors_total", "counter", "Upstream failures by kind.");
const UNPRICED: Family = ("prodex_gateway_unpriced_requests_total", "counter", "Successful calls without a price.");
const KEY_FAMILIES: [Family; 4] = [
    ("prodex_gateway_virtual_key_requests_total", "counter", "Data-plane calls by key."),
    ("prodex_gateway_virtual_key_spend_microusd_total", "counter", "Spend in micro-USD by key."),
    ("prodex_gateway_virtual_key_minute_requests", "gauge", "Calls of the key in the last 60 s."),
    ("prodex_gateway_virtual_key_minute_tokens", "gauge", "Input plus output tokens of the key in the last 60 s."),
];
const IN_FLIGHT: Family = ("prodex_gateway_in_flight_requests", "gauge", "Data-plane calls in progress.");
const STATE_ERRORS: Family = ("prodex_gateway_state_errors_total", "counter", "Errors of the shared state backend.");
const BUILD_INFO: Family = ("prodex_gateway_build_info", "gauge", "Build of the running gateway; always 1.");

/// Renders the registry for `view` as Prometheus text exposition 0.0.4. Every family that applies to the
/// view prints `# HELP` and `# TYPE`, with or without samples. Series are grouped by key in name order
/// (`_other` last) and sorted by their other labels within a key.
#[must_use]
pub fn render(reg: &Registry, process: &Process<'_>, view: &View<'_>, now: UnixMs) -> String {
    let keys = collect_visible(reg, view);
    // Rows of each family: the `key` label (`None` = no key label), the other label values, the numbers.
    let (mut requests, mut tokens, mut spend, mut unpriced) = (vec![], vec![], vec![], vec![]);
    let (mut rejections, mut upstream, mut budget, mut per_key) = (vec![], vec![], vec![], vec![]);
    let mut histograms = <[Histogram; 3]>::default();
    for &(key, state) in &keys {
        let (mut calls, mut spent) = (0u64, 0u64);
        for (route, provider, model, cell) in state.cells() {
            let model = or_none(model);
            requests.push((key, (route, or_none(provider), model), cell.by_class));
            tokens.push((key, model, cell.tokens));
            cell.by_class.iter().for_each(|n| calls.tally(n));
            spent.tally(&cell.spend_microusd);
            if cell.priced > 0 {
                spend.push((key, model, cell.spend_microusd));
            }
            if cell.unpriced > 0 {
                unpriced.push((None, model, cell.unpriced));
            }
        }
        for (code, providers) in &state.codes {
            for (provider, &[rejected, n]) in providers {
                rejections.extend((rejected > 0).then_some((None, or_none(code), rejected)));
                if let Some(kind) = code.strip_prefix("upstream_") {
                    upstream.push((None, (or_none(provider), kind), n));
                }
            }
        }
        budget.extend(state.budget_remaining_microusd.map(|remaining| (key, (), remaining)));
        let [minute_requests, minute_tokens] = state.minute.totals(now);
        per_key.push((key, (), [calls, spent, minute_requests, minute_tokens]));
        histograms.tally(&state.histograms);
    }
    let mut text = String::with_capacity(8192 + (requests.len() + tokens.len()) * 400 + per_key.len() * 320);
    let out = &mut text;
    merge_rows(out, REQUESTS, &requests, |out, key, (route, provider, model), by_class| {
        for (class, n) in STATUS_CLASSES.iter().zip(by_class).filter(|(_, n)| *n > 0) {
            let labels = [("route", route), ("provider", provider), ("model", model), ("status_class", class)];
            write_sample(out, REQUESTS.0, &labels, key, n, false);
        }
    });
    write_histogram(out, DURATION, &DURATION_US, &histograms[0]);
    write_histogram(out, OVERHEAD, &OVERHEAD_US, &histograms[1]);
    write_histogram(out, TTFB, &DURATION_US, &histograms[2]);
    merge_rows(out, TOKENS, &tokens, |out, key, model, tokens| {
        for (kind, n) in TOKEN_TYPES.iter().zip(tokens) {
            write_sample(out, TOKENS.0, &[("type", kind), ("model", model)], key, n, false);
        }
    });
    merge_rows(out, SPEND, &spend, |out, key, model, n| write_sample(out, SPEND.0, &[("model", model)], key, n, true));
    if view.per_key_labels {
        merge_rows(out, BUDGET, &budget, |out, key, (), n| write_sample(out, BUDGET.0, &[], key, n, true));
    }
    for (family, label, rows) in [(REJECTIONS, "code", rejections), (UNPRICED, "model", unpriced)] {
        merge_rows(out, family, &rows, |out, _, value, n| {
            write_sample(out, family.0, &[(label, value)], None, n, false)
        });
    }
    merge_rows(out, UPSTREAM, &upstream, |out, _, (provider, kind), n| {
        write_sample(out, UPSTREAM.0, &[("provider", provider), ("kind", kind)], None, n, false);
    });
    if view.per_key_labels {
        for (i, family) in KEY_FAMILIES.into_iter().enumerate() {
            merge_rows(out, family, &per_key, |out, key, (), totals: [u64; 4]| {
                write_sample(out, family.0, &[], key, totals.get(i).copied().unwrap_or(0), false);
            });
        }
    }
    if view.tenant.is_none() && view.prefixes.is_empty() {
        write_header(out, IN_FLIGHT);
        write_sample(out, IN_FLIGHT.0, &[], None, process.in_flight, false);
        write_header(out, STATE_ERRORS);
        write_sample(out, STATE_ERRORS.0, &[("backend", process.backend)], None, process.state_errors, false);
    }
    write_header(out, BUILD_INFO);
    write_sample(out, BUILD_INFO.0, &[("version", process.version)], None, 1, false);
    text
}

/// The keys in scope, by name, each with its `key` label: the first `max_label_keys` names keep theirs,
/// the rest become `_other` and go last; `None` when per-key labels are off. States sharing a label are
/// adjacent (a key literally named `_other` joins the capped ones).
fn collect_visible<'r>(reg: &'r Registry, view: &View<'_>) -> Vec<(Option<&'r str>, &'r KeyState)> {
    let (mut visible, mut others) = (Vec::with_capacity(reg.keys.len()), Vec::new());
    let mut distinct = 0;
    for (name, tenants) in &reg.keys {
        if !view.prefixes.is_empty() && !view.prefixes.iter().any(|p| name_has_prefix(name, p)) {
            continue;
        }
        let mut states = tenants.iter().filter(|(t, _)| view.tenant.is_none() || t.as_deref() == view.tenant);
        let Some((_, first)) = states.next() else { continue };
        distinct += 1;
        let label = match (view.per_key_labels, distinct <= view.max_label_keys) {
            (false, _) => None,
            (true, true) => Some(name.as_str()),
            (true, false) => Some("_other"),
        };
        let list = if label == Some("_other") { &mut others } else { &mut visible };
        list.push((label, first));
        list.extend(states.map(|(_, state)| (label, state)));
    }
    visible.append(&mut others);
    visible
}

/// Prints the family's header, then adds up rows with equal labels and calls `emit` once per distinct
/// labels. Rows of one `key` label are adjacent (see `collect_visible`), so each run is merged on its own,
/// sorted by its other labels; a run already sorted and distinct (one key, one tenant) needs no map.
fn merge_rows<'r, L: Ord + Copy, V: Tally + Default + Copy>(
    out: &mut String,
    family: Family,
    rows: &[(Option<&'r str>, L, V)],
    mut emit: impl FnMut(&mut String, Option<&'r str>, L, V),
) {
    write_header(out, family);
    for run in rows.chunk_by(|a, b| a.0 == b.0) {
        if run.windows(2).all(|pair| matches!(pair, [a, b] if a.1 < b.1)) {
            run.iter().for_each(|&(key, labels, value)| emit(out, key, labels, value));
            continue;
        }
        let mut merged: BTreeMap<L, V> = BTreeMap::new();
        run.iter().for_each(|(_, labels, value)| merged.entry(*labels).or_default().tally(value));
        let key = run.first().and_then(|row| row.0);
        merged.into_iter().for_each(|(labels, value)| emit(out, key, labels, value));
    }
}

/// Writes `name{label="value",…,key="…"} value` (the key label last, when given); `micros` values are
/// printed as units (USD, seconds).
fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], key: Option<&str>, n: u64, micros: bool) {
    out.push_str(name);
    let mut separator = '{';
    for (label, value) in labels.iter().copied().chain(key.map(|k| ("key", k))) {
        out.push(separator);
        separator = ',';
        out.push_str(label);
        out.push_str("=\"");
        write_escaped(out, value);
        out.push('"');
    }
    out.push_str(if separator == ',' { "} " } else { " " });
    if micros {
        write_micros(out, n);
    } else {
        let _ = write!(out, "{n}");
    }
    out.push('\n');
}

fn write_histogram(out: &mut String, family: Family, bounds: &[u64], h: &Histogram) {
    write_header(out, family);
    let (name, mut cumulative) = (family.0, 0u64);
    for (i, n) in h.counts.iter().take(bounds.len() + 1).enumerate() {
        cumulative.tally(n);
        let _ = write!(out, "{name}_bucket{{le=\"");
        match bounds.get(i) {
            Some(&upper) => write_micros(out, upper),
            None => out.push_str("+Inf"),
        }
        let _ = writeln!(out, "\"}} {cumulative}");
    }
    let _ = write!(out, "{name}_sum ");
    write_micros(out, h.sum_us);
    let _ = writeln!(out, "\n{name}_count {}", h.count);
}

pub(super) fn write_header(out: &mut String, (name, kind, help): Family) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The label value of a missing provider, model or code.
fn or_none(value: &str) -> &str {
    Some(value).filter(|v| !v.is_empty()).unwrap_or("none")
}

/// A label value escaped per the exposition format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub(super) fn write_escaped(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        return out.push_str(value);
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
}

/// Micro-units as an exact decimal of units: `1500000` → `1.5`, `50` → `0.00005`.
fn write_micros(out: &mut String, micros: u64) {
    let (units, fraction) = (micros / 1_000_000, micros % 1_000_000);
    let _ = write!(out, "{units}");
    if fraction != 0 {
        let _ = write!(out, ".{fraction:06}");
        while out.ends_with('0') {
            out.pop();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PROCESS: Process<'static> = Process { version: "1.2.3", backend: "memory", in_flight: 2, state_errors: 1 };
    const NOW: UnixMs = 1_000_000;
    const ALL: View<'static> = View { tenant: None, prefixes: &[], per_key_labels: true, max_label_keys: 100 };

    fn call<'a>(tenant: Option<&'a str>, key: &'a str, model: &'a str) -> Sample<'a> {
        let (route, provider, model) = ("chat.completions", Some("openai"), Some(model));
        let mut s = Sample { at: NOW, tenant, key, route, provider, model, status: 200, ..Sample::default() };
        (s.input_tokens, s.output_tokens, s.cost_microusd) = (10, 5, Some(1_500));
        (s.latency_us, s.overhead_us, s.ttfb_us) = (120_000, 300, Some(80_000));
        s
    }

    fn failed<'a>(s: Sample<'a>, status: u16, code: Option<&'a str>, rejected: bool) -> Sample<'a> {
        Sample { status, error_code: code, rejected, ..s }
    }

    /// (repeats, call): two tenants, a key seen under two tenants, two untenanted keys, rejections, upstream
    /// failures, unpriced calls, missing and odd names.
    fn fixture_calls() -> Vec<(usize, Sample<'static>)> {
        vec![
            (3, call(Some("tenant-a"), "team1-a", "gpt-4o")),
            (2, call(Some("tenant-x"), "team1-a", "gpt-4o")),
            (5, call(Some("tenant-b"), "team2-b", "gpt-4o")),
            (1, failed(call(Some("tenant-b"), "team2-b", "m"), 429, Some("rate_limited"), true)),
            (4, failed(call(Some("tenant-b"), "team1-c", "o3"), 504, Some("upstream_timeout"), false)),
            (1, call(None, "_gateway", "gpt-4o")),
            (1, call(None, "esc", "a\"b\\c\nd")),
            (1, failed(Sample { provider: None, model: None, ..call(None, "esc", "") }, 401, None, true)),
            (1, Sample { cost_microusd: None, ..call(None, "esc", "free") }),
            (1, Sample { cost_microusd: None, model: None, ..call(None, "esc", "") }),
        ]
    }

    fn build(calls: impl Iterator<Item = (usize, Sample<'static>)>) -> Registry {
        let mut reg = Registry::new();
        calls.for_each(|(n, s)| (0..n).for_each(|_| reg.observe(&s)));
        reg.set_budget_remaining(Some("tenant-b"), "team2-b", Some(7_250_000));
        reg
    }

    fn fixture() -> Registry {
        build(fixture_calls().into_iter())
    }

    /// The value of the sample line that starts with exactly `series` (name and labels).
    fn value<'t>(text: &'t str, series: &str) -> Option<&'t str> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    fn requests<'t>(text: &'t str, model: &str, class: &str, key: &str) -> Option<&'t str> {
        let labels = format!(r#"route="chat.completions",provider="openai",model="{model}",status_class="{class}""#);
        value(text, &format!(r#"prodex_gateway_requests_total{{{labels},key="{key}"}}"#))
    }

    fn per_key<'t>(text: &'t str, family: &str, key: &str) -> Option<&'t str> {
        value(text, &format!(r#"prodex_gateway_{family}{{key="{key}"}}"#))
    }

    fn count<'t>(text: &'t str, histogram: &str) -> Option<&'t str> {
        value(text, &format!("prodex_gateway_{histogram}_seconds_count"))
    }

    fn assert_hidden(text: &str, hidden: &[&str]) {
        hidden.iter().for_each(|h| assert!(!text.contains(h), "{h} in {text}"));
    }

    #[test]
    fn unscoped_view_sees_everything_with_escaped_and_defaulted_labels() {
        let text = render(&fixture(), &PROCESS, &ALL, NOW);
        assert_eq!(requests(&text, r#"a\"b\\c\nd"#, "2xx", "esc"), Some("1"));
        assert!(text.lines().all(|line| !line.contains("a\"b")), "{text}");
        let none = r#"route="chat.completions",provider="none",model="none",status_class="4xx",key="esc""#;
        assert_eq!(value(&text, &format!("prodex_gateway_requests_total{{{none}}}")), Some("1"));
        assert_eq!(count(&text, "request_duration"), Some("20"));
        assert_eq!(value(&text, r#"prodex_gateway_rejections_total{code="rate_limited"}"#), Some("1"));
        assert_eq!(value(&text, r#"prodex_gateway_rejections_total{code="none"}"#), Some("1"));
        assert_eq!(value(&text, r#"prodex_gateway_unpriced_requests_total{model="free"}"#), Some("1"));
        assert_eq!(text.matches("prodex_gateway_unpriced_requests_total{").count(), 1);
        assert_eq!(per_key(&text, "virtual_key_spend_microusd_total", "esc"), Some("3000"));
        let upstream = r#"prodex_gateway_upstream_errors_total{provider="openai",kind="timeout"}"#;
        assert_eq!(value(&text, upstream), Some("4"));
        assert_eq!(per_key(&text, "key_budget_remaining_usd", "team2-b"), Some("7.25"));
        assert_eq!(value(&text, "prodex_gateway_in_flight_requests"), Some("2"));
        assert_eq!(value(&text, r#"prodex_gateway_state_errors_total{backend="memory"}"#), Some("1"));
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE ")).count(), 17);
    }

    #[test]
    fn scoped_views_see_only_their_keys_and_no_process_series() {
        let (reg, prefixes) = (fixture(), ["team1-".to_owned(), "nobody-".to_owned()]);
        let text = render(&reg, &PROCESS, &View { tenant: Some("tenant-a"), ..ALL }, NOW);
        assert_hidden(&text, &["team2-b", "team1-c", "\"_gateway\"", "esc", "rate_limited", "timeout"]);
        assert_hidden(&text, &["budget_remaining_usd{", "in_flight", "state_errors"]);
        assert_eq!(requests(&text, "gpt-4o", "2xx", "team1-a"), Some("3"));
        assert_eq!(count(&text, "request_duration"), Some("3"));
        assert_eq!(per_key(&text, "virtual_key_requests_total", "team1-a"), Some("3"));
        assert_eq!(value(&text, r#"prodex_gateway_build_info{version="1.2.3"}"#), Some("1"));
        let empty = render(&reg, &PROCESS, &View { tenant: Some("tenant-c"), ..ALL }, NOW);
        assert_eq!(count(&empty, "request_duration"), Some("0"));
        assert_hidden(&empty, &["team", "key=", "in_flight"]);
        let text = render(&reg, &PROCESS, &View { prefixes: &prefixes, ..ALL }, NOW);
        assert_hidden(&text, &["team2-b", "_gateway\"", "esc", "rate_limited", "budget_remaining_usd{", "in_flight"]);
        assert_eq!(requests(&text, "gpt-4o", "2xx", "team1-a"), Some("5"));
        assert_eq!(requests(&text, "o3", "5xx", "team1-c"), Some("4"));
        assert_eq!(count(&text, "upstream_ttfb"), Some("9"));
        let both = render(&reg, &PROCESS, &View { tenant: Some("tenant-b"), prefixes: &prefixes, ..ALL }, NOW);
        assert_hidden(&both, &["team1-a", "team2-b", "state_errors"]);
        assert_eq!(count(&both, "request_duration"), Some("4"));
    }

    #[test]
    fn without_per_key_labels_series_aggregate() {
        let text = render(&fixture(), &PROCESS, &View { per_key_labels: false, ..ALL }, NOW);
        assert_hidden(&text, &["key=", "virtual_key_", "budget_remaining"]);
        let labels = r#"route="chat.completions",provider="openai",model="gpt-4o",status_class="2xx""#;
        assert_eq!(value(&text, &format!("prodex_gateway_requests_total{{{labels}}}")), Some("11"));
        assert_eq!(value(&text, r#"prodex_gateway_tokens_total{type="input",model="gpt-4o"}"#), Some("110"));
        assert_eq!(value(&text, r#"prodex_gateway_spend_usd_total{model="gpt-4o"}"#), Some("0.0165"));
    }

    #[test]
    fn keys_beyond_the_cap_render_as_other() {
        let text = render(&fixture(), &PROCESS, &View { max_label_keys: 3, ..ALL }, NOW);
        assert_hidden(&text, &["team1-c", "team2-b"]);
        for (key, want) in [("_gateway", "1"), ("esc", "4"), ("team1-a", "5"), ("_other", "10")] {
            assert_eq!(per_key(&text, "virtual_key_requests_total", key), Some(want), "{key}");
        }
        assert_eq!(requests(&text, "gpt-4o", "2xx", "_other"), Some("5"));
        assert_eq!(per_key(&text, "key_budget_remaining_usd", "_other"), Some("7.25"));
        assert_eq!(text.matches("prodex_gateway_virtual_key_requests_total{").count(), 4);
        let none_kept = render(&fixture(), &PROCESS, &View { max_label_keys: 0, ..ALL }, NOW);
        assert_eq!(per_key(&none_kept, "virtual_key_requests_total", "_other"), Some("20"));
    }

    #[test]
    fn odd_inputs_never_panic_nor_duplicate_a_series() {
        let mut huge = failed(call(Some(""), "", ""), 0, Some("upstream_"), true);
        (huge.at, huge.input_tokens, huge.output_tokens, huge.cost_microusd) = (u64::MAX, u64::MAX, 1, Some(u64::MAX));
        (huge.latency_us, huge.overhead_us, huge.ttfb_us) = (u64::MAX, u64::MAX, Some(u64::MAX));
        let odd = [huge, huge, Sample { status: 999, route: "", ..call(None, "_other", "m") }]; // `_other` is a real key here
        let reg = build(fixture_calls().into_iter().chain(odd.map(|s| (1, s))));
        for max_label_keys in 0..9 {
            let text = render(&reg, &PROCESS, &View { max_label_keys, ..ALL }, u64::MAX);
            let series: Vec<&str> =
                text.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').unwrap().0).collect();
            let distinct: std::collections::BTreeSet<&&str> = series.iter().collect();
            assert_eq!(distinct.len(), series.len(), "cap {max_label_keys}: {text}");
        }
        let scoped = View { tenant: Some(""), prefixes: &[String::new()], per_key_labels: true, max_label_keys: 0 };
        let text = render(&reg, &PROCESS, &scoped, u64::MAX);
        assert_eq!(count(&text, "request_duration"), Some("2"));
        assert_eq!(per_key(&text, "virtual_key_minute_tokens", "_other"), Some(&*u64::MAX.to_string()));
        assert!(render(&reg, &PROCESS, &ALL, 0).contains(r#"status_class="5xx",key="_other""#));
    }

    #[test]
    fn histograms_are_cumulative_and_count_every_call() {
        let latencies = [3_000, 20_000, 400_000, 1_000_000_000];
        let reg = build(latencies.into_iter().map(|latency_us| (1, Sample { latency_us, ..call(None, "k", "m") })));
        let text = render(&reg, &PROCESS, &ALL, NOW);
        let bucket = |le: &str| value(&text, &format!("prodex_gateway_request_duration_seconds_bucket{{le=\"{le}\"}}"));
        for (le, want) in [("0.005", "1"), ("0.01", "1"), ("0.025", "2"), ("0.5", "3"), ("300", "3"), ("+Inf", "4")] {
            assert_eq!(bucket(le), Some(want), "le={le}");
        }
        assert_eq!(count(&text, "request_duration"), Some("4"));
        assert_eq!(value(&text, "prodex_gateway_request_duration_seconds_sum"), Some("1000.423"));
        assert_eq!(value(&text, r#"prodex_gateway_overhead_seconds_bucket{le="0.00025"}"#), Some("0"));
        assert_eq!(value(&text, r#"prodex_gateway_overhead_seconds_bucket{le="0.0005"}"#), Some("4"));
        let buckets = text.lines().filter(|l| l.starts_with("prodex_gateway_request_duration_seconds_bucket"));
        let counts: Vec<u64> = buckets.map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
        assert_eq!(counts.len(), DURATION_US.len() + 1);
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    }

    #[test]
    fn minute_gauges_drop_samples_older_than_a_minute() {
        let seconds = [10, 30, 50, 70, 99, 100].map(|s| s * 1000 + 500);
        // The last sample comes late, into the slot that already holds 75 s: dropped.
        let calls = seconds.into_iter().chain([15_000]).map(|at| (1, Sample { at, ..call(None, "k", "m") }));
        let reg = build(calls);
        let text = render(&reg, &PROCESS, &ALL, 100_900);
        assert_eq!(per_key(&text, "virtual_key_minute_requests", "k"), Some("4"));
        assert_eq!(per_key(&text, "virtual_key_minute_tokens", "k"), Some("60"));
        assert_eq!(per_key(&text, "virtual_key_requests_total", "k"), Some("7"));
        let later = render(&reg, &PROCESS, &ALL, 1_000_000);
        assert_eq!(per_key(&later, "virtual_key_minute_requests", "k"), Some("0"));
    }

    #[test]
    fn merge_adds_counts_and_keeps_own_budget() {
        let (mut live, mut stored) = (fixture(), fixture());
        stored.set_budget_remaining(Some("tenant-b"), "team2-b", Some(1));
        stored.set_budget_remaining(None, "esc", Some(2_500_000));
        live.merge(&stored);
        let text = render(&live, &PROCESS, &ALL, NOW);
        assert_eq!(requests(&text, "gpt-4o", "2xx", "team1-a"), Some("10"));
        assert_eq!(count(&text, "request_duration"), Some("40"));
        assert_eq!(
            value(&text, r#"prodex_gateway_tokens_total{type="output",model="gpt-4o",key="team2-b"}"#),
            Some("50")
        );
        assert_eq!(per_key(&text, "virtual_key_minute_requests", "team2-b"), Some("12"));
        assert_eq!(per_key(&text, "key_budget_remaining_usd", "team2-b"), Some("7.25"));
        assert_eq!(per_key(&text, "key_budget_remaining_usd", "esc"), Some("2.5"));
        live.set_budget_remaining(None, "esc", None);
        live.set_budget_remaining(None, "never-seen", None);
        let text = render(&live, &PROCESS, &ALL, NOW);
        assert_hidden(&text, &[r#"budget_remaining_usd{key="esc"}"#, "never-seen"]);
        assert_eq!(live.series_count(), fixture().series_count());
    }

    #[test]
    fn output_is_deterministic_whatever_the_order() {
        let text = render(&fixture(), &PROCESS, &ALL, NOW);
        assert_eq!(text, render(&build(fixture_calls().into_iter().rev()), &PROCESS, &ALL, NOW));
        assert_eq!(text, render(&fixture(), &PROCESS, &ALL, NOW));
        let series = text.lines().filter(|l| l.starts_with("prodex_gateway_requests_total"));
        let keys: Vec<&str> = series.map(|l| l.split("key=\"").nth(1).unwrap().split('"').next().unwrap()).collect();
        assert_eq!(keys, ["_gateway", "esc", "esc", "esc", "esc", "team1-a", "team1-c", "team2-b", "team2-b"]);
    }
}
