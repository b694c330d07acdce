//! The configured upstreams and their lifecycles. Each shared server has a
//! supervisor task: connect (spawn or dial) and initialize, list what it
//! offers, publish it to the catalog, wait for the connection to end, then
//! reconnect with exponential backoff (0.5 s doubling to 30 s, reset after a
//! minute of health). The gateway serves while any of them are down; a server
//! that comes up later adds its tools and the client sessions hear
//! `list_changed`. A completed handshake closes the server's circuit breaker.
//! A log message sent outside any call goes to the sessions whose tier sees
//! the server, at or above each one's own level.
//! Per-session servers get one extra connection per client session, created
//! on first use, capped, and closed with the session.
//!
//! The upstream era follows the client's where the server offers both: the
//! shared connection discovers first, so a dual-era server is reached
//! statelessly (2026-07-28) for 2026-07-28 clients, and a second,
//! session-based connection (`Server::session_conn`, tried on the first call
//! of a session-based client) carries the calls of session-based clients,
//! whose server-to-client requests and subscriptions need a session. A server
//! that offers one era is bridged (`mrtr`). Per-session connections belong to
//! session-based clients, so they too are session-based where the server
//! offers both eras.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mcpgate_proto::jsonrpc;
use mcpgate_upstream::{Connection, Event, Incoming, Reply, RequestOpts, UpstreamError};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::logging::send_level;
use crate::config::Isolation;
use crate::state::App;
use crate::state::catalog::ServerLists;
use crate::state::error::CallError;
use crate::state::log_levels::message_rank;
use crate::state::resource_uris;
use crate::state::server_requests::Answer;
use crate::state::servers::{Server, SessionConn, Status};
use crate::state::sessions::Session;
use mcpgate_proto::locks::lock;

/// Client capabilities the gateway declares to shared upstreams: it can relay
/// sampling and elicitation to whichever client session a call came from.
/// Roots are per client, so they are declared only to per-session upstreams.
fn shared_capabilities() -> Box<RawValue> {
    jsonrpc::to_raw(&serde_json::json!({"sampling": {}, "elicitation": {}}))
}

/// What the connection that lists a server's tools declares. A per-session
/// server is listed once for every session, so it is listed as a client
/// with every capability a session may bring (roots too): a tool that needs
/// one is then listed, and each session's own connection, which declares
/// that session's real capabilities, decides whether it can be called.
fn discovery_capabilities(server: &Server) -> Box<RawValue> {
    match server.cfg.isolation {
        Isolation::PerSession => jsonrpc::to_raw(
            &serde_json::json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}),
        ),
        Isolation::Shared => shared_capabilities(),
    }
}

