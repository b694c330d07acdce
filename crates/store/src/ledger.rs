//! [`Ledger`], the ledger's public face: the cheap handle that sends a
//! call's records (see the `record` module) as [`Op`]s to the one batching
//! writer task (see the `writer` module) and hands back its answers. It
//! also owns the coalescing of `last_used` updates (at most one per key
//! per 10 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};

use crate::balances::Journaled;
use crate::connect::Target;
use crate::error::{ReserveError, StoreError};
use crate::journal::{Entry, Journal};
use crate::op::Op;
use crate::record::{CallRecord, Outcome, Reservation};
use crate::stats::LedgerStats;
use crate::writer::{self, Ids};

/// How long `touch_key` stays quiet about a key after writing it.
const TOUCH_EVERY_MS: i64 = 10_000;
/// Past this many remembered keys, forget the stale ones.
const TOUCH_MAP_LIMIT: usize = 65_536;

/// A handle to the store's one batching ledger writer. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<Op>,
    /// Last `last_used` value queued per key, for coalescing.
    touched: Arc<Mutex<HashMap<String, i64>>>,
    stats: Arc<LedgerStats>,
    /// Usage row ids, shared with the writer.
    ids: Arc<Ids>,
    /// Journal mode's state; `None` without a journal.
    journaled: Option<Arc<Journaled>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn stopped() -> ReserveError {
    ReserveError::Store("the ledger writer has stopped".into())
}

