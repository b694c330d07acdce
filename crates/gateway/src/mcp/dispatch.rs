//! What each MCP request method does, in one closed match: answer locally
//! (ping, the `*/list` pages filtered by tier), keep the session's log level
//! (`logging/setLevel`, in `logging`), or resolve the name to its upstream
//! and `forward` (billable calls through their `Meter`). Three methods are not here because their answer shapes the
//! HTTP exchange itself: `initialize` (it opens a session: `lifecycle`),
//! `server/discover` (`modern`) and `subscriptions/listen` (a stream: `listen`).

use std::sync::Arc;

use bytes::Bytes;
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_store::Outcome;
use mcpgate_upstream::Reply;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::ctx::Ctx;
use super::forward::forward;
use super::listen;
use super::logging;
use super::params::Params;
use crate::config::Prefix;
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::catalog::{Catalog, ListKind, PageShape, Route};
use crate::state::error::CallError;
use crate::state::policy::Meter;
use crate::state::resource_uris;
use crate::state::servers::Status;
use mcpgate_proto::locks::lock;

/// Handles one client request and returns the serialised response. A billable
/// request comes with its [`Meter`] (it passed authorization and the limits).
pub(crate) async fn request(ctx: &Ctx, msg: &Message, meter: Option<Meter>) -> Vec<u8> {
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
        m @ ("tools/list" | "prompts/list" | "resources/list" | "resources/templates/list") => {
            list(ctx, list_kind(m).unwrap_or(ListKind::Tools), params)
        }
        "tools/call" => call_named(ctx, msg, Named::Tool, meter).await,
        "prompts/get" => call_named(ctx, msg, Named::Prompt, meter).await,
        "resources/read" => {
            let p = Params::parse(params)?;
            let uri = p.string("uri")?;
            let catalog = app.catalog();
            let Some(route) = catalog.resource(&uri) else {
                let e = CallError::ResourceNotFound(uri);
                if let Some(m) = &meter {
                    m.deny(
                        &app.store,
                        &app.metrics,
                        None,
                        Outcome::NotFound,
                        &e.to_string(),
                    );
                }
                return Err(e);
            };
            let ns = catalog
                .resource_namespace_of(&route.server)
                .map(str::to_owned);
            drop(catalog);
            let params = match ns {
                Some(_) => Some(p.with("uri", &route.name)),
                None => params.map(ToOwned::to_owned),
            };
            let reply = metered(ctx, meter, &route.server, "resources/read", params, msg).await;
            Ok(exposed(ns.as_deref(), "resources/read", reply?))
        }
        // Rare methods are boxed, so every call's future stays small.
        "resources/subscribe" => Box::pin(subscribe(ctx, params, msg)).await,
        "resources/unsubscribe" => Box::pin(unsubscribe(ctx, params, msg)).await,
        "completion/complete" => Box::pin(complete(ctx, params, msg)).await,
        "logging/setLevel" => {
            Box::pin(logging::set_level(ctx, params)).await?;
            Ok(empty_result())
        }
        "initialize" => Err(CallError::InvalidParams(
            "initialize must be the first request of a session".into(),
        )),
        other => Err(CallError::MethodNotFound(other.to_owned())),
    }
}

/// The params of a `resources/subscribe` or `unsubscribe`, the URI it names
/// and where that resource lives, if the caller's tier may see it.
fn subscription_target<'a>(
    ctx: &Ctx,
    params: Option<&'a RawValue>,
) -> Result<(Params<'a>, String, Route), CallError> {
    let p = Params::parse(params)?;
    let uri = p.string("uri")?;
    let route = ctx
        .app
        .catalog()
        .resource_for(&uri, &ctx.principal.tier)
        .ok_or(CallError::ResourceNotFound(uri.clone()))?;
    Ok((p, uri, route))
}

/// `resources/subscribe`: to the upstream, or for a 2026-07-28-only upstream
/// through the gateway's own `subscriptions/listen` stream.
async fn subscribe(
    ctx: &Ctx,
    params: Option<&RawValue>,
    msg: &Message,
) -> Result<Reply, CallError> {
    let app = &ctx.app;
    let (p, uri, route) = subscription_target(ctx, params)?;
    let server = route.server;
    if ctx.session.is_some()
        && listen::reaches_statelessly(app, &server, ctx.session.as_ref()).await
    {
        // No resources/subscribe in 2026-07-28: a listen stream upstream stands in for it.
        if !listen::subscription(app, &server, "resources/subscribe", &route.name).await {
            return Err(CallError::Unavailable {
                server: server.to_string(),
                reason: "it offers no resource subscriptions".into(),
            });
        }
        if let Some(s) = &ctx.session {
            app.subscriptions.subscribe(&uri, &s.id);
        }
        return Ok(empty_result());
    }
    let reply = forward(
        ctx,
        &server,
        "resources/subscribe",
        Some(p.with("uri", &route.name)),
        msg,
    )
    .await?;
    if let (Reply::Result(_), Some(s)) = (&reply, &ctx.session) {
        app.subscriptions.subscribe(&uri, &s.id);
    }
    Ok(reply)
}

