//! The batching ledger writer: one Tokio task owning one dedicated database
//! connection. It waits for an operation, drains whatever else is already
//! queued (up to [`MAX_BATCH`]), applies them all in order in ONE
//! transaction (see the `batch` module for the SQL), commits, and only then
//! answers the waiting reservations. Without a journal there is no timer, so
//! a lone call pays for one transaction and nothing more; with one (where no
//! call waits for the writer) records are gathered for up to [`LINGER`] first. A failed transaction is rolled back
//! whole; transient failures (busy database, deadlock, lost connection) are
//! retried on a fresh connection, and after a final failure every
//! reservation in the batch gets an error while the fire-and-forget records
//! are tried once more on their own (and logged if they are lost).
//!
//! In journal mode (see the `ledger` module) the writer also keeps its own
//! view of each loaded tenant's stored balance, moved by the writes it
//! commits, loads balances into memory and carries outside changes over
//! (see the `balances` module), and tells the journal which of its records
//! the store now has.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection, Executor};
use tokio::sync::mpsc;

use crate::Backend;
use crate::balances::{Account, Accounts, Journaled, reconcile};
use crate::batch::{self, Answer};
use crate::checkpoint;
use crate::clock::now_ms;
use crate::connect::{Target, open_connection};
use crate::error::{ReserveError, StoreError};
use crate::interrupted;
use crate::journal::{self, Entry};
use crate::op::Op;
use crate::record::Outcome;
use crate::stats::LedgerStats;

/// The most operations applied in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// In journal mode, how long the writer gathers records nobody waits for
/// before it stores them.
const LINGER: Duration = Duration::from_millis(2);
/// Tries per transaction when the failure looks transient.
const MAX_ATTEMPTS: u32 = 3;

/// Usage row ids: a random start, then counting up, so rows of one
/// process are unique and adjacent in the index, and two processes
/// (replicas) practically never meet. Shared by the ledger handles
/// (journaled reservations) and the writer.
pub(crate) struct Ids(AtomicI64);

impl Ids {
    pub(crate) fn new() -> Ids {
        Ids(AtomicI64::new(first_id()))
    }

    pub(crate) fn take(&self) -> i64 {
        let step = |id: i64| Some(if id >= i64::MAX - 1 { 1 } else { id + 1 });
        match self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, step)
        {
            Ok(id) | Err(id) => id,
        }
    }
}

struct Writer {
    target: Arc<Target>,
    conn: Option<AnyConnection>,
    ids: Arc<Ids>,
    /// Operations the writer gives itself (refunds of abandoned reservations).
    carry: Vec<Op>,
    /// Journal mode's shared state.
    journaled: Option<Arc<Journaled>>,
    /// Journal mode: each loaded tenant's stored row as this writer's own
    /// commits have left it.
    expected: Accounts,
}

