//! The SQL of the ledger writer's batches. On PostgreSQL a batch is a
//! transaction of one statement at a time. On SQLite, where every statement
//! is a round trip to the driver's worker thread, the whole batch is ONE
//! multi-statement string, `BEGIN IMMEDIATE; ...; COMMIT`: a reservation's
//! debit returns its id, and its `pending` row is inserted only if the debit
//! changed a row. Reservations whose debit did not happen (short balance,
//! unknown tenant) are then resolved in a follow-up transaction that
//! records the refusal. Either way each reservation is applied whole or not
//! at all, and nothing is answered before its commit.

use std::collections::HashMap;
use std::fmt::Write as _;

use sqlx::{AnyConnection, Connection, Row};

use crate::Backend;
use crate::balances::Account;
use crate::clock::next_month_start_ms;
use crate::connect::begin_sql;
use crate::error::ReserveError;
use crate::op::Op;
use crate::record::{CallRecord, Outcome, PENDING, Reservation, usage_columns};

/// A reservation's answer from a batch: `None` while its debit did not
/// happen and the follow-up transaction has yet to say why.
pub(crate) type Answer = Option<Result<Reservation, ReserveError>>;

// Reservation parameters: $1 tenant, $2 cost, $3 now, $4 next refill time,
// $5 usage id, $6 key, $7 session, $8 method, $9 name, $10 upstream,
// $11 arg bytes, $12 args, $13 run id.

/// Refill if due, then debit only if the (refilled) balance is unlimited
/// or large enough: one conditional UPDATE, so no interleaving (threads,
/// processes, replicas) can overspend.
macro_rules! debit {
    () => {
        "UPDATE tenants SET
            balance = CASE
                WHEN monthly_allowance IS NOT NULL AND resets_at <= $3 THEN monthly_allowance - $2
                WHEN balance IS NULL THEN NULL
                ELSE balance - $2 END,
            resets_at = CASE
                WHEN monthly_allowance IS NOT NULL AND resets_at <= $3 THEN $4
                ELSE resets_at END
            WHERE name = $1 AND (
                CASE WHEN monthly_allowance IS NOT NULL AND resets_at <= $3
                    THEN monthly_allowance ELSE balance END IS NULL
                OR CASE WHEN monthly_allowance IS NOT NULL AND resets_at <= $3
                    THEN monthly_allowance ELSE balance END >= $2)"
    };
}

const DEBIT: &str = concat!(debit!(), " RETURNING balance");

/// The debit tagged with the usage id, so rows map back to reservations.
const DEBIT_TAGGED: &str = concat!(debit!(), " RETURNING $5, balance");

/// The pending row, only if the statement before (the debit) changed a row.
const PENDING_IF_DEBITED: &str = concat!(
    "INSERT INTO usage (",
    usage_columns!(),
    ") SELECT $5, $3, $1, $6, $7, $8, $9, $10, 'pending', NULL, $2, $11, $12, NULL, $13
    WHERE changes() = 1"
);

/// A journaled reservation's debit (see [`Op::Journaled`]): the refill rule
/// of the debit above, but unconditional (the balance was checked in
/// memory), and only if the usage row is not there yet, so a record replayed
/// from the journal after a crash is never charged twice.
const JOURNALED_DEBIT: &str = "UPDATE tenants SET
    balance = CASE
        WHEN monthly_allowance IS NOT NULL AND resets_at <= $3 THEN monthly_allowance - $2
        WHEN balance IS NULL THEN NULL
        ELSE balance - $2 END,
    resets_at = CASE
        WHEN monthly_allowance IS NOT NULL AND resets_at <= $3 THEN $4
        ELSE resets_at END
    WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM usage WHERE id = $5)";

/// A journaled reservation's `pending` row, unless it is there already.
const JOURNALED_PENDING: &str = concat!(
    "INSERT INTO usage (",
    usage_columns!(),
    ") VALUES ($5, $3, $1, $6, $7, $8, $9, $10, 'pending', NULL, $2, $11, $12, NULL, $13)
    ON CONFLICT (id) DO NOTHING"
);

/// The same row as [`JOURNALED_PENDING`] in [`INSERT_USAGE`]'s parameters
/// (for the statement-at-a-time path, where every bound value must be used).
const INSERT_USAGE_ONCE: &str = concat!(
    "INSERT INTO usage (",
    usage_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $13, $14)
    ON CONFLICT (id) DO NOTHING"
);

