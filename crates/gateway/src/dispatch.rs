//! What each MCP method does, in one match: answer locally, fan out and merge,
//! or resolve the name to its upstream and forward. While a forwarded call is in
//! flight, what the upstream sends about it (progress, logs, sampling,
//! elicitation, roots, cancellation) is relayed to this call's client stream,
//! with progress tokens and server-request ids remapped so that two sessions
//! can never collide. Params are edited at the top level only; everything
//! below (arguments, `_meta`, extensions) is forwarded byte for byte.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_upstream::{Connection, Incoming, Reply, RequestOpts, UpstreamError};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::{Answer, App};
use crate::auth::Principal;
use crate::catalog::ListKind;
use crate::error::CallError;
use crate::lock;
use crate::policy::Meter;
use crate::session::Session;
use crate::upstreams::{self, Status};
use mcpgate_store::Outcome;

/// What reaches the client while its request runs.
pub enum Out {
    /// A serialised JSON-RPC message (a notification, or for a session-based
    /// client a server-to-client request).
    Msg(Bytes),
    /// For a 2026-07-28 client: an upstream request the client must answer by
    /// retrying its call (MRTR); the upstream waits for it meanwhile.
    Input(crate::mrtr::Pending),
}

pub type Outbox = mpsc::UnboundedSender<Out>;

pub struct Ctx {
    pub app: Arc<App>,
    pub principal: Arc<Principal>,
    pub session: Option<Arc<Session>>,
    /// Set for a 2026-07-28 client: its declared capabilities, log level and answers.
    pub modern: Option<Arc<crate::mrtr::ModernCall>>,
    /// Cancelled when a 2026-07-28 client closes the request's stream.
    pub cancel: CancellationToken,
    pub out: Outbox,
}

impl Ctx {
    fn send(&self, msg: Bytes) {
        let _ = self.out.send(Out::Msg(msg));
    }
}

/// Handles one client request and returns the serialised response. A billable
/// request comes with its [`Meter`] (it passed authorization and the limits).
pub async fn request(ctx: &Ctx, msg: &Message, meter: Option<Meter>) -> Vec<u8> {
    let id = msg.id.as_deref();
    match handle(ctx, msg, meter).await {
        Ok(Reply::Result(r)) => match id {
            Some(id) => jsonrpc::response_result(id, &r),
            None => jsonrpc::response_error(
                None,
                mcpgate_proto::codes::INVALID_REQUEST,
                "request without id",
                None,
            ),
        },
        Ok(Reply::Error(e)) => jsonrpc::response_error_raw(id, &e),
        Err(e) => {
            let (code, data) = e.wire();
            jsonrpc::response_error(id, code, &e.to_string(), data.as_ref())
        }
    }
}

fn empty_result() -> Reply {
    Reply::Result(jsonrpc::to_raw(&serde_json::json!({})))
}

