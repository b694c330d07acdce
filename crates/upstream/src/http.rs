//! A Streamable HTTP server. Each request is one POST with
//! `Accept: application/json, text/event-stream`; the answer is either one JSON
//! message or an SSE stream whose messages are dispatched with the request as
//! their hint. A stream that ends before the reply is resumed with GET and
//! `Last-Event-ID` (the 2025-11-25 polling pattern). A `404` on a session we
//! hold means the server forgot it: re-initialize and retry once. After
//! initialize a GET stream carries the server's own notifications.
//! Configured header values are secrets: they go on the wire and nowhere else.
//! The client setup and error mapping at the end of this file are shared with
//! the legacy HTTP+SSE transport (`legacy_sse`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use mcpgate_proto::{Message, jsonrpc, modern, sse, version};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};

use crate::UpstreamError;
use crate::conn::Inner;

/// Largest JSON response body we read.
const MAX_BODY: usize = 64 << 20;
/// How many times a POST stream that ended early is resumed.
const MAX_RESUMES: u32 = 10;

pub(crate) struct Http {
    name: String,
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    session_id: RwLock<Option<HeaderValue>>,
    protocol_version: RwLock<Option<HeaderValue>>,
    /// Speaking 2026-07-28: no session, routing headers on every POST, and a
    /// request is cancelled by dropping its response stream.
    modern: std::sync::atomic::AtomicBool,
    /// Modern requests in flight, so a cancel can drop their streams.
    inflight: std::sync::Mutex<std::collections::HashMap<u64, tokio::task::AbortHandle>>,
    /// Per-request extra headers, taken when the request is sent.
    extra: std::sync::Mutex<std::collections::HashMap<u64, HeaderMap>>,
}

