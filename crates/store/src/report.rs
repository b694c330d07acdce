//! Reading the ledger back: per-tenant, per-name usage summaries and the
//! filtered, newest-first audit log. Filters (including the name glob) and
//! limits run inside the database.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{StoreError, db};
use crate::glob::{to_like, to_sqlite_glob};
use crate::record::{INTERRUPTED, Outcome, usage_columns};
use crate::{Backend, Store};

/// Usage of one name by one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageSummary {
    /// The tenant.
    pub tenant: String,
    /// The tool, resource or prompt name.
    pub name: String,
    /// Every recorded call, including refused and still pending ones.
    pub calls: i64,
    /// Calls with outcome `ok`.
    pub ok: i64,
    /// Calls that were attempted but failed (`tool_error`, `error`,
    /// `unavailable`, `timeout`, `cancelled`, `not_found`).
    pub errors: i64,
    /// Calls refused by a `denied_*` rule.
    pub denied: i64,
    /// Calls in flight when their gateway stopped (`kill -9`, a crash),
    /// marked `interrupted` at its next start; their cost stays charged.
    pub interrupted: i64,
    /// Compute tokens charged (after refunds).
    pub cost: i64,
    /// Sum of the recorded durations, in microseconds.
    pub total_duration_us: i64,
}

/// Which audit records to return. The default returns everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    /// Only this tenant's records.
    pub tenant: Option<String>,
    /// Only names matching this glob (`*` any run, `?` one character).
    pub name_glob: Option<String>,
    /// Only records at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// At most this many records (the newest).
    pub limit: Option<i64>,
    /// Only records made with this agent run's key.
    pub run: Option<String>,
}

/// One usage row: the call's [`CallRecord`](crate::CallRecord) as stored,
/// with what the ledger learned later (its id, outcome, duration and
/// error). Its `cost` is what was charged, not what the call would cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// The row's id (the reservation id for reserved calls).
    pub id: i64,
    /// When the call started (ms since the epoch).
    pub ts_ms: i64,
    /// The tenant.
    pub tenant: String,
    /// The key used, if any.
    pub key_id: Option<String>,
    /// The MCP session, if any.
    pub session: Option<String>,
    /// `tools/call`, `resources/read` or `prompts/get`.
    pub method: String,
    /// The tool, resource or prompt name.
    pub name: String,
    /// The upstream that served it, if known.
    pub upstream: Option<String>,
    /// An [`Outcome`] as text, `pending`, or `interrupted` (its gateway
    /// stopped before it finished).
    pub outcome: String,
    /// How long the call took, once finished.
    pub duration_us: Option<i64>,
    /// Compute tokens charged (0 if refused or refunded).
    pub cost: i64,
    /// Size of the arguments in bytes.
    pub arg_bytes: i64,
    /// The recorded arguments, if kept.
    pub args: Option<String>,
    /// A short error text, if any.
    pub error: Option<String>,
    /// The agent run whose key made the call, if any.
    pub run_id: Option<String>,
}

/// A row read in [`usage_columns`] order.
fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        id: row.try_get(0)?,
        ts_ms: row.try_get(1)?,
        tenant: row.try_get(2)?,
        key_id: row.try_get(3)?,
        session: row.try_get(4)?,
        method: row.try_get(5)?,
        name: row.try_get(6)?,
        upstream: row.try_get(7)?,
        outcome: row.try_get(8)?,
        duration_us: row.try_get(9)?,
        cost: row.try_get(10)?,
        arg_bytes: row.try_get(11)?,
        args: row.try_get(12)?,
        error: row.try_get(13)?,
        run_id: row.try_get(14)?,
    })
}

fn summary_from_row(row: &AnyRow) -> Result<UsageSummary, sqlx::Error> {
    Ok(UsageSummary {
        tenant: row.try_get(0)?,
        name: row.try_get(1)?,
        calls: row.try_get(2)?,
        ok: row.try_get(3)?,
        errors: row.try_get(4)?,
        denied: row.try_get(5)?,
        interrupted: row.try_get(6)?,
        cost: row.try_get(7)?,
        total_duration_us: row.try_get(8)?,
    })
}

