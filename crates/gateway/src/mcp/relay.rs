//! The relay of one forwarded request (`Exchange`): the request goes
//! upstream, and what the upstream sends about it (progress, logs, sampling,
//! elicitation, roots, cancellation) is relayed to this call's client with
//! progress tokens and server-request ids remapped, so two sessions can never
//! collide, and log messages below the session's own level dropped. Also
//! here: a client's answer to a relayed request, and a client's cancellation.

use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_upstream::{Connection, Incoming, Reply, RequestOpts, UpstreamError};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ctx::Ctx;
use super::params::{Params, replace_key};
use crate::state::App;
use crate::state::error::CallError;
use crate::state::log_levels::message_rank;
use crate::state::server_requests::Answer;
use crate::state::sessions::Session;

/// One request to one upstream connection, with what its relay needs.
pub(crate) struct Exchange<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) conn: &'a Connection,
    pub(crate) method: &'a str,
    pub(crate) progress: Option<&'a ProgressMap>,
    pub(crate) cancel: &'a CancellationToken,
    /// The W3C `traceparent` for an HTTP upstream (`[telemetry]`).
    pub(crate) traceparent: Option<&'a str>,
}

impl Exchange<'_> {
    /// Sends the request with `params`, relaying what the upstream sends
    /// about it until it answers.
    pub(crate) async fn run(&self, params: Option<&RawValue>) -> Result<Reply, UpstreamError> {
        let (ctx, conn, progress) = (self.ctx, self.conn, self.progress);
        let (relay_tx, mut relay_rx) = mpsc::unbounded_channel();
        let mut opts = RequestOpts {
            relay: Some(relay_tx),
            progress_token: progress.map(|p| p.ours.clone()),
            cancel: Some(self.cancel.clone()),
            timeout: None,
            headers: param_headers(ctx, conn, self.method, params),
        };
        if let Some(tp) = self.traceparent {
            opts.headers.push(("traceparent".to_owned(), tp.to_owned()));
        }
        let call = conn.request(self.method, params, opts);
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

pub(crate) struct ProgressMap {
    ours: String,
    theirs: Box<RawValue>,
}

/// Replaces the client's progress token with one unique across sessions.
pub(crate) fn remap_progress(
    app: &App,
    params: Option<Box<RawValue>>,
) -> Result<(Option<Box<RawValue>>, Option<ProgressMap>), CallError> {
    let Some(p) = params else {
        return Ok((None, None));
    };
    if !p.get().contains("progressToken") {
        return Ok((Some(p), None));
    }
    let top = Params::parse(Some(&p))?;
    let Some(meta) = top.get("_meta") else {
        return Ok((Some(p), None));
    };
    let meta_map = Params::parse(Some(meta))?;
    let Some(theirs) = meta_map.get("progressToken") else {
        return Ok((Some(p), None));
    };
    let ours = app.server_requests.new_progress_token();
    let ours_raw =
        RawValue::from_string(ours.clone()).map_err(|e| CallError::Internal(e.to_string()))?;
    let new_meta = meta_map.with_raw("progressToken", &ours_raw);
    let new_params = top.with_raw("_meta", &new_meta);
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
                    let gid = Params::parse(Some(&p))
                        .ok()
                        .and_then(|t| t.get("requestId").map(|r| r.get().to_owned()))
                        .and_then(|uid| ctx.app.server_requests.gid_for(conn, &uid));
                    match gid {
                        Some(g) => {
                            replace_key(&p, "requestId", &jsonrpc::raw_string(&g)).unwrap_or(p)
                        }
                        None => return,
                    }
                }
                ("notifications/message", Some(p)) => match (&ctx.modern, &ctx.session) {
                    (Some(m), _) if !m.wants_log(&p) => return,
                    (_, Some(s)) if !s.wants_log(message_rank(Some(&p))) => return,
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
                m.upstream_asks(&ctx.out, conn, id, method, params).await;
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
            let gid = ctx.app.server_requests.register(
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
pub(crate) async fn client_response(app: &App, session: Option<&Session>, msg: Message) -> bool {
    let Some(gid) = msg
        .id
        .as_ref()
        .and_then(|i| serde_json::from_str::<String>(i.get()).ok())
    else {
        return false;
    };
    let Some(p) = app
        .server_requests
        .take(&gid, session.map(|s| s.id.as_str()))
    else {
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
pub(crate) fn client_cancelled(session: Option<&Session>, params: Option<&RawValue>) {
    let Some(s) = session else { return };
    let Some(id) = Params::parse(params)
        .ok()
        .and_then(|t| t.get("requestId").map(|r| r.get().to_owned()))
    else {
        return;
    };
    s.cancel_inflight(&id);
}
