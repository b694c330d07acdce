//! A Streamable HTTP server. Each request is one POST with
//! `Accept: application/json, text/event-stream`; the answer is either one JSON
//! message or an SSE stream whose messages are routed with the request as
//! their hint. A stream that ends before the reply is resumed with GET and
//! `Last-Event-ID` (the 2025-11-25 polling pattern). A `404` on a session we
//! hold means the server forgot it: that is reported as
//! [`UpstreamError::SessionExpired`], and the connection re-initializes and
//! retries. After initialize a GET stream (on a 2026-07-28 server, a
//! `subscriptions/listen` request) carries the server's own notifications.
//! Configured header values are secrets: they go on the wire and nowhere else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, Weak};
use std::time::Duration;

use mcpgate_proto::{Message, jsonrpc, modern, sse, version};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::error::UpstreamError;
use crate::http_client::{
    Answer, build_client, content_type, header_map, parse_url, read_limited, status_error,
    transport_error,
};
use crate::pool::{Fail, Pool};
use crate::routes::Routes;
use mcpgate_proto::locks::{read, write};

/// Largest JSON response body we read.
const MAX_BODY: usize = 64 << 20;
/// How many times a POST stream that ended early is resumed.
const MAX_RESUMES: u32 = 10;

pub(crate) struct Http {
    name: String,
    client: reqwest::Client,
    url: reqwest::Url,
    /// For an `http://` URL: the connections POSTs go over (see `pool`),
    /// with the URL's path in origin form.
    pool: Option<(Pool, hyper::Uri)>,
    headers: HeaderMap,
    session_id: RwLock<Option<HeaderValue>>,
    protocol_version: RwLock<Option<HeaderValue>>,
    /// Speaking 2026-07-28: no session, routing headers on every POST, and a
    /// request is cancelled by dropping its response stream.
    modern: AtomicBool,
}

impl Http {
    pub(crate) fn new(
        name: &str,
        url: &str,
        headers: &[(String, String)],
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Http, UpstreamError> {
        let url = parse_url(name, url)?;
        let pool = Pool::for_url(&url, connect_timeout, idle_timeout).and_then(|p| {
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            Some((p, hyper::Uri::try_from(path).ok()?))
        });
        Ok(Http {
            name: name.to_owned(),
            client: build_client(name, connect_timeout, idle_timeout)?,
            url,
            pool,
            headers: header_map(name, headers)?,
            session_id: RwLock::new(None),
            protocol_version: RwLock::new(None),
            modern: AtomicBool::new(false),
        })
    }

    /// Switches to (or back from) the 2026-07-28 wire.
    pub(crate) fn set_modern(&self, on: bool) {
        self.modern.store(on, Ordering::Release);
        if on {
            self.set_protocol_version(version::MODERN);
        } else {
            *write(&self.protocol_version) = None;
        }
    }

    pub(crate) fn is_modern(&self) -> bool {
        self.modern.load(Ordering::Acquire)
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

    /// The configured headers, plus our session's id and protocol version.
    fn base_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some(s) = read(&self.session_id).clone() {
            headers.insert(version::HEADER_SESSION_ID, s);
        }
        if let Some(v) = read(&self.protocol_version).clone() {
            headers.insert(version::HEADER_PROTOCOL_VERSION, v);
        }
        headers
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url.clone())
            .headers(self.base_headers())
    }

    /// A POST's headers: `base_headers`, both media types, a modern
    /// server's routing headers, then `extra` (which replace any of the
    /// same name; names or values that are not valid HTTP are dropped).
    fn post_headers(&self, body: &[u8], extra: &[(String, String)]) -> HeaderMap {
        let mut headers = self.base_headers();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.is_modern() {
            for (k, v) in self.routing_headers(body) {
                headers.insert(k, v);
            }
        }
        headers.extend(valid_headers(extra));
        headers
    }

