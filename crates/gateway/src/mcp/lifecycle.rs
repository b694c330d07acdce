//! The gateway's and a session's life: starting the upstream supervisors,
//! the key-revocation watcher, the keeper of upstream log levels and the
//! idle reaper; probing upstreams once
//! (`check`, `tenants show`); stopping (sessions ended, upstreams closed, the
//! ledger flushed); and a client session's `initialize` (rate-limited, and
//! capped per tenant) and end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgate_proto::version;
use serde_json::value::RawValue;

use super::health::initialize_result;
use super::logging::keep_levels;
use super::supervise::supervise;
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::policy::retry_after_secs;
use crate::state::sessions::{ClientCaps, Full, Session};
use mcpgate_proto::locks::lock;

/// Starts every upstream's supervisor, the revocation watcher and the reaper
/// of idle sessions, stale relayed requests and expired parked calls.
pub(crate) fn start(app: &Arc<App>) {
    for s in app.servers.all().iter() {
        tokio::spawn(supervise(app.clone(), s.clone()));
    }
    tokio::spawn(app.auth.clone().watch(app.shutdown.clone()));
    tokio::spawn(keep_levels(app.clone()));
    let app = app.clone();
    tokio::spawn(async move {
        let tick = (app.cfg.session_idle_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => app.expire_idle(),
                _ = app.shutdown.cancelled() => return,
            }
        }
    });
}

/// Starts the upstreams and waits until each is ready or has failed (at
/// most the longest connect timeout plus a second): `check`, `tenants show`.
pub async fn probe(app: &Arc<App>) {
    start(app);
    let deadline = Instant::now()
        + app
            .servers
            .all()
            .iter()
            .map(|s| s.cfg.spec.connect_timeout)
            .max()
            .unwrap_or_default()
        + Duration::from_secs(1);
    while Instant::now() < deadline && app.servers.any_starting() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops supervisors (which terminate their children), closes every
/// session's and server's connection, and commits the ledger's queued rows.
pub async fn stop(app: &App) {
    app.shutdown.cancel();
    for s in app.sessions.drain() {
        s.end();
        close_private(&s).await;
    }
    for s in app.servers.all().iter() {
        let conn = lock(&s.state).conn.clone();
        if let Some(c) = conn {
            c.close(Duration::from_secs(3)).await;
        }
    }
    // Calls finished during shutdown queued their outcomes; commit them.
    if let Err(e) = app.store.ledger().flush().await {
        tracing::error!("could not flush the usage ledger at shutdown: {e}");
    }
}

/// Ends every client session (at shutdown, so open SSE streams close).
pub(crate) fn end_all_sessions(app: &App) {
    for id in app.sessions.ids() {
        app.end_session(&id);
    }
}

/// Closes a session's per-session upstream connections.
async fn close_private(s: &Session) {
    let conns: Vec<_> = s.private.lock().await.drain().map(|(_, c)| c).collect();
    for c in conns {
        c.close(Duration::from_secs(2)).await;
    }
}

/// Ends a session at the client's request (DELETE); its per-session
/// upstreams are closed in the background.
pub(crate) fn end_session(app: &App, session: &Session) {
    if let Some(s) = app.end_session(&session.id) {
        tokio::spawn(async move { close_private(&s).await });
    }
}

/// Why `initialize` opened no session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    #[error("initialize needs params.protocolVersion")]
    NoVersion,
    #[error("cannot create a session id: the OS random generator failed")]
    NoRandom,
    #[error("too many sessions")]
    TooMany,
    /// The key opened sessions faster than its tier's rate.
    #[error("rate limit of tier '{tier}' exceeded for initialize; retry in {retry_after} s")]
    RateLimited { tier: String, retry_after: u64 },
    /// The tenant holds its tier's `max_sessions`, each with a call in flight.
    #[error(
        "tenant '{tenant}' already has {limit} sessions open, the most tier '{tier}' allows, and none is idle; end one (DELETE /mcp) or retry later"
    )]
    TenantFull {
        tenant: String,
        tier: String,
        limit: usize,
    },
}

/// Attempts to make room in a full tenant before refusing: each ends one of
/// its idle sessions, unless concurrent `initialize`s take the room first.
const EVICTION_ATTEMPTS: usize = 4;

/// `initialize`: the negotiated result, and (unless the gateway is
/// stateless) a new session bound to the caller's tenant.
///
/// Opening sessions is rate-limited per key at the tier's rate, and a tenant
/// holds at most its tier's `max_sessions`: at the cap, that tenant's own
/// session idle longest (with nothing in flight) is ended to make room, and
/// only when every one of them is busy is the new one refused. Another
/// tenant's sessions are never touched, so one tenant cannot crowd out the
/// rest; the gateway-wide `max_sessions` still bounds the whole table.
pub(crate) fn initialize(
    app: &App,
    params: Option<&RawValue>,
    who: &Principal,
) -> Result<(Box<RawValue>, Option<Arc<Session>>), InitError> {
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(rename = "protocolVersion")]
        protocol_version: String,
    }
    let requested = params
        .and_then(|p| serde_json::from_str::<P>(p.get()).ok())
        .ok_or(InitError::NoVersion)?
        .protocol_version;
    app.gate
        .admit_initialize(who)
        .map_err(|wait| InitError::RateLimited {
            tier: who.tier.name.clone(),
            retry_after: retry_after_secs(wait),
        })?;
    let negotiated = version::negotiate(&requested);
    let result = initialize_result(app, negotiated);
    if app.cfg.stateless {
        return Ok((result, None));
    }
    let session = Session::new(
        who.tenant.clone(),
        Arc::from(who.tier.name.as_str()),
        ClientCaps::from_initialize(params),
    )
    .map_err(|e| {
        tracing::error!("cannot create a session id: the OS random generator failed: {e}");
        InitError::NoRandom
    })?;
    let session = Arc::new(session);
    session.touch();
    let limit = who.tier.max_sessions;
    for _ in 0..EVICTION_ATTEMPTS {
        match app
            .sessions
            .add(session.clone(), app.cfg.max_sessions, limit)
        {
            Ok(()) => return Ok((result, Some(session))),
            Err(Full::Gateway) => return Err(InitError::TooMany),
            Err(Full::Tenant) => {
                let Some(id) = app.sessions.longest_idle_of(&who.tenant) else {
                    break;
                };
                if let Some(old) = app.sessions.get(&id) {
                    tracing::info!(
                        tenant = %who.tenant,
                        session = %id,
                        "session ended after {:?} idle: its tenant is at its cap of {limit} sessions",
                        old.idle_for()
                    );
                    end_session(app, &old);
                }
            }
        }
    }
    Err(InitError::TenantFull {
        tenant: who.tenant.to_string(),
        tier: who.tier.name.clone(),
        limit,
    })
}
