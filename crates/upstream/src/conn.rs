//! One live MCP session with one server: it owns the transport, runs the
//! handshake that learns the server's era, and carries each request from send
//! to reply, timeout or cancel. The transports report what the server sends
//! into `routes`, which matches replies and attributes the rest; this module
//! stands above them all.
//!
//! A `url` server without an explicit type is tried as Streamable HTTP first;
//! when its initialize POST is answered 400, 404 or 405 the same URL is tried
//! as a legacy HTTP+SSE server (the spec's backwards-compatibility rule). When
//! a Streamable HTTP server reports our session expired, the connection
//! re-initializes once (shared by every request that saw the same expiry) and
//! sends again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use mcpgate_proto::jsonrpc;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::error::UpstreamError;
use crate::handshake::{self, InitInfo};
use crate::http::Http;
use crate::http_client::Answer;
use crate::legacy_sse::LegacySse;
use crate::message::{EventTx, RelayTx, Reply};
use crate::modern::{listen_request, params_with_meta};
use crate::redact::Secrets;
use crate::routes::Routes;
use crate::spec::{TransportSpec, UpstreamSpec};
use crate::stdio::Stdio;
use mcpgate_proto::locks::lock;

/// Per-request options.
#[derive(Default)]
pub struct RequestOpts {
    /// Receives progress, logs and server-to-client requests tied to this request.
    pub relay: Option<RelayTx>,
    /// The progress token in `params._meta.progressToken`, as raw JSON, if any.
    pub progress_token: Option<String>,
    /// Cancelling it sends `notifications/cancelled` upstream and ends the wait.
    pub cancel: Option<CancellationToken>,
    /// Overrides the server's configured timeout.
    pub timeout: Option<Duration>,
    /// Extra HTTP headers for this request (2026-07-28 `Mcp-Param-*`); other transports ignore them.
    pub headers: Vec<(String, String)>,
}

/// The wire a connection speaks over; only this module knows all three.
enum Transport {
    Stdio(Stdio),
    Http(Box<Http>),
    LegacySse(Box<LegacySse>),
}

struct Inner {
    spec: UpstreamSpec,
    transport: OnceLock<Transport>,
    /// Requests in flight and where server messages go; the transports hold it too.
    routes: Arc<Routes>,
    init: Mutex<Option<InitInfo>>,
    /// Serialises re-initializations; never held by ordinary requests.
    reinit: tokio::sync::Mutex<()>,
    /// Bumped after each re-initialize; read without the lock, so the
    /// handshake's own requests never wait on the re-initialize they are part of.
    reinit_generation: AtomicU64,
    capabilities: Box<RawValue>,
    /// Round trip of the last answered request, in microseconds.
    last_rtt_us: AtomicU64,
    /// Never `server/discover`: the `initialize` handshake only, even with a
    /// server that also speaks 2026-07-28 (see [`Connection::connect_session`]).
    session_only: bool,
}

/// A live session with one MCP server. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.inner.spec.name)
            .finish()
    }
}

impl Connection {
    /// Starts the transport and runs the initialize handshake. `capabilities`
    /// is the client-capabilities object we declare to the server; `events`
    /// receives unattributed messages and the connection's end. A Streamable
    /// HTTP server whose initialize POST is answered 400, 404 or 405 is retried
    /// as a legacy HTTP+SSE server; [`Connection::transport_kind`] tells which
    /// one answered. The whole attempt is bounded by the connect timeout.
    /// The server's configured secrets are masked in the error.
    pub async fn connect(
        spec: &UpstreamSpec,
        capabilities: Box<RawValue>,
        events: EventTx,
    ) -> Result<Connection, UpstreamError> {
        Self::try_connect(spec, capabilities, events, false)
            .await
            .map_err(|e| Secrets::of(spec).error(e))
    }