async fn handle(ctx: &Ctx, msg: &Message, meter: Option<Meter>) -> Result<Reply, CallError> {
    let app = &ctx.app;
    let params = msg.params.as_deref();
    match msg.method() {
        "ping" => Ok(empty_result()),
        "tools/list" => list(ctx, ListKind::Tools, params),
        "prompts/list" => list(ctx, ListKind::Prompts, params),
        "resources/list" => list(ctx, ListKind::Resources, params),
        "resources/templates/list" => list(ctx, ListKind::Templates, params),
        "tools/call" => call_named(ctx, msg, Named::Tool, meter).await,
        "prompts/get" => call_named(ctx, msg, Named::Prompt, meter).await,
        "resources/read" => {
            let uri = TopLevel::parse(params)?.string("uri")?;
            let Some(server) = app.catalog().resource(&uri) else {
                let e = CallError::ResourceNotFound(uri);
                if let Some(m) = &meter {
                    m.deny(&app.store, None, Outcome::NotFound, &e.to_string());
                }
                return Err(e);
            };
            metered(
                ctx,
                meter,
                &server,
                "resources/read",
                params.map(ToOwned::to_owned),
                msg,
            )
            .await
        }
        "resources/subscribe" => {
            let uri = TopLevel::parse(params)?.string("uri")?;
            let server = app
                .catalog()
                .resource(&uri)
                .filter(|_| ctx.principal.tier.resources.allows(&uri))
                .ok_or(CallError::ResourceNotFound(uri.clone()))?;
            let reply = forward(
                ctx,
                &server,
                "resources/subscribe",
                params.map(ToOwned::to_owned),
                msg,
            )
            .await?;
            if let (Reply::Result(_), Some(s)) = (&reply, &ctx.session) {
                app.subscribe(&uri, &s.id);
            }
            Ok(reply)
        }
        "resources/unsubscribe" => {
            let uri = TopLevel::parse(params)?.string("uri")?;
            let server = app
                .catalog()
                .resource(&uri)
                .filter(|_| ctx.principal.tier.resources.allows(&uri))
                .ok_or(CallError::ResourceNotFound(uri.clone()))?;
            let last = ctx
                .session
                .as_ref()
                .is_none_or(|s| app.unsubscribe(&uri, &s.id));
            if last {
                forward(
                    ctx,
                    &server,
                    "resources/unsubscribe",
                    params.map(ToOwned::to_owned),
                    msg,
                )
                .await
            } else {
                Ok(empty_result())
            }
        }
        "completion/complete" => complete(ctx, params, msg).await,
        "logging/setLevel" => {
            set_level(ctx, params).await;
            Ok(empty_result())
        }
        "initialize" => Err(CallError::InvalidParams(
            "initialize must be the first request of a session".into(),
        )),
        other => Err(CallError::MethodNotFound(other.to_owned())),
    }
}

#[derive(Clone, Copy)]
enum Named {
    Tool,
    Prompt,
}

/// `tools/call` and `prompts/get`: resolve the exposed name, rename it to the
/// upstream's own, forward.
async fn call_named(
    ctx: &Ctx,
    msg: &Message,
    kind: Named,
    meter: Option<Meter>,
) -> Result<Reply, CallError> {
    let p = TopLevel::parse(msg.params.as_deref())?;
    let name = p.string("name")?;
    let catalog = ctx.app.catalog();
    let (found, unknown): (_, fn(String) -> CallError) = match kind {
        Named::Tool => (catalog.tool(&name), CallError::UnknownTool),
        Named::Prompt => (catalog.prompt(&name), CallError::UnknownPrompt),
    };
    let Some(route) = found.cloned() else {
        let e = not_routable(&ctx.app, &catalog, name, unknown);
        if let Some(m) = &meter {
            let (outcome, server) = match &e {
                CallError::Unavailable { server, .. } => {
                    (Outcome::Unavailable, Some(server.as_str()))
                }
                _ => (Outcome::NotFound, None),
            };
            m.deny(&ctx.app.store, server, outcome, &e.to_string());
        }
        return Err(e);
    };
    let params = p.with("name", &route.name)?;
    metered(ctx, meter, &route.server, msg.method(), Some(params), msg).await
}

/// Forwards a billable call: its cost is reserved and its usage row committed
/// first, and the row is finished with the outcome afterwards.
async fn metered(
    ctx: &Ctx,
    meter: Option<Meter>,
    server: &Arc<str>,
    method: &str,
    params: Option<Box<RawValue>>,
    msg: &Message,
) -> Result<Reply, CallError> {
    let Some(m) = meter else {
        return forward(ctx, server, method, params, msg).await;
    };
    let reservation = m.reserve(&ctx.app.store, server).await?;
    let out = forward(ctx, server, method, params, msg).await;
    m.finish(&ctx.app.store, &reservation, &out);
    out
}

