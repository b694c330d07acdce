//! Calls in flight when their gateway stopped: `interrupt_pending` marks the
//! pending rows of stopped processes `interrupted` and keeps their debit;
//! rows a live writer may still finish are left alone unless older than
//! the window, and a late finish heals a mark anyway.

use std::time::Duration;

use mcpgate_store::{AuditFilter, Backend, Outcome, Store};

use crate::common::{Db, backend_tests, call, call_at, on_backend};

const WINDOW: Duration = Duration::from_secs(600);
const HOUR_MS: i64 = 3_600_000;

async fn outcome_and_cost(store: &Store, id: i64) -> (String, i64) {
    let row = store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .expect("usage row");
    (row.outcome, row.cost)
}

backend_tests!(
    beside_a_live_writer_only_calls_older_than_the_window,
    worker_threads = 2
);
async fn beside_a_live_writer_only_calls_older_than_the_window(backend: Backend) {
    on_backend(backend, "interrupted_window", |db: Db| async move {
        let store = db.open_with_acme(Some(10)).await;
        let ledger = store.ledger();
        let now = mcpgate_store::now_ms();
        let old = ledger
            .reserve(call_at("acme", "slow", 3, now - HOUR_MS))
            .await
            .unwrap();
        let fresh = ledger.reserve(call("acme", "fresh", 2)).await.unwrap();
        let done = ledger.reserve(call("acme", "done", 1)).await.unwrap();
        ledger.finish(done.id, Outcome::Ok, 10, None, false);
        ledger.flush().await.unwrap();

        // Another process starting while this one's writer is alive.
        let starting = db.open().await;
        assert_eq!(starting.interrupt_pending(WINDOW).await.unwrap(), 1);
        assert_eq!(
            outcome_and_cost(&store, old.id).await,
            ("interrupted".to_owned(), 3),
            "marked, its debit kept"
        );
        assert_eq!(
            outcome_and_cost(&store, fresh.id).await,
            ("pending".to_owned(), 2)
        );
        assert_eq!(
            outcome_and_cost(&store, done.id).await,
            ("ok".to_owned(), 1)
        );
        let acme = store.tenant("acme").await.unwrap().unwrap();
        assert_eq!(acme.balance, Some(4), "nothing refunded");

        let rows = store.audit(&AuditFilter::default()).await.unwrap();
        let slow = rows.iter().find(|r| r.id == old.id).unwrap();
        assert!(
            slow.error.as_deref().is_some_and(|e| e.contains("stopped")),
            "{slow:?}"
        );
        let summary = store.usage_summary(Some("acme"), None).await.unwrap();
        let slow = summary.iter().find(|s| s.name == "slow").unwrap();
        assert_eq!(
            (
                slow.calls,
                slow.ok,
                slow.errors,
                slow.interrupted,
                slow.cost
            ),
            (1, 0, 0, 1, 3)
        );

        // Marking twice marks nothing more.
        assert_eq!(starting.interrupt_pending(WINDOW).await.unwrap(), 0);

        // A call that was in fact still running writes its finish over the mark.
        ledger.finish(old.id, Outcome::Ok, 5, None, false);
        ledger.flush().await.unwrap();
        assert_eq!(outcome_and_cost(&store, old.id).await, ("ok".to_owned(), 3));
    })
    .await;
}

/// On SQLite, with no ledger writer alive anywhere, every pending row is a
/// stopped process's, however young.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_with_no_writer_alive_every_pending_call_is_interrupted() {
    on_backend(Backend::Sqlite, "interrupted_all", |db: Db| async move {
        let store = db.open_with_acme(None).await;
        // A row left by a process that was killed a moment ago (this store
        // has not started a writer).
        let now = mcpgate_store::now_ms();
        db.exec(&format!(
            "INSERT INTO usage (id, ts, tenant, method, name, outcome, cost, arg_bytes) \
             VALUES (7, {now}, 'acme', 'tools/call', 'x', 'pending', 2, 0)"
        ))
        .await;
        assert_eq!(store.interrupt_pending(WINDOW).await.unwrap(), 1);
        assert_eq!(
            outcome_and_cost(&store, 7).await,
            ("interrupted".to_owned(), 2)
        );

        // Once a writer is alive, a fresh pending row is left alone.
        let r = store.ledger().reserve(call("acme", "y", 1)).await.unwrap();
        let other = db.open().await;
        assert_eq!(other.interrupt_pending(WINDOW).await.unwrap(), 0);
        assert_eq!(
            outcome_and_cost(&store, r.id).await,
            ("pending".to_owned(), 1)
        );
    })
    .await;
}