/// The state of a tenant whose debit did not happen.
const TENANT_STATE: &str =
    "SELECT balance, monthly_allowance, resets_at FROM tenants WHERE name = $1";

/// A refill on its own (when even the refilled balance is too low).
/// $1 tenant, $2 now, $3 next refill time.
const REFILL: &str = "UPDATE tenants SET balance = monthly_allowance, resets_at = $3
    WHERE name = $1 AND monthly_allowance IS NOT NULL AND resets_at <= $2";

/// $1 id, $2 ts, $3 tenant, $4 key, $5 session, $6 method, $7 name,
/// $8 upstream, $9 outcome, $10 cost, $11 arg bytes, $12 args, $13 error, $14 run id.
const INSERT_USAGE: &str = concat!(
    "INSERT INTO usage (",
    usage_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $13, $14)"
);

// Finish parameters: $1 usage id, $2 outcome, $3 duration, $4 error.

/// Gives a row's cost back to its tenant (unless unlimited).
const REFUND: &str = "UPDATE tenants SET balance = balance + (SELECT cost FROM usage WHERE id = $1)
    WHERE balance IS NOT NULL AND name = (SELECT tenant FROM usage WHERE id = $1)";

const FINISH: &str = "UPDATE usage SET outcome = $2, duration_us = $3, error = $4 WHERE id = $1";

const FINISH_REFUNDED: &str =
    "UPDATE usage SET outcome = $2, duration_us = $3, error = $4, cost = 0 WHERE id = $1";

/// $1 key id, $2 time.
const TOUCH: &str = "UPDATE api_keys SET last_used = $2
    WHERE id = $1 AND (last_used IS NULL OR last_used < $2)";

/// Longest error text stored on a usage row, in bytes.
const MAX_ERROR_BYTES: usize = 1000;

/// SQLite batches up to this many operations go as one statement string
/// with BEGIN and COMMIT; larger ones are grouped into chunks (see
/// [`apply_sqlite`]) so that their strings, too, stay prepared.
const ONE_SHOT_OPS: usize = 4;

/// The largest chunk of one kind in a large SQLite batch (a power of two).
const MAX_CHUNK: usize = 32;

/// One bound value.
enum Value<'a> {
    Int(i64),
    Text(Option<&'a str>),
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_all<'q>(sql: &'q str, values: &'q [Value<'q>]) -> Query<'q> {
    values.iter().fold(sqlx::query(sql), |q, v| match v {
        Value::Int(i) => q.bind(*i),
        Value::Text(t) => q.bind(*t),
    })
}

/// The first `MAX_ERROR_BYTES` of an error text, cut at a character boundary.
pub(crate) fn short(s: &str) -> &str {
    if s.len() <= MAX_ERROR_BYTES {
        return s;
    }
    let mut end = MAX_ERROR_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn reserve_values<'a>(rec: &'a CallRecord, id: i64) -> [Value<'a>; 13] {
    [
        Value::Text(Some(&rec.tenant)),
        Value::Int(rec.cost),
        Value::Int(rec.ts_ms),
        Value::Int(next_month_start_ms(rec.ts_ms)),
        Value::Int(id),
        Value::Text(rec.key_id.as_deref()),
        Value::Text(rec.session.as_deref()),
        Value::Text(Some(&rec.method)),
        Value::Text(Some(&rec.name)),
        Value::Text(rec.upstream.as_deref()),
        Value::Int(rec.arg_bytes),
        Value::Text(rec.args.as_deref()),
        Value::Text(rec.run_id.as_deref()),
    ]
}

fn usage_values<'a>(
    rec: &'a CallRecord,
    id: i64,
    outcome: &'a str,
    cost: i64,
    error: Option<&'a str>,
) -> [Value<'a>; 14] {
    [
        Value::Int(id),
        Value::Int(rec.ts_ms),
        Value::Text(Some(&rec.tenant)),
        Value::Text(rec.key_id.as_deref()),
        Value::Text(rec.session.as_deref()),
        Value::Text(Some(&rec.method)),
        Value::Text(Some(&rec.name)),
        Value::Text(rec.upstream.as_deref()),
        Value::Text(Some(outcome)),
        Value::Int(cost),
        Value::Int(rec.arg_bytes),
        Value::Text(rec.args.as_deref()),
        Value::Text(error.map(short)),
        Value::Text(rec.run_id.as_deref()),
    ]
}

