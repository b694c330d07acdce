//! Streamable HTTP for the session-based revisions (2025-03-26 … 2025-11-25):
//! POST, GET and DELETE on `/mcp`. A POST is told apart per request from a
//! 2026-07-28 one (`http::modern`); then `initialize` opens a session, and
//! any other message needs the session it names. A request runs in its own
//! task (so a dropped connection never cancels it) and the answer goes out as
//! JSON when nothing else came first, or as a resumable SSE stream (priming
//! event, ids `<stream>-<seq>`, `retry`) when progress, logs or
//! server-to-client requests precede it, or the call outlives
//! `sse_upgrade_after`. GET opens (or, with `Last-Event-ID`, resumes) a
//! stream; DELETE ends the session.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_proto::{Kind, codes, sse, version};

use super::forward;
use super::guard::{
    Accept, accept, admit_caller, check_version, find_session, header_str, read_post,
};
use super::method_not_allowed;
use super::modern;
use super::refusal::{Refusal, json_pieces, json_response};
use super::sse::{self as sse_body, Source, Step};
use crate::mcp::call::{Running, admit_billable, start_call};
use crate::mcp::dispatch::list_from_memory;
use crate::mcp::lifecycle::{self, InitError};
use crate::mcp::relay::{client_cancelled, client_response};
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::catalog::PageShape;
use crate::state::parking::Out;
use crate::state::sessions::{EventStream, Next, Session};
use crate::state::work::InPlace;
use crate::telemetry;

pub(crate) async fn post_mcp(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    // With `[telemetry]`, the request's span is current while it is handled.
    if app.telemetry.is_some() {
        let span = telemetry::request_span(
            app.telemetry.as_ref(),
            h.get("traceparent").map(|v| v.as_bytes()),
        );
        let failed = span.clone();
        let out = telemetry::scope(span, InPlace::new(post(app, h, body))).await;
        if let (Err(r), Some(s)) = (&out, failed) {
            s.fail(format!("refused: {}", r.message()));
        }
        return out;
    }
    // The call runs in this task (`state::work`): its wakes of this very
    // task are taken in place.
    InPlace::new(post(app, h, body)).await
}

async fn post(app: Arc<App>, h: HeaderMap, body: Body) -> Result<Response, Refusal> {
    let auth =
        telemetry::ChildSpan::start(app.telemetry.as_ref(), "auth", telemetry::Kind::Internal);
    let who = admit_caller(&app, &h).await;
    if let Some(span) = auth {
        let run = who.as_ref().ok().and_then(|p| p.run.as_ref());
        span.end_auth(run.map(|r| r.run.as_str()), who.is_err());
    }
    let who = who?;
    let (bytes, acc) = read_post(&app, &h, body).await?;
    let msg = Message::parse(&bytes)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.code(), e.message()))?;
    if let Some(meta) = modern::era(&h, &msg) {
        if app.directory.is_some()
            && let Some(r) = Box::pin(forward::state_elsewhere(&app, &h, &msg, bytes)).await
        {
            return Ok(r);
        }
        return modern::post(app, who, &h, msg, meta, acc).await;
    }
    if msg.method() == "initialize" {
        return Box::pin(initialize(&app, &msg, acc, &who)).await;
    }
    check_version(&h)?;
    if app.directory.is_some()
        && let Some(r) = Box::pin(forward::session_elsewhere(
            &app,
            &h,
            &who,
            Method::POST,
            bytes,
        ))
        .await
    {
        return Ok(r);
    }
    let session = find_session(&app, &h, &who)?;
    match msg.kind() {
        Ok(Kind::Notification) => {
            if msg.method() == "notifications/cancelled" {
                client_cancelled(session.as_deref(), msg.params.as_deref());
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Ok(Kind::Response) => {
            if !Box::pin(client_response(&app, session.as_deref(), msg)).await {
                tracing::debug!("client answered an unknown or expired server request");
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Ok(Kind::Request) => {
            // A `*/list` straight from the catalog's cached page: no task, no copy.
            if acc.json
                && let Some(pieces) = list_from_memory(&app, &who, &msg, PageShape::Plain)
                    .map_err(|e| Refusal::call(&msg, &e))?
            {
                return Ok(json_pieces(pieces));
            }
            let meter = admit_billable(&app, &who, &msg, session.as_deref())
                .await
                .map_err(|r| Refusal::refused(r).answering(&msg))?;
            let running = start_call(app.clone(), who, session.clone(), None, msg, meter);
            Ok(respond(app, session, running, acc).await)
        }
        Err(e) => Err(Refusal::new(StatusCode::BAD_REQUEST, e.code(), e.message())),
    }
}

async fn initialize(
    app: &App,
    msg: &Message,
    acc: Accept,
    who: &Principal,
) -> Result<Response, Refusal> {
    let Some(id) = msg.id.as_deref() else {
        return Err(Refusal::invalid(
            StatusCode::BAD_REQUEST,
            "initialize must be a request with an id",
        ));
    };
    let (result, session) =
        lifecycle::initialize(app, msg.params.as_deref(), who).map_err(|e| match e {
            InitError::NoVersion => Refusal::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_PARAMS,
                e.to_string(),
            )
            .answering(msg),
            InitError::NoRandom | InitError::TooMany => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::INTERNAL_ERROR,
                format!("Service Unavailable: {e}"),
            )
            .answering(msg),
            // The caller's own limits: 429, like a call over its rate. A
            // full tenant retries after a second, when a call may have ended.
            InitError::RateLimited { retry_after, .. } => limited(msg, e.to_string(), retry_after),
            InitError::TenantFull { .. } => limited(msg, e.to_string(), 1),
        })?;
    // In a cluster the session is in the directory before the client hears
    // of it, so its next request may land on any replica.
    if let (Some(dir), Some(s)) = (&app.directory, &session)
        && let Err(e) = dir.register(&s.id, &s.tenant).await
    {
        tracing::warn!(session = %s.id, "could not record the session in the directory ({e}); it is served only by this replica");
    }
    let body = jsonrpc::response_result(id, &result);
    let mut resp = if acc.json {
        json_response(StatusCode::OK, body)
    } else {
        sse_body::once(&body)
    };
    if let Some(v) = session.and_then(|s| HeaderValue::from_str(&s.id).ok()) {
        resp.headers_mut().insert(version::HEADER_SESSION_ID, v);
    }
    Ok(resp)
}

/// 429 with `Retry-After` and the rate-limit code, answering `msg`.
fn limited(msg: &Message, message: String, retry_after: u64) -> Refusal {
    Refusal::new(StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED, message)
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after))
        .answering(msg)
}