/// The writer task's body; ends when every sender is gone and the queue is drained.
pub(crate) async fn run(
    mut rx: mpsc::UnboundedReceiver<Op>,
    target: Arc<Target>,
    stats: Arc<LedgerStats>,
    ids: Arc<Ids>,
    journaled: Option<Arc<Journaled>>,
) {
    // Dropped (stopping its task) when this task ends.
    let checkpointer =
        (target.backend == Backend::Sqlite).then(|| checkpoint::spawn(target.clone()));
    // Says "a writer is alive" to a gateway starting beside this one (SQLite),
    // until this task ends.
    let _alive = interrupted::hold_writer_lock(&target).await;
    let mut w = Writer {
        target,
        conn: None,
        ids,
        carry: Vec::new(),
        journaled,
        expected: HashMap::new(),
    };
    loop {
        let mut batch = std::mem::take(&mut w.carry);
        if batch.is_empty() {
            match rx.recv().await {
                Some(op) => {
                    stats.taken();
                    batch.push(op);
                }
                None => break,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => {
                    stats.taken();
                    batch.push(op);
                }
                Err(_) => break,
            }
        }
        // In journal mode nobody waits for most records (the journal made
        // them durable): gather more for a moment, so that a quiet gateway
        // stores several calls per transaction instead of two transactions
        // per call. Anything someone waits for ends the wait.
        if w.journaled.is_some() && !batch.iter().any(Op::has_waiter) {
            let until = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(op)) => {
                        stats.taken();
                        let waited_for = op.has_waiter();
                        batch.push(op);
                        if waited_for {
                            break;
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let (control, batch): (Vec<Op>, Vec<Op>) = batch
            .into_iter()
            .partition(|op| matches!(op, Op::Load { .. } | Op::Sync { .. }));
        if !batch.is_empty() {
            let started = Instant::now();
            w.run_batch(batch).await;
            stats.commit.observe(started.elapsed());
        }
        for op in control {
            w.control(op).await;
        }
        if let Some(c) = &checkpointer
            && c.restart_requested()
            && let Some(conn) = w.conn.as_mut()
        {
            checkpoint::restart(conn).await;
        }
    }
    if let Some(conn) = w.conn.take()
        && let Err(e) = conn.close().await
    {
        tracing::debug!(error = %e, "closing the ledger connection");
    }
}

/// Replays the journal files left beside the store into it (the caller
/// holds the journal's lock) and deletes them; returns how many records
/// were read. Idempotent: a record whose usage row exists is skipped
/// whole, so a file that was partly or wholly stored before the process
/// died is never charged twice. A torn last record (the process died in
/// its write, before its call was forwarded) is left out.
pub(crate) async fn replay(target: &Target, base: &std::path::Path) -> Result<u64, StoreError> {
    let io = |e: std::io::Error| StoreError::Db(format!("reading the ledger journal: {e}"));
    let files = journal::files(base).map_err(io)?;
    if files.is_empty() {
        return Ok(0);
    }
    let mut conn = open_connection(target)
        .await
        .map_err(|e| StoreError::Db(e.to_string()))?;
    let mut total = 0u64;
    for (n, path) in &files {
        let (entries, torn) = journal::read_file(path).map_err(io)?;
        if torn {
            tracing::warn!(file = %path.display(), records = entries.len(),
                "the ledger journal ends in a torn record (a write cut short); it is ignored");
        }
        for chunk in entries.chunks(MAX_BATCH) {
            let ids: Vec<i64> = chunk.iter().map(|e: &Entry| e.id).collect();
            let ops: Vec<Op> = chunk
                .iter()
                .map(|entry| Op::Journaled {
                    entry: entry.clone(),
                    file: *n,
                })
                .collect();
            batch::apply(&mut conn, target.backend, &ops, &ids)
                .await
                .map_err(|e| StoreError::Db(format!("replaying the ledger journal: {e}")))?;
        }
        total += entries.len() as u64;
    }
    for (_, path) in &files {
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "closing the replay connection");
    }
    Ok(total)
}

/// A random positive start for usage ids, below 2^62 so counting up never overflows.
fn first_id() -> i64 {
    let mut buf = [0u8; 8];
    let random = match getrandom::fill(&mut buf) {
        Ok(()) => u64::from_le_bytes(buf),
        Err(_) => u64::try_from(now_ms())
            .unwrap_or(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
    };
    i64::try_from(random >> 2).unwrap_or(1).max(1)
}

impl Writer {
    fn take_id(&mut self) -> i64 {
        self.ids.take()
    }

    /// After a commit (journal mode): moves the writer's view of the stored
    /// balances by what the batch wrote, and tells the journal which of its
    /// records the store has now.
    fn committed(&mut self, batch: &[Op]) {
        let Some(j) = &self.journaled else {
            return;
        };
        let mut per_file: BTreeMap<u64, u64> = BTreeMap::new();
        for op in batch {
            match op {
                Op::Journaled { entry, file } => {
                    *per_file.entry(*file).or_default() += 1;
                    if let Some(a) = self.expected.get_mut(&entry.rec.tenant) {
                        a.apply(entry.rec.cost, entry.rec.ts_ms);
                    }
                }
                Op::Finish {
                    credit: Some((tenant, cost)),
                    ..
                } => {
                    if let Some(a) = self.expected.get_mut(tenant) {
                        a.credit(*cost);
                    }
                }
                _ => {}
            }
        }
        for (file, count) in per_file {
            j.journal.applied(file, count);
        }
    }

    /// Loads a balance into memory, or carries outside changes over
    /// (journal mode), on the writer's connection between batches.
    async fn control(&mut self, op: Op) {
        match op {
            Op::Load { tenant, reply } => {
                let _ = reply.send(self.load(tenant).await);
            }
            Op::Sync { reply } => {
                let result = self.sync().await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "cannot reload the balances from the store");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            _ => {}
        }
    }

    async fn load(&mut self, tenant: String) -> Result<bool, StoreError> {
        let Some(j) = self.journaled.clone() else {
            return Ok(false);
        };
        let row = match self.connection().await {
            Ok(conn) => batch::tenant_account(conn, &tenant).await,
            Err(e) => Err(e),
        };
        let row = row.map_err(|e| {
            self.conn = None;
            StoreError::Db(e.to_string())
        })?;
        let Some(account) = row else {
            return Ok(false);
        };
        let mut accounts = match j.accounts.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !accounts.contains_key(&tenant) {
            accounts.insert(tenant.clone(), account);
            self.expected.insert(tenant, account);
        }
        Ok(true)
    }

    async fn sync(&mut self) -> Result<(), StoreError> {
        let Some(j) = self.journaled.clone() else {
            return Ok(());
        };
        if self.expected.is_empty() {
            return Ok(());
        }
        let rows = match self.connection().await {
            Ok(conn) => batch::all_accounts(conn).await,
            Err(e) => Err(e),
        };
        let actual: HashMap<String, Account> = rows
            .map_err(|e| {
                self.conn = None;
                StoreError::Db(e.to_string())
            })?
            .into_iter()
            .collect();
        let mut accounts = match j.accounts.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.expected
            .retain(|tenant, expected| match actual.get(tenant) {
                Some(now) => {
                    if let Some(memory) = accounts.get_mut(tenant) {
                        reconcile(memory, expected, now);
                    }
                    *expected = *now;
                    true
                }
                None => {
                    accounts.remove(tenant);
                    false
                }
            });
        Ok(())
    }

    async fn run_batch(&mut self, batch: Vec<Op>) {
        if batch.iter().all(|op| matches!(op, Op::Flush { .. })) {
            self.answer(batch, Vec::new());
            return;
        }
        let ids: Vec<i64> = batch
            .iter()
            .map(|op| match op {
                Op::Reserve { .. } | Op::Deny { .. } => self.take_id(),
                _ => 0,
            })
            .collect();
        let e = match self.apply_with_retries(&batch, &ids).await {
            Ok(mut answers) => {
                self.committed(&batch);
                self.resolve_refused(&batch, &ids, &mut answers).await;
                return self.answer(batch, answers);
            }
            Err(e) => e.to_string(),
        };
        tracing::error!(error = %e, ops = batch.len(), "ledger batch failed and was rolled back");
        let (mut rest, mut rest_ids) = (Vec::new(), Vec::new());
        for (op, id) in batch.into_iter().zip(ids) {
            match op {
                Op::Reserve { reply, .. } => {
                    let _ = reply.send(Err(ReserveError::Store(e.clone())));
                }
                op => {
                    rest.push(op);
                    rest_ids.push(id);
                }
            }
        }
        let records = rest
            .iter()
            .filter(|op| !matches!(op, Op::Flush { .. }))
            .count();
        let e = if records == 0 {
            e
        } else {
            match self.apply_with_retries(&rest, &rest_ids).await {
                Ok(answers) => {
                    self.committed(&rest);
                    return self.answer(rest, answers);
                }
                Err(e2) => {
                    let e2 = e2.to_string();
                    tracing::error!(error = %e2, records, "ledger records lost: could not be written");
                    e2
                }
            }
        };
        for op in rest {
            if let Op::Flush { reply } = op {
                let _ = reply.send(Err(StoreError::Db(e.clone())));
            }
        }
    }

    /// Sends the answers of a committed batch.
    fn answer(&mut self, batch: Vec<Op>, answers: Vec<Answer>) {
        let mut answers = answers.into_iter();
        for op in batch {
            let answer = answers.next().flatten();
            match op {
                Op::Reserve { reply, .. } => {
                    let answer = answer.unwrap_or_else(|| {
                        Err(ReserveError::Store(
                            "internal: reservation without an answer".into(),
                        ))
                    });
                    if let Err(Ok(r)) = reply.send(answer) {
                        // The caller gave up waiting: it will neither forward
                        // the call nor finish it, so give the tokens back.
                        self.carry.push(Op::Finish {
                            id: r.id,
                            outcome: Outcome::Cancelled,
                            duration_us: 0,
                            error: Some("the caller went away before the reservation".into()),
                            refund: true,
                            credit: None,
                        });
                    }
                }
                Op::Flush { reply } => {
                    let _ = reply.send(Ok(()));
                }
                Op::Journaled { .. }
                | Op::Finish { .. }
                | Op::Deny { .. }
                | Op::Touch { .. }
                | Op::Load { .. }
                | Op::Sync { .. } => {}
            }
        }
    }

    /// The connection, opened (with the writer's settings) if needed.
    async fn connection(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        if self.conn.is_none() {
            let mut conn = open_connection(&self.target).await?;
            if self.target.backend == Backend::Sqlite {
                // The checkpointer task does this off the hot path.
                conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
            }
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Applies a batch in one transaction, retrying transient failures.
    async fn apply_with_retries(
        &mut self,
        batch: &[Op],
        ids: &[i64],
    ) -> Result<Vec<Answer>, sqlx::Error> {
        let backend = self.target.backend;
        let mut attempt = 1;
        loop {
            let result = match self.connection().await {
                Ok(conn) => batch::apply(conn, backend, batch, ids).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(answers) => return Ok(answers),
                Err(e) => self.after_failure(e, &mut attempt).await?,
            }
        }
    }

    /// Settles the reservations of a committed batch whose debit did not
    /// happen, in a follow-up transaction (answers stay `None` only if it fails).
    async fn resolve_refused(&mut self, batch: &[Op], ids: &[i64], answers: &mut [Answer]) {
        let mut refused = Vec::new();
        let mut slots = Vec::new();
        for (i, (op, &id)) in batch.iter().zip(ids).enumerate() {
            if let (Op::Reserve { rec, .. }, None) = (op, &answers[i]) {
                refused.push((rec, id));
                slots.push(i);
            }
        }
        if refused.is_empty() {
            return;
        }
        let backend = self.target.backend;
        let mut attempt = 1;
        let result = loop {
            let result = match self.connection().await {
                Ok(conn) => batch::resolve_refused(conn, backend, &refused).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(r) => break Ok(r),
                Err(e) => {
                    if let Err(e) = self.after_failure(e, &mut attempt).await {
                        break Err(e);
                    }
                }
            }
        };
        match result {
            Ok(resolved) => {
                for (slot, answer) in slots.into_iter().zip(resolved) {
                    answers[slot] = Some(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, reservations = slots.len(),
                    "recording refused reservations failed");
                for slot in slots {
                    answers[slot] = Some(Err(ReserveError::Store(e.to_string())));
                }
            }
        }
    }

    /// After a failed transaction: drop the connection (which rolls back
    /// whatever it had done), and either wait for another try or give up.
    async fn after_failure(
        &mut self,
        e: sqlx::Error,
        attempt: &mut u32,
    ) -> Result<(), sqlx::Error> {
        self.conn = None;
        if *attempt >= MAX_ATTEMPTS || !transient(&e) {
            return Err(e);
        }
        tracing::warn!(error = %e, attempt = *attempt, "ledger transaction failed; retrying");
        tokio::time::sleep(Duration::from_millis(20 * u64::from(*attempt))).await;
        *attempt += 1;
        Ok(())
    }
}

/// Whether a failure is worth another try on a fresh connection.
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => match d.code() {
            // PostgreSQL: serialization failure, deadlock.
            Some(code) if code == "40001" || code == "40P01" => true,
            // SQLite: BUSY or LOCKED, including their extended codes.
            Some(code) => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
            None => false,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_positive_and_small_enough() {
        for _ in 0..100 {
            let id = first_id();
            assert!(id > 0 && id < (1 << 62));
        }
    }
}
