//! The durable [`RunStore`]: runs and their logs in mcpgate's database
//! (SQLite or PostgreSQL, through `mcpgate-store`'s run tables), so runs
//! survive a gateway restart. Records and events are stored as this crate's
//! JSON; the store only indexes id, workflow, tenant, state and time. The
//! same handle keeps versioned workflows ([`StoredWorkflow`]) for the API and
//! CLI: every change a new version, parsed and validated on the way in and
//! out.

use async_trait::async_trait;
use mcpgate_store::{RunEventRow, RunRow, RunRowFilter, Store, StoreError};

use crate::run::{EventBody, Run, RunEvent, RunId, RunState};
use crate::store::{RunFilter, RunStore, RunStoreError};
use crate::workflow::{Workflow, validate_workflow_name};

/// Runs and workflows in mcpgate's database.
#[derive(Debug, Clone)]
pub struct SqlRunStore {
    store: Store,
}

/// One stored version of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkflow {
    /// Its name.
    pub name: String,
    /// Its version, from 1.
    pub version: u64,
    /// The tenant that owns it (`None`: shared, made by an admin).
    pub tenant: Option<String>,
    /// The definition.
    pub definition: Workflow,
    /// When this version was stored (ms since the Unix epoch).
    pub created_at: u64,
}

fn store_error(e: StoreError) -> RunStoreError {
    RunStoreError(e.to_string())
}

fn json_error(what: &str, e: serde_json::Error) -> RunStoreError {
    RunStoreError(format!("{what}: {e}"))
}

fn to_row(run: &Run) -> Result<RunRow, RunStoreError> {
    Ok(RunRow {
        id: run.id.to_string(),
        workflow: run.workflow.clone(),
        workflow_version: run.workflow_version as i64,
        tenant: run.tenant.clone(),
        state: run.state.as_str().to_owned(),
        created_at_ms: run.created_at as i64,
        record: serde_json::to_string(run).map_err(|e| json_error("run record", e))?,
    })
}

fn from_row(row: &RunRow) -> Result<Run, RunStoreError> {
    serde_json::from_str(&row.record).map_err(|e| json_error(&format!("run {}", row.id), e))
}

fn stored(version: mcpgate_store::WorkflowVersion) -> Result<StoredWorkflow, StoreError> {
    let definition = serde_json::from_str(&version.definition).map_err(|e| {
        StoreError::Invalid(format!(
            "stored workflow {} version {} does not parse: {e}",
            version.name, version.version
        ))
    })?;
    Ok(StoredWorkflow {
        name: version.name,
        version: version.version.max(0) as u64,
        tenant: version.tenant,
        definition,
        created_at: version.created_at_ms.max(0) as u64,
    })
}

impl SqlRunStore {
    /// Runs and workflows in `store`.
    pub fn new(store: Store) -> SqlRunStore {
        SqlRunStore { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Validates and stores a new version of workflow `name`.
    pub async fn put_workflow(
        &self,
        name: &str,
        tenant: Option<&str>,
        definition: &Workflow,
    ) -> Result<StoredWorkflow, StoreError> {
        validate_workflow_name(name).map_err(|e| StoreError::Invalid(e.to_string()))?;
        definition
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let json = serde_json::to_string(definition)
            .map_err(|e| StoreError::Invalid(format!("workflow {name}: {e}")))?;
        stored(self.store.put_workflow(name, tenant, &json).await?)
    }

    /// The latest version of a workflow that is not deleted.
    pub async fn workflow(&self, name: &str) -> Result<Option<StoredWorkflow>, StoreError> {
        self.store.workflow(name).await?.map(stored).transpose()
    }

    /// One version of a workflow (deleted or not), as a run records it.
    pub async fn workflow_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        self.store
            .workflow_version(name, version as i64)
            .await?
            .map(stored)
            .transpose()
    }

    /// The latest version of each workflow (a tenant's and the shared ones).
    pub async fn workflows(&self, tenant: Option<&str>) -> Result<Vec<StoredWorkflow>, StoreError> {
        self.store
            .workflows(tenant)
            .await?
            .into_iter()
            .map(stored)
            .collect()
    }

    /// Deletes a workflow; its versions stay readable for the runs that ran them.
    pub async fn delete_workflow(&self, name: &str) -> Result<(), StoreError> {
        self.store.delete_workflow(name).await
    }
}

#[async_trait]
impl RunStore for SqlRunStore {
    async fn insert_run(&self, run: &Run) -> Result<(), RunStoreError> {
        self.store
            .insert_run(&to_row(run)?)
            .await
            .map_err(store_error)
    }

    async fn update_run(&self, run: &Run) -> Result<(), RunStoreError> {
        self.store
            .update_run(&to_row(run)?)
            .await
            .map_err(store_error)
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<Run>, RunStoreError> {
        let row = self.store.run(id.as_str()).await.map_err(store_error)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, RunStoreError> {
        let rows = self
            .store
            .runs(&RunRowFilter {
                tenant: filter.tenant.clone(),
                workflow: filter.workflow.clone(),
                states: filter
                    .state
                    .map(|s| vec![s.as_str().to_owned()])
                    .unwrap_or_default(),
                limit: Some(filter.effective_limit() as i64),
                oldest_first: false,
            })
            .await
            .map_err(store_error)?;
        rows.iter().map(from_row).collect()
    }

    /// Only the runs whose owning gateway is gone (a replica's live runs
    /// are its own), each now owned by this process: see `Store::claim_runs`.
    async fn unfinished_runs(&self) -> Result<Vec<Run>, RunStoreError> {
        let states: Vec<String> = RunState::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .map(|s| s.as_str().to_owned())
            .collect();
        let rows = self.store.claim_runs(&states).await.map_err(store_error)?;
        rows.iter().map(from_row).collect()
    }

    async fn append_events(&self, id: &RunId, events: &[RunEvent]) -> Result<(), RunStoreError> {
        let rows = events
            .iter()
            .map(|e| {
                Ok(RunEventRow {
                    seq: e.seq as i64,
                    at_ms: e.at as i64,
                    event: serde_json::to_string(&e.body)
                        .map_err(|err| json_error("run event", err))?,
                })
            })
            .collect::<Result<Vec<_>, RunStoreError>>()?;
        self.store
            .append_run_events(id.as_str(), &rows)
            .await
            .map_err(store_error)
    }

    async fn events(
        &self,
        id: &RunId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>, RunStoreError> {
        let rows = self
            .store
            .run_events(id.as_str(), after as i64, limit as i64)
            .await
            .map_err(store_error)?;
        rows.into_iter()
            .map(|row| {
                let body: EventBody = serde_json::from_str(&row.event)
                    .map_err(|e| json_error(&format!("event {} of run {id}", row.seq), e))?;
                Ok(RunEvent {
                    seq: row.seq.max(0) as u64,
                    at: row.at_ms.max(0) as u64,
                    body,
                })
            })
            .collect()
    }

    async fn last_seq(&self, id: &RunId) -> Result<u64, RunStoreError> {
        let last = self
            .store
            .last_run_event(id.as_str())
            .await
            .map_err(store_error)?;
        Ok(last.max(0) as u64)
    }
}
