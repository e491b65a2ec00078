//! The redb store's memory of recently finished call ids: `finish` deduplicates retried calls
//! without reading the file on a may worker (the writer's `ledger_ids` table is the durable
//! backstop past this window).
//!
//! Invariant: at most `CAP` ids are held; the oldest are forgotten first.

/// A bounded set of recently seen call ids.
#[derive(Default)]
pub(super) struct RecentIds {
    set: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl RecentIds {
    const CAP: usize = 100_000;

    /// Forgets `id` (its finish did not happen after all), so that a retry can run it.
    pub(super) fn remove(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|x| x != id);
        }
    }

    /// Inserts `id`; false when it was already there.
    pub(super) fn insert(&mut self, id: &str) -> bool {
        if !self.set.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}
