//! Workflows and runs on both backends: every change to a workflow is a new
//! version, deletion keeps old versions readable, concurrent changes get
//! distinct versions; runs are found by tenant, workflow and state in order,
//! and their logs replay from any event, all or nothing per append.

use mcpgate_store::{Backend, RunEventRow, RunRow, RunRowFilter, StoreError};

use crate::common::{Db, backend_tests, on_backend};

fn run(id: &str, tenant: &str, workflow: &str, state: &str, created: i64) -> RunRow {
    RunRow {
        id: id.to_owned(),
        workflow: workflow.to_owned(),
        workflow_version: 1,
        tenant: tenant.to_owned(),
        state: state.to_owned(),
        created_at_ms: created,
        record: format!(r#"{{"id":"{id}"}}"#),
    }
}

fn event(seq: i64) -> RunEventRow {
    RunEventRow {
        seq,
        at_ms: 1_000 + seq,
        event: format!(r#"{{"type":"output","line":"{seq}"}}"#),
    }
}

fn ids(rows: &[RunRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

backend_tests!(workflows_are_versioned, worker_threads = 2);
async fn workflows_are_versioned(backend: Backend) {
    on_backend(backend, "workflows_versioned", |db: Db| async move {
        let store = db.open().await;
        let v1 = store
            .put_workflow("issue", Some("acme"), "{\"v\":1}")
            .await
            .unwrap();
        let v2 = store
            .put_workflow("issue", Some("acme"), "{\"v\":2}")
            .await
            .unwrap();
        store.put_workflow("shared", None, "{}").await.unwrap();
        store
            .put_workflow("other", Some("beta"), "{}")
            .await
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(store.workflow("issue").await.unwrap(), Some(v2.clone()));
        assert_eq!(
            store.workflow_version("issue", 1).await.unwrap(),
            Some(v1.clone())
        );
        assert_eq!(
            store.workflow_history("issue").await.unwrap(),
            [v1, v2.clone()]
        );
        let names = |list: Vec<mcpgate_store::WorkflowVersion>| -> Vec<(String, i64)> {
            list.into_iter().map(|w| (w.name, w.version)).collect()
        };
        assert_eq!(
            names(store.workflows(None).await.unwrap()),
            [
                ("issue".into(), 2),
                ("other".into(), 1),
                ("shared".into(), 1)
            ]
        );
        assert_eq!(
            names(store.workflows(Some("acme")).await.unwrap()),
            [("issue".into(), 2), ("shared".into(), 1)],
            "a tenant sees its own and the shared ones"
        );

        store.delete_workflow("issue").await.unwrap();
        assert_eq!(store.workflow("issue").await.unwrap(), None);
        let kept = store.workflow_version("issue", 2).await.unwrap().unwrap();
        assert!(kept.deleted_at_ms.is_some(), "old versions stay readable");
        assert!(matches!(
            store.delete_workflow("issue").await,
            Err(StoreError::NotFound(_))
        ));
        let v3 = store
            .put_workflow("issue", Some("acme"), "{\"v\":3}")
            .await
            .unwrap();
        assert_eq!(v3.version, 3, "numbering continues after a delete");
        assert_eq!(store.workflow("issue").await.unwrap(), Some(v3));
        assert!(matches!(
            store.put_workflow("bad name", None, "{}").await,
            Err(StoreError::Invalid(_))
        ));
    })
    .await;
}

backend_tests!(concurrent_changes_get_distinct_versions, worker_threads = 4);
async fn concurrent_changes_get_distinct_versions(backend: Backend) {
    on_backend(backend, "workflows_concurrent", |db: Db| async move {
        let store = db.open().await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .put_workflow("busy", None, &format!("{{\"n\":{i}}}"))
                        .await
                        .unwrap()
                        .version
                })
            })
            .collect();
        let mut versions = Vec::new();
        for task in tasks {
            versions.push(task.await.unwrap());
        }
        versions.sort();
        assert_eq!(versions, (1..=8).collect::<Vec<i64>>());
    })
    .await;
}

backend_tests!(runs_are_found_and_updated, worker_threads = 2);
async fn runs_are_found_and_updated(backend: Backend) {
    on_backend(backend, "runs_found", |db: Db| async move {
        let store = db.open().await;
        store
            .insert_run(&run("run_a", "acme", "issue", "succeeded", 10))
            .await
            .unwrap();
        store
            .insert_run(&run("run_b", "acme", "issue", "running", 20))
            .await
            .unwrap();
        store
            .insert_run(&run("run_c", "beta", "lint", "queued", 30))
            .await
            .unwrap();
        assert!(matches!(
            store
                .insert_run(&run("run_a", "acme", "issue", "queued", 40))
                .await,
            Err(StoreError::AlreadyExists(_))
        ));
        let all = store.runs(&RunRowFilter::default()).await.unwrap();
        assert_eq!(ids(&all), ["run_c", "run_b", "run_a"], "newest first");
        let unfinished = store
            .runs(&RunRowFilter {
                states: vec!["queued".into(), "starting".into(), "running".into()],
                oldest_first: true,
                ..RunRowFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&unfinished), ["run_b", "run_c"]);
        let acme = store
            .runs(&RunRowFilter {
                tenant: Some("acme".into()),
                workflow: Some("issue".into()),
                limit: Some(1),
                ..RunRowFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&acme), ["run_b"]);

        let mut b = run("run_b", "acme", "issue", "failed", 20);
        b.record = r#"{"id":"run_b","reason":"gateway restarted"}"#.into();
        store.update_run(&b).await.unwrap();
        assert_eq!(store.run("run_b").await.unwrap(), Some(b));
        assert_eq!(
            store.count_runs_by_state().await.unwrap(),
            [
                ("failed".to_owned(), 1),
                ("queued".to_owned(), 1),
                ("succeeded".to_owned(), 1)
            ],
            "runs by state, for /metrics"
        );
        assert_eq!(store.run("run_zz").await.unwrap(), None);
        assert!(matches!(
            store
                .update_run(&run("run_zz", "acme", "issue", "failed", 1))
                .await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store
                .runs(&RunRowFilter {
                    limit: Some(-1),
                    ..RunRowFilter::default()
                })
                .await,
            Err(StoreError::Invalid(_))
        ));
    })
    .await;
}

