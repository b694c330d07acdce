//! The gateway's shared state: configuration, upstream servers, the current
//! catalog, client sessions, server-to-client requests waiting for a client's
//! answer, and resource subscriptions. Nothing here assumes a session exists:
//! a stateless request simply has none, which is also how the 2026-07-28 era
//! will reach the same routing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpgate_proto::jsonrpc;
use mcpgate_upstream::Connection;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::catalog::{Catalog, Contribution};
use crate::config::Config;
use crate::lock;
use crate::policy::Gate;
use crate::session::Session;
use crate::upstreams::{self, Server};
use mcpgate_store::Store;

/// A server-to-client request relayed to a client, waiting for its answer.
pub struct PendingServerRequest {
    pub target: Answer,
    pub session: Option<String>,
    pub created: Instant,
}

/// Where a client's answer to a server-to-client request goes.
pub enum Answer {
    /// Back to the upstream request it relays.
    Upstream {
        conn: Connection,
        upstream_id: Box<RawValue>,
    },
    /// To a call bridging a 2026-07-28 upstream's `InputRequiredResult`.
    Bridge(tokio::sync::oneshot::Sender<mcpgate_upstream::Reply>),
}

pub struct App {
    pub cfg: Config,
    /// Tenants, keys, balances and the usage ledger.
    pub store: Store,
    pub auth: Arc<Authenticator>,
    pub gate: Gate,
    pub servers: Vec<Arc<Server>>,
    catalog: RwLock<Arc<Catalog>>,
    /// The last catalog generation. Held for the whole of a rebuild, so two
    /// servers becoming ready at once cannot publish an older snapshot last.
    generation: Mutex<u64>,
    pub sessions: RwLock<HashMap<String, Arc<Session>>>,
    pending: Mutex<HashMap<String, PendingServerRequest>>,
    next_gid: AtomicU64,
    gid_salt: String,
    subscriptions: Mutex<HashMap<String, HashSet<String>>>,
    next_progress: AtomicU64,
    /// Client sessions initialized since start (a metric: session reuse shows here).
    pub sessions_opened: AtomicU64,
    pub shutdown: CancellationToken,
    pub started: Instant,
    /// 2026-07-28 calls waiting for the client's input (MRTR), by `requestState`.
    pub parking: crate::mrtr::Parking,
    /// Open 2026-07-28 `subscriptions/listen` streams.
    pub listeners: crate::modern::Listeners,
}

