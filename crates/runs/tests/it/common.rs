//! Shared harness for the runs integration tests: a runner on the real
//! bubblewrap backend (or the unsandboxed one) with `mcpgate-sandbox-init`
//! from this package, scratch directories removed on drop, workflows from
//! JSON, and a look at `/proc` for every process of a run (each carries
//! `MCPGATE_RUN_ID` in its environment, bwrap included).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use mcpgate_runs::{
    Backend, FixedGrant, InitProgram, LocalConfig, MemoryRunStore, Run, RunEvent, RunGrant, RunId,
    Runner, RunnerConfig, SubmitRequest, Workflow,
};

/// A temporary directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "mcpgate-runs-it-{tag}-{}-{}",
            std::process::id(),
            RunId::generate()
        ));
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn init_program() -> InitProgram {
    InitProgram {
        program: PathBuf::from(env!("CARGO_BIN_EXE_mcpgate-sandbox-init")),
        args: vec![],
    }
}

/// The bubblewrap backend; fails the test (never skips) when bwrap is missing.
pub async fn local_backend() -> Backend {
    Backend::local(LocalConfig {
        bwrap: None,
        init: init_program(),
    })
    .await
    .unwrap_or_else(|e| panic!("the local sandbox must work here (scripts/install-test-deps.sh installs bubblewrap): {e}"))
}

pub fn grant(mcp_url: &str) -> RunGrant {
    RunGrant {
        key: "mcpg_run_test_key".into(),
        gateway_url: "http://127.0.0.1:8787".into(),
        mcp_url: mcp_url.into(),
        tool_separator: "__".into(),
        model_base_url: None,
        model_id: None,
    }
}

/// A runner with its scratch data dir.
pub struct Harness {
    pub runner: Runner,
    pub data: Scratch,
}

pub async fn harness_with(
    backend: Backend,
    grant: RunGrant,
    tweak: impl FnOnce(&mut RunnerConfig),
) -> Harness {
    let data = Scratch::new("data");
    let mut config = RunnerConfig::new(&data.0);
    tweak(&mut config);
    let runner = Runner::start(
        config,
        backend,
        Arc::new(MemoryRunStore::new()),
        Arc::new(FixedGrant(grant)),
    )
    .await
    .expect("runner starts");
    Harness { runner, data }
}

pub async fn harness(tweak: impl FnOnce(&mut RunnerConfig)) -> Harness {
    harness_with(
        local_backend().await,
        grant("http://127.0.0.1:8787/mcp"),
        tweak,
    )
    .await
}

pub fn workflow(json: &str) -> Workflow {
    Workflow::from_json_str(json).expect("valid workflow")
}

/// A `command` workflow running `sh -c SCRIPT`.
pub fn shell(script: &str, extra: &str) -> Workflow {
    let script = serde_json::to_string(script).expect("json string");
    workflow(&format!(
        r#"{{"agent": "command", "command": ["sh", "-c", {script}]{extra}}}"#
    ))
}

pub fn request(definition: Workflow) -> SubmitRequest {
    SubmitRequest {
        workflow: "test".into(),
        version: 1,
        definition,
        tenant: "acme".into(),
        params: BTreeMap::new(),
    }
}

impl Harness {
    pub async fn submit(&self, definition: Workflow) -> Run {
        self.runner
            .submit(request(definition))
            .await
            .expect("submitted")
    }

    /// Runs the workflow to its end; the final record and its whole log.
    pub async fn run(&self, definition: Workflow) -> (Run, Vec<RunEvent>) {
        let run = self.submit(definition).await;
        let ended = self.runner.wait(&run.id).await.expect("ends");
        (ended, self.events(&run.id).await)
    }

    pub async fn events(&self, id: &RunId) -> Vec<RunEvent> {
        self.runner
            .follow(id.clone(), 0)
            .map(|e| e.expect("event"))
            .collect()
            .await
    }
}

/// The stdout lines of a log.
pub fn stdout(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            mcpgate_runs::EventBody::Output {
                stream: mcpgate_runs::Stream::Stdout,
                line,
            } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// The log as text, for failure messages.
pub fn text(events: &[RunEvent]) -> String {
    events
        .iter()
        .map(RunEvent::to_text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Live processes (not zombies) whose environment holds `MCPGATE_RUN_ID=id`.
pub fn processes_of(id: &RunId) -> Vec<(i32, String)> {
    let needle = format!("MCPGATE_RUN_ID={id}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            let ours = environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes());
            (ours && state != "Z" && state != "X").then(|| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                (pid, comm.trim().to_owned())
            })
        })
        .collect()
}

/// Polls `/proc` until the run has no process left, or the deadline passes;
/// what is still there.
pub async fn gone_by(id: &RunId, deadline: tokio::time::Instant) -> Vec<(i32, String)> {
    loop {
        let left = processes_of(id);
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// target/debug (or release), where the workspace's binaries are.
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcpgate-sandbox-init"))
        .parent()
        .expect("target dir")
        .to_owned()
}

pub fn workspace_bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which scripts/test.sh does)",
        p.display()
    );
    p
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}
