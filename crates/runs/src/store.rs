//! Where runs and their events are kept: the [`RunStore`] trait the runner
//! writes through, and [`MemoryRunStore`], which keeps everything in memory
//! (tests, and a gateway without a database). `SqlRunStore` (in
//! `sql_store.rs`) keeps them in mcpgate's database, beside tenants and
//! usage, so runs survive a restart. The runner is the only writer of a run
//! while it is live; the store never decides anything.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::run::{Run, RunEvent, RunId, RunState};

/// A store failure, in words (the SQL store wraps its own error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run store: {0}")]
pub struct RunStoreError(pub String);

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this tenant's runs.
    pub tenant: Option<String>,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// At most this many (newest first); 0 means the store's default of 100.
    pub limit: usize,
}

impl RunFilter {
    /// Whether `run` passes the filter (the limit aside).
    pub fn matches(&self, run: &Run) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == run.tenant)
            && self.workflow.as_ref().is_none_or(|w| *w == run.workflow)
            && self.state.is_none_or(|s| s == run.state)
    }

    /// The limit, with 0 read as 100.
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 { 100 } else { self.limit }
    }
}

/// Durable storage of runs and their logs.
#[async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Stores a new run.
    async fn insert_run(&self, run: &Run) -> Result<(), RunStoreError>;
    /// Replaces a run's record (state, timestamps, usage, artifacts).
    async fn update_run(&self, run: &Run) -> Result<(), RunStoreError>;
    /// One run.
    async fn get_run(&self, id: &RunId) -> Result<Option<Run>, RunStoreError>;
    /// Runs passing `filter`, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, RunStoreError>;
    /// Runs not in a final state, oldest first (for recovery after a restart).
    async fn unfinished_runs(&self) -> Result<Vec<Run>, RunStoreError>;
    /// Appends events (their `seq` already assigned, increasing).
    async fn append_events(&self, id: &RunId, events: &[RunEvent]) -> Result<(), RunStoreError>;
    /// Events with `seq > after`, in order, at most `limit`.
    async fn events(
        &self,
        id: &RunId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>, RunStoreError>;
    /// The highest `seq` stored for the run (0 when none).
    async fn last_seq(&self, id: &RunId) -> Result<u64, RunStoreError>;
}

#[derive(Default)]
struct Memory {
    runs: HashMap<RunId, (u64, Run, Vec<RunEvent>)>,
    inserted: u64,
}

/// A [`RunStore`] in memory: nothing survives the process.
#[derive(Default)]
pub struct MemoryRunStore {
    inner: Mutex<Memory>,
}

impl MemoryRunStore {
    /// An empty store.
    pub fn new() -> MemoryRunStore {
        MemoryRunStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn unknown(id: &RunId) -> RunStoreError {
    RunStoreError(format!("no run {id}"))
}

#[async_trait]
impl RunStore for MemoryRunStore {
    async fn insert_run(&self, run: &Run) -> Result<(), RunStoreError> {
        let mut m = self.lock();
        if m.runs.contains_key(&run.id) {
            return Err(RunStoreError(format!("run {} exists already", run.id)));
        }
        m.inserted += 1;
        let order = m.inserted;
        m.runs
            .insert(run.id.clone(), (order, run.clone(), Vec::new()));
        Ok(())
    }

    async fn update_run(&self, run: &Run) -> Result<(), RunStoreError> {
        let mut m = self.lock();
        let entry = m.runs.get_mut(&run.id).ok_or_else(|| unknown(&run.id))?;
        entry.1 = run.clone();
        Ok(())
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<Run>, RunStoreError> {
        Ok(self.lock().runs.get(id).map(|e| e.1.clone()))
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, RunStoreError> {
        let m = self.lock();
        let mut runs: Vec<(u64, &Run)> = m
            .runs
            .values()
            .filter(|e| filter.matches(&e.1))
            .map(|e| (e.0, &e.1))
            .collect();
        runs.sort_by_key(|(order, _)| std::cmp::Reverse(*order));
        Ok(runs
            .into_iter()
            .take(filter.effective_limit())
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn unfinished_runs(&self) -> Result<Vec<Run>, RunStoreError> {
        let m = self.lock();
        let mut runs: Vec<(u64, &Run)> = m
            .runs
            .values()
            .filter(|e| !e.1.state.is_final())
            .map(|e| (e.0, &e.1))
            .collect();
        runs.sort_by_key(|(order, _)| *order);
        Ok(runs.into_iter().map(|(_, r)| r.clone()).collect())
    }

    async fn append_events(&self, id: &RunId, events: &[RunEvent]) -> Result<(), RunStoreError> {
        let mut m = self.lock();
        let entry = m.runs.get_mut(id).ok_or_else(|| unknown(id))?;
        entry.2.extend_from_slice(events);
        Ok(())
    }

    async fn events(
        &self,
        id: &RunId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>, RunStoreError> {
        let m = self.lock();
        let entry = m.runs.get(id).ok_or_else(|| unknown(id))?;
        let start = entry.2.partition_point(|e| e.seq <= after);
        Ok(entry.2[start..].iter().take(limit).cloned().collect())
    }

    async fn last_seq(&self, id: &RunId) -> Result<u64, RunStoreError> {
        let m = self.lock();
        let entry = m.runs.get(id).ok_or_else(|| unknown(id))?;
        Ok(entry.2.last().map_or(0, |e| e.seq))
    }
}
