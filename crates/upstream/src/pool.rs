//! The connections to a plain `http://` Streamable HTTP server: HTTP/1.1
//! keep-alive connections that the task using them drives itself. A request
//! takes an idle connection (or opens one), writes the request, reads the
//! answer and its body while polling the connection in the same task, and
//! gives the connection back once the body has been read to its end. No task
//! per connection and none per request, so a call's upstream hop costs no
//! wake-up between tasks (reqwest's pool spends one task per request to put
//! a connection back, and the connection's own task in between).
//!
//! An idle connection is polled by nobody: one the server closed meanwhile
//! is found closed when it is next taken, and dropped. A request that never
//! went out on a reused connection is sent again on another one; one that did
//! is not (it may not be safe to repeat). A body dropped before its end
//! closes its connection, as with any HTTP/1.1 client.
//!
//! Only for `http://` URLs and only when no proxy is configured in the
//! environment; everything else (TLS, proxies, redirects) stays with reqwest.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1;
use reqwest::header::{HOST, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};

use mcpgate_proto::locks::lock;

type Body = Full<Bytes>;
type Io = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

/// Most idle connections kept per server (a burst of concurrent calls
/// leaves one per call; those then idle past the timeout are closed).
const MAX_IDLE: usize = 256;

/// A failed exchange, from reqwest or the pool: whether it was a timeout,
/// and what happened with its causes (never the URL, which may carry
/// secrets).
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) timeout: bool,
    pub(crate) detail: String,
}

impl Fail {
    /// `e` and its causes, one after another.
    pub(crate) fn from_error(e: &(dyn std::error::Error + 'static)) -> Fail {
        let mut detail = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        Fail {
            timeout: false,
            detail,
        }
    }
}

impl From<hyper::Error> for Fail {
    fn from(e: hyper::Error) -> Fail {
        Fail::from_error(&e)
    }
}

struct Conn {
    sender: http1::SendRequest<Body>,
    driver: Pin<Box<http1::Connection<Io, Body>>>,
    /// The driver has finished: the connection is closed.
    closed: bool,
    idle_since: Instant,
}

impl Conn {
    /// Moves the connection along (reads, writes, state changes); `true`
    /// once it has closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && self.driver.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }

    /// Ready for a request (driving it meanwhile); `false` when it closed.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            if self.drive(cx) {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }
}

struct Shared {
    host: String,
    port: u16,
    authority: HeaderValue,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl Shared {
    /// The most recently used idle connection that has not been idle too long.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        while let Some(c) = idle.pop() {
            if c.idle_since.elapsed() < self.idle_timeout {
                return Some(c);
            }
        }
        None
    }

    fn give_back(&self, mut c: Conn) {
        if c.closed {
            return;
        }
        c.idle_since = Instant::now();
        let mut idle = lock(&self.idle);
        // The oldest are at the bottom, which `checkout` reaches last:
        // close those idle too long here, so they do not linger.
        while idle
            .first()
            .is_some_and(|old| old.idle_since.elapsed() >= self.idle_timeout)
        {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    async fn connect(&self) -> Result<Conn, Fail> {
        let open = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| {
                    let mut f = Fail::from_error(&e);
                    f.detail.insert_str(0, "cannot connect: ");
                    f
                })?;
            let _ = tcp.set_nodelay(true);
            let (sender, driver) = http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
            Ok(Conn {
                sender,
                driver: Box::pin(driver),
                closed: false,
                idle_since: Instant::now(),
            })
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(r) => r,
            Err(_) => Err(Fail {
                timeout: true,
                detail: "timed out connecting".into(),
            }),
        }
    }
}

/// The connections to one `http://` server.
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

/// Whether the environment names a proxy that reqwest would use for
/// `http://` URLs; such requests stay with reqwest.
fn proxied() -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

