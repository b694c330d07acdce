//! The gateway: one Streamable HTTP endpoint in front of many MCP servers.
//! A request reads straight through: `transport` (HTTP rules, session) →
//! `dispatch` (method → local answer, fan-out, or route) → `catalog` (name →
//! server) → `upstreams` (server → connection) → the upstream client, and the
//! answer back as JSON or SSE. `app` holds the shared state; `config` reads it in.

pub mod app;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod health;
pub mod session;
pub mod transport;
pub mod upstreams;

use std::net::SocketAddr;
use std::sync::Arc;

pub use app::App;
pub use config::Config;

/// Locks a std mutex, recovering from poisoning (no invariant here spans a panic).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds the listener, refusing a non-loopback address while no client auth exists.
pub async fn bind(cfg: &Config, listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    if !listen.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {listen}: binding to anything other than loopback requires client authentication, which this build does not have yet (auth = \"none\")"
        ));
    }
    let _ = cfg;
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Serves until `app.shutdown` is cancelled, then ends every session (which
/// closes open SSE streams, so graceful shutdown cannot hang on them), gives
/// in-flight responses up to five seconds, and stops the upstreams (SIGTERM,
/// then SIGKILL for children).
pub async fn serve(app: Arc<App>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    app.start();
    let router = transport::router(app.clone());
    let shutdown = app.shutdown.clone();
    let closer = app.clone();
    // SSE replies are several small writes; without TCP_NODELAY, Nagle plus the
    // client's delayed ACK can hold an event back for ~40 ms.
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.cancelled().await;
        closer.end_all_sessions();
    });
    let deadline = app.shutdown.clone();
    let r = tokio::select! {
        r = server => r,
        _ = async {
            deadline.cancelled().await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        } => Ok(()),
    };
    app.stop().await;
    r
}
