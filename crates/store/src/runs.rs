//! Runs and their logs, in the same database as tenants and usage so runs
//! survive a gateway restart. A run is a row with the columns runs are
//! looked up by (id, workflow, version, tenant, state, creation time) and its
//! whole record as opaque text (the runs crate's JSON); its log is rows of
//! `(run_id, seq, at, event)` with `seq` assigned by the runner, so a log
//! replays from any event in order. The store does not know the state
//! machine: it stores what the runner writes.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::error::{StoreError, db, is_unique_violation};

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRow {
    /// The run's id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow version it ran.
    pub workflow_version: i64,
    /// The tenant who pays.
    pub tenant: String,
    /// Its state (`queued`, `running`, …).
    pub state: String,
    /// When it was accepted (ms since the epoch).
    pub created_at_ms: i64,
    /// The whole record (JSON, opaque to the store).
    pub record: String,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRowFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this workflow's.
    pub workflow: Option<String>,
    /// Only runs in one of these states (empty: any).
    pub states: Vec<String>,
    /// At most this many; `None` for all.
    pub limit: Option<i64>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// One event of a run's log as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunEventRow {
    /// Its position in the log, from 1.
    pub seq: i64,
    /// When it happened (ms since the epoch).
    pub at_ms: i64,
    /// The event (JSON, opaque to the store).
    pub event: String,
}

const RUN_COLUMNS: &str = "id, workflow, workflow_version, tenant, state, created_at, record";

fn run_from_row(row: &AnyRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        id: row.try_get(0)?,
        workflow: row.try_get(1)?,
        workflow_version: row.try_get(2)?,
        tenant: row.try_get(3)?,
        state: row.try_get(4)?,
        created_at_ms: row.try_get(5)?,
        record: row.try_get(6)?,
    })
}

/// A value bound to a placeholder of a built query.
enum Bound {
    Text(String),
    Number(i64),
}

impl Store {
    /// Stores a new run. Errors: [`StoreError::AlreadyExists`] for a taken id.
    /// The run is owned by this process (see [`Store::claim_runs`]).
    pub async fn insert_run(&self, run: &RunRow) -> Result<(), StoreError> {
        self.hold_liveness().await?;
        let sql = format!(
            "INSERT INTO runs ({RUN_COLUMNS}, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        sqlx::query(&sql)
            .bind(&run.id)
            .bind(&run.workflow)
            .bind(run.workflow_version)
            .bind(&run.tenant)
            .bind(&run.state)
            .bind(run.created_at_ms)
            .bind(&run.record)
            .bind(i64::from(self.owner_id()))
            .execute(self.pool())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists(format!("run {}", run.id))
                } else {
                    db(e)
                }
            })?;
        Ok(())
    }

    /// Replaces a run's state and record. Errors: [`StoreError::NotFound`].
    pub async fn update_run(&self, run: &RunRow) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE runs SET state = $1, record = $2 WHERE id = $3")
            .bind(&run.state)
            .bind(&run.record)
            .bind(&run.id)
            .execute(self.pool())
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("run {}", run.id)));
        }
        Ok(())
    }

    /// How many runs are in each state (for monitoring), by state name.
    pub async fn count_runs_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    /// One run.
    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        row.as_ref().map(run_from_row).transpose().map_err(db)
    }

    /// Runs matching `filter`, newest (or oldest) first.
    pub async fn runs(&self, filter: &RunRowFilter) -> Result<Vec<RunRow>, StoreError> {
        if filter.limit.is_some_and(|l| l < 0) {
            return Err(StoreError::Invalid("limit must not be negative".into()));
        }
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let mut bind = |value: Bound| {
            values.push(value);
            values.len()
        };
        if let Some(t) = &filter.tenant {
            conditions.push(format!("tenant = ${}", bind(Bound::Text(t.clone()))));
        }
        if let Some(w) = &filter.workflow {
            conditions.push(format!("workflow = ${}", bind(Bound::Text(w.clone()))));
        }
        if !filter.states.is_empty() {
            let list: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("${}", bind(Bound::Text(s.clone()))))
                .collect();
            conditions.push(format!("state IN ({})", list.join(", ")));
        }
        let order = if filter.oldest_first { "ASC" } else { "DESC" };
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs");
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        sql.push_str(&format!(" ORDER BY created_at {order}, id {order}"));
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT ${}", bind(Bound::Number(limit))));
        }
        let query = values.iter().fold(sqlx::query(&sql), |q, v| match v {
            Bound::Text(t) => q.bind(t.as_str()),
            Bound::Number(n) => q.bind(*n),
        });
        let rows = query.fetch_all(self.pool()).await.map_err(db)?;
        rows.iter()
            .map(run_from_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// Appends events to a run's log, all or none.
    pub async fn append_run_events(
        &self,
        run_id: &str,
        events: &[RunEventRow],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for event in events {
            sqlx::query("INSERT INTO run_events (run_id, seq, at, event) VALUES ($1, $2, $3, $4)")
                .bind(run_id)
                .bind(event.seq)
                .bind(event.at_ms)
                .bind(&event.event)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists(format!("event {} of run {run_id}", event.seq))
                    } else {
                        db(e)
                    }
                })?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// A run's events with `seq > after`, in order, at most `limit`.
    pub async fn run_events(
        &self,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RunEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, event FROM run_events WHERE run_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(run_id)
        .bind(after)
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(RunEventRow {
                    seq: row.try_get(0)?,
                    at_ms: row.try_get(1)?,
                    event: row.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    /// The highest event number of a run's log (0 when it has none).
    pub async fn last_run_event(&self, run_id: &str) -> Result<i64, StoreError> {
        sqlx::query(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM run_events WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_one(self.pool())
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)
    }
}
