//! A fresh PostgreSQL database per test, for gateways whose store is
//! PostgreSQL: `CREATE DATABASE mcpgate_it_<random>` on the machine's server
//! (`postgres://postgres@127.0.0.1:5432/test`, or `MCPGATE_TEST_POSTGRES_URL`),
//! dropped (`WITH (FORCE)`) when the handle is dropped, so tests run in
//! parallel. An unreachable server fails the test, unless
//! `MCPGATE_SKIP_POSTGRES=1`, which makes [`PgDb::create`] return `None`
//! after a loud `SKIPPED:` line (the store tests' rule).
#![allow(dead_code, unreachable_pub)]

use sqlx::{AnyConnection, Connection, Executor, Row};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn admin_url() -> String {
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

async fn admin() -> Result<AnyConnection, String> {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&admin_url())
        .await
        .map_err(|e| e.to_string())
}

/// One test's database.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    /// Creates the database, or `None` when PostgreSQL is unavailable and
    /// `MCPGATE_SKIP_POSTGRES=1` (else it panics saying what to do).
    pub async fn create(test: &str) -> Option<PgDb> {
        let mut buf = [0u8; 6];
        getrandom::fill(&mut buf).expect("random");
        let name = format!(
            "mcpgate_it_{}",
            buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let created = async {
            let mut conn = admin().await?;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .map_err(|e| e.to_string())?;
            conn.close().await.ok();
            Ok::<(), String>(())
        }
        .await;
        if let Err(why) = created {
            if std::env::var("MCPGATE_SKIP_POSTGRES").as_deref() == Ok("1") {
                let line = format!(
                    "SKIPPED: {test}, because PostgreSQL at {} is unavailable ({why}) and \
                     MCPGATE_SKIP_POSTGRES=1\n",
                    admin_url()
                );
                std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).ok();
                return None;
            }
            panic!(
                "PostgreSQL at {} is unavailable for {test}: {why}. Start it (or point \
                 MCPGATE_TEST_POSTGRES_URL at one), or set MCPGATE_SKIP_POSTGRES=1 to skip.",
                admin_url()
            );
        }
        Some(PgDb {
            url: with_database(&admin_url(), &name),
            name,
        })
    }

    /// The value of a query that returns one BIGINT (e.g. a `COUNT(*)`).
    pub async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = AnyConnection::connect(&self.url).await.expect("connect");
        let row = sqlx::query(sql).fetch_one(&mut conn).await.expect(sql);
        let v: i64 = row.try_get(0).expect("a BIGINT");
        conn.close().await.ok();
        v
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropped inside a Tokio test: drop the database from a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = admin().await?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                conn.close().await.ok();
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}