impl Http {
    pub(crate) fn new(
        name: &str,
        url: &str,
        headers: &[(String, String)],
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Http, UpstreamError> {
        Ok(Http {
            name: name.to_owned(),
            client: build_client(name, connect_timeout, idle_timeout)?,
            url: parse_url(name, url)?,
            headers: header_map(name, headers)?,
            session_id: RwLock::new(None),
            protocol_version: RwLock::new(None),
            modern: std::sync::atomic::AtomicBool::new(false),
            inflight: std::sync::Mutex::new(std::collections::HashMap::new()),
            extra: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Headers to add to request `id` (names or values that are not valid HTTP are dropped).
    pub(crate) fn set_extra_headers(&self, id: u64, headers: &[(String, String)]) {
        let map: HeaderMap = headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        crate::conn::lock(&self.extra).insert(id, map);
    }

    /// Switches to (or back from) the 2026-07-28 wire.
    pub(crate) fn set_modern(&self, on: bool) {
        self.modern.store(on, std::sync::atomic::Ordering::Release);
        if on {
            self.set_protocol_version(version::MODERN);
        } else {
            *write(&self.protocol_version) = None;
        }
    }

    pub(crate) fn is_modern(&self) -> bool {
        self.modern.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Cancels a modern request by dropping its response (closing its stream).
    pub(crate) fn abort(&self, id: u64) -> bool {
        match crate::conn::lock(&self.inflight).remove(&id) {
            Some(h) => {
                h.abort();
                true
            }
            None => false,
        }
    }

    /// `Mcp-Method` and, where the method has one, `Mcp-Name` for a modern POST.
    fn routing_headers(&self, body: &[u8]) -> Vec<(&'static str, HeaderValue)> {
        let Ok(msg) = Message::parse(body) else {
            return Vec::new();
        };
        let Some(method) = msg.method.as_deref() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(2);
        if let Ok(v) = HeaderValue::from_str(method) {
            out.push((modern::HEADER_METHOD, v));
        }
        #[derive(serde::Deserialize)]
        struct Named {
            name: Option<String>,
            uri: Option<String>,
        }
        let named = modern::name_param(method)
            .and_then(|_| serde_json::from_str::<Named>(msg.params.as_deref()?.get()).ok());
        if let Some(n) = named.and_then(|n| n.name.or(n.uri))
            && let Ok(v) = HeaderValue::from_str(&modern::encode_header_value(&n))
        {
            out.push((modern::HEADER_NAME, v));
        }
        out
    }

    pub(crate) fn set_protocol_version(&self, v: &str) {
        if let Ok(h) = HeaderValue::from_str(v) {
            *write(&self.protocol_version) = Some(h);
        }
    }

    pub(crate) fn set_session(&self, id: &str) {
        if let Ok(h) = HeaderValue::from_str(id) {
            *write(&self.session_id) = Some(h);
        }
    }

    pub(crate) fn session_id(&self) -> Option<String> {
        read(&self.session_id)
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    }

    pub(crate) fn clear_session(&self) {
        *write(&self.session_id) = None;
        *write(&self.protocol_version) = None;
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut b = self
            .client
            .request(method, self.url.clone())
            .headers(self.headers.clone());
        if let Some(s) = read(&self.session_id).clone() {
            b = b.header(version::HEADER_SESSION_ID, s);
        }
        if let Some(v) = read(&self.protocol_version).clone() {
            b = b.header(version::HEADER_PROTOCOL_VERSION, v);
        }
        b
    }

    /// POSTs one message and classifies the HTTP outcome.
    async fn post(&self, body: Vec<u8>) -> Result<reqwest::Response, UpstreamError> {
        self.post_with(body, HeaderMap::new()).await
    }

    async fn post_with(
        &self,
        body: Vec<u8>,
        extra: HeaderMap,
    ) -> Result<reqwest::Response, UpstreamError> {
        let had_session = read(&self.session_id).is_some();
        let mut req = self
            .request(reqwest::Method::POST)
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json");
        if self.is_modern() {
            for (k, v) in self.routing_headers(&body) {
                req = req.header(k, v);
            }
        }
        if !extra.is_empty() {
            req = req.headers(extra);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        if let Some(sid) = resp.headers().get(version::HEADER_SESSION_ID) {
            let mut cur = write(&self.session_id);
            if cur.is_none() {
                *cur = Some(sid.clone());
            }
        }
        self.check_status(resp, had_session).await
    }

    async fn check_status(
        &self,
        resp: reqwest::Response,
        had_session: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        // A 2026-07-28 server answers some JSON-RPC errors with a 4xx status
        // (header mismatch, missing capability, unknown method): read the body.
        if self.is_modern()
            && status.is_client_error()
            && !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            && content_type(&resp).starts_with("application/json")
        {
            return Ok(resp);
        }
        if status == StatusCode::NOT_FOUND && had_session {
            return Err(UpstreamError::SessionExpired {
                server: self.name.clone(),
            });
        }
        Err(status_error(&self.name, resp).await)
    }

    fn transport_error(&self, e: reqwest::Error) -> UpstreamError {
        transport_error(&self.name, e)
    }

    /// Sends request `id` in the background; its reply reaches the waiter
    /// through `dispatch`, or an error through `fail`.
    pub(crate) fn spawn_request(&self, inner: Arc<Inner>, id: u64, bytes: Vec<u8>) {
        let modern = self.is_modern();
        let weak = Arc::downgrade(&inner);
        let task = tokio::spawn(async move {
            let _done = modern.then(|| Finished { inner: weak, id });
            let Some(crate::conn::Transport::Http(h)) = inner_transport(&inner) else {
                return;
            };
            let mut retried = false;
            let extra = crate::conn::lock(&h.extra).remove(&id).unwrap_or_default();
            loop {
                let generation = inner.reinit_generation();
                match h.post_with(bytes.clone(), extra.clone()).await {
                    Ok(resp) => {
                        if let Err(e) = h.read_reply(&inner, id, resp).await {
                            inner.fail(id, e);
                        }
                        return;
                    }
                    Err(UpstreamError::SessionExpired { .. }) if !retried => {
                        retried = true;
                        if let Err(e) = inner.reinitialize(generation).await {
                            inner.fail(id, e);
                            return;
                        }
                    }
                    Err(e) => {
                        let unreachable = matches!(e, UpstreamError::Unreachable { .. });
                        inner.fail(id, e.clone());
                        if unreachable {
                            // The supervisor reconnects (and re-initializes) with backoff.
                            inner.mark_closed(e.to_string());
                        }
                        return;
                    }
                }
            }
        });
        if modern {
            crate::conn::lock(&self.inflight).insert(id, task.abort_handle());
        }
    }

    /// Reads a POST's answer: one JSON message, or an SSE stream (resumed if cut).
    async fn read_reply(
        &self,
        inner: &Arc<Inner>,
        id: u64,
        mut resp: reqwest::Response,
    ) -> Result<(), UpstreamError> {
        if resp.status() == StatusCode::ACCEPTED {
            return Err(UpstreamError::Protocol {
                server: self.name.clone(),
                detail: "answered a request with 202 and no body".into(),
            });
        }
        let ctype = content_type(&resp);
        if ctype.starts_with("application/json") {
            let body = read_limited(&mut resp, MAX_BODY)
                .await
                .map_err(|e| self.transport_error(e))?;
            let msg = Message::parse(&body).map_err(|e| UpstreamError::Protocol {
                server: self.name.clone(),
                detail: e.message(),
            })?;
            if !resp.status().is_success() {
                // The JSON-RPC error a modern server sent with its 4xx is the
                // reply to this request, whatever id (or none) it carries.
                let Some(err) = msg.error else {
                    return Err(UpstreamError::Http {
                        server: self.name.clone(),
                        status: resp.status().as_u16(),
                        detail: String::from_utf8_lossy(&body).chars().take(300).collect(),
                    });
                };
                let ours = jsonrpc::response_error_raw(Some(&*jsonrpc::raw_u64(id)), &err);
                if let Ok(m) = Message::parse(&ours) {
                    inner.dispatch(m, Some(id));
                }
                return Ok(());
            }
            inner.dispatch(msg, Some(id));
            return Ok(());
        }
        if !ctype.starts_with("text/event-stream") {
            return Err(UpstreamError::Protocol {
                server: self.name.clone(),
                detail: format!("unexpected Content-Type {ctype:?}"),
            });
        }
        let mut decoder = sse::Decoder::new();
        let mut retry = Duration::from_millis(500);
        let mut resumes = 0;
        loop {
            // A cut connection is treated like a stream that ended: resume below
            // with Last-Event-ID when the server gave event ids (transport spec).
            let mut cut: Option<UpstreamError> = None;
            loop {
                let chunk = match resp.chunk().await {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        cut = Some(self.transport_error(e));
                        break;
                    }
                };
                for ev in decoder.feed(&chunk) {
                    if let Some(r) = ev.retry {
                        retry = Duration::from_millis(r.min(30_000));
                    }
                    self.dispatch_event(inner, &ev, Some(id));
                }
                if !inner.is_pending(id) {
                    return Ok(());
                }
            }
            if !inner.is_pending(id) {
                return Ok(());
            }
            // The stream ended before our reply: resume it where it stopped.
            let Some(last) = decoder.last_event_id().map(str::to_owned) else {
                if let Some(e) = cut {
                    return Err(e);
                }
                return Err(UpstreamError::Protocol {
                    server: self.name.clone(),
                    detail: "SSE stream ended before the response, with no event id to resume from"
                        .into(),
                });
            };
            resumes += 1;
            if resumes > MAX_RESUMES {
                return Err(UpstreamError::Protocol {
                    server: self.name.clone(),
                    detail: "SSE stream kept ending before the response".into(),
                });
            }
            tokio::time::sleep(retry).await;
            let r = self
                .request(reqwest::Method::GET)
                .header(ACCEPT, "text/event-stream")
                .header(version::HEADER_LAST_EVENT_ID, last)
                .send()
                .await
                .map_err(|e| self.transport_error(e))?;
            resp = self.check_status(r, true).await?;
        }
    }

    fn dispatch_event(&self, inner: &Arc<Inner>, ev: &sse::Event, hint: Option<u64>) {
        if ev.data.trim().is_empty() {
            return; // priming event
        }
        match Message::parse(ev.data.as_bytes()) {
            Ok(msg) => inner.dispatch(msg, hint),
            Err(e) => {
                tracing::warn!(server = %self.name, "bad SSE message ignored: {}", e.message())
            }
        }
    }

    /// POSTs a notification or a response; expects 202 (any 2xx is accepted).
    pub(crate) async fn post_oneway(
        &self,
        inner: &Arc<Inner>,
        bytes: Vec<u8>,
    ) -> Result<(), UpstreamError> {
        let generation = inner.reinit_generation();
        match self.post(bytes.clone()).await {
            Ok(_) => Ok(()),
            Err(UpstreamError::SessionExpired { .. }) => {
                inner.reinitialize(generation).await?;
                self.post(bytes).await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the GET stream for server-initiated messages and keeps it open.
    pub(crate) fn start_listening(&self, inner: &Arc<Inner>) {
        let weak = Arc::downgrade(inner);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let Some(inner) = weak.upgrade() else { return };
                if !inner.is_alive_pub() {
                    return;
                }
                let Some(crate::conn::Transport::Http(h)) = inner_transport(&inner) else {
                    return;
                };
                // A 2026-07-28 server has no GET stream: list changes come
                // on a `subscriptions/listen` stream instead.
                let resp = if h.is_modern() {
                    let Ok(body) = crate::conn::listen_body(&inner) else {
                        return;
                    };
                    h.request(reqwest::Method::POST)
                        .header(ACCEPT, "application/json, text/event-stream")
                        .header(CONTENT_TYPE, "application/json")
                        .header(modern::HEADER_METHOD, "subscriptions/listen")
                        .body(body)
                        .send()
                        .await
                } else {
                    h.request(reqwest::Method::GET)
                        .header(ACCEPT, "text/event-stream")
                        .send()
                        .await
                };
                let mut resp = match resp {
                    Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => return,
                    // A 2026-07-28 server without subscriptions.
                    Ok(r) if h.is_modern() && r.status().is_client_error() => return,
                    Ok(r)
                        if r.status().is_success()
                            && content_type(&r).starts_with("text/event-stream") =>
                    {
                        r
                    }
                    Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                        let generation = inner.reinit_generation();
                        let _ = inner.reinitialize(generation).await;
                        drop(inner);
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    _ => {
                        drop(inner);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                };
                backoff = Duration::from_millis(500);
                let mut decoder = sse::Decoder::new();
                let closed = inner.closed_token();
                drop(inner);
                loop {
                    let chunk = tokio::select! {
                        c = resp.chunk() => c,
                        _ = closed.cancelled() => return,
                    };
                    let Ok(Some(chunk)) = chunk else { break };
                    let Some(inner) = weak.upgrade() else { return };
                    for ev in decoder.feed(&chunk) {
                        h_dispatch(&inner, &ev);
                    }
                }
                tokio::time::sleep(backoff).await;
            }
        });
    }

    /// Ends our session on the server (DELETE), best effort.
    pub(crate) async fn delete_session(&self) {
        if read(&self.session_id).is_none() {
            return;
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.request(reqwest::Method::DELETE).send(),
        )
        .await;
    }
}

fn h_dispatch(inner: &Arc<Inner>, ev: &sse::Event) {
    if let Some(crate::conn::Transport::Http(h)) = inner_transport(inner) {
        h.dispatch_event(inner, ev, None);
    }
}

fn inner_transport(inner: &Arc<Inner>) -> Option<&crate::conn::Transport> {
    inner.transport_ref()
}

/// Parses a configured server URL.
pub(crate) fn parse_url(name: &str, url: &str) -> Result<reqwest::Url, UpstreamError> {
    reqwest::Url::parse(url).map_err(|e| UpstreamError::Protocol {
        server: name.to_owned(),
        detail: format!("bad url: {e}"),
    })
}

/// Builds the configured headers. Their values are marked sensitive: secrets
/// go on the wire and nowhere else (not into errors, not into logs).
pub(crate) fn header_map(
    name: &str,
    headers: &[(String, String)],
) -> Result<HeaderMap, UpstreamError> {
    let bad = |detail: String| UpstreamError::Protocol {
        server: name.to_owned(),
        detail,
    };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let key = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad(format!("bad header name {k:?}")))?;
        let mut val = HeaderValue::from_str(v).map_err(|_| {
            bad(format!(
                "header {k:?} has a value that is not valid in HTTP"
            ))
        })?;
        val.set_sensitive(true);
        map.append(key, val);
    }
    Ok(map)
}

/// The HTTP client both HTTP transports use.
pub(crate) fn build_client(
    name: &str,
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Result<reqwest::Client, UpstreamError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(idle_timeout)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| UpstreamError::Protocol {
            server: name.to_owned(),
            detail: format!("cannot build HTTP client: {e}"),
        })
}

/// A reqwest error and its causes, without the URL (which may carry secrets).
pub(crate) fn error_detail(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    detail
}

/// Classifies a failure to reach the server or to read its answer.
pub(crate) fn transport_error(name: &str, e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout {
            server: name.to_owned(),
            ms: 0,
        }
    } else {
        UpstreamError::Unreachable {
            server: name.to_owned(),
            detail: error_detail(e),
        }
    }
}

/// The error for a non-2xx answer: 401/403 carry the (truncated) challenge.
pub(crate) async fn status_error(name: &str, mut resp: reqwest::Response) -> UpstreamError {
    let server = name.to_owned();
    let status = resp.status();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::AuthFailed {
            server,
            status: status.as_u16(),
            challenge: resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(300).collect()),
        },
        _ => {
            let body = read_limited(&mut resp, 4096).await.unwrap_or_default();
            // One line, however the body is laid out (error pages are often HTML).
            let text = String::from_utf8_lossy(&body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            UpstreamError::Http {
                server,
                status: status.as_u16(),
                detail: text.chars().take(200).collect(),
            }
        }
    }
}

pub(crate) fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

pub(crate) async fn read_limited(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(c) = resp.chunk().await? {
        out.extend_from_slice(&c);
        if out.len() > limit {
            break;
        }
    }
    Ok(out)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Forgets a finished modern request's abort handle.
struct Finished {
    inner: std::sync::Weak<Inner>,
    id: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade()
            && let Some(crate::conn::Transport::Http(h)) = inner.transport_ref()
        {
            crate::conn::lock(&h.inflight).remove(&self.id);
        }
    }
}
