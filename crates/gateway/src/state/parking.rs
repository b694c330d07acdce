//! Parked calls: 2026-07-28 calls waiting for the client's input (MRTR), by
//! the random `requestState` the client was given. A state is bound to the
//! tenant, the method and the name it was issued for (`Owner`), is good for
//! one retry, and expires after `PARK_TTL`; a parked call holds its
//! cancellation guard, so expiry cancels the upstream call. Also here: what a
//! running call sends towards its client (`Out`), and the `Tail` of a call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::work::Work;
use bytes::Bytes;
use mcpgate_proto::jsonrpc;
use mcpgate_upstream::{Connection, Reply};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

use mcpgate_proto::locks::lock;

/// How long a parked call waits for the client's retry.
pub(crate) const PARK_TTL: Duration = Duration::from_secs(300);
/// The most calls parked at once; beyond it new inputs are refused.
pub(crate) const MAX_PARKED: usize = 10_000;
/// The `_meta` key a legacy server may use to name its input request's key.
pub(crate) const META_INPUT_KEY: &str = "dev.mcpgate/inputKey";

/// What reaches the client while its request runs.
pub(crate) enum Out {
    /// A serialised JSON-RPC message (a notification, or for a session-based
    /// client a server-to-client request).
    Msg(Bytes),
    /// For a 2026-07-28 client: an upstream request the client must answer by
    /// retrying its call (MRTR); the upstream waits for it meanwhile.
    Input(Pending),
}

/// An upstream request waiting for the client's input.
pub(crate) struct Pending {
    pub(crate) key: String,
    pub(crate) method: String,
    pub(crate) params: Option<Box<RawValue>>,
    pub(crate) conn: Connection,
    pub(crate) upstream_id: Box<RawValue>,
}

/// The rest of a call that the client is reading, or will read after its retry.
pub(crate) struct Tail {
    pub out: mpsc::UnboundedReceiver<Out>,
    pub reply: oneshot::Receiver<Vec<u8>>,
    /// Upstream requests the client has been asked to answer.
    pub pending: Vec<Pending>,
    /// Dropping the tail cancels the call.
    pub _cancel: DropGuard,
    /// The call's work while its reader drives it (detached before parking).
    pub work: Work,
}

impl Tail {
    /// The call's next message (`None` once it has sent its reply), driving
    /// its work meanwhile while it runs in the reader's task.
    pub(crate) async fn next_out(&mut self) -> Option<Out> {
        loop {
            tokio::select! {
                biased;
                o = self.out.recv() => return o,
                () = self.work.run() => {}
            }
        }
    }

    /// The call's reply, driving its work meanwhile.
    pub(crate) async fn final_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            tokio::select! {
                biased;
                r = &mut self.reply => return r.ok(),
                () = self.work.run() => {}
            }
        }
    }

    /// Hands each answer to the waiting upstream request with its key. Entries
    /// that are not objects, or name no waiting request, are ignored (the
    /// request stays waiting and is asked again).
    pub(crate) async fn deliver(&mut self, answers: &Map<String, Value>) {
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            match answers.get(&p.key).filter(|v| v.is_object()) {
                Some(v) => {
                    let r = p
                        .conn
                        .respond(&p.upstream_id, Reply::Result(jsonrpc::to_raw(v)))
                        .await;
                    if let Err(e) = r {
                        tracing::warn!(server = %p.conn.name(), "could not deliver the client's input: {e}");
                    }
                }
                None => still.push(p),
            }
        }
        self.pending = still;
    }

    /// The `InputRequiredResult` asking for every pending input.
    pub(crate) fn input_required(&self, state: &str) -> Box<RawValue> {
        let requests: Map<String, Value> = self
            .pending
            .iter()
            .map(|p| {
                let mut params: Map<String, Value> = p
                    .params
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r.get()).ok())
                    .unwrap_or_default();
                // The upstream's progress token and our key hint mean nothing to the client.
                if let Some(Value::Object(meta)) = params.get_mut("_meta") {
                    meta.remove("progressToken");
                    meta.remove(META_INPUT_KEY);
                    if meta.is_empty() {
                        params.remove("_meta");
                    }
                }
                (
                    p.key.clone(),
                    serde_json::json!({ "method": p.method, "params": params }),
                )
            })
            .collect();
        jsonrpc::to_raw(&serde_json::json!({
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": state,
        }))
    }
}

/// What a parked call was issued for; a retry must match it.
#[derive(PartialEq, Eq, Clone, Debug)]
pub(crate) struct Owner {
    pub tenant: Arc<str>,
    pub method: String,
    pub name: Option<String>,
}

/// What a `requestState` stands for.
pub(crate) enum Held {
    /// A call whose session-based upstream waits for input (bridged MRTR).
    Call(Tail),
    /// A 2026-07-28 upstream's own input request: its state, if it gave one.
    Upstream(Option<String>),
}

struct Parked {
    owner: Owner,
    expires: Instant,
    held: Held,
}

/// Parked calls, by `requestState`.
#[derive(Default)]
pub(crate) struct Parking {
    map: Mutex<HashMap<String, Parked>>,
    /// This replica's tag in the session directory (`[cluster] redis`),
    /// appended to every state so a retry on a peer finds its way here.
    tag: std::sync::OnceLock<String>,
}

impl Parking {
    /// Tags the states issued from now on with this replica's `tag`.
    pub(crate) fn set_tag(&self, tag: &str) {
        let _ = self.tag.set(tag.to_owned());
    }

    /// A fresh random `requestState` (`RANDOM` or, in a cluster, `RANDOM.TAG`).
    pub(crate) fn new_state(&self) -> Option<String> {
        let random = super::sessions::new_session_id().ok()?;
        Some(match self.tag.get() {
            Some(tag) => format!("{random}.{tag}"),
            None => random,
        })
    }

    /// Whether `state` names a call parked here (live or not).
    pub(crate) fn holds(&self, state: &str) -> bool {
        lock(&self.map).contains_key(state)
    }

    /// Parks a call under `state`; gives the tail back when full.
    pub(crate) fn park(
        &self,
        state: String,
        owner: Owner,
        mut held: Held,
    ) -> Result<(), Box<Held>> {
        // A parked call goes on in a task of its own: nobody reads it now.
        if let Held::Call(tail) = &mut held {
            tail.work.detach();
        }
        let mut map = lock(&self.map);
        if map.len() >= MAX_PARKED {
            return Err(Box::new(held));
        }
        map.insert(
            state,
            Parked {
                owner,
                expires: Instant::now() + PARK_TTL,
                held,
            },
        );
        Ok(())
    }

    /// Takes the call a retry names, if it is live and was issued to the same
    /// tenant for the same method and name. A state is good for one retry.
    pub(crate) fn take(&self, state: &str, owner: &Owner) -> Option<Held> {
        let mut map = lock(&self.map);
        match map.get(state) {
            Some(p) if p.owner == *owner && p.expires > Instant::now() => {
                map.remove(state).map(|p| p.held)
            }
            _ => None,
        }
    }

    /// Drops expired calls, which cancels them upstream.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Parked> = {
            let mut map = lock(&self.map);
            let keys: Vec<String> = map
                .iter()
                .filter(|(_, p)| p.expires <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        if !expired.is_empty() {
            tracing::info!(
                "{} call(s) waiting for client input expired after {PARK_TTL:?}",
                expired.len()
            );
        }
    }
}