/// The error for a tool or prompt name with no route: "unavailable" when the
/// name belongs to a server that is down (it offered it before, or the name
/// carries its prefix), else the spec's unknown-name error.
fn not_routable(
    app: &App,
    catalog: &crate::catalog::Catalog,
    name: String,
    unknown: fn(String) -> CallError,
) -> CallError {
    let by_prefix = || {
        app.servers.iter().find(|s| {
            s.cfg.prefix == crate::config::Prefix::Always
                && lock(&s.state).status != Status::Ready
                && name
                    .strip_prefix(s.name.as_ref())
                    .is_some_and(|rest| rest.starts_with(app.cfg.separator.as_str()))
        })
    };
    let owner = catalog
        .offline_owner(&name)
        .and_then(|o| app.server(o))
        .or_else(by_prefix);
    match owner {
        Some(s) => CallError::Unavailable {
            server: s.name.to_string(),
            reason: lock(&s.state)
                .last_error
                .clone()
                .unwrap_or_else(|| "it is not ready".into()),
        },
        None => unknown(name),
    }
}

fn list(ctx: &Ctx, kind: ListKind, params: Option<&RawValue>) -> Result<Reply, CallError> {
    #[derive(Deserialize, Default)]
    struct P {
        cursor: Option<String>,
    }
    let p: P = match params {
        Some(p) => {
            serde_json::from_str(p.get()).map_err(|e| CallError::InvalidParams(e.to_string()))?
        }
        None => P::default(),
    };
    let catalog = ctx.app.catalog();
    let empty = crate::catalog::View::default();
    let view = catalog.view(&ctx.principal.tier.name).unwrap_or(&empty);
    catalog
        .page(kind, p.cursor.as_deref(), ctx.app.cfg.page_size, Some(view))
        .map(Reply::Result)
        .map_err(CallError::InvalidParams)
}

async fn complete(ctx: &Ctx, params: Option<&RawValue>, msg: &Message) -> Result<Reply, CallError> {
    #[derive(Deserialize)]
    struct Ref {
        #[serde(rename = "type")]
        kind: String,
        name: Option<String>,
        uri: Option<String>,
    }
    let p = TopLevel::parse(params)?;
    let r = p
        .get("ref")
        .ok_or_else(|| CallError::InvalidParams("missing \"ref\"".into()))?;
    let parsed: Ref = serde_json::from_str(r.get())
        .map_err(|e| CallError::InvalidParams(format!("bad \"ref\": {e}")))?;
    let catalog = ctx.app.catalog();
    match (parsed.kind.as_str(), parsed.name, parsed.uri) {
        ("ref/prompt", Some(name), _) => {
            let route = catalog
                .prompt(&name)
                .filter(|_| ctx.principal.tier.prompts.allows(&name))
                .cloned()
                .ok_or(CallError::UnknownPrompt(name))?;
            let new_ref = TopLevel::parse(Some(r))?.with("name", &route.name)?;
            let params = p.with_raw("ref", &new_ref)?;
            forward(ctx, &route.server, "completion/complete", Some(params), msg).await
        }
        ("ref/resource", _, Some(uri)) => {
            let server = catalog
                .resource(&uri)
                .filter(|_| ctx.principal.tier.resources.allows(&uri))
                .ok_or(CallError::ResourceNotFound(uri))?;
            forward(
                ctx,
                &server,
                "completion/complete",
                params.map(ToOwned::to_owned),
                msg,
            )
            .await
        }
        _ => Err(CallError::InvalidParams(
            "\"ref\" must be ref/prompt with a name or ref/resource with a uri".into(),
        )),
    }
}

/// Sends the level to every ready upstream that supports logging (and this session's own).
async fn set_level(ctx: &Ctx, params: Option<&RawValue>) {
    let mut conns: Vec<Connection> = ctx
        .app
        .servers
        .iter()
        .filter_map(|s| {
            let st = lock(&s.state);
            (st.status == Status::Ready)
                .then(|| st.conn.clone())
                .flatten()
        })
        .collect();
    if let Some(s) = &ctx.session {
        conns.extend(s.private.lock().await.values().cloned());
    }
    let calls = conns
        .into_iter()
        .filter(|c| c.init_info().is_some_and(|i| i.has_capability("logging")))
        .map(|c| async move {
            if let Err(e) = c
                .request("logging/setLevel", params, RequestOpts::default())
                .await
            {
                tracing::debug!(server = %c.name(), "logging/setLevel failed: {e}");
            }
        });
    futures::future::join_all(calls).await;
}

