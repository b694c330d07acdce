//! The writer's queue: [`Op`], one message from a `Ledger` handle (or the
//! writer itself) to the batching writer task. The handle sends them, the
//! writer drains and answers them, and the `batch` module turns them into
//! SQL, so they live below all three.

use tokio::sync::oneshot;

use crate::error::{ReserveError, StoreError};
use crate::journal::Entry;
use crate::record::{CallRecord, Outcome, Reservation};

/// One queued ledger operation.
pub(crate) enum Op {
    Reserve {
        rec: CallRecord,
        reply: oneshot::Sender<Result<Reservation, ReserveError>>,
    },
    /// A reservation already granted in memory and written to the journal
    /// (file `file`): debit and `pending` row, unconditionally and at most
    /// once per usage id (a replayed record whose row exists is skipped).
    Journaled {
        entry: Entry,
        file: u64,
    },
    Finish {
        id: i64,
        outcome: Outcome,
        duration_us: i64,
        error: Option<String>,
        refund: bool,
        /// Journal mode: the tenant and cost a refund gives back, so the
        /// writer's view of the stored balance follows.
        credit: Option<(String, i64)>,
    },
    Deny {
        rec: CallRecord,
        outcome: Outcome,
        error: Option<String>,
    },
    Touch {
        key_id: String,
        ts_ms: i64,
    },
    Flush {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Journal mode: load a tenant's balance into memory (answers whether
    /// the tenant exists).
    Load {
        tenant: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// Journal mode: carry changes made to balances outside this process
    /// (top-ups, `tenants set`) into the in-memory balances.
    Sync {
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
}

impl Op {
    /// Whether someone waits for this operation's answer.
    pub(crate) fn has_waiter(&self) -> bool {
        match self {
            Op::Reserve { .. } | Op::Flush { .. } | Op::Load { .. } => true,
            Op::Sync { reply } => reply.is_some(),
            Op::Journaled { .. } | Op::Finish { .. } | Op::Deny { .. } | Op::Touch { .. } => false,
        }
    }
}
