//! The store's error types: [`StoreError`] for administrative operations,
//! [`KeyRejection`] for presented API keys and [`ReserveError`] for the
//! ledger's reservations. None of their messages ever carries a key's secret,
//! its hash, or a database password.

/// An administrative store operation failed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The named thing (e.g. `tenant acme`, `key 0123456789ab`) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named thing already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An argument was rejected (bad name, negative balance, bad URL, ...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database failed; the message never contains a secret.
    #[error("database error: {0}")]
    Db(String),
}

/// Why a presented API key was not accepted. The texts never contain the token.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum KeyRejection {
    /// Not of the form `mcpg_<12 hex>_<40 hex>`.
    #[error("malformed API key")]
    Malformed,
    /// No key with that id, or the secret does not match (indistinguishable on purpose).
    #[error("unknown API key")]
    Unknown,
    /// The key was revoked.
    #[error("API key revoked")]
    Revoked,
    /// The key's expiry time has passed.
    #[error("API key expired")]
    Expired,
    /// The store could not be asked.
    #[error("store error: {0}")]
    Store(String),
}

/// Why [`Ledger::reserve`](crate::Ledger::reserve) did not reserve.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// The tenant's balance is below the call's cost. A `denied_quota` usage
    /// row was committed.
    #[error("compute-token balance exhausted (balance {balance}, cost {cost})")]
    Exhausted {
        /// The balance at the time of the attempt (after any monthly reset).
        balance: i64,
        /// The cost that was asked for.
        cost: i64,
        /// When the monthly allowance next refills, if the tenant has one.
        resets_at_ms: Option<i64>,
    },
    /// No tenant of that name. Nothing was written.
    #[error("unknown tenant")]
    UnknownTenant,
    /// The store failed; nothing of the reservation was applied.
    #[error("store error: {0}")]
    Store(String),
}

/// Turns a driver error into [`StoreError::Db`]. Driver messages carry SQL
/// and server texts, never bound values, so no secret reaches them.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Whether a driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