    /// POSTs one message with `extra` headers (see `post_headers`) and
    /// classifies the HTTP outcome; a `404` on the session we hold is
    /// [`UpstreamError::SessionExpired`].
    pub(crate) async fn post(
        &self,
        body: bytes::Bytes,
        extra: &[(String, String)],
    ) -> Result<Answer, UpstreamError> {
        let had_session = read(&self.session_id).is_some();
        let resp = match &self.pool {
            Some((pool, path)) => {
                let mut req = hyper::Request::post(path.clone())
                    .body(http_body_util::Full::new(body.clone()))
                    .map_err(|e| self.protocol(format!("cannot build the request: {e}")))?;
                *req.headers_mut() = self.post_headers(&body, extra);
                let resp = pool.send(req).await.map_err(|e| self.transport_error(e))?;
                // Redirects are reqwest's to follow: the POST goes again there.
                if resp.status().is_redirection() {
                    None
                } else {
                    Some(Answer::Pooled(resp))
                }
            }
            None => None,
        };
        let resp = match resp {
            Some(r) => r,
            None => Answer::from(
                self.client
                    .post(self.url.clone())
                    .headers(self.post_headers(&body, extra))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| self.transport_error(e))?,
            ),
        };
        if let Some(sid) = resp.headers().get(version::HEADER_SESSION_ID) {
            let mut cur = write(&self.session_id);
            if cur.is_none() {
                *cur = Some(sid.clone());
            }
        }
        self.check_status(resp, had_session).await
    }

    async fn check_status(&self, resp: Answer, had_session: bool) -> Result<Answer, UpstreamError> {
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

    fn transport_error(&self, e: impl Into<Fail>) -> UpstreamError {
        transport_error(&self.name, e)
    }

    fn protocol(&self, detail: String) -> UpstreamError {
        UpstreamError::Protocol {
            server: self.name.clone(),
            detail,
        }
    }

    /// Reads a POST's answer into `routes`: one JSON message, or an SSE stream
    /// (resumed if cut).
    pub(crate) async fn read_reply(
        &self,
        routes: &Routes,
        id: u64,
        mut resp: Answer,
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
                    routes.dispatch(m, Some(id));
                }
                return Ok(());
            }
            routes.dispatch(msg, Some(id));
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
                    dispatch_event(routes, &ev, Some(id));
                }
                if !routes.is_pending(id) {
                    drain(resp).await;
                    return Ok(());
                }
            }
            if !routes.is_pending(id) {
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
            resp = self.check_status(Answer::from(r), true).await?;
        }
    }

    /// Opens the stream that carries the server's own messages: the GET
    /// stream, or on a 2026-07-28 server the `subscriptions/listen` request
    /// `listen`. `Ok(None)` when the server offers no such stream; a `404` is
    /// [`UpstreamError::SessionExpired`]; any other error is worth a retry later.
    pub(crate) async fn open_listener(
        &self,
        listen: Option<Vec<u8>>,
    ) -> Result<Option<Answer>, UpstreamError> {
        let sent = match listen {
            Some(body) => {
                self.request(reqwest::Method::POST)
                    .header(ACCEPT, "application/json, text/event-stream")
                    .header(CONTENT_TYPE, "application/json")
                    .header(modern::HEADER_METHOD, "subscriptions/listen")
                    .body(body)
                    .send()
                    .await
            }
            None => {
                self.request(reqwest::Method::GET)
                    .header(ACCEPT, "text/event-stream")
                    .send()
                    .await
            }
        };
        let resp = Answer::from(sent.map_err(|e| self.transport_error(e))?);
        let status = resp.status();
        // A 2026-07-28 server without subscriptions answers a 4xx.
        if status == StatusCode::METHOD_NOT_ALLOWED
            || (self.is_modern() && status.is_client_error())
        {
            return Ok(None);
        }
        if status.is_success() {
            let ctype = content_type(&resp);
            if ctype.starts_with("text/event-stream") {
                return Ok(Some(resp));
            }
            return Err(UpstreamError::Protocol {
                server: self.name.clone(),
                detail: format!("the listening stream answered Content-Type {ctype:?}"),
            });
        }
        if status == StatusCode::NOT_FOUND {
            return Err(UpstreamError::SessionExpired {
                server: self.name.clone(),
            });
        }
        Err(UpstreamError::Http {
            server: self.name.clone(),
            status: status.as_u16(),
            detail: "the listening stream was refused".into(),
        })
    }

    /// Reads the listening stream into `routes` until it ends (`true`: open it
    /// again) or the connection is gone (`false`). Holds no strong reference,
    /// so a dropped connection stops it.
    pub(crate) async fn read_listener(mut resp: Answer, routes: Weak<Routes>) -> bool {
        let Some(closed) = routes.upgrade().map(|r| r.closed_token()) else {
            return false;
        };
        let mut decoder = sse::Decoder::new();
        loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = closed.cancelled() => return false,
            };
            let Ok(Some(chunk)) = chunk else { return true };
            let Some(routes) = routes.upgrade() else {
                return false;
            };
            for ev in decoder.feed(&chunk) {
                dispatch_event(&routes, &ev, None);
            }
        }
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

fn dispatch_event(routes: &Routes, ev: &sse::Event, hint: Option<u64>) {
    if ev.data.trim().is_empty() {
        return; // priming event
    }
    match Message::parse(ev.data.as_bytes()) {
        Ok(msg) => routes.dispatch(msg, hint),
        Err(e) => {
            tracing::warn!(server = %routes.name(), "bad SSE message ignored: {}", routes.secrets().redact(&e.message()))
        }
    }
}

/// How long the rest of a POST's stream is read after its reply arrived.
const DRAIN_WAIT: Duration = Duration::from_millis(500);
/// How much of it is read.
const DRAIN_LIMIT: usize = 64 << 10;

/// Reads what is left of a stream whose reply has arrived (the server
/// usually ends it at once), so that its connection goes back to the pool:
/// a response dropped half-read closes the connection, and the next request
/// would pay for a new one. A server that keeps the stream open past
/// `DRAIN_WAIT`, or keeps writing past `DRAIN_LIMIT`, loses its connection.
async fn drain(mut resp: Answer) {
    let mut left = DRAIN_LIMIT;
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        while let Ok(Some(c)) = resp.chunk().await {
            left = left.saturating_sub(c.len());
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// The headers among `headers` that are valid HTTP.
fn valid_headers(headers: &[(String, String)]) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}