backend_tests!(run_logs_replay_from_any_event, worker_threads = 2);
async fn run_logs_replay_from_any_event(backend: Backend) {
    on_backend(backend, "run_logs", |db: Db| async move {
        let store = db.open().await;
        store
            .insert_run(&run("run_a", "acme", "issue", "running", 10))
            .await
            .unwrap();
        assert_eq!(store.last_run_event("run_a").await.unwrap(), 0);
        store
            .append_run_events("run_a", &[event(1), event(2), event(3)])
            .await
            .unwrap();
        store.append_run_events("run_a", &[event(4)]).await.unwrap();
        store.append_run_events("run_a", &[]).await.unwrap();
        assert_eq!(store.last_run_event("run_a").await.unwrap(), 4);
        assert_eq!(
            store.run_events("run_a", 0, 100).await.unwrap(),
            [event(1), event(2), event(3), event(4)]
        );
        assert_eq!(
            store.run_events("run_a", 2, 1).await.unwrap(),
            [event(3)],
            "after event 2, at most one"
        );
        assert!(store.run_events("run_a", 4, 10).await.unwrap().is_empty());
        assert!(
            store
                .run_events("run_other", 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let clash = store
            .append_run_events("run_a", &[event(5), event(4)])
            .await;
        assert!(
            matches!(clash, Err(StoreError::AlreadyExists(_))),
            "{clash:?}"
        );
        assert_eq!(
            store.last_run_event("run_a").await.unwrap(),
            4,
            "a failed append writes nothing"
        );
    })
    .await;
}

backend_tests!(
    runs_are_claimed_only_from_owners_that_are_gone,
    worker_threads = 4
);
async fn runs_are_claimed_only_from_owners_that_are_gone(backend: Backend) {
    on_backend(backend, "runs_claimed", |db: Db| async move {
        let unfinished = ["queued".to_owned(), "running".to_owned()];
        let a = db.open().await;
        a.insert_run(&run("run_q", "acme", "w", "queued", 10))
            .await
            .unwrap();
        a.insert_run(&run("run_r", "acme", "w", "running", 20))
            .await
            .unwrap();
        a.insert_run(&run("run_done", "acme", "w", "succeeded", 30))
            .await
            .unwrap();
        assert!(
            a.claim_runs(&unfinished).await.unwrap().is_empty(),
            "a process never recovers its own live runs"
        );
        let b = db.open().await;
        assert_ne!(a.owner_id(), b.owner_id());
        if db.backend == Backend::Postgres {
            // A is alive (it holds its advisory lock): B leaves its runs alone.
            assert!(b.claim_runs(&unfinished).await.unwrap().is_empty());
            // A goes away (its connections close): its runs are B's to recover.
            drop(a);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let claimed = loop {
                let claimed = b.claim_runs(&unfinished).await.unwrap();
                if !claimed.is_empty() {
                    break claimed;
                }
                assert!(std::time::Instant::now() < deadline, "A's runs never freed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
            assert_eq!(ids(&claimed), ["run_q", "run_r"]);
        } else {
            // SQLite: one machine, where only a restarted gateway recovers.
            assert_eq!(
                ids(&b.claim_runs(&unfinished).await.unwrap()),
                ["run_q", "run_r"]
            );
            drop(a);
        }
        // B owns them now and is alive: nobody else gets them.
        let c = db.open().await;
        if db.backend == Backend::Postgres {
            assert!(c.claim_runs(&unfinished).await.unwrap().is_empty());
        }
        if db.backend == Backend::Sqlite {
            return; // there every other owner counts as gone: no race to win
        }
        // An orphan without an owner (a row from before owners) goes to
        // exactly one of several racing live claimers.
        db.exec(
            "INSERT INTO runs (id, workflow, workflow_version, tenant, state, created_at, record) \
             VALUES ('run_old', 'w', 1, 'acme', 'queued', 40, '{}')",
        )
        .await;
        let claimers = [b.clone(), c.clone(), db.open().await, db.open().await];
        let races = claimers.iter().map(|s| {
            let s = s.clone();
            let states = unfinished.to_vec();
            tokio::spawn(async move { s.claim_runs(&states).await.unwrap() })
        });
        let won: usize = futures_count(races, "run_old").await;
        assert_eq!(won, 1, "run_old claimed by exactly one");
    })
    .await;
}

/// How many of the claim tasks got run `id`.
async fn futures_count(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<Vec<RunRow>>>,
    id: &str,
) -> usize {
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap().iter().filter(|r| r.id == id).count();
    }
    n
}
