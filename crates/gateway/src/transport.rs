//! Streamable HTTP, the 2025-03-26 … 2025-11-25 revisions: POST, GET and DELETE
//! on `/mcp` and `/mcp/`, plus `GET /health`. This module owns every HTTP-level
//! decision, in this order: Host and Origin (DNS-rebinding protection), media
//! types, body size, envelope parsing, protocol version, session. Then a
//! request runs in its own task (so a dropped connection never cancels it) and
//! the answer goes out as JSON when nothing else came first, or as a resumable
//! SSE stream (priming event, ids, `retry`) when progress, logs or
//! server-to-client requests precede it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_proto::{Kind, codes, sse, version};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth::Principal;
use crate::dispatch::{self, Ctx, Out};
use crate::error::CallError;
use crate::health;
use crate::lock;
use crate::policy::{Call, Denial, Meter, retry_after_secs};
use crate::session::{ClientCaps, EventStream, Next, Session};

pub fn router(app: Arc<App>) -> Router {
    let mcp = get(get_mcp).post(post_mcp).delete(delete_mcp);
    Router::new()
        .route("/mcp", mcp.clone())
        .route("/mcp/", mcp)
        .route("/health", get(health::health))
        .merge(crate::admin::router())
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(app)
}

async fn wrong_method(method: axum::http::Method) -> Response {
    let mut r = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::INVALID_REQUEST,
        &format!(
            "Method Not Allowed: {method}; /mcp takes POST, GET and DELETE, /health takes GET"
        ),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    r
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        codes::INVALID_REQUEST,
        "Not found: the MCP endpoint is /mcp",
    )
}

/// An HTTP error with a JSON-RPC error body (id null).
pub fn json_error(status: StatusCode, code: i64, message: &str) -> Response {
    json_response(status, jsonrpc::response_error(None, code, message, None))
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a host (without port) names this machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// DNS-rebinding protection: on a loopback bind the Host must be loopback (or
/// allow-listed), and any Origin must be loopback or allow-listed.
pub(crate) fn check_origin(app: &App, h: &HeaderMap) -> Result<(), Box<Response>> {
    if let (true, Some(host)) = (app.cfg.listen.ip().is_loopback(), header_str(h, "host")) {
        let bare = strip_port(host);
        let allowed = is_loopback_host(bare)
            || app
                .cfg
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(bare));
        if !allowed {
            return Err(Box::new(json_error(
                StatusCode::FORBIDDEN,
                codes::INVALID_REQUEST,
                &format!(
                    "Forbidden: Host {host:?} is not allowed (DNS rebinding protection); add it to allowed_hosts"
                ),
            )));
        }
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        if !origin_allowed(app, o) {
            return Err(Box::new(json_error(
                StatusCode::FORBIDDEN,
                codes::INVALID_REQUEST,
                &format!("Forbidden: Origin {o:?} is not allowed; add it to allowed_origins"),
            )));
        }
    }
    Ok(())
}

fn origin_allowed(app: &App, origin: &str) -> bool {
    let host = origin.split_once("://").map(|(_, r)| r).unwrap_or("");
    if !host.is_empty() && is_loopback_host(strip_port(host)) {
        return true;
    }
    app.cfg.allowed_origins.iter().any(|a| {
        a == "*"
            || a.eq_ignore_ascii_case(origin)
            || a.strip_suffix(":*")
                .is_some_and(|base| strip_port(origin) == base || origin.eq_ignore_ascii_case(base))
    })
}

#[derive(Clone, Copy)]
pub(crate) struct Accept {
    pub(crate) json: bool,
    pub(crate) sse: bool,
}

fn accept(h: &HeaderMap) -> Accept {
    let Some(v) = header_str(h, "accept") else {
        return Accept {
            json: true,
            sse: true,
        };
    };
    let mut a = Accept {
        json: false,
        sse: false,
    };
    for part in v.split(',') {
        let t = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match t.as_str() {
            "application/json" | "application/*" => a.json = true,
            "text/event-stream" | "text/*" => a.sse = true,
            "*/*" => {
                a.json = true;
                a.sse = true;
            }
            _ => {}
        }
    }
    a
}