/// `resources/unsubscribe`: the last session to leave a URI unsubscribes upstream.
async fn unsubscribe(
    ctx: &Ctx,
    params: Option<&RawValue>,
    msg: &Message,
) -> Result<Reply, CallError> {
    let app = &ctx.app;
    let (p, uri, route) = subscription_target(ctx, params)?;
    let server = route.server;
    let last = ctx
        .session
        .as_ref()
        .is_none_or(|s| app.subscriptions.unsubscribe(&uri, &s.id));
    if last && listen::reaches_statelessly(app, &server, ctx.session.as_ref()).await {
        listen::subscription(app, &server, "resources/unsubscribe", &route.name).await;
        Ok(empty_result())
    } else if last {
        forward(
            ctx,
            &server,
            "resources/unsubscribe",
            Some(p.with("uri", &route.name)),
            msg,
        )
        .await
    } else {
        Ok(empty_result())
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
    let p = Params::parse(msg.params.as_deref())?;
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
            m.deny(
                &ctx.app.store,
                &ctx.app.metrics,
                server,
                outcome,
                &e.to_string(),
            );
        }
        return Err(e);
    };
    let params = p.with("name", &route.name);
    let ns = catalog
        .resource_namespace_of(&route.server)
        .map(str::to_owned);
    drop(catalog);
    let reply = metered(ctx, meter, &route.server, msg.method(), Some(params), msg).await?;
    Ok(exposed(ns.as_deref(), msg.method(), reply))
}

/// A result from a server with namespaced resource URIs, with the URIs it
/// carries namespaced too (`state/resource_uris`); any other reply as it is.
fn exposed(ns: Option<&str>, method: &str, reply: Reply) -> Reply {
    match (ns, reply) {
        (Some(ns), Reply::Result(r)) => match resource_uris::expose_in_result(ns, method, &r) {
            Some(out) => Reply::Result(out),
            None => Reply::Result(r),
        },
        (_, reply) => reply,
    }
}

/// Forwards a billable call: its cost is reserved and its usage record made
/// durable first, and the row is finished with the outcome afterwards.
async fn metered(
    ctx: &Ctx,
    meter: Option<Meter>,
    server: &Arc<str>,
    method: &str,
    params: Option<Box<RawValue>>,
    msg: &Message,
) -> Result<Reply, CallError> {
    let Some(m) = meter else {
        return timed_forward(ctx, server, method, params, msg).await;
    };
    let reservation = crate::telemetry::child(
        ctx.app.telemetry.as_ref(),
        "ledger reserve",
        m.reserve(&ctx.app.store, &ctx.app.metrics, server),
        Result::is_err,
    )
    .await?;
    let out = timed_forward(ctx, server, method, params, msg).await;
    m.finish(&ctx.app.store, &ctx.app.metrics, server, &reservation, &out);
    if let Some((run, cost)) = m.run_cost(&out) {
        let delta = mcpgate_runs::UsageDelta {
            cost,
            tool_calls: u64::from(matches!(m.call, crate::state::policy::Call::Tool(_))),
            ..Default::default()
        };
        super::runs::add_run_usage(&ctx.app, &run, delta).await;
    }
    out
}

/// `forward`, with its time counted as the upstream's in `/metrics`.
async fn timed_forward(
    ctx: &Ctx,
    server: &Arc<str>,
    method: &str,
    params: Option<Box<RawValue>>,
    msg: &Message,
) -> Result<Reply, CallError> {
    let started = std::time::Instant::now();
    let out = forward(ctx, server, method, params, msg).await;
    ctx.app.metrics.upstream(server, started.elapsed());
    out
}

