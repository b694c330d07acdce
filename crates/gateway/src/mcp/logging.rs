//! `logging/setLevel`, per client session. The level is the session's own
//! (`state::log_levels`): relayed `notifications/message` are filtered by it
//! in the gateway, so one tenant's level never changes what another reads.
//! Upstream, a shared server is sent the most verbose level asked for by any
//! live session whose tier sees something that server offers, and only such
//! sessions count: a tenant's level never reaches a server it cannot see.
//! That level is sent again whenever it changes (a session sets a level or
//! ends, the server reconnects); when no session wants one any more, the
//! server keeps the last. A session's per-session upstreams get its own level.
//!
//! A session that never set a level gets every message relayed to it (the
//! server's default, or a level another session on that server asked for).
//! A request without a session (a stateless gateway) has nowhere to keep a
//! level, so its `setLevel` is answered and changes nothing upstream.

use std::sync::Arc;

use mcpgate_proto::logging::{LOG_LEVELS, log_level_rank};
use mcpgate_upstream::{Connection, RequestOpts};
use serde_json::value::RawValue;

use super::ctx::Ctx;
use crate::state::App;
use crate::state::catalog::Catalog;
use crate::state::error::CallError;
use crate::state::servers::{Server, Status};
use mcpgate_proto::locks::lock;

/// Handles `logging/setLevel` for the calling session.
pub(crate) async fn set_level(ctx: &Ctx, params: Option<&RawValue>) -> Result<(), CallError> {
    #[derive(serde::Deserialize)]
    struct P {
        level: String,
    }
    let level = params
        .and_then(|p| serde_json::from_str::<P>(p.get()).ok())
        .ok_or_else(|| CallError::InvalidParams("missing \"level\"".into()))?
        .level;
    let rank = log_level_rank(&level).ok_or_else(|| {
        CallError::InvalidParams(format!(
            "{level:?} is not a log level; one of {}",
            LOG_LEVELS.join(", ")
        ))
    })?;
    let Some(session) = &ctx.session else {
        return Ok(());
    };
    ctx.app.log_levels.set(session, rank);
    let private: Vec<Connection> = session.private.lock().await.values().cloned().collect();
    let own = private.iter().map(|c| send_level(c, rank));
    futures::future::join(push_levels(&ctx.app), futures::future::join_all(own)).await;
    Ok(())
}

/// Brings every server's shared connection to the level its sessions want.
pub(crate) async fn push_levels(app: &App) {
    let catalog = app.catalog();
    let all = app.servers.all();
    let pushes = all.iter().map(|s| push_one(app, s, &catalog));
    futures::future::join_all(pushes).await;
}

/// Keeps upstream levels current after changes made outside a request
/// (sessions ending, servers reconnecting), until shutdown.
pub(crate) async fn keep_levels(app: Arc<App>) {
    loop {
        tokio::select! {
            _ = app.log_levels.changed() => push_levels(&app).await,
            _ = app.shutdown.cancelled() => return,
        }
    }
}

async fn push_one(app: &App, server: &Server, catalog: &Catalog) {
    let slot = app.log_levels.sent(&server.name);
    let mut sent = slot.lock().await;
    let (conn, since) = {
        let st = lock(&server.state);
        match (&st.status, &st.conn) {
            (Status::Ready, Some(c)) => (c.clone(), st.since),
            _ => return,
        }
    };
    let Some(rank) = app
        .log_levels
        .wanted(|tier| catalog.tier_sees_server(tier, &server.name))
    else {
        return;
    };
    if *sent == Some((since, rank)) {
        return;
    }
    if send_level(&conn, rank).await {
        *sent = Some((since, rank));
    }
}

/// Sends `logging/setLevel` to one connection whose server offers logging;
/// true when it answered (an error answer too: sending it again would not help).
pub(crate) async fn send_level(conn: &Connection, rank: u8) -> bool {
    if !conn
        .init_info()
        .is_some_and(|i| i.has_capability("logging"))
    {
        return false;
    }
    let Some(level) = LOG_LEVELS.get(usize::from(rank)) else {
        return false;
    };
    let params = mcpgate_proto::jsonrpc::to_raw(&serde_json::json!({ "level": level }));
    match conn
        .request("logging/setLevel", Some(&params), RequestOpts::default())
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(server = %conn.name(), "logging/setLevel failed: {e}");
            false
        }
    }
}