    /// Like [`Connection::connect`], but never asks `server/discover`: the
    /// `initialize` handshake only (also when the session expires and is
    /// re-initialized), so a server that offers both eras is reached
    /// session-based, where it can ask the client for input mid-call and take
    /// `resources/subscribe`. A server that speaks only 2026-07-28 refuses it.
    /// (Discovery cannot tell: a `server/discover` result lists only 2026-era
    /// versions, even from a server that also serves 2025-era sessions.)
    pub async fn connect_session(
        spec: &UpstreamSpec,
        capabilities: Box<RawValue>,
        events: EventTx,
    ) -> Result<Connection, UpstreamError> {
        Self::try_connect(spec, capabilities, events, true)
            .await
            .map_err(|e| Secrets::of(spec).error(e))
    }

    async fn try_connect(
        spec: &UpstreamSpec,
        capabilities: Box<RawValue>,
        events: EventTx,
        session_only: bool,
    ) -> Result<Connection, UpstreamError> {
        let deadline = tokio::time::Instant::now() + spec.connect_timeout;
        let (err, failed) = match Self::open(
            spec,
            &spec.transport,
            capabilities.clone(),
            events.clone(),
            deadline,
            session_only,
        )
        .await
        {
            Ok(conn) => return Ok(conn),
            Err(f) => f,
        };
        let status = match (&spec.transport, &err) {
            (
                TransportSpec::StreamableHttp { .. },
                UpstreamError::Http {
                    status: s @ (400 | 404 | 405),
                    ..
                },
            ) => *s,
            _ => {
                if let Some(conn) = failed {
                    conn.close(Duration::from_millis(500)).await;
                }
                return Err(err);
            }
        };
        // Not closed: it holds no session and no listener, and closing it would
        // send `Event::Closed` into `events`, which the next attempt now owns.
        drop(failed);
        let TransportSpec::StreamableHttp { url, headers } = &spec.transport else {
            return Err(err);
        };
        let legacy = TransportSpec::LegacySse {
            url: url.clone(),
            headers: headers.clone(),
        };
        match Self::open(spec, &legacy, capabilities, events, deadline, session_only).await {
            Ok(conn) => {
                tracing::info!(
                    server = %spec.name,
                    transport = conn.transport_kind(),
                    "initialize over Streamable HTTP was answered HTTP {status}; \
                     using the legacy HTTP+SSE transport"
                );
                Ok(conn)
            }
            Err((legacy_err, failed)) => {
                if let Some(conn) = failed {
                    conn.close(Duration::from_millis(500)).await;
                }
                tracing::info!(
                    server = %spec.name,
                    "not a legacy HTTP+SSE server either: {}",
                    Secrets::of(spec).error(legacy_err.clone())
                );
                Err(match (err, legacy_err) {
                    (_, auth @ UpstreamError::AuthFailed { .. }) => auth,
                    (
                        UpstreamError::Http {
                            server,
                            status,
                            detail,
                        },
                        legacy_err,
                    ) => UpstreamError::Http {
                        server,
                        status,
                        detail: format!(
                            "{detail} (tried the legacy HTTP+SSE transport too: {legacy_err})"
                        ),
                    },
                    (err, _) => err,
                })
            }
        }
    }

