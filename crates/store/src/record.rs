//! What a call leaves in the ledger: [`CallRecord`] (what is known when it
//! starts), [`Outcome`] (how it ended, stored as text) and [`Reservation`]
//! (the committed debit it was granted), and the order of the usage row's
//! columns, which the writer's batches write and the audit log reads back.
//! These are plain data, named by the `Ledger` handle, the writer, its
//! batches and the reports alike, so they live below them all and import
//! nothing of the store.

use serde::{Deserialize, Serialize};

/// What is known about a call when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the call started (ms since the epoch); also the "now" for
    /// monthly refills.
    pub ts_ms: i64,
    /// The tenant charged.
    pub tenant: String,
    /// The key used, if any.
    pub key_id: Option<String>,
    /// The MCP session, if any.
    pub session: Option<String>,
    /// `tools/call`, `resources/read` or `prompts/get`.
    pub method: String,
    /// The tool, resource or prompt name.
    pub name: String,
    /// The upstream serving it, once known.
    pub upstream: Option<String>,
    /// Compute tokens the call costs (not negative).
    pub cost: i64,
    /// Size of the arguments in bytes.
    pub arg_bytes: i64,
    /// The arguments as recorded for the audit log (the caller decides how
    /// much, if anything, to keep).
    pub args: Option<String>,
    /// The agent run whose key made the call, if any.
    pub run_id: Option<String>,
}

/// How a call ended; stored as snake_case text (`"ok"`, `"tool_error"`, ...).
/// A reserved call that has not finished is stored as `"pending"`, and one
/// whose gateway stopped first as `"interrupted"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The upstream answered normally.
    Ok,
    /// The tool ran and reported an error (`isError`).
    ToolError,
    /// The call failed with a protocol or gateway error.
    Error,
    /// The upstream was not available.
    Unavailable,
    /// The call took too long.
    Timeout,
    /// The client cancelled, or went away.
    Cancelled,
    /// The name is hidden from the caller's tier.
    DeniedHidden,
    /// A rate limit refused the call.
    DeniedRate,
    /// A concurrency limit refused the call.
    DeniedConcurrency,
    /// The tenant's balance was too low.
    DeniedQuota,
    /// No such tool, resource or prompt.
    NotFound,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::ToolError,
        Outcome::Error,
        Outcome::Unavailable,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::DeniedHidden,
        Outcome::DeniedRate,
        Outcome::DeniedConcurrency,
        Outcome::DeniedQuota,
        Outcome::NotFound,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Error => "error",
            Outcome::Unavailable => "unavailable",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::DeniedHidden => "denied_hidden",
            Outcome::DeniedRate => "denied_rate",
            Outcome::DeniedConcurrency => "denied_concurrency",
            Outcome::DeniedQuota => "denied_quota",
            Outcome::NotFound => "not_found",
        }
    }

    /// Whether this is one of the `denied_*` outcomes.
    pub fn is_denied(self) -> bool {
        matches!(
            self,
            Outcome::DeniedHidden
                | Outcome::DeniedRate
                | Outcome::DeniedConcurrency
                | Outcome::DeniedQuota
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The usage row's columns, in the one order in which the ledger writes
/// them and the audit log reads them back. A macro, so that `concat!` can
/// build whole statements from it at compile time.
macro_rules! usage_columns {
    () => {
        "id, ts, tenant, key_id, session, method, name, upstream, outcome, duration_us, cost, \
         arg_bytes, args, error, run_id"
    };
}
pub(crate) use usage_columns;

/// The stored outcome of a reserved call that has not finished yet.
pub(crate) const PENDING: &str = "pending";

/// The stored outcome of a reserved call whose gateway stopped before it
/// finished, set at a later start (see `Store::interrupt_pending`). Not an
/// [`Outcome`]: no running gateway ends a call this way.
pub(crate) const INTERRUPTED: &str = "interrupted";

/// A committed reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reservation {
    /// The usage row's id, for [`Ledger::finish`](crate::Ledger::finish).
    pub id: i64,
    /// The balance after the debit; `None` if unlimited.
    pub balance_after: Option<i64>,
}
