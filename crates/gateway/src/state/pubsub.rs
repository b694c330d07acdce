//! Changes announced to the other replicas through Redis pub/sub
//! (`[cluster] redis`), so that they take effect everywhere within a second
//! rather than at each replica's next poll: a key revoked or created, a
//! tenant added or its plan changed (anything that moves the store's
//! revision), a server added or removed at runtime, a config reload.
//!
//! One channel per store, [`CHANNEL`]`:<hash of the store's address>` (so
//! that two clusters, or two tests, sharing one Redis do not hear each
//! other), carries small JSON messages
//! (`{"origin": "<replica>", "change": "keys"}` and the like, see
//! [`Change`]); a replica ignores its own. Two tasks per gateway, both
//! spawned (never awaited by a request or by shutdown) and both ending
//! when the gateway shuts down:
//!
//! - the publisher takes changes from a bounded queue (a full queue drops
//!   the message with a warning: the revision poll still covers keys) and
//!   sends each with `PUBLISH`, with short timeouts, so a Redis outage
//!   costs a warning, never a stuck admin request;
//! - the subscriber holds one subscribed connection and hands each message
//!   to the gateway (`mcp::changes`). When the connection ends (Redis
//!   restarted) or stops answering its ping, it reconnects after a pause
//!   that grows to 5 s, and on every (re)subscription it reports
//!   [`Change::Keys`] to its own replica, since messages sent while it was
//!   away are lost. Every wait is raced against shutdown.
//!
//! The store's `revision` poll (`state::auth`) stays as the fallback: with
//! Redis down, a revocation still reaches every replica within ~250 ms of
//! the poll. Server changes have no such fallback: a replica that was away
//! from Redis when a server was added at runtime does not learn of it (the
//! config file stays the source of truth, as for a restart).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use mcpgate_proto::locks::lock;

/// The prefix of the Redis channel every replica of a store publishes to and listens on.
pub(crate) const CHANNEL: &str = "mcpgate:changes";

/// How many changes may wait for the publisher.
const QUEUE: usize = 256;
/// The longest a connect, `PUBLISH` or ping may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscriber checks that its connection still answers.
const PING_EVERY: Duration = Duration::from_secs(5);
/// The longest pause between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One change, as replicas tell each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum Change {
    /// Tenants or keys changed in the store: drop cached keys.
    Keys,
    /// A server was added at runtime, with its `[servers.NAME]` table as
    /// the admin API received it (`${VAR}`s unexpanded).
    ServerAdded {
        name: String,
        table: serde_json::Value,
    },
    /// A server was removed at runtime.
    ServerRemoved { name: String },
    /// The config file was reloaded: read yours again.
    Reload,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    #[serde(flatten)]
    change: Change,
}

/// The gateway's pub/sub handle (one when `[cluster] redis` is set).
pub(crate) struct PubSub {
    client: redis::Client,
    channel: String,
    /// This replica's id on the messages it sends (random per process).
    origin: String,
    tx: mpsc::Sender<Change>,
    rx: Mutex<Option<mpsc::Receiver<Change>>>,
    /// Messages from other replicas handled, and changes published: for logs and tests.
    pub(crate) received: AtomicU64,
    pub(crate) published: AtomicU64,
}

