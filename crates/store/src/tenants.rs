//! Tenants: their names, plans, compute-token balances and monthly
//! allowances, and the administrative operations on them. Every mutation
//! bumps the store's revision in the same transaction.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::{next_month_start_ms, now_ms};
use crate::error::{StoreError, db, is_unique_violation};
use crate::{Store, bump_revision};

/// A tenant: the unit that owns keys and is charged for calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Unique name, `[A-Za-z0-9_.-]{1,64}`.
    pub name: String,
    /// The plan (tier) name the gateway's rules refer to.
    pub plan: String,
    /// Remaining compute tokens; `None` means unlimited.
    pub balance: Option<i64>,
    /// Tokens the balance is refilled to at the start of each month (UTC).
    pub monthly_allowance: Option<i64>,
    /// When the next refill happens (ms since the epoch), with an allowance.
    pub resets_at_ms: Option<i64>,
    /// When the tenant was added (ms since the epoch).
    pub created_at_ms: i64,
}

const COLUMNS: &str = "name, plan, balance, monthly_allowance, resets_at, created_at";

fn from_row(row: &AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        name: row.try_get(0)?,
        plan: row.try_get(1)?,
        balance: row.try_get(2)?,
        monthly_allowance: row.try_get(3)?,
        resets_at_ms: row.try_get(4)?,
        created_at_ms: row.try_get(5)?,
    })
}

/// Checks a tenant name against `[A-Za-z0-9_.-]{1,64}`.
pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "tenant name must be 1 to 64 of A-Z a-z 0-9 _ . -".into(),
        ))
    }
}

fn check_plan(plan: &str) -> Result<(), StoreError> {
    if plan.is_empty() || plan.chars().count() > 64 || plan.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "plan must be 1 to 64 characters, without control characters".into(),
        ));
    }
    Ok(())
}

fn check_amount(what: &str, v: Option<i64>) -> Result<(), StoreError> {
    match v {
        Some(v) if v < 0 => Err(StoreError::Invalid(format!("{what} must not be negative"))),
        _ => Ok(()),
    }
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("tenant {name}"))
}

impl Store {
    /// Adds a tenant. With a monthly allowance and no balance, the balance
    /// starts at the allowance; with an allowance, the first refill is at the
    /// start of next month (UTC). `balance: None` and no allowance means
    /// unlimited. Errors: [`StoreError::AlreadyExists`], [`StoreError::Invalid`].
    pub async fn add_tenant(
        &self,
        name: &str,
        plan: &str,
        balance: Option<i64>,
        monthly_allowance: Option<i64>,
    ) -> Result<Tenant, StoreError> {
        check_name(name)?;
        check_plan(plan)?;
        check_amount("balance", balance)?;
        check_amount("monthly allowance", monthly_allowance)?;
        let now = now_ms();
        let tenant = Tenant {
            name: name.to_owned(),
            plan: plan.to_owned(),
            balance: balance.or(monthly_allowance),
            monthly_allowance,
            resets_at_ms: monthly_allowance.map(|_| next_month_start_ms(now)),
            created_at_ms: now,
        };
        let exists = || StoreError::AlreadyExists(format!("tenant {name}"));
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT 1 FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .is_some()
        {
            return Err(exists());
        }
        sqlx::query(
            "INSERT INTO tenants (name, plan, balance, monthly_allowance, resets_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&tenant.name)
        .bind(&tenant.plan)
        .bind(tenant.balance)
        .bind(tenant.monthly_allowance)
        .bind(tenant.resets_at_ms)
        .bind(tenant.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                exists()
            } else {
                db(e)
            }
        })?;
        bump_revision(&mut tx).await?;
        tx.commit().await.map_err(db)?;
        self.changed();
        Ok(tenant)
    }

    /// Sets a tenant's balance; `None` makes it unlimited (until the next
    /// monthly refill, if it has an allowance).
    pub async fn set_balance(
        &self,
        name: &str,
        balance: Option<i64>,
    ) -> Result<Tenant, StoreError> {
        check_amount("balance", balance)?;
        self.update(
            name,
            "UPDATE tenants SET balance = $2 WHERE name = $1",
            |q| q.bind(balance),
        )
        .await
    }

    /// Sets a tenant's plan.
    pub async fn set_plan(&self, name: &str, plan: &str) -> Result<Tenant, StoreError> {
        check_plan(plan)?;
        let plan = plan.to_owned();
        self.update(name, "UPDATE tenants SET plan = $2 WHERE name = $1", |q| {
            q.bind(plan)
        })
        .await
    }

    /// Sets or clears a tenant's monthly allowance. Setting one keeps the
    /// current balance (an unlimited balance becomes the allowance) and
    /// schedules the first refill at the start of next month (UTC) unless
    /// one is already scheduled; clearing it also clears the refill time and
    /// leaves the balance as it is.
    pub async fn set_monthly_allowance(
        &self,
        name: &str,
        allowance: Option<i64>,
    ) -> Result<Tenant, StoreError> {
        check_amount("monthly allowance", allowance)?;
        match allowance {
            Some(a) => {
                let next = next_month_start_ms(now_ms());
                self.update(
                    name,
                    "UPDATE tenants SET monthly_allowance = $2, \
                     balance = COALESCE(balance, $2), resets_at = COALESCE(resets_at, $3) \
                     WHERE name = $1",
                    |q| q.bind(a).bind(next),
                )
                .await
            }
            None => {
                self.update(
                    name,
                    "UPDATE tenants SET monthly_allowance = NULL, resets_at = NULL WHERE name = $1",
                    |q| q,
                )
                .await
            }
        }
    }

    /// One tenant by name.
    pub async fn tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE name = $1");
        sqlx::query(&sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
            .map(|row| from_row(&row).map_err(db))
            .transpose()
    }

    /// All tenants, ordered by name (bytewise, the same on both backends).
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants ORDER BY name");
        let mut out = sqlx::query(&sql)
            .fetch_all(self.pool())
            .await
            .map_err(db)?
            .iter()
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Runs one `UPDATE ... WHERE name = $1` (more binds added by `bind`),
    /// bumps the revision and returns the updated tenant; `NotFound` if no
    /// tenant has that name.
    async fn update<'q>(
        &self,
        name: &'q str,
        sql: &'q str,
        bind: impl FnOnce(
            sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<Tenant, StoreError> {
        // Reservations made before this change are stored before it, so a
        // balance set here is the balance after them (journal mode, where
        // they are stored in the background).
        if let Some(ledger) = self.inner.ledger.get()
            && ledger.journaled()
        {
            ledger.flush().await?;
        }
        let mut tx = self.begin().await?;
        let done = bind(sqlx::query(sql).bind(name))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(not_found(name));
        }
        bump_revision(&mut tx).await?;
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let tenant = from_row(&row).map_err(db)?;
        tx.commit().await.map_err(db)?;
        // This process's balances in memory (journal mode) follow at once;
        // other processes' follow when they see the revision move.
        if let Some(ledger) = self.inner.ledger.get()
            && let Err(e) = ledger.reload_balances().await
        {
            tracing::warn!(error = %e, "cannot reload the balances after a change");
        }
        self.changed();
        Ok(tenant)
    }
}

/// Whether a tenant exists, inside a transaction.
pub(crate) async fn exists(conn: &mut sqlx::AnyConnection, name: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query("SELECT 1 FROM tenants WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "acme", "A-b_c.9", &"x".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65), "a\n"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