    /// One connection attempt over `transport`. On failure, returns the
    /// connection too when the transport was started (the caller closes it).
    async fn open(
        spec: &UpstreamSpec,
        transport: &TransportSpec,
        capabilities: Box<RawValue>,
        events: EventTx,
        deadline: tokio::time::Instant,
        session_only: bool,
    ) -> Result<Connection, (UpstreamError, Option<Connection>)> {
        let inner = Inner::new(spec, capabilities, events, session_only);
        let timeout = || UpstreamError::Timeout {
            server: spec.name.clone(),
            ms: spec.connect_timeout.as_millis(),
        };
        let start = async {
            Ok(match transport {
                TransportSpec::Stdio { .. } => Transport::Stdio(Stdio::spawn(&inner.routes, spec)?),
                TransportSpec::StreamableHttp { url, headers } => {
                    Transport::Http(Box::new(Http::new(
                        &spec.name,
                        url,
                        headers,
                        spec.connect_timeout,
                        spec.idle_timeout,
                    )?))
                }
                TransportSpec::LegacySse { url, headers } => Transport::LegacySse(Box::new(
                    LegacySse::connect(&inner.routes, spec, url, headers).await?,
                )),
            })
        };
        let transport = match tokio::time::timeout_at(deadline, start).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err((e, None)),
            Err(_) => return Err((timeout(), None)),
        };
        let _ = inner.transport.set(transport);
        let conn = Connection { inner };
        match tokio::time::timeout_at(deadline, conn.handshake()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err((e, Some(conn))),
            Err(_) => return Err((timeout(), Some(conn))),
        }
        if let Some(Transport::Http(_)) = conn.inner.transport.get() {
            conn.inner.start_listening();
        }
        Ok(conn)
    }

    /// Learns which era the server speaks: over Streamable HTTP, `server/discover`
    /// first (2026-07-28, no session); anything short of a result offering
    /// 2026-07-28 (a 4xx, a JSON-RPC error, another version list) falls back to
    /// the `initialize` handshake. Network and credential failures end the attempt.
    /// A session-only connection goes straight to `initialize`.
    async fn handshake(&self) -> Result<(), UpstreamError> {
        if let (false, Some(Transport::Http(h))) =
            (self.inner.session_only, self.inner.transport.get())
        {
            h.set_modern(true);
            match self.discover().await {
                Ok(true) => return Ok(()),
                Ok(false) => h.set_modern(false),
                Err(e) => {
                    h.set_modern(false);
                    return Err(e);
                }
            }
        }
        self.initialize().await
    }

    /// `server/discover`; `Ok(true)` when the server speaks 2026-07-28 (then
    /// the connection is set up for it), `Ok(false)` when it does not.
    async fn discover(&self) -> Result<bool, UpstreamError> {
        let started = Instant::now();
        let reply = match self
            .request("server/discover", None, RequestOpts::default())
            .await
        {
            Ok(r) => r,
            Err(UpstreamError::Http { status, .. }) if (400..500).contains(&status) => {
                tracing::debug!(server = %self.inner.spec.name, "server/discover answered HTTP {status}: a session-based server");
                return Ok(false);
            }
            Err(UpstreamError::Protocol { detail, .. }) => {
                tracing::debug!(server = %self.inner.spec.name, "server/discover: {detail}; trying initialize");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let latency = started.elapsed();
        let Reply::Result(raw) = reply else {
            return Ok(false);
        };
        let Some(init) = handshake::from_discover(&raw, latency) else {
            return Ok(false);
        };
        *lock(&self.inner.init) = Some(init);
        Ok(true)
    }

    /// Whether this connection speaks the stateless 2026-07-28 revision.
    pub fn is_modern(&self) -> bool {
        matches!(self.inner.transport.get(), Some(Transport::Http(h)) if h.is_modern())
    }

    async fn initialize(&self) -> Result<(), UpstreamError> {
        let params =
            handshake::initialize_params(&self.inner.capabilities).map_err(|e| self.protocol(e))?;
        let started = Instant::now();
        let reply = self
            .request("initialize", Some(&params), RequestOpts::default())
            .await?;
        let latency = started.elapsed();
        let raw = match reply {
            Reply::Result(r) => r,
            Reply::Error(e) => return Err(self.protocol(format!("initialize failed: {}", e.get()))),
        };
        let init = handshake::from_initialize(&raw, latency).map_err(|e| self.protocol(e))?;
        if let Some(Transport::Http(h)) = self.inner.transport.get() {
            h.set_protocol_version(&init.protocol_version);
        }
        *lock(&self.inner.init) = Some(init);
        self.notify("notifications/initialized", None).await
    }

    fn protocol(&self, detail: String) -> UpstreamError {
        UpstreamError::Protocol {
            server: self.inner.spec.name.clone(),
            detail,
        }
    }

    /// Reattaches to a Streamable HTTP session an earlier process saved, with no
    /// initialize. If the server has forgotten it, the first request's `404`
    /// re-initializes transparently (see [`Connection::session_id`] for the new one).
    pub fn resume(
        spec: &UpstreamSpec,
        capabilities: Box<RawValue>,
        events: EventTx,
        session_id: &str,
        protocol_version: &str,
    ) -> Result<Connection, UpstreamError> {
        let TransportSpec::StreamableHttp { url, headers } = &spec.transport else {
            return Err(UpstreamError::Protocol {
                server: spec.name.clone(),
                detail: "only Streamable HTTP sessions can be resumed".into(),
            });
        };
        let http = Http::new(
            &spec.name,
            url,
            headers,
            spec.connect_timeout,
            spec.idle_timeout,
        )?;
        http.set_session(session_id);
        http.set_protocol_version(protocol_version);
        let inner = Inner::new(spec, capabilities, events, false);
        let _ = inner.transport.set(Transport::Http(Box::new(http)));
        *lock(&inner.init) = Some(InitInfo::resumed(protocol_version));
        Ok(Connection { inner })
    }

    /// The Streamable HTTP session id the server gave us, if any (stateless servers give none).
    pub fn session_id(&self) -> Option<String> {
        match self.inner.transport.get() {
            Some(Transport::Http(h)) => h.session_id(),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// The configured spec (for a `url` server, the one given, whichever
    /// transport answered).
    pub fn spec(&self) -> &UpstreamSpec {
        &self.inner.spec
    }

    /// The transport actually in use, named like [`TransportSpec::kind`]:
    /// `"stdio"`, `"http"`, or `"sse"` (also when detected for a `url` server).
    pub fn transport_kind(&self) -> &'static str {
        match self.inner.transport.get() {
            Some(Transport::Stdio(_)) => "stdio",
            Some(Transport::Http(_)) => "http",
            Some(Transport::LegacySse(_)) => "sse",
            None => self.inner.spec.transport.kind(),
        }
    }

    /// The initialize result (present once connected).
    pub fn init_info(&self) -> Option<InitInfo> {
        lock(&self.inner.init).clone()
    }

    /// Round trip of the last answered request.
    pub fn last_rtt(&self) -> Option<Duration> {
        match self.inner.last_rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn is_alive(&self) -> bool {
        self.inner.routes.is_alive()
    }

    /// Resolves when the connection ends; the reason is in [`Connection::closed_reason`].
    pub async fn closed(&self) {
        self.inner.routes.closed_token().cancelled().await
    }

    pub fn closed_reason(&self) -> Option<String> {
        self.inner.routes.closed_reason()
    }

    /// The OS process id of a stdio server.
    pub fn pid(&self) -> Option<u32> {
        match self.inner.transport.get() {
            Some(Transport::Stdio(s)) => s.pid(),
            _ => None,
        }
    }

    /// Sends a request and waits for its reply. The server's configured
    /// secrets are masked in an error, and in an error reply's text.
    pub async fn request(
        &self,
        method: &str,
        params: Option<&RawValue>,
        opts: RequestOpts,
    ) -> Result<Reply, UpstreamError> {
        let secrets = self.inner.routes.secrets();
        self.request_unmasked(method, params, opts)
            .await
            .map(|r| secrets.reply(r))
            .map_err(|e| secrets.error(e))
    }

    async fn request_unmasked(
        &self,
        method: &str,
        params: Option<&RawValue>,
        opts: RequestOpts,
    ) -> Result<Reply, UpstreamError> {
        let inner = &self.inner;
        if !self.is_alive() {
            return Err(inner.routes.closed_error());
        }
        let (id, rx) = inner
            .routes
            .open(opts.relay, opts.progress_token.as_deref());
        let mut guard = PendingGuard {
            inner: inner.clone(),
            id,
            progress_token: opts.progress_token,
            armed: true,
        };
        let with_meta;
        let params = if self.is_modern() {
            with_meta = params_with_meta(params, &inner.capabilities)
                .map_err(|detail| self.protocol(detail))?;
            Some(&*with_meta)
        } else {
            params
        };
        let bytes = jsonrpc::request(&id.to_string(), method, params);
        // Over Streamable HTTP the exchange (POST, read the answer) runs right
        // here, in the caller's task: no task of its own, no wake-up between
        // tasks when the reply arrives.
        let mut exchange = inner.send_request(id, bytes, opts.headers);

        let sent = Instant::now();
        let timeout = opts.timeout.unwrap_or(inner.spec.timeout);
        let cancel = opts.cancel.unwrap_or_default();
        let sleep = tokio::time::sleep(timeout);
        tokio::pin!(rx, sleep);
        let outcome = loop {
            tokio::select! {
                biased;
                r = &mut rx => break r.unwrap_or_else(|_| Err(inner.routes.closed_error())),
                () = drive(&mut exchange), if exchange.is_some() => {
                    // Done: its outcome is in `routes` (the reply, or the error that ends the request).
                    exchange = None;
                }
                _ = &mut sleep => break Err(UpstreamError::Timeout { server: inner.spec.name.clone(), ms: timeout.as_millis() }),
                _ = cancel.cancelled() => break Err(UpstreamError::Cancelled { server: inner.spec.name.clone() }),
            }
        };
        // A reply disarms the guard; a timeout or cancel leaves it armed so that it
        // tells the server to stop (on a 2026-07-28 server, dropping the
        // exchange below closes its stream, which is how that era cancels).
        if outcome.is_ok() {
            guard.armed = false;
            let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            inner.last_rtt_us.store(us, Ordering::Relaxed);
            // What is left of the answer (the end of its stream) is read in the
            // background, so that its connection goes back to the pool.
            if let Some(rest) = exchange.take() {
                tokio::spawn(rest);
            }
        }
        drop(exchange);
        drop(guard);
        outcome
    }

    /// Sends a notification.
    pub async fn notify(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<(), UpstreamError> {
        if !self.is_alive() {
            return Err(self.inner.routes.closed_error());
        }
        self.inner
            .send_oneway(jsonrpc::notification(method, params))
            .await
            .map_err(|e| self.inner.routes.secrets().error(e))
    }

    /// Answers a server-to-client request with the `id` it came with.
    pub async fn respond(&self, id: &RawValue, reply: Reply) -> Result<(), UpstreamError> {
        self.inner.routes.answered(id.get());
        let bytes = match &reply {
            Reply::Result(r) => jsonrpc::response_result(id, r),
            Reply::Error(e) => jsonrpc::response_error_raw(Some(id), e),
        };
        self.inner
            .send_oneway(bytes)
            .await
            .map_err(|e| self.inner.routes.secrets().error(e))
    }

    /// Ends the session: SIGTERM then SIGKILL after `grace` for a child, DELETE
    /// for Streamable HTTP, dropping the SSE stream for legacy HTTP+SSE.
    pub async fn close(&self, grace: Duration) {
        match self.inner.transport.get() {
            Some(Transport::Stdio(s)) => s.terminate(grace).await,
            Some(Transport::Http(h)) => h.delete_session().await,
            // Marking the connection closed stops the stream reader, which drops the stream.
            Some(Transport::LegacySse(_)) | None => {}
        }
        self.inner
            .routes
            .mark_closed("closed by the gateway".into());
    }
}

/// Removes a request's bookkeeping however its wait ends, and when the wait was
/// abandoned (timeout, cancel, or the caller dropped the future) tells the
/// server with `notifications/cancelled`.
/// A request's HTTP exchange, driven by the task waiting for its reply.
type Exchange = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the exchange to its end (the caller polls it only while it is there).
async fn drive(exchange: &mut Option<Exchange>) {
    if let Some(e) = exchange.as_mut() {
        e.await;
    }
}

struct PendingGuard {
    inner: Arc<Inner>,
    id: u64,
    progress_token: Option<String>,
    armed: bool,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let was_pending = self
            .inner
            .routes
            .close(self.id, self.progress_token.as_deref());
        // A 2026-07-28 request is cancelled by closing its stream: the
        // waiter dropped its exchange, which did.
        if self.armed
            && was_pending
            && let Some(Transport::Http(h)) = self.inner.transport.get()
            && h.is_modern()
        {
            return;
        }
        if self.armed && was_pending && self.inner.routes.is_alive() {
            let params = format!(
                r#"{{"requestId":{},"reason":"cancelled by the gateway's client or timed out"}}"#,
                self.id
            );
            if let Ok(p) = RawValue::from_string(params) {
                let bytes = jsonrpc::notification("notifications/cancelled", Some(&p));
                let inner = self.inner.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = inner.send_oneway(bytes).await;
                    });
                }
            }
        }
    }
}

