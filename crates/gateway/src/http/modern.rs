//! Serving 2026-07-28 (stateless) clients on the same `/mcp` endpoint: the
//! HTTP half (what the call does is `mcp::modern`).
//!
//! A request is modern when its `MCP-Protocol-Version` header is no
//! session-based revision and either names 2026-07-28 or `_meta` carries a
//! protocol version (`proto::modern::is_modern`). It is then checked in this
//! order, each failure answered with the request's id: `_meta` keys (400,
//! -32602) → header vs `_meta` version (400, -32020) → version supported (400,
//! -32022 with the supported list) → `Mcp-Method` (400, -32020) → method known
//! in this era (404, -32601) → `Mcp-Name` and `Mcp-Param-*` against the body
//! (400, -32020). The answer is JSON when the call's first frame is its last,
//! else SSE; closing the response (either kind) cancels the call upstream.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_proto::modern::{self as wire, RequestMeta};
use mcpgate_proto::{Kind, codes, version};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::guard::{Accept, header_str};
use super::refusal::{Refusal, json_pieces, json_response};
use super::sse::{self, Source, Step};
use crate::mcp::dispatch::list_from_memory;
use crate::mcp::listen::{self, Listening};
use crate::mcp::modern::{self as calls, Frame, ModernRun, Verdict, discover, supported_versions};
use crate::mcp::params::Params;
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::catalog::PageShape;
use crate::state::error::CallError;
use crate::state::work::Work;

/// The request's `_meta` when it belongs to the 2026-07-28 era (read once
/// here and handed to [`post`]); `None` for a session-based request.
pub(crate) fn era(h: &HeaderMap, msg: &Message) -> Option<RequestMeta> {
    let header = header_str(h, version::HEADER_PROTOCOL_VERSION);
    let params = msg.params.as_deref();
    let meta = params
        .filter(|p| p.get().contains(wire::META_PROTOCOL_VERSION))
        .and_then(|p| RequestMeta::of(Some(p)));
    if !wire::is_modern(header, msg.method(), meta.as_ref()) {
        return None;
    }
    Some(meta.unwrap_or_else(|| RequestMeta::of(params).unwrap_or_default()))
}

/// 400 with -32020: a routing header disagrees with the body.
fn mismatch(msg: &Message, detail: String) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        codes::HEADER_MISMATCH,
        format!("Header mismatch: {detail}"),
    )
    .answering(msg)
}

/// The header checks, in the order the module doc gives.
fn validate(
    h: &HeaderMap,
    msg: &Message,
    meta: RequestMeta,
    app: &App,
) -> Result<RequestMeta, Refusal> {
    let bad = StatusCode::BAD_REQUEST;
    let method = msg.method();
    let missing = meta.missing();
    if !missing.is_empty() {
        return Err(Refusal::new(
            bad,
            codes::INVALID_PARAMS,
            format!(
                "Invalid params: a 2026-07-28 request needs params._meta with {}",
                missing.join(" and ")
            ),
        )
        .answering(msg)
        .with_data(json!({ "missing": missing })));
    }
    let requested = meta.version().unwrap_or_default();
    match header_str(h, version::HEADER_PROTOCOL_VERSION) {
        Some(hv) if hv.trim() == requested => {}
        other => {
            return Err(mismatch(
                msg,
                format!("MCP-Protocol-Version is {other:?} but _meta names {requested:?}"),
            ));
        }
    }
    if requested != version::MODERN {
        return Err(Refusal::new(
            bad,
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "Unsupported protocol version {requested:?}; supported: {}",
                supported_versions().join(", ")
            ),
        )
        .answering(msg)
        .with_data(json!({ "supported": supported_versions(), "requested": requested })));
    }
    match header_str(h, wire::HEADER_METHOD) {
        Some(m) if m.trim() == method => {}
        other => {
            return Err(mismatch(
                msg,
                format!("Mcp-Method is {other:?} but the body's method is {method:?}"),
            ));
        }
    }
    if !wire::METHODS.contains(&method) {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method} (not part of the 2026-07-28 revision)"),
        )
        .answering(msg));
    }
    let Some(member) = wire::name_param(method) else {
        return Ok(meta);
    };
    let invalid = |e: CallError| Refusal::call(msg, &e).with_status(bad);
    let top = Params::parse(msg.params.as_deref()).map_err(invalid)?;
    let body_name = top.string(member).map_err(invalid)?;
    let header_name = header_str(h, wire::HEADER_NAME).and_then(wire::decode_header_value);
    if header_name.as_deref() != Some(body_name.as_str()) {
        return Err(mismatch(
            msg,
            format!("Mcp-Name is {header_name:?} but params.{member} is {body_name:?}"),
        ));
    }
    if method == "tools/call" {
        let catalog = app.catalog();
        check_param_headers(h, msg, &top, catalog.header_params(&body_name))?;
    }
    Ok(meta)
}

