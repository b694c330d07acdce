//! The ledger: the quota race (one store and two), finish with and
//! without refund, deny, unknown tenants, monthly refills, and durability
//! (a returned reservation is committed; dropped handles flush).

use std::time::{Duration, Instant};

use mcpgate_store::{AuditFilter, Backend, Outcome, ReserveError, Store, now_ms};

use crate::common::{Db, backend_tests, call, call_at, on_backend};

/// The quota race: 64 concurrent reservations of cost 1, spread over
/// `stores` (all on one database, where `acme` holds 50 tokens), must grant
/// exactly 50 and refuse 14, with every row and the balance to match (read
/// through the last store).
async fn race_64_calls_for_50_tokens(stores: &[Store]) {
    const CALLS: usize = 64;
    let ledgers: Vec<_> = stores.iter().map(Store::ledger).collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CALLS));
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let ledger = ledgers[i % ledgers.len()].clone();
            let barrier = barrier.clone();
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
                assert!(
                    r.balance_after.is_some_and(|b| (0..50).contains(&b)),
                    "{r:?}"
                );
            }
            Err(ReserveError::Exhausted {
                balance,
                cost,
                resets_at_ms,
            }) => {
                exhausted += 1;
                assert_eq!((balance, cost, resets_at_ms), (0, 1, None));
            }
            Err(e) => panic!("unexpected reserve error: {e:?}"),
        }
    }
    assert_eq!((ok, exhausted), (50, 14));

    let store = stores.last().expect("at least one store");
    assert_eq!(
        store.tenant("acme").await.unwrap().unwrap().balance,
        Some(0)
    );
    let rows = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 64);
    let pending = rows.iter().filter(|r| r.outcome == "pending").count();
    let denied = rows.iter().filter(|r| r.outcome == "denied_quota").count();
    assert_eq!((pending, denied), (50, 14));
    assert!(
        rows.iter()
            .filter(|r| r.outcome == "pending")
            .all(|r| r.cost == 1)
    );
    assert!(
        rows.iter()
            .filter(|r| r.outcome == "denied_quota")
            .all(|r| r.cost == 0)
    );
    let mut ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 64, "usage ids are unique");
    // What /metrics reads: every operation was taken off the queue, and
    // each commit was timed.
    for ledger in &ledgers {
        ledger.flush().await.unwrap();
        let stats = ledger.stats();
        assert_eq!(stats.queue_depth(), 0);
        let commits = stats.commit.snapshot();
        assert!(commits.count >= 1, "{commits:?}");
        assert_eq!(commits.cumulative.last().map(|c| c.1), Some(commits.count));
    }
}

backend_tests!(quota_race_never_overspends, worker_threads = 4);
async fn quota_race_never_overspends(backend: Backend) {
    on_backend(backend, "quota_race", |db: Db| async move {
        let store = db.open_with_acme(Some(50)).await;
        race_64_calls_for_50_tokens(&[store]).await;
    })
    .await;
}

backend_tests!(quota_race_across_two_stores, worker_threads = 4);
async fn quota_race_across_two_stores(backend: Backend) {
    // Two stores = two pools and two writers, as two replicas would have
    // (on SQLite: two writers contending for one file).
    on_backend(backend, "quota_race_two", |db: Db| async move {
        let a = db.open_with_acme(Some(50)).await;
        let b = db.open().await;
        race_64_calls_for_50_tokens(&[a, b]).await;
    })
    .await;
}