/// Finds the session a request names; 400 without one, 404 for an unknown one
/// or one that another tenant opened (which must look exactly like unknown).
fn find_session(
    app: &App,
    h: &HeaderMap,
    who: &Principal,
) -> Result<Option<Arc<Session>>, Box<Response>> {
    if app.cfg.stateless {
        return Ok(None);
    }
    let Some(id) = header_str(h, version::HEADER_SESSION_ID) else {
        return Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "Bad Request: the Mcp-Session-Id header is required after initialize",
        )));
    };
    match app.session(id).filter(|s| s.tenant == who.tenant) {
        Some(s) => {
            s.touch();
            Ok(Some(s))
        }
        None => Err(Box::new(json_error(
            StatusCode::NOT_FOUND,
            codes::INVALID_REQUEST,
            "Session not found: it expired or was deleted; initialize a new one",
        ))),
    }
}

fn check_version(h: &HeaderMap) -> Result<(), Box<Response>> {
    match header_str(h, version::HEADER_PROTOCOL_VERSION) {
        None => Ok(()),
        Some(v) if version::is_served(v) => Ok(()),
        Some(v) => Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            &format!(
                "Bad Request: unsupported MCP-Protocol-Version {v:?}; supported: {}",
                version::SERVED.join(", ")
            ),
        ))),
    }
}

/// The first two checks of every `/mcp` request: Origin/Host, then who is calling.
async fn admit_caller(app: &App, h: &HeaderMap) -> Result<Arc<Principal>, Box<Response>> {
    check_origin(app, h)?;
    app.auth
        .authenticate(h)
        .await
        .map_err(|e| Box::new(e.response()))
}

async fn post_mcp(State(app): State<Arc<App>>, h: HeaderMap, body: Body) -> Response {
    let who = match admit_caller(&app, &h).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let ctype = header_str(&h, "content-type").unwrap_or("");
    let media = ctype.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::INVALID_REQUEST,
            "Unsupported Media Type: POST bodies must be Content-Type: application/json",
        );
    }
    let acc = accept(&h);
    if !acc.json && !acc.sse {
        return json_error(
            StatusCode::NOT_ACCEPTABLE,
            codes::INVALID_REQUEST,
            "Not Acceptable: Accept must include application/json and text/event-stream",
        );
    }
    let limit = app.cfg.max_body_bytes;
    let too_big = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::INVALID_REQUEST,
            &format!("Payload Too Large: the body limit is {limit} bytes"),
        )
    };
    if header_str(&h, "content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > limit)
    {
        return too_big();
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_big(),
    };
    let msg = match Message::parse(&bytes) {
        Ok(m) => m,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.code(), &e.message()),
    };
    if let Some(meta) = crate::modern::era(&h, &msg) {
        return crate::modern::post(app, who, &h, msg, meta, acc).await;
    }
    if msg.method() == "initialize" {
        return initialize(app, msg, acc, &who);
    }
    if let Err(r) = check_version(&h) {
        return *r;
    }
    let session = match find_session(&app, &h, &who) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match msg.kind() {
        Ok(Kind::Notification) => {
            if msg.method() == "notifications/cancelled" {
                dispatch::client_cancelled(session.as_deref(), msg.params.as_deref());
            }
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Kind::Response) => {
            if !dispatch::client_response(&app, session.as_deref(), msg).await {
                tracing::debug!("client answered an unknown or expired server request");
            }
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Kind::Request) => {
            // With the ledger off (auth = "none" only) nothing is limited or recorded.
            let billable = Call::of(&msg).filter(|_| app.cfg.policy.audit);
            let meter = match billable {
                None => None,
                Some(Err(e)) => return rpc_error(&msg, &e),
                Some(Ok(call)) => match admit(&app, &who, call, &msg, session.as_deref()) {
                    Ok(m) => Some(m),
                    Err(r) => return *r,
                },
            };
            run_request(app, who, session, msg, acc, meter).await
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, e.code(), &e.message()),
    }
}

