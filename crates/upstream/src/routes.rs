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
use crate::message::{Event, EventTx, Incoming, RelayTx, Reply};
use crate::redact::Secrets;
use mcpgate_proto::locks::lock;

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
    /// The server's configured secrets, masked in what we log or report of it.
    secrets: Secrets,
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
            secrets: Secrets::default(),
        }
    }

    /// The same routes, masking `secrets` in what they log and in why they closed.
    pub(crate) fn with_secrets(mut self, secrets: Secrets) -> Routes {
        self.secrets = secrets;
        self
    }

    /// The server's configured secrets.
    pub(crate) fn secrets(&self) -> &Secrets {
        &self.secrets
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
            let reason = self.secrets.redact(&reason).into_owned();
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
                tracing::warn!(server = %self.name, "ignoring malformed message: {}", self.secrets.redact(&e.message()));
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
                    // A `subscriptions/listen` request's own acknowledgement, on its stream.
                    "notifications/subscriptions/acknowledged" => self.relay_for(hint, false),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    use super::*;

    /// What the ping hook was given to send back.
    type SentBack = Arc<Mutex<Vec<Vec<u8>>>>;

    fn routes() -> (Routes, UnboundedReceiver<Event>, SentBack) {
        let (events, events_rx) = unbounded_channel();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        let answer = Box::new(move |bytes: Vec<u8>| lock(&log).push(bytes));
        (Routes::new("srv", events, answer), events_rx, sent)
    }

    fn msg(json: &str) -> Message {
        Message::parse(json.as_bytes()).expect("test message parses")
    }

    fn method_of(incoming: Incoming) -> String {
        match incoming {
            Incoming::Notification { method, .. } | Incoming::Request { method, .. } => method,
        }
    }

    #[test]
    fn a_reply_reaches_its_waiter_and_a_stray_one_reaches_nobody() {
        let (routes, mut events, _) = routes();
        let (id, mut rx) = routes.open(None, None);
        routes.dispatch(msg(r#"{"jsonrpc":"2.0","id":999,"result":{}}"#), None);
        assert!(rx.try_recv().is_err(), "a reply to another id is not ours");
        routes.dispatch(
            msg(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"ok":1}}}}"#
            )),
            None,
        );
        match rx.try_recv() {
            Ok(Ok(Reply::Result(r))) => assert_eq!(r.get(), r#"{"ok":1}"#),
            other => panic!("expected the result, got {other:?}"),
        }
        assert!(!routes.is_pending(id));
        assert!(events.try_recv().is_err(), "replies never become events");
    }

    #[test]
    fn progress_follows_its_token_and_logs_go_to_the_hinted_or_latest_request() {
        let (routes, mut events, _) = routes();
        let (tx_a, mut rx_a) = unbounded_channel();
        let (tx_b, mut rx_b) = unbounded_channel();
        let (a, _wait_a) = routes.open(Some(tx_a), Some("\"tok-a\""));
        let (b, _wait_b) = routes.open(Some(tx_b), None);
        assert!(b > a);

        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-a","progress":1}}"#;
        routes.dispatch(msg(progress), None);
        assert_eq!(
            method_of(rx_a.try_recv().expect("a's progress")),
            "notifications/progress"
        );
        assert!(rx_b.try_recv().is_err());

        let log = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
        routes.dispatch(msg(log), Some(a));
        assert!(rx_a.try_recv().is_ok(), "the hint wins");
        routes.dispatch(msg(log), None);
        assert!(
            rx_b.try_recv().is_ok(),
            "without a hint, the latest request"
        );
        assert!(rx_a.try_recv().is_err());

        routes.close(a, Some("\"tok-a\""));
        routes.dispatch(msg(progress), None);
        assert!(
            matches!(events.try_recv(), Ok(Event::Incoming(_))),
            "a closed token's progress is unrouted"
        );
    }

    #[test]
    fn a_listen_acknowledgement_reaches_the_listen_request_on_whose_stream_it_came() {
        let (routes, mut events, _) = routes();
        let (tx, mut rx) = unbounded_channel();
        let (listen, _wait) = routes.open(Some(tx), None);
        let ack =
            r#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}"#;
        routes.dispatch(msg(ack), Some(listen));
        assert_eq!(
            method_of(rx.try_recv().expect("the listen request's own ack")),
            "notifications/subscriptions/acknowledged"
        );
        assert!(events.try_recv().is_err());
        routes.dispatch(msg(ack), None);
        assert!(rx.try_recv().is_err(), "never guessed");
        assert!(
            matches!(events.try_recv(), Ok(Event::Incoming(_))),
            "an ack on no request's stream stays unrouted"
        );
    }

    #[test]
    fn a_server_request_and_its_cancellation_share_a_route_until_answered() {
        let (routes, mut events, _) = routes();
        let (tx, mut rx) = unbounded_channel();
        let (id, _wait) = routes.open(Some(tx), None);
        let ask = r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#;
        routes.dispatch(msg(ask), Some(id));
        assert_eq!(
            method_of(rx.try_recv().expect("routed")),
            "sampling/createMessage"
        );

        let cancel =
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s1"}}"#;
        routes.dispatch(msg(cancel), None);
        assert_eq!(
            method_of(rx.try_recv().expect("routed")),
            "notifications/cancelled"
        );

        routes.dispatch(msg(ask), Some(id));
        let _ = rx.try_recv();
        routes.answered("\"s1\"");
        routes.dispatch(msg(cancel), None);
        assert!(rx.try_recv().is_err());
        assert!(matches!(events.try_recv(), Ok(Event::Incoming(_))));
    }

    #[test]
    fn a_ping_is_answered_through_the_hook_and_not_delivered() {
        let (routes, mut events, sent) = routes();
        routes.dispatch(msg(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#), None);
        let sent = lock(&sent);
        assert_eq!(sent.len(), 1);
        let pong = Message::parse(&sent[0]).expect("the pong parses");
        assert_eq!(pong.id.as_deref().map(RawValue::get), Some("7"));
        assert_eq!(pong.result.as_deref().map(RawValue::get), Some("{}"));
        assert!(events.try_recv().is_err());
    }

    #[test]
    fn an_unreachable_server_closes_everything_once_and_other_failures_do_not() {
        let (routes, mut events, _) = routes();
        let (a, mut rx_a) = routes.open(None, None);
        let (b, mut rx_b) = routes.open(None, None);
        let http = UpstreamError::Http {
            server: "srv".into(),
            status: 500,
            detail: String::new(),
        };
        routes.fail_delivery(a, http);
        assert!(matches!(
            rx_a.try_recv(),
            Ok(Err(UpstreamError::Http { .. }))
        ));
        assert!(routes.is_alive() && routes.is_pending(b));

        let (c, _wait_c) = routes.open(None, None);
        let down = UpstreamError::Unreachable {
            server: "srv".into(),
            detail: "refused".into(),
        };
        routes.fail_delivery(c, down);
        assert!(!routes.is_alive());
        assert!(matches!(
            rx_b.try_recv(),
            Ok(Err(UpstreamError::Closed { .. }))
        ));
        assert!(matches!(events.try_recv(), Ok(Event::Closed { .. })));
        routes.mark_closed("again".into());
        assert!(events.try_recv().is_err(), "closed once");
        assert!(routes.closed_token().is_cancelled());
    }
}
