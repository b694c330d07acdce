//! The gateway: one Streamable HTTP endpoint in front of many MCP servers.
//! A request reads straight through: `transport` (HTTP rules, session) →
//! `dispatch` (method → local answer, fan-out, or route) → `catalog` (name →
//! server) → `upstreams` (server → connection) → the upstream client, and the
//! answer back as JSON or SSE. `app` holds the shared state; `config` reads it in.

pub mod admin;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod health;
pub mod modern;
pub mod mrtr;
pub mod policy;
pub mod session;
pub mod transport;
pub mod upstreams;

use std::net::SocketAddr;
use std::sync::Arc;

pub use app::App;
pub use config::Config;
use mcpgate_store::Store;

/// Locks a std mutex, recovering from poisoning (no invariant here spans a panic).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds the listener, refusing a non-loopback address unless clients must authenticate.
pub async fn bind(cfg: &Config, listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    if !listen.ip().is_loopback() && cfg.policy.auth != config::AuthMode::Keys {
        return Err(format!(
            "refusing to listen on {listen}: binding beyond loopback requires client authentication, and with auth = \"none\" anyone who can reach the port could use every tool; set auth = \"keys\" in {} (and create keys with `mcpgate keys create`), or listen on 127.0.0.1",
            cfg.file.display()
        ));
    }
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Opens the store the config names (`database`, or SQLite in `data_dir`).
pub async fn open_store(cfg: &Config) -> Result<Store, String> {
    let r = match &cfg.database {
        Some(url) => Store::open(url).await,
        None => Store::open_in_dir(&cfg.data_dir).await,
    };
    r.map_err(|e| format!("cannot open the store: {e}"))
}

/// Start-up checks of the store against the config: every tenant's plan must
/// map to a tier (an unmapped plan stops the gateway rather than silently
/// showing that tenant nothing), and with `auth = "none"` the anonymous
/// `local` tenant exists (unlimited balance) so its calls are audited like any other.
pub async fn prepare_store(cfg: &Config, store: &Store) -> Result<(), String> {
    let tenants = store.list_tenants().await.map_err(|e| e.to_string())?;
    let unmapped: Vec<String> = tenants
        .iter()
        .filter(|t| cfg.policy.tier_for_plan(&t.plan).is_none())
        .map(|t| cfg.policy.unmapped_plan(&t.name, &t.plan))
        .collect();
    if !unmapped.is_empty() {
        return Err(format!("{}: {}", cfg.file.display(), unmapped.join("; ")));
    }
    if cfg.policy.auth == config::AuthMode::None
        && !tenants.iter().any(|t| t.name == config::LOCAL_TENANT)
    {
        match store
            .add_tenant(config::LOCAL_TENANT, config::LOCAL_PLAN, None, None)
            .await
        {
            Ok(_) | Err(mcpgate_store::StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
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
