//! One admission rule set, proven identical everywhere (the operations issue, item 7): a table of
//! scenarios — request budget, spend budget, RPM, TPM, parallel calls, calendar periods rolling
//! over at UTC boundaries (time passed in), a pool shared by two keys, reservations that expire —
//! runs against `core::admission` directly (the model below is nothing but its functions) and
//! against every store, comparing every decision (retry-after included), the headroom of every
//! admitted call and the counters after every step.

use std::collections::HashMap;

use prodex::core::admission::{self, Ask, Counters, Headroom, Refusal};
use prodex::core::keys::{BudgetPeriod, Limits};
use prodex::core::ledger::LedgerRow;
use prodex::core::time::parse_rfc3339;
use prodex::store::{Finished, Reservation, Settlement};

/// How long a reservation lives on the shared backends before another call may release it.
const TTL_MS: u64 = 60 * 60 * 1000;

#[derive(Clone, Copy, Debug)]
enum Step {
    /// A call asks: id, cost (µUSD), tokens, at.
    Reserve(&'static str, u64, u64, u64),
    /// The call finished and used: id, cost, tokens, at.
    Used(&'static str, u64, u64, u64),
    /// The call failed before anything billable: id, at.
    Released(&'static str, u64),
    /// Only compare the counters at this time.
    Look(u64),
}

struct Scenario {
    name: &'static str,
    limits: Limits,
    steps: Vec<Step>,
    /// Reservations expire (Postgres and Redis: another node may have died holding them; redb's
    /// reservations live in the one process's memory and go with it).
    expiring: bool,
}

/// `core::admission` alone, with the reservations a store would hold.
#[derive(Default)]
struct Model {
    c: Counters,
    held: HashMap<&'static str, Reservation>,
    expired: HashMap<&'static str, Reservation>,
}

impl Model {
    fn expire(&mut self, now: u64, on: bool) {
        if !on {
            return;
        }
        let old: Vec<&'static str> = self.held.iter().filter(|(_, r)| r.at + TTL_MS < now).map(|(id, _)| *id).collect();
        for id in old {
            let r = self.held.remove(id).unwrap();
            admission::release(&mut self.c, &r.limits, r.ask, r.at, now);
            self.expired.insert(id, r);
        }
    }

    fn reserve(&mut self, id: &'static str, r: &Reservation, expiring: bool) -> Result<Headroom, Refusal> {
        if admission::sweeps_expired(&self.c, &r.limits, r.ask, r.at) {
            self.expire(r.at, expiring);
        }
        admission::admit(&mut self.c, &r.limits, r.ask, r.at)?;
        self.held.insert(id, r.clone());
        Ok(admission::headroom(&self.c, &r.limits, r.at))
    }

    fn finish(&mut self, id: &'static str, s: Settlement, now: u64) {
        if let Some(r) = self.held.remove(id) {
            match s {
                Settlement::Used { cost_microusd, tokens } => {
                    admission::settle(&mut self.c, &r.limits, r.ask, r.at, cost_microusd, tokens, now);
                }
                Settlement::Released => admission::release(&mut self.c, &r.limits, r.ask, r.at, now),
            }
        } else if let (Some(r), Settlement::Used { cost_microusd, .. }) = (self.expired.remove(id), s) {
            admission::settle_expired(&mut self.c, &r.limits, cost_microusd, now);
        }
    }
}

/// What is compared of the counters: every field, the windows by what they hold at `now`.
fn seen(c: &Counters, limits: &Limits, now: u64) -> (u64, u64, u64, u64, u64, u64, i64, Headroom) {
    let mut c = c.clone();
    admission::roll_period(&mut c, limits.budget_period, now);
    let sec = now / 1000;
    let h = admission::headroom(&c, limits, now);
    (
        c.period_start,
        c.requests,
        c.spend_microusd,
        c.reserved_microusd,
        c.in_flight,
        c.minute_requests.sum(sec),
        c.minute_tokens.sum(sec) as i64,
        h,
    )
}

fn at(rfc3339: &str) -> u64 {
    parse_rfc3339(rfc3339).unwrap()
}

fn scenarios() -> Vec<Scenario> {
    let t = at("2027-03-03T10:00:00Z"); // a Wednesday
    let day_end = at("2027-03-04T00:00:00Z");
    let week_end = at("2027-03-08T00:00:00Z"); // Monday: ISO weeks start on Monday
    let month_end = at("2027-04-01T00:00:00Z");
    let l = |f: &dyn Fn(&mut Limits)| {
        let mut limits = Limits::default();
        f(&mut limits);
        limits
    };
    use Step::{Look, Released, Reserve, Used};
    vec![
        Scenario {
            name: "request budget",
            limits: l(&|l| l.request_budget = Some(3)),
            steps: vec![
                Reserve("a", 0, 0, t),
                Reserve("b", 0, 0, t + 1),
                Reserve("c", 0, 0, t + 2),
                Reserve("d", 0, 0, t + 3),
                Released("b", t + 4),
                Reserve("e", 0, 0, t + 5),
                Used("a", 0, 0, t + 6),
                Reserve("f", 0, 0, t + 7),
            ],
            expiring: false,
        },
        Scenario {
            name: "spend budget",
            limits: l(&|l| l.budget_microusd = Some(1_000)),
            steps: vec![
                Reserve("a", 400, 10, t),
                Reserve("b", 400, 10, t + 1),
                Reserve("c", 400, 10, t + 2),
                Used("a", 100, 5, t + 3),
                Reserve("d", 400, 10, t + 4),
                Used("b", 450, 5, t + 5),
                Reserve("e", 1, 1, t + 6),
                Used("d", 999, 5, t + 7),
                Reserve("f", 0, 0, t + 8),
            ],
            expiring: false,
        },
        Scenario {
            name: "rpm",
            limits: l(&|l| l.rpm_limit = Some(2)),
            steps: vec![
                Reserve("a", 0, 0, t),
                Reserve("b", 0, 0, t + 1_000),
                Reserve("c", 0, 0, t + 2_000),
                Used("a", 0, 0, t + 3_000),
                Reserve("d", 0, 0, t + 59_500),
                Reserve("e", 0, 0, t + 60_000),
                Reserve("f", 0, 0, t + 61_500),
                Look(t + 200_000),
            ],
            expiring: false,
        },
        Scenario {
            name: "tpm",
            limits: l(&|l| l.tpm_limit = Some(100)),
            steps: vec![
                Reserve("a", 0, 60, t),
                Reserve("b", 0, 60, t + 1_000),
                Used("a", 0, 20, t + 2_000),
                Reserve("c", 0, 60, t + 3_000),
                Reserve("d", 0, 500, t + 4_000),
                Reserve("e", 0, 500, t + 70_000),
                Released("c", t + 71_000),
                Look(t + 71_000),
            ],
            expiring: false,
        },
        Scenario {
            name: "parallel",
            limits: l(&|l| l.max_parallel_requests = Some(1)),
            steps: vec![
                Reserve("a", 0, 0, t),
                Reserve("b", 0, 0, t + 1),
                Used("a", 0, 0, t + 2),
                Reserve("c", 0, 0, t + 3),
                Released("c", t + 4),
                Reserve("d", 0, 0, t + 5),
            ],
            expiring: false,
        },
        Scenario {
            name: "daily period at the UTC boundary",
            limits: l(&|l| {
                l.budget_microusd = Some(500);
                l.request_budget = Some(2);
                l.budget_period = BudgetPeriod::Daily;
            }),
            steps: vec![
                Reserve("a", 300, 0, day_end - 2_000),
                Used("a", 300, 0, day_end - 1_500),
                Reserve("b", 300, 0, day_end - 1_000),
                Reserve("c", 100, 0, day_end - 500),
                Reserve("d", 300, 0, day_end),
                Used("c", 100, 0, day_end + 1),
                Reserve("e", 300, 0, day_end + 2),
                Look(day_end + 86_400_000),
            ],
            expiring: false,
        },
        Scenario {
            name: "weekly period (Monday 00:00 UTC)",
            limits: l(&|l| {
                l.request_budget = Some(1);
                l.budget_period = BudgetPeriod::Weekly;
            }),
            steps: vec![
                Reserve("a", 0, 0, week_end - 86_400_000),
                Used("a", 0, 0, week_end - 86_000_000),
                Reserve("b", 0, 0, week_end - 1),
                Reserve("c", 0, 0, week_end),
                Reserve("d", 0, 0, week_end + 1),
            ],
            expiring: false,
        },
        Scenario {
            name: "monthly period (the 1st, 00:00 UTC)",
            limits: l(&|l| {
                l.budget_microusd = Some(1_000);
                l.budget_period = BudgetPeriod::Monthly;
            }),
            steps: vec![
                Reserve("a", 900, 0, month_end - 10_000),
                Used("a", 900, 0, month_end - 9_000),
                Reserve("b", 200, 0, month_end - 1),
                Reserve("c", 200, 0, month_end),
                Reserve("d", 900, 0, month_end + 1),
                Used("c", 150, 0, month_end + 2),
            ],
            expiring: false,
        },
        Scenario {
            name: "a pool shared by two keys (one scope)",
            limits: l(&|l| {
                l.budget_microusd = Some(600);
                l.max_parallel_requests = Some(2);
            }),
            steps: vec![
                Reserve("key1-a", 200, 0, t),
                Reserve("key2-a", 200, 0, t + 1),
                Reserve("key1-b", 100, 0, t + 2),
                Used("key2-a", 250, 0, t + 3),
                Reserve("key1-c", 200, 0, t + 4),
                Reserve("key2-b", 200, 0, t + 5),
            ],
            expiring: false,
        },
        Scenario {
            name: "expired reservations are released, and settled anyway when their call ends",
            limits: l(&|l| {
                l.budget_microusd = Some(1_000);
                l.max_parallel_requests = Some(1);
            }),
            steps: vec![
                Reserve("stuck", 800, 50, t),
                Reserve("blocked", 100, 0, t + 1_000),
                Reserve("later", 100, 0, t + TTL_MS + 1_000),
                Used("stuck", 300, 40, t + TTL_MS + 2_000),
                Used("later", 100, 0, t + TTL_MS + 3_000),
                Reserve("after", 700, 0, t + TTL_MS + 4_000),
                Look(t + TTL_MS + 5_000),
            ],
            expiring: true,
        },
    ]
}

#[test]
fn every_store_decides_exactly_as_core_admission() {
    for (store, _dir) in crate::store::backends() {
        let s = store.as_ref();
        for sc in scenarios() {
            if sc.expiring && s.backend() == "redb" {
                continue;
            }
            let scope = format!("rules:{}", sc.name);
            let mut model = Model::default();
            let mut reservations: HashMap<&'static str, Reservation> = HashMap::new();
            for (n, step) in sc.steps.iter().enumerate() {
                let what = format!("{} / {} / step {n} {step:?}", s.backend(), sc.name);
                let now = match *step {
                    Step::Reserve(id, cost, tokens, now) => {
                        let r = Reservation {
                            call_id: format!("{}-{id}", sc.name),
                            scope: scope.clone(),
                            limits: sc.limits.clone(),
                            ask: Ask { cost_microusd: cost, tokens },
                            at: now,
                        };
                        let want = model.reserve(id, &r, sc.expiring);
                        let got = s.reserve(&r).unwrap();
                        assert_eq!(got, want, "{what}: the decision and the headroom");
                        if got.is_ok() {
                            reservations.insert(id, r);
                        }
                        now
                    }
                    Step::Used(id, _, _, now) | Step::Released(id, now) if reservations.contains_key(id) => {
                        let settlement = match *step {
                            Step::Used(_, cost_microusd, tokens, _) => Settlement::Used { cost_microusd, tokens },
                            _ => Settlement::Released,
                        };
                        let r = reservations.remove(id).unwrap();
                        model.finish(id, settlement, now);
                        let row = LedgerRow {
                            call_id: r.call_id.clone(),
                            created_at: now,
                            key_name: "k".into(),
                            status: 200,
                            ..LedgerRow::default()
                        };
                        s.finish(&Finished { reservation: Some(r), settlement, row, wait_durable: true, now }).unwrap();
                        now
                    }
                    Step::Used(_, _, _, now) | Step::Released(_, now) | Step::Look(now) => now,
                };
                let got = s.counters(&scope, &sc.limits, now).unwrap();
                assert_eq!(seen(&got, &sc.limits, now), seen(&model.c, &sc.limits, now), "{what}: the counters");
            }
        }
    }
}

/// The table covers what it says: every refusal kind is decided at least once.
#[test]
fn the_table_reaches_every_refusal() {
    let mut kinds = std::collections::BTreeSet::new();
    for sc in scenarios() {
        let mut model = Model::default();
        for step in &sc.steps {
            match *step {
                Step::Reserve(id, cost, tokens, now) => {
                    let r = Reservation {
                        call_id: id.into(),
                        scope: String::new(),
                        limits: sc.limits.clone(),
                        ask: Ask { cost_microusd: cost, tokens },
                        at: now,
                    };
                    if let Err(refusal) = model.reserve(id, &r, sc.expiring) {
                        kinds.insert(format!("{refusal:?}").split([' ', '{']).next().unwrap().to_string());
                    }
                }
                Step::Used(id, cost, tokens, now) => {
                    model.finish(id, Settlement::Used { cost_microusd: cost, tokens }, now);
                }
                Step::Released(id, now) => model.finish(id, Settlement::Released, now),
                Step::Look(_) => {}
            }
        }
    }
    let all: Vec<&str> = ["Parallel", "RequestBudget", "Rpm", "SpendBudget", "Tpm"].to_vec();
    assert_eq!(kinds.iter().map(String::as_str).collect::<Vec<_>>(), all);
}
