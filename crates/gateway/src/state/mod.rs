//! What the gateway holds: configuration, the store handle, the
//! authenticator and limiter, the upstream servers with the catalog built
//! from them, client sessions, relayed server-to-client requests, resource
//! subscriptions, parked 2026-07-28 calls and `subscriptions/listen` streams.
//! Each piece owns its lock; `App` only gathers them. Nothing here knows
//! HTTP (no axum types) or what an MCP method does (that is `mcp`), and
//! nothing assumes a session exists: a stateless request simply has none.

pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod error;
pub(crate) mod listeners;
pub(crate) mod parking;
pub(crate) mod policy;
pub(crate) mod server_requests;
pub(crate) mod servers;
pub(crate) mod sessions;
pub(crate) mod startup;
pub(crate) mod subscriptions;

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
    pub shutdown: CancellationToken,
    pub(crate) started: Instant,
}

impl App {
    pub fn new(cfg: Config, store: Store) -> Arc<App> {
        let auth = Arc::new(Authenticator::new(
            cfg.policy.auth,
            store.clone(),
            cfg.policy.clone(),
        ));
        Arc::new(App {
            servers: Servers::new(&cfg),
            cfg,
            store,
            auth,
            gate: Gate::default(),
            sessions: Sessions::default(),
            server_requests: ServerRequests::default(),
            subscriptions: Subscriptions::default(),
            parking: Parking::default(),
            listeners: Listeners::default(),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
        })
    }

    pub(crate) fn server(&self, name: &str) -> Option<&Arc<Server>> {
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
        let tiers = self
            .cfg
            .policy
            .tiers
            .values()
            .map(AsRef::as_ref)
            .chain([self.auth.local().tier.as_ref()]);
        let changed = self.servers.update(&self.cfg.separator, tiers, change);
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

    /// Ends a session: cancels its calls and drops its relayed requests and
    /// subscriptions (its per-session upstreams close with it, in `mcp`).
    pub(crate) fn end_session(&self, id: &str) -> Option<Arc<sessions::Session>> {
        let s = self.sessions.remove(id)?;
        s.end();
        self.server_requests.drop_session(id);
        self.subscriptions.drop_holder(id);
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

    /// Forwards `notifications/resources/updated` to the sessions and
    /// listeners subscribed to its URI.
    pub(crate) fn resource_updated(&self, params: Option<&RawValue>) {
        #[derive(Deserialize)]
        struct P {
            uri: String,
        }
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
