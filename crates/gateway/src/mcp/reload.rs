//! Re-reading the config file while serving (SIGHUP, `POST /admin/reload`,
//! `mcpgate reload`). The new file is parsed and checked in full first (every
//! tenant's plan must map to a tier, as at start-up); a bad one is refused
//! with its error and the running config stays. A good one puts its plans
//! and tiers (visibility, rate, concurrency, sessions, costs) in force at
//! once: open sessions keep their ids, their next request is resolved under
//! the new tiers, and every session and listener is told its lists changed.
//! Servers added, removed or changed in the file are added, removed or
//! restarted (`mcp::servers`). What cannot change in place (the store, gateway-wide settings
//! such as `max_body`; `listen` is what the socket is bound to) is reported as needing a restart and left
//! as it was; a new auth mode is refused.

use serde::Serialize;

use std::sync::Arc;

use crate::config::Config;
use crate::state::App;
use crate::state::pubsub::Change;
use mcpgate_proto::jsonrpc;

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The file read.
    pub file: String,
    /// Whether the plans or tiers changed (and were applied).
    pub policy_changed: bool,
    /// Servers added, removed and restarted because their table changed.
    pub servers_added: Vec<String>,
    pub servers_removed: Vec<String>,
    pub servers_changed: Vec<String>,
    /// Changes the file holds that only a restart applies.
    pub needs_restart: Vec<String>,
}

/// Re-reads `app.cfg.file` and applies what can change in place. An error
/// leaves everything as it was; it is also logged. A reload that worked is
/// announced to the other replicas (`[cluster] redis`), which re-read
/// their own file.
pub async fn reload(app: &Arc<App>) -> Result<Reloaded, String> {
    let r = reload_here(app).await;
    if r.is_ok() {
        app.announce(Change::Reload);
    }
    r
}

/// [`reload`] without telling the other replicas (a reload one of them announced).
pub(crate) async fn reload_here(app: &Arc<App>) -> Result<Reloaded, String> {
    let r = reload_inner(app).await;
    match &r {
        Ok(done) => {
            tracing::info!(
                file = %done.file,
                policy_changed = done.policy_changed,
                "config reloaded{}",
                if done.needs_restart.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; needs a restart to apply: {}",
                        done.needs_restart.join("; ")
                    )
                }
            );
        }
        Err(e) => tracing::error!("config reload refused, the running config stays: {e}"),
    }
    r
}

async fn reload_inner(app: &Arc<App>) -> Result<Reloaded, String> {
    let new = Config::load(&app.cfg.file).map_err(|e| e.to_string())?;
    let tenants = app
        .store
        .list_tenants()
        .await
        .map_err(|e| format!("cannot read the tenants to check their plans: {e}"))?;
    let unmapped: Vec<String> = tenants
        .iter()
        .filter(|t| new.policy.tier_for_plan(&t.plan).is_none())
        .map(|t| new.policy.unmapped_plan(&t.name, &t.plan))
        .collect();
    if !unmapped.is_empty() {
        return Err(format!("{}: {}", new.file.display(), unmapped.join("; ")));
    }
    if new.policy.auth != app.auth.mode() {
        return Err(format!(
            "{}: auth: changing the auth mode needs a restart",
            new.file.display()
        ));
    }
    let needs_restart = restart_only_changes(&app.cfg, &new);
    let old = app.auth.policy();
    let policy_changed = format!("{:?}", *old) != format!("{:?}", new.policy);
    if policy_changed {
        app.auth.set_policy(new.policy.clone());
        // What each tier sees is recomputed from the same upstream lists.
        app.update_servers(false, || {});
        for method in [
            "notifications/tools/list_changed",
            "notifications/prompts/list_changed",
            "notifications/resources/list_changed",
        ] {
            app.broadcast(jsonrpc::notification(method, None).into());
            app.listeners.list_changed(method);
        }
    }
    let (added, removed, changed) = server_changes(app, &new);
    for name in removed.iter().chain(&changed) {
        let _ = super::servers::remove(app, name).await;
    }
    for s in new
        .servers
        .iter()
        .filter(|s| added.contains(&s.name) || changed.contains(&s.name))
    {
        if let Err(e) = super::servers::add(app, s.clone()) {
            tracing::error!(server = %s.name, "reload could not add the server: {e}");
        }
    }
    Ok(Reloaded {
        file: new.file.display().to_string(),
        policy_changed,
        servers_added: added,
        servers_removed: removed,
        servers_changed: changed,
        needs_restart,
    })
}

/// Differences between the running config and a new one that a reload does
/// not apply: where the store is, and gateway-wide settings.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.data_dir != new.data_dir || old.database != new.database {
        out.push("the store (data_dir / database)".into());
    }
    // Gateway-wide settings, read where they are used from the running config.
    let settings: Vec<&str> = [
        ("stateless", old.stateless != new.stateless),
        (
            "session_idle_timeout",
            old.session_idle_timeout != new.session_idle_timeout,
        ),
        ("max_sessions", old.max_sessions != new.max_sessions),
        ("max_body", old.max_body_bytes != new.max_body_bytes),
        (
            "allowed_origins",
            old.allowed_origins != new.allowed_origins,
        ),
        ("allowed_hosts", old.allowed_hosts != new.allowed_hosts),
        ("separator", old.separator != new.separator),
        ("page_size", old.page_size != new.page_size),
        (
            "audit / audit_arguments",
            old.policy.audit != new.policy.audit
                || old.policy.audit_arguments != new.policy.audit_arguments,
        ),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(name, _)| name)
    .collect();
    if !settings.is_empty() {
        out.push(format!("settings changed: {}", settings.join(", ")));
    }
    out
}

/// Servers the new file adds, removes, or changes (by their whole table),
/// against what runs now (runtime additions included: the file wins).
fn server_changes(app: &App, new: &Config) -> (Vec<String>, Vec<String>, Vec<String>) {
    let running = app.servers.all();
    let was: Vec<String> = running.iter().map(|s| s.name.to_string()).collect();
    let now: Vec<String> = new.servers.iter().map(|s| s.name.clone()).collect();
    let added = now.iter().filter(|n| !was.contains(n)).cloned().collect();
    let removed = was.iter().filter(|n| !now.contains(n)).cloned().collect();
    let changed = new
        .servers
        .iter()
        .filter(|s| {
            running
                .iter()
                .find(|r| r.name.as_ref() == s.name)
                .is_some_and(|r| format!("{:?}", r.cfg) != format!("{s:?}"))
        })
        .map(|s| s.name.clone())
        .collect();
    (added, removed, changed)
}
