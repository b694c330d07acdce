//! What the gateway holds for agent runs: the SQL store of workflows and
//! runs, the runner once it has started (or why it could not), and the
//! scope of every live run key (which tools it sees, what it may spend).
//! The operations on them (who may see which run, submitting, cancelling)
//! are `mcp::runs`; this is only the state, kept here so `App` can hold it
//! without `state` importing `mcp`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mcpgate_proto::locks::lock;
use mcpgate_runs::{RunId, Runner, SqlRunStore};
use mcpgate_store::Store;
use serde_json::value::RawValue;

/// What a run key may do beyond its tenant's tier.
#[derive(Debug)]
pub(crate) struct RunScope {
    pub(crate) run: RunId,
    /// The workflow's `tools` globs: the only tools the key sees or calls.
    pub(crate) tools: Vec<String>,
    /// The most the run may spend (compute units), if capped.
    pub(crate) budget: Option<u64>,
    /// The one model (`[models.NAME]`) the run may use through the proxy.
    pub(crate) model: Option<String>,
    /// What its calls have reserved so far (refunds taken back).
    pub(crate) spent: AtomicU64,
}

impl RunScope {
    /// Whether the run may see or call `tool` (a namespaced tool name).
    pub(crate) fn allows_tool(&self, tool: &str) -> bool {
        self.tools
            .iter()
            .any(|g| mcpgate_store::glob_match(g, tool))
    }

    /// Takes `cost` from the budget; `Err(left)` if that would go past it.
    pub(crate) fn take(&self, cost: u64) -> Result<(), u64> {
        let Some(budget) = self.budget else {
            self.spent.fetch_add(cost, Ordering::AcqRel);
            return Ok(());
        };
        self.spent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                s.checked_add(cost).filter(|n| *n <= budget)
            })
            .map(|_| ())
            .map_err(|s| budget.saturating_sub(s))
    }

    /// Gives back a refunded call's cost.
    pub(crate) fn give_back(&self, cost: u64) {
        let _ = self
            .spent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(s.saturating_sub(cost))
            });
    }

    /// Keeps only the tools this run may see in a `tools/list` page; the
    /// other lists (prompts, resources, templates) are empty for a run.
    pub(crate) fn filter_page(&self, key: &str, page: Box<RawValue>) -> Box<RawValue> {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(page.get()) else {
            return page;
        };
        if let Some(items) = v.get_mut(key).and_then(|i| i.as_array_mut()) {
            if key == "tools" {
                items.retain(|t| {
                    t.get("name")
                        .and_then(|n| n.as_str())
                        .is_some_and(|n| self.allows_tool(n))
                });
            } else {
                items.clear();
            }
        }
        serde_json::value::to_raw_value(&v).unwrap_or(page)
    }
}

/// The runs' state in `App`.
pub(crate) struct RunsState {
    pub(crate) sql: SqlRunStore,
    /// Where artifacts are kept, one directory per run.
    pub(crate) artifacts_dir: PathBuf,
    runner: OnceLock<Result<Runner, String>>,
    /// Live run keys by key id (shared with the authenticator).
    scopes: Scopes,
}

/// Live run keys' scopes by key id.
pub(crate) type Scopes = Arc<Mutex<HashMap<String, Arc<RunScope>>>>;

/// The label of run `id`'s key: a key so labelled without a live scope is refused.
pub(crate) fn run_key_label(id: &RunId) -> String {
    format!("run:{id}")
}

impl RunsState {
    pub(crate) fn new(store: Store, data_dir: &std::path::Path, scopes: Scopes) -> RunsState {
        RunsState {
            sql: SqlRunStore::new(store),
            artifacts_dir: data_dir.join("artifacts"),
            runner: OnceLock::new(),
            scopes,
        }
    }

    /// The runner, or why there is none (not started yet, or it could not start).
    pub(crate) fn runner(&self) -> Result<&Runner, String> {
        match self.runner.get() {
            Some(Ok(r)) => Ok(r),
            Some(Err(why)) => Err(why.clone()),
            None => Err("the runner has not started (runs need `mcpgate serve`)".into()),
        }
    }

    /// Records the runner, or why it could not start; only the first call counts.
    pub(crate) fn set_runner(&self, runner: Result<Runner, String>) {
        let _ = self.runner.set(runner);
    }

    pub(crate) fn add_scope(&self, key_id: &str, scope: RunScope) {
        lock(&self.scopes).insert(key_id.to_owned(), Arc::new(scope));
    }

    pub(crate) fn remove_scope(&self, key_id: &str) {
        lock(&self.scopes).remove(key_id);
    }
}
