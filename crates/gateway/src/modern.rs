//! Serving 2026-07-28 (stateless) clients on the same `/mcp` endpoint.
//!
//! A request is modern when its `MCP-Protocol-Version` header is no
//! session-based revision and either names 2026-07-28 or `_meta` carries a
//! protocol version (`proto::modern::is_modern`). It is then checked in this
//! order, each failure answered with the request's id: `_meta` keys (400,
//! -32602) → header vs `_meta` version (400, -32020) → version supported (400,
//! -32022 with the supported list) → `Mcp-Method` (400, -32020) → method known
//! in this era (404, -32601) → `Mcp-Name` and `Mcp-Param-*` against the body
//! (400, -32020). Then `server/discover` and `subscriptions/listen` are answered
//! here; every other method runs through the same policy chain and
//! `dispatch` as a session-based request, with no session. Results gain
//! `resultType` (and caching hints on list/read results). Closing the response
//! stream cancels the call upstream. Server-to-client requests become
//! `InputRequiredResult`s (see `mrtr`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_proto::modern::{self as wire, RequestMeta};
use mcpgate_proto::{Kind, codes, sse, version};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth::Principal;
use crate::dispatch::{self, Ctx, Out, TopLevel};
use crate::lock;
use crate::mrtr::{Held, InputRequired, ModernCall, Owner, SETTLE, Tail};
use crate::policy::Call;
use crate::session::ClientCaps;
use crate::transport::{Accept, admit, header_str, json_response, rpc_error, sse_headers};

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

/// The versions this endpoint speaks: the stateless one, then the session-based ones.
fn supported_versions() -> Vec<&'static str> {
    std::iter::once(version::MODERN)
        .chain(version::SERVED.iter().copied())
        .collect()
}

