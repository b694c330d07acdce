//! Forwarding one request to the upstream that owns it: resolve the
//! server's connection (shared, or per session), ask its breaker, remap the
//! progress token, give a 2026-07-28 upstream its `_meta`, run one relayed
//! `Exchange`, let `mrtr` answer a 2026-07-28 upstream's input rounds for a
//! session-based client, and count the outcome on the server (only what it
//! says about the server's health: see `state::servers::Breaker`).

use std::sync::Arc;

use mcpgate_proto::jsonrpc::Message;
use mcpgate_upstream::Reply;
use serde_json::value::RawValue;

use super::ctx::Ctx;
use super::mrtr;
use super::relay::{Exchange, remap_progress};
use super::supervise::connection_for;
use crate::state::error::CallError;
use crate::state::servers::Health;
use crate::telemetry::{Attr, ChildSpan, Kind};

/// Forwards one request to `server` and relays what it sends about it until it answers.
pub(crate) async fn forward(
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
    let admission = srv.breaker.admit().map_err(|left| CallError::Unavailable {
        server: server.to_string(),
        reason: format!(
            "circuit open after {} consecutive failures; next probe in {} ms",
            srv.cfg.breaker_failures,
            left.as_millis()
        ),
    })?;
    // A failed connect counts against the server; a refusal that never
    // reached it (not ready yet, per-session instances used up) does not.
    let conn = match connection_for(app, &srv, ctx.session.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            if matches!(e, CallError::Upstream(_)) {
                admission.record(Health::Down);
            }
            return Err(e);
        }
    };
    let (params, progress) = remap_progress(app, params)?;
    let params = if conn.is_modern() {
        Some(mrtr::for_modern_upstream(
            ctx.modern.as_deref(),
            ctx.session.as_ref().map(|s| &s.caps),
            params.as_deref(),
        )?)
    } else {
        params
    };
    let cancel = ctx.cancel.child_token();
    let _inflight = match (&ctx.session, &msg.id) {
        (Some(s), Some(id)) => Some(s.track(id.get().to_owned(), cancel.clone())),
        _ => None,
    };
    // With `[telemetry]`: the upstream call's span, named to an HTTP upstream in `traceparent`.
    let span = ChildSpan::start(app.telemetry.as_ref(), "upstream call", Kind::Client);
    let traceparent = span.as_ref().map(ChildSpan::traceparent);
    let exchange = Exchange {
        ctx,
        conn: &conn,
        method,
        progress: progress.as_ref(),
        cancel: &cancel,
        traceparent: traceparent.as_deref(),
    };
    let mut outcome = exchange.run(params.as_deref()).await;
    if ctx.modern.is_none() {
        outcome = mrtr::input_rounds(ctx, &srv, params.as_deref(), outcome, &exchange).await?;
    }
    if let Some(span) = span {
        span.end(
            vec![
                ("mcp.server", Attr::Str(server.to_string())),
                ("mcp.method.name", Attr::Str(method.to_owned())),
            ],
            outcome.as_ref().err().map(ToString::to_string),
        );
    }
    srv.record_outcome(admission, &outcome);
    outcome.map_err(CallError::Upstream)
}
