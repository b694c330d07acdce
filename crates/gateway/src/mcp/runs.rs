//! The runs service: what a caller may do with workflows and runs, over the
//! runner (`mcpgate_runs`) and the state in `App::runs` (`state::runs`).
//!
//! NOTE for the HTTP API (/api/v1) and CLI: build on [`Runs::of`]`(&app)`
//! and the methods below; each takes a [`Caller`] (`Caller::Admin` after
//! `guard::admit_admin`-style checking, else `Caller::Tenant(principal)`),
//! and every refusal is a [`RunsError`] that turns into a plain JSON
//! `{"error": …}` `Refusal` with the right status (`From<RunsError> for
//! Refusal` in http/refusal.rs). A tenant sees its own and shared
//! workflows and only its tenant's runs; another tenant's run id is the same
//! 404 as an unknown one. Config workflows (`[workflows.NAME]`) are version 0
//! and read-only (409 on put/delete). While the runner is not running
//! (bubblewrap unusable, or not started) submit/cancel are 503 naming why;
//! reads of stored runs still work.
//!
//! Also here: [`RunKeys`], the runner's `RunHooks`: each run gets a key of
//! its paying tenant that expires at the run's deadline, whose scope (tools,
//! budget) lives in `state::runs` until `release` revokes it.

// The service's entry points are called by the /api/v1 layer, built on top.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use futures::{Stream, StreamExt};
use mcpgate_runs::{
    Artifact, Run, RunError, RunEvent, RunFilter, RunGrant, RunHooks, RunId, SubmitRequest,
    UsageDelta, Workflow,
};
use mcpgate_store::StoreError;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::state::App;
use crate::state::auth::Principal;
use crate::state::runs::{RunScope, run_key_label};

/// Largest artifact a run may upload over HTTP.
pub(crate) const MAX_UPLOAD_BYTES: usize = 100 << 20;

/// Who is asking.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// An admin key: sees everything.
    Admin,
    /// A tenant's key (or a run's key): sees its tenant's things.
    Tenant(Arc<Principal>),
}

impl Caller {
    fn tenant(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::Tenant(p) => Some(&p.tenant),
        }
    }

    fn may_see_tenant(&self, owner: Option<&str>) -> bool {
        match (self.tenant(), owner) {
            (None, _) | (Some(_), None) => true,
            (Some(me), Some(owner)) => me == owner,
        }
    }
}

/// Why the runs service refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunsError {
    /// 400: bad input, naming the field or param.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such workflow, run or artifact (or not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// 409: config workflows are read-only; the run is over.
    #[error("{0}")]
    Conflict(String),
    /// 413: an upload over the cap.
    #[error("{0}")]
    TooLarge(String),
    /// 503: runs cannot start here (the message says why), or the store failed.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for RunsError {
    fn from(e: StoreError) -> RunsError {
        match e {
            StoreError::NotFound(_) => RunsError::NotFound(e.to_string()),
            StoreError::AlreadyExists(_) => RunsError::Conflict(e.to_string()),
            StoreError::Invalid(m) => RunsError::BadRequest(m),
            StoreError::Db(_) => RunsError::Unavailable(e.to_string()),
        }
    }
}

impl From<RunError> for RunsError {
    fn from(e: RunError) -> RunsError {
        match e {
            RunError::Params(p) => RunsError::BadRequest(p.to_string()),
            RunError::NotFound(id) => RunsError::NotFound(format!("no run {id}")),
            RunError::AlreadyFinished { .. } => RunsError::Conflict(e.to_string()),
            RunError::Store(_) | RunError::ShuttingDown => RunsError::Unavailable(e.to_string()),
        }
    }
}

/// A workflow as listed: its latest version and where it is defined.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkflowEntry {
    pub(crate) name: String,
    /// 0 for a config workflow.
    pub(crate) version: u64,
    /// The tenant it belongs to (`None`: shared).
    pub(crate) tenant: Option<String>,
    pub(crate) definition: Workflow,
    /// ms since the epoch (0 for a config workflow).
    pub(crate) created_at: u64,
    /// Defined in the config file: cannot be changed over the API.
    pub(crate) read_only: bool,
}

fn no_run(id: &str) -> RunsError {
    RunsError::NotFound(format!("no run {id}"))
}

fn no_workflow(name: &str) -> RunsError {
    RunsError::NotFound(format!("no workflow {name}"))
}

/// The runs service over one `App`.
pub(crate) struct Runs<'a> {
    app: &'a App,
}