/// A refusal of a modern request: the status and a JSON-RPC error with its id.
fn refuse(
    status: StatusCode,
    msg: &Message,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Box<Response> {
    Box::new(json_response(
        status,
        jsonrpc::response_error(msg.id.as_deref(), code, message, data.as_ref()),
    ))
}

/// 400 with -32020: a routing header disagrees with the body.
fn mismatch(msg: &Message, detail: String) -> Box<Response> {
    refuse(
        StatusCode::BAD_REQUEST,
        msg,
        codes::HEADER_MISMATCH,
        &format!("Header mismatch: {detail}"),
        None,
    )
}

/// The header checks, in the order the module doc gives.
fn validate(
    h: &HeaderMap,
    msg: &Message,
    meta: RequestMeta,
    app: &App,
) -> Result<RequestMeta, Box<Response>> {
    let bad = StatusCode::BAD_REQUEST;
    let method = msg.method();
    let missing = meta.missing();
    if !missing.is_empty() {
        return Err(refuse(
            bad,
            msg,
            codes::INVALID_PARAMS,
            &format!(
                "Invalid params: a 2026-07-28 request needs params._meta with {}",
                missing.join(" and ")
            ),
            Some(json!({ "missing": missing })),
        ));
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
        return Err(refuse(
            bad,
            msg,
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            &format!(
                "Unsupported protocol version {requested:?}; supported: {}",
                supported_versions().join(", ")
            ),
            Some(json!({ "supported": supported_versions(), "requested": requested })),
        ));
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
        return Err(refuse(
            StatusCode::NOT_FOUND,
            msg,
            codes::METHOD_NOT_FOUND,
            &format!("Method not found: {method} (not part of the 2026-07-28 revision)"),
            None,
        ));
    }
    let Some(member) = wire::name_param(method) else {
        return Ok(meta);
    };
    let top = TopLevel::parse(msg.params.as_deref())
        .map_err(|e| refuse(bad, msg, codes::INVALID_PARAMS, &e.to_string(), None))?;
    let body_name = top
        .string(member)
        .map_err(|e| refuse(bad, msg, codes::INVALID_PARAMS, &e.to_string(), None))?;
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
    top: &TopLevel<'_>,
    mapped: &[(String, String)],
) -> Result<(), Box<Response>> {
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
    mut msg: Message,
    meta: RequestMeta,
    acc: Accept,
) -> Response {
    match msg.kind() {
        Ok(Kind::Request) => {}
        Ok(Kind::Notification) => return StatusCode::ACCEPTED.into_response(),
        Ok(Kind::Response) => {
            return *refuse(
                StatusCode::BAD_REQUEST,
                &msg,
                codes::INVALID_REQUEST,
                "a 2026-07-28 client answers input requests by retrying its request (inputResponses), not with a JSON-RPC response",
                None,
            );
        }
        Err(e) => return *refuse(StatusCode::BAD_REQUEST, &msg, e.code(), &e.message(), None),
    }
    let meta = match validate(h, &msg, meta, &app) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let method = msg.method().to_owned();
    match method.as_str() {
        "server/discover" => {
            let id = msg
                .id
                .as_deref()
                .unwrap_or(&*jsonrpc::raw_null())
                .to_owned();
            return json_response(
                StatusCode::OK,
                jsonrpc::response_result(&id, &discover(&app)),
            );
        }
        "subscriptions/listen" => return listen(&app, &who, &msg).await,
        _ => {}
    }
    // MRTR members are the gateway's business; the upstream gets the rest.
    let (state, answers) = match take_mrtr_params(&mut msg) {
        Ok(x) => x,
        Err(e) => return rpc_error(&msg, &e),
    };
    let owner = Owner {
        tenant: who.tenant.clone(),
        method: method.clone(),
        name: wire::name_param(&method)
            .and_then(|m| TopLevel::parse(msg.params.as_deref()).ok()?.string(m).ok()),
    };
    let id = msg.id.clone().unwrap_or_else(jsonrpc::raw_null);
    // A retry names what the gateway parked: a bridged call waiting for input,
    // or a 2026-07-28 upstream's own input request (then a new request to it,
    // carrying the answers and its state, and not billed again).
    let mut resumed = None;
    if let Some(state) = state {
        match app.parking.take(&state, &owner) {
            Some(Held::Call(mut tail)) => {
                tail.deliver(&answers).await;
                return respond(app, owner, id, tail, acc).await;
            }
            Some(Held::Upstream(upstream_state)) => resumed = Some(upstream_state),
            None => {
                return rpc_error(
                    &msg,
                    &crate::error::CallError::InvalidParams(
                        "requestState is not valid: it is unknown, expired, already used, altered, or was issued for another call".into(),
                    ),
                );
            }
        }
    }
    let billable = Call::of(&msg).filter(|_| app.cfg.policy.audit && resumed.is_none());
    let meter = match billable {
        None => None,
        Some(Err(e)) => return rpc_error(&msg, &e),
        Some(Ok(call)) => match admit(&app, &who, call, &msg, None) {
            Ok(m) => Some(m),
            Err(r) => return *r,
        },
    };
    let modern = ModernCall::new(
        ClientCaps::from_capabilities(meta.client_capabilities.as_ref()),
        meta.log_level.as_deref(),
        answers,
        resumed.flatten(),
    );
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Out>();
    let (final_tx, final_rx) = oneshot::channel::<Vec<u8>>();
    let cancel = CancellationToken::new();
    let ctx = Ctx {
        app: app.clone(),
        principal: who,
        session: None,
        modern: Some(Arc::new(modern)),
        cancel: cancel.clone(),
        out: out_tx,
    };
    tokio::spawn(async move {
        let reply = dispatch::request(&ctx, &msg, meter).await;
        drop(ctx);
        let _ = final_tx.send(reply);
    });
    let tail = Tail {
        out: out_rx,
        reply: final_rx,
        pending: Vec::new(),
        cancel: cancel.drop_guard(),
    };
    respond(app, owner, id, tail, acc).await
}

/// Takes out what belongs to the client-to-gateway hop: `requestState` and
/// `inputResponses` (MRTR is the gateway's business) and the 2026-07-28
/// `_meta` keys (the upstream hop speaks its own revision; rmcp, for one,
/// refuses server-to-client requests when it sees a 2026 version there).
fn take_mrtr_params(
    msg: &mut Message,
) -> Result<(Option<String>, Map<String, Value>), crate::error::CallError> {
    use crate::error::CallError::InvalidParams;
    let Some(p) = msg.params.as_deref() else {
        return Ok((None, Map::new()));
    };
    // Values stay raw: the arguments are copied through, never re-read.
    let mut all =
        jsonrpc::raw_object(p).ok_or_else(|| InvalidParams("params must be an object".into()))?;
    let state = match all.remove("requestState") {
        None => None,
        Some(s) => Some(
            serde_json::from_str::<String>(s.get())
                .map_err(|_| InvalidParams("requestState must be a string".into()))?,
        ),
    };
    let answers = match all.remove("inputResponses") {
        None => Map::new(),
        Some(a) => serde_json::from_str::<Map<String, Value>>(a.get()).map_err(|_| {
            InvalidParams(
                "inputResponses must be an object mapping each inputRequests key to its result"
                    .into(),
            )
        })?,
    };
    let meta = all.remove("_meta").and_then(jsonrpc::raw_object);
    let kept = meta.map(|mut m| {
        m.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        m
    });
    let kept_raw = kept.filter(|m| !m.is_empty()).map(|m| jsonrpc::to_raw(&m));
    if let Some(m) = &kept_raw {
        all.insert("_meta".into(), m);
    }
    msg.params = Some(jsonrpc::to_raw(&all));
    Ok((state, answers))
}

/// What travels from a call to its HTTP response.
enum Frame {
    /// A notification (progress, logs): only on an SSE response.
    Event(Bytes),
    /// The last message: the result, an error, or an `InputRequiredResult`.
    Final(StatusCode, Vec<u8>),
}

/// Answers with JSON when the call's first frame is its last, else as SSE.
/// Closing the response (either kind) drops the tail, which cancels the call.
async fn respond(
    app: Arc<App>,
    owner: Owner,
    id: Box<RawValue>,
    tail: Tail,
    acc: Accept,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Frame>(64);
    tokio::spawn(pump(app, owner, id, tail, tx, acc.sse));
    let first = match rx.recv().await {
        Some(Frame::Final(status, body)) => return json_response(status, body),
        Some(Frame::Event(b)) => b,
        None => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                jsonrpc::response_error(None, codes::INTERNAL_ERROR, "internal error", None),
            );
        }
    };
    let head = futures::stream::once(async move { sse_event(&first) });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        let f = match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(_) => return Some((Bytes::from_static(b": keep-alive\n\n"), rx)),
        };
        let b = match f {
            Frame::Event(b) => sse_event(&b),
            Frame::Final(_, body) => sse_event(&body),
        };
        Some((b, rx))
    });
    use futures::StreamExt as _;
    let body = head.chain(rest).map(Ok::<Bytes, std::convert::Infallible>);
    let mut r = Response::new(Body::from_stream(body));
    sse_headers(&mut r);
    r
}