/// Runs one shared server until shutdown.
pub(crate) async fn supervise(app: Arc<App>, server: Arc<Server>) {
    let mut backoff = Duration::from_millis(500);
    // Until the gateway shuts down or this server is removed.
    let halt = {
        let (app, server) = (app.clone(), server.clone());
        move || {
            let (app, server) = (app.clone(), server.clone());
            async move {
                tokio::select! {
                    _ = app.shutdown.cancelled() => {}
                    _ = server.stop.cancelled() => {}
                }
            }
        }
    };
    loop {
        if app.shutdown.is_cancelled() || server.stop.is_cancelled() {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // Connecting and listing are one step: a server is never published with
        // lists it could not give, and either failure backs off the same way.
        let connect_and_list = async {
            let conn =
                Connection::connect(&server.cfg.spec, discovery_capabilities(&server), tx).await?;
            match fetch_lists(&conn).await {
                Ok(lists) => Ok((conn, lists)),
                Err(e) => {
                    conn.close(Duration::from_secs(2)).await;
                    Err(e)
                }
            }
        };
        let attempt = tokio::select! {
            r = connect_and_list => r,
            _ = halt() => return,
        };
        match attempt {
            Ok((conn, lists)) => {
                let up_at = Instant::now();
                // The handshake just succeeded: whatever opened the breaker
                // is over, so calls go through as soon as the server is Ready.
                server.breaker.reset();
                app.update_servers(true, || {
                    let mut st = lock(&server.state);
                    st.status = Status::Ready;
                    st.init = conn.init_info();
                    st.conn = Some(conn.clone());
                    st.lists = lists;
                    st.last_error = None;
                    st.since = up_at;
                });
                tracing::info!(server = %server.name, "upstream ready");
                tokio::spawn(shared_events(
                    app.clone(),
                    server.clone(),
                    conn.clone(),
                    rx,
                    true,
                ));
                tokio::select! {
                    _ = conn.closed() => {}
                    _ = halt() => {
                        conn.close(Duration::from_secs(3)).await;
                        return;
                    }
                }
                let reason = conn
                    .closed_reason()
                    .unwrap_or_else(|| "connection closed".into());
                tracing::warn!(server = %server.name, "upstream down: {reason}");
                let session_conn =
                    std::mem::replace(&mut *server.session_conn.lock().await, SessionConn::Untried);
                if let SessionConn::Open(c) = session_conn {
                    c.close(Duration::from_secs(2)).await;
                }
                app.update_servers(true, || {
                    let mut st = lock(&server.state);
                    st.status = Status::Unreachable;
                    st.conn = None;
                    st.last_error = Some(reason);
                    st.restarts += 1;
                    st.since = Instant::now();
                });
                if up_at.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
            }
            Err(e) => {
                tracing::warn!(server = %server.name, "upstream not ready: {e}");
                let mut st = lock(&server.state);
                st.status = Status::of_error(&e);
                st.last_error = Some(e.to_string());
                st.since = Instant::now();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = halt() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Handles what a shared upstream sends outside any call. The catalog is
/// listed from one connection (`lists`); a list change heard on the other
/// (session-based) one re-lists from it too.
async fn shared_events(
    app: Arc<App>,
    server: Arc<Server>,
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Event>,
    lists: bool,
) {
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Closed { .. } => return,
            Event::Incoming(Incoming::Notification { method, params }) => match method.as_str() {
                "notifications/tools/list_changed"
                | "notifications/prompts/list_changed"
                | "notifications/resources/list_changed" => {
                    // Heard on the session-based connection (a session-based
                    // client's call changed the lists): re-list from the
                    // listing one, so every client of either era hears it.
                    let listing = if lists {
                        Some(conn.clone())
                    } else {
                        server.shared_conn().ok()
                    };
                    let Some(listing) = listing else { continue };
                    // A failed re-list keeps what the server offered before.
                    match fetch_lists(&listing).await {
                        Ok(fresh) => app.update_servers(true, || lock(&server.state).lists = fresh),
                        Err(e) => {
                            tracing::warn!(server = %server.name, "re-listing after {method} failed: {e}")
                        }
                    }
                }
                "notifications/resources/updated" => {
                    app.resource_updated(&server.name, params.as_deref())
                }
                "notifications/message" => app.broadcast_log(&server.name, params.as_deref()),
                _ => tracing::debug!(server = %server.name, "dropped unattributed {method}"),
            },
            Event::Incoming(Incoming::Request { id, method, .. }) => {
                let err = jsonrpc::error_object(
                    mcpgate_proto::codes::METHOD_NOT_FOUND,
                    &format!("{method} is only relayed during a client's call"),
                    None,
                );
                let _ = conn.respond(&id, Reply::Error(err)).await;
            }
        }
    }
}

/// Lists everything a server offers, following cursors. A transport failure,
/// or an error answer to `tools/list`, fails the whole listing (the server is
/// not ready); an error answer to an optional list leaves that list empty.
pub(crate) async fn fetch_lists(conn: &Connection) -> Result<ServerLists, UpstreamError> {
    let init = conn.init_info();
    let has = |cap: &str| init.as_ref().is_some_and(|i| i.has_capability(cap));
    let mut lists = ServerLists::default();
    if has("tools") {
        lists.tools = list_all(conn, "tools/list", "tools", true).await?;
    }
    if has("prompts") {
        lists.prompts = list_all(conn, "prompts/list", "prompts", false).await?;
    }
    if has("resources") {
        lists.resources = list_all(conn, "resources/list", "resources", false).await?;
        lists.templates =
            list_all(conn, "resources/templates/list", "resourceTemplates", false).await?;
    }
    Ok(lists)
}

async fn list_all(
    conn: &Connection,
    method: &str,
    key: &str,
    required: bool,
) -> Result<Vec<Map<String, Value>>, UpstreamError> {
    let protocol = |detail: String| UpstreamError::Protocol {
        server: conn.name().to_owned(),
        detail,
    };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let params = cursor
            .as_ref()
            .map(|c| jsonrpc::to_raw(&serde_json::json!({ "cursor": c })));
        let raw = match conn
            .request(method, params.as_deref(), RequestOpts::default())
            .await?
        {
            Reply::Result(r) => r,
            Reply::Error(e) if required => {
                return Err(protocol(format!("{method} failed: {}", e.get())));
            }
            Reply::Error(e) => {
                tracing::warn!(server = %conn.name(), "{method} failed (left empty): {}", e.get());
                return Ok(Vec::new());
            }
        };
        let mut page: Map<String, Value> = serde_json::from_str(raw.get())
            .map_err(|e| protocol(format!("{method}: unreadable result: {e}")))?;
        if let Some(Value::Array(items)) = page.remove(key) {
            out.extend(items.into_iter().filter_map(|i| match i {
                Value::Object(o) => Some(o),
                _ => None,
            }));
        }
        match page.remove("nextCursor") {
            Some(Value::String(c)) if !c.is_empty() => cursor = Some(c),
            _ => return Ok(out),
        }
    }
    Err(protocol(format!("{method}: more than 1000 pages")))
}

/// The connection a call from `session` to `server` should use.
pub(crate) async fn connection_for(
    app: &Arc<App>,
    server: &Arc<Server>,
    session: Option<&Arc<Session>>,
) -> Result<Connection, CallError> {
    let (Isolation::PerSession, Some(session)) = (server.cfg.isolation, session) else {
        if session.is_some()
            && server.is_stateless()
            && let Some(conn) = session_conn(app, server).await
        {
            return Ok(conn);
        }
        return server.shared_conn();
    };
    let mut private = session.private.lock().await;
    if let Some(c) = private.get(server.name.as_ref()) {
        if c.is_alive() {
            return Ok(c.clone());
        }
        // Its event task gives back the instance slot.
        private.remove(server.name.as_ref());
    }
    if server.instances.fetch_add(1, Ordering::AcqRel) >= server.cfg.max_instances {
        server.instances.fetch_sub(1, Ordering::AcqRel);
        return Err(CallError::Unavailable {
            server: server.name.to_string(),
            reason: format!(
                "its per-session limit of {} instances is reached",
                server.cfg.max_instances
            ),
        });
    }
    let caps = session.caps.raw.clone().unwrap_or_else(shared_capabilities);
    match connect_private(server, caps).await {
        Ok((conn, rx)) => {
            if let Some(rank) = session.log_level() {
                send_level(&conn, rank).await;
            }
            private.insert(server.name.to_string(), conn.clone());
            tokio::spawn(private_events(
                app.clone(),
                session.clone(),
                conn.clone(),
                rx,
            ));
            Ok(conn)
        }
        Err(e) => {
            server.instances.fetch_sub(1, Ordering::AcqRel);
            Err(CallError::Upstream(e))
        }
    }
}

/// A per-session connection, and where its events go: session-based where
/// the server offers that (the `initialize` handshake first), else whatever
/// [`Connection::connect`] finds. Each attempt has its own event channel, so
/// a failed one's end never reaches the connection kept.
async fn connect_private(
    server: &Server,
    caps: Box<RawValue>,
) -> Result<(Connection, mpsc::UnboundedReceiver<Event>), UpstreamError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let first = Connection::connect_session(&server.cfg.spec, caps.clone(), tx).await;
    let refused = match first {
        Ok(conn) => return Ok((conn, rx)),
        Err(e @ (UpstreamError::Protocol { .. } | UpstreamError::Http { .. })) => e,
        Err(e) => return Err(e),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    match Connection::connect(&server.cfg.spec, caps, tx).await {
        Ok(conn) if conn.is_modern() => Ok((conn, rx)),
        // Not a 2026-07-28 server either: the initialize failure says why.
        Ok(conn) => {
            conn.close(Duration::from_secs(2)).await;
            Err(refused)
        }
        Err(e) => Err(e),
    }
}

/// The session-based connection to a shared server the gateway reaches
/// statelessly, for a session-based client: opened on first use; `None` when
/// the server offers only 2026-07-28 (remembered until it reconnects) or
/// cannot be reached that way now, and the client is bridged.
pub(crate) async fn session_conn(app: &Arc<App>, server: &Arc<Server>) -> Option<Connection> {
    let mut slot = server.session_conn.lock().await;
    match &*slot {
        SessionConn::Open(c) if c.is_alive() => return Some(c.clone()),
        SessionConn::Refused => return None,
        _ => {}
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = match Connection::connect_session(&server.cfg.spec, shared_capabilities(), tx).await
    {
        Ok(c) => c,
        Err(e) => {
            let refused = matches!(
                e,
                UpstreamError::Protocol { .. } | UpstreamError::Http { .. }
            );
            tracing::info!(server = %server.name, "no session-based connection ({e}); session-based clients are bridged");
            *slot = if refused {
                SessionConn::Refused
            } else {
                SessionConn::Untried
            };
            return None;
        }
    };
    tracing::info!(server = %server.name, "session-based connection open for session-based clients");
    let catalog = app.catalog();
    if let Some(rank) = app
        .log_levels
        .wanted(|tier| catalog.tier_sees_server(tier, &server.name))
    {
        send_level(&conn, rank).await;
    }
    *slot = SessionConn::Open(conn.clone());
    tokio::spawn(shared_events(
        app.clone(),
        server.clone(),
        conn.clone(),
        rx,
        false,
    ));
    Some(conn)
}

/// Handles what a per-session upstream sends outside any call: it all belongs to one session.
async fn private_events(
    app: Arc<App>,
    session: Arc<Session>,
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    loop {
        let ev = tokio::select! {
            e = rx.recv() => e,
            _ = session.ended.cancelled() => None,
        };
        match ev {
            None | Some(Event::Closed { .. }) => break,
            Some(Event::Incoming(Incoming::Notification { method, params })) => {
                if method == "notifications/message"
                    && !session.wants_log(message_rank(params.as_deref()))
                {
                    continue;
                }
                // A namespaced server's URIs reach its client namespaced.
                let exposed = match (method.as_str(), &params) {
                    ("notifications/resources/updated", Some(p)) => app
                        .catalog()
                        .resource_namespace_of(conn.name())
                        .and_then(|ns| resource_uris::expose_in_updated(ns, p)),
                    _ => None,
                };
                let params = exposed.as_deref().or(params.as_deref());
                session.push_standalone(jsonrpc::notification(&method, params).into());
            }
            Some(Event::Incoming(Incoming::Request { id, method, params })) => {
                // e.g. roots/list right after initialize: ask the client on its standalone stream.
                if !session.caps.allows(&method) {
                    let err = jsonrpc::error_object(
                        mcpgate_proto::codes::METHOD_NOT_FOUND,
                        &format!("the client does not support {method}"),
                        None,
                    );
                    let _ = conn.respond(&id, Reply::Error(err)).await;
                    continue;
                }
                let target = Answer::Upstream {
                    conn: conn.clone(),
                    upstream_id: id,
                };
                let gid = app.server_requests.register(target, Some(&session.id));
                let raw_gid = jsonrpc::raw_string(&gid);
                session.push_standalone(
                    jsonrpc::request(raw_gid.get(), &method, params.as_deref()).into(),
                );
            }
        }
    }
    if session.ended.is_cancelled() {
        conn.close(Duration::from_secs(2)).await;
    }
    if let Some(server) = app.server(conn.name()) {
        server.instances.fetch_sub(1, Ordering::AcqRel);
    }
}
