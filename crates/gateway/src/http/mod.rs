//! Every HTTP decision: the router, the request-target and Host rules, the
//! guards (Host, Origin, auth, media types, body size, version, session), the
//! one `Refusal` type, the one SSE body builder, the session-based and
//! 2026-07-28 endpoints on `/mcp`, the admin API, `/health` and `/metrics`,
//! OAuth discovery and authorization for clients; plus binding
//! and serving. What a request does once admitted is `mcp`'s business.

mod admin;
mod api;
mod cors;
mod edge;
mod forward;
mod guard;
mod health;
mod host;
mod legacy;
mod metrics;
mod models;
mod modern;
mod oauth;
mod openapi;
mod refusal;
mod sse;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::{AuthMode, Config};
use crate::mcp::{lifecycle, runner};
use crate::state::App;
pub use edge::EdgeLimits;
use refusal::Refusal;

/// The gateway's routes: `/mcp` (and `/mcp/`), `/health`, `/ready`, `/admin/…`; every
/// request first passes the `Host` and request-target rules (`host`).
pub fn router(app: Arc<App>) -> Router {
    let mcp = get(legacy::get_mcp)
        .post(legacy::post_mcp)
        .delete(legacy::delete_mcp);
    Router::new()
        .route("/mcp", mcp.clone())
        .route("/mcp/", mcp)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::scrape))
        .route("/models/{name}/{*rest}", axum::routing::any(models::proxy))
        .merge(admin::router())
        .merge(api::router())
        .route("/api/v1/openapi.json", get(openapi::serve))
        .merge(ui::router())
        .merge(oauth::router())
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            cors::cors,
        ))
        .layer(axum::middleware::map_request(host::host_rules))
        .with_state(app)
}

async fn wrong_method(method: Method) -> Response {
    method_not_allowed(
        &format!("{method}; /mcp takes POST, GET and DELETE, /health and /ready take GET"),
        "GET, POST, DELETE",
    )
    .into_response()
}

async fn not_found() -> Response {
    Refusal::invalid(StatusCode::NOT_FOUND, "Not found: the MCP endpoint is /mcp").into_response()
}

/// 405 with the methods that would work.
fn method_not_allowed(what: &str, allow: &'static str) -> Refusal {
    Refusal::invalid(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method Not Allowed: {what}"),
    )
    .with_header(header::ALLOW, HeaderValue::from_static(allow))
}

/// Binds the listener, refusing a non-loopback address unless clients must authenticate.
pub async fn bind(cfg: &Config, listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    if !listen.ip().is_loopback() && cfg.policy.auth != AuthMode::Keys {
        return Err(format!(
            "refusing to listen on {listen}: binding beyond loopback requires client authentication, and with auth = \"none\" anyone who can reach the port could use every tool; set auth = \"keys\" in {} (and create keys with `mcpgate keys create`), or listen on 127.0.0.1",
            cfg.file.display()
        ));
    }
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Serves with the default [`EdgeLimits`]; see [`serve_with`].
pub async fn serve(app: Arc<App>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_with(app, listener, EdgeLimits::default()).await
}

/// Serves until `app.shutdown` is cancelled, then ends every session (which
/// closes open SSE streams, so graceful shutdown cannot hang on them), gives
/// in-flight responses up to five seconds, and stops the upstreams (SIGTERM,
/// then SIGKILL for children). `limits` bound what a client may hold before
/// its request is read: header and body read time, connections per address.
pub async fn serve_with(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    limits: EdgeLimits,
) -> std::io::Result<()> {
    if let Some(shared) = &app.shared_rate {
        match shared.check().await {
            Ok(()) => tracing::info!("rate limits are shared with other replicas through Redis"),
            Err(e) => tracing::error!(
                "[cluster] redis cannot be reached ({e}); rate limits stay per replica until it can"
            ),
        }
    }
    if app.directory.is_some() {
        crate::state::session_directory::start(&app, listener.local_addr()?).await;
    }
    crate::mcp::changes::start(&app);
    if let Some(tracer) = &app.telemetry {
        tokio::spawn(crate::telemetry::export::run(
            tracer.clone(),
            app.shutdown.clone(),
        ));
    }
    if let Some(addr) = app.cfg.metrics_listen {
        metrics::serve_separately(app.clone(), addr).await?;
    }
    lifecycle::start(&app);
    let router = router(app.clone());
    let drain = tokio_util::sync::CancellationToken::new();
    let socket = runner::socket_path(&app);
    let unix = match bind_unix(&socket) {
        Ok(l) => {
            tokio::spawn(edge::run_unix(
                l,
                router.clone(),
                limits.clone(),
                drain.clone(),
            ));
            Some(socket.clone())
        }
        Err(e) => {
            tracing::error!("cannot serve on {}: {e}", socket.display());
            None
        }
    };
    runner::start(&app, listener.local_addr()?, unix.clone()).await;
    let shutdown = app.shutdown.clone();
    let closer = app.clone();
    let draining = drain.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        lifecycle::end_all_sessions(&closer);
        draining.cancel();
    });
    let deadline = app.shutdown.clone();
    tokio::select! {
        () = edge::run(listener, router, limits, drain) => {}
        _ = async {
            deadline.cancelled().await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        } => {}
    }
    runner::stop(&app).await;
    if unix.is_some() {
        let _ = std::fs::remove_file(&socket);
    }
    lifecycle::stop(&app).await;
    Ok(())
}

/// Binds the gateway's Unix socket for run sandboxes: its directory 0700,
/// the socket 0600, a stale socket from a previous run replaced.
fn bind_unix(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}
