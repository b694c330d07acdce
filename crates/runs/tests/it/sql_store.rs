//! Runs on mcpgate's database (SQLite here; the store's own tests cover
//! PostgreSQL): a finished run and its log are still there after the
//! process's runner and store handles are gone, a restart fails the run that
//! was running and starts the queued one in the sandbox, and workflows are
//! kept versioned with their parsed definitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcpgate_runs::{
    FixedGrant, Run, RunId, RunState, RunStore, Runner, RunnerConfig, SqlRunStore, Workflow,
};
use mcpgate_store::{Store, StoreError};

use crate::common::*;

async fn sql_store(dir: &Scratch) -> SqlRunStore {
    SqlRunStore::new(
        Store::open_in_dir(&dir.0.join("db"))
            .await
            .expect("store opens"),
    )
}

async fn runner_on(store: SqlRunStore, data: &Scratch) -> Runner {
    Runner::start(
        RunnerConfig::new(&data.0),
        local_backend().await,
        Arc::new(store),
        Arc::new(FixedGrant(grant("http://127.0.0.1:8787/mcp"))),
    )
    .await
    .expect("runner starts")
}

fn record(state: RunState, definition: Workflow) -> Run {
    Run {
        id: RunId::generate(),
        workflow: "echo".into(),
        workflow_version: 4,
        definition,
        tenant: "acme".into(),
        params: BTreeMap::new(),
        prompt: String::new(),
        state,
        reason: None,
        exit_code: None,
        created_at: 1,
        started_at: None,
        finished_at: None,
        cost: 0,
        tool_calls: 0,
        input_tokens: 0,
        output_tokens: 0,
        artifacts: vec![],
    }
}

#[tokio::test]
async fn a_run_and_its_log_outlive_the_runner() {
    let data = Scratch::new("sql");
    let (id, log) = {
        let runner = runner_on(sql_store(&data).await, &data).await;
        let h = Harness {
            runner,
            data: Scratch::new("unused"),
        };
        let (run, events) = h.run(shell("echo stored", "")).await;
        assert_eq!(run.state, RunState::Succeeded, "{}", text(&events));
        (run.id, events)
    };
    let runner = runner_on(sql_store(&data).await, &data).await;
    let h = Harness {
        runner,
        data: Scratch::new("unused"),
    };
    let run = h.runner.get(&id).await.expect("still there");
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.workflow_version, 1);
    assert_eq!(h.events(&id).await, log, "the same log, event for event");
    assert_eq!(stdout(&log), ["stored"]);
    let unknown = RunId::generate();
    let mut missing = Box::pin(h.runner.follow(unknown.clone(), 0));
    let first = futures::StreamExt::next(&mut missing).await;
    assert!(
        matches!(first, Some(Err(mcpgate_runs::RunError::NotFound(ref id))) if *id == unknown),
        "{first:?}"
    );
}

#[tokio::test]
async fn a_restart_fails_the_running_run_and_starts_the_queued_one() {
    let data = Scratch::new("sql-restart");
    let store = sql_store(&data).await;
    let running = record(RunState::Running, shell("sleep 100", ""));
    let queued = record(RunState::Queued, shell("echo after the restart", ""));
    store.insert_run(&running).await.expect("insert");
    store.insert_run(&queued).await.expect("insert");

    let runner = runner_on(sql_store(&data).await, &data).await;
    let interrupted = runner.get(&running.id).await.expect("run");
    assert_eq!(interrupted.state, RunState::Failed);
    assert_eq!(interrupted.reason.as_deref(), Some("gateway restarted"));
    let resumed = runner.wait(&queued.id).await.expect("ends");
    assert_eq!(resumed.state, RunState::Succeeded, "{resumed:?}");
    assert_eq!(
        resumed.workflow_version, 4,
        "it keeps the version it was queued with"
    );
    let h = Harness {
        runner,
        data: Scratch::new("unused"),
    };
    assert_eq!(stdout(&h.events(&queued.id).await), ["after the restart"]);
}

#[tokio::test]
async fn workflows_are_kept_versioned() {
    let data = Scratch::new("sql-workflows");
    let store = sql_store(&data).await;
    let v1 = store
        .put_workflow("echo", Some("acme"), &shell("echo one", ""))
        .await
        .expect("v1");
    let v2 = store
        .put_workflow("echo", Some("acme"), &shell("echo two", ""))
        .await
        .expect("v2");
    assert_eq!((v1.version, v2.version), (1, 2));
    let latest = store.workflow("echo").await.expect("read").expect("exists");
    assert_eq!(latest.definition, shell("echo two", ""));
    assert_eq!(latest.tenant.as_deref(), Some("acme"));
    store.delete_workflow("echo").await.expect("deleted");
    assert!(store.workflow("echo").await.expect("read").is_none());
    let old = store
        .workflow_version("echo", 1)
        .await
        .expect("read")
        .expect("kept for its runs");
    assert_eq!(old.definition, shell("echo one", ""));
    assert!(matches!(
        store
            .put_workflow("no spaces", None, &shell("true", ""))
            .await,
        Err(StoreError::Invalid(_))
    ));
    let mut broken = shell("true", "");
    broken.command.clear();
    let refused = store.put_workflow("broken", None, &broken).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("command")),
        "{refused:?}"
    );
    assert!(store.workflows(None).await.expect("list").is_empty());
}