fn sse_event(b: &[u8]) -> Bytes {
    sse::encode(None, b, None)
}

/// Reads a call until its reply or its first input request, writing frames;
/// parks the call when the client must answer input first.
async fn pump(
    app: Arc<App>,
    owner: Owner,
    id: Box<RawValue>,
    mut tail: Tail,
    tx: mpsc::Sender<Frame>,
    sse: bool,
) {
    if tail.pending.is_empty() {
        loop {
            let o = tokio::select! {
                _ = tx.closed() => return, // the client left: dropping the tail cancels
                o = tail.out.recv() => o,
            };
            match o {
                Some(Out::Msg(m)) => {
                    if sse && tx.send(Frame::Event(m)).await.is_err() {
                        return;
                    }
                }
                Some(Out::Input(p)) => {
                    tail.pending.push(p);
                    // Several inputs asked together go out in one InputRequiredResult.
                    while let Ok(Some(o)) = tokio::time::timeout(SETTLE, tail.out.recv()).await {
                        match o {
                            Out::Input(p) => tail.pending.push(p),
                            Out::Msg(m) if sse => {
                                let _ = tx.send(Frame::Event(m)).await;
                            }
                            Out::Msg(_) => {}
                        }
                    }
                    break;
                }
                None => {
                    let reply = (&mut tail.reply).await.unwrap_or_else(|_| {
                        jsonrpc::response_error(
                            None,
                            codes::INTERNAL_ERROR,
                            "internal error: the call ended without an answer",
                            None,
                        )
                    });
                    let (status, body) = finish(&app, &owner, &id, &reply);
                    let _ = tx.send(Frame::Final(status, body)).await;
                    return;
                }
            }
        }
    }
    let state = crate::session::new_session_id().ok();
    let frame = match state {
        Some(state) => {
            let result = tail.input_required(&state);
            match app.parking.park(state, owner, Held::Call(tail)) {
                Ok(()) => Frame::Final(StatusCode::OK, jsonrpc::response_result(&id, &result)),
                Err(_dropped) => busy(&id),
            }
        }
        None => busy(&id),
    };
    let _ = tx.send(frame).await;
}