impl App {
    pub fn new(cfg: Config, store: Store) -> Arc<App> {
        let servers = cfg
            .servers
            .iter()
            .cloned()
            .map(|s| Arc::new(Server::new(s)))
            .collect();
        let auth = Arc::new(Authenticator::new(
            cfg.policy.auth,
            store.clone(),
            cfg.policy.clone(),
        ));
        Arc::new(App {
            cfg,
            store,
            auth,
            gate: Gate::default(),
            servers,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            generation: Mutex::new(0),
            sessions: RwLock::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_gid: AtomicU64::new(1),
            // The salt keeps relayed request ids from colliding across restarts; if
            // the OS generator failed, the start time still serves that purpose.
            gid_salt: crate::session::new_session_id()
                .map(|s| s[..8].to_owned())
                .unwrap_or_else(|_| {
                    format!(
                        "{:x}",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_nanos())
                            .unwrap_or(0)
                    )
                }),
            subscriptions: Mutex::new(HashMap::new()),
            next_progress: AtomicU64::new(1),
            sessions_opened: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            parking: Default::default(),
            listeners: Default::default(),
        })
    }

    /// Starts every upstream's supervisor and the session reaper.
    pub fn start(self: &Arc<Self>) {
        for s in &self.servers {
            tokio::spawn(upstreams::supervise(self.clone(), s.clone()));
        }
        tokio::spawn(self.auth.clone().watch(self.shutdown.clone()));
        let app = self.clone();
        tokio::spawn(async move {
            let tick = (app.cfg.session_idle_timeout / 4)
                .clamp(Duration::from_millis(50), Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {
                        app.expire_idle();
                        app.parking.sweep();
                    }
                    _ = app.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Starts the upstreams and waits until each is ready or has failed (at
    /// most the longest connect timeout plus a second): `check`, `tenants show`.
    pub async fn probe(self: &Arc<Self>) {
        self.start();
        let deadline = Instant::now()
            + self
                .servers
                .iter()
                .map(|s| s.cfg.spec.connect_timeout)
                .max()
                .unwrap_or_default()
            + Duration::from_secs(1);
        while Instant::now() < deadline
            && self
                .servers
                .iter()
                .any(|s| lock(&s.state).status == upstreams::Status::Starting)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops supervisors (which terminate their children) and waits a little for them.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let sessions: Vec<Arc<Session>> = write(&self.sessions).drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.end();
            for (_, c) in s.private.lock().await.drain() {
                c.close(Duration::from_secs(2)).await;
            }
        }
        for s in &self.servers {
            let conn = lock(&s.state).conn.clone();
            if let Some(c) = conn {
                c.close(Duration::from_secs(3)).await;
            }
        }
        // Calls finished during shutdown queued their outcomes; commit them.
        if let Err(e) = self.store.ledger().flush().await {
            tracing::error!("could not flush the usage ledger at shutdown: {e}");
        }
    }

    /// Ends every client session (used at shutdown).
    pub fn end_all_sessions(&self) {
        let ids: Vec<String> = read(&self.sessions).keys().cloned().collect();
        for id in ids {
            self.end_session(&id);
        }
    }

    pub fn server(&self, name: &str) -> Option<&Arc<Server>> {
        self.servers.iter().find(|s| s.name.as_ref() == name)
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        read(&self.catalog).clone()
    }

    /// Applies `change` to upstream state and publishes the catalog that
    /// follows from it, as one step: a reader using [`App::consistent`] never
    /// sees a server ready whose tools the catalog does not hold yet, and two
    /// servers changing at once cannot publish an older snapshot last.
    pub fn update_servers(&self, notify: bool, change: impl FnOnce()) {
        let mut last = lock(&self.generation);
        change();
        *last += 1;
        let generation = *last;
        let snapshot: Vec<Snapshot> = self
            .servers
            .iter()
            .map(|s| {
                let st = lock(&s.state);
                (
                    st.status == upstreams::Status::Ready,
                    s.name.clone(),
                    s.cfg.prefix,
                    st.lists.clone(),
                )
            })
            .collect();
        let ready: Vec<Contribution<'_>> =
            snapshot.iter().filter(|s| s.0).map(contribution).collect();
        let mut new = Catalog::build(generation, &self.cfg.separator, &ready);
        for down in snapshot.iter().filter(|s| !s.0) {
            new.add_offline(&self.cfg.separator, &contribution(down));
        }
        new.index_tiers(
            self.cfg
                .policy
                .tiers
                .values()
                .map(AsRef::as_ref)
                .chain([self.auth.local().tier.as_ref()]),
        );
        let old = std::mem::replace(&mut *write(&self.catalog), Arc::new(new));
        if notify {
            let cur = self.catalog();
            let changed = |a: &[Box<RawValue>], b: &[Box<RawValue>]| {
                a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.get() != y.get())
            };
            if changed(&old.tools, &cur.tools) {
                self.announce("notifications/tools/list_changed");
            }
            if changed(&old.prompts, &cur.prompts) {
                self.announce("notifications/prompts/list_changed");
            }
            if changed(&old.resources, &cur.resources) || changed(&old.templates, &cur.templates) {
                self.announce("notifications/resources/list_changed");
            }
        }
    }

    /// Runs `f` while no catalog rebuild is under way, so the upstream states
    /// it reads agree with the published catalog.
    pub fn consistent<T>(&self, f: impl FnOnce() -> T) -> T {
        let _quiet = lock(&self.generation);
        f()
    }

    /// Tells every session, and every 2026-07-28 listener that asked, that a list changed.
    fn announce(&self, method: &str) {
        self.broadcast(jsonrpc::notification(method, None).into());
        self.listeners.list_changed(method);
    }

    /// Sends a message to every session's standalone stream.
    pub fn broadcast(&self, msg: Bytes) {
        for s in read(&self.sessions).values() {
            s.push_standalone(msg.clone());
        }
    }

    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        read(&self.sessions).get(id).cloned()
    }

    /// Adds a session; false when `max_sessions` is reached.
    pub fn add_session(&self, s: Arc<Session>) -> bool {
        let mut map = write(&self.sessions);
        if map.len() >= self.cfg.max_sessions {
            return false;
        }
        map.insert(s.id.clone(), s);
        self.sessions_opened.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Ends a session: cancels its calls, closes its per-session upstreams, drops its subscriptions.
    pub fn end_session(&self, id: &str) -> bool {
        let Some(s) = write(&self.sessions).remove(id) else {
            return false;
        };
        s.end();
        lock(&self.pending).retain(|_, p| p.session.as_deref() != Some(id));
        let mut subs = lock(&self.subscriptions);
        for set in subs.values_mut() {
            set.remove(id);
        }
        subs.retain(|_, set| !set.is_empty());
        true
    }

    fn expire_idle(&self) {
        let idle = self.cfg.session_idle_timeout;
        let expired: Vec<String> = read(&self.sessions)
            .values()
            .filter(|s| s.idle_for() > idle && lock(&s.inflight).is_empty())
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            tracing::debug!(session = %id, "session expired after {idle:?} idle");
            self.end_session(&id);
        }
        let cutoff = Duration::from_secs(600);
        lock(&self.pending).retain(|_, p| p.created.elapsed() < cutoff);
    }

    /// Registers a server-to-client request and returns the id the client sees.
    /// Ids carry a per-process salt so they cannot be guessed or collide.
    pub fn register_server_request(&self, target: Answer, session: Option<&str>) -> String {
        let n = self.next_gid.fetch_add(1, Ordering::Relaxed);
        let gid = format!("mcpgate-{}-{n}", self.gid_salt);
        lock(&self.pending).insert(
            gid.clone(),
            PendingServerRequest {
                target,
                session: session.map(str::to_owned),
                created: Instant::now(),
            },
        );
        gid
    }

    /// Takes the pending request a client's response answers, if the id is ours
    /// and (with sessions) it was sent to this session.
    pub fn take_server_request(
        &self,
        gid: &str,
        session: Option<&str>,
    ) -> Option<PendingServerRequest> {
        let mut pending = lock(&self.pending);
        match pending.get(gid) {
            Some(p) if p.session.is_none() || p.session.as_deref() == session => {
                pending.remove(gid)
            }
            _ => None,
        }
    }

    /// The client-visible id of a pending request, given the upstream id (for cancellation).
    pub fn server_request_gid(&self, conn: &Connection, upstream_id: &str) -> Option<String> {
        lock(&self.pending)
            .iter()
            .find(|(_, p)| match &p.target {
                Answer::Upstream {
                    conn: c,
                    upstream_id: u,
                } => u.get() == upstream_id && c.name() == conn.name(),
                Answer::Bridge(_) => false,
            })
            .map(|(g, _)| g.clone())
    }

    /// A progress token unique across all sessions, as raw JSON.
    pub fn new_progress_token(&self) -> String {
        let n = self.next_progress.fetch_add(1, Ordering::Relaxed);
        format!("\"mcpgate-p-{}-{n}\"", self.gid_salt)
    }

    pub fn subscribe(&self, uri: &str, session: &str) {
        lock(&self.subscriptions)
            .entry(uri.to_owned())
            .or_default()
            .insert(session.to_owned());
    }

    /// Removes a subscription; returns whether nobody else is subscribed to `uri`.
    pub fn unsubscribe(&self, uri: &str, session: &str) -> bool {
        let mut subs = lock(&self.subscriptions);
        let Some(set) = subs.get_mut(uri) else {
            return true;
        };
        set.remove(session);
        if set.is_empty() {
            subs.remove(uri);
            true
        } else {
            false
        }
    }

    /// Forwards `notifications/resources/updated` to the sessions subscribed to its URI.
    pub fn resource_updated(&self, params: Option<&RawValue>) {
        #[derive(Deserialize)]
        struct P {
            uri: String,
        }
        let Some(p) = params.and_then(|p| serde_json::from_str::<P>(p.get()).ok()) else {
            return;
        };
        let ids: Vec<String> = lock(&self.subscriptions)
            .get(&p.uri)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        self.listeners.resource_updated(&p.uri);
        let msg: Bytes = jsonrpc::notification("notifications/resources/updated", params).into();
        for id in ids {
            if let Some(s) = self.session(&id) {
                s.push_standalone(msg.clone());
            }
        }
    }
}

/// One server as the catalog sees it: ready?, name, prefix rule, last lists.
type Snapshot = (
    bool,
    Arc<str>,
    crate::config::Prefix,
    crate::catalog::ServerLists,
);

fn contribution(s: &Snapshot) -> Contribution<'_> {
    Contribution {
        server: &s.1,
        prefix: s.2,
        lists: &s.3,
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
