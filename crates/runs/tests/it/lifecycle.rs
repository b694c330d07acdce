//! A run's life on the real sandbox: cancel kills every process of the run
//! within 2 s (checked in `/proc`), a timeout ends `timed_out` with nothing
//! left running, `max_concurrent = 2` never lets more than two of five runs
//! hold a slot, the log streams live, and artifacts are collected with
//! symlinks and `..` refused.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use mcpgate_runs::{Backend, EventBody, RunEvent, RunId, RunState, Workflow, WorkflowError};
use tokio::time::Instant;

use crate::common::*;

/// Background processes of every kind: a child, a `setsid` daemon, an orphan.
const SPAWN_AND_HANG: &str = "sleep 1000 & setsid sleep 1000 & (sleep 1000 &); echo ready; wait";

/// Follows the log until a stdout line equals `line`.
async fn until_line(h: &Harness, id: &RunId, line: &str) {
    let mut log = Box::pin(h.runner.follow(id.clone(), 0));
    while let Some(event) = log.next().await {
        if let EventBody::Output { line: l, .. } = event.expect("event").body
            && l == line
        {
            return;
        }
    }
    panic!("the run ended before printing {line:?}");
}

async fn cancel_kills_everything(h: &Harness) {
    let run = h.submit(shell(SPAWN_AND_HANG, "")).await;
    until_line(h, &run.id, "ready").await;
    // The background shells may not have exec'd `sleep` yet when `ready` prints.
    let visible_by = Instant::now() + Duration::from_secs(5);
    let before = loop {
        let now = processes_of(&run.id);
        if now.iter().filter(|(_, comm)| comm == "sleep").count() >= 3
            || Instant::now() >= visible_by
        {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        before.iter().filter(|(_, comm)| comm == "sleep").count() >= 3,
        "the run's three sleeps must be visible before the cancel: {before:?}"
    );
    let started = Instant::now();
    h.runner.cancel(&run.id).await.expect("cancels");
    let ended = h.runner.wait(&run.id).await.expect("ends");
    let left = gone_by(&run.id, started + Duration::from_secs(2)).await;
    assert!(left.is_empty(), "still alive 2 s after cancel: {left:?}");
    assert_eq!(ended.state, RunState::Cancelled);
    assert_eq!(ended.reason.as_deref(), Some("cancelled"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cancel took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cancel_kills_every_process_within_2s() {
    let h = harness(|_| {}).await;
    cancel_kills_everything(&h).await;
}

#[tokio::test]
async fn cancel_kills_every_process_unsandboxed_too() {
    let h = harness_with(
        Backend::unsandboxed(init_program()),
        grant("http://127.0.0.1:1/mcp"),
        |_| {},
    )
    .await;
    cancel_kills_everything(&h).await;
}

#[tokio::test]
async fn leftovers_die_when_the_agent_exits() {
    let h = harness(|_| {}).await;
    let (run, events) = h
        .run(shell("sleep 1000 & setsid sleep 1000 & echo bye", ""))
        .await;
    assert_eq!(run.state, RunState::Succeeded, "{}", text(&events));
    let left = gone_by(&run.id, Instant::now() + Duration::from_secs(2)).await;
    assert!(left.is_empty(), "outlived the agent: {left:?}");
}

#[tokio::test]
async fn a_timeout_ends_timed_out_and_kills_the_run() {
    let h = harness(|_| {}).await;
    let started = Instant::now();
    let (run, events) = h.run(shell(SPAWN_AND_HANG, r#", "timeout": "1s""#)).await;
    assert_eq!(run.state, RunState::TimedOut, "{}", text(&events));
    assert_eq!(run.reason.as_deref(), Some("timed out after 1s"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let left = gone_by(&run.id, Instant::now() + Duration::from_secs(2)).await;
    assert!(left.is_empty(), "still alive after the timeout: {left:?}");
}

#[tokio::test]
async fn max_concurrent_2_never_runs_more_than_two_of_five() {
    let h = harness(|c| c.max_concurrent = 2).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            h.submit(shell("echo up; sleep 0.4; echo down", ""))
                .await
                .id,
        );
        let (running, _) = h.runner.load();
        assert!(running <= 2, "{running} runs hold a slot");
    }
    let mut logs: HashMap<RunId, Vec<RunEvent>> = HashMap::new();
    for id in &ids {
        let ended = h.runner.wait(id).await.expect("ends");
        assert_eq!(ended.state, RunState::Succeeded);
        logs.insert(id.clone(), h.events(id).await);
    }
    // Slot holding = from `starting` to the final state. A run's final state is
    // stored before the next run starts, so at equal times ends count first.
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for events in logs.values() {
        for e in events {
            if let EventBody::State { state, .. } = e.body {
                if state == RunState::Starting {
                    edges.push((e.at, 1));
                } else if state.is_final() {
                    edges.push((e.at, -1));
                }
            }
        }
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in &edges {
        now += step;
        most = most.max(now);
    }
    assert_eq!(edges.len(), 10);
    assert_eq!(
        most, 2,
        "at most two at once, and two did overlap: {edges:?}"
    );
    assert_eq!(h.runner.load(), (0, 0));
}

#[tokio::test]
async fn the_log_streams_while_the_run_runs() {
    let h = harness(|_| {}).await;
    // The run waits for a file the test writes into its workspace after
    // seeing the first line, so the line must have streamed while it ran.
    let run = h
        .submit(shell(
            "echo one; while [ ! -e go ]; do sleep 0.01; done; echo two",
            "",
        ))
        .await;
    let workspace = h
        .data
        .0
        .join("runs")
        .join(run.id.as_str())
        .join("workspace");
    let mut log = Box::pin(h.runner.follow(run.id.clone(), 0));
    let mut seen_one_while_running = false;
    let mut lines = Vec::new();
    while let Some(event) = log.next().await {
        if let EventBody::Output { line, .. } = event.expect("event").body {
            if line == "one" {
                let now = h.runner.get(&run.id).await.expect("run");
                seen_one_while_running = now.state == RunState::Running;
                std::fs::write(workspace.join("go"), "").expect("go");
            }
            lines.push(line);
        }
    }
    assert_eq!(lines, ["one", "two"]);
    assert!(
        seen_one_while_running,
        "the first line came before the run ended"
    );
    // Replay from any event: the tail after event 4 is the same as in the full log.
    let full = h.events(&run.id).await;
    let tail: Vec<RunEvent> = h
        .runner
        .follow(run.id.clone(), 4)
        .map(|e| e.expect("event"))
        .collect()
        .await;
    assert_eq!(tail, full[4..]);
}

#[tokio::test]
async fn artifacts_are_kept_and_escapes_refused() {
    let h = harness(|_| {}).await;
    let script = "mkdir -p out && echo report > out/report.md && echo x > out/notes.txt \
        && ln -s /etc/passwd out/passwd.md && ln -s /etc out/etc.md && echo done";
    let (run, events) = h
        .run(shell(
            script,
            r#", "artifacts": ["out/*.md", "out/etc.md/*"]"#,
        ))
        .await;
    assert_eq!(run.state, RunState::Succeeded, "{}", text(&events));
    let names: Vec<&str> = run.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["out/report.md"], "{}", text(&events));
    assert_eq!(run.artifacts[0].size, 7);
    let stored = h.data.0.join("artifacts").join(run.id.as_str());
    assert_eq!(
        std::fs::read_to_string(stored.join("out/report.md")).expect("copied"),
        "report\n"
    );
    let refusals: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Notice { message } if message.starts_with("artifact not kept") => {
                Some(message.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(
        refusals.iter().all(|m| m.contains("symlink")),
        "{refusals:?}"
    );
    assert!(!stored.join("out/passwd.md").exists());
    assert!(!stored.join("out/etc.md").exists());

    let escape = Workflow::from_json_str(
        r#"{"agent": "command", "command": ["true"], "artifacts": ["../../etc/passwd"]}"#,
    )
    .expect_err("`..` is refused before any run");
    assert!(
        matches!(&escape, WorkflowError::Invalid { field, .. } if field == "artifacts[0]"),
        "{escape}"
    );
}