/// The error for a tool or prompt name with no route: "unavailable" when the
/// name belongs to a server that is down (it offered it before, or the name
/// carries its prefix), else the spec's unknown-name error.
fn not_routable(
    app: &App,
    catalog: &Catalog,
    name: String,
    unknown: fn(String) -> CallError,
) -> CallError {
    let by_prefix = || {
        app.servers
            .all()
            .iter()
            .find(|s| {
                s.cfg.prefix == Prefix::Always
                    && lock(&s.state).status != Status::Ready
                    && name
                        .strip_prefix(s.name.as_ref())
                        .is_some_and(|rest| rest.starts_with(app.cfg.separator.as_str()))
            })
            .cloned()
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

/// Which catalog list a method reads, if it is one of the four `*/list`s.
pub(crate) fn list_kind(method: &str) -> Option<ListKind> {
    match method {
        "tools/list" => Some(ListKind::Tools),
        "prompts/list" => Some(ListKind::Prompts),
        "resources/list" => Some(ListKind::Resources),
        "resources/templates/list" => Some(ListKind::Templates),
        _ => None,
    }
}

/// The whole response to a `*/list` from the catalog's cached page, in
/// `shape`, as pieces to write one after the other: the envelope's head, the
/// page itself (shared with the cache, not copied) and the closing brace.
/// `None` when the request is not one the catalog answers as is: another
/// method, MRTR members, or a run's key (whose lists are filtered).
pub(crate) fn list_from_memory(
    app: &App,
    who: &Principal,
    msg: &Message,
    shape: PageShape,
) -> Result<Option<[Bytes; 3]>, CallError> {
    let Some(kind) = list_kind(msg.method()) else {
        return Ok(None);
    };
    if who.run.is_some() {
        return Ok(None);
    }
    if let Some(p) = msg.params.as_deref()
        && (p.get().contains("\"requestState\"") || p.get().contains("\"inputResponses\""))
    {
        return Ok(None);
    }
    let cursor = list_cursor(msg.params.as_deref())?;
    let page = app
        .catalog()
        .tier_page(
            kind,
            cursor.as_deref(),
            app.cfg.page_size,
            &who.tier.name,
            shape,
        )
        .map_err(CallError::InvalidParams)?;
    let id = msg.id.as_deref().map_or("null", RawValue::get);
    let head = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":");
    Ok(Some([
        Bytes::from(head),
        Bytes::from_owner(Page(page)),
        Bytes::from_static(b"}"),
    ]))
}

/// A cached page lent to a response body.
struct Page(Arc<RawValue>);

impl AsRef<[u8]> for Page {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}

/// A `*/list` request's `cursor`.
pub(crate) fn list_cursor(params: Option<&RawValue>) -> Result<Option<String>, CallError> {
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
    Ok(p.cursor)
}

fn list(ctx: &Ctx, kind: ListKind, params: Option<&RawValue>) -> Result<Reply, CallError> {
    let cursor = list_cursor(params)?;
    let catalog = ctx.app.catalog();
    let page = catalog
        .tier_page(
            kind,
            cursor.as_deref(),
            ctx.app.cfg.page_size,
            &ctx.principal.tier.name,
            PageShape::Plain,
        )
        .map_err(CallError::InvalidParams)?;
    let page: Box<RawValue> = page.as_ref().to_owned();
    Ok(Reply::Result(match &ctx.principal.run {
        Some(run) => {
            let key = match kind {
                ListKind::Tools => "tools",
                ListKind::Prompts => "prompts",
                ListKind::Resources => "resources",
                ListKind::Templates => "resourceTemplates",
            };
            run.filter_page(key, page)
        }
        None => page,
    }))
}

async fn complete(ctx: &Ctx, params: Option<&RawValue>, msg: &Message) -> Result<Reply, CallError> {
    #[derive(Deserialize)]
    struct Ref {
        #[serde(rename = "type")]
        kind: String,
        name: Option<String>,
        uri: Option<String>,
    }
    let p = Params::parse(params)?;
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
                .filter(|_| ctx.principal.run.is_none())
                .filter(|_| ctx.principal.tier.prompts.allows(&name))
                .cloned()
                .ok_or(CallError::UnknownPrompt(name))?;
            let new_ref = Params::parse(Some(r))?.with("name", &route.name);
            let params = p.with_raw("ref", &new_ref);
            forward(ctx, &route.server, "completion/complete", Some(params), msg).await
        }
        ("ref/resource", _, Some(uri)) => {
            let route = catalog
                .resource_for(&uri, &ctx.principal.tier)
                .ok_or(CallError::ResourceNotFound(uri))?;
            let params = match catalog.resource_namespace_of(&route.server) {
                Some(_) => {
                    let new_ref = Params::parse(Some(r))?.with("uri", &route.name);
                    Some(p.with_raw("ref", &new_ref))
                }
                None => params.map(ToOwned::to_owned),
            };
            drop(catalog);
            forward(ctx, &route.server, "completion/complete", params, msg).await
        }
        _ => Err(CallError::InvalidParams(
            "\"ref\" must be ref/prompt with a name or ref/resource with a uri".into(),
        )),
    }
}
