//! [`Ledger`], the ledger's public face: the cheap handle that sends a
//! call's records (see the `record` module) as [`Op`]s to the one batching
//! writer task (see the `writer` module) and hands back its answers. It
//! also owns the coalescing of `last_used` updates (at most one per key
//! per 10 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::connect::Target;
use crate::error::{ReserveError, StoreError};
use crate::op::Op;
use crate::record::{CallRecord, Outcome, Reservation};
use crate::stats::LedgerStats;
use crate::writer;

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
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("closed", &self.tx.is_closed())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Spawns the writer task (inside the current Tokio runtime).
    pub(crate) fn spawn(target: Arc<Target>) -> Ledger {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(LedgerStats::default());
        tokio::spawn(writer::run(rx, target, stats.clone()));
        Ledger {
            tx,
            touched: Arc::default(),
            stats,
        }
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

    /// Reserves `rec.cost` tokens for a call, in one committed transaction:
    /// first refills the balance if the tenant has a monthly allowance and
    /// `rec.ts_ms` has reached the refill time (moving it to the next month
    /// start, UTC); then debits the cost only if the balance is unlimited or
    /// large enough (one conditional `UPDATE`, so concurrent calls, even from
    /// several processes, never overspend); then inserts the usage row with
    /// outcome `pending`. Returns only after the commit. If the balance is
    /// short, commits a `denied_quota` row (cost 0) instead and returns
    /// [`ReserveError::Exhausted`]. Forward the call only after `Ok`.
    pub async fn reserve(&self, rec: CallRecord) -> Result<Reservation, ReserveError> {
        if rec.cost < 0 {
            return Err(ReserveError::Store(
                "a call's cost must not be negative".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        if !self.send(Op::Reserve { rec, reply }) {
            return Err(ReserveError::Store("the ledger writer has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ReserveError::Store("the ledger writer has stopped".into())))
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
        let op = Op::Finish {
            id,
            outcome,
            duration_us,
            error,
            refund,
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
