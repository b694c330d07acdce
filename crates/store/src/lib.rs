//! mcpgate's store: the only place in mcpgate with SQL. It owns tenants,
//! API keys, compute-token balances, the usage/audit ledger, and runs
//! (versioned workflows, runs and their logs), on SQLite (a
//! file in the gateway's data directory, the default) or PostgreSQL (shared
//! by several replicas), through the same portable SQL on sqlx's `Any`
//! driver. [`Store`] is the handle for administrative reads and writes;
//! [`Ledger`] is the handle to the one batching writer that reserves, finishes
//! and records calls on the hot path. On SQLite the gateway also gives the
//! ledger a local journal ([`Store::open_journal`]): balances are then
//! checked in memory and reservations made durable in the journal, with no
//! database commit on a call's path.
//!
//! Column types are only `BIGINT`/`INTEGER`, `TEXT` and their NULLs;
//! timestamps are milliseconds since the Unix epoch. Key secrets are never
//! stored (only their SHA-256), returned after creation, or logged.
//!
//! The latency of a reservation on SQLite (median and p99) is measured by
//! `cargo bench -p mcpgate-store --bench reserve`.

mod balances;
mod batch;
mod checkpoint;
mod clock;
mod connect;
mod error;
mod glob;
mod interrupted;
mod journal;
mod keys;
mod ledger;
mod migrate;
mod op;
mod record;
mod report;
mod run_owner;
mod runs;
mod stats;
mod tenants;
mod workflows;
mod writer;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use sqlx::{AnyPool, Row};

pub use clock::{format_ts, now_ms};
pub use error::{KeyRejection, ReserveError, StoreError};
pub use glob::glob_match;
pub use journal::JournalSync;
pub use keys::{CreatedKey, KeyInfo};
pub use ledger::Ledger;
pub use record::{CallRecord, Outcome, Reservation};
pub use report::{AuditFilter, AuditRecord, UsageSummary};
pub use runs::{RunEventRow, RunRow, RunRowFilter};
pub use stats::{HistogramSnapshot, LATENCY_BUCKETS_US, LatencyHistogram, LedgerStats};
pub use tenants::Tenant;
pub use workflows::WorkflowVersion;

use crate::error::db;

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One SQLite file (WAL mode); the default.
    Sqlite,
    /// A PostgreSQL database, possibly shared by several gateway replicas.
    Postgres,
}