/// `'a', 'b', ...` for the outcomes selected by `pick` (fixed texts, no user input).
fn outcome_list(pick: impl Fn(Outcome) -> bool) -> String {
    Outcome::ALL
        .iter()
        .filter(|o| pick(**o))
        .map(|o| format!("'{}'", o.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bound value of a filter.
enum Value {
    Text(String),
    Number(i64),
}

/// A `WHERE` clause under construction, with `$n` placeholders.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    values: Vec<Value>,
}

impl Conditions {
    /// Binds a value and returns its placeholder number.
    fn bind(&mut self, value: Value) -> usize {
        self.values.push(value);
        self.values.len()
    }

    /// Adds a condition made from the placeholder of `value`.
    fn add(&mut self, fmt: impl Fn(usize) -> String, value: Value) {
        let n = self.bind(value);
        self.sql.push(fmt(n));
    }

    fn clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.sql.join(" AND "))
        }
    }

    /// The query with every value bound, in placeholder order.
    fn query<'q>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        self.values.iter().fold(sqlx::query(sql), |q, v| match v {
            Value::Text(t) => q.bind(t.as_str()),
            Value::Number(n) => q.bind(*n),
        })
    }
}

impl Store {
    /// Usage grouped by tenant and name, ordered by tenant then name
    /// (bytewise): for one tenant or all, from `since_ms` on or ever.
    pub async fn usage_summary(
        &self,
        tenant: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<Vec<UsageSummary>, StoreError> {
        let mut c = Conditions::default();
        if let Some(t) = tenant {
            c.add(|n| format!("tenant = ${n}"), Value::Text(t.to_owned()));
        }
        if let Some(since) = since_ms {
            c.add(|n| format!("ts >= ${n}"), Value::Number(since));
        }
        let ok = outcome_list(|o| o == Outcome::Ok);
        let denied = outcome_list(Outcome::is_denied);
        let errors = outcome_list(|o| o != Outcome::Ok && !o.is_denied());
        let sql = format!(
            "SELECT tenant, name, CAST(COUNT(*) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN outcome IN ({ok}) THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN outcome IN ({errors}) THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN outcome IN ({denied}) THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN outcome = '{INTERRUPTED}' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(cost), 0) AS BIGINT),
                CAST(COALESCE(SUM(duration_us), 0) AS BIGINT)
             FROM usage{} GROUP BY tenant, name ORDER BY tenant, name",
            c.clause()
        );
        let rows = c.query(&sql).fetch_all(self.pool()).await.map_err(db)?;
        let mut out = rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        out.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        Ok(out)
    }

    /// Usage rows matching `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        if filter.limit.is_some_and(|l| l < 0) {
            return Err(StoreError::Invalid("limit must not be negative".into()));
        }
        let mut c = Conditions::default();
        if let Some(t) = &filter.tenant {
            c.add(|n| format!("tenant = ${n}"), Value::Text(t.clone()));
        }
        if let Some(glob) = &filter.name_glob {
            match self.backend() {
                Backend::Sqlite => {
                    c.add(
                        |n| format!("name GLOB ${n}"),
                        Value::Text(to_sqlite_glob(glob)),
                    );
                }
                Backend::Postgres => {
                    c.add(
                        |n| format!("name LIKE ${n} ESCAPE '\\'"),
                        Value::Text(to_like(glob)),
                    );
                }
            }
        }
        if let Some(since) = filter.since_ms {
            c.add(|n| format!("ts >= ${n}"), Value::Number(since));
        }
        if let Some(run) = &filter.run {
            c.add(|n| format!("run_id = ${n}"), Value::Text(run.clone()));
        }
        let mut sql = format!(
            "SELECT {} FROM usage{} ORDER BY ts DESC, id DESC",
            usage_columns!(),
            c.clause()
        );
        if let Some(limit) = filter.limit {
            let n = c.bind(Value::Number(limit));
            sql.push_str(&format!(" LIMIT ${n}"));
        }
        let rows = c.query(&sql).fetch_all(self.pool()).await.map_err(db)?;
        rows.iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)
    }
}
