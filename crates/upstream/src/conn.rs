//! One live MCP session with one server. It allocates our request ids (plain
//! increasing integers, so ids from different client sessions can never
//! collide upstream), matches replies to waiting requests, and routes what the
//! server sends on its own to the request it belongs to:
//! - progress notifications by progress token;
//! - on HTTP, anything on a request's own SSE stream to that request;
//! - on stdio, where the wire carries no such link, logs and server-to-client
//!   requests go to the request in flight (the most recent one when several
//!   are); servers that need exact attribution should use per-session isolation.
//!   The legacy HTTP+SSE transport carries no such link either and works the same.
//!
//! A `url` server without an explicit type is tried as Streamable HTTP first;
//! when its initialize POST is answered 400, 404 or 405 the same URL is tried
//! as a legacy HTTP+SSE server (the spec's backwards-compatibility rule).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_proto::{Kind, version};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::http::Http;
use crate::legacy_sse::LegacySse;
use crate::stdio::Stdio;
use crate::{Event, EventTx, Incoming, RelayTx, Reply, TransportSpec, UpstreamError, UpstreamSpec};

/// What the server told us in its initialize result.
#[derive(Debug, Clone)]
pub struct InitInfo {
    pub protocol_version: String,
    pub server_name: String,
    pub server_version: String,
    /// The server's `capabilities` object, raw.
    pub capabilities: Box<RawValue>,
    pub instructions: Option<String>,
    /// Round trip of the initialize request.
    pub latency: Duration,
}

impl InitInfo {
    /// Whether the server declared capability `name` (e.g. "tools").
    pub fn has_capability(&self, name: &str) -> bool {
        serde_json::from_str::<HashMap<String, &RawValue>>(self.capabilities.get())
            .map(|m| m.contains_key(name))
            .unwrap_or(false)
    }

    /// Whether the server declared `capabilities.<cap>.<flag> = true`.
    pub fn has_flag(&self, cap: &str, flag: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(self.capabilities.get())
            .ok()
            .and_then(|v| v.get(cap)?.get(flag)?.as_bool())
            .unwrap_or(false)
    }
}

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

pub(crate) enum Transport {
    Stdio(Stdio),
    Http(Box<Http>),
    LegacySse(Box<LegacySse>),
}

struct Pending {
    tx: oneshot::Sender<Result<Reply, UpstreamError>>,
    relay: Option<RelayTx>,
    seq: u64,
}

pub(crate) struct Inner {
    pub(crate) name: String,
    spec: UpstreamSpec,
    transport: OnceLock<Transport>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    progress_routes: Mutex<HashMap<String, RelayTx>>,
    server_request_routes: Mutex<HashMap<String, RelayTx>>,
    events: EventTx,
    alive: AtomicBool,
    closed_reason: Mutex<Option<String>>,
    closed: CancellationToken,
    init: Mutex<Option<InitInfo>>,
    /// Serialises re-initializations; never held by ordinary requests.
    reinit: tokio::sync::Mutex<()>,
    /// Bumped after each re-initialize; read without the lock, so the
    /// handshake's own requests never wait on the re-initialize they are part of.
    reinit_generation: AtomicU64,
    capabilities: Box<RawValue>,
    /// Round trip of the last answered request, in microseconds.
    last_rtt_us: AtomicU64,
}

/// A live session with one MCP server. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.inner.name)
            .finish()
    }
}

#[derive(Deserialize)]
struct InitResult<'a> {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(borrow)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "serverInfo", default)]
    server_info: Option<ServerInfo>,
    #[serde(default)]
    instructions: Option<String>,
}