/// Forwards one request to `server` and relays what it sends about it until it answers.
async fn forward(
    ctx: &Ctx,
    server: &Arc<str>,
    method: &str,
    params: Option<Box<RawValue>>,
    msg: &Message,
) -> Result<Reply, CallError> {
    let app = &ctx.app;
    let srv = app
        .server(server)
        .ok_or_else(|| CallError::Internal(format!("route to unknown server {server}")))?
        .clone();
    if let Err(left) = srv.breaker.admit() {
        return Err(CallError::Unavailable {
            server: server.to_string(),
            reason: format!(
                "circuit open after {} consecutive failures; next probe in {} ms",
                srv.cfg.breaker_failures,
                left.as_millis()
            ),
        });
    }
    let conn = match upstreams::connection_for(app, &srv, ctx.session.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            srv.breaker.record(false);
            return Err(e);
        }
    };
    let (params, progress) = remap_progress(app, params)?;
    let params = if conn.is_modern() {
        Some(crate::mrtr::for_modern_upstream(
            ctx.modern.as_deref(),
            ctx.session.as_ref().map(|s| &s.caps),
            params.as_deref(),
        )?)
    } else {
        params
    };
    let cancel = ctx.cancel.child_token();
    let client_id = msg.id.as_ref().map(|i| i.get().to_owned());
    if let (Some(s), Some(id)) = (&ctx.session, &client_id) {
        lock(&s.inflight).insert(id.clone(), cancel.clone());
    }
    let mut outcome = exchange(
        ctx,
        &conn,
        method,
        params.as_deref(),
        progress.as_ref(),
        &cancel,
    )
    .await;
    // A 2026-07-28 upstream asks a session-based client for input: ask it with
    // server-to-client requests on its stream, then retry with the answers.
    if ctx.modern.is_none() {
        let mut rounds = 0;
        while let Ok(Reply::Result(r)) = &outcome {
            let Some(ir) = crate::mrtr::InputRequired::of(r) else {
                break;
            };
            rounds += 1;
            if rounds > crate::mrtr::MAX_ROUNDS {
                outcome = Err(UpstreamError::Protocol {
                    server: server.to_string(),
                    detail: format!(
                        "asked for client input more than {} times",
                        crate::mrtr::MAX_ROUNDS
                    ),
                });
                break;
            }
            let answers = match ask_client(ctx, &srv, &ir).await {
                Ok(a) => a,
                Err(e) => {
                    if let (Some(s), Some(id)) = (&ctx.session, &client_id) {
                        lock(&s.inflight).remove(id);
                    }
                    return Err(e);
                }
            };
            let retry = ir.retry_params(params.as_deref(), answers)?;
            outcome = exchange(ctx, &conn, method, Some(&retry), progress.as_ref(), &cancel).await;
        }
    }
    if let (Some(s), Some(id)) = (&ctx.session, &client_id) {
        lock(&s.inflight).remove(id);
    }
    // A JSON-RPC error from the server still proves it works; only transport
    // failures count against the breaker, and a client's cancel counts for nothing.
    match &outcome {
        Ok(_) => srv.breaker.record(true),
        Err(UpstreamError::Cancelled { .. }) => {}
        Err(e) => {
            srv.breaker.record(false);
            if let UpstreamError::AuthFailed { .. } = e {
                let mut st = lock(&srv.state);
                st.status = Status::AuthFailed;
                st.last_error = Some(e.to_string());
            }
        }
    }
    outcome.map_err(CallError::Upstream)
}

