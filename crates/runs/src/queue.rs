//! The run queue's one decision: which waiting run starts next. At most
//! `max_concurrent` runs hold a slot at once, and at most `per_tenant_max`
//! of one tenant; waiting runs start in the order they were submitted,
//! skipping only those whose tenant is at its cap, so each tenant's runs
//! start first-in, first-out and one busy tenant cannot hold back another.
//! Pure bookkeeping, no I/O: the runner calls it under a lock.

use std::collections::{HashMap, VecDeque};

use crate::run::RunId;

/// Slots and the waiting line.
#[derive(Debug)]
pub(crate) struct Queue {
    max_concurrent: usize,
    per_tenant_max: Option<usize>,
    running: HashMap<String, usize>,
    total: usize,
    waiting: VecDeque<(RunId, String)>,
}

impl Queue {
    pub(crate) fn new(max_concurrent: usize, per_tenant_max: Option<usize>) -> Queue {
        Queue {
            max_concurrent: max_concurrent.max(1),
            per_tenant_max: per_tenant_max.map(|n| n.max(1)),
            running: HashMap::new(),
            total: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Puts a run at the back of the line.
    pub(crate) fn push(&mut self, id: RunId, tenant: String) {
        self.waiting.push_back((id, tenant));
    }

    /// Takes a waiting run out of the line; false if it was not waiting.
    pub(crate) fn remove(&mut self, id: &RunId) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|(w, _)| w != id);
        self.waiting.len() != before
    }

    /// The next run to start, which now holds a slot; `None` if every slot
    /// is taken or nothing waiting may start.
    pub(crate) fn next(&mut self) -> Option<(RunId, String)> {
        if self.total >= self.max_concurrent {
            return None;
        }
        let cap = self.per_tenant_max.unwrap_or(usize::MAX);
        let position = self
            .waiting
            .iter()
            .position(|(_, tenant)| self.running.get(tenant).copied().unwrap_or(0) < cap)?;
        let (id, tenant) = self.waiting.remove(position)?;
        *self.running.entry(tenant.clone()).or_insert(0) += 1;
        self.total += 1;
        Some((id, tenant))
    }

    /// A run holding a slot has ended.
    pub(crate) fn done(&mut self, tenant: &str) {
        if let Some(n) = self.running.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running.remove(tenant);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// How many runs hold a slot.
    pub(crate) fn running(&self) -> usize {
        self.total
    }

    /// How many runs wait.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> RunId {
        RunId::parse(&format!("run_{n:02x}")).expect("id")
    }

    fn drain(q: &mut Queue) -> Vec<RunId> {
        std::iter::from_fn(|| q.next().map(|(id, _)| id)).collect()
    }

    #[test]
    fn fills_slots_in_submission_order() {
        let mut q = Queue::new(2, None);
        for n in 1..=5 {
            q.push(id(n), "t".into());
        }
        assert_eq!(drain(&mut q), [id(1), id(2)]);
        assert_eq!((q.running(), q.waiting()), (2, 3));
        q.done("t");
        assert_eq!(drain(&mut q), [id(3)]);
        assert_eq!(q.running(), 2);
    }

    #[test]
    fn a_tenant_at_its_cap_does_not_block_others() {
        let mut q = Queue::new(4, Some(1));
        q.push(id(1), "a".into());
        q.push(id(2), "a".into());
        q.push(id(3), "b".into());
        q.push(id(4), "a".into());
        assert_eq!(drain(&mut q), [id(1), id(3)]);
        q.done("a");
        assert_eq!(drain(&mut q), [id(2)], "a's runs start in order");
        q.done("a");
        assert_eq!(drain(&mut q), [id(4)]);
    }

    #[test]
    fn removed_runs_never_start() {
        let mut q = Queue::new(1, None);
        q.push(id(1), "t".into());
        q.push(id(2), "t".into());
        assert!(q.remove(&id(1)));
        assert!(!q.remove(&id(1)));
        assert_eq!(drain(&mut q), [id(2)]);
    }

    #[test]
    fn done_for_an_unknown_tenant_changes_nothing() {
        let mut q = Queue::new(1, None);
        q.push(id(1), "t".into());
        assert!(q.next().is_some());
        q.done("other");
        assert_eq!(q.running(), 1);
        q.done("t");
        q.done("t");
        assert_eq!(q.running(), 0);
    }
}