fn busy(id: &RawValue) -> Frame {
    Frame::Final(
        StatusCode::SERVICE_UNAVAILABLE,
        jsonrpc::response_error(
            Some(id),
            codes::INTERNAL_ERROR,
            "Service Unavailable: too many calls are waiting for client input",
            None,
        ),
    )
}

/// The client's view of a call's reply: its own request id, `resultType` on
/// results (with caching hints where the method has them), and the
/// 2026-07-28 code for an unknown resource (-32602 with `data.uri`).
fn finish(app: &App, owner: &Owner, id: &RawValue, reply: &[u8]) -> (StatusCode, Vec<u8>) {
    let method = owner.method.as_str();
    let internal = || {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            jsonrpc::response_error(Some(id), codes::INTERNAL_ERROR, "internal error", None),
        )
    };
    let Ok(m) = Message::parse(reply) else {
        return internal();
    };
    if let Some(r) = m.result {
        // The common case, a complete result, is decorated without re-reading
        // its values (a 5,000-tool list is a megabyte).
        if InputRequired::of(&r).is_none() {
            let cacheable = wire::is_cacheable(method);
            let hints: &[(&str, &str)] = if cacheable {
                &[
                    ("resultType", "\"complete\""),
                    ("ttlMs", "0"),
                    ("cacheScope", "\"private\""),
                ]
            } else {
                &[("resultType", "\"complete\"")]
            };
            let Some(out) = jsonrpc::add_members(&r, hints) else {
                return internal();
            };
            return (StatusCode::OK, jsonrpc::response_result(id, &out));
        }
        let Ok(mut obj) = serde_json::from_str::<Map<String, Value>>(r.get()) else {
            return internal();
        };
        obj.entry("resultType").or_insert_with(|| json!("complete"));
        if obj.get("resultType").and_then(Value::as_str) == Some("input_required") {
            // A 2026-07-28 upstream's input request: the client gets a state
            // bound to it (tenant, method, name); the upstream's own rides along.
            let theirs = match obj.remove("requestState") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            let Ok(ours) = crate::session::new_session_id() else {
                return internal();
            };
            if app
                .parking
                .park(ours.clone(), owner.clone(), Held::Upstream(theirs))
                .is_err()
            {
                return internal();
            }
            obj.insert("requestState".into(), json!(ours));
        }
        if wire::is_cacheable(method) {
            cache_hints(&mut obj);
        }
        return (
            StatusCode::OK,
            jsonrpc::response_result(id, &jsonrpc::to_raw(&obj)),
        );
    }
    let Some(e) = m.error else {
        return internal();
    };
    let Ok(mut err) = serde_json::from_str::<Map<String, Value>>(e.get()) else {
        return internal();
    };
    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
    if code == codes::RESOURCE_NOT_FOUND {
        err.insert("code".into(), json!(codes::INVALID_PARAMS));
    }
    let status = if code == codes::MISSING_CLIENT_CAPABILITY {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        jsonrpc::response_error_raw(Some(id), &jsonrpc::to_raw(&err)),
    )
}

/// Lists are filtered per tier, so they may be cached by this client only, and
/// only until the next `list_changed`.
fn cache_hints(obj: &mut Map<String, Value>) {
    obj.entry("ttlMs").or_insert_with(|| json!(0));
    obj.entry("cacheScope").or_insert_with(|| json!("private"));
}