#[derive(Deserialize, Default)]
struct ServerInfo {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

impl Connection {
    /// Starts the transport and runs the initialize handshake. `capabilities`
    /// is the client-capabilities object we declare to the server; `events`
    /// receives unattributed messages and the connection's end. A Streamable
    /// HTTP server whose initialize POST is answered 400, 404 or 405 is retried
    /// as a legacy HTTP+SSE server; [`Connection::transport_kind`] tells which
    /// one answered. The whole attempt is bounded by the connect timeout.
    pub async fn connect(
        spec: &UpstreamSpec,
        capabilities: Box<RawValue>,
        events: EventTx,
    ) -> Result<Connection, UpstreamError> {
        let deadline = tokio::time::Instant::now() + spec.connect_timeout;
        let (err, failed) = match Self::open(
            spec,
            &spec.transport,
            capabilities.clone(),
            events.clone(),
            deadline,
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
        match Self::open(spec, &legacy, capabilities, events, deadline).await {
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
                    "not a legacy HTTP+SSE server either: {legacy_err}"
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
    ) -> Result<Connection, (UpstreamError, Option<Connection>)> {
        let inner = Inner::new(spec, capabilities, events);
        let timeout = || UpstreamError::Timeout {
            server: spec.name.clone(),
            ms: spec.connect_timeout.as_millis(),
        };
        let start = async {
            Ok(match transport {
                TransportSpec::Stdio { .. } => Transport::Stdio(Stdio::spawn(&inner, spec)?),
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
                    LegacySse::connect(&inner, spec, url, headers).await?,
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
        if let Some(Transport::Http(h)) = conn.inner.transport.get() {
            h.start_listening(&conn.inner);
        }
        Ok(conn)
    }

    /// Learns which era the server speaks: over Streamable HTTP, `server/discover`
    /// first (2026-07-28, no session); anything short of a result offering
    /// 2026-07-28 (a 4xx, a JSON-RPC error, another version list) falls back to
    /// the `initialize` handshake. Network and credential failures end the attempt.
    async fn handshake(&self) -> Result<(), UpstreamError> {
        if let Some(Transport::Http(h)) = self.inner.transport.get() {
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
        #[derive(Deserialize)]
        struct Discover<'a> {
            #[serde(rename = "supportedVersions", default)]
            versions: Vec<String>,
            #[serde(borrow)]
            capabilities: Option<&'a RawValue>,
            #[serde(default)]
            instructions: Option<String>,
            #[serde(rename = "serverInfo", default)]
            server_info: Option<ServerInfo>,
            #[serde(rename = "_meta", default)]
            meta: Option<DiscoverMeta>,
        }
        #[derive(Deserialize)]
        struct DiscoverMeta {
            #[serde(rename = "io.modelcontextprotocol/serverInfo", default)]
            server_info: Option<ServerInfo>,
        }
        let started = Instant::now();
        let reply = match self
            .request("server/discover", None, RequestOpts::default())
            .await
        {
            Ok(r) => r,
            Err(UpstreamError::Http { status, .. }) if (400..500).contains(&status) => {
                tracing::debug!(server = %self.inner.name, "server/discover answered HTTP {status}: a session-based server");
                return Ok(false);
            }
            Err(UpstreamError::Protocol { detail, .. }) => {
                tracing::debug!(server = %self.inner.name, "server/discover: {detail}; trying initialize");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let Reply::Result(raw) = reply else {
            return Ok(false);
        };
        let Ok(d) = serde_json::from_str::<Discover<'_>>(raw.get()) else {
            return Ok(false);
        };
        if !d.versions.iter().any(|v| v == version::MODERN) {
            return Ok(false);
        }
        let info = d
            .meta
            .and_then(|m| m.server_info)
            .or(d.server_info)
            .unwrap_or_default();
        *lock(&self.inner.init) = Some(InitInfo {
            protocol_version: version::MODERN.to_owned(),
            server_name: info.name,
            server_version: info.version,
            capabilities: d
                .capabilities
                .map(ToOwned::to_owned)
                .unwrap_or_else(|| jsonrpc::to_raw(&serde_json::json!({}))),
            instructions: d.instructions,
            latency: started.elapsed(),
        });
        Ok(true)
    }

    /// Whether this connection speaks the stateless 2026-07-28 revision.
    pub fn is_modern(&self) -> bool {
        matches!(self.inner.transport.get(), Some(Transport::Http(h)) if h.is_modern())
    }

    async fn initialize(&self) -> Result<(), UpstreamError> {
        let params = format!(
            r#"{{"protocolVersion":"{}","capabilities":{},"clientInfo":{{"name":"mcpgate","version":"{}"}}}}"#,
            version::LATEST_LEGACY,
            self.inner.capabilities.get(),
            env!("CARGO_PKG_VERSION")
        );
        let params = RawValue::from_string(params).map_err(|e| self.protocol(e.to_string()))?;
        let started = Instant::now();
        let reply = self
            .request("initialize", Some(&params), RequestOpts::default())
            .await?;
        let raw = match reply {
            Reply::Result(r) => r,
            Reply::Error(e) => return Err(self.protocol(format!("initialize failed: {}", e.get()))),
        };
        let res: InitResult<'_> = serde_json::from_str(raw.get())
            .map_err(|e| self.protocol(format!("bad initialize result: {e}")))?;
        if !version::UPSTREAM_ACCEPTED.contains(&res.protocol_version.as_str()) {
            return Err(self.protocol(format!(
                "unsupported protocol version {:?}",
                res.protocol_version
            )));
        }
        let info = res.server_info.unwrap_or_default();
        let init = InitInfo {
            protocol_version: res.protocol_version.clone(),
            server_name: info.name,
            server_version: info.version,
            capabilities: res
                .capabilities
                .map(|c| c.to_owned())
                .unwrap_or_else(|| jsonrpc::to_raw(&serde_json::json!({}))),
            instructions: res.instructions,
            latency: started.elapsed(),
        };
        if let Some(Transport::Http(h)) = self.inner.transport.get() {
            h.set_protocol_version(&init.protocol_version);
        }
        *lock(&self.inner.init) = Some(init);
        self.notify("notifications/initialized", None).await
    }

    fn protocol(&self, detail: String) -> UpstreamError {
        UpstreamError::Protocol {
            server: self.inner.name.clone(),
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
        let inner = Inner::new(spec, capabilities, events);
        let _ = inner.transport.set(Transport::Http(Box::new(http)));
        *lock(&inner.init) = Some(InitInfo {
            protocol_version: protocol_version.to_owned(),
            server_name: String::new(),
            server_version: String::new(),
            capabilities: jsonrpc::to_raw(&serde_json::json!({})),
            instructions: None,
            latency: Duration::ZERO,
        });
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
        &self.inner.name
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
        self.inner.alive.load(Ordering::Acquire)
    }

    /// Resolves when the connection ends; the reason is in [`Connection::closed_reason`].
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    pub fn closed_reason(&self) -> Option<String> {
        lock(&self.inner.closed_reason).clone()
    }

    /// The OS process id of a stdio server.
    pub fn pid(&self) -> Option<u32> {
        match self.inner.transport.get() {
            Some(Transport::Stdio(s)) => s.pid(),
            _ => None,
        }
    }

    /// Sends a request and waits for its reply.
    pub async fn request(
        &self,
        method: &str,
        params: Option<&RawValue>,
        opts: RequestOpts,
    ) -> Result<Reply, UpstreamError> {
        let inner = &self.inner;
        if !self.is_alive() {
            return Err(inner.closed_error());
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&inner.pending).insert(
            id,
            Pending {
                tx,
                relay: opts.relay.clone(),
                seq: id,
            },
        );
        if let (Some(token), Some(relay)) = (&opts.progress_token, &opts.relay) {
            lock(&inner.progress_routes).insert(token.clone(), relay.clone());
        }
        let mut guard = PendingGuard {
            inner: inner.clone(),
            id,
            progress_token: opts.progress_token.clone(),
            armed: true,
        };
        let with_meta;
        let params = if self.is_modern() {
            with_meta = modern_params(params, &inner.capabilities)
                .map_err(|detail| self.protocol(detail))?;
            Some(&*with_meta)
        } else {
            params
        };
        let bytes = jsonrpc::request(&id.to_string(), method, params);
        if let (false, Some(Transport::Http(h))) = (opts.headers.is_empty(), inner.transport.get())
        {
            h.set_extra_headers(id, &opts.headers);
        }
        inner.send_request(id, bytes);

        let sent = Instant::now();
        let timeout = opts.timeout.unwrap_or(inner.spec.timeout);
        let cancel = opts.cancel.unwrap_or_default();
        let outcome = tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err(inner.closed_error())),
            _ = tokio::time::sleep(timeout) => Err(UpstreamError::Timeout { server: inner.name.clone(), ms: timeout.as_millis() }),
            _ = cancel.cancelled() => Err(UpstreamError::Cancelled { server: inner.name.clone() }),
        };
        // A reply disarms the guard; a timeout or cancel leaves it armed so that it
        // tells the server to stop.
        if outcome.is_ok() {
            guard.armed = false;
            let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            inner.last_rtt_us.store(us, Ordering::Relaxed);
        }
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
            return Err(self.inner.closed_error());
        }
        self.inner
            .send_oneway(jsonrpc::notification(method, params))
            .await
    }

    /// Answers a server-to-client request with the `id` it came with.
    pub async fn respond(&self, id: &RawValue, reply: Reply) -> Result<(), UpstreamError> {
        lock(&self.inner.server_request_routes).remove(id.get());
        let bytes = match &reply {
            Reply::Result(r) => jsonrpc::response_result(id, r),
            Reply::Error(e) => jsonrpc::response_error_raw(Some(id), e),
        };
        self.inner.send_oneway(bytes).await
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
        self.inner.mark_closed("closed by the gateway".into());
    }
}

/// Removes a request's bookkeeping however its wait ends, and when the wait was
/// abandoned (timeout, cancel, or the caller dropped the future) tells the
/// server with `notifications/cancelled`.
struct PendingGuard {
    inner: Arc<Inner>,
    id: u64,
    progress_token: Option<String>,
    armed: bool,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let was_pending = lock(&self.inner.pending).remove(&self.id).is_some();
        if let Some(t) = &self.progress_token {
            lock(&self.inner.progress_routes).remove(t);
        }
        // A 2026-07-28 request is cancelled by closing its stream.
        if self.armed
            && was_pending
            && let Some(Transport::Http(h)) = self.inner.transport.get()
            && h.is_modern()
        {
            h.abort(self.id);
            return;
        }
        if self.armed && was_pending && self.inner.alive.load(Ordering::Acquire) {
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

impl Inner {
    fn new(spec: &UpstreamSpec, capabilities: Box<RawValue>, events: EventTx) -> Arc<Inner> {
        Arc::new(Inner {
            name: spec.name.clone(),
            spec: spec.clone(),
            transport: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            progress_routes: Mutex::new(HashMap::new()),
            server_request_routes: Mutex::new(HashMap::new()),
            events,
            alive: AtomicBool::new(true),
            closed_reason: Mutex::new(None),
            closed: CancellationToken::new(),
            init: Mutex::new(None),
            reinit: tokio::sync::Mutex::new(()),
            reinit_generation: AtomicU64::new(0),
            capabilities,
            last_rtt_us: AtomicU64::new(0),
        })
    }

    pub(crate) fn closed_error(&self) -> UpstreamError {
        UpstreamError::Closed {
            server: self.name.clone(),
            reason: lock(&self.closed_reason)
                .clone()
                .unwrap_or_else(|| "connection closed".into()),
        }
    }

    fn send_request(self: &Arc<Self>, id: u64, bytes: Vec<u8>) {
        match self.transport.get() {
            Some(Transport::Stdio(s)) => {
                if s.send(bytes).is_err() {
                    self.fail(id, self.closed_error());
                }
            }
            Some(Transport::Http(h)) => h.spawn_request(self.clone(), id, bytes),
            Some(Transport::LegacySse(_)) => LegacySse::spawn_request(self.clone(), id, bytes),
            None => self.fail(id, self.closed_error()),
        }
    }

    pub(crate) async fn send_oneway(self: &Arc<Self>, bytes: Vec<u8>) -> Result<(), UpstreamError> {
        match self.transport.get() {
            Some(Transport::Stdio(s)) => s.send(bytes).map_err(|_| self.closed_error()),
            Some(Transport::Http(h)) => h.post_oneway(self, bytes).await,
            Some(Transport::LegacySse(l)) => l.post(bytes).await,
            None => Err(self.closed_error()),
        }
    }

    /// Completes a waiting request with an error.
    pub(crate) fn fail(&self, id: u64, err: UpstreamError) {
        if let Some(p) = lock(&self.pending).remove(&id) {
            let _ = p.tx.send(Err(err));
        }
    }

    pub(crate) fn transport_ref(&self) -> Option<&Transport> {
        self.transport.get()
    }

    pub(crate) fn is_alive_pub(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn closed_token(&self) -> CancellationToken {
        self.closed.clone()
    }

    pub(crate) fn is_pending(&self, id: u64) -> bool {
        lock(&self.pending).contains_key(&id)
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

    /// Re-runs the handshake after the server forgot our HTTP session. Concurrent
    /// callers that saw the same expiry share one re-initialize.
    pub(crate) async fn reinitialize(
        self: &Arc<Self>,
        seen_generation: u64,
    ) -> Result<(), UpstreamError> {
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
        tracing::info!(server = %self.name, "upstream session expired; re-initialized");
        Ok(())
    }

    pub(crate) fn reinit_generation(&self) -> u64 {
        self.reinit_generation.load(Ordering::Acquire)
    }

    /// Routes one message from the server. `hint` is the request whose HTTP
    /// response stream carried it.
    pub(crate) fn dispatch(self: &Arc<Self>, msg: Message, hint: Option<u64>) {
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
                let incoming = Incoming::Notification { method, params };
                match relay {
                    Some(r) => {
                        if let Err(back) = r.send(incoming) {
                            let _ = self.events.send(Event::Incoming(back.0));
                        }
                    }
                    None => {
                        let _ = self.events.send(Event::Incoming(incoming));
                    }
                }
            }
            Kind::Request => {
                let Some(id) = msg.id else { return };
                let method = msg.method.unwrap_or_default();
                if method == "ping" {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _ = this
                            .send_oneway(jsonrpc::response_result(
                                &id,
                                &jsonrpc::to_raw(&serde_json::json!({})),
                            ))
                            .await;
                    });
                    return;
                }
                let incoming = Incoming::Request {
                    id,
                    method,
                    params: msg.params,
                };
                match self.relay_for(hint, true) {
                    Some(r) => {
                        if let Incoming::Request { id, .. } = &incoming {
                            lock(&self.server_request_routes)
                                .insert(id.get().to_owned(), r.clone());
                        }
                        if let Err(back) = r.send(incoming) {
                            let _ = self.events.send(Event::Incoming(back.0));
                        }
                    }
                    None => {
                        let _ = self.events.send(Event::Incoming(incoming));
                    }
                }
            }
        }
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
            .values()
            .filter(|p| p.relay.is_some())
            .max_by_key(|p| p.seq)
            .and_then(|p| p.relay.clone())
    }
}

/// Locks a std mutex, recovering from poisoning (no invariant here spans a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request's params with the 2026-07-28 `_meta` keys added (what the
/// caller put in `_meta`, such as a progress token, is kept).
fn modern_params(
    params: Option<&RawValue>,
    capabilities: &RawValue,
) -> Result<Box<RawValue>, String> {
    use mcpgate_proto::modern::{
        META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION,
    };
    // Values stay raw text: the arguments are copied through, never re-read.
    let mut obj = match params {
        Some(p) => jsonrpc::raw_object(p).ok_or("params must be an object")?,
        None => jsonrpc::RawObject::new(),
    };
    let old_meta = obj.remove("_meta");
    let mut meta = match old_meta {
        Some(m) => jsonrpc::raw_object(m).ok_or("params._meta must be an object")?,
        None => jsonrpc::RawObject::new(),
    };
    let version = jsonrpc::raw_string(version::MODERN);
    let info = jsonrpc::to_raw(
        &serde_json::json!({"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}),
    );
    for (k, v) in [
        (META_PROTOCOL_VERSION, &*version),
        (META_CLIENT_CAPABILITIES, capabilities),
        (META_CLIENT_INFO, &*info),
    ] {
        meta.entry(k.to_owned()).or_insert(v);
    }
    let meta = jsonrpc::to_raw(&meta);
    obj.insert("_meta".into(), &meta);
    Ok(jsonrpc::to_raw(&obj))
}

/// The `subscriptions/listen` request that replaces the GET stream on a
/// 2026-07-28 server: every list change, tagged by the server.
pub(crate) fn listen_body(inner: &Inner) -> Result<Vec<u8>, String> {
    let params = serde_json::json!({
        "notifications": {
            "toolsListChanged": true,
            "promptsListChanged": true,
            "resourcesListChanged": true,
        }
    });
    let params = modern_params(Some(&jsonrpc::to_raw(&params)), &inner.capabilities)?;
    Ok(jsonrpc::request(
        "\"mcpgate-listen\"",
        "subscriptions/listen",
        Some(&params),
    ))
}
