//! The ledger with a journal (SQLite only: `Store::open_journal`): the
//! quota race decided in memory, a refund and outside balance changes
//! reaching memory, and the replay of a journal left behind (idempotent,
//! a torn tail ignored).

use std::path::{Path, PathBuf};

use mcpgate_store::{AuditFilter, Backend, JournalSync, Outcome, ReserveError, Store};

use crate::common::{Db, call, on_backend};

/// The SQLite file behind a test database.
fn db_file(db: &Db) -> PathBuf {
    PathBuf::from(db.url.strip_prefix("sqlite:").expect("a sqlite url"))
}

/// The journal files beside the database (not the lock).
fn journal_files(db_file: &Path) -> Vec<PathBuf> {
    let prefix = format!(
        "{}.journal.",
        db_file.file_name().unwrap().to_string_lossy()
    );
    let mut found: Vec<PathBuf> = std::fs::read_dir(db_file.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.strip_prefix(&prefix)
                .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .collect();
    found.sort();
    found
}

async fn journaled(db: &Db, balance: Option<i64>, mode: JournalSync) -> Store {
    let store = db.open_with_acme(balance).await;
    assert!(store.open_journal(mode).await.unwrap(), "owns the journal");
    assert!(store.ledger().journaled());
    store
}

async fn balance(store: &Store) -> Option<i64> {
    store.tenant("acme").await.unwrap().unwrap().balance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quota_race_is_decided_in_memory_and_stored_after() {
    on_backend(Backend::Sqlite, "journal_race", |db: Db| async move {
        let store = journaled(&db, Some(50), JournalSync::Data).await;
        let ledger = store.ledger();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (ledger, barrier) = (ledger.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    ledger.reserve(call("acme", "fs.read_file", 1)).await
                })
            })
            .collect();
        let (mut ok, mut exhausted) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    ok += 1;
                    assert!(r.balance_after.is_some_and(|b| (0..50).contains(&b)));
                }
                Err(ReserveError::Exhausted { balance, cost, .. }) => {
                    exhausted += 1;
                    assert_eq!((balance, cost), (0, 1));
                }
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        assert_eq!((ok, exhausted), (50, 14));
        ledger.flush().await.unwrap();
        assert_eq!(balance(&store).await, Some(0));
        let rows = store.audit(&AuditFilter::default()).await.unwrap();
        let pending = rows.iter().filter(|r| r.outcome == "pending").count();
        let denied = rows.iter().filter(|r| r.outcome == "denied_quota").count();
        assert_eq!((rows.len(), pending, denied), (64, 50, 14));
        // An unknown tenant is refused as before.
        assert_eq!(
            ledger.reserve(call("nobody", "x", 1)).await,
            Err(ReserveError::UnknownTenant)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_and_outside_changes_reach_the_balance_in_memory() {
    on_backend(Backend::Sqlite, "journal_reload", |db: Db| async move {
        let store = journaled(&db, Some(10), JournalSync::Write).await;
        let ledger = store.ledger();
        let r = ledger.reserve(call("acme", "a", 4)).await.unwrap();
        assert_eq!(r.balance_after, Some(6));
        ledger.finish(r.id, Outcome::Unavailable, 5, Some("down".into()), true);
        let r = ledger.reserve(call("acme", "b", 10)).await.unwrap();
        assert_eq!(r.balance_after, Some(0), "the refund was credited");
        ledger.finish(r.id, Outcome::Ok, 5, None, false);
        ledger.flush().await.unwrap();
        assert_eq!(balance(&store).await, Some(0));

        // Another process (the CLI) tops the tenant up; memory follows on a reload.
        let cli = db.open().await;
        cli.set_balance("acme", Some(100)).await.unwrap();
        assert!(matches!(
            ledger.reserve(call("acme", "c", 1)).await,
            Err(ReserveError::Exhausted { balance: 0, .. })
        ));
        ledger.reload_balances().await.unwrap();
        let r = ledger.reserve(call("acme", "d", 30)).await.unwrap();
        assert_eq!(r.balance_after, Some(70));
        // A change made through this process's store reaches memory at
        // once, and applies after the reservations made before it.
        let before = ledger.reserve(call("acme", "e", 5)).await.unwrap();
        assert_eq!(before.balance_after, Some(65));
        store.set_balance("acme", Some(3)).await.unwrap();
        assert_eq!(balance(&store).await, Some(3));
        assert_eq!(
            ledger.reserve(call("acme", "f", 4)).await,
            Err(ReserveError::Exhausted {
                balance: 3,
                cost: 4,
                resets_at_ms: None
            })
        );
        ledger.flush().await.unwrap();
        // Made unlimited elsewhere.
        cli.set_balance("acme", None).await.unwrap();
        ledger.reload_balances().await.unwrap();
        assert_eq!(
            ledger
                .reserve(call("acme", "g", 1_000))
                .await
                .unwrap()
                .balance_after,
            None
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_left_journal_is_replayed_once_and_its_torn_tail_ignored() {
    on_backend(Backend::Sqlite, "journal_replay", |db: Db| async move {
        let file = db_file(&db);
        let ids = {
            let store = journaled(&db, Some(100), JournalSync::Write).await;
            let ledger = store.ledger();
            let mut ids = Vec::new();
            for i in 0..5 {
                ids.push(
                    ledger
                        .reserve(call("acme", &format!("t{i}"), 2))
                        .await
                        .unwrap()
                        .id,
                );
            }
            ledger.flush().await.unwrap();
            assert_eq!(balance(&store).await, Some(90));
            ids
        };
        let journal = journal_files(&file);
        assert_eq!(journal.len(), 1, "{journal:?}");
        let kept = std::env::temp_dir().join(format!(
            "{}.copy",
            journal[0].file_name().unwrap().to_string_lossy()
        ));
        std::fs::copy(&journal[0], &kept).unwrap();
        // As if the writer had stored only three of the five when the
        // process died; and the last write was cut short.
        db.exec(&format!(
            "DELETE FROM usage WHERE id IN ({}, {})",
            ids[1], ids[4]
        ))
        .await;
        db.exec("UPDATE tenants SET balance = 94 WHERE name = 'acme'")
            .await;
        let mut torn = std::fs::read(&kept).unwrap();
        torn.extend_from_slice(&[200, 1, 0, 0, 1, 2, 3]);
        std::fs::write(&journal[0], &torn).unwrap();

        // The next owner replays: the two missing rows are stored and
        // charged, the three others skipped; the files are gone after.
        let store = db.open().await;
        assert!(store.open_journal(JournalSync::Write).await.unwrap());
        assert_eq!(balance(&store).await, Some(90));
        let rows = store.audit(&AuditFilter::default()).await.unwrap();
        let mut stored: Vec<i64> = rows.iter().map(|r| r.id).collect();
        stored.sort_unstable();
        let mut want = ids.clone();
        want.sort_unstable();
        assert_eq!(stored, want);
        assert!(rows.iter().all(|r| r.outcome == "pending" && r.cost == 2));
        assert!(!journal[0].exists(), "replayed files are deleted");
        drop(store);

        // The same file replayed again (by any process opening the store)
        // changes nothing.
        std::fs::copy(&kept, &journal[0]).unwrap();
        let again = db.open().await;
        assert!(!journal[0].exists(), "replayed at open");
        assert_eq!(balance(&again).await, Some(90));
        assert_eq!(again.audit(&AuditFilter::default()).await.unwrap().len(), 5);
        std::fs::remove_file(&kept).ok();
    })
    .await;
}
