//! Workflows as the API and CLI create them: durable and versioned. Every
//! change stores a new version (1, 2, …) of the name; old versions stay, so a
//! run can always say which definition it ran. Deleting marks every version
//! deleted (they stay readable by number); putting the name again continues
//! its numbering. The definition is opaque text (the runs crate's JSON); the
//! store only keeps it, its owner tenant and its time.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::now_ms;
use crate::error::{StoreError, db, is_unique_violation};
use crate::{Backend, Store};

/// One stored version of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowVersion {
    /// The workflow's name.
    pub name: String,
    /// Its version, from 1.
    pub version: i64,
    /// The tenant that owns it; `None` for one an admin made for everyone.
    pub tenant: Option<String>,
    /// The definition (JSON, opaque to the store).
    pub definition: String,
    /// When this version was stored (ms since the epoch).
    pub created_at_ms: i64,
    /// When the workflow was deleted, if it was.
    pub deleted_at_ms: Option<i64>,
}

const COLUMNS: &str = "name, version, tenant, definition, created_at, deleted_at";

fn from_row(row: &AnyRow) -> Result<WorkflowVersion, sqlx::Error> {
    Ok(WorkflowVersion {
        name: row.try_get(0)?,
        version: row.try_get(1)?,
        tenant: row.try_get(2)?,
        definition: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        deleted_at_ms: row.try_get(5)?,
    })
}

/// Checks a workflow name against `[A-Za-z0-9_-]{1,64}`.
fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "workflow name must be 1 to 64 of A-Z a-z 0-9 _ -".into(),
        ))
    }
}

/// How many times a version number lost to a concurrent put is retried
/// (puts of one name are serialized, so this is a safety net).
const PUT_ATTEMPTS: usize = 5;

impl Store {
    /// Stores a new version of workflow `name` and returns it.
    pub async fn put_workflow(
        &self,
        name: &str,
        tenant: Option<&str>,
        definition: &str,
    ) -> Result<WorkflowVersion, StoreError> {
        check_name(name)?;
        for _ in 0..PUT_ATTEMPTS {
            let mut tx = self.begin().await?;
            if self.backend() == Backend::Postgres {
                // One writer per name at a time (SQLite's BEGIN IMMEDIATE
                // already serializes every writer).
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mcpgate.workflow.' || $1))")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            let last: i64 = sqlx::query(
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM workflows WHERE name = $1",
            )
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
            let stored = WorkflowVersion {
                name: name.to_owned(),
                version: last + 1,
                tenant: tenant.map(str::to_owned),
                definition: definition.to_owned(),
                created_at_ms: now_ms(),
                deleted_at_ms: None,
            };
            let inserted = sqlx::query(
                "INSERT INTO workflows (name, version, tenant, definition, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&stored.name)
            .bind(stored.version)
            .bind(stored.tenant.as_deref())
            .bind(&stored.definition)
            .bind(stored.created_at_ms)
            .execute(&mut *tx)
            .await;
            match inserted {
                // Another writer took this version number: read the maximum again.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(db(e)),
                Ok(_) => {}
            }
            tx.commit().await.map_err(db)?;
            return Ok(stored);
        }
        Err(StoreError::Db(format!(
            "workflow {name}: too many concurrent changes, try again"
        )))
    }

    /// The latest version of a workflow that is not deleted.
    pub async fn workflow(&self, name: &str) -> Result<Option<WorkflowVersion>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM workflows WHERE name = $1 AND deleted_at IS NULL \
             ORDER BY version DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        row.as_ref().map(from_row).transpose().map_err(db)
    }

    /// One version of a workflow, deleted or not.
    pub async fn workflow_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<Option<WorkflowVersion>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM workflows WHERE name = $1 AND version = $2");
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(version)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        row.as_ref().map(from_row).transpose().map_err(db)
    }

    /// Every version of a workflow, oldest first.
    pub async fn workflow_history(&self, name: &str) -> Result<Vec<WorkflowVersion>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM workflows WHERE name = $1 ORDER BY version");
        let rows = sqlx::query(&sql)
            .bind(name)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        rows.iter()
            .map(from_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// The latest version of every workflow not deleted, by name; only
    /// `tenant`'s and the shared ones when a tenant is given.
    pub async fn workflows(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<WorkflowVersion>, StoreError> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM workflows w WHERE deleted_at IS NULL AND version = \
             (SELECT MAX(version) FROM workflows v WHERE v.name = w.name AND v.deleted_at IS NULL)"
        );
        if tenant.is_some() {
            sql.push_str(" AND (tenant = $1 OR tenant IS NULL)");
        }
        sql.push_str(" ORDER BY name");
        let mut query = sqlx::query(&sql);
        if let Some(t) = tenant {
            query = query.bind(t);
        }
        let rows = query.fetch_all(self.pool()).await.map_err(db)?;
        rows.iter()
            .map(from_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// Deletes a workflow (every version is marked, none is erased).
    /// Errors: [`StoreError::NotFound`] when no live version exists.
    pub async fn delete_workflow(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE workflows SET deleted_at = $1 WHERE name = $2 AND deleted_at IS NULL",
        )
        .bind(now_ms())
        .bind(name)
        .execute(self.pool())
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("workflow {name}")));
        }
        Ok(())
    }
}
