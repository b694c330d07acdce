//! The socket side of serving, before any request is authenticated: the
//! accept loop, a cap on open connections per peer address, hyper's HTTP/1.1
//! server with a header read timeout, and a deadline on reading a request's
//! body. Without these a client that drips its headers or its body, or opens
//! connection after connection, holds the gateway's sockets and tasks forever
//! without ever showing a key. Graceful shutdown is here too: stop accepting,
//! let each connection finish the request it is serving, close idle ones.
//!
//! Only HTTP/1.x is served: MCP clients speak it (HTTP/2 needs TLS, which the
//! gateway does not terminate), and hyper's header timeout covers only it.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the edge allows a client before its request is even read.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// A request's head (request line and headers) must arrive within this,
    /// counted from when the connection starts waiting for it; the same
    /// bound closes a keep-alive connection left idle between requests.
    pub header_read_timeout: Duration,
    /// A request's body must arrive whole within this, counted from its head;
    /// a handler still reading it then answers 408 and the connection closes.
    pub body_read_timeout: Duration,
    /// Open connections from one IP address; a connection beyond it is
    /// closed as soon as it is accepted. Each legacy MCP session may hold a
    /// GET stream open besides its POSTs, so one busy host (or a reverse
    /// proxy, through which every client shares one address) needs many.
    pub max_connections_per_ip: usize,
}

impl Default for EdgeLimits {
    fn default() -> EdgeLimits {
        EdgeLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            // 64 refused the bench's 64 clients (one connection each, plus
            // the one that waits for the catalogue).
            max_connections_per_ip: 256,
        }
    }
}

/// Serves `router` on `listener` until `drain` is cancelled, then serves no
/// new connection, lets every open one finish its current request, and
/// returns when all have closed.
pub(super) async fn run(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    drain: CancellationToken,
) {
    let peers = Arc::new(Peers::default());
    let tasks = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !is_per_connection(&e) {
                        // Out of file descriptors, say: wait instead of spinning.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = drain.cancelled() => break,
                        }
                    }
                    continue;
                }
            },
            _ = drain.cancelled() => break,
        };
        let Some(slot) = peers.admit(peer, limits.max_connections_per_ip) else {
            tracing::debug!(%peer, "closing a connection beyond max_connections_per_ip");
            continue;
        };
        // SSE replies are several small writes; without TCP_NODELAY, Nagle plus the
        // client's delayed ACK can hold an event back for ~40 ms.
        let _ = tcp.set_nodelay(true);
        tasks.spawn(connection(
            tcp,
            Some(slot),
            router.clone(),
            http.clone(),
            limits.body_read_timeout,
            drain.clone(),
        ));
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

/// Serves `router` on a Unix socket (the gateway's socket for run
/// sandboxes) like [`run`], with the same timeouts; no per-address cap
/// (whoever can open the socket file is the gateway's own user).
pub(super) async fn run_unix(
    listener: tokio::net::UnixListener,
    router: Router,
    limits: EdgeLimits,
    drain: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("accepting on the Unix socket failed: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = drain.cancelled() => break,
                    }
                    continue;
                }
            },
            _ = drain.cancelled() => break,
        };
        tasks.spawn(connection(
            stream,
            None,
            router.clone(),
            http.clone(),
            limits.body_read_timeout,
            drain.clone(),
        ));
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

/// One connection's life: requests with deadline-bound bodies; on drain, the
/// request in progress finishes and the connection closes.
async fn connection<S>(
    tcp: S,
    _slot: Option<Slot>,
    router: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    body_timeout: Duration,
    drain: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let req = req.map(|body| Deadline::new(body, body_timeout));
        hyper::service::Service::call(&TowerToHyperService::new(router.clone()), req)
    });
    let mut conn = pin!(http.serve_connection(TokioIo::new(tcp), service));
    let outcome = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!("connection ended: {e}");
    }
}

/// Errors that concern one connection only; anything else (such as running
/// out of file descriptors) is worth a pause before accepting again.
fn is_per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Open connections per peer IP address.
#[derive(Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

/// One admitted connection; dropping it frees its place.
struct Slot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    fn admit(self: &Arc<Self>, peer: SocketAddr, max: usize) -> Option<Slot> {
        let ip = peer.ip().to_canonical();
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The error a request body gives once its deadline has passed; `guard`
/// turns it into 408.
#[derive(Debug)]
pub(crate) struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl StdError for BodyTimedOut {}

/// Whether reading a body failed because its deadline passed.
pub(crate) fn is_body_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        at = e.source();
    }
    false
}

/// A request body that fails with [`BodyTimedOut`] unless it has been read
/// whole by its deadline. The timer is only armed once the body is waited
/// for, so a body that arrived with its head costs nothing.
pub(crate) struct Deadline<B> {
    inner: B,
    at: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    pub(crate) fn new(inner: B, within: Duration) -> Deadline<B> {
        let now = Instant::now();
        Deadline {
            inner,
            at: now
                .checked_add(within)
                .unwrap_or(now + Duration::from_secs(86_400)),
            timer: None,
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let at = this.at;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_capped_per_address_and_slots_free_on_drop() {
        let peers = Arc::new(Peers::default());
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let a2: SocketAddr = "[::ffff:127.0.0.1]:2".parse().expect("addr");
        let b: SocketAddr = "127.0.0.2:1".parse().expect("addr");
        let first = peers.admit(a, 2).expect("first");
        let second = peers
            .admit(a2, 2)
            .expect("second, same address mapped to IPv6");
        assert!(peers.admit(a, 2).is_none(), "third from one address");
        let other = peers.admit(b, 2).expect("another address");
        drop(first);
        let again = peers.admit(a, 2).expect("a freed place");
        drop((second, other, again));
        assert!(peers.0.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_its_deadline_times_out() {
        let (mut tx, body) = http_body_channel();
        let mut d = pin!(Deadline::new(body, Duration::from_millis(100)));
        tx.send(Bytes::from_static(b"ab")).await;
        let got = std::future::poll_fn(|cx| d.as_mut().poll_frame(cx)).await;
        assert!(matches!(got, Some(Ok(_))));
        let got = std::future::poll_fn(|cx| d.as_mut().poll_frame(cx)).await;
        let err = got.expect("an error frame").expect_err("timed out");
        assert!(is_body_timeout(err.as_ref()));
        drop(tx);
    }

    /// A body fed by hand: what is sent arrives as data frames.
    fn http_body_channel() -> (Feed, axum::body::Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        (Feed(tx), axum::body::Body::from_stream(stream))
    }

    struct Feed(tokio::sync::mpsc::Sender<Bytes>);

    impl Feed {
        async fn send(&mut self, b: Bytes) {
            self.0.send(b).await.expect("body open");
        }
    }
}