impl<'a> Runs<'a> {
    pub(crate) fn of(app: &'a App) -> Runs<'a> {
        Runs { app }
    }

    fn config_entry(&self, name: &str) -> Option<WorkflowEntry> {
        self.app.cfg.workflows.get(name).map(|w| WorkflowEntry {
            name: name.to_owned(),
            version: 0,
            tenant: w.tenant.clone(),
            definition: w.clone(),
            created_at: 0,
            read_only: true,
        })
    }

    /// Every workflow the caller may see: the config's, then the stored ones.
    pub(crate) async fn workflows(&self, who: &Caller) -> Result<Vec<WorkflowEntry>, RunsError> {
        let mut out: Vec<WorkflowEntry> = self
            .app
            .cfg
            .workflows
            .keys()
            .filter_map(|n| self.config_entry(n))
            .filter(|w| who.may_see_tenant(w.tenant.as_deref()))
            .collect();
        for s in self.app.runs.sql.workflows(who.tenant()).await? {
            if self.app.cfg.workflows.contains_key(&s.name) {
                continue;
            }
            out.push(WorkflowEntry {
                name: s.name,
                version: s.version,
                tenant: s.tenant,
                definition: s.definition,
                created_at: s.created_at,
                read_only: false,
            });
        }
        Ok(out)
    }

    /// One workflow's latest version, if the caller may see it.
    pub(crate) async fn workflow(
        &self,
        who: &Caller,
        name: &str,
    ) -> Result<WorkflowEntry, RunsError> {
        if let Some(w) = self.config_entry(name) {
            return if who.may_see_tenant(w.tenant.as_deref()) {
                Ok(w)
            } else {
                Err(no_workflow(name))
            };
        }
        match self.app.runs.sql.workflow(name).await? {
            Some(s) if who.may_see_tenant(s.tenant.as_deref()) => Ok(WorkflowEntry {
                name: s.name,
                version: s.version,
                tenant: s.tenant,
                definition: s.definition,
                created_at: s.created_at,
                read_only: false,
            }),
            _ => Err(no_workflow(name)),
        }
    }

    /// Stores a new version of a workflow. A tenant's workflow belongs to
    /// it (and pays as it); an admin's is shared unless it names a `tenant`.
    pub(crate) async fn put_workflow(
        &self,
        who: &Caller,
        name: &str,
        definition: Workflow,
    ) -> Result<WorkflowEntry, RunsError> {
        if self.app.cfg.workflows.contains_key(name) {
            return Err(RunsError::Conflict(format!(
                "workflow {name} is defined in {} and is read-only",
                self.app.cfg.file.display()
            )));
        }
        definition
            .validate()
            .map_err(|e| RunsError::BadRequest(e.to_string()))?;
        let owner = match who.tenant() {
            Some(me) => {
                if let Some(t) = &definition.tenant
                    && t != me
                {
                    return Err(RunsError::Forbidden(format!(
                        "tenant: a key of tenant {me} cannot define a workflow paid by {t}"
                    )));
                }
                Some(me.to_owned())
            }
            None => definition.tenant.clone(),
        };
        if let Some(existing) = self.app.runs.sql.workflow(name).await?
            && !who.may_see_tenant(existing.tenant.as_deref())
        {
            return Err(RunsError::Conflict(format!(
                "the workflow name {name} is taken"
            )));
        }
        if let (Some(me), Some(existing)) = (who.tenant(), self.app.runs.sql.workflow(name).await?)
            && existing.tenant.is_none()
        {
            return Err(RunsError::Forbidden(format!(
                "workflow {name} is shared; only an admin key may change it (not tenant {me})"
            )));
        }
        if let Some(t) = &owner
            && self.app.store.tenant(t).await?.is_none()
        {
            return Err(RunsError::BadRequest(format!("tenant: no tenant {t}")));
        }
        let s = self
            .app
            .runs
            .sql
            .put_workflow(name, owner.as_deref(), &definition)
            .await?;
        Ok(WorkflowEntry {
            name: s.name,
            version: s.version,
            tenant: s.tenant,
            definition: s.definition,
            created_at: s.created_at,
            read_only: false,
        })
    }

    /// Every stored version of a workflow the caller may see, oldest first
    /// (none for a config workflow).
    pub(crate) async fn history(
        &self,
        who: &Caller,
        name: &str,
    ) -> Result<Vec<mcpgate_store::WorkflowVersion>, RunsError> {
        let w = self.workflow(who, name).await?;
        if w.read_only {
            return Ok(Vec::new());
        }
        Ok(self.app.store.workflow_history(name).await?)
    }

    /// Deletes a stored workflow (its versions stay readable for its runs).
    pub(crate) async fn delete_workflow(&self, who: &Caller, name: &str) -> Result<(), RunsError> {
        if self.app.cfg.workflows.contains_key(name) {
            return Err(RunsError::Conflict(format!(
                "workflow {name} is defined in {} and is read-only",
                self.app.cfg.file.display()
            )));
        }
        let w = self.workflow(who, name).await?;
        if w.tenant.is_none() && who.tenant().is_some() {
            return Err(RunsError::Forbidden(format!(
                "workflow {name} is shared; only an admin key may delete it"
            )));
        }
        self.app.runs.sql.delete_workflow(name).await?;
        Ok(())
    }

    fn runner(&self) -> Result<&mcpgate_runs::Runner, RunsError> {
        self.app
            .runs
            .runner()
            .map_err(|why| RunsError::Unavailable(format!("runs are not available: {why}")))
    }

    /// Queues a run of `name`. The payer is the workflow's `tenant`, else the caller's.
    pub(crate) async fn submit(
        &self,
        who: &Caller,
        name: &str,
        params: BTreeMap<String, String>,
    ) -> Result<Run, RunsError> {
        let w = self.workflow(who, name).await?;
        if let Caller::Tenant(p) = who
            && p.run.is_some()
        {
            return Err(RunsError::Forbidden(
                "a run's own key cannot start runs".into(),
            ));
        }
        let tenant = match (w.tenant.clone(), who.tenant()) {
            (Some(t), _) => t,
            (None, Some(me)) => me.to_owned(),
            (None, None) => {
                return Err(RunsError::BadRequest(format!(
                    "workflow {name} names no tenant to pay for it; fire it with a tenant's key or set its `tenant`"
                )));
            }
        };
        let runner = self.runner()?;
        let run = runner
            .submit(SubmitRequest {
                workflow: w.name,
                version: w.version,
                definition: w.definition,
                tenant,
                params,
            })
            .await?;
        Ok(run)
    }

    /// Runs the caller may see, newest first (a tenant's filter is forced to itself).
    pub(crate) async fn list(
        &self,
        who: &Caller,
        mut filter: RunFilter,
    ) -> Result<Vec<Run>, RunsError> {
        if let Some(me) = who.tenant() {
            filter.tenant = Some(me.to_owned());
        }
        match self.app.runs.runner() {
            Ok(r) => Ok(r.list(&filter).await?),
            Err(_) => Ok(
                mcpgate_runs::RunStore::list_runs(&self.app.runs.sql, &filter)
                    .await
                    .map_err(|e| RunsError::Unavailable(e.to_string()))?,
            ),
        }
    }

    /// One run, if the caller may see it (else 404, as for an unknown id).
    pub(crate) async fn get(&self, who: &Caller, id: &str) -> Result<Run, RunsError> {
        let run_id = RunId::parse(id).ok_or_else(|| no_run(id))?;
        let run = match self.app.runs.runner() {
            Ok(r) => r.get(&run_id).await?,
            Err(_) => mcpgate_runs::RunStore::get_run(&self.app.runs.sql, &run_id)
                .await
                .map_err(|e| RunsError::Unavailable(e.to_string()))?
                .ok_or_else(|| no_run(id))?,
        };
        if !who.may_see_tenant(Some(&run.tenant)) {
            return Err(no_run(id));
        }
        Ok(run)
    }

    /// Cancels a run; the run as it is now.
    pub(crate) async fn cancel(&self, who: &Caller, id: &str) -> Result<Run, RunsError> {
        let run = self.get(who, id).await?;
        Ok(self.runner()?.cancel(&run.id).await?)
    }

    /// The run's log after event `after` (0: from the start), then live until it ends.
    pub(crate) async fn follow(
        &self,
        who: &Caller,
        id: &str,
        after: u64,
    ) -> Result<impl Stream<Item = Result<RunEvent, RunsError>> + Send + 'static + use<>, RunsError>
    {
        let run = self.get(who, id).await?;
        let runner = self.runner()?.clone();
        Ok(runner
            .follow(run.id, after)
            .map(|e| e.map_err(RunsError::from)))
    }

    fn run_dir(&self, run: &Run) -> PathBuf {
        self.app.runs.artifacts_dir.join(run.id.as_str())
    }

    /// The run's artifacts: those collected at its end and those it uploaded.
    pub(crate) async fn artifacts(
        &self,
        who: &Caller,
        id: &str,
    ) -> Result<Vec<Artifact>, RunsError> {
        let run = self.get(who, id).await?;
        let mut out = run.artifacts.clone();
        let dir = self.run_dir(&run);
        let mut pending = vec![dir.clone()];
        while let Some(d) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                let path = e.path();
                if ft.is_dir() {
                    pending.push(path);
                } else if ft.is_file() {
                    let Ok(rel) = path.strip_prefix(&dir) else {
                        continue;
                    };
                    let name = rel.to_string_lossy().replace('\\', "/");
                    if out.iter().any(|a| a.name == name) {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    out.push(Artifact {
                        name,
                        size: bytes.len() as u64,
                        sha256: hex(&Sha256::digest(&bytes)),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Where one artifact's file is (404 if there is none; 400 for a path with `..`).
    pub(crate) async fn artifact_path(
        &self,
        who: &Caller,
        id: &str,
        path: &str,
    ) -> Result<PathBuf, RunsError> {
        let run = self.get(who, id).await?;
        let file = mcpgate_runs::artifacts::artifact_path(&self.run_dir(&run), path)
            .map_err(|e| RunsError::BadRequest(e.to_string()))?;
        match std::fs::symlink_metadata(&file) {
            Ok(m) if m.is_file() => Ok(file),
            _ => Err(RunsError::NotFound(format!(
                "run {id} has no artifact {path}"
            ))),
        }
    }

    /// Stores an artifact uploaded by the run itself (only its own key, while it runs).
    pub(crate) async fn put_artifact(
        &self,
        who: &Caller,
        id: &str,
        path: &str,
        bytes: &[u8],
    ) -> Result<Artifact, RunsError> {
        let run = self.get(who, id).await?;
        let own =
            matches!(who, Caller::Tenant(p) if p.run.as_ref().is_some_and(|s| s.run == run.id));
        if !own {
            return Err(RunsError::Forbidden(format!(
                "only run {id}'s own key may upload its artifacts"
            )));
        }
        if run.state.is_final() {
            return Err(RunsError::Conflict(format!(
                "run {id} has ended ({})",
                run.state
            )));
        }
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(RunsError::TooLarge(format!(
                "artifact {path} is {} bytes; the cap is {MAX_UPLOAD_BYTES}",
                bytes.len()
            )));
        }
        let file = mcpgate_runs::artifacts::artifact_path(&self.run_dir(&run), path)
            .map_err(|e| RunsError::BadRequest(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::symlink_metadata(&file).is_ok_and(|m| !m.is_file()) {
                return Err(std::io::Error::other("not a regular file"));
            }
            std::fs::write(&file, bytes)
        };
        write()
            .map_err(|e| RunsError::Unavailable(format!("cannot store artifact {path}: {e}")))?;
        Ok(Artifact {
            name: path.to_owned(),
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds what a run key's call cost to its run (errors only logged: the call is done).
pub(crate) async fn add_run_usage(app: &App, scope: &RunScope, delta: UsageDelta) {
    if let Ok(runner) = app.runs.runner()
        && let Err(e) = runner.add_usage(&scope.run, delta).await
    {
        tracing::warn!(run = %scope.run, "cannot record the run's usage: {e}");
    }
}

/// The runner's hooks: mints and revokes run keys.
pub(crate) struct RunKeys {
    pub(crate) app: Weak<App>,
    /// The gateway as the agent reaches it (`http://127.0.0.1:PORT`).
    pub(crate) gateway_url: String,
}

#[async_trait::async_trait]
impl RunHooks for RunKeys {
    async fn grant(&self, run: &Run, deadline_ms: u64) -> Result<RunGrant, String> {
        let app = self.app.upgrade().ok_or("the gateway is shutting down")?;
        let (model_base_url, model_id) = match &run.definition.model {
            Some(m) => {
                let model = app.cfg.models.get(m).ok_or_else(|| {
                    format!("the workflow's model {m} is not a [models.{m}] of the gateway")
                })?;
                (
                    Some(format!("{}/models/{m}", self.gateway_url)),
                    model.model.clone(),
                )
            }
            None => (None, None),
        };
        let label = run_key_label(&run.id);
        let key = app
            .store
            .create_key(
                Some(&run.tenant),
                Some(&label),
                Some(i64::try_from(deadline_ms).unwrap_or(i64::MAX)),
            )
            .await
            .map_err(|e| format!("cannot mint the run's key: {e}"))?;
        app.runs.add_scope(
            &key.info.id,
            RunScope {
                run: run.id.clone(),
                tools: run.definition.tools.clone(),
                budget: run.definition.budget,
                model: run.definition.model.clone(),
                spent: Default::default(),
            },
        );
        Ok(RunGrant {
            key: key.token,
            gateway_url: self.gateway_url.clone(),
            mcp_url: format!("{}/mcp", self.gateway_url),
            tool_separator: app.cfg.separator.clone(),
            model_base_url,
            model_id,
        })
    }

    async fn release(&self, run: &Run) {
        let Some(app) = self.app.upgrade() else {
            return;
        };
        crate::telemetry::run_span(app.telemetry.as_ref(), run);
        let label = run_key_label(&run.id);
        match app.store.list_keys(Some(&run.tenant)).await {
            Ok(keys) => {
                for k in keys
                    .into_iter()
                    .filter(|k| k.label.as_deref() == Some(&label))
                {
                    if let Err(e) = app.store.revoke_key(&k.id).await {
                        tracing::error!(run = %run.id, "cannot revoke the run's key: {e}");
                    }
                    app.runs.remove_scope(&k.id);
                }
            }
            Err(e) => tracing::error!(run = %run.id, "cannot find the run's key to revoke: {e}"),
        }
        app.auth.forget_cached();
    }
}