/// A handle to the store. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    target: Arc<connect::Target>,
    /// The small pool for reads and administrative writes.
    pool: AnyPool,
    /// The batching writer's handle, spawned on the first [`Store::ledger`].
    ledger: OnceLock<Ledger>,
    /// The journal opened by [`Store::open_journal`], until the ledger takes it.
    journal: std::sync::Mutex<Option<journal::Journal>>,
    /// This handle's id on the runs it owns (see `run_owner`).
    owner: i32,
    /// PostgreSQL: the connection holding the "owner alive" advisory lock.
    liveness: tokio::sync::OnceCell<std::sync::Mutex<sqlx::AnyConnection>>,
    /// Counts this handle's committed changes to tenants or keys (see [`Store::changes`]).
    changes: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("at", &self.inner.target.description)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `url` — `sqlite:PATH` / `sqlite://PATH` (the file
    /// and its directory are created if missing) or `postgres://...` /
    /// `postgresql://...` — and runs the schema migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let target = connect::parse_url(url)?;
        Self::open_target(target).await
    }

    /// Opens (creating if missing) the SQLite store `dir/mcpgate.db`,
    /// creating `dir`.
    pub async fn open_in_dir(dir: &Path) -> Result<Store, StoreError> {
        let target = connect::sqlite_target(&dir.join("mcpgate.db"))?;
        Self::open_target(target).await
    }

    async fn open_target(target: connect::Target) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = connect::open_pool(&target).await?;
        migrate::run(&pool, target.backend).await?;
        recover_journal(&target).await;
        tracing::debug!(store = %target.description, "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                target: Arc::new(target),
                pool,
                ledger: OnceLock::new(),
                journal: std::sync::Mutex::new(None),
                owner: run_owner::new_owner_id(),
                liveness: tokio::sync::OnceCell::new(),
                changes: tokio::sync::watch::Sender::new(0),
            }),
        })
    }

    /// The database kind behind this store.
    pub fn backend(&self) -> Backend {
        self.inner.target.backend
    }

    /// Where the store lives, for logs and `--json` output: `sqlite PATH` or
    /// `postgres HOST:PORT/DB`. Never contains a user name or password.
    pub fn describe(&self) -> String {
        self.inner.target.description.clone()
    }

    /// The revision counter: bumped in the same transaction as every
    /// mutation of tenants or keys, so a process that caches them (the
    /// gateway polls every ~250 ms) sees changes made by another (the CLI).
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE name = 'revision'")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(db)?;
        row.try_get::<i64, _>(0).map_err(db)
    }

    /// Moves each time this handle (or a clone of it) commits a change to
    /// tenants or keys, right after the commit: a gateway announces it to
    /// its other replicas at once (`[cluster] redis`) instead of leaving
    /// them to notice the revision on their next poll.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Called after a transaction that bumped the revision committed.
    pub(crate) fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A handle to the batching ledger writer. The writer (one task owning
    /// one dedicated connection) is spawned on the first call, which must
    /// happen inside a Tokio runtime; every call returns a handle to the
    /// same writer. When the store and every ledger handle are dropped, the
    /// writer commits what is queued and closes its connection.
    pub fn ledger(&self) -> Ledger {
        self.inner
            .ledger
            .get_or_init(|| {
                let journal = match self.inner.journal.lock() {
                    Ok(mut g) => g.take(),
                    Err(poisoned) => poisoned.into_inner().take(),
                };
                Ledger::spawn(self.inner.target.clone(), journal)
            })
            .clone()
    }

    /// Makes this process the owner of the SQLite store's ledger journal
    /// (`<database>.journal.*`, see the `journal` module), so that the
    /// ledger (spawned on the next [`Store::ledger`]) checks balances in
    /// memory and makes reservations durable in the journal instead of
    /// committing each to the database before the call goes on. Takes the
    /// journal's exclusive lock (waiting up to 2 s for a process that is
    /// replaying it), replays what a stopped owner left into the store, and
    /// opens a fresh file. Returns `Ok(false)`, and the ledger commits
    /// reservations as before, on PostgreSQL (shared by replicas, where a
    /// balance in one process's memory could not be exact), when another
    /// live process owns the journal, or when the ledger is already running.
    /// Opening the store already replays a journal whose owner is gone (so
    /// [`Store::interrupt_pending`] sees those calls); this replays again,
    /// under the lock it keeps, whatever an owner that died since left.
    pub async fn open_journal(&self, mode: JournalSync) -> Result<bool, StoreError> {
        let Some(base) = self
            .inner
            .target
            .sqlite_file
            .as_deref()
            .and_then(journal::base_of)
        else {
            return Ok(false);
        };
        if self.inner.ledger.get().is_some() {
            return Ok(false);
        }
        let io = |e: std::io::Error| StoreError::Db(format!("the ledger journal: {e}"));
        let mut lock = None;
        for _ in 0..40 {
            lock = journal::try_lock(&base).map_err(io)?;
            if lock.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let Some(lock) = lock else {
            tracing::warn!(
                "another process owns this store's ledger journal; \
                 reservations are committed to the database one by one"
            );
            return Ok(false);
        };
        let replayed = writer::replay(&self.inner.target, &base).await?;
        if replayed > 0 {
            tracing::warn!("{replayed} reservation(s) replayed from the ledger journal");
        }
        let opened = journal::Journal::open(base, lock, mode).map_err(io)?;
        match self.inner.journal.lock() {
            Ok(mut g) => *g = Some(opened),
            Err(poisoned) => *poisoned.into_inner() = Some(opened),
        }
        Ok(true)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Begins an administrative write transaction on the pool.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        self.inner
            .pool
            .begin_with(connect::begin_sql(self.backend()))
            .await
            .map_err(db)
    }
}

/// On opening a SQLite store: if no live process owns its ledger journal,
/// replays what a stopped one left, so that every reader (the CLI's
/// `audit`, `usage`, `tenants show`) sees the records of calls that reached
/// an upstream. A failure is logged; the files stay for the next try.
async fn recover_journal(target: &connect::Target) {
    let Some(base) = target.sqlite_file.as_deref().and_then(journal::base_of) else {
        return;
    };
    match journal::files(&base) {
        Ok(files) if files.is_empty() => return,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the ledger journal's files");
            return;
        }
    }
    let lock = match journal::try_lock(&base) {
        Ok(Some(lock)) => lock,
        Ok(None) => return, // its owner is alive and stores it itself
        Err(e) => {
            tracing::warn!(error = %e, "cannot lock the ledger journal");
            return;
        }
    };
    match writer::replay(target, &base).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!("{n} reservation(s) replayed from the ledger journal"),
        Err(e) => tracing::error!(error = %e, "cannot replay the ledger journal"),
    }
    drop(lock);
}

/// Bumps the revision counter inside a mutation's transaction and returns
/// the new revision. The counter's row stays locked until the transaction
/// ends, so revisions are handed out one at a time in commit order, across
/// processes too: a strictly increasing sequence of mutations.
pub(crate) async fn bump_revision(conn: &mut sqlx::AnyConnection) -> Result<i64, StoreError> {
    let row =
        sqlx::query("UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value")
            .fetch_one(conn)
            .await
            .map_err(db)?;
    row.try_get::<i64, _>(0).map_err(db)
}
