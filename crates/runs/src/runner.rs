//! The runner: what the gateway holds to execute runs. [`Runner::submit`]
//! renders a workflow's prompt and queues a run; the queue (`queue.rs`)
//! starts it when a slot is free; one task per run then walks it through
//! `starting` (credential from [`RunHooks`], agent prepared by the adapter,
//! sandbox launched by the [`Backend`]) and `running` (output lines become
//! log events) to its end: `succeeded` or `failed` as the agent's transcript
//! says, `cancelled` by [`Runner::cancel`], or `timed_out` at the workflow's
//! deadline. Cancel and timeout kill every process of the run. After exit
//! the artifacts are collected, the credential released, the final state
//! stored, the run directory removed, and the next run started.
//!
//! Every state change and log event goes through the [`RunStore`], so runs
//! survive a restart: [`Runner::start`] marks runs that were starting or
//! running when the gateway died `failed` (`gateway restarted`) and queues
//! the queued ones again. [`Runner::follow`] replays a run's log from any
//! event and then follows it live until the run ends.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::adapters::{self, AgentInput, Transcript, Verdict, binary_name};
use crate::artifacts::{self, ArtifactLimits};
use crate::backend::kubernetes::RemoteEnd;
use crate::backend::{Backend, HostRelay, LaunchSpec, Launched, OutputLine, STOP_GRACE};
use crate::hooks::RunHooks;
use crate::limits::Limits;
use crate::live::{LiveRun, StopReason};
use crate::pod::PodRun;
use crate::queue::Queue;
use crate::run::{EventBody, Run, RunEvent, RunId, RunState, UsageDelta, now_ms};
use crate::store::{RunFilter, RunStore, RunStoreError};
use crate::workflow::{AgentKind, ParamError, Workflow, format_duration};

/// How long output may keep arriving after the first process exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Events read from the store per page when following a log.
const FOLLOW_PAGE: usize = 256;

/// Where the agents' programs are on the host (`None`: look on `PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentPrograms {
    /// Claude Code's `claude`.
    pub claude_code: Option<PathBuf>,
    /// Codex's `codex` (the native binary).
    pub codex: Option<PathBuf>,
}

/// The `[runs]` settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Most runs holding a slot at once (default 4).
    pub max_concurrent: usize,
    /// Most runs of one tenant at once (default: no cap of its own).
    pub per_tenant_max: Option<usize>,
    /// Where each run's workspace and home are made (removed after the run).
    pub runs_dir: PathBuf,
    /// Where artifacts are kept, one directory per run.
    pub artifacts_dir: PathBuf,
    /// Caps on artifacts.
    pub artifact_limits: ArtifactLimits,
    /// Largest log kept per run, in bytes (default 8 MiB).
    pub log_cap_bytes: usize,
    /// rlimits of every run; `cpu_seconds: None` becomes the run's timeout
    /// times the number of CPUs.
    pub limits: Limits,
    /// Loopback ports inside the sandbox and the host sockets they lead to
    /// (the gateway's).
    pub relays: Vec<HostRelay>,
    /// Where the agent CLIs are.
    pub agents: AgentPrograms,
    /// More host paths the sandbox sees read-only, at the same path.
    pub ro_paths: Vec<PathBuf>,
    /// Keep each run's directory after it ends (for debugging).
    pub keep_run_dirs: bool,
}

impl RunnerConfig {
    /// Defaults, with runs and artifacts under `data_dir`.
    pub fn new(data_dir: &Path) -> RunnerConfig {
        RunnerConfig {
            max_concurrent: 4,
            per_tenant_max: None,
            runs_dir: data_dir.join("runs"),
            artifacts_dir: data_dir.join("artifacts"),
            artifact_limits: ArtifactLimits::default(),
            log_cap_bytes: 8 << 20,
            limits: Limits::default(),
            relays: Vec::new(),
            agents: AgentPrograms::default(),
            ro_paths: Vec::new(),
            keep_run_dirs: false,
        }
    }
}

/// A request to run a workflow.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// The workflow's name.
    pub workflow: String,
    /// Its version (0 for one from the config file).
    pub version: u64,
    /// Its definition.
    pub definition: Workflow,
    /// The tenant who pays.
    pub tenant: String,
    /// The params as the caller sent them.
    pub params: BTreeMap<String, String>,
}