/// `server/discover`: the versions this endpoint speaks and what the gateway
/// serves across its upstreams (the same capabilities `initialize` reports).
fn discover(app: &App) -> Box<RawValue> {
    let init: Map<String, Value> =
        serde_json::from_str(crate::health::initialize_result(app, version::MODERN).get())
            .unwrap_or_default();
    let mut out = Map::new();
    out.insert("resultType".into(), json!("complete"));
    out.insert("supportedVersions".into(), json!(supported_versions()));
    out.insert(
        "capabilities".into(),
        init.get("capabilities")
            .cloned()
            .unwrap_or_else(|| json!({})),
    );
    if let Some(i) = init.get("instructions") {
        out.insert("instructions".into(), i.clone());
    }
    cache_hints(&mut out);
    out.insert(
        "_meta".into(),
        json!({ wire::META_SERVER_INFO: {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")} }),
    );
    jsonrpc::to_raw(&out)
}

/// What one `subscriptions/listen` stream asked to hear.
#[derive(serde::Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct Filter {
    tools_list_changed: bool,
    prompts_list_changed: bool,
    resources_list_changed: bool,
    resource_subscriptions: Vec<String>,
}

struct Listener {
    tenant: Arc<str>,
    filter: Filter,
    /// The id of the `subscriptions/listen` request, which tags every notification.
    sub_id: Box<RawValue>,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// Open `subscriptions/listen` streams, which replace the session-based
/// standalone GET stream.
#[derive(Default)]
pub struct Listeners {
    map: std::sync::Mutex<HashMap<String, Listener>>,
}

impl Listeners {
    /// Sends a list-change notification to every stream that asked for it.
    pub fn list_changed(&self, method: &str) {
        self.send(method, None, |f| match method {
            "notifications/tools/list_changed" => f.tools_list_changed,
            "notifications/prompts/list_changed" => f.prompts_list_changed,
            "notifications/resources/list_changed" => f.resources_list_changed,
            _ => false,
        });
    }

    /// Sends `notifications/resources/updated` to the streams subscribed to `uri`.
    pub fn resource_updated(&self, uri: &str) {
        self.send(
            "notifications/resources/updated",
            Some(("uri", json!(uri))),
            |f| f.resource_subscriptions.iter().any(|u| u == uri),
        );
    }

    fn send(&self, method: &str, extra: Option<(&str, Value)>, wants: impl Fn(&Filter) -> bool) {
        let map = lock(&self.map);
        for l in map.values().filter(|l| wants(&l.filter)) {
            let mut params = Map::new();
            if let Some((k, v)) = &extra {
                params.insert((*k).to_owned(), v.clone());
            }
            params.insert("_meta".into(), tag(&l.sub_id));
            let _ =
                l.tx.send(jsonrpc::notification(method, Some(&jsonrpc::to_raw(&params))).into());
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tenant owning each open stream (for metrics and tests).
    pub fn tenants(&self) -> Vec<Arc<str>> {
        lock(&self.map).values().map(|l| l.tenant.clone()).collect()
    }
}

fn tag(sub_id: &RawValue) -> Value {
    let id: Value = serde_json::from_str(sub_id.get()).unwrap_or(Value::Null);
    json!({ wire::META_SUBSCRIPTION_ID: id })
}

/// Removes its listener when the stream is dropped (the client closed it),
/// and ends the upstream subscriptions nobody else holds.
struct Unlisten {
    app: Arc<App>,
    id: String,
    uris: Vec<(String, Arc<str>)>,
}

impl Drop for Unlisten {
    fn drop(&mut self) {
        lock(&self.app.listeners.map).remove(&self.id);
        let holder = format!("listen:{}", self.id);
        for (uri, server) in std::mem::take(&mut self.uris) {
            if self.app.unsubscribe(&uri, &holder) {
                let app = self.app.clone();
                tokio::spawn(async move {
                    subscription(&app, &server, "resources/unsubscribe", &uri).await;
                });
            }
        }
    }
}

/// Sends `resources/subscribe` or `resources/unsubscribe` for `uri` to its server.
async fn subscription(app: &Arc<App>, server: &str, method: &str, uri: &str) -> bool {
    let Some(srv) = app.server(server).cloned() else {
        return false;
    };
    let Ok(conn) = crate::upstreams::connection_for(app, &srv, None).await else {
        return false;
    };
    let params = jsonrpc::to_raw(&json!({ "uri": uri }));
    let r = conn
        .request(
            method,
            Some(&params),
            mcpgate_upstream::RequestOpts::default(),
        )
        .await;
    matches!(r, Ok(mcpgate_upstream::Reply::Result(_)))
}

/// `subscriptions/listen`: an SSE stream that opens with
/// `notifications/subscriptions/acknowledged` (naming what the gateway agreed
/// to send) and then carries the notifications its filter asked for, each
/// tagged with the listen request's id. Resource subscriptions are taken out
/// upstream for the URIs this tenant may read.
async fn listen(app: &Arc<App>, who: &Principal, msg: &Message) -> Response {
    #[derive(serde::Deserialize)]
    struct P {
        notifications: Filter,
    }
    let mut filter = match msg
        .params
        .as_deref()
        .map(|p| serde_json::from_str::<P>(p.get()))
    {
        Some(Ok(p)) => p.notifications,
        _ => {
            return *refuse(
                StatusCode::OK,
                msg,
                codes::INVALID_PARAMS,
                "Invalid params: subscriptions/listen takes {\"notifications\": {\"toolsListChanged\": true, …}}",
                None,
            );
        }
    };
    let Ok(key) = crate::session::new_session_id() else {
        return *refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            msg,
            codes::INTERNAL_ERROR,
            "Service Unavailable: cannot create a subscription",
            None,
        );
    };
    let sub_id = msg.id.clone().unwrap_or_else(jsonrpc::raw_null);
    let catalog = app.catalog();
    let holder = format!("listen:{key}");
    let mut held = Vec::new();
    for uri in std::mem::take(&mut filter.resource_subscriptions) {
        let Some(server) = catalog
            .resource(&uri)
            .filter(|_| who.tier.resources.allows(&uri))
        else {
            continue; // not agreed: left out of the acknowledgement
        };
        app.subscribe(&uri, &holder);
        if subscription(app, &server, "resources/subscribe", &uri).await {
            filter.resource_subscriptions.push(uri.clone());
        }
        held.push((uri, server));
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let mut ack = Map::new();
    ack.insert("notifications".into(), agreed(&filter));
    ack.insert("_meta".into(), tag(&sub_id));
    let ack = jsonrpc::notification(
        "notifications/subscriptions/acknowledged",
        Some(&jsonrpc::to_raw(&ack)),
    );
    lock(&app.listeners.map).insert(
        key.clone(),
        Listener {
            tenant: who.tenant.clone(),
            filter,
            sub_id,
            tx,
        },
    );
    let guard = Unlisten {
        app: app.clone(),
        id: key,
        uris: held,
    };
    let head = futures::stream::once(async move { sse_event(&ack) });
    let rest = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
            Ok(Some(b)) => Some((sse_event(&b), (rx, guard))),
            Ok(None) => None,
            Err(_) => Some((Bytes::from_static(b": keep-alive\n\n"), (rx, guard))),
        }
    });
    use futures::StreamExt as _;
    let body = head.chain(rest).map(Ok::<Bytes, std::convert::Infallible>);
    let mut r = Response::new(Body::from_stream(body));
    sse_headers(&mut r);
    r
}

/// The filter as acknowledged: only the members the client asked for.
fn agreed(f: &Filter) -> Value {
    let mut m = Map::new();
    for (k, on) in [
        ("toolsListChanged", f.tools_list_changed),
        ("promptsListChanged", f.prompts_list_changed),
        ("resourcesListChanged", f.resources_list_changed),
    ] {
        if on {
            m.insert(k.into(), json!(true));
        }
    }
    if !f.resource_subscriptions.is_empty() {
        m.insert(
            "resourceSubscriptions".into(),
            json!(f.resource_subscriptions),
        );
    }
    Value::Object(m)
}
