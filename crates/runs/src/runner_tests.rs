//! Unit tests for [`super`] that need no sandbox: recovery after a restart,
//! refused params, cancelling queued and starting runs, and following a log.
//! Runs here use a backend whose first process does not exist, and hooks
//! that can hold a run in `starting`; real sandboxes are tested in
//! `crates/runs/tests/`.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Semaphore;

use super::*;
use crate::backend::InitProgram;
use crate::hooks::RunGrant;
use crate::store::MemoryRunStore;

/// Hands out grants only when the test adds permits; counts releases.
struct GatedHooks {
    gate: Semaphore,
    released: AtomicUsize,
}

#[async_trait]
impl RunHooks for GatedHooks {
    async fn grant(&self, _run: &Run, _deadline_ms: u64) -> Result<RunGrant, String> {
        let permit = self.gate.acquire().await.map_err(|e| e.to_string())?;
        permit.forget();
        Ok(RunGrant {
            key: "k".into(),
            gateway_url: "http://127.0.0.1:1".into(),
            mcp_url: "http://127.0.0.1:1/mcp".into(),
            tool_separator: "__".into(),
            model_base_url: None,
            model_id: None,
        })
    }

    async fn release(&self, _run: &Run) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

fn hooks(permits: usize) -> Arc<GatedHooks> {
    Arc::new(GatedHooks {
        gate: Semaphore::new(permits),
        released: AtomicUsize::new(0),
    })
}

/// A data directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> Scratch {
    Scratch(std::env::temp_dir().join(format!(
        "mcpgate-runner-unit-{}-{}",
        std::process::id(),
        RunId::generate()
    )))
}

/// A backend whose `sandbox-init` does not exist: launching fails.
fn broken_backend() -> Backend {
    Backend::unsandboxed(InitProgram {
        program: "/nonexistent/mcpgate-sandbox-init".into(),
        args: vec![],
    })
}

fn echo_workflow() -> Workflow {
    Workflow::from_json_str(
        r#"{"agent": "command", "command": ["echo", "{{x}}"], "params": {"x": {"required": true}}}"#,
    )
    .expect("workflow")
}

fn request(x: Option<&str>) -> SubmitRequest {
    SubmitRequest {
        workflow: "echo".into(),
        version: 3,
        definition: echo_workflow(),
        tenant: "acme".into(),
        params: x
            .map(|x| BTreeMap::from([("x".to_owned(), x.to_owned())]))
            .unwrap_or_default(),
    }
}

async fn runner(
    max: usize,
    hooks: Arc<GatedHooks>,
    store: Arc<MemoryRunStore>,
) -> (Runner, Scratch) {
    let data = scratch();
    let mut config = RunnerConfig::new(&data.0);
    config.max_concurrent = max;
    let runner = Runner::start(config, broken_backend(), store, hooks)
        .await
        .expect("starts");
    (runner, data)
}

