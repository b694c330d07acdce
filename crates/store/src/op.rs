//! The writer's queue: [`Op`], one message from a `Ledger` handle (or the
//! writer itself) to the batching writer task. The handle sends them, the
//! writer drains and answers them, and the `batch` module turns them into
//! SQL, so they live below all three.

use tokio::sync::oneshot;

use crate::error::{ReserveError, StoreError};
use crate::record::{CallRecord, Outcome, Reservation};

/// One queued ledger operation.
pub(crate) enum Op {
    Reserve {
        rec: CallRecord,
        reply: oneshot::Sender<Result<Reservation, ReserveError>>,
    },
    Finish {
        id: i64,
        outcome: Outcome,
        duration_us: i64,
        error: Option<String>,
        refund: bool,
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
}