/// Steps 1–3 of the policy chain for a billable call; a refusal is recorded
/// in the ledger and answered here (429 with `Retry-After` for the limits, the
/// plain not-found error for a hidden name).
pub(crate) fn admit(
    app: &App,
    who: &Arc<Principal>,
    call: Call,
    msg: &Message,
    session: Option<&Session>,
) -> Result<Meter, Box<Response>> {
    let session_id = session.map(|s| s.id.clone());
    let record_args = app.cfg.policy.audit_arguments;
    match app.gate.admit(who, &call) {
        Ok(permit) => Ok(Meter::new(
            who.clone(),
            call,
            msg,
            session_id,
            permit,
            record_args,
        )),
        Err(denial) => {
            let meter = Meter::new(who.clone(), call, msg, session_id, None, record_args);
            let outcome = denial.outcome();
            let (status, err, retry) = match denial {
                Denial::Hidden => (StatusCode::OK, meter.call.not_found(), None),
                Denial::Rate { retry_after } => {
                    let secs = retry_after_secs(retry_after);
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        CallError::RateLimited(format!(
                            "rate limit of tier '{}' exceeded; retry in {secs} s",
                            who.tier.name
                        )),
                        Some(secs),
                    )
                }
                Denial::Concurrency { limit } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    CallError::RateLimited(format!(
                        "tenant '{}' already has {limit} calls in flight, the most tier '{}' allows",
                        who.tenant, who.tier.name
                    )),
                    Some(1),
                ),
            };
            meter.deny(&app.store, None, outcome, &err.to_string());
            let mut r = rpc_error(msg, &err);
            *r.status_mut() = status;
            if let Some(secs) = retry {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Err(Box::new(r))
        }
    }
}

/// A JSON-RPC error answer to `msg`, as JSON with HTTP 200.
pub(crate) fn rpc_error(msg: &Message, e: &CallError) -> Response {
    let (code, data) = e.wire();
    json_response(
        StatusCode::OK,
        jsonrpc::response_error(msg.id.as_deref(), code, &e.to_string(), data.as_ref()),
    )
}

fn initialize(app: Arc<App>, msg: Message, acc: Accept, who: &Principal) -> Response {
    let Some(id) = msg.id.as_deref() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "initialize must be a request with an id",
        );
    };
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(rename = "protocolVersion")]
        protocol_version: String,
    }
    let requested = match msg
        .params
        .as_deref()
        .map(|p| serde_json::from_str::<P>(p.get()))
    {
        Some(Ok(p)) => p.protocol_version,
        _ => {
            return json_response(
                StatusCode::BAD_REQUEST,
                jsonrpc::response_error(
                    Some(id),
                    codes::INVALID_PARAMS,
                    "initialize needs params.protocolVersion",
                    None,
                ),
            );
        }
    };
    let negotiated = version::negotiate(&requested);
    let result = health::initialize_result(&app, negotiated);
    let body = jsonrpc::response_result(id, &result);
    let mut resp = if acc.json {
        json_response(StatusCode::OK, body)
    } else {
        sse_once(body)
    };
    if !app.cfg.stateless {
        let session = match Session::new(
            who.tenant.clone(),
            negotiated.to_owned(),
            ClientCaps::from_initialize(msg.params.as_deref()),
        ) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!("cannot create a session id: the OS random generator failed: {e}");
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::INTERNAL_ERROR,
                    "Service Unavailable: cannot create a session id",
                );
            }
        };
        session.touch();
        if !app.add_session(session.clone()) {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::INTERNAL_ERROR,
                "Service Unavailable: too many sessions",
            );
        }
        if let Ok(v) = HeaderValue::from_str(&session.id) {
            resp.headers_mut().insert(version::HEADER_SESSION_ID, v);
        }
    }
    resp
}

pub(crate) fn sse_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

fn sse_once(body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(sse::encode(None, &body, None)));
    sse_headers(&mut r);
    r
}