impl PubSub {
    /// A handle on the Redis at `url` for the replicas of the store
    /// described as `store` ([`mcpgate_store::Store::describe`]); nothing
    /// connects before the tasks run.
    pub(crate) fn new(url: &str, store: &str) -> Result<PubSub, String> {
        use sha2::{Digest, Sha256};
        let client = super::redis_conn::open_client(url)?;
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).map_err(|e| format!("no randomness for a replica id: {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let scope = Sha256::digest(store.as_bytes());
        let scope: String = scope[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(PubSub {
            client,
            channel: format!("{CHANNEL}:{scope}"),
            origin: format!("{:016x}", u64::from_le_bytes(buf)),
            tx,
            rx: Mutex::new(Some(rx)),
            received: AtomicU64::new(0),
            published: AtomicU64::new(0),
        })
    }

    /// Queues `change` for the other replicas; never waits.
    pub(crate) fn publish(&self, change: Change) {
        if let Err(e) = self.tx.try_send(change) {
            tracing::warn!(
                "cannot announce a change to the other replicas ({e}); they see key changes at their next poll"
            );
        }
    }

    /// The publisher: sends queued changes until `shutdown`. Runs once; a
    /// second call returns at once.
    pub(crate) async fn run_publisher(&self, shutdown: CancellationToken) {
        let Some(mut rx) = lock(&self.rx).take() else {
            return;
        };
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        loop {
            let change = tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => c,
                    None => return,
                },
                _ = shutdown.cancelled() => return,
            };
            let text = match serde_json::to_string(&Envelope {
                origin: self.origin.clone(),
                change,
            }) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("cannot encode a change for the other replicas: {e}");
                    continue;
                }
            };
            let sent = tokio::select! {
                r = tokio::time::timeout(TIMEOUT, self.send(&mut conn, &text)) => {
                    r.unwrap_or_else(|_| Err("timed out".to_owned()))
                }
                _ = shutdown.cancelled() => return,
            };
            match sent {
                Ok(()) => {
                    self.published.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    conn = None;
                    tracing::warn!(
                        "cannot announce a change to the other replicas through Redis ({e}); they see key changes at their next poll"
                    );
                }
            }
        }
    }

    async fn send(
        &self,
        conn: &mut Option<redis::aio::MultiplexedConnection>,
        text: &str,
    ) -> Result<(), String> {
        if conn.is_none() {
            *conn = Some(
                self.client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let Some(c) = conn.as_mut() else {
            return Err("no connection".to_owned());
        };
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(text)
            .query_async::<i64>(c)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The subscriber: hands every other replica's change to `apply` until
    /// `shutdown`, subscribing again whenever the connection is lost.
    pub(crate) async fn run_subscriber(
        &self,
        shutdown: CancellationToken,
        apply: impl Fn(Change) + Send + Sync,
    ) {
        let mut backoff = Duration::from_millis(100);
        let mut logged_down = false;
        loop {
            let subscribed = tokio::select! {
                r = tokio::time::timeout(TIMEOUT, self.subscribe()) => {
                    r.unwrap_or_else(|_| Err("timed out".to_owned()))
                }
                _ = shutdown.cancelled() => return,
            };
            match subscribed {
                Ok((mut sink, mut stream)) => {
                    tracing::info!("listening for changes from the other replicas through Redis");
                    logged_down = false;
                    backoff = Duration::from_millis(100);
                    // Whatever was said while we were away is lost.
                    apply(Change::Keys);
                    let why = loop {
                        tokio::select! {
                            m = stream.next() => match m {
                                Some(m) => self.handle(m.get_payload_bytes(), &apply),
                                None => break "the connection closed".to_owned(),
                            },
                            _ = tokio::time::sleep(PING_EVERY) => {
                                match tokio::time::timeout(TIMEOUT, sink.ping::<String>()).await {
                                    Ok(Ok(_)) => {}
                                    Ok(Err(e)) => break e.to_string(),
                                    Err(_) => break "a ping went unanswered".to_owned(),
                                }
                            }
                            _ = shutdown.cancelled() => return,
                        }
                    };
                    tracing::warn!(
                        "lost the Redis subscription for changes from other replicas ({why}); subscribing again"
                    );
                }
                Err(e) => {
                    if !logged_down {
                        tracing::warn!(
                            "cannot subscribe to changes from other replicas through Redis ({e}); retrying, and polling the store meanwhile"
                        );
                        logged_down = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn subscribe(
        &self,
    ) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), String> {
        let pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| e.to_string())?;
        let (mut sink, stream) = pubsub.split();
        sink.subscribe(&self.channel)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sink, stream))
    }

    /// Decodes one message and applies it unless it is our own.
    fn handle(&self, payload: &[u8], apply: &impl Fn(Change)) {
        match serde_json::from_slice::<Envelope>(payload) {
            Ok(e) if e.origin == self.origin => {}
            Ok(e) => {
                self.received.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(from = %e.origin, change = ?e.change, "change from another replica");
                apply(e.change);
            }
            Err(e) => tracing::warn!(
                "ignoring a message on {} that is not a change: {e}",
                self.channel
            ),
        }
    }
}

/// Sends one change from a process that is not a gateway (the CLI after
/// `mcpgate keys revoke` on the store): connects, publishes, and gives up
/// after two seconds.
pub(crate) async fn announce(url: &str, store: &str, change: Change) -> Result<(), String> {
    let p = PubSub::new(url, store)?;
    let text = serde_json::to_string(&Envelope {
        origin: p.origin.clone(),
        change,
    })
    .map_err(|e| e.to_string())?;
    let mut conn = None;
    tokio::time::timeout(TIMEOUT, p.send(&mut conn, &text))
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn changes_round_trip_as_small_json() {
        let e = Envelope {
            origin: "a".into(),
            change: Change::ServerRemoved { name: "fx".into() },
        };
        let text = serde_json::to_string(&e).expect("json");
        assert_eq!(
            text,
            r#"{"origin":"a","change":"server_removed","name":"fx"}"#
        );
        let back: Envelope = serde_json::from_str(&text).expect("parse");
        assert_eq!(back.change, Change::ServerRemoved { name: "fx".into() });
        let keys: Envelope =
            serde_json::from_str(r#"{"origin":"b","change":"keys"}"#).expect("parse");
        assert_eq!(keys.change, Change::Keys);
    }

    #[test]
    fn own_and_garbled_messages_are_ignored() {
        let p = PubSub::new("redis://127.0.0.1:1", "s").expect("url");
        let seen = Mutex::new(Vec::new());
        let apply = |c: Change| lock(&seen).push(c);
        let own = format!(r#"{{"origin":"{}","change":"keys"}}"#, p.origin);
        p.handle(own.as_bytes(), &apply);
        p.handle(b"not json", &apply);
        p.handle(br#"{"origin":"x","change":"nonsense"}"#, &apply);
        p.handle(br#"{"origin":"x","change":"reload"}"#, &apply);
        assert_eq!(*lock(&seen), vec![Change::Reload]);
        assert_eq!(p.received.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_unreachable_redis_neither_blocks_nor_outlives_shutdown() {
        // Port 1 on loopback: nothing listens there.
        let p = Arc::new(PubSub::new("redis://127.0.0.1:1", "s").expect("url"));
        let shutdown = CancellationToken::new();
        let sub = tokio::spawn({
            let (p, s) = (p.clone(), shutdown.clone());
            async move { p.run_subscriber(s, |_| {}).await }
        });
        let publisher = tokio::spawn({
            let (p, s) = (p.clone(), shutdown.clone());
            async move { p.run_publisher(s).await }
        });
        p.publish(Change::Keys);
        // Announcing from the CLI fails quickly, with an error.
        assert!(
            announce("redis://127.0.0.1:1", "s", Change::Keys)
                .await
                .is_err()
        );
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), async {
            sub.await.expect("subscriber");
            publisher.await.expect("publisher");
        })
        .await
        .expect("both tasks end at shutdown");
        assert_eq!(p.published.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "peers tier: needs Redis at 127.0.0.1:6379"]
    async fn a_change_published_by_one_replica_reaches_the_other() {
        let url = "redis://127.0.0.1:6379";
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).expect("random");
        let store = format!("test {}", u64::from_le_bytes(buf));
        let (a, b) = (
            Arc::new(PubSub::new(url, &store).expect("url")),
            Arc::new(PubSub::new(url, &store).expect("url")),
        );
        let shutdown = CancellationToken::new();
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        tokio::spawn({
            let (b, s) = (b.clone(), shutdown.clone());
            async move { b.run_subscriber(s, move |c| drop(seen_tx.send(c))).await }
        });
        tokio::spawn({
            let (a, s) = (a.clone(), shutdown.clone());
            async move { a.run_publisher(s).await }
        });
        // Every subscription starts with Keys (what was missed); then ours.
        let first = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv())
            .await
            .expect("subscribed");
        assert_eq!(first, Some(Change::Keys));
        let removed = Change::ServerRemoved {
            name: "gone".into(),
        };
        a.publish(removed.clone());
        let got = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv())
            .await
            .expect("delivered");
        assert_eq!(got, Some(removed));
        shutdown.cancel();
    }
}