fn finish_values<'a>(
    id: i64,
    outcome: Outcome,
    duration_us: i64,
    error: Option<&'a str>,
) -> [Value<'a>; 4] {
    [
        Value::Int(id),
        Value::Text(Some(outcome.as_str())),
        Value::Int(duration_us),
        Value::Text(error.map(short)),
    ]
}

/// Appends `template` with every `$n` shifted to `$(n + base)`, and a `;`.
fn push_shifted(out: &mut String, template: &str, base: usize) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        let n: usize = tail[..digits].parse().unwrap_or(0);
        debug_assert!(n > 0, "template placeholders are $1, $2, ...");
        let _ = write!(out, "${}", n + base);
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out.push_str(";\n");
}

/// Applies a batch in one transaction and commits. The answers are valid
/// only if this returns `Ok`; reservations answered `None` still need
/// [`resolve_refused`].
pub(crate) async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    batch: &[Op],
    ids: &[i64],
) -> Result<Vec<Answer>, sqlx::Error> {
    match backend {
        Backend::Sqlite => apply_sqlite(conn, batch, ids).await,
        Backend::Postgres => apply_statements(conn, backend, batch, ids).await,
    }
}

/// The order in which SQLite runs the kinds of a large batch (see
/// [`apply_sqlite`]); `None` for operations that write nothing.
fn kind(op: &Op) -> Option<u8> {
    match op {
        // First, so that a finish in the same batch finds its row.
        Op::Journaled { .. } => Some(0),
        Op::Finish { refund: true, .. } => Some(1),
        Op::Finish { refund: false, .. } => Some(2),
        Op::Touch { .. } => Some(3),
        Op::Deny { .. } => Some(4),
        Op::Reserve { .. } => Some(5),
        Op::Flush { .. } | Op::Load { .. } | Op::Sync { .. } => None,
    }
}

/// Appends one operation's statements (placeholders shifted past the
/// values so far) and its values.
fn push_op<'a>(sql: &mut String, values: &mut Vec<Value<'a>>, op: &'a Op, id: i64) {
    let base = values.len();
    match op {
        Op::Reserve { rec, .. } => {
            push_shifted(sql, DEBIT_TAGGED, base);
            push_shifted(sql, PENDING_IF_DEBITED, base);
            values.extend(reserve_values(rec, id));
        }
        Op::Journaled { entry, .. } => {
            push_shifted(sql, JOURNALED_DEBIT, base);
            push_shifted(sql, JOURNALED_PENDING, base);
            values.extend(reserve_values(&entry.rec, entry.id));
        }
        Op::Finish {
            id,
            outcome,
            duration_us,
            error,
            refund,
            ..
        } => {
            if *refund {
                push_shifted(sql, REFUND, base);
            }
            push_shifted(sql, if *refund { FINISH_REFUNDED } else { FINISH }, base);
            values.extend(finish_values(*id, *outcome, *duration_us, error.as_deref()));
        }
        Op::Deny {
            rec,
            outcome,
            error,
        } => {
            push_shifted(sql, INSERT_USAGE, base);
            values.extend(usage_values(rec, id, outcome.as_str(), 0, error.as_deref()));
        }
        Op::Touch { key_id, ts_ms } => {
            push_shifted(sql, TOUCH, base);
            values.extend([Value::Text(Some(key_id)), Value::Int(*ts_ms)]);
        }
        Op::Flush { .. } | Op::Load { .. } | Op::Sync { .. } => {}
    }
}

