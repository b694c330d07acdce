//! The harness: a fresh SQLite file in the temp directory and a fresh
//! PostgreSQL database (`CREATE DATABASE mcpgate_t_<random>`, dropped at the
//! end) for each scenario. PostgreSQL is at
//! `postgres://postgres@127.0.0.1:5432/test` unless
//! `MCPGATE_TEST_POSTGRES_URL` says otherwise. If it cannot be reached the
//! test fails, unless `MCPGATE_SKIP_POSTGRES=1`, which turns the failure
//! into a loud `SKIPPED:` line on stderr. `backend_tests!` makes each
//! scenario one test per backend; the PostgreSQL ones are the peers tier.

use std::future::Future;
use std::path::PathBuf;

use mcpgate_store::{Backend, CallRecord, Store};
use sqlx::{AnyConnection, Connection, Executor};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// One fresh database for one scenario run.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) url: String,
    pub(crate) backend: Backend,
}

impl Db {
    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    /// Opens the store with tenant `acme` on plan `pro` holding `balance`
    /// tokens (`None`: unlimited), where most scenarios start.
    pub(crate) async fn open_with_acme(&self, balance: Option<i64>) -> Store {
        let store = self.open().await;
        store
            .add_tenant("acme", "pro", balance, None)
            .await
            .expect("add tenant acme");
        store
    }

    /// Locks `tenant`'s row from a connection of its own (on SQLite: the
    /// whole database's write lock), so no reservation for it can commit
    /// until [`RowLock::release`].
    pub(crate) async fn lock_tenant(&self, tenant: &str) -> RowLock {
        let mut conn = AnyConnection::connect(&self.url).await.expect("connect");
        conn.execute("BEGIN").await.expect("begin");
        let locked = sqlx::query("UPDATE tenants SET plan = plan WHERE name = $1")
            .bind(tenant)
            .execute(&mut conn)
            .await
            .expect("lock the tenant's row");
        assert_eq!(locked.rows_affected(), 1, "no tenant {tenant}");
        RowLock(conn)
    }

    /// Runs one statement outside the store (to set up odd states).
    pub(crate) async fn exec(&self, sql: &str) {
        let mut conn = AnyConnection::connect(&self.url).await.expect("connect");
        conn.execute(sql).await.expect("exec");
        conn.close().await.ok();
    }
}

/// A transaction holding a tenant's row; see [`Db::lock_tenant`].
pub(crate) struct RowLock(AnyConnection);

impl RowLock {
    pub(crate) async fn release(mut self) {
        self.0.execute("ROLLBACK").await.expect("rollback");
        self.0.close().await.ok();
    }
}

fn random_hex() -> String {
    let mut buf = [0u8; 6];
    getrandom::fill(&mut buf).expect("random");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn postgres_admin_url() -> String {
    std::env::var("MCPGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// `url` with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

async fn admin_connection() -> Result<AnyConnection, String> {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&postgres_admin_url())
        .await
        .map_err(|e| e.to_string())
}

async fn create_postgres(test: &str) -> Result<(String, String), String> {
    let mut conn = admin_connection().await?;
    let name = format!("mcpgate_t_{}", random_hex());
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .map_err(|e| format!("CREATE DATABASE for {test}: {e}"))?;
    conn.close().await.ok();
    Ok((with_database(&postgres_admin_url(), &name), name))
}

async fn drop_postgres(name: &str) {
    match admin_connection().await {
        Ok(mut conn) => {
            if let Err(e) = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
            {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
            conn.close().await.ok();
        }
        Err(e) => eprintln!("warning: could not drop test database {name}: {e}"),
    }
}

fn resume(e: tokio::task::JoinError) -> ! {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic())
    }
    panic!("scenario task failed: {e}")
}

/// A fresh SQLite URL in the temp directory, and its directory.
pub(crate) fn sqlite_db(test: &str) -> (Db, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "mcpgate-store-{test}-{}-{}",
        std::process::id(),
        random_hex()
    ));
    let db = Db {
        url: format!("sqlite:{}", dir.join("store.db").display()),
        backend: Backend::Sqlite,
    };
    (db, dir)
}

/// Declares the tests of scenario `$name`, an `async fn(Backend)`, one per
/// backend: `$name::sqlite`, and `$name::postgres`, which is in the peers
/// tier (ignored unless `-- --ignored`) because it needs PostgreSQL. This is
/// the one place that decides which half a plain `cargo test` runs.
macro_rules! backend_tests {
    ($name:ident, worker_threads = $threads:literal) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn sqlite() {
                super::$name(mcpgate_store::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            #[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432 (scripts/test.sh runs it)"]
            async fn postgres() {
                super::$name(mcpgate_store::Backend::Postgres).await;
            }
        }
    };
}
pub(crate) use backend_tests;

/// Runs `scenario` on a fresh database of `backend`: a SQLite file, or a
/// PostgreSQL database created for it and dropped after.
pub(crate) async fn on_backend<F, Fut>(backend: Backend, test: &str, scenario: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if backend == Backend::Sqlite {
        let (db, dir) = sqlite_db(test);
        match tokio::spawn(scenario(db)).await {
            Ok(()) => {
                std::fs::remove_dir_all(&dir).ok();
            }
            Err(e) => {
                eprintln!("{test} failed on SQLite; files kept in {}", dir.display());
                resume(e)
            }
        }
        return;
    }

    let (url, name) = match create_postgres(test).await {
        Ok(created) => created,
        Err(why) => {
            let admin = postgres_admin_url();
            if std::env::var("MCPGATE_SKIP_POSTGRES").as_deref() == Ok("1") {
                // Straight to the process's stderr, past the test harness's
                // output capture, so the skip is seen even when tests pass.
                let line = format!(
                    "SKIPPED: the PostgreSQL half of {test}, because PostgreSQL at {admin} \
                     is unavailable ({why}) and MCPGATE_SKIP_POSTGRES=1\n"
                );
                std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).ok();
                return;
            }
            panic!(
                "PostgreSQL at {admin} is unavailable for {test}: {why}. Start it \
                 (or point MCPGATE_TEST_POSTGRES_URL at one), or set MCPGATE_SKIP_POSTGRES=1 \
                 to skip the PostgreSQL half of the store tests."
            );
        }
    };
    let db = Db {
        url,
        backend: Backend::Postgres,
    };
    let result = tokio::spawn(scenario(db)).await;
    drop_postgres(&name).await;
    if let Err(e) = result {
        eprintln!("{test} failed on PostgreSQL");
        resume(e)
    }
}

/// A call record for `tenant` calling tool `name` at `ts_ms`.
pub(crate) fn call_at(tenant: &str, name: &str, cost: i64, ts_ms: i64) -> CallRecord {
    CallRecord {
        ts_ms,
        tenant: tenant.to_owned(),
        key_id: None,
        session: Some("session-1".to_owned()),
        method: "tools/call".to_owned(),
        name: name.to_owned(),
        upstream: Some("up".to_owned()),
        cost,
        arg_bytes: 17,
        args: Some(r#"{"path":"/tmp/x"}"#.to_owned()),
        run_id: None,
    }
}

/// A call record stamped now.
pub(crate) fn call(tenant: &str, name: &str, cost: i64) -> CallRecord {
    call_at(tenant, name, cost, mcpgate_store::now_ms())
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