backend_tests!(finish_refund_and_deny, worker_threads = 2);
async fn finish_refund_and_deny(backend: Backend) {
    on_backend(backend, "finish_refund_deny", |db: Db| async move {
        let store = db.open_with_acme(Some(10)).await;
        store.add_tenant("free", "free", None, None).await.unwrap();
        let ledger = store.ledger();
        let balance = async |t: &str| store.tenant(t).await.unwrap().unwrap().balance;
        let row = async |id: i64| {
            store
                .audit(&AuditFilter::default())
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.id == id)
                .expect("usage row")
        };

        // Reserve, then finish without refund.
        let r1 = ledger
            .reserve(call("acme", "fs.read_file", 3))
            .await
            .unwrap();
        assert_eq!(r1.balance_after, Some(7));
        let pending = row(r1.id).await;
        assert_eq!(
            (pending.outcome.as_str(), pending.cost, pending.duration_us),
            ("pending", 3, None)
        );
        assert_eq!(pending.tenant, "acme");
        assert_eq!(pending.method, "tools/call");
        assert_eq!(pending.args.as_deref(), Some(r#"{"path":"/tmp/x"}"#));
        assert_eq!(pending.arg_bytes, 17);
        ledger.finish(r1.id, Outcome::Ok, 1234, None, false);
        ledger.flush().await.unwrap();
        let done = row(r1.id).await;
        assert_eq!(
            (done.outcome.as_str(), done.cost, done.duration_us),
            ("ok", 3, Some(1234))
        );
        assert_eq!(done.error, None);
        assert_eq!(balance("acme").await, Some(7));

        // Reserve, then finish with refund.
        let r2 = ledger
            .reserve(call("acme", "fs.write_file", 4))
            .await
            .unwrap();
        assert_eq!(r2.balance_after, Some(3));
        ledger.finish(
            r2.id,
            Outcome::Unavailable,
            99,
            Some("upstream down".into()),
            true,
        );
        ledger.flush().await.unwrap();
        assert_eq!(balance("acme").await, Some(7));
        let refunded = row(r2.id).await;
        assert_eq!(refunded.outcome, "unavailable");
        assert_eq!(refunded.cost, 0);
        assert_eq!(refunded.duration_us, Some(99));
        assert_eq!(refunded.error.as_deref(), Some("upstream down"));
        // Refunding twice gives nothing more back.
        ledger.finish(r2.id, Outcome::Error, 100, None, true);
        ledger.flush().await.unwrap();
        assert_eq!(balance("acme").await, Some(7));

        // Exhausted: a denied_quota row with cost 0, and the balance untouched.
        let e = ledger.reserve(call("acme", "big", 8)).await;
        assert_eq!(
            e,
            Err(ReserveError::Exhausted {
                balance: 7,
                cost: 8,
                resets_at_ms: None
            })
        );
        assert_eq!(balance("acme").await, Some(7));
        let denied = store
            .audit(&AuditFilter {
                name_glob: Some("big".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(denied.len(), 1);
        assert_eq!(
            (denied[0].outcome.as_str(), denied[0].cost),
            ("denied_quota", 0)
        );
        // A cost of exactly the balance is fine.
        let r3 = ledger.reserve(call("acme", "exact", 7)).await.unwrap();
        assert_eq!(r3.balance_after, Some(0));
        let r4 = ledger.reserve(call("acme", "free-call", 0)).await.unwrap();
        assert_eq!(r4.balance_after, Some(0));

        // Unlimited tenants: no balance to debit or refund.
        let u = ledger
            .reserve(call("free", "fs.read_file", 1000))
            .await
            .unwrap();
        assert_eq!(u.balance_after, None);
        ledger.finish(u.id, Outcome::Timeout, 5, None, true);
        ledger.flush().await.unwrap();
        assert_eq!(balance("free").await, None);
        assert_eq!(row(u.id).await.cost, 0);

        // Unknown tenants: refused, nothing written.
        let before = store.audit(&AuditFilter::default()).await.unwrap().len();
        assert_eq!(
            ledger.reserve(call("nope", "x", 1)).await,
            Err(ReserveError::UnknownTenant)
        );
        assert!(matches!(
            ledger.reserve(call("acme", "x", -1)).await,
            Err(ReserveError::Store(_))
        ));
        assert_eq!(
            store.audit(&AuditFilter::default()).await.unwrap().len(),
            before
        );

        // Deny: a row for a call refused before any reservation.
        ledger.deny(call("acme", "secret_tool", 5), Outcome::DeniedHidden, None);
        ledger.deny(
            call("acme", "fs.read_file", 5),
            Outcome::DeniedRate,
            Some("10/s".into()),
        );
        ledger.flush().await.unwrap();
        let rows = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(rows.len(), before + 2);
        let rate = rows
            .iter()
            .find(|r| r.outcome == "denied_rate")
            .expect("denied_rate row");
        assert_eq!((rate.cost, rate.error.as_deref()), (0, Some("10/s")));
        assert!(
            rows.iter()
                .any(|r| r.outcome == "denied_hidden" && r.name == "secret_tool")
        );
        assert_eq!(balance("acme").await, Some(0));
    })
    .await;
}

backend_tests!(monthly_allowance_refills, worker_threads = 2);
async fn monthly_allowance_refills(backend: Backend) {
    on_backend(backend, "monthly_refill", |db: Db| async move {
        let store = db.open().await;
        let t = store
            .add_tenant("acme", "pro", None, Some(10))
            .await
            .unwrap();
        let first = t.resets_at_ms.unwrap();
        let ledger = store.ledger();

        let r = ledger.reserve(call("acme", "x", 10)).await.unwrap();
        assert_eq!(r.balance_after, Some(0));
        assert_eq!(
            ledger.reserve(call("acme", "x", 1)).await,
            Err(ReserveError::Exhausted {
                balance: 0,
                cost: 1,
                resets_at_ms: Some(first)
            })
        );

        // A call at the refill time refills, then debits, and moves the refill on.
        let r = ledger
            .reserve(call_at("acme", "x", 4, first))
            .await
            .unwrap();
        assert_eq!(r.balance_after, Some(6));
        let t = store.tenant("acme").await.unwrap().unwrap();
        let second = t.resets_at_ms.unwrap();
        assert!(second > first && second - first <= 31 * 86_400_000);
        assert_eq!(t.balance, Some(6));

        // A refill time in the past (the gateway was down over New Year):
        // refilled on the next call, even one that is then refused.
        db.exec(&format!(
            "UPDATE tenants SET resets_at = {}, balance = 2 WHERE name = 'acme'",
            now_ms() - 1000
        ))
        .await;
        let now = now_ms();
        match ledger.reserve(call_at("acme", "x", 20, now)).await {
            Err(ReserveError::Exhausted {
                balance: 10,
                cost: 20,
                resets_at_ms: Some(next),
            }) => {
                assert!(next > now);
            }
            other => panic!("expected a refill, then exhausted: {other:?}"),
        }
        let t = store.tenant("acme").await.unwrap().unwrap();
        assert_eq!(t.balance, Some(10));
        assert!(t.resets_at_ms.unwrap() > now);
        // ...and one that fits.
        db.exec(&format!(
            "UPDATE tenants SET resets_at = {}, balance = 2 WHERE name = 'acme'",
            now_ms() - 1000
        ))
        .await;
        let r = ledger.reserve(call("acme", "x", 3)).await.unwrap();
        assert_eq!(r.balance_after, Some(7));
    })
    .await;
}

backend_tests!(reservations_are_durable_and_drops_flush, worker_threads = 2);
async fn reservations_are_durable_and_drops_flush(backend: Backend) {
    on_backend(backend, "durability", |db: Db| async move {
        let store = db.open_with_acme(Some(5)).await;
        let ledger = store.ledger();
        let r = ledger
            .reserve(call("acme", "fs.read_file", 2))
            .await
            .unwrap();
        // Without any flush: another store on the same database sees it.
        let other = db.open().await;
        let rows = other.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].id, rows[0].outcome.as_str()), (r.id, "pending"));
        assert_eq!(
            other.tenant("acme").await.unwrap().unwrap().balance,
            Some(3)
        );

        // Queued records are written when the last handle goes away.
        for i in 0..20 {
            ledger.deny(
                call("acme", &format!("tool{i}"), 1),
                Outcome::DeniedRate,
                None,
            );
        }
        ledger.finish(r.id, Outcome::Ok, 10, None, false);
        drop(ledger);
        drop(store);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = other.audit(&AuditFilter::default()).await.unwrap();
            if rows.len() == 21 && rows.iter().any(|x| x.id == r.id && x.outcome == "ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "queued records were not written after drop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

backend_tests!(a_failed_batch_applies_nothing, worker_threads = 2);
async fn a_failed_batch_applies_nothing(backend: Backend) {
    on_backend(backend, "failed_batch", |db: Db| async move {
        let store = db.open_with_acme(Some(10)).await;
        let ledger = store.ledger();
        ledger.reserve(call("acme", "before", 1)).await.unwrap();

        // Break the ledger table: the debit would succeed, the row cannot be written.
        db.exec("ALTER TABLE usage RENAME TO usage_away").await;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let ledger = ledger.clone();
                tokio::spawn(async move { ledger.reserve(call("acme", "during", 1)).await })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                Err(ReserveError::Store(msg)) => assert!(msg.contains("usage"), "{msg}"),
                other => panic!("expected a store error, got {other:?}"),
            }
        }
        assert_eq!(
            store.tenant("acme").await.unwrap().unwrap().balance,
            Some(9)
        );

        // Repaired, the same writer carries on.
        db.exec("ALTER TABLE usage_away RENAME TO usage").await;
        let r = ledger.reserve(call("acme", "after", 1)).await.unwrap();
        assert_eq!(r.balance_after, Some(8));
        let names: Vec<String> = store
            .audit(&AuditFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["after", "before"]);
    })
    .await;
}

backend_tests!(an_abandoned_reservation_is_refunded, worker_threads = 2);
async fn an_abandoned_reservation_is_refunded(backend: Backend) {
    on_backend(backend, "abandoned", |db: Db| async move {
        let store = db.open_with_acme(Some(10)).await;
        let ledger = store.ledger();
        // The caller stops waiting (a cancelled request): it will never
        // forward or finish the call, so the writer gives the cost back.
        // While another connection holds acme's row the reservation cannot
        // commit, so the caller is sure to give up first (with nothing
        // held, a fast commit could answer before the zero timeout).
        let lock = db.lock_tenant("acme").await;
        let gone = tokio::time::timeout(Duration::ZERO, ledger.reserve(call("acme", "gone", 3)));
        assert!(
            gone.await.is_err(),
            "the reservation cannot have answered yet"
        );
        lock.release().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            ledger.flush().await.unwrap();
            let rows = store.audit(&AuditFilter::default()).await.unwrap();
            if let [row] = rows.as_slice()
                && row.outcome == "cancelled"
            {
                assert_eq!(row.cost, 0);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "abandoned reservation not settled: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            store.tenant("acme").await.unwrap().unwrap().balance,
            Some(10)
        );
    })
    .await;
}
