//! What the gateway holds: configuration, the store handle, the
//! authenticator and limiter, the upstream servers with the catalog built
//! from them, client sessions, relayed server-to-client requests, resource
//! subscriptions, parked 2026-07-28 calls and `subscriptions/listen` streams.
//! Each piece owns its lock; `App` only gathers them. Nothing here knows
//! HTTP (no axum types) or what an MCP method does (that is `mcp`), and
//! nothing assumes a session exists: a stateless request simply has none.

pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod cluster;
pub(crate) mod error;
pub(crate) mod listeners;
pub(crate) mod log_levels;
pub(crate) mod metrics;
pub(crate) mod oauth;
pub(crate) mod oauth_approvals;
pub(crate) mod parking;
pub(crate) mod policy;
pub(crate) mod pubsub;
pub(crate) mod redis_conn;
pub(crate) mod resource_uris;
pub(crate) mod runs;
pub(crate) mod server_requests;
pub(crate) mod servers;
pub(crate) mod session_directory;
pub(crate) mod sessions;
pub(crate) mod startup;
pub(crate) mod subscriptions;
pub(crate) mod ui_sessions;
pub(crate) mod work;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mcpgate_proto::jsonrpc;
use mcpgate_store::Store;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use auth::Authenticator;
use catalog::Catalog;
use listeners::Listeners;
use log_levels::{LogLevels, message_rank};
use parking::Parking;
use policy::Gate;
use server_requests::ServerRequests;
use servers::{Server, Servers};
use sessions::Sessions;
use subscriptions::Subscriptions;

/// The gateway's shared state, one per process.
pub struct App {
    pub cfg: Config,
    /// Tenants, keys, balances and the usage ledger.
    pub store: Store,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) gate: Gate,
    pub(crate) servers: Servers,
    pub(crate) sessions: Sessions,
    pub(crate) server_requests: ServerRequests,
    pub(crate) subscriptions: Subscriptions,
    /// 2026-07-28 calls waiting for the client's input (MRTR), by `requestState`.
    pub(crate) parking: Parking,
    /// Open 2026-07-28 `subscriptions/listen` streams.
    pub(crate) listeners: Listeners,
    /// The log level each session asked for, counted per tier.
    pub(crate) log_levels: LogLevels,
    /// Agent runs: workflows, the runner, live run keys (see `mcp::runs`).
    pub(crate) runs: runs::RunsState,
    /// The web page's sign-in sessions (`/ui/`).
    pub(crate) ui: ui_sessions::UiSessions,
    /// Request counters and latencies for `/metrics`.
    pub(crate) metrics: metrics::Metrics,
    /// The rate-limit buckets shared by replicas (`[cluster] redis`).
    pub(crate) shared_rate: Option<cluster::SharedRate>,
    /// Which replica holds each session and parked call (`[cluster] redis`).
    pub(crate) directory: Option<session_directory::Directory>,
    /// Changes told to and heard from the other replicas (`[cluster] redis`).
    pub(crate) pubsub: Option<Arc<pubsub::PubSub>>,
    /// Where trace spans go (`[telemetry]`); `None` builds none.
    pub(crate) telemetry: Option<Arc<crate::telemetry::Tracer>>,
    pub shutdown: CancellationToken,
    pub(crate) started: Instant,
}