impl Pool {
    /// A pool for `url`, or `None` when it is not plain HTTP (or a proxy
    /// is configured), which reqwest then serves.
    pub(crate) fn for_url(
        url: &Url,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<Pool> {
        if url.scheme() != "http" || proxied() {
            return None;
        }
        let port = url.port_or_known_default()?;
        // `host_str` keeps an IPv6 address's brackets; the socket wants it bare.
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str()?),
            None => url.host_str()?.to_owned(),
        };
        Some(Pool {
            shared: Arc::new(Shared {
                host,
                port,
                authority: HeaderValue::from_str(&authority).ok()?,
                connect_timeout,
                idle_timeout,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends `req` (its URI in origin form) and returns the answer's head,
    /// its body still to be read.
    pub(crate) async fn send(&self, mut req: hyper::Request<Body>) -> Result<Response, Fail> {
        req.headers_mut()
            .insert(HOST, self.shared.authority.clone());
        loop {
            let (mut conn, reused) = match self.shared.checkout() {
                Some(c) => (c, true),
                None => (self.shared.connect().await?, false),
            };
            if !conn.ready().await {
                if reused {
                    continue; // closed while idle: take another
                }
                return Err(Fail {
                    timeout: false,
                    detail: "the connection closed before the request was sent".into(),
                });
            }
            let mut sent = std::pin::pin!(conn.sender.try_send_request(req));
            let answer = poll_fn(|cx| {
                conn.drive(cx);
                sent.as_mut().poll(cx)
            })
            .await;
            match answer {
                Ok(resp) => {
                    let (head, body) = resp.into_parts();
                    return Ok(Response {
                        status: head.status,
                        headers: head.headers,
                        body,
                        conn: Some(conn),
                        shared: self.shared.clone(),
                    });
                }
                Err(mut e) => match e.take_message() {
                    // It never went out: another connection may take it.
                    Some(again) if reused => req = again,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }
}

/// An answer whose body is read through [`Response::chunk`], which drives
/// its connection; read to its end, the connection goes back to the pool.
pub(crate) struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    conn: Option<Conn>,
    shared: Arc<Shared>,
}

impl Response {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, Fail> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Fail>> {
        if let Some(c) = &mut self.conn {
            c.drive(cx);
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Ok(Some(data))),
                    _ => {} // trailers, or an empty piece
                },
                Poll::Ready(Some(Err(e))) => {
                    self.conn = None;
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Ready(None) => {
                    if let Some(c) = self.conn.take() {
                        self.shared.give_back(c);
                    }
                    return Poll::Ready(Ok(None));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        // An empty body (a 202, say) leaves nothing to read: the connection
        // is fit for the next request. Otherwise it closes with this drop.
        if self.body.is_end_stream()
            && let Some(c) = self.conn.take()
        {
            self.shared.give_back(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_gets_a_pool() {
        let d = Duration::from_secs(1);
        let p = |u: &str| Pool::for_url(&Url::parse(u).expect("url"), d, d);
        if proxied() {
            assert!(p("http://127.0.0.1:9/mcp").is_none());
            return;
        }
        assert!(p("https://127.0.0.1:9/mcp").is_none());
        let v4 = p("http://127.0.0.1:9/mcp").expect("http gets a pool");
        assert_eq!(v4.shared.host, "127.0.0.1");
        assert_eq!(v4.shared.authority, "127.0.0.1:9");
        let v6 = p("http://[::1]:8080/mcp").expect("http gets a pool");
        assert_eq!(v6.shared.host, "::1");
        assert_eq!(v6.shared.authority, "[::1]:8080");
        let named = p("http://example.internal/mcp").expect("http gets a pool");
        assert_eq!(named.shared.port, 80);
        assert_eq!(named.shared.authority, "example.internal");
    }

    /// A tiny HTTP/1.1 server: answers every request on a connection with
    /// `ok`, keeps connections open, and reports each one it accepts and
    /// each one the client closes.
    async fn ok_server() -> (
        Url,
        tokio::sync::mpsc::UnboundedReceiver<&'static str>,
        tokio::task::JoinHandle<()>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = Url::parse(&format!(
            "http://{}/mcp",
            listener.local_addr().expect("addr")
        ))
        .expect("url");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let _ = tx.send("accepted");
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => {
                                let _ = tx.send("closed");
                                return;
                            }
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        // Bodies here are empty: a request ends at its blank line.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if sock.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, rx, task)
    }

    async fn get_ok(pool: &Pool) {
        let req = hyper::Request::get("/mcp")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let mut resp = pool.send(req).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.chunk().await.expect("body"), Some(Bytes::from("ok")));
        assert_eq!(resp.chunk().await.expect("end"), None);
    }

    #[tokio::test]
    async fn connections_are_reused_and_those_idle_too_long_are_closed() {
        if proxied() {
            eprintln!("SKIPPED: a proxy is set in the environment, so no pool is made");
            return;
        }
        let (url, mut events, server) = ok_server().await;
        let idle_timeout = Duration::from_millis(1000);
        let pool = Pool::for_url(&url, Duration::from_secs(5), idle_timeout).expect("pool");
        for _ in 0..5 {
            get_ok(&pool).await;
        }
        assert_eq!(events.recv().await, Some("accepted"));
        // Two at once: a second connection (B, on top); both go back.
        tokio::join!(get_ok(&pool), get_ok(&pool));
        assert_eq!(
            events.recv().await,
            Some("accepted"),
            "one connection per request at once"
        );
        assert_eq!(lock(&pool.shared.idle).len(), 2);
        // B is taken and given back twice; by the second time the bottom
        // one (A) has idled past the timeout and is closed then.
        tokio::time::sleep(Duration::from_millis(500)).await;
        get_ok(&pool).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        get_ok(&pool).await;
        assert_eq!(events.recv().await, Some("closed"), "A is closed, B reused");
        assert_eq!(lock(&pool.shared.idle).len(), 1);
        // B idles past the timeout too: taking it closes it, and a new one opens.
        tokio::time::sleep(idle_timeout + Duration::from_millis(50)).await;
        get_ok(&pool).await;
        let mut seen = [
            events.recv().await.expect("event"),
            events.recv().await.expect("event"),
        ];
        seen.sort_unstable();
        assert_eq!(seen, ["accepted", "closed"]);
        assert_eq!(lock(&pool.shared.idle).len(), 1);
        server.abort();
    }
}
