//! Measures run start on the bubblewrap backend: the time from
//! `Runner::submit` to the first output line of a `command` run (`echo`),
//! as a follower of the run's log receives it, over N runs one after the
//! other (no warm pool), next to bwrap alone starting `/usr/bin/true` with
//! the same namespaces. Prints min, p50, p90 and max in milliseconds.
//!
//! Build the package first so `mcpgate-sandbox-init` sits next to the
//! example, then run, for instance:
//! `cargo build --release -p mcpgate-runs --bins --examples &&
//! target/release/examples/run_start 20`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mcpgate_runs::{
    Backend, EventBody, FixedGrant, InitProgram, LocalConfig, MemoryRunStore, RunGrant, Runner,
    RunnerConfig, SubmitRequest, Workflow,
};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<38} n={:<3} min {:6.2} ms  p50 {:6.2} ms  p90 {:6.2} ms  max {:6.2} ms",
        samples.len(),
        percentile(&samples, 0.0),
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 1.0)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20);
    let exe = std::env::current_exe()?;
    let init = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("mcpgate-sandbox-init"))
        .filter(|p| p.exists())
        .ok_or("mcpgate-sandbox-init is missing: cargo build -p mcpgate-runs --bins")?;
    let data = std::env::temp_dir().join(format!("mcpgate-run-start-{}", std::process::id()));
    let backend = Backend::local(LocalConfig {
        bwrap: None,
        init: InitProgram {
            program: init,
            args: vec![],
        },
    })
    .await?;
    let runner = Runner::start(
        RunnerConfig::new(&data),
        backend,
        Arc::new(MemoryRunStore::new()),
        Arc::new(FixedGrant(RunGrant {
            key: "k".into(),
            gateway_url: "http://127.0.0.1:8787".into(),
            mcp_url: "http://127.0.0.1:8787/mcp".into(),
            tool_separator: "__".into(),
            model_base_url: None,
            model_id: None,
        })),
    )
    .await?;
    let workflow =
        Workflow::from_json_str(r#"{"agent": "command", "command": ["echo", "first"]}"#)?;
    let mut first_line = Vec::new();
    for i in 0..n + 2 {
        let started = Instant::now();
        let run = runner
            .submit(SubmitRequest {
                workflow: "echo".into(),
                version: 1,
                definition: workflow.clone(),
                tenant: "bench".into(),
                params: BTreeMap::new(),
            })
            .await?;
        let mut log = Box::pin(runner.follow(run.id.clone(), 0));
        while let Some(event) = log.next().await {
            if matches!(event?.body, EventBody::Output { .. }) {
                if i >= 2 {
                    first_line.push(started.elapsed());
                }
                break;
            }
        }
        runner.wait(&run.id).await?;
    }
    report("submit -> first output line (command)", first_line);
    let bwrap = PathBuf::from("bwrap");
    let mut bwrap_alone = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        let status = Command::new(&bwrap)
            .args([
                "--unshare-user",
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
                "--unshare-net",
                "--die-with-parent",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--",
                "/usr/bin/true",
            ])
            .status()?;
        bwrap_alone.push(started.elapsed());
        if !status.success() {
            return Err("bwrap failed".into());
        }
    }
    report("bwrap alone (/usr/bin/true)", bwrap_alone);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
