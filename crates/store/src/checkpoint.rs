//! SQLite WAL checkpoints off the hot path. The ledger writer's connection
//! turns automatic checkpoints off (they would run inside a reservation's
//! COMMIT, flushing the log to disk for milliseconds); instead this task, on
//! its own connection, runs a PASSIVE checkpoint (which never blocks the
//! writer) a few times a second. When the writer is idle between two
//! commits, such a checkpoint catches up with the whole log and the writer's
//! next commit starts the log file over. Under sustained load that moment
//! never comes, so when the log passes [`RESTART_FRAMES`] this task asks the
//! writer to restart the log itself between two batches (a short pause,
//! since the passive checkpoints have already done most of the work).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Row};
use tokio::sync::oneshot;

use crate::connect::{Target, open_connection};

/// How often the WAL is checkpointed.
const INTERVAL: Duration = Duration::from_millis(250);

/// WAL frames (pages) past which the writer is asked to restart the log:
/// about 32 MiB.
const RESTART_FRAMES: i64 = 8_192;

/// The writer's side of the checkpointer: dropping it stops the task.
pub(crate) struct Checkpointer {
    _stop: oneshot::Sender<()>,
    restart: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Whether the log should be restarted now (answers `true` once per request).
    pub(crate) fn restart_requested(&self) -> bool {
        self.restart.swap(false, Ordering::AcqRel)
    }
}

/// Starts the checkpoint task.
pub(crate) fn spawn(target: Arc<Target>) -> Checkpointer {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let restart = Arc::new(AtomicBool::new(false));
    let request = restart.clone();
    tokio::spawn(async move {
        let mut conn: Option<AnyConnection> = None;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(INTERVAL) => {}
            }
            if conn.is_none() {
                match open_connection(&target).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpointer cannot connect");
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match passive(c).await {
                Ok(frames) if frames > RESTART_FRAMES => request.store(true, Ordering::Release),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                    conn = None;
                }
            }
        }
    });
    Checkpointer {
        _stop: stop,
        restart,
    }
}

/// A PASSIVE checkpoint; returns the number of frames in the log.
async fn passive(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    row.try_get(1)
}

/// Run by the writer on its own connection: checkpoints the rest of the log
/// and makes the next commit start it over.
pub(crate) async fn restart(conn: &mut AnyConnection) {
    match sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await
    {
        Ok(row) => {
            let busy: i64 = row.try_get(0).unwrap_or(-1);
            tracing::debug!(busy, "WAL restarted");
        }
        Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
    }
}
