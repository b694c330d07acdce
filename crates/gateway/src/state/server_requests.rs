//! Server-to-client requests (sampling, elicitation, roots) relayed to a
//! client and waiting for its answer, by the id the client sees. Those ids,
//! like the progress tokens the gateway substitutes, carry a per-process salt
//! so they cannot be guessed and never collide across sessions or restarts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcpgate_upstream::{Connection, Reply};
use serde_json::value::RawValue;

use super::sessions::new_session_id;
use mcpgate_proto::locks::lock;

/// A server-to-client request relayed to a client, waiting for its answer.
pub(crate) struct PendingServerRequest {
    pub(crate) target: Answer,
    session: Option<String>,
    created: Instant,
}

/// Where a client's answer to a server-to-client request goes.
pub(crate) enum Answer {
    /// Back to the upstream request it relays.
    Upstream {
        conn: Connection,
        upstream_id: Box<RawValue>,
    },
    /// To a call bridging a 2026-07-28 upstream's `InputRequiredResult`.
    Bridge(tokio::sync::oneshot::Sender<Reply>),
}

/// Relayed requests waiting for answers, and the id and token counters.
pub(crate) struct ServerRequests {
    pending: Mutex<HashMap<String, PendingServerRequest>>,
    next_gid: AtomicU64,
    next_progress: AtomicU64,
    salt: String,
}

/// Unanswered relayed requests are forgotten after this long.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl Default for ServerRequests {
    fn default() -> Self {
        ServerRequests {
            pending: Mutex::new(HashMap::new()),
            next_gid: AtomicU64::new(1),
            next_progress: AtomicU64::new(1),
            // The salt keeps relayed ids from colliding across restarts; if the
            // OS generator failed, the start time still serves that purpose.
            salt: new_session_id()
                .map(|s| s[..8].to_owned())
                .unwrap_or_else(|_| {
                    format!(
                        "{:x}",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_nanos())
                            .unwrap_or(0)
                    )
                }),
        }
    }
}

impl ServerRequests {
    /// Registers a server-to-client request and returns the id the client sees.
    pub(crate) fn register(&self, target: Answer, session: Option<&str>) -> String {
        let n = self.next_gid.fetch_add(1, Ordering::Relaxed);
        let gid = format!("mcpgate-{}-{n}", self.salt);
        lock(&self.pending).insert(
            gid.clone(),
            PendingServerRequest {
                target,
                session: session.map(str::to_owned),
                created: Instant::now(),
            },
        );
        gid
    }

    /// Takes the pending request a client's response answers, if the id is ours
    /// and (with sessions) it was sent to this session.
    pub(crate) fn take(&self, gid: &str, session: Option<&str>) -> Option<PendingServerRequest> {
        let mut pending = lock(&self.pending);
        match pending.get(gid) {
            Some(p) if p.session.is_none() || p.session.as_deref() == session => {
                pending.remove(gid)
            }
            _ => None,
        }
    }

    /// The client-visible id of a pending request, given the upstream id (for cancellation).
    pub(crate) fn gid_for(&self, conn: &Connection, upstream_id: &str) -> Option<String> {
        lock(&self.pending)
            .iter()
            .find(|(_, p)| match &p.target {
                Answer::Upstream {
                    conn: c,
                    upstream_id: u,
                } => u.get() == upstream_id && c.name() == conn.name(),
                Answer::Bridge(_) => false,
            })
            .map(|(g, _)| g.clone())
    }

    /// A progress token unique across all sessions, as raw JSON.
    pub(crate) fn new_progress_token(&self) -> String {
        let n = self.next_progress.fetch_add(1, Ordering::Relaxed);
        format!("\"mcpgate-p-{}-{n}\"", self.salt)
    }

    /// Forgets the requests sent to a session that ended.
    pub(crate) fn drop_session(&self, id: &str) {
        lock(&self.pending).retain(|_, p| p.session.as_deref() != Some(id));
    }

    /// Forgets requests nobody answered in time.
    pub(crate) fn expire(&self) {
        lock(&self.pending).retain(|_, p| p.created.elapsed() < FORGET_AFTER);
    }
}
