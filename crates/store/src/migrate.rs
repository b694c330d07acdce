//! The schema and its versioned migrations. A `meta` table holds
//! `schema_version` (and the `revision` counter); each migration is a list
//! of statements, written once where both dialects accept them and once
//! per backend where they differ. Migrations run in one transaction that
//! first takes the database's write lock (SQLite `BEGIN IMMEDIATE`, a
//! PostgreSQL advisory lock), so two processes opening the store at once
//! apply each migration exactly once, and reopening is a no-op.

use sqlx::{AnyPool, Row};

use crate::Backend;
use crate::connect::begin_sql;
use crate::error::{StoreError, db};

/// One schema statement: the same text for both backends, or one each
/// where the dialects differ.
enum Step {
    Both(&'static str),
    Each {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

impl Step {
    fn sql(&self, backend: Backend) -> &'static str {
        match (self, backend) {
            (Step::Both(sql), _) => sql,
            (Step::Each { sqlite, .. }, Backend::Sqlite) => sqlite,
            (Step::Each { postgres, .. }, Backend::Postgres) => postgres,
        }
    }
}

/// One schema version: its statements, run in order inside the migration
/// transaction.
struct Migration {
    version: i64,
    steps: &'static [Step],
}

const TENANTS: &str = "CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    balance BIGINT,
    monthly_allowance BIGINT,
    resets_at BIGINT,
    created_at BIGINT NOT NULL)";

const API_KEYS: &str = "CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT REFERENCES tenants (name),
    label TEXT,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT,
    is_admin INTEGER NOT NULL DEFAULT 0)";

/// Every version of every workflow; a deleted workflow's versions are marked.
const WORKFLOWS: &str = "CREATE TABLE IF NOT EXISTS workflows (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    tenant TEXT,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT,
    PRIMARY KEY (name, version))";

/// Runs: the columns they are found by, and the whole record as JSON.
const RUNS: &str = "CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    workflow_version BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    record TEXT NOT NULL)";

/// Runs' logs, in the order the runner numbered them.
const RUN_EVENTS: &str = "CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (run_id, seq))";

/// The usage table with its id column's type: usage rows get their ids
/// from the writer, so no RETURNING is needed; on SQLite the id is the
/// rowid itself (`INTEGER PRIMARY KEY`, no second index).
macro_rules! usage_table {
    ($id_type:literal) => {
        concat!(
            "CREATE TABLE usage (id ",
            $id_type,
            " PRIMARY KEY,",
            "
    ts BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    key_id TEXT,
    session TEXT,
    method TEXT NOT NULL,
    name TEXT NOT NULL,
    upstream TEXT,
    outcome TEXT NOT NULL,
    duration_us BIGINT,
    cost BIGINT NOT NULL,
    arg_bytes BIGINT NOT NULL,
    args TEXT,
    error TEXT)"
        )
    };
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        steps: &[
            Step::Both(TENANTS),
            Step::Both(API_KEYS),
            Step::Each {
                sqlite: usage_table!("INTEGER"),
                postgres: usage_table!("BIGINT"),
            },
            Step::Both("CREATE INDEX usage_tenant_ts ON usage (tenant, ts)"),
            Step::Both("CREATE INDEX usage_ts ON usage (ts)"),
            Step::Both("CREATE INDEX api_keys_tenant ON api_keys (tenant)"),
            Step::Both(
                "INSERT INTO meta (name, value) VALUES ('revision', 0) ON CONFLICT (name) DO NOTHING",
            ),
        ],
    },
    Migration {
        // The revision a key's creation moved the counter to, so keys list in
        // the order they were created even within one millisecond. Keys made
        // before this version keep 0 and list first, by time and then id.
        version: 2,
        steps: &[Step::Both(
            "ALTER TABLE api_keys ADD COLUMN created_rev BIGINT NOT NULL DEFAULT 0",
        )],
    },
    Migration {
        // Runs: versioned workflows, runs, and their logs. `IF NOT EXISTS`,
        // so a database whose version was set back (as the upgrade tests do)
        // migrates forward again.
        version: 3,
        steps: &[
            Step::Both(WORKFLOWS),
            Step::Both(RUNS),
            Step::Both(
                "CREATE INDEX IF NOT EXISTS runs_tenant_created ON runs (tenant, created_at)",
            ),
            Step::Both("CREATE INDEX IF NOT EXISTS runs_state ON runs (state)"),
            Step::Both(RUN_EVENTS),
        ],
    },
    Migration {
        // The agent run whose key made a call, on its usage row.
        version: 4,
        steps: &[
            Step::Both("ALTER TABLE usage ADD COLUMN run_id TEXT"),
            Step::Both("CREATE INDEX usage_run ON usage (run_id)"),
        ],
    },
    Migration {
        // The gateway process that owns a run (`run_owner`): replicas
        // recover only the runs of owners that are gone.
        version: 5,
        steps: &[Step::Both("ALTER TABLE runs ADD COLUMN owner BIGINT")],
    },
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = 5;

/// An arbitrary constant naming mcpgate's migration lock on PostgreSQL.
const PG_LOCK_KEY: i64 = 0x6d63_7067_6174_6531;

/// Brings the schema up to [`LATEST`]. Idempotent; safe to race.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let mut tx = pool.begin_with(begin_sql(backend)).await.map_err(db)?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let current: i64 = sqlx::query("SELECT value FROM meta WHERE name = 'schema_version'")
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .map(|row| row.try_get::<i64, _>(0))
        .transpose()
        .map_err(db)?
        .unwrap_or(0);
    if current > LATEST {
        return Err(StoreError::Invalid(format!(
            "the database has schema version {current}, newer than this build's {LATEST}; \
             upgrade mcpgate"
        )));
    }
    if current == LATEST {
        // Nothing to migrate (the meta table already existed).
        tx.commit().await.map_err(db)?;
        return Ok(());
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        for step in m.steps {
            sqlx::query(step.sql(backend))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Db(format!("migration {}: {e}", m.version)))?;
        }
        tracing::info!(version = m.version, "store schema migrated");
    }
    sqlx::query(
        "INSERT INTO meta (name, value) VALUES ('schema_version', $1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(LATEST)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}
