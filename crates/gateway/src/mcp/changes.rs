//! What replicas tell each other (`[cluster] redis`, see `state::pubsub`):
//! this replica's changes are published (its store's commits to tenants or
//! keys, servers added or removed through the admin API, a reload), and
//! the other replicas' changes are applied here: cached keys dropped, the
//! server added or removed, the config file re-read. Applying never
//! publishes again, so a change travels once.

use std::sync::Arc;

use crate::state::App;
use crate::state::pubsub::Change;

/// Starts the publisher, the subscriber and the watcher of this replica's
/// store commits; nothing when `[cluster] redis` is not set. Every task
/// ends at shutdown.
pub(crate) fn start(app: &Arc<App>) {
    let Some(ps) = app.pubsub.clone() else {
        return;
    };
    let shutdown = app.shutdown.clone();
    tokio::spawn({
        let (ps, shutdown) = (ps.clone(), shutdown.clone());
        async move { ps.run_publisher(shutdown).await }
    });
    let weak = Arc::downgrade(app);
    tokio::spawn({
        let (ps, shutdown) = (ps.clone(), shutdown.clone());
        async move {
            ps.run_subscriber(shutdown, move |change| {
                if let Some(app) = weak.upgrade() {
                    apply(&app, change);
                }
            })
            .await;
        }
    });
    // This replica's own commits to tenants and keys: drop its cache now
    // and tell the others.
    let mut commits = app.store.changes();
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = commits.changed() => if r.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
            let Some(app) = weak.upgrade() else { return };
            app.auth.forget_cached();
            ps.publish(Change::Keys);
        }
    });
}

/// Applies another replica's change here. Server changes and reloads run in
/// a task of their own, so the subscriber never waits on them.
fn apply(app: &Arc<App>, change: Change) {
    match change {
        Change::Keys => app.auth.forget_cached(),
        Change::ServerAdded { name, table } => {
            let app = app.clone();
            tokio::spawn(async move {
                let added = super::servers::parse_server(&app, &name, &table)
                    .and_then(|cfg| super::servers::add(&app, cfg));
                match added {
                    Ok(()) => tracing::info!(server = %name, "server added by another replica"),
                    Err(e) => tracing::warn!(
                        server = %name,
                        "another replica added a server this one cannot: {e}"
                    ),
                }
            });
        }
        Change::ServerRemoved { name } => {
            let app = app.clone();
            tokio::spawn(async move {
                match super::servers::remove(&app, &name).await {
                    Ok(()) => tracing::info!(server = %name, "server removed by another replica"),
                    Err(e) => {
                        tracing::debug!(server = %name, "another replica removed a server: {e}")
                    }
                }
            });
        }
        Change::Reload => {
            let app = app.clone();
            tokio::spawn(async move {
                tracing::info!("another replica reloaded its config; reloading this one's");
                let _ = super::reload::reload_here(&app).await;
            });
        }
    }
}

/// Tells a running cluster's replicas that tenants or keys changed, from a
/// process that changed them in the store itself (the CLI): nothing
/// without `[cluster] redis`; an error when Redis cannot be reached (the
/// replicas then see the change at their next poll of the store).
pub async fn announce_store_change(
    cfg: &crate::Config,
    store: &mcpgate_store::Store,
) -> Result<(), String> {
    let Some(url) = &cfg.redis else {
        return Ok(());
    };
    crate::state::pubsub::announce(url, &store.describe(), Change::Keys).await
}