/// The messages of a session-based call: [`Out::Input`] is only produced
/// for 2026-07-28 clients, so it is skipped here.
async fn next_message(out: &mut tokio::sync::mpsc::UnboundedReceiver<Out>) -> Option<Bytes> {
    loop {
        match out.recv().await? {
            Out::Msg(m) => return Some(m),
            Out::Input(_) => continue,
        }
    }
}

/// Answers JSON if the reply comes first, else SSE.
async fn respond(
    app: Arc<App>,
    session: Option<Arc<Session>>,
    running: Running,
    acc: Accept,
) -> Response {
    let Running {
        mut out,
        reply: mut final_rx,
        mut work,
        ..
    } = running;
    let internal = || {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL_ERROR,
            "internal error: the request task ended without an answer",
        )
        .into_response()
    };
    // JSON when the reply comes first and fast; SSE as soon as something else
    // must reach the client first, or the call outlives `sse_upgrade_after`
    // (a long call then gets a resumable stream with keep-alives).
    let upgrade = tokio::time::sleep(if acc.sse {
        app.cfg.sse_upgrade_after
    } else {
        Duration::MAX / 4
    });
    tokio::pin!(upgrade);
    // The call runs in this task until then (`state::work`); from there on,
    // in a task of its own.
    let first: Option<Bytes> = loop {
        tokio::select! {
            biased;
            Some(m) = next_message(&mut out) => break Some(m),
            f = &mut final_rx => {
                let Ok(body) = f else { return internal() };
                return if acc.json { json_response(StatusCode::OK, body) } else { sse_body::once(&body) };
            }
            () = work.run() => {}
            _ = &mut upgrade => break None,
        }
    };
    work.detach();
    if !acc.sse {
        // A JSON-only client: what comes before the reply goes to its standalone stream.
        let standalone = session.as_ref().map(|s| s.standalone());
        if let (Some(s), Some(m)) = (&standalone, first) {
            s.push(m);
        }
        while let Some(m) = next_message(&mut out).await {
            if let Some(s) = &standalone {
                s.push(m);
            }
        }
        return match final_rx.await {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(_) => internal(),
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
        while let Some(m) = next_message(&mut out).await {
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
    let close_after = app.cfg.sse_close_after;
    sse_body::response(SessionStream::new(
        &app,
        session,
        stream,
        Some(1),
        close_after,
    ))
}

/// A session's resumable stream read from `at` (or from where its last
/// reader stopped). A fresh read opens with a priming event that carries an
/// id and a `retry`. With `close_after`, a silent stream is closed so that the
/// client resumes with GET and `Last-Event-ID` (the 2025-11-25 polling
/// pattern); without it, silence gets keep-alives.
struct SessionStream {
    stream: Arc<EventStream>,
    session: Option<Arc<Session>>,
    generation: u64,
    at: u64,
    primed: bool,
    retry_ms: u64,
    close_after: Option<Duration>,
}

impl SessionStream {
    fn new(
        app: &App,
        session: Option<Arc<Session>>,
        stream: Arc<EventStream>,
        from: Option<u64>,
        close_after: Option<Duration>,
    ) -> SessionStream {
        let (generation, resume_at) = stream.attach();
        SessionStream {
            stream,
            session,
            generation,
            at: from.unwrap_or(resume_at),
            primed: false,
            retry_ms: u64::try_from(app.cfg.sse_retry.as_millis()).unwrap_or(1000),
            close_after,
        }
    }
}

impl Source for SessionStream {
    async fn next(&mut self, wait: Duration) -> Step {
        if !self.primed {
            self.primed = true;
            let id = format!("{}-{}", self.stream.id, self.at.saturating_sub(1));
            return Step::Event(sse::encode(Some(&id), b"", Some(self.retry_ms)));
        }
        let wait = self.close_after.unwrap_or(wait);
        match self.stream.next(self.at, self.generation, wait).await {
            Some(Next::Event(seq, b)) => {
                self.at = seq.saturating_add(1);
                let id = format!("{}-{seq}", self.stream.id);
                Step::Event(sse::encode(Some(&id), &b, None))
            }
            Some(Next::Done) | Some(Next::Superseded) => Step::End,
            None if self.close_after.is_some() => {
                Step::Last(Bytes::from(format!("retry: {}\n\n", self.retry_ms)))
            }
            None => {
                if let Some(s) = &self.session {
                    s.touch(); // a client holding a stream open is not idle
                }
                Step::Idle
            }
        }
    }
}

fn is_modern_header(h: &HeaderMap) -> bool {
    header_str(h, version::HEADER_PROTOCOL_VERSION) == Some(version::MODERN)
}

pub(crate) async fn get_mcp(
    State(app): State<Arc<App>>,
    h: HeaderMap,
) -> Result<Response, Refusal> {
    let who = admit_caller(&app, &h).await?;
    if app.cfg.stateless || is_modern_header(&h) {
        return Err(method_not_allowed(
            "GET: a stateless (2026-07-28) client has no standalone stream; use subscriptions/listen",
            "POST",
        ));
    }
    if !accept(&h).sse || header_str(&h, "accept").is_none() {
        return Err(Refusal::invalid(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable: GET needs Accept: text/event-stream",
        ));
    }
    check_version(&h)?;
    if app.directory.is_some()
        && let Some(r) = forward::session_elsewhere(&app, &h, &who, Method::GET, Bytes::new()).await
    {
        return Ok(r);
    }
    let Some(session) = find_session(&app, &h, &who)? else {
        return Err(method_not_allowed("GET", "POST"));
    };
    let Some(last) = header_str(&h, version::HEADER_LAST_EVENT_ID) else {
        let standalone = session.standalone();
        return Ok(sse_body::response(SessionStream::new(
            &app,
            Some(session),
            standalone,
            None,
            None,
        )));
    };
    let Some((stream, from)) = session.resume(last) else {
        return Err(Refusal::invalid(
            StatusCode::BAD_REQUEST,
            format!("Bad Request: Last-Event-ID {last:?} does not name a stream of this session"),
        ));
    };
    let close_after = if stream.id == 0 {
        None
    } else {
        app.cfg.sse_close_after
    };
    Ok(sse_body::response(SessionStream::new(
        &app,
        Some(session),
        stream,
        Some(from),
        close_after,
    )))
}

pub(crate) async fn delete_mcp(
    State(app): State<Arc<App>>,
    h: HeaderMap,
) -> Result<Response, Refusal> {
    let who = admit_caller(&app, &h).await?;
    if app.cfg.stateless || is_modern_header(&h) {
        return Err(method_not_allowed(
            "DELETE: a stateless (2026-07-28) client has no session to end",
            "POST",
        ));
    }
    if app.directory.is_some()
        && let Some(r) =
            forward::session_elsewhere(&app, &h, &who, Method::DELETE, Bytes::new()).await
    {
        return Ok(r);
    }
    let Some(session) = find_session(&app, &h, &who)? else {
        return Err(method_not_allowed("DELETE", "POST"));
    };
    lifecycle::end_session(&app, &session);
    Ok(StatusCode::NO_CONTENT.into_response())
}