impl App {
    /// The gateway's state; Redis (`[cluster] redis`) is connected on first
    /// use, and a URL that cannot be used is logged and leaves limits per replica.
    pub fn new(cfg: Config, store: Store) -> Arc<App> {
        let shared_rate = cfg.redis.as_deref().and_then(|url| {
            match cluster::SharedRate::new(url, &cfg.key_prefix) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!("{e}; rate limits stay per replica");
                    None
                }
            }
        });
        let pubsub = cfg.redis.as_deref().and_then(|url| {
            match pubsub::PubSub::new(url, &store.describe()) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    tracing::error!("{e}; replicas see key changes by polling the store");
                    None
                }
            }
        });
        let directory = cfg.redis.as_deref().and_then(|url| {
            session_directory::Directory::new(url, &cfg.key_prefix)
                .map_err(|e| tracing::error!("{e}; sessions stay on the replica that opened them"))
                .ok()
        });
        let telemetry = cfg
            .telemetry
            .clone()
            .map(|t| Arc::new(crate::telemetry::Tracer::new(t)));
        let scopes = runs::Scopes::default();
        let auth = Arc::new(Authenticator::new(
            cfg.policy.auth,
            store.clone(),
            cfg.policy.clone(),
            scopes.clone(),
            oauth::OAuth::new(&cfg.data_dir),
        ));
        let servers = Servers::new(&cfg);
        Arc::new(App {
            log_levels: LogLevels::new(servers.all().iter().map(|s| &s.name)),
            servers,
            runs: runs::RunsState::new(store.clone(), &cfg.data_dir, scopes),
            cfg,
            store,
            auth,
            gate: Gate::default(),
            sessions: Sessions::default(),
            server_requests: ServerRequests::default(),
            subscriptions: Subscriptions::default(),
            parking: Parking::default(),
            listeners: Listeners::default(),
            ui: ui_sessions::UiSessions::default(),
            metrics: metrics::Metrics::default(),
            shared_rate,
            directory,
            pubsub,
            telemetry,
            shutdown: CancellationToken::new(),
            started: Instant::now(),
        })
    }

    /// Tells the other replicas about `change` (`[cluster] redis`; nothing without it).
    pub(crate) fn announce(&self, change: pubsub::Change) {
        if let Some(ps) = &self.pubsub {
            ps.publish(change);
        }
    }

    pub(crate) fn server(&self, name: &str) -> Option<Arc<Server>> {
        self.servers.get(name)
    }

    /// The catalog as last published.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.servers.catalog()
    }

    /// Applies `change` to upstream state and publishes the catalog that
    /// follows from it, as one step (see `Servers::update`); with `notify`,
    /// every session and listener hears which lists changed.
    pub(crate) fn update_servers(&self, notify: bool, change: impl FnOnce()) {
        let policy = self.auth.policy();
        let local = self.auth.local();
        let tiers = policy
            .tiers
            .values()
            .map(AsRef::as_ref)
            .chain([local.tier.as_ref()]);
        let changed = self.servers.update(&self.cfg.separator, tiers, change);
        // A server (re)connected, or what tiers see changed: levels to send.
        self.log_levels.notify();
        if notify {
            for method in changed.notifications() {
                self.broadcast(jsonrpc::notification(method, None).into());
                self.listeners.list_changed(method);
            }
        }
    }

    /// Sends a message to every session's standalone stream.
    pub(crate) fn broadcast(&self, msg: Bytes) {
        for s in self.sessions.all() {
            s.push_standalone(msg.clone());
        }
    }

    /// Sends an upstream's `notifications/message` from outside any call to
    /// the sessions that may read it: their tier sees something `server`
    /// offers, and the message is at or above the level they asked for.
    pub(crate) fn broadcast_log(&self, server: &str, params: Option<&RawValue>) {
        let rank = message_rank(params);
        let catalog = self.catalog();
        let msg: Bytes = jsonrpc::notification("notifications/message", params).into();
        for s in self.sessions.all() {
            if s.wants_log(rank) && catalog.tier_sees_server(&s.tier, server) {
                s.push_standalone(msg.clone());
            }
        }
    }

    /// Ends a session: cancels its calls and drops its relayed requests,
    /// subscriptions and log level (its per-session upstreams close with it,
    /// in `mcp`).
    pub(crate) fn end_session(&self, id: &str) -> Option<Arc<sessions::Session>> {
        let s = self.sessions.remove(id)?;
        s.end();
        if let Some(d) = &self.directory {
            d.forget_soon(id);
        }
        self.server_requests.drop_session(id);
        self.subscriptions.drop_holder(id);
        self.log_levels.forget(&s);
        Some(s)
    }

    /// Ends idle sessions and forgets stale relayed requests and parked calls.
    pub(crate) fn expire_idle(&self) {
        let idle = self.cfg.session_idle_timeout;
        for id in self.sessions.idle(idle) {
            tracing::debug!(session = %id, "session expired after {idle:?} idle");
            self.end_session(&id);
        }
        self.server_requests.expire();
        self.parking.sweep();
    }

    /// Forwards `server`'s `notifications/resources/updated` to the sessions
    /// and listeners subscribed to its URI (as exposed: namespaced when the
    /// server's URIs are).
    pub(crate) fn resource_updated(&self, server: &str, params: Option<&RawValue>) {
        #[derive(Deserialize)]
        struct P {
            uri: String,
        }
        let exposed = match (self.catalog().resource_namespace_of(server), params) {
            (Some(ns), Some(p)) => resource_uris::expose_in_updated(ns, p),
            _ => None,
        };
        let params = exposed.as_deref().or(params);
        let Some(p) = params.and_then(|p| serde_json::from_str::<P>(p.get()).ok()) else {
            return;
        };
        self.listeners.resource_updated(&p.uri);
        let msg: Bytes = jsonrpc::notification("notifications/resources/updated", params).into();
        for id in self.subscriptions.holders(&p.uri) {
            if let Some(s) = self.sessions.get(&id) {
                s.push_standalone(msg.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sessions::{ClientCaps, Next, Session};
    use std::time::Duration;

    /// What reached a session's standalone stream, without waiting for more.
    async fn standalone(s: &Session) -> Vec<String> {
        let stream = s.standalone();
        let (reader, mut at) = stream.attach();
        let mut got = Vec::new();
        while let Some(Next::Event(seq, b)) = stream.next(at, reader, Duration::ZERO).await {
            got.push(String::from_utf8_lossy(&b).into_owned());
            at = seq + 1;
        }
        got
    }

    /// A log an upstream sends outside any call reaches only the sessions
    /// whose tier sees that server, at or above each one's own level.
    #[tokio::test]
    async fn standalone_logs_reach_the_sessions_that_may_read_them() {
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-broadcast-log-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let text = format!(
            "data_dir = {:?}\n[tiers.narrow]\ntools = [\"a__*\"]\n[servers.a]\ncommand = \"true\"\n[servers.b]\ncommand = \"true\"\n",
            dir.display().to_string()
        );
        let cfg = Config::parse(std::path::Path::new("t.toml"), &text).expect("config");
        let store = Store::open_in_dir(&dir).await.expect("store");
        let app = App::new(cfg, store);
        for s in app.servers.all().iter() {
            app.update_servers(false, || {
                let mut st = mcpgate_proto::locks::lock(&s.state);
                st.status = servers::Status::Ready;
                st.lists.tools = vec![
                    serde_json::from_str(r#"{"name":"echo","inputSchema":{"type":"object"}}"#)
                        .expect("tool"),
                ];
            });
        }
        let session = |tier: &str| {
            let s = Arc::new(
                Session::new(Arc::from("t"), Arc::from(tier), ClientCaps::default()).expect("id"),
            );
            app.sessions.add(s.clone(), 10, 10).expect("room");
            s
        };
        let narrow = session("narrow");
        let quiet = session("narrow");
        app.log_levels.set(&quiet, 4); // error
        let log = |level: &str| {
            RawValue::from_string(format!(r#"{{"level":"{level}","data":"x"}}"#)).expect("json")
        };
        app.broadcast_log("a", Some(&log("warning")));
        app.broadcast_log("b", Some(&log("warning")));
        let got = standalone(&narrow).await;
        assert_eq!(got.len(), 1, "only server a's log: {got:?}");
        assert!(got[0].contains("warning"), "{got:?}");
        assert!(standalone(&quiet).await.is_empty(), "below its level");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
