//! Where everything a server sends is routed: the connection's tables of
//! requests in flight and of relays, and its life. It allocates our request
//! ids (plain increasing integers, so ids from different client sessions can
//! never collide upstream), matches replies to waiting requests, and routes
//! what the server sends on its own to the request it belongs to:
//! - progress notifications by progress token;
//! - on HTTP, anything on a request's own SSE stream to that request (the
//!   transport passes that request as the hint);
//! - on stdio, where the wire carries no such link, logs and server-to-client
//!   requests go to the request in flight (the most recent one when several
//!   are); servers that need exact attribution should use per-session isolation.
//!   The legacy HTTP+SSE transport carries no such link either and works the same.
//!
//! The transports report into it and know nothing else of the connection, so
//! it imports no transport: a server's `ping` is answered through the hook the
//! connection gives it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mcpgate_proto::Kind;
use mcpgate_proto::jsonrpc::{self, Message};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::error::UpstreamError;
use crate::locks::lock;
use crate::message::{Event, EventTx, Incoming, RelayTx, Reply};

/// Sends bytes back to the server (the answer to its `ping`), in the background.
pub(crate) type SendBack = Box<dyn Fn(Vec<u8>) + Send + Sync>;

/// The end of one request's wait.
pub(crate) type ReplyRx = oneshot::Receiver<Result<Reply, UpstreamError>>;

struct Pending {
    tx: oneshot::Sender<Result<Reply, UpstreamError>>,
    relay: Option<RelayTx>,
}

pub(crate) struct Routes {
    name: String,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    progress_routes: Mutex<HashMap<String, RelayTx>>,
    server_request_routes: Mutex<HashMap<String, RelayTx>>,
    events: EventTx,
    alive: AtomicBool,
    closed_reason: Mutex<Option<String>>,
    closed: CancellationToken,
    answer_ping: SendBack,
}

#[derive(Deserialize)]
struct ProgressParams<'a> {
    #[serde(rename = "progressToken", borrow)]
    progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CancelledParams<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: Option<&'a RawValue>,
}

impl Routes {
    pub(crate) fn new(name: &str, events: EventTx, answer_ping: SendBack) -> Routes {
        Routes {
            name: name.to_owned(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            progress_routes: Mutex::new(HashMap::new()),
            server_request_routes: Mutex::new(HashMap::new()),
            events,
            alive: AtomicBool::new(true),
            closed_reason: Mutex::new(None),
            closed: CancellationToken::new(),
            answer_ping,
        }
    }

    /// The server's configured name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Allocates an id for a new request and waits for its reply there; what
    /// the server sends about it goes to `relay` (progress by `progress_token`).
    pub(crate) fn open(
        &self,
        relay: Option<RelayTx>,
        progress_token: Option<&str>,
    ) -> (u64, ReplyRx) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let progress_route = progress_token.zip(relay.clone());
        lock(&self.pending).insert(id, Pending { tx, relay });
        if let Some((token, relay)) = progress_route {
            lock(&self.progress_routes).insert(token.to_owned(), relay);
        }
        (id, rx)
    }

    /// Forgets request `id` however its wait ended; `true` when it was still
    /// waiting for its reply.
    pub(crate) fn close(&self, id: u64, progress_token: Option<&str>) -> bool {
        let was_pending = lock(&self.pending).remove(&id).is_some();
        if let Some(t) = progress_token {
            lock(&self.progress_routes).remove(t);
        }
        was_pending
    }

    pub(crate) fn is_pending(&self, id: u64) -> bool {
        lock(&self.pending).contains_key(&id)
    }

    /// Completes a waiting request with an error.
    pub(crate) fn fail(&self, id: u64, err: UpstreamError) {
        if let Some(p) = lock(&self.pending).remove(&id) {
            let _ = p.tx.send(Err(err));
        }
    }

    /// Fails a request that could not be delivered; a server that cannot be
    /// reached at all ends the connection (the supervisor reconnects with backoff).
    pub(crate) fn fail_delivery(&self, id: u64, err: UpstreamError) {
        let unreachable = matches!(err, UpstreamError::Unreachable { .. });
        self.fail(id, err.clone());
        if unreachable {
            self.mark_closed(err.to_string());
        }
    }