/// One request to the upstream, relaying what it sends about it until it answers.
async fn exchange(
    ctx: &Ctx,
    conn: &Connection,
    method: &str,
    params: Option<&RawValue>,
    progress: Option<&ProgressMap>,
    cancel: &CancellationToken,
) -> Result<Reply, UpstreamError> {
    let (relay_tx, mut relay_rx) = mpsc::unbounded_channel();
    let opts = RequestOpts {
        relay: Some(relay_tx),
        progress_token: progress.map(|p| p.ours.clone()),
        cancel: Some(cancel.clone()),
        timeout: None,
        headers: param_headers(ctx, conn, method, params),
    };
    let call = conn.request(method, params, opts);
    tokio::pin!(call);
    let outcome = loop {
        tokio::select! {
            biased;
            Some(inc) = relay_rx.recv() => relay(ctx, conn, inc, progress).await,
            r = &mut call => break r,
        }
    };
    while let Ok(inc) = relay_rx.try_recv() {
        relay(ctx, conn, inc, progress).await;
    }
    outcome
}

/// `Mcp-Param-*` headers for a `tools/call` to a 2026-07-28 upstream: each
/// argument the tool maps to a header (`x-mcp-header`), encoded as the
/// revision says, whichever era the client speaks.
fn param_headers(
    ctx: &Ctx,
    conn: &Connection,
    method: &str,
    params: Option<&RawValue>,
) -> Vec<(String, String)> {
    let catalog = ctx.app.catalog();
    if method != "tools/call" || !conn.is_modern() || !catalog.has_header_params() {
        return Vec::new();
    }
    #[derive(Deserialize)]
    struct P {
        name: String,
        #[serde(default)]
        arguments: serde_json::Map<String, serde_json::Value>,
    }
    let Some(p) = params.and_then(|p| serde_json::from_str::<P>(p.get()).ok()) else {
        return Vec::new();
    };
    // The catalog knows the tool by its exposed name; params carry the upstream's.
    let Some(exposed) = catalog.exposed_tool(conn.name(), &p.name) else {
        return Vec::new();
    };
    catalog
        .header_params(&exposed)
        .iter()
        .filter_map(|(arg, suffix)| {
            let value = match p.arguments.get(arg)? {
                serde_json::Value::String(s) => s.clone(),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => v.to_string(),
                _ => return None,
            };
            Some((
                format!("{}{suffix}", mcpgate_proto::modern::HEADER_PARAM_PREFIX),
                mcpgate_proto::modern::encode_header_value(&value),
            ))
        })
        .collect()
}

