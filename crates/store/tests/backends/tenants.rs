//! Tenants: add, list, show, set, duplicates and unknown names; the
//! revision counter; migrations on reopen and on concurrent opens.

use mcpgate_store::{Backend, Store, StoreError, now_ms};

use crate::common::{Db, backend_tests, on_backend};

const DAY_MS: i64 = 86_400_000;

/// Checks that the last mutation bumped the revision by exactly one.
pub(crate) async fn bumped(store: &Store, rev: &mut i64) {
    let now = store.revision().await.unwrap();
    assert_eq!(now, *rev + 1, "revision must increase by one per mutation");
    *rev = now;
}

backend_tests!(tenants_lifecycle_and_revision, worker_threads = 2);
async fn tenants_lifecycle_and_revision(backend: Backend) {
    on_backend(backend, "tenants_lifecycle", |db: Db| async move {
        let store = db.open().await;
        assert_eq!(store.backend(), db.backend);
        let mut rev = store.revision().await.unwrap();

        let acme = store
            .add_tenant("acme", "pro", Some(100), None)
            .await
            .unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!(acme.name, "acme");
        assert_eq!(acme.plan, "pro");
        assert_eq!(acme.balance, Some(100));
        assert_eq!(acme.monthly_allowance, None);
        assert_eq!(acme.resets_at_ms, None);
        assert!((acme.created_at_ms - now_ms()).abs() < 60_000);

        // An allowance without a balance starts the balance at the allowance
        // and schedules the refill at the start of next month (UTC).
        let before = now_ms();
        let beta = store
            .add_tenant("beta", "free", None, Some(1000))
            .await
            .unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!(beta.balance, Some(1000));
        assert_eq!(beta.monthly_allowance, Some(1000));
        let resets = beta.resets_at_ms.expect("resets_at");
        assert_eq!(resets % DAY_MS, 0, "a month starts at midnight UTC");
        assert!(resets > before && resets - before <= 31 * DAY_MS);

        // Unlimited: no balance and no allowance.
        let zed = store.add_tenant("Zed", "free", None, None).await.unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!(zed.balance, None);
        // Both a balance and an allowance: the balance wins for now.
        let gamma = store
            .add_tenant("g.a-m_ma", "x", Some(5), Some(7))
            .await
            .unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!((gamma.balance, gamma.monthly_allowance), (Some(5), Some(7)));

        // Refusals do not bump the revision.
        let dup = store.add_tenant("acme", "free", None, None).await;
        assert!(
            matches!(dup, Err(StoreError::AlreadyExists(ref w)) if w.contains("acme")),
            "{dup:?}"
        );
        for bad in ["", "has space", "slash/", "ünï", &"x".repeat(65)] {
            let r = store.add_tenant(bad, "free", None, None).await;
            assert!(matches!(r, Err(StoreError::Invalid(_))), "{bad:?}: {r:?}");
        }
        assert!(matches!(
            store.add_tenant("neg", "free", Some(-1), None).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.add_tenant("noplan", "", None, None).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.set_balance("nope", Some(1)).await,
            Err(StoreError::NotFound(ref w)) if w.contains("nope")
        ));
        assert!(matches!(
            store.set_plan("nope", "pro").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.set_monthly_allowance("nope", Some(1)).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.revision().await.unwrap(), rev);

        // Show and list (bytewise order: upper case first, the same on both backends).
        assert_eq!(store.tenant("acme").await.unwrap(), Some(acme.clone()));
        assert_eq!(store.tenant("nope").await.unwrap(), None);
        let names: Vec<String> = store
            .list_tenants()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["Zed", "acme", "beta", "g.a-m_ma"]);

        // Setters.
        let t = store.set_balance("acme", Some(42)).await.unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!(t.balance, Some(42));
        let t = store.set_balance("acme", None).await.unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!(t.balance, None);
        let t = store.set_plan("acme", "enterprise").await.unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!(t.plan, "enterprise");
        // An allowance on an unlimited tenant also starts its balance.
        let t = store.set_monthly_allowance("acme", Some(50)).await.unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!((t.balance, t.monthly_allowance), (Some(50), Some(50)));
        assert_eq!(t.resets_at_ms, beta.resets_at_ms);
        // Changing the allowance keeps the balance and the refill time.
        store.set_balance("acme", Some(3)).await.unwrap();
        bumped(&store, &mut rev).await;
        let t = store.set_monthly_allowance("acme", Some(80)).await.unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!((t.balance, t.monthly_allowance), (Some(3), Some(80)));
        assert_eq!(t.resets_at_ms, beta.resets_at_ms);
        let t = store.set_monthly_allowance("acme", None).await.unwrap();
        bumped(&store, &mut rev).await;
        assert_eq!(
            (t.balance, t.monthly_allowance, t.resets_at_ms),
            (Some(3), None, None)
        );
        assert_eq!(store.tenant("acme").await.unwrap(), Some(t));

        // Serializes for the admin API.
        let json = serde_json::to_value(store.tenant("beta").await.unwrap()).unwrap();
        assert_eq!(json["name"], "beta");
        assert_eq!(json["balance"], 1000);

        // Another handle (another process, say) sees the same revision.
        let other = db.open().await;
        assert_eq!(other.revision().await.unwrap(), rev);
    })
    .await;
}

backend_tests!(
    migrations_are_idempotent_and_safe_to_race,
    worker_threads = 2
);
async fn migrations_are_idempotent_and_safe_to_race(backend: Backend) {
    on_backend(backend, "migrations", |db: Db| async move {
        // Several processes opening a fresh database at once.
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move { Store::open(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for o in opens {
            stores.push(o.await.unwrap().expect("concurrent open"));
        }
        stores[0]
            .add_tenant("acme", "pro", None, None)
            .await
            .unwrap();
        let rev = stores[1].revision().await.unwrap();
        drop(stores);
        // Reopening keeps the data and runs nothing twice.
        let store = db.open().await;
        assert_eq!(store.revision().await.unwrap(), rev);
        assert_eq!(store.list_tenants().await.unwrap().len(), 1);

        let described = store.describe();
        match db.backend {
            Backend::Sqlite => {
                assert!(described.starts_with("sqlite /"), "{described}");
                assert!(described.ends_with("store.db"), "{described}");
            }
            Backend::Postgres => {
                assert!(described.starts_with("postgres "), "{described}");
                assert!(!described.contains('@'), "{described}");
                assert!(described.contains("/mcpgate_t_"), "{described}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn open_in_dir_creates_the_directory() {
    let (_, dir) = crate::common::sqlite_db("open_in_dir");
    let nested = dir.join("a").join("b");
    let store = Store::open_in_dir(&nested).await.unwrap();
    assert!(nested.join("mcpgate.db").is_file());
    assert_eq!(
        store.describe(),
        format!("sqlite {}", nested.join("mcpgate.db").display())
    );
    assert_eq!(store.backend(), Backend::Sqlite);
    store.add_tenant("acme", "pro", None, None).await.unwrap();
    drop(store);
    let again = Store::open_in_dir(&nested).await.unwrap();
    assert!(again.tenant("acme").await.unwrap().is_some());
    drop(again);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in ["", "mysql://h/d", "sqlite::memory:", "sqlite:"] {
        let r = Store::open(url).await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{url:?}: {r:?}");
    }
}