    /// Our answer to server-to-client request `id` is on its way: messages
    /// about it need no route any more.
    pub(crate) fn answered(&self, id: &str) {
        lock(&self.server_request_routes).remove(id);
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Cancelled when the connection ends.
    pub(crate) fn closed_token(&self) -> CancellationToken {
        self.closed.clone()
    }

    pub(crate) fn closed_reason(&self) -> Option<String> {
        lock(&self.closed_reason).clone()
    }

    pub(crate) fn closed_error(&self) -> UpstreamError {
        UpstreamError::Closed {
            server: self.name.clone(),
            reason: self
                .closed_reason()
                .unwrap_or_else(|| "connection closed".into()),
        }
    }

    /// Marks the connection dead and fails every request in flight at once.
    pub(crate) fn mark_closed(&self, reason: String) {
        if self.alive.swap(false, Ordering::AcqRel) {
            *lock(&self.closed_reason) = Some(reason.clone());
            let drained: Vec<Pending> = lock(&self.pending).drain().map(|(_, p)| p).collect();
            let err = self.closed_error();
            for p in drained {
                let _ = p.tx.send(Err(err.clone()));
            }
            let _ = self.events.send(Event::Closed { reason });
            self.closed.cancel();
        }
    }

    /// Routes one message from the server. `hint` is the request whose HTTP
    /// response stream carried it.
    pub(crate) fn dispatch(&self, msg: Message, hint: Option<u64>) {
        let kind = match msg.kind() {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(server = %self.name, "ignoring malformed message: {}", e.message());
                return;
            }
        };
        match kind {
            Kind::Response => {
                let id = msg.id.as_ref().and_then(|i| i.get().parse::<u64>().ok());
                let Some(p) = id.and_then(|id| lock(&self.pending).remove(&id)) else {
                    tracing::debug!(server = %self.name, "reply to an unknown or finished request");
                    return;
                };
                let reply = match (msg.result, msg.error) {
                    (_, Some(e)) => Reply::Error(e),
                    (Some(r), None) => Reply::Result(r),
                    (None, None) => {
                        Reply::Error(jsonrpc::error_object(-32603, "empty response", None))
                    }
                };
                let _ = p.tx.send(Ok(reply));
            }
            Kind::Notification => {
                let method = msg.method.unwrap_or_default();
                let params = msg.params;
                let relay = match method.as_str() {
                    "notifications/progress" => params
                        .as_deref()
                        .and_then(|p| serde_json::from_str::<ProgressParams<'_>>(p.get()).ok())
                        .and_then(|p| p.progress_token.map(|t| t.get().to_owned()))
                        .and_then(|t| lock(&self.progress_routes).get(&t).cloned())
                        .or_else(|| self.relay_for(hint, false)),
                    "notifications/cancelled" => params
                        .as_deref()
                        .and_then(|p| serde_json::from_str::<CancelledParams<'_>>(p.get()).ok())
                        .and_then(|p| p.request_id.map(|t| t.get().to_owned()))
                        .and_then(|t| lock(&self.server_request_routes).remove(&t)),
                    "notifications/message" => self.relay_for(hint, true),
                    _ => None,
                };
                self.deliver(relay, Incoming::Notification { method, params });
            }
            Kind::Request => {
                let Some(id) = msg.id else { return };
                let method = msg.method.unwrap_or_default();
                if method == "ping" {
                    (self.answer_ping)(jsonrpc::response_result(
                        &id,
                        &jsonrpc::to_raw(&serde_json::json!({})),
                    ));
                    return;
                }
                let relay = self.relay_for(hint, true);
                if let Some(r) = &relay {
                    lock(&self.server_request_routes).insert(id.get().to_owned(), r.clone());
                }
                self.deliver(
                    relay,
                    Incoming::Request {
                        id,
                        method,
                        params: msg.params,
                    },
                );
            }
        }
    }

    /// Hands a message to the request's relay, or to the connection's events
    /// when it has none (or the relay is gone).
    fn deliver(&self, relay: Option<RelayTx>, incoming: Incoming) {
        let unrouted = match relay {
            Some(r) => match r.send(incoming) {
                Ok(()) => return,
                Err(back) => back.0,
            },
            None => incoming,
        };
        let _ = self.events.send(Event::Incoming(unrouted));
    }

    /// The relay of the hinted request, or (when `guess`) of the most recent
    /// request in flight that has one.
    fn relay_for(&self, hint: Option<u64>, guess: bool) -> Option<RelayTx> {
        let pending = lock(&self.pending);
        if let Some(r) = hint
            .and_then(|h| pending.get(&h))
            .and_then(|p| p.relay.clone())
        {
            return Some(r);
        }
        if !guess {
            return None;
        }
        pending
            .iter()
            .filter(|(_, p)| p.relay.is_some())
            .max_by_key(|(id, _)| **id)
            .and_then(|(_, p)| p.relay.clone())
    }
}