/// Runs a request in its own task; answers JSON if the reply comes first, else SSE.
async fn run_request(
    app: Arc<App>,
    principal: Arc<Principal>,
    session: Option<Arc<Session>>,
    msg: Message,
    acc: Accept,
    meter: Option<Meter>,
) -> Response {
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Out>();
    let (final_tx, mut final_rx) = oneshot::channel::<Vec<u8>>();
    let ctx = Ctx {
        app: app.clone(),
        principal,
        session: session.clone(),
        modern: None,
        cancel: CancellationToken::new(),
        out: out_tx,
    };
    let mut out_rx = Messages(out_rx);
    tokio::spawn(async move {
        let reply = dispatch::request(&ctx, &msg, meter).await;
        drop(ctx);
        let _ = final_tx.send(reply);
    });
    // JSON when the reply comes first and fast; SSE as soon as something else
    // must reach the client first, or the call outlives `sse_upgrade_after`
    // (a long call then gets a resumable stream with keep-alives).
    let upgrade = tokio::time::sleep(if acc.sse {
        app.cfg.sse_upgrade_after
    } else {
        Duration::MAX / 4
    });
    tokio::pin!(upgrade);
    let first: Option<Bytes> = tokio::select! {
        biased;
        Some(m) = out_rx.recv() => Some(m),
        f = &mut final_rx => {
            let Ok(body) = f else {
                return json_error(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL_ERROR, "internal error: the request task ended without an answer");
            };
            return if acc.json { json_response(StatusCode::OK, body) } else { sse_once(body) };
        }
        _ = &mut upgrade => None,
    };
    if !acc.sse {
        // A JSON-only client: what comes before the reply goes to its standalone stream.
        let standalone = session.as_ref().map(|s| s.standalone());
        if let (Some(s), Some(m)) = (&standalone, first) {
            s.push(m);
        }
        while let Some(m) = out_rx.recv().await {
            if let Some(s) = &standalone {
                s.push(m);
            }
        }
        return match final_rx.await {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(_) => json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL_ERROR,
                "internal error",
            ),
        };
    }
    let stream = match &session {
        Some(s) => s.open_stream(),
        None => Arc::new(EventStream::detached()),
    };
    let pump_stream = stream.clone();
    let pump_session = session.clone();
    tokio::spawn(async move {
        if let Some(m) = first {
            pump_stream.push(m);
        }
        while let Some(m) = out_rx.recv().await {
            pump_stream.push(m);
        }
        if let Ok(body) = final_rx.await {
            pump_stream.push(Bytes::from(body));
        }
        pump_stream.finish();
        if let Some(s) = pump_session {
            s.stream_finished(pump_stream.id);
        }
    });
    sse_response(&app, session, stream, Some(1), app.cfg.sse_close_after)
}

/// The message stream of a session-based call: [`Out::Input`] is only
/// produced for 2026-07-28 clients, so it is skipped here.
struct Messages(mpsc::UnboundedReceiver<Out>);

impl Messages {
    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.0.recv().await? {
                Out::Msg(m) => return Some(m),
                Out::Input(_) => continue,
            }
        }
    }
}

