//! Which gateway process owns a run, so replicas on one database never
//! start a run twice or fail another live replica's runs. Every run row
//! names its owner (a random id per opened [`Store`], set by `insert_run`);
//! at start-up a runner asks [`Store::claim_runs`] for the unfinished runs
//! it may recover, and gets only those whose owner is gone, each claimed by
//! one compare-and-set `UPDATE` (so of two replicas starting at once,
//! exactly one gets a run).
//!
//! Whether an owner is gone: on PostgreSQL each process that owns runs
//! holds a session advisory lock on its id, on a connection of its own,
//! for as long as it lives; PostgreSQL releases it the moment that
//! connection dies (`kill -9` included), so `pg_try_advisory_lock` on the
//! owner's id succeeding means the owner is gone. On SQLite (one machine,
//! where runs were only ever recovered by a restarted gateway) every owner
//! other than the caller is taken as gone, as before.

use sqlx::Row;

use crate::clock::now_ms;
use crate::connect::open_connection;
use crate::error::{StoreError, db};
use crate::{Backend, RunRow, Store};

/// The first key of the two-key advisory locks that say "owner alive".
const LIVE_CLASS: i32 = 0x6d63_7072; // "mcpr"

/// A random positive id for this process's store handle.
pub(crate) fn new_owner_id() -> i32 {
    let mut buf = [0u8; 4];
    let n = match getrandom::fill(&mut buf) {
        Ok(()) => u32::from_le_bytes(buf),
        Err(_) => u32::try_from(now_ms() & 0x7fff_ffff).unwrap_or(1),
    };
    i32::try_from(n >> 1).unwrap_or(1).max(1)
}

impl Store {
    /// This process's owner id (stored on the runs it inserts).
    pub fn owner_id(&self) -> i32 {
        self.inner.owner
    }

    /// On PostgreSQL, takes (once) the advisory lock that tells other
    /// replicas this owner is alive, on a connection kept for the life of
    /// the store.
    pub(crate) async fn hold_liveness(&self) -> Result<(), StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        self.inner
            .liveness
            .get_or_try_init(|| async {
                let mut conn = open_connection(&self.inner.target).await.map_err(db)?;
                sqlx::query("SELECT pg_advisory_lock($1, $2)")
                    .bind(LIVE_CLASS)
                    .bind(self.inner.owner)
                    .execute(&mut conn)
                    .await
                    .map_err(db)?;
                Ok::<_, StoreError>(std::sync::Mutex::new(conn))
            })
            .await
            .map(drop)
    }

    /// Whether the process owning runs as `owner` is gone.
    async fn owner_gone(&self, owner: Option<i64>) -> Result<bool, StoreError> {
        let Some(owner) = owner else {
            return Ok(true);
        };
        if owner == i64::from(self.inner.owner) {
            return Ok(false);
        }
        if self.backend() != Backend::Postgres {
            return Ok(true);
        }
        let Ok(owner) = i32::try_from(owner) else {
            return Ok(true); // not an id this code hands out
        };
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LIVE_CLASS)
            .bind(owner)
            .fetch_one(&mut *conn)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db)?;
        if got {
            sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(LIVE_CLASS)
                .bind(owner)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        Ok(got)
    }

    /// The runs in one of `states` (the unfinished ones) whose owner is
    /// gone, oldest first, each now owned by this process. A run of a live
    /// owner (another replica) is left alone. Each owner is judged once per
    /// call, so an owner that dies while the runs are walked is seen as
    /// alive for all of its runs or gone for all of them, never half.
    pub async fn claim_runs(&self, states: &[String]) -> Result<Vec<RunRow>, StoreError> {
        self.hold_liveness().await?;
        let candidates = self
            .runs(&crate::RunRowFilter {
                states: states.to_vec(),
                oldest_first: true,
                ..crate::RunRowFilter::default()
            })
            .await?;
        let mut claimed = Vec::new();
        let mut verdicts: std::collections::HashMap<Option<i64>, bool> =
            std::collections::HashMap::new();
        for run in candidates {
            let owner: Option<i64> = sqlx::query("SELECT owner FROM runs WHERE id = $1")
                .bind(&run.id)
                .fetch_one(self.pool())
                .await
                .and_then(|r| r.try_get::<Option<i64>, _>(0))
                .map_err(db)?;
            let gone = match verdicts.get(&owner) {
                Some(gone) => *gone,
                None => {
                    let gone = self.owner_gone(owner).await?;
                    verdicts.insert(owner, gone);
                    gone
                }
            };
            if !gone {
                continue;
            }
            let took = match owner {
                Some(old) => {
                    sqlx::query("UPDATE runs SET owner = $1 WHERE id = $2 AND owner = $3")
                        .bind(i64::from(self.inner.owner))
                        .bind(&run.id)
                        .bind(old)
                        .execute(self.pool())
                        .await
                }
                None => {
                    sqlx::query("UPDATE runs SET owner = $1 WHERE id = $2 AND owner IS NULL")
                        .bind(i64::from(self.inner.owner))
                        .bind(&run.id)
                        .execute(self.pool())
                        .await
                }
            }
            .map_err(db)?;
            if took.rows_affected() == 1 {
                claimed.push(run);
            }
        }
        Ok(claimed)
    }
}
