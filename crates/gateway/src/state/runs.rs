//! What the gateway holds for agent runs: the SQL store of workflows and
//! runs, the runner once it has started (or why it could not), and the
//! scope of every live run key (which tools it sees, what it may spend).
//! The operations on them (who may see which run, submitting, cancelling)
//! are `mcp::runs`; this is only the state, kept here so `App` can hold it
//! without `state` importing `mcp`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use mcpgate_proto::locks::lock;
use mcpgate_runs::{RunId, Runner, SqlRunStore};
use mcpgate_store::Store;

/// What a run key may do beyond its tenant's tier.
#[allow(dead_code)] // read by policy (visibility, budget) as that lands
#[derive(Debug, Clone)]
pub(crate) struct RunScope {
    pub(crate) run: RunId,
    /// The workflow's `tools` globs: the only tools the key sees or calls.
    pub(crate) tools: Vec<String>,
    /// The most the run may spend (compute units), if capped.
    pub(crate) budget: Option<u64>,
}

#[allow(dead_code)]
impl RunScope {
    /// Whether the run may see or call `tool` (a namespaced tool name).
    pub(crate) fn allows_tool(&self, tool: &str) -> bool {
        self.tools
            .iter()
            .any(|g| mcpgate_store::glob_match(g, tool))
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

    pub(crate) fn scope(&self, key_id: &str) -> Option<Arc<RunScope>> {
        lock(&self.scopes).get(key_id).cloned()
    }
}