/// Sends each input request of a 2026-07-28 upstream to a session-based
/// client as a server-to-client request, and collects the answers by key.
async fn ask_client(
    ctx: &Ctx,
    srv: &crate::upstreams::Server,
    ir: &crate::mrtr::InputRequired,
) -> Result<serde_json::Map<String, serde_json::Value>, CallError> {
    let session = ctx.session.as_ref();
    let mut waits = Vec::new();
    for (key, req) in &ir.requests {
        let allowed = session.is_some_and(|s| s.caps.allows(&req.method));
        if !allowed {
            let cap = crate::session::ClientCaps::needed_by(&req.method).unwrap_or("a capability");
            return Err(CallError::MissingCapability {
                capability: cap.to_owned(),
                method: req.method.clone(),
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gid = ctx
            .app
            .register_server_request(Answer::Bridge(tx), session.map(|s| s.id.as_str()));
        let params = req.params.as_ref().map(jsonrpc::to_raw);
        ctx.send(
            jsonrpc::request(
                jsonrpc::raw_string(&gid).get(),
                &req.method,
                params.as_deref(),
            )
            .into(),
        );
        waits.push((key.clone(), rx));
    }
    let timeout = srv.cfg.spec.timeout;
    let mut answers = serde_json::Map::new();
    for (key, rx) in waits {
        let reply = tokio::select! {
            r = rx => r.map_err(|_| CallError::Internal("the client's answer was lost".into()))?,
            _ = tokio::time::sleep(timeout) => {
                return Err(CallError::Upstream(UpstreamError::Timeout { server: srv.name.to_string(), ms: timeout.as_millis() }));
            }
            _ = ctx.cancel.cancelled() => {
                return Err(CallError::Upstream(UpstreamError::Cancelled { server: srv.name.to_string() }));
            }
        };
        match reply {
            Reply::Result(r) => {
                answers.insert(key, serde_json::from_str(r.get()).unwrap_or_default());
            }
            Reply::Error(e) => {
                return Err(CallError::InvalidParams(format!(
                    "the client refused the server's {key} request: {}",
                    e.get()
                )));
            }
        }
    }
    Ok(answers)
}

struct ProgressMap {
    ours: String,
    theirs: Box<RawValue>,
}

/// Replaces the client's progress token with one unique across sessions.
fn remap_progress(
    app: &App,
    params: Option<Box<RawValue>>,
) -> Result<(Option<Box<RawValue>>, Option<ProgressMap>), CallError> {
    let Some(p) = params else {
        return Ok((None, None));
    };
    if !p.get().contains("progressToken") {
        return Ok((Some(p), None));
    }
    let top = TopLevel::parse(Some(&p))?;
    let Some(meta) = top.get("_meta") else {
        return Ok((Some(p), None));
    };
    let meta_map = TopLevel::parse(Some(meta))?;
    let Some(theirs) = meta_map.get("progressToken") else {
        return Ok((Some(p), None));
    };
    let ours = app.new_progress_token();
    let ours_raw =
        RawValue::from_string(ours.clone()).map_err(|e| CallError::Internal(e.to_string()))?;
    let new_meta = meta_map.with_raw("progressToken", &ours_raw)?;
    let new_params = top.with_raw("_meta", &new_meta)?;
    Ok((
        Some(new_params),
        Some(ProgressMap {
            ours,
            theirs: theirs.to_owned(),
        }),
    ))
}

/// Relays one message an upstream sent about the call in flight.
async fn relay(ctx: &Ctx, conn: &Connection, inc: Incoming, progress: Option<&ProgressMap>) {
    match inc {
        Incoming::Notification { method, params } => {
            let params = match (method.as_str(), params) {
                ("notifications/progress", Some(p)) => match progress {
                    Some(pm) => replace_key(&p, "progressToken", &pm.theirs).unwrap_or(p),
                    None => return, // progress for a token this call did not ask for
                },
                ("notifications/cancelled", Some(_)) if ctx.modern.is_some() => return,
                ("notifications/cancelled", Some(p)) => {
                    let gid = TopLevel::parse(Some(&p))
                        .ok()
                        .and_then(|t| t.get("requestId").map(|r| r.get().to_owned()))
                        .and_then(|uid| ctx.app.server_request_gid(conn, &uid));
                    match gid {
                        Some(g) => {
                            replace_key(&p, "requestId", &jsonrpc::raw_string(&g)).unwrap_or(p)
                        }
                        None => return,
                    }
                }
                ("notifications/message", Some(p)) => match &ctx.modern {
                    Some(m) if !m.wants_log(&p) => return,
                    _ => p,
                },
                (_, p) => match p {
                    Some(p) => p,
                    None => {
                        ctx.send(jsonrpc::notification(&method, None).into());
                        return;
                    }
                },
            };
            ctx.send(jsonrpc::notification(&method, Some(&params)).into());
        }
        Incoming::Request { id, method, params } if ctx.modern.is_some() => {
            if let Some(m) = &ctx.modern {
                crate::mrtr::upstream_asks(ctx, m, conn, id, method, params).await;
            }
        }
        Incoming::Request { id, method, params } => {
            let allowed = ctx.session.as_ref().is_none_or(|s| s.caps.allows(&method));
            if !allowed {
                let err = jsonrpc::error_object(
                    mcpgate_proto::codes::METHOD_NOT_FOUND,
                    &format!("the client did not declare the capability {method} needs"),
                    None,
                );
                let _ = conn.respond(&id, Reply::Error(err)).await;
                return;
            }
            let gid = ctx.app.register_server_request(
                Answer::Upstream {
                    conn: conn.clone(),
                    upstream_id: id,
                },
                ctx.session.as_ref().map(|s| s.id.as_str()),
            );
            let gid_raw = jsonrpc::raw_string(&gid);
            ctx.send(jsonrpc::request(gid_raw.get(), &method, params.as_deref()).into());
        }
    }
}

/// Delivers a client's answer to a relayed server-to-client request.
pub async fn client_response(app: &App, session: Option<&Session>, msg: Message) -> bool {
    let Some(gid) = msg
        .id
        .as_ref()
        .and_then(|i| serde_json::from_str::<String>(i.get()).ok())
    else {
        return false;
    };
    let Some(p) = app.take_server_request(&gid, session.map(|s| s.id.as_str())) else {
        return false;
    };
    let reply = match (msg.result, msg.error) {
        (_, Some(e)) => Reply::Error(e),
        (Some(r), None) => Reply::Result(r),
        (None, None) => return false,
    };
    match p.target {
        Answer::Upstream { conn, upstream_id } => {
            if let Err(e) = conn.respond(&upstream_id, reply).await {
                tracing::warn!(server = %conn.name(), "could not deliver the client's answer: {e}");
            }
        }
        Answer::Bridge(tx) => {
            let _ = tx.send(reply);
        }
    }
    true
}

/// Cancels the call a client's `notifications/cancelled` names.
pub fn client_cancelled(session: Option<&Session>, params: Option<&RawValue>) {
    let Some(s) = session else { return };
    let Some(id) = TopLevel::parse(params)
        .ok()
        .and_then(|t| t.get("requestId").map(|r| r.get().to_owned()))
    else {
        return;
    };
    if let Some(t) = lock(&s.inflight).remove(&id) {
        t.cancel();
    }
}

fn replace_key(obj: &RawValue, key: &str, value: &RawValue) -> Option<Box<RawValue>> {
    TopLevel::parse(Some(obj)).ok()?.with_raw(key, value).ok()
}

/// A JSON object's top-level members, with values left raw.
pub(crate) struct TopLevel<'a> {
    map: BTreeMap<String, &'a RawValue>,
}

impl<'a> TopLevel<'a> {
    pub(crate) fn parse(params: Option<&'a RawValue>) -> Result<TopLevel<'a>, CallError> {
        let Some(p) = params else {
            return Ok(TopLevel {
                map: BTreeMap::new(),
            });
        };
        serde_json::from_str(p.get())
            .map(|map| TopLevel { map })
            .map_err(|_| CallError::InvalidParams("params must be an object".into()))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.map.get(key).copied()
    }

    pub(crate) fn string(&self, key: &str) -> Result<String, CallError> {
        let raw = self
            .get(key)
            .ok_or_else(|| CallError::InvalidParams(format!("missing \"{key}\"")))?;
        serde_json::from_str::<String>(raw.get())
            .map_err(|_| CallError::InvalidParams(format!("\"{key}\" must be a string")))
    }

    fn with(&self, key: &str, value: &str) -> Result<Box<RawValue>, CallError> {
        self.with_raw(key, &jsonrpc::raw_string(value))
    }

    pub(crate) fn with_raw(&self, key: &str, value: &RawValue) -> Result<Box<RawValue>, CallError> {
        let mut m: BTreeMap<&str, &RawValue> =
            self.map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        m.insert(key, value);
        serde_json::value::to_raw_value(&m).map_err(|e| CallError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_edit_keeps_nested_bytes() {
        let p = RawValue::from_string(r#"{"name":"a__x","arguments":{"k":[1,2.50,"\u00e9"]},"_meta":{"progressToken":7,"z":1}}"#.into()).unwrap();
        let t = TopLevel::parse(Some(&p)).unwrap();
        let out = t.with("name", "x").unwrap();
        assert!(
            out.get().contains(r#""arguments":{"k":[1,2.50,"\u00e9"]}"#),
            "{}",
            out.get()
        );
        assert!(out.get().contains(r#""name":"x""#));
    }
}
