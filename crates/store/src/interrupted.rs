//! Calls a gateway was stopped in the middle of. A reserved call's usage row
//! reads `pending` until the call's finish is written; a gateway that dies
//! (`kill -9`, OOM, power loss) never writes it. At start-up the gateway
//! marks such rows `interrupted`, keeping their debit: the upstream may well
//! have done the work, and the tenant cannot be told either way.
//!
//! Only the rows of processes that are gone may be marked, and several
//! processes can share a store, so which rows are safe depends on the backend:
//! - SQLite (one machine): every ledger writer holds a shared `flock` on
//!   `<database>.writers` for as long as it runs. If an exclusive lock on it
//!   can be taken, no writer is alive anywhere, so every pending row belongs
//!   to a dead process and all are marked. If not (another gateway is
//!   serving from the same file), only rows older than the caller's window.
//! - PostgreSQL (replicas on several machines, which a file lock cannot
//!   see): only rows older than the caller's window, which should exceed the
//!   longest a call can run. Rows of a replica that died less than a window
//!   ago are marked at the next start of any replica after that.
//!
//! A mistake heals itself: a call that was still running writes its finish
//! over the mark (the finish sets the outcome by row id, whatever it was),
//! and the debit is never touched here, so a later refund still applies.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::now_ms;
use crate::connect::Target;
use crate::error::{StoreError, db};
use crate::record::{INTERRUPTED, PENDING};
use crate::{Backend, Store};

/// The error text an interrupted row gets.
const WHY: &str = "the gateway stopped before the call finished (marked at its next start)";

/// The file SQLite ledger writers lock, beside the database.
fn writers_file(target: &Target) -> Option<PathBuf> {
    let db = target.sqlite_file.as_ref()?;
    let mut name = db.file_name()?.to_owned();
    name.push(".writers");
    Some(db.with_file_name(name))
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// The shared lock a ledger writer holds while it runs (SQLite only);
/// released when the returned file is dropped. Blocks while a start-up
/// sweep holds the exclusive lock, which it does for one `UPDATE`.
pub(crate) async fn hold_writer_lock(target: &Target) -> Option<File> {
    let path = writers_file(target)?;
    let locked = tokio::task::spawn_blocking(move || {
        let file = open_lock_file(&path)?;
        file.lock_shared()?;
        Ok::<File, std::io::Error>(file)
    })
    .await;
    match locked {
        Ok(Ok(file)) => Some(file),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot lock the ledger writers' file; \
                a gateway starting beside this one may mark its calls in flight interrupted");
            None
        }
        Err(_) => None,
    }
}

impl Store {
    /// Marks the `pending` usage rows of stopped processes `interrupted`,
    /// keeping their cost, and returns how many. `window` is the longest a
    /// live call may run: rows younger than it are left alone unless no
    /// ledger writer is alive (see the module notes for the rules).
    pub async fn interrupt_pending(&self, window: Duration) -> Result<u64, StoreError> {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let by_window = now_ms().saturating_sub(window_ms);
        // Held (exclusively) until the UPDATE is done, so no writer starts meanwhile.
        let mut _sole = None;
        let before = match (self.backend(), writers_file(&self.inner.target)) {
            (Backend::Sqlite, Some(path)) => match open_lock_file(&path) {
                Ok(file) if file.try_lock().is_ok() => {
                    _sole = Some(file);
                    i64::MAX
                }
                _ => by_window,
            },
            _ => by_window,
        };
        let done = sqlx::query(&format!(
            "UPDATE usage SET outcome = '{INTERRUPTED}', error = $2 \
             WHERE outcome = '{PENDING}' AND ts < $1"
        ))
        .bind(before)
        .bind(WHY)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }
}