/// An SSE response reading `stream` from `from` (or from where its last reader
/// stopped). A fresh stream opens with a priming event that carries an id and a
/// `retry`. With `close_after`, a silent stream is closed so that the client
/// resumes with GET and `Last-Event-ID` (the 2025-11-25 polling pattern);
/// without it, silence is filled with keep-alive comments.
fn sse_response(
    app: &App,
    session: Option<Arc<Session>>,
    stream: Arc<EventStream>,
    from: Option<u64>,
    close_after: Option<Duration>,
) -> Response {
    let (generation, resume_at) = stream.attach();
    let from = from.unwrap_or(resume_at);
    let retry = u64::try_from(app.cfg.sse_retry.as_millis()).unwrap_or(1000);
    struct St {
        stream: Arc<EventStream>,
        at: u64,
        primed: bool,
        done: bool,
        session: Option<Arc<Session>>,
    }
    let init = St {
        stream,
        at: from,
        primed: false,
        done: false,
        session,
    };
    let body = futures::stream::unfold(init, move |mut st| async move {
        if st.done {
            return None;
        }
        if !st.primed {
            st.primed = true;
            let id = format!("{}-{}", st.stream.id, st.at.saturating_sub(1));
            return Some((
                Ok::<Bytes, std::convert::Infallible>(sse::encode(Some(&id), b"", Some(retry))),
                st,
            ));
        }
        let wait = close_after.unwrap_or(Duration::from_secs(20));
        match st.stream.next(st.at, generation, wait).await {
            Some(Next::Event(seq, b)) => {
                st.at = seq + 1;
                let id = format!("{}-{seq}", st.stream.id);
                Some((Ok(sse::encode(Some(&id), &b, None)), st))
            }
            Some(Next::Done) | Some(Next::Superseded) => None,
            None if close_after.is_some() => {
                st.done = true;
                Some((Ok(Bytes::from(format!("retry: {retry}\n\n"))), st))
            }
            None => {
                if let Some(s) = &st.session {
                    s.touch(); // a client holding a stream open is not idle
                }
                Some((Ok(Bytes::from_static(b": keep-alive\n\n")), st))
            }
        }
    });
    let mut r = Response::new(Body::from_stream(body));
    sse_headers(&mut r);
    r
}

async fn get_mcp(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    let who = match admit_caller(&app, &h).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if app.cfg.stateless || is_modern_header(&h) {
        return method_not_allowed(
            "GET: a stateless (2026-07-28) client has no standalone stream; use subscriptions/listen",
        );
    }
    if !accept(&h).sse || header_str(&h, "accept").is_none() {
        return json_error(
            StatusCode::NOT_ACCEPTABLE,
            codes::INVALID_REQUEST,
            "Not Acceptable: GET needs Accept: text/event-stream",
        );
    }
    if let Err(r) = check_version(&h) {
        return *r;
    }
    let session = match find_session(&app, &h, &who) {
        Ok(Some(s)) => s,
        Ok(None) => return method_not_allowed("GET"),
        Err(r) => return *r,
    };
    match header_str(&h, version::HEADER_LAST_EVENT_ID) {
        Some(last) => match session.resume(last) {
            Some((stream, from)) => {
                let close_after = if stream.id == 0 {
                    None
                } else {
                    app.cfg.sse_close_after
                };
                sse_response(&app, Some(session.clone()), stream, Some(from), close_after)
            }
            None => json_error(
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                &format!(
                    "Bad Request: Last-Event-ID {last:?} does not name a stream of this session"
                ),
            ),
        },
        None => sse_response(
            &app,
            Some(session.clone()),
            session.standalone(),
            None,
            None,
        ),
    }
}

fn is_modern_header(h: &HeaderMap) -> bool {
    header_str(h, version::HEADER_PROTOCOL_VERSION) == Some(version::MODERN)
}

pub(crate) fn method_not_allowed(what: &str) -> Response {
    let mut r = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::INVALID_REQUEST,
        &format!("Method Not Allowed: {what}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

async fn delete_mcp(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    let who = match admit_caller(&app, &h).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if app.cfg.stateless || is_modern_header(&h) {
        return method_not_allowed("DELETE: a stateless (2026-07-28) client has no session to end");
    }
    let session = match find_session(&app, &h, &who) {
        Ok(Some(s)) => s,
        Ok(None) => return method_not_allowed("DELETE"),
        Err(r) => return *r,
    };
    app.end_session(&session.id);
    tokio::spawn(async move {
        let conns: Vec<_> = session
            .private
            .lock()
            .await
            .drain()
            .map(|(_, c)| c)
            .collect();
        for c in conns {
            c.close(Duration::from_secs(2)).await;
        }
        drop(lock(&session.inflight));
    });
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_origin_shapes() {
        assert!(is_loopback_host(strip_port("localhost:8787")));
        assert!(is_loopback_host(strip_port("127.0.0.1:1")));
        assert!(is_loopback_host(strip_port("[::1]:9")));
        assert!(!is_loopback_host(strip_port("evil.example.com")));
        assert!(!is_loopback_host(strip_port("127.0.0.1.evil.com:80")));
    }
}