impl Inner {
    fn new(
        spec: &UpstreamSpec,
        capabilities: Box<RawValue>,
        events: EventTx,
        session_only: bool,
    ) -> Arc<Inner> {
        Arc::new_cyclic(|me: &Weak<Inner>| {
            // A server's `ping` is answered on the connection, in the background.
            let me = me.clone();
            let answer_ping = Box::new(move |bytes: Vec<u8>| {
                if let Some(inner) = me.upgrade() {
                    tokio::spawn(async move {
                        let _ = inner.send_oneway(bytes).await;
                    });
                }
            });
            Inner {
                spec: spec.clone(),
                transport: OnceLock::new(),
                routes: Arc::new(
                    Routes::new(&spec.name, events, answer_ping).with_secrets(Secrets::of(spec)),
                ),
                init: Mutex::new(None),
                reinit: tokio::sync::Mutex::new(()),
                reinit_generation: AtomicU64::new(0),
                capabilities,
                last_rtt_us: AtomicU64::new(0),
                session_only,
            }
        })
    }

    /// Sends request `id`; its reply, or the error that ends it, reaches the
    /// waiter through `routes`. `headers` go with it over Streamable HTTP,
    /// where the exchange is returned for the waiter to drive: dropping it
    /// before the reply closes the request's stream.
    fn send_request(
        self: &Arc<Self>,
        id: u64,
        bytes: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Option<Exchange> {
        match self.transport.get() {
            Some(Transport::Stdio(s)) => {
                if s.send(bytes).is_err() {
                    self.routes.fail(id, self.routes.closed_error());
                }
            }
            Some(Transport::Http(_)) => {
                let inner = self.clone();
                return Some(Box::pin(async move {
                    inner.http_exchange(id, bytes, headers).await;
                }));
            }
            Some(Transport::LegacySse(_)) => {
                // The reply arrives on the session's stream; only a failed POST ends it here.
                let inner = self.clone();
                tokio::spawn(async move {
                    let Some(Transport::LegacySse(l)) = inner.transport.get() else {
                        inner.routes.fail(id, inner.routes.closed_error());
                        return;
                    };
                    if let Err(e) = l.post(bytes).await {
                        inner.routes.fail_delivery(id, e);
                    }
                });
            }
            None => self.routes.fail(id, self.routes.closed_error()),
        }
        None
    }

    /// Request `id` over Streamable HTTP: POST it and read its answer into `routes`.
    async fn http_exchange(
        self: Arc<Self>,
        id: u64,
        bytes: Vec<u8>,
        headers: Vec<(String, String)>,
    ) {
        let Some(Transport::Http(h)) = self.transport.get() else {
            return;
        };
        match self.post_http(h, bytes, &headers).await {
            Ok(Ok(resp)) => {
                if let Err(e) = h.read_reply(&self.routes, id, resp).await {
                    self.routes.fail(id, e);
                }
            }
            Ok(Err(e)) => self.routes.fail_delivery(id, e),
            Err(reinit_failed) => self.routes.fail(id, reinit_failed),
        }
    }

    /// POSTs `bytes` over Streamable HTTP; when the server has forgotten our
    /// session, re-initializes and POSTs once more. The outer error is a failed
    /// re-initialize, the inner one the POST's own.
    async fn post_http(
        self: &Arc<Self>,
        h: &Http,
        bytes: Vec<u8>,
        headers: &[(String, String)],
    ) -> Result<Result<Answer, UpstreamError>, UpstreamError> {
        let generation = self.reinit_generation.load(Ordering::Acquire);
        // Shared, not copied: the body is sent again only after a re-initialize.
        let bytes = bytes::Bytes::from(bytes);
        match h.post(bytes.clone(), headers).await {
            Err(UpstreamError::SessionExpired { .. }) => {
                self.reinitialize(generation).await?;
                Ok(h.post(bytes, headers).await)
            }
            first => Ok(first),
        }
    }

    async fn send_oneway(self: &Arc<Self>, bytes: Vec<u8>) -> Result<(), UpstreamError> {
        match self.transport.get() {
            Some(Transport::Stdio(s)) => s.send(bytes).map_err(|_| self.routes.closed_error()),
            Some(Transport::Http(h)) => self.post_http(h, bytes, &[]).await?.map(drop),
            Some(Transport::LegacySse(l)) => l.post(bytes).await,
            None => Err(self.routes.closed_error()),
        }
    }

    /// Re-runs the handshake after the server forgot our HTTP session. Concurrent
    /// callers that saw the same expiry share one re-initialize.
    async fn reinitialize(self: &Arc<Self>, seen_generation: u64) -> Result<(), UpstreamError> {
        let _serial = self.reinit.lock().await;
        if self.reinit_generation.load(Ordering::Acquire) != seen_generation {
            return Ok(()); // someone else already re-initialized
        }
        if let Some(Transport::Http(h)) = self.transport.get() {
            h.clear_session();
        }
        let conn = Connection {
            inner: self.clone(),
        };
        Box::pin(conn.handshake()).await?;
        self.reinit_generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(server = %self.spec.name, "upstream session expired; re-initialized");
        Ok(())
    }

    /// Keeps the Streamable HTTP stream of the server's own messages open for
    /// the connection's life, reopening it when it ends (with backoff while it
    /// fails); a session the server has forgotten is re-initialized. Holds the
    /// connection only while opening, so dropping the connection stops it.
    fn start_listening(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let Some(inner) = weak.upgrade() else { return };
                match inner.open_listener().await {
                    Ok(None) => return,
                    Ok(Some(resp)) => {
                        backoff = Duration::from_millis(500);
                        let routes = Arc::downgrade(&inner.routes);
                        drop(inner);
                        if !Http::read_listener(resp, routes).await {
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                    }
                    Err(UpstreamError::SessionExpired { .. }) => {
                        let generation = inner.reinit_generation.load(Ordering::Acquire);
                        let _ = inner.reinitialize(generation).await;
                        drop(inner);
                        tokio::time::sleep(backoff).await;
                    }
                    Err(_) => {
                        drop(inner);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }

    /// Opens the listening stream; `Ok(None)` when there is none to keep open
    /// (the connection ended, or the server offers none).
    async fn open_listener(&self) -> Result<Option<Answer>, UpstreamError> {
        if !self.routes.is_alive() {
            return Ok(None);
        }
        let Some(Transport::Http(h)) = self.transport.get() else {
            return Ok(None);
        };
        // A 2026-07-28 server has no GET stream: list changes come
        // on a `subscriptions/listen` stream instead.
        let listen = if h.is_modern() {
            let Ok(body) = listen_request(&self.capabilities) else {
                return Ok(None);
            };
            Some(body)
        } else {
            None
        };
        h.open_listener(listen).await
    }
}