/// Refunds a journaled reservation whose caller went away (or whose
/// journal sync failed) before it was answered.
struct Unanswered<'a> {
    ledger: &'a Ledger,
    id: i64,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.ledger.finish(
                self.id,
                Outcome::Cancelled,
                0,
                Some("the caller went away before the reservation".into()),
                true,
            );
        }
    }
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("closed", &self.tx.is_closed())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Spawns the writer task (inside the current Tokio runtime), in
    /// journal mode if given a journal.
    pub(crate) fn spawn(target: Arc<Target>, journal: Option<Journal>) -> Ledger {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(LedgerStats::default());
        let ids = Arc::new(Ids::new());
        let journaled = journal.map(|journal| {
            Arc::new(Journaled {
                journal,
                accounts: Mutex::default(),
                inflight: Mutex::default(),
            })
        });
        tokio::spawn(writer::run(
            rx,
            target,
            stats.clone(),
            ids.clone(),
            journaled.clone(),
        ));
        Ledger {
            tx,
            touched: Arc::default(),
            stats,
            ids,
            journaled,
        }
    }

    /// Whether reservations go through the journal (balances in memory).
    pub fn journaled(&self) -> bool {
        self.journaled.is_some()
    }

    /// Queues an operation; `false` if the writer has stopped.
    fn send(&self, op: Op) -> bool {
        self.stats.sent();
        self.tx.send(op).is_ok()
    }

    /// The writer's queue depth and commit latency.
    pub fn stats(&self) -> &LedgerStats {
        &self.stats
    }

    /// Reserves `rec.cost` tokens for a call. Without a journal, in one
    /// committed transaction:
    /// first refills the balance if the tenant has a monthly allowance and
    /// `rec.ts_ms` has reached the refill time (moving it to the next month
    /// start, UTC); then debits the cost only if the balance is unlimited or
    /// large enough (one conditional `UPDATE`, so concurrent calls, even from
    /// several processes, never overspend); then inserts the usage row with
    /// outcome `pending`. Returns only after the commit. If the balance is
    /// short, commits a `denied_quota` row (cost 0) instead and returns
    /// [`ReserveError::Exhausted`]. Forward the call only after `Ok`.
    ///
    /// With a journal, the same rules are applied to the balance in memory
    /// (loaded from the store on the tenant's first call) under one lock,
    /// the reservation is appended to the journal, and `Ok` comes once the
    /// append is durable (see [`JournalSync`](crate::JournalSync)); the
    /// store gets the debit and the `pending` row (or the `denied_quota`
    /// row) from the writer in the background.
    pub async fn reserve(&self, rec: CallRecord) -> Result<Reservation, ReserveError> {
        if rec.cost < 0 {
            return Err(ReserveError::Store(
                "a call's cost must not be negative".into(),
            ));
        }
        if let Some(j) = &self.journaled {
            return self.reserve_journaled(j, rec).await;
        }
        let (reply, answer) = oneshot::channel();
        if !self.send(Op::Reserve { rec, reply }) {
            return Err(ReserveError::Store("the ledger writer has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ReserveError::Store("the ledger writer has stopped".into())))
    }

    async fn reserve_journaled(
        &self,
        j: &Arc<Journaled>,
        rec: CallRecord,
    ) -> Result<Reservation, ReserveError> {
        let mut loaded = false;
        let debit = loop {
            let tried = lock(&j.accounts)
                .get_mut(&rec.tenant)
                .map(|a| a.try_debit(rec.cost, rec.ts_ms));
            match tried {
                Some(debit) => break debit,
                None if loaded => return Err(ReserveError::UnknownTenant),
                None => {
                    if !self.load(&rec.tenant).await? {
                        return Err(ReserveError::UnknownTenant);
                    }
                    loaded = true;
                }
            }
        };
        let balance_after = match debit {
            Ok(after) => after,
            Err(short) => {
                let cost = rec.cost;
                let error = format!("balance {} is below the cost {cost}", short.balance);
                self.deny(rec, Outcome::DeniedQuota, Some(error));
                return Err(ReserveError::Exhausted {
                    balance: short.balance,
                    cost,
                    resets_at_ms: short.resets_at_ms,
                });
            }
        };
        let id = self.ids.take();
        let (tenant, cost) = (rec.tenant.clone(), rec.cost);
        let entry = Entry { id, rec };
        let (file, seq) = match j.journal.write(&entry) {
            Ok(written) => written,
            Err(e) => {
                if let Some(a) = lock(&j.accounts).get_mut(&tenant) {
                    a.credit(cost);
                }
                tracing::error!(error = %e, "cannot append to the ledger journal");
                return Err(ReserveError::Store(format!(
                    "cannot append to the ledger journal: {e}"
                )));
            }
        };
        lock(&j.inflight).insert(id, (tenant, cost));
        // The store gets the record whatever happens to this caller now.
        if !self.send(Op::Journaled { entry, file }) {
            tracing::error!(
                usage_id = id,
                "ledger writer stopped; the journal keeps the reservation"
            );
        }
        let mut unanswered = Unanswered {
            ledger: self,
            id,
            armed: true,
        };
        if let Err(e) = j.journal.durable(seq).await {
            return Err(ReserveError::Store(e.to_string()));
        }
        unanswered.armed = false;
        Ok(Reservation { id, balance_after })
    }

    /// Loads a tenant's balance into memory (journal mode); whether the
    /// tenant exists.
    async fn load(&self, tenant: &str) -> Result<bool, ReserveError> {
        let (reply, answer) = oneshot::channel();
        let op = Op::Load {
            tenant: tenant.to_owned(),
            reply,
        };
        if !self.send(op) {
            return Err(stopped());
        }
        match answer.await {
            Ok(Ok(exists)) => Ok(exists),
            Ok(Err(e)) => Err(ReserveError::Store(e.to_string())),
            Err(_) => Err(stopped()),
        }
    }

    /// Journal mode: carries changes made to the stored balances by anyone
    /// else (a top-up with the CLI, a new allowance) into the balances in
    /// memory, and drops tenants that no longer exist. Call it when the
    /// store's revision moves. Without a journal there is nothing to do.
    pub async fn reload_balances(&self) -> Result<(), StoreError> {
        if self.journaled.is_none() {
            return Ok(());
        }
        let gone = || StoreError::Db("the ledger writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        if !self.send(Op::Sync { reply: Some(reply) }) {
            return Err(gone());
        }
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Queues the end of a reserved call: sets its outcome, duration and a
    /// short error text; with `refund`, gives the cost back to the tenant
    /// (unless unlimited) and sets the row's cost to 0. Not awaited.
    pub fn finish(
        &self,
        id: i64,
        outcome: Outcome,
        duration_us: i64,
        error: Option<String>,
        refund: bool,
    ) {
        let mut credit = None;
        if let Some(j) = &self.journaled {
            let reserved = lock(&j.inflight).remove(&id);
            if let (true, Some((tenant, cost))) = (refund, reserved) {
                if let Some(a) = lock(&j.accounts).get_mut(&tenant) {
                    a.credit(cost);
                }
                credit = Some((tenant, cost));
            }
        }
        let op = Op::Finish {
            id,
            outcome,
            duration_us,
            error,
            refund,
            credit,
        };
        if !self.send(op) {
            tracing::error!(usage_id = id, %outcome, "ledger writer stopped; call outcome not recorded");
        }
    }

    /// Queues a usage row (cost 0) for a call refused before any reservation.
    pub fn deny(&self, rec: CallRecord, outcome: Outcome, error: Option<String>) {
        self.stats.sent();
        if let Err(mpsc::error::SendError(Op::Deny { rec, .. })) = self.tx.send(Op::Deny {
            rec,
            outcome,
            error,
        }) {
            tracing::error!(tenant = %rec.tenant, name = %rec.name, %outcome,
                "ledger writer stopped; refused call not recorded");
        }
    }

    /// Queues `last_used = ts_ms` for a key, at most once per key per 10 s.
    pub fn touch_key(&self, key_id: &str, ts_ms: i64) {
        {
            let mut touched = match self.touched.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(&last) = touched.get(key_id)
                && ts_ms < last.saturating_add(TOUCH_EVERY_MS)
            {
                return;
            }
            if touched.len() >= TOUCH_MAP_LIMIT {
                touched.retain(|_, &mut last| ts_ms < last.saturating_add(TOUCH_EVERY_MS));
            }
            touched.insert(key_id.to_owned(), ts_ms);
        }
        let op = Op::Touch {
            key_id: key_id.to_owned(),
            ts_ms,
        };
        if !self.send(op) {
            tracing::error!(key_id, "ledger writer stopped; key use not recorded");
        }
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let stopped = || StoreError::Db("the ledger writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        if !self.send(Op::Flush { reply }) {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}