/// Runs a statement string, collecting the debits' `(usage id, balance)` rows.
async fn run_tagged(
    conn: &mut AnyConnection,
    sql: &str,
    values: &[Value<'_>],
    debited: &mut HashMap<i64, Option<i64>>,
) -> Result<(), sqlx::Error> {
    for row in bind_all(sql, values).fetch_all(&mut *conn).await? {
        debited.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(())
}

/// SQLite. A small batch (the usual case at low load) is ONE round trip:
/// `BEGIN IMMEDIATE; <each operation's statements>; COMMIT`, a string of
/// one of a few shapes that stays prepared. A large batch (under load) runs
/// its operations grouped by kind — refunds and finishes, key touches,
/// refusals, then reservations, each kind in arrival order — in chunks of
/// 1, 2, 4, ... [`MAX_CHUNK`] operations of one kind, so a few dozen cached
/// strings serve every batch. Grouping reorders only operations that were
/// queued concurrently; a call's own operations are always in different
/// batches (a finish needs its reservation's answer first).
async fn apply_sqlite(
    conn: &mut AnyConnection,
    batch: &[Op],
    ids: &[i64],
) -> Result<Vec<Answer>, sqlx::Error> {
    let mut debited = HashMap::new();
    if batch.len() <= ONE_SHOT_OPS {
        let mut sql = String::with_capacity(64 + batch.len() * 700);
        let mut values = Vec::with_capacity(batch.len() * 12);
        sql.push_str("BEGIN IMMEDIATE;\n");
        for (op, &id) in batch.iter().zip(ids) {
            push_op(&mut sql, &mut values, op, id);
        }
        sql.push_str("COMMIT;");
        run_tagged(conn, &sql, &values, &mut debited).await?;
    } else {
        let mut order: Vec<usize> = (0..batch.len())
            .filter(|&i| kind(&batch[i]).is_some())
            .collect();
        order.sort_by_key(|&i| kind(&batch[i]));
        let mut tx = conn.begin_with(begin_sql(Backend::Sqlite)).await?;
        for group in order.chunk_by(|&a, &b| kind(&batch[a]) == kind(&batch[b])) {
            let mut rest = group;
            while !rest.is_empty() {
                let n = 1 << rest.len().min(MAX_CHUNK).ilog2();
                let (chunk, tail) = rest.split_at(n);
                let mut sql = String::with_capacity(n * 700);
                let mut values = Vec::with_capacity(n * 12);
                for &i in chunk {
                    push_op(&mut sql, &mut values, &batch[i], ids[i]);
                }
                run_tagged(&mut tx, &sql, &values, &mut debited).await?;
                rest = tail;
            }
        }
        tx.commit().await?;
    }
    Ok(batch
        .iter()
        .zip(ids)
        .map(|(op, &id)| match op {
            Op::Reserve { .. } => debited
                .get(&id)
                .map(|&balance_after| Ok(Reservation { id, balance_after })),
            _ => None,
        })
        .collect())
}

/// The batch as one transaction of single (prepared, cached) statements.
async fn apply_statements(
    conn: &mut AnyConnection,
    backend: Backend,
    batch: &[Op],
    ids: &[i64],
) -> Result<Vec<Answer>, sqlx::Error> {
    let mut tx = conn.begin_with(begin_sql(backend)).await?;
    let mut answers = Vec::with_capacity(batch.len());
    for (op, &id) in batch.iter().zip(ids) {
        let answer = match op {
            Op::Reserve { rec, .. } => Some(reserve(&mut tx, rec, id).await?),
            Op::Journaled { entry, .. } => {
                let values = reserve_values(&entry.rec, entry.id);
                bind_all(JOURNALED_DEBIT, &values[..5])
                    .execute(&mut *tx)
                    .await?;
                let rec = &entry.rec;
                let row = usage_values(rec, entry.id, PENDING, rec.cost, None);
                bind_all(INSERT_USAGE_ONCE, &row).execute(&mut *tx).await?;
                None
            }
            Op::Finish {
                id,
                outcome,
                duration_us,
                error,
                refund,
                ..
            } => {
                let values = finish_values(*id, *outcome, *duration_us, error.as_deref());
                if *refund {
                    sqlx::query(REFUND).bind(*id).execute(&mut *tx).await?;
                }
                bind_all(if *refund { FINISH_REFUNDED } else { FINISH }, &values)
                    .execute(&mut *tx)
                    .await?;
                None
            }
            Op::Deny {
                rec,
                outcome,
                error,
            } => {
                let values = usage_values(rec, id, outcome.as_str(), 0, error.as_deref());
                bind_all(INSERT_USAGE, &values).execute(&mut *tx).await?;
                None
            }
            Op::Touch { key_id, ts_ms } => {
                sqlx::query(TOUCH)
                    .bind(key_id.as_str())
                    .bind(*ts_ms)
                    .execute(&mut *tx)
                    .await?;
                None
            }
            Op::Flush { .. } | Op::Load { .. } | Op::Sync { .. } => None,
        };
        answers.push(answer);
    }
    tx.commit().await?;
    Ok(answers)
}

/// One whole reservation inside a transaction: debit and pending row, or
/// the refusal.
async fn reserve(
    conn: &mut AnyConnection,
    rec: &CallRecord,
    id: i64,
) -> Result<Result<Reservation, ReserveError>, sqlx::Error> {
    let values = reserve_values(rec, id);
    let debited = bind_all(DEBIT, &values[..4])
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = debited else {
        return refuse(conn, rec, id).await;
    };
    let balance_after: Option<i64> = row.try_get(0)?;
    let values = usage_values(rec, id, PENDING, rec.cost, None);
    bind_all(INSERT_USAGE, &values).execute(&mut *conn).await?;
    Ok(Ok(Reservation { id, balance_after }))
}

/// Records why a debit did not happen: unknown tenant (nothing written), or
/// a short balance (a refill if one is due, and a `denied_quota` row).
async fn refuse(
    conn: &mut AnyConnection,
    rec: &CallRecord,
    id: i64,
) -> Result<Result<Reservation, ReserveError>, sqlx::Error> {
    let Some(row) = sqlx::query(TENANT_STATE)
        .bind(rec.tenant.as_str())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(Err(ReserveError::UnknownTenant));
    };
    let mut balance: Option<i64> = row.try_get(0)?;
    let allowance: Option<i64> = row.try_get(1)?;
    let mut resets_at: Option<i64> = row.try_get(2)?;
    if let (Some(allowance), Some(at)) = (allowance, resets_at)
        && at <= rec.ts_ms
    {
        let next = next_month_start_ms(rec.ts_ms);
        sqlx::query(REFILL)
            .bind(rec.tenant.as_str())
            .bind(rec.ts_ms)
            .bind(next)
            .execute(&mut *conn)
            .await?;
        balance = Some(allowance);
        resets_at = Some(next);
    }
    // An unlimited balance always passes the debit, so it is set here.
    let balance = balance.unwrap_or(0);
    let error = format!("balance {balance} is below the cost {}", rec.cost);
    let denied = Outcome::DeniedQuota.as_str();
    let values = usage_values(rec, id, denied, 0, Some(&error));
    bind_all(INSERT_USAGE, &values).execute(&mut *conn).await?;
    Ok(Err(ReserveError::Exhausted {
        balance,
        cost: rec.cost,
        resets_at_ms: resets_at,
    }))
}

/// The follow-up transaction for reservations whose debit did not happen:
/// one answer per `(record, id)`, valid only if this returns `Ok`.
pub(crate) async fn resolve_refused(
    conn: &mut AnyConnection,
    backend: Backend,
    refused: &[(&CallRecord, i64)],
) -> Result<Vec<Result<Reservation, ReserveError>>, sqlx::Error> {
    let mut tx = conn.begin_with(begin_sql(backend)).await?;
    let mut answers = Vec::with_capacity(refused.len());
    for &(rec, id) in refused {
        answers.push(refuse(&mut tx, rec, id).await?);
    }
    tx.commit().await?;
    Ok(answers)
}

fn account(row: &sqlx::any::AnyRow, at: usize) -> Result<Account, sqlx::Error> {
    Ok(Account {
        balance: row.try_get(at)?,
        allowance: row.try_get(at + 1)?,
        resets_at: row.try_get(at + 2)?,
    })
}

/// A tenant's stored balance state, if the tenant exists (journal mode).
pub(crate) async fn tenant_account(
    conn: &mut AnyConnection,
    tenant: &str,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query(TENANT_STATE)
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| account(&row, 0))
        .transpose()
}

/// Every tenant's stored balance state (journal mode).
pub(crate) async fn all_accounts(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, Account)>, sqlx::Error> {
    sqlx::query("SELECT name, balance, monthly_allowance, resets_at FROM tenants")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, account(row, 1)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_shift() {
        let mut s = String::new();
        push_shifted(&mut s, "A $1 B $12, $2", 10);
        assert_eq!(s, "A $11 B $22, $12;\n");
        let mut s = String::new();
        push_shifted(&mut s, "no params", 3);
        assert_eq!(s, "no params;\n");
    }

    #[test]
    fn short_cuts_at_char_boundaries() {
        assert_eq!(short("abc"), "abc");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let s = short(&long);
        assert!(s.len() <= MAX_ERROR_BYTES && s.len() >= MAX_ERROR_BYTES - 1);
        assert!(s.chars().all(|c| c == 'é'));
    }
}