/// Why the runner refused a request.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The params do not fit the workflow (HTTP 400).
    #[error(transparent)]
    Params(#[from] ParamError),
    /// No such run (HTTP 404).
    #[error("no run {0}")]
    NotFound(RunId),
    /// The run is over already (HTTP 409).
    #[error("run {id} has already ended ({state})")]
    AlreadyFinished {
        /// The run.
        id: RunId,
        /// How it ended.
        state: RunState,
    },
    /// The store failed (HTTP 500).
    #[error(transparent)]
    Store(#[from] RunStoreError),
    /// The runner is shutting down (HTTP 503).
    #[error("the runner is shutting down")]
    ShuttingDown,
}

struct Inner {
    config: RunnerConfig,
    backend: Backend,
    store: Arc<dyn RunStore>,
    hooks: Arc<dyn RunHooks>,
    queue: Mutex<Queue>,
    live: Mutex<HashMap<RunId, Arc<LiveRun>>>,
    tasks: TaskTracker,
    closing: std::sync::atomic::AtomicBool,
}

/// Executes runs; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("backend", &self.inner.backend.kind())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runner {
    /// Starts the runner: recovers runs left unfinished by a previous
    /// gateway (see the module docs), then starts queued runs.
    pub async fn start(
        config: RunnerConfig,
        backend: Backend,
        store: Arc<dyn RunStore>,
        hooks: Arc<dyn RunHooks>,
    ) -> Result<Runner, RunError> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::new(config.max_concurrent, config.per_tenant_max)),
            config,
            backend,
            store,
            hooks,
            live: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        for run in inner.store.unfinished_runs().await? {
            let last_seq = inner.store.last_seq(&run.id).await?;
            let live = LiveRun::new(run.clone(), last_seq, inner.config.log_cap_bytes);
            let reattach = matches!(inner.backend, Backend::Kubernetes(_));
            if run.state == RunState::Queued || reattach {
                // Queued runs start again; on Kubernetes, runs that were
                // starting or running still are (their Job outlived the
                // gateway) and are re-attached when they get their slot.
                lock(&inner.live).insert(run.id.clone(), live);
                lock(&inner.queue).push(run.id.clone(), run.tenant.clone());
            } else {
                tracing::warn!(run = %run.id, state = %run.state, "run was interrupted by a gateway restart");
                let ended = live.update(|r| {
                    r.state = RunState::Failed;
                    r.reason = Some("gateway restarted".into());
                    r.finished_at = Some(now_ms());
                });
                inner.store.update_run(&ended).await?;
                live.emit(&*inner.store, vec![state_event(&ended)]).await?;
            }
        }
        let runner = Runner { inner };
        runner.inner.pump();
        Ok(runner)
    }

    /// The backend runs execute on.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Renders the prompt, stores the run as `queued`, and starts it when a
    /// slot is free.
    pub async fn submit(&self, request: SubmitRequest) -> Result<Run, RunError> {
        if self.inner.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RunError::ShuttingDown);
        }
        let rendered = request.definition.render(&request.params)?;
        let run = Run {
            id: RunId::generate(),
            workflow: request.workflow,
            workflow_version: request.version,
            definition: request.definition,
            tenant: request.tenant,
            params: rendered.params,
            prompt: rendered.prompt,
            state: RunState::Queued,
            reason: None,
            exit_code: None,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
            cost: 0,
            tool_calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            artifacts: Vec::new(),
        };
        self.inner.store.insert_run(&run).await?;
        let live = LiveRun::new(run.clone(), 0, self.inner.config.log_cap_bytes);
        live.emit(&*self.inner.store, vec![state_event(&run)])
            .await?;
        lock(&self.inner.live).insert(run.id.clone(), live);
        lock(&self.inner.queue).push(run.id.clone(), run.tenant.clone());
        self.inner.pump();
        Ok(run)
    }

    /// Cancels a run: a queued run ends at once; a starting or running one
    /// is killed (every process) and ends `cancelled` shortly after. Returns
    /// the run as it is now.
    pub async fn cancel(&self, id: &RunId) -> Result<Run, RunError> {
        let Some(live) = lock(&self.inner.live).get(id).cloned() else {
            return match self.inner.store.get_run(id).await? {
                Some(run) => Err(RunError::AlreadyFinished {
                    id: id.clone(),
                    state: run.state,
                }),
                None => Err(RunError::NotFound(id.clone())),
            };
        };
        let was_waiting = lock(&self.inner.queue).remove(id);
        if was_waiting {
            live.stop(StopReason::Cancelled);
            let before = live.snapshot().state;
            let reason = if before == RunState::Queued {
                "cancelled before it started"
            } else {
                // A Kubernetes run from before a restart, waiting for a slot
                // to be re-attached: its Job is still going.
                if let Backend::Kubernetes(cluster) = &self.inner.backend {
                    cluster.delete_run(id).await;
                }
                "cancelled"
            };
            let ended = Ended::new(RunState::Cancelled, Some(reason.into()));
            self.inner.finish(&live, ended, false).await;
        } else {
            live.stop(StopReason::Cancelled);
        }
        Ok(live.snapshot())
    }

    /// One run, live or from the store.
    pub async fn get(&self, id: &RunId) -> Result<Run, RunError> {
        let live = lock(&self.inner.live).get(id).map(|l| l.snapshot());
        match live {
            Some(run) => Ok(run),
            None => self
                .inner
                .store
                .get_run(id)
                .await?
                .ok_or_else(|| RunError::NotFound(id.clone())),
        }
    }

    /// Runs passing `filter`, newest first.
    pub async fn list(&self, filter: &RunFilter) -> Result<Vec<Run>, RunError> {
        Ok(self.inner.store.list_runs(filter).await?)
    }

    /// Waits until the run has ended; the final record.
    pub async fn wait(&self, id: &RunId) -> Result<Run, RunError> {
        loop {
            let live = lock(&self.inner.live).get(id).cloned();
            let Some(live) = live else {
                return self.get(id).await;
            };
            let mut changes = live.subscribe();
            drop(live);
            if changes.changed().await.is_err() {
                // The run ended and its live state was dropped.
                return self.get(id).await;
            }
        }
    }

    /// Adds usage the gateway saw on the run's key or model proxy.
    pub async fn add_usage(&self, id: &RunId, delta: UsageDelta) -> Result<(), RunError> {
        let add = |r: &mut Run| {
            r.cost += delta.cost;
            r.tool_calls += delta.tool_calls;
            r.input_tokens += delta.input_tokens;
            r.output_tokens += delta.output_tokens;
        };
        let live = lock(&self.inner.live).get(id).cloned();
        let run = match live {
            Some(live) => live.update(add),
            None => {
                let mut run = self
                    .inner
                    .store
                    .get_run(id)
                    .await?
                    .ok_or_else(|| RunError::NotFound(id.clone()))?;
                add(&mut run);
                run
            }
        };
        self.inner.store.update_run(&run).await?;
        Ok(())
    }

    /// The run's log from event `after` + 1 on: stored events first, then
    /// new ones as they come, ending after the event of its final state.
    pub fn follow(
        &self,
        id: RunId,
        after: u64,
    ) -> impl Stream<Item = Result<RunEvent, RunError>> + Send + 'static + use<> {
        let follow = Follow {
            inner: self.inner.clone(),
            id,
            after,
            buffer: VecDeque::new(),
            changes: None,
            subscribed: false,
            done: false,
        };
        futures::stream::unfold(follow, Follow::next)
    }

    /// Runs that hold a slot, and runs waiting for one.
    pub fn load(&self) -> (usize, usize) {
        let queue = lock(&self.inner.queue);
        (queue.running(), queue.waiting())
    }

    /// Stops starting runs, kills the running ones (they end `failed`,
    /// `gateway shut down`) and waits for them; queued runs stay queued for
    /// the next start.
    pub async fn shutdown(&self) {
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let live: Vec<Arc<LiveRun>> = lock(&self.inner.live).values().cloned().collect();
        let waiting: Vec<RunId> = live
            .iter()
            .map(|l| l.snapshot())
            .filter(|r| r.state == RunState::Queued)
            .map(|r| r.id)
            .collect();
        for l in &live {
            if !waiting.contains(&l.snapshot().id) {
                l.stop(StopReason::Shutdown);
            }
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ended {
    state: RunState,
    reason: Option<String>,
    exit_code: Option<i32>,
    /// Not ended: a remote run left running because the gateway stops.
    detached: bool,
}

impl Ended {
    fn new(state: RunState, reason: Option<String>) -> Ended {
        Ended {
            state,
            reason,
            exit_code: None,
            detached: false,
        }
    }

    fn failed(reason: impl Into<String>) -> Ended {
        Ended::new(RunState::Failed, Some(reason.into()))
    }
}

fn state_event(run: &Run) -> EventBody {
    EventBody::State {
        state: run.state,
        reason: run.reason.clone(),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

impl Inner {
    /// Starts queued runs while slots are free.
    fn pump(self: &Arc<Self>) {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        loop {
            let Some((id, tenant)) = lock(&self.queue).next() else {
                return;
            };
            let live = lock(&self.live).get(&id).cloned();
            match live {
                Some(live) => {
                    let inner = self.clone();
                    self.tasks.spawn(async move { inner.drive(live).await });
                }
                None => lock(&self.queue).done(&tenant),
            }
        }
    }

    async fn persist(&self, live: &LiveRun, change: impl FnOnce(&mut Run)) -> Run {
        let run = live.update(change);
        if let Err(e) = self.store.update_run(&run).await {
            tracing::error!(run = %run.id, error = %e, "cannot store the run");
        }
        if let Err(e) = live.emit(&*self.store, vec![state_event(&run)]).await {
            tracing::error!(run = %run.id, error = %e, "cannot store a run event");
        }
        run
    }

    async fn notice(&self, live: &LiveRun, message: String) {
        let _ = live
            .emit(&*self.store, vec![EventBody::Notice { message }])
            .await;
    }

    /// One run's task, from its slot to its end.
    async fn drive(self: Arc<Self>, live: Arc<LiveRun>) {
        let before = live.snapshot();
        let resumed = matches!(before.state, RunState::Starting | RunState::Running);
        let run = if resumed {
            before
        } else {
            self.persist(&live, |r| {
                r.state = RunState::Starting;
                r.started_at = Some(now_ms());
            })
            .await
        };
        let run_dir = self.config.runs_dir.join(run.id.as_str());
        let ended = if resumed {
            self.resume(&live, &run).await
        } else {
            self.execute(&live, &run, &run_dir).await
        };
        if ended.detached {
            // A remote run left running while the gateway shuts down: its
            // key stays valid and the next start re-attaches it.
            tracing::info!(run = %run.id, "leaving the run on the cluster while the gateway stops");
            lock(&self.live).remove(&run.id);
            lock(&self.queue).done(&run.tenant);
            return;
        }
        let dropped = live.dropped().await;
        if dropped > 0 {
            self.notice(
                &live,
                format!("{dropped} log events over the cap were not kept"),
            )
            .await;
        }
        self.hooks.release(&live.snapshot()).await;
        if !self.config.keep_run_dirs {
            let dir = run_dir.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
        self.finish(&live, ended, true).await;
    }

    /// Stores the final state, forgets the live run and starts the next one.
    async fn finish(self: &Arc<Self>, live: &Arc<LiveRun>, ended: Ended, held_slot: bool) {
        let run = self
            .persist(live, |r| {
                r.state = ended.state;
                r.reason = ended.reason.clone();
                r.exit_code = ended.exit_code;
                r.finished_at = Some(now_ms());
            })
            .await;
        tracing::info!(run = %run.id, state = %run.state, reason = ?run.reason, "run ended");
        lock(&self.live).remove(&run.id);
        if held_slot {
            lock(&self.queue).done(&run.tenant);
        }
        self.pump();
    }

    fn stopped(&self, live: &LiveRun, timeout: Duration) -> Ended {
        match live.stop_reason() {
            Some(StopReason::Shutdown) => Ended::failed("gateway shut down"),
            Some(StopReason::Cancelled) => {
                Ended::new(RunState::Cancelled, Some("cancelled".into()))
            }
            None => Ended::new(
                RunState::TimedOut,
                Some(format!("timed out after {}", format_duration(timeout))),
            ),
        }
    }

    /// Credential, agent, sandbox, output, exit, artifacts.
    async fn execute(&self, live: &LiveRun, run: &Run, run_dir: &Path) -> Ended {
        let workflow = &run.definition;
        let timeout = workflow.timeout;
        let deadline = Instant::now() + timeout;
        let deadline_ms = now_ms() + timeout.as_millis() as u64;
        let stop = async {
            tokio::select! {
                _ = live.cancel.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        };
        tokio::pin!(stop);
        if let Err(e) = std::fs::create_dir_all(run_dir) {
            return Ended::failed(format!(
                "cannot create the run directory {}: {e}",
                run_dir.display()
            ));
        }
        let grant = tokio::select! {
            grant = self.hooks.grant(run, deadline_ms) => grant,
            () = &mut stop => return self.stopped(live, timeout),
        };
        let grant = match grant {
            Ok(grant) => grant,
            Err(e) => return Ended::failed(format!("cannot issue the run's credential: {e}")),
        };
        let system_prompt = workflow.render_system_prompt(&run.params);
        if let Backend::Kubernetes(cluster) = &self.backend {
            let spec = PodRun {
                run_id: run.id.clone(),
                workflow: workflow.clone(),
                prompt: run.prompt.clone(),
                system_prompt,
                gateway_url: grant.gateway_url.clone(),
                mcp_url: grant.mcp_url.clone(),
                tool_separator: grant.tool_separator.clone(),
                model_base_url: grant.model_base_url.clone(),
                model_id: grant.model_id.clone(),
            };
            let launched = tokio::select! {
                launched = cluster.launch(spec, &grant.key, timeout) => launched,
                () = &mut stop => return self.stopped(live, timeout),
            };
            return match launched {
                Ok(remote) => {
                    self.persist(live, |r| r.state = RunState::Running).await;
                    self.supervise(live, run, Launched::remote(remote), stop, timeout, 0)
                        .await
                }
                Err(e) => Ended::failed(e.to_string()),
            };
        }
        let program = self.program(workflow.agent);
        let mut ro_paths = self.config.ro_paths.clone();
        if let Some(dir) = program.as_deref().and_then(Path::parent)
            && !dir.starts_with("/usr")
        {
            ro_paths.push(dir.to_owned());
        }
        let paths = self.backend.paths(run_dir);
        let prepared = match adapters::prepare(&AgentInput {
            run_id: &run.id,
            workflow,
            prompt: &run.prompt,
            system_prompt: system_prompt.as_deref(),
            grant: &grant,
            paths: &paths,
            program: program.as_deref(),
            sandboxed: self.backend.is_sandboxed(),
        }) {
            Ok(prepared) => prepared,
            Err(e) => return Ended::failed(e.to_string()),
        };
        let mut limits = self.config.limits;
        if limits.cpu_seconds.is_none() {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
            limits.cpu_seconds = Some(timeout.as_secs().max(1) * cpus);
        }
        let spec = LaunchSpec {
            run_id: run.id.to_string(),
            run_dir: run_dir.to_owned(),
            argv: prepared.argv,
            env: prepared.env,
            files: prepared.files,
            relays: self.config.relays.clone(),
            ro_paths,
            limits,
            cli_tools: prepared.cli_tools,
        };
        if !self.backend.is_sandboxed() {
            tracing::warn!(run = %run.id, "running WITHOUT a sandbox ([runs] backend = \"unsandboxed\")");
            self.notice(
                live,
                "this run is NOT sandboxed ([runs] backend = \"unsandboxed\"): the agent runs as \
                 the gateway's user and can reach the network"
                    .into(),
            )
            .await;
        }
        let launched = match self.backend.launch(&spec).await {
            Ok(launched) => launched,
            Err(e) => return Ended::failed(e.to_string()),
        };
        self.persist(live, |r| r.state = RunState::Running).await;
        let ended = self.supervise(live, run, launched, stop, timeout, 0).await;
        self.collect_artifacts(live, run, &spec.workspace_dir())
            .await;
        ended
    }

    /// After a restart, follows a run that was starting or running on a
    /// remote backend; its log continues after the events already stored.
    async fn resume(&self, live: &LiveRun, run: &Run) -> Ended {
        let Backend::Kubernetes(cluster) = &self.backend else {
            return Ended::failed("gateway restarted");
        };
        let timeout = run.definition.timeout;
        let started = run.started_at.unwrap_or(run.created_at);
        let left = (started + timeout.as_millis() as u64).saturating_sub(now_ms());
        let deadline = Instant::now() + Duration::from_millis(left);
        let stop = async {
            tokio::select! {
                _ = live.cancel.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        };
        tokio::pin!(stop);
        let stored = match self.line_events_stored(&run.id).await {
            Ok(n) => n,
            Err(e) => return Ended::failed(format!("cannot read the run's log: {e}")),
        };
        let remote = tokio::select! {
            found = cluster.reattach(&run.id) => found,
            () = &mut stop => return self.stopped(live, timeout),
        };
        match remote {
            Ok(Some(remote)) => {
                tracing::info!(run = %run.id, "re-attached to the run's Kubernetes Job");
                self.notice(
                    live,
                    "the gateway restarted; following the run's Job again".into(),
                )
                .await;
                if run.state != RunState::Running {
                    self.persist(live, |r| r.state = RunState::Running).await;
                }
                self.supervise(live, run, Launched::remote(remote), stop, timeout, stored)
                    .await
            }
            Ok(None) => {
                Ended::failed("the run's Kubernetes Job vanished while the gateway was down")
            }
            Err(e) => Ended::failed(format!("cannot re-attach after a gateway restart: {e}")),
        }
    }

    /// Events of a run's log that came from its output (not states or the
    /// runner's notices): what a re-attached log skips.
    async fn line_events_stored(&self, id: &RunId) -> Result<usize, RunStoreError> {
        let mut after = 0;
        let mut count = 0;
        loop {
            let page = self.store.events(id, after, FOLLOW_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(count);
            };
            after = last.seq;
            count += page
                .iter()
                .filter(|e| !matches!(e.body, EventBody::State { .. } | EventBody::Notice { .. }))
                .count();
        }
    }

    /// Output, stop and exit of a launched run; `skip`: output events
    /// already stored by an earlier gateway (a re-attached log starts over).
    async fn supervise(
        &self,
        live: &LiveRun,
        run: &Run,
        mut launched: Launched,
        mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        timeout: Duration,
        skip: usize,
    ) -> Ended {
        let workflow = &run.definition;
        let mut skip = skip;
        let mut transcript = Transcript::for_agent(workflow.agent);
        let mut output = launched.take_output();
        let killer = launched.killer();
        let launched_remote = launched.is_remote();
        let mut stopped = None;
        let mut output_open = true;
        let force = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(force);
        let exit_code = {
            let wait = launched.wait();
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    biased;
                    code = &mut wait => break code,
                    () = &mut stop, if stopped.is_none() => {
                        if launched_remote && live.stop_reason() == Some(StopReason::Shutdown) {
                            let mut ended = Ended::failed("gateway shut down");
                            ended.detached = true;
                            return ended;
                        }
                        killer.stop();
                        force.as_mut().reset(Instant::now() + STOP_GRACE);
                        stopped = Some(self.stopped(live, timeout));
                    }
                    () = &mut force, if stopped.is_some() => {
                        killer.kill();
                        force.as_mut().reset(Instant::now() + Duration::from_secs(3600));
                    }
                    line = output.recv(), if output_open => match line {
                        Some(line) => self.log_lines(live, &mut transcript, line, &mut output, &mut skip).await,
                        None => output_open = false,
                    },
                }
            }
        };
        if output_open {
            let drain = async {
                while let Some(line) = output.recv().await {
                    self.log_lines(live, &mut transcript, line, &mut output, &mut skip)
                        .await;
                }
            };
            if tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await.is_err() {
                self.notice(
                    live,
                    "output was still open after the agent exited; the rest is not kept".into(),
                )
                .await;
            }
        }
        if stopped.is_none()
            && let Some(end) = launched.ending()
        {
            return match end {
                RemoteEnd::TimedOut(reason) => Ended::new(RunState::TimedOut, Some(reason.clone())),
                RemoteEnd::Failed(reason) => Ended::failed(reason.clone()),
                RemoteEnd::Stopped | RemoteEnd::Exited(_) => Ended::failed("the run was stopped"),
            };
        }
        let mut ended = stopped.unwrap_or_else(|| match transcript.verdict(exit_code) {
            Verdict::Succeeded => Ended::new(RunState::Succeeded, None),
            Verdict::Failed(reason) => Ended::failed(reason),
        });
        if launched.ending().is_none() {
            ended.exit_code = Some(exit_code);
        }
        ended
    }

    /// Logs a line and whatever else is already waiting (one store write).
    async fn log_lines(
        &self,
        live: &LiveRun,
        transcript: &mut Transcript,
        first: OutputLine,
        output: &mut tokio::sync::mpsc::Receiver<OutputLine>,
        skip: &mut usize,
    ) {
        let mut events = transcript.on_line(first.stream, &first.line);
        for _ in 0..FOLLOW_PAGE {
            match output.try_recv() {
                Ok(line) => events.extend(transcript.on_line(line.stream, &line.line)),
                Err(_) => break,
            }
        }
        if *skip > 0 {
            // Stored before a restart: the transcript sees them again (it
            // keeps its state) but they are not stored twice.
            let n = (*skip).min(events.len());
            events.drain(..n);
            *skip -= n;
        }
        if let Err(e) = live.emit(&*self.store, events).await {
            tracing::error!(error = %e, "cannot store run output");
        }
    }

    async fn collect_artifacts(&self, live: &LiveRun, run: &Run, workspace: &Path) {
        if run.definition.artifacts.is_empty() {
            return;
        }
        let workspace = workspace.to_owned();
        let globs = run.definition.artifacts.clone();
        let dest = self.config.artifacts_dir.join(run.id.as_str());
        let limits = self.config.artifact_limits;
        let collected = tokio::task::spawn_blocking(move || {
            artifacts::collect(&workspace, &globs, &dest, &limits)
        })
        .await;
        match collected {
            Ok(Ok(collected)) => {
                for refusal in collected.refused {
                    self.notice(live, format!("artifact not kept: {refusal}"))
                        .await;
                }
                live.update(|r| r.artifacts = collected.artifacts);
            }
            Ok(Err(e)) => {
                self.notice(live, format!("artifacts not collected: {e}"))
                    .await
            }
            Err(e) => {
                self.notice(live, format!("artifacts not collected: {e}"))
                    .await
            }
        }
    }

    /// The agent's program on the host, canonical (so its real file is bound).
    fn program(&self, agent: AgentKind) -> Option<PathBuf> {
        let configured = match agent {
            AgentKind::ClaudeCode => self.config.agents.claude_code.clone(),
            AgentKind::Codex => self.config.agents.codex.clone(),
            AgentKind::Command => return None,
        };
        configured
            .or_else(|| find_on_path(binary_name(agent)?))?
            .canonicalize()
            .ok()
    }
}

/// The state of one [`Runner::follow`] stream.
struct Follow {
    inner: Arc<Inner>,
    id: RunId,
    after: u64,
    buffer: VecDeque<RunEvent>,
    changes: Option<watch::Receiver<u64>>,
    subscribed: bool,
    done: bool,
}

impl Follow {
    async fn next(mut self) -> Option<(Result<RunEvent, RunError>, Follow)> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.seq;
                if matches!(event.body, EventBody::State { state, .. } if state.is_final()) {
                    self.done = true;
                    self.buffer.clear();
                }
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            if !self.subscribed {
                // Subscribe before reading, so no event slips between the two.
                self.subscribed = true;
                self.changes = lock(&self.inner.live).get(&self.id).map(|l| l.subscribe());
            }
            let page = match self
                .inner
                .store
                .events(&self.id, self.after, FOLLOW_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    self.done = true;
                    let missing = self.after == 0 && self.changes.is_none();
                    let error = if missing {
                        RunError::NotFound(self.id.clone())
                    } else {
                        RunError::Store(e)
                    };
                    return Some((Err(error), self));
                }
            };
            if !page.is_empty() {
                self.buffer.extend(page);
                continue;
            }
            match &mut self.changes {
                Some(changes) => {
                    if changes.changed().await.is_err() {
                        // The run has ended: read what is left, then stop.
                        self.changes = None;
                    }
                }
                None if self.after == 0 => {
                    // Not live and no log at all: is there such a run?
                    self.done = true;
                    return match self.inner.store.get_run(&self.id).await {
                        Ok(Some(_)) => None,
                        Ok(None) => Some((Err(RunError::NotFound(self.id.clone())), self)),
                        Err(e) => Some((Err(RunError::Store(e)), self)),
                    };
                }
                None => return None,
            }
        }
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