/// Each argument a tool maps to a header (`x-mcp-header`) must arrive in
/// `Mcp-Param-<Name>` with the same value, and only then.
fn check_param_headers(
    h: &HeaderMap,
    msg: &Message,
    top: &Params<'_>,
    mapped: &[(String, String)],
) -> Result<(), Refusal> {
    if mapped.is_empty() {
        return Ok(());
    }
    let args: Map<String, Value> = top
        .get("arguments")
        .and_then(|a| serde_json::from_str(a.get()).ok())
        .unwrap_or_default();
    for (arg, suffix) in mapped {
        let header = format!(
            "{}{}",
            wire::HEADER_PARAM_PREFIX,
            suffix.to_ascii_lowercase()
        );
        let raw = header_str(h, &header);
        let ok = match (args.get(arg), raw) {
            (None, None) => true,
            (Some(v), Some(raw)) => {
                wire::decode_header_value(raw).is_some_and(|d| wire::header_matches_argument(&d, v))
            }
            _ => false,
        };
        if !ok {
            return Err(mismatch(
                msg,
                format!(
                    "Mcp-Param-{suffix} must carry argument {arg:?} (Base64 as =?base64?…?= when needed)"
                ),
            ));
        }
    }
    Ok(())
}

/// `POST /mcp` for a 2026-07-28 request (the caller is already admitted).
pub(crate) async fn post(
    app: Arc<App>,
    who: Arc<Principal>,
    h: &HeaderMap,
    msg: Message,
    meta: RequestMeta,
    acc: Accept,
) -> Result<Response, Refusal> {
    let bad = StatusCode::BAD_REQUEST;
    match msg.kind() {
        Ok(Kind::Request) => {}
        Ok(Kind::Notification) => return Ok(StatusCode::ACCEPTED.into_response()),
        Ok(Kind::Response) => {
            return Err(Refusal::invalid(
                bad,
                "a 2026-07-28 client answers input requests by retrying its request (inputResponses), not with a JSON-RPC response",
            )
            .answering(&msg));
        }
        Err(e) => return Err(Refusal::new(bad, e.code(), e.message()).answering(&msg)),
    }
    let meta = validate(h, &msg, meta, &app)?;
    match msg.method() {
        "server/discover" => {
            let id = msg.id.clone().unwrap_or_else(jsonrpc::raw_null);
            Ok(json_response(
                StatusCode::OK,
                jsonrpc::response_result(&id, &discover(&app)),
            ))
        }
        "subscriptions/listen" => {
            let listening = Box::pin(listen::open(&app, &who, &msg))
                .await
                .map_err(|e| Refusal::call(&msg, &e))?;
            Ok(sse::response(ListenStream {
                first: Some(listening.ack.clone().into()),
                listening,
            }))
        }
        _ => {
            if let Some(pieces) = list_from_memory(&app, &who, &msg, PageShape::Modern)
                .map_err(|e| Refusal::call(&msg, &e))?
            {
                return Ok(json_pieces(pieces));
            }
            let id = msg.id.clone();
            let run = calls::start(&app, &who, msg, &meta)
                .await
                .map_err(|r| Refusal::refused(r).with_id(id))?;
            Ok(respond(app, run, acc).await)
        }
    }
}

fn status(v: Verdict) -> StatusCode {
    match v {
        Verdict::Ok => StatusCode::OK,
        Verdict::BadRequest => StatusCode::BAD_REQUEST,
        Verdict::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Verdict::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Answers with JSON when the call's first frame is its last, else as SSE.
/// Closing the response (either kind) drops the tail, which cancels the call.
/// The pump (and the call it drives) runs in this task until the first frame;
/// only a call that goes on as a stream moves into a task of its own.
async fn respond(app: Arc<App>, run: ModernRun, acc: Accept) -> Response {
    let (tx, mut rx) = mpsc::channel::<Frame>(64);
    let mut pump = Work::new(calls::pump(app, run, tx, acc.sse));
    let first = loop {
        tokio::select! {
            biased;
            f = rx.recv() => break f,
            () = pump.run() => {}
        }
    };
    pump.detach();
    let first = match first {
        Some(Frame::Final(v, body)) => return json_response(status(v), body),
        Some(Frame::Event(b)) => b,
        None => {
            return Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL_ERROR,
                "internal error",
            )
            .into_response();
        }
    };
    sse::response(CallStream {
        first: Some(first),
        rx,
    })
}

/// A 2026-07-28 call's frames, as SSE.
struct CallStream {
    first: Option<bytes::Bytes>,
    rx: mpsc::Receiver<Frame>,
}

impl Source for CallStream {
    async fn next(&mut self, wait: Duration) -> Step {
        if let Some(b) = self.first.take() {
            return Step::Event(sse::event(&b));
        }
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Ok(Some(Frame::Event(b))) => Step::Event(sse::event(&b)),
            Ok(Some(Frame::Final(_, body))) => Step::Event(sse::event(&body)),
            Ok(None) => Step::End,
            Err(_) => Step::Idle,
        }
    }
}

/// A `subscriptions/listen` stream, as SSE; dropping it ends the listener.
struct ListenStream {
    first: Option<bytes::Bytes>,
    listening: Listening,
}

impl Source for ListenStream {
    async fn next(&mut self, wait: Duration) -> Step {
        if let Some(b) = self.first.take() {
            return Step::Event(sse::event(&b));
        }
        match tokio::time::timeout(wait, self.listening.rx.recv()).await {
            Ok(Some(b)) => Step::Event(sse::event(&b)),
            Ok(None) => Step::End,
            Err(_) => Step::Idle,
        }
    }
}