#[tokio::test]
async fn bad_params_are_refused_and_nothing_is_stored() {
    let store = Arc::new(MemoryRunStore::new());
    let (r, _data_r) = runner(1, hooks(0), store.clone()).await;
    let error = r.submit(request(None)).await.expect_err("missing x");
    assert!(matches!(error, RunError::Params(ParamError::Missing { ref name }) if name == "x"));
    assert!(
        r.list(&RunFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_launch_failure_fails_the_run_with_the_reason() {
    let store = Arc::new(MemoryRunStore::new());
    let gate = hooks(1);
    let (r, _data_r) = runner(1, gate.clone(), store).await;
    let run = r.submit(request(Some("hi"))).await.expect("queued");
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(run.prompt, "");
    assert_eq!(run.workflow_version, 3);
    let ended = r.wait(&run.id).await.expect("ends");
    assert_eq!(ended.state, RunState::Failed);
    let reason = ended.reason.expect("a reason");
    assert!(reason.contains("cannot start"), "{reason}");
    assert_eq!(
        gate.released.load(Ordering::SeqCst),
        1,
        "the grant is released"
    );
    let states: Vec<RunState> = r
        .follow(run.id.clone(), 0)
        .filter_map(|e| async move {
            match e.expect("event").body {
                EventBody::State { state, .. } => Some(state),
                _ => None,
            }
        })
        .collect()
        .await;
    assert_eq!(
        states,
        [RunState::Queued, RunState::Starting, RunState::Failed]
    );
}

#[tokio::test]
async fn cancel_queued_and_starting_runs() {
    let store = Arc::new(MemoryRunStore::new());
    let gate = hooks(0);
    let (r, _data_r) = runner(1, gate.clone(), store).await;
    let first = r.submit(request(Some("1"))).await.expect("queued");
    let second = r.submit(request(Some("2"))).await.expect("queued");
    // The first holds the only slot (its grant is held back); the second waits.
    let mut log = Box::pin(r.follow(first.id.clone(), 0));
    while !matches!(
        log.next().await.expect("event").expect("ok").body,
        EventBody::State {
            state: RunState::Starting,
            ..
        }
    ) {}
    assert_eq!(r.load(), (1, 1));
    let cancelled = r.cancel(&second.id).await.expect("cancels");
    assert_eq!(cancelled.state, RunState::Cancelled);
    assert_eq!(
        cancelled.reason.as_deref(),
        Some("cancelled before it started")
    );
    r.cancel(&first.id).await.expect("cancels");
    let ended = r.wait(&first.id).await.expect("ends");
    assert_eq!(ended.state, RunState::Cancelled);
    assert_eq!(r.load(), (0, 0));
    let again = r.cancel(&first.id).await.expect_err("over");
    assert!(matches!(
        again,
        RunError::AlreadyFinished {
            state: RunState::Cancelled,
            ..
        }
    ));
    let unknown = RunId::generate();
    assert!(matches!(
        r.cancel(&unknown).await,
        Err(RunError::NotFound(_))
    ));
    assert!(matches!(r.get(&unknown).await, Err(RunError::NotFound(_))));
}

#[tokio::test]
async fn a_restart_fails_interrupted_runs_and_starts_queued_ones() {
    let store = Arc::new(MemoryRunStore::new());
    let (before, _data_before) = runner(1, hooks(0), store.clone()).await;
    let running = before.submit(request(Some("a"))).await.expect("queued");
    let queued = before.submit(request(Some("b"))).await.expect("queued");
    // Pretend the gateway died with `running` in its sandbox.
    let mut record = store.get_run(&running.id).await.expect("get").expect("run");
    record.state = RunState::Running;
    store.update_run(&record).await.expect("update");
    drop(before);

    let (after, _data_after) = runner(1, hooks(1), store.clone()).await;
    let interrupted = after.get(&running.id).await.expect("run");
    assert_eq!(interrupted.state, RunState::Failed);
    assert_eq!(interrupted.reason.as_deref(), Some("gateway restarted"));
    let restarted = after.wait(&queued.id).await.expect("ends");
    assert_eq!(
        restarted.state,
        RunState::Failed,
        "it started (and failed to launch on the broken backend)"
    );
    assert!(restarted.started_at.is_some());
    let seqs: Vec<u64> = after
        .follow(queued.id.clone(), 0)
        .map(|e| e.expect("event").seq)
        .collect()
        .await;
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "event numbers continue after the restart");
}

#[tokio::test]
async fn usage_adds_up() {
    let store = Arc::new(MemoryRunStore::new());
    let (r, _data_r) = runner(1, hooks(0), store).await;
    let run = r.submit(request(Some("u"))).await.expect("queued");
    let delta = UsageDelta {
        cost: 5,
        tool_calls: 1,
        input_tokens: 100,
        output_tokens: 7,
    };
    r.add_usage(&run.id, delta).await.expect("adds");
    r.add_usage(&run.id, delta).await.expect("adds");
    let got = r.get(&run.id).await.expect("run");
    assert_eq!(
        (
            got.cost,
            got.tool_calls,
            got.input_tokens,
            got.output_tokens
        ),
        (10, 2, 200, 14)
    );
}

#[tokio::test]
async fn shutdown_ends_started_runs_and_keeps_queued_ones() {
    let store = Arc::new(MemoryRunStore::new());
    let (r, _data) = runner(1, hooks(0), store.clone()).await;
    let started = r.submit(request(Some("1"))).await.expect("queued");
    let waiting = r.submit(request(Some("2"))).await.expect("queued");
    let mut log = Box::pin(r.follow(started.id.clone(), 0));
    while !matches!(
        log.next().await.expect("event").expect("ok").body,
        EventBody::State {
            state: RunState::Starting,
            ..
        }
    ) {}
    r.shutdown().await;
    let ended = r.get(&started.id).await.expect("run");
    assert_eq!(ended.state, RunState::Failed);
    assert_eq!(ended.reason.as_deref(), Some("gateway shut down"));
    let kept = store.get_run(&waiting.id).await.expect("get").expect("run");
    assert_eq!(
        kept.state,
        RunState::Queued,
        "it starts after the next start"
    );
    assert!(matches!(
        r.submit(request(Some("3"))).await,
        Err(RunError::ShuttingDown)
    ));
}
