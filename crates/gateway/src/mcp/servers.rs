//! Servers added and removed while the gateway serves (`/admin/servers`,
//! `mcpgate servers add|rm`, and a config reload). A new server's table is
//! validated exactly as a config file's `[servers.NAME]` would be (it is one,
//! parsed by `config`), then published and started; a removed one leaves the
//! catalog at once, its supervisor stops and its connections close. Either
//! way every session hears `list_changed`. Runtime additions live until the
//! next reload or restart: the config file stays the source of truth. With
//! `[cluster] redis`, an addition or removal made through the admin API is
//! announced to the other replicas, which apply it too (`mcp::changes`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::supervise::supervise;
use crate::config::ServerConfig;
use crate::state::App;
use crate::state::pubsub::Change;
use crate::state::servers::{Server, SessionConn};

/// Why a server could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServerChangeError {
    #[error("{0}")]
    Invalid(String),
    #[error("a server named '{0}' already exists")]
    Exists(String),
    #[error("no server named '{0}'")]
    NotFound(String),
}

/// Reads one server's table (`{"command": ...}` or `{"url": ...}`, the keys
/// of `[servers.NAME]`) with the config's own rules and the running config's
/// top-level defaults (`prefix`, `resource_uris`, breaker settings), as a
/// server in the file would get; paths resolve next to the running config file.
pub(crate) fn parse_server(
    app: &App,
    name: &str,
    table: &Value,
) -> Result<ServerConfig, ServerChangeError> {
    app.cfg
        .parse_server(name, table)
        .map_err(|e| ServerChangeError::Invalid(format!("{}: {}", e.key, e.message)))?
        .ok_or_else(|| ServerChangeError::Invalid(format!("servers.{name}: is disabled")))
}

/// Publishes and starts a server.
pub(crate) fn add(app: &Arc<App>, cfg: ServerConfig) -> Result<(), ServerChangeError> {
    let name = cfg.name.clone();
    let server = Arc::new(Server::new(cfg));
    let mut added = false;
    app.update_servers(true, || added = app.servers.insert(server.clone()));
    if !added {
        return Err(ServerChangeError::Exists(name));
    }
    tracing::info!(server = %name, "server added at runtime");
    tokio::spawn(supervise(app.clone(), server));
    Ok(())
}

/// Unpublishes a server and stops it.
pub(crate) async fn remove(app: &Arc<App>, name: &str) -> Result<(), ServerChangeError> {
    let mut gone = None;
    app.update_servers(true, || gone = app.servers.take(name));
    let server = gone.ok_or_else(|| ServerChangeError::NotFound(name.to_owned()))?;
    server.stop.cancel();
    let session_conn =
        std::mem::replace(&mut *server.session_conn.lock().await, SessionConn::Untried);
    if let SessionConn::Open(c) = session_conn {
        c.close(Duration::from_secs(2)).await;
    }
    tracing::info!(server = %name, "server removed at runtime");
    Ok(())
}

/// `/admin/servers` POST: validate, then add, and tell the other replicas
/// (`[cluster] redis`), which add it too.
pub(crate) async fn add_table(
    app: &Arc<App>,
    name: &str,
    table: &Value,
) -> Result<(), ServerChangeError> {
    let cfg = parse_server(app, name, table)?;
    add(app, cfg)?;
    app.announce(Change::ServerAdded {
        name: name.to_owned(),
        table: table.clone(),
    });
    Ok(())
}

/// `/admin/servers/{name}` DELETE, told to the other replicas too.
pub(crate) async fn remove_named(app: &Arc<App>, name: &str) -> Result<(), ServerChangeError> {
    remove(app, name).await?;
    app.announce(Change::ServerRemoved {
        name: name.to_owned(),
    });
    Ok(())
}
