//! The configured upstream servers as the gateway holds them: each one's
//! state (`Status`, connection, last lists, last error), its circuit
//! `Breaker`, and the catalog cell that is rebuilt from those states. A state
//! change and the catalog built from it are one step under the generation
//! lock (`Servers::update`), so a reader using `Servers::consistent` never sees
//! a server ready whose tools the catalog does not hold yet. Supervision (who
//! changes these states) lives in `mcp::supervise`.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mcpgate_upstream::{Connection, InitInfo, Reply, UpstreamError};
use serde_json::value::RawValue;

use super::catalog::{Catalog, Contribution, ServerLists};
use super::error::CallError;
use crate::config::{Config, Prefix, ResourceUris, ServerConfig, Tier};
use mcpgate_proto::locks::{lock, read, write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Starting,
    Ready,
    /// Cannot be reached: connect refused, DNS, process failed to start or exited.
    Unreachable,
    /// Reachable, but refused our credentials (401/403).
    AuthFailed,
    /// Reachable, but spoke something other than MCP (bad status, bad initialize).
    ProtocolError,
}

impl Status {
    /// The status a failure to connect or call puts the server in.
    pub fn of_error(e: &UpstreamError) -> Status {
        match e {
            UpstreamError::AuthFailed { .. } => Status::AuthFailed,
            UpstreamError::Protocol { .. } | UpstreamError::Http { .. } => Status::ProtocolError,
            _ => Status::Unreachable,
        }
    }
}

/// Fails calls fast after `threshold` consecutive failures of the upstream
/// itself; after `cooldown` one probe call goes through, and its success
/// closes the breaker again, as does the server completing a new handshake
/// (`reset`). Only the upstream's health counts: a connect failure, a
/// protocol error, a crash or closed connection. A call that ran past its
/// caller's timeout, or that its client cancelled, says nothing about the
/// server (one tenant's slow calls must not shut a healthy server for every
/// tenant), and neither does a refusal before the request was sent.
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: std::sync::Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// What a forwarded request's outcome says about the upstream's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// It answered (a JSON-RPC error still proves it works).
    Up,
    /// It could not be reached, broke the protocol, crashed or closed.
    Down,
    /// Nothing: the call timed out on its caller's clock or was cancelled.
    Unknown,
}

impl Health {
    pub(crate) fn of(outcome: &Result<Reply, UpstreamError>) -> Health {
        match outcome {
            Ok(_) => Health::Up,
            Err(UpstreamError::Timeout { .. } | UpstreamError::Cancelled { .. }) => Health::Unknown,
            Err(_) => Health::Down,
        }
    }
}

/// One call the breaker let through. `record` says how it went; dropped
/// without that (the call ended before it reached the upstream), it counts
/// for nothing, and a half-open breaker's probe slot is given back.
#[must_use = "record the call's health, or drop the admission to count nothing"]
pub(crate) struct Admission<'a> {
    breaker: &'a Breaker,
    /// This call is the half-open breaker's one probe.
    probe: bool,
    recorded: bool,
}

impl Admission<'_> {
    pub(crate) fn record(mut self, health: Health) {
        self.breaker.record(health, self.probe);
        self.recorded = true;
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(Health::Unknown, self.probe);
        }
    }
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold,
            cooldown,
            state: std::sync::Mutex::new(BreakerState::default()),
        }
    }

    /// `closed`, `open` (failing calls fast) or `half_open` (cooled down,
    /// the next call probes), for `/metrics`.
    pub(crate) fn state_name(&self) -> &'static str {
        let st = lock(&self.state);
        match st.open_until {
            None => "closed",
            Some(until) if Instant::now() < until && !st.probing => "open",
            Some(_) => "half_open",
        }
    }

    /// An admission when a call may go through; Err with the time left while open.
    pub(crate) fn admit(&self) -> Result<Admission<'_>, Duration> {
        let mut probe = false;
        if self.threshold > 0 {
            let mut st = lock(&self.state);
            if let Some(until) = st.open_until {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                if st.probing {
                    return Err(Duration::ZERO);
                }
                st.probing = true; // half-open: this one call probes
                probe = true;
            }
        }
        Ok(Admission {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    fn record(&self, health: Health, probe: bool) {
        if self.threshold == 0 {
            return;
        }
        let mut st = lock(&self.state);
        if probe {
            st.probing = false;
        }
        match health {
            Health::Unknown => {}
            Health::Up => {
                st.failures = 0;
                st.open_until = None;
            }
            Health::Down => {
                st.failures = st.failures.saturating_add(1);
                if st.failures >= self.threshold {
                    st.open_until = Some(Instant::now() + self.cooldown);
                }
            }
        }
    }

    /// Closes the breaker: the server just completed a new handshake.
    pub(crate) fn reset(&self) {
        *lock(&self.state) = BreakerState::default();
    }

    pub(crate) fn is_open(&self) -> bool {
        lock(&self.state).open_until.is_some()
    }
}

pub(crate) struct ServerState {
    pub status: Status,
    pub conn: Option<Connection>,
    pub init: Option<InitInfo>,
    pub lists: ServerLists,
    pub last_error: Option<String>,
    pub restarts: u32,
    pub since: Instant,
}

pub(crate) struct Server {
    pub cfg: ServerConfig,
    pub name: Arc<str>,
    pub state: std::sync::Mutex<ServerState>,
    pub instances: AtomicUsize,
    pub breaker: Breaker,
    /// For a server the shared connection reaches statelessly (2026-07-28):
    /// its session-based connection, tried on the first call of a
    /// session-based client, so such clients keep what only sessions can do
    /// (the server asking them for input mid-call, `resources/subscribe`) when
    /// the server offers both eras. The catalog is listed from the shared
    /// connection only. Locked while it is opened.
    pub session_conn: tokio::sync::Mutex<SessionConn>,
    /// Cancelled when the server is removed at runtime: its supervisor stops.
    pub stop: tokio_util::sync::CancellationToken,
}

/// A stateless server's session-based connection (see `Server::session_conn`).
pub(crate) enum SessionConn {
    /// Not tried since the shared connection came up.
    Untried,
    Open(Connection),
    /// The server refused the `initialize` handshake: it speaks only
    /// 2026-07-28, and session-based clients are bridged.
    Refused,
}

impl Server {
    pub(crate) fn new(cfg: ServerConfig) -> Server {
        Server {
            name: Arc::from(cfg.name.as_str()),
            state: std::sync::Mutex::new(ServerState {
                status: Status::Starting,
                conn: None,
                init: None,
                lists: ServerLists::default(),
                last_error: None,
                restarts: 0,
                since: Instant::now(),
            }),
            instances: AtomicUsize::new(0),
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown),
            session_conn: tokio::sync::Mutex::new(SessionConn::Untried),
            stop: tokio_util::sync::CancellationToken::new(),
            cfg,
        }
    }

    /// Records a forwarded request's outcome: the breaker counts what it says
    /// about the server's health, and a refused credential marks the server
    /// `auth_failed` for `/health`.
    pub(crate) fn record_outcome(
        &self,
        admission: Admission<'_>,
        outcome: &Result<Reply, UpstreamError>,
    ) {
        admission.record(Health::of(outcome));
        if let Err(e @ UpstreamError::AuthFailed { .. }) = outcome {
            let mut st = lock(&self.state);
            st.status = Status::AuthFailed;
            st.last_error = Some(e.to_string());
        }
    }

    /// Whether the shared connection speaks the stateless 2026-07-28 revision.
    pub(crate) fn is_stateless(&self) -> bool {
        lock(&self.state)
            .conn
            .as_ref()
            .is_some_and(Connection::is_modern)
    }

    pub(crate) fn shared_conn(&self) -> Result<Connection, CallError> {
        let st = lock(&self.state);
        match (&st.status, &st.conn) {
            (Status::Ready, Some(c)) if c.is_alive() => Ok(c.clone()),
            _ => Err(CallError::Unavailable {
                server: self.name.to_string(),
                reason: st
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "it is still starting".into()),
            }),
        }
    }
}

/// Which lists changed when a new catalog was published.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Changed {
    pub(crate) tools: bool,
    pub(crate) prompts: bool,
    pub(crate) resources: bool,
}

impl Changed {
    /// The `list_changed` notifications these changes call for.
    pub(crate) fn notifications(self) -> impl Iterator<Item = &'static str> {
        [
            (self.tools, "notifications/tools/list_changed"),
            (self.prompts, "notifications/prompts/list_changed"),
            (self.resources, "notifications/resources/list_changed"),
        ]
        .into_iter()
        .filter_map(|(on, m)| on.then_some(m))
    }
}

/// Every configured server, and the catalog published from their states.
pub(crate) struct Servers {
    /// The servers, replaced whole when one is added or removed at runtime.
    list: RwLock<Arc<Vec<Arc<Server>>>>,
    catalog: RwLock<Arc<Catalog>>,
    /// The last catalog generation. Held for the whole of a rebuild, so two
    /// servers becoming ready at once cannot publish an older snapshot last.
    generation: Mutex<u64>,
    /// Whether the tiers' counts were logged (once the first discovery ended).
    tiers_logged: std::sync::atomic::AtomicBool,
}

/// One server as the catalog sees it: ready?, name, prefix rule, resource URI rule, last lists.
type Snapshot = (bool, Arc<str>, Prefix, ResourceUris, ServerLists);

impl Servers {
    pub(crate) fn new(cfg: &Config) -> Servers {
        Servers {
            list: RwLock::new(Arc::new(
                cfg.servers
                    .iter()
                    .cloned()
                    .map(|s| Arc::new(Server::new(s)))
                    .collect(),
            )),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            generation: Mutex::new(0),
            tiers_logged: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Server>> {
        read(&self.list)
            .iter()
            .find(|s| s.name.as_ref() == name)
            .cloned()
    }

    /// Every server, as of now.
    pub(crate) fn all(&self) -> Arc<Vec<Arc<Server>>> {
        read(&self.list).clone()
    }

    /// Adds a server (call inside [`Servers::update`]'s change); `false` if
    /// the name is taken.
    pub(crate) fn insert(&self, server: Arc<Server>) -> bool {
        let mut list = write(&self.list);
        if list.iter().any(|s| s.name == server.name) {
            return false;
        }
        let mut next = list.as_ref().clone();
        next.push(server);
        *list = Arc::new(next);
        true
    }

    /// Removes a server by name (call inside [`Servers::update`]'s change).
    pub(crate) fn take(&self, name: &str) -> Option<Arc<Server>> {
        let mut list = write(&self.list);
        let at = list.iter().position(|s| s.name.as_ref() == name)?;
        let mut next = list.as_ref().clone();
        let gone = next.remove(at);
        *list = Arc::new(next);
        Some(gone)
    }

    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        read(&self.catalog).clone()
    }

    /// Applies `change` to upstream state and publishes the catalog that
    /// follows from it, as one step; says which lists changed.
    pub(crate) fn update<'t>(
        &self,
        separator: &str,
        tiers: impl IntoIterator<Item = &'t Tier>,
        change: impl FnOnce(),
    ) -> Changed {
        let mut last = lock(&self.generation);
        change();
        *last += 1;
        let generation = *last;
        let list = self.all();
        let snapshot: Vec<Snapshot> = list
            .iter()
            .map(|s| {
                let st = lock(&s.state);
                (
                    st.status == Status::Ready,
                    s.name.clone(),
                    s.cfg.prefix,
                    s.cfg.resource_uris,
                    st.lists.clone(),
                )
            })
            .collect();
        let ready: Vec<Contribution<'_>> =
            snapshot.iter().filter(|s| s.0).map(contribution).collect();
        let mut new = Catalog::build(generation, separator, &ready);
        for down in snapshot.iter().filter(|s| !s.0) {
            new.add_offline(separator, &contribution(down));
        }
        new.index_tiers(tiers);
        let new = Arc::new(new);
        let old = std::mem::replace(&mut *write(&self.catalog), new.clone());
        // While upstreams start, every one that comes up rebuilds the catalog:
        // the tiers' counts and the name collisions are logged once that
        // first discovery has ended, then only when they change.
        let starting = list
            .iter()
            .any(|s| lock(&s.state).status == Status::Starting);
        if !starting {
            use std::sync::atomic::Ordering;
            let first = !self.tiers_logged.swap(true, Ordering::AcqRel);
            let previous = if first { None } else { Some(&*old) };
            new.log_collisions(previous);
            new.log_tiers(previous);
        }
        let changed = |a: &[Box<RawValue>], b: &[Box<RawValue>]| {
            a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.get() != y.get())
        };
        Changed {
            tools: changed(&old.tools, &new.tools),
            prompts: changed(&old.prompts, &new.prompts),
            resources: changed(&old.resources, &new.resources)
                || changed(&old.templates, &new.templates),
        }
    }

    /// Runs `f` while no catalog rebuild is under way, so the upstream states
    /// it reads agree with the published catalog.
    pub(crate) fn consistent<T>(&self, f: impl FnOnce() -> T) -> T {
        let _quiet = lock(&self.generation);
        f()
    }

    /// Whether some server has not finished its first connection attempt.
    pub(crate) fn any_starting(&self) -> bool {
        self.all()
            .iter()
            .any(|s| lock(&s.state).status == Status::Starting)
    }
}

fn contribution(s: &Snapshot) -> Contribution<'_> {
    Contribution {
        server: &s.1,
        prefix: s.2,
        resource_uris: s.3,
        lists: &s.4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(b: &Breaker) {
        b.admit().expect("admitted").record(Health::Down);
    }

    #[test]
    fn breaker_opens_after_threshold_and_one_probe_closes_it() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            fail(&b);
        }
        assert!(b.admit().is_ok(), "two failures keep it closed");
        fail(&b);
        assert!(b.admit().is_err(), "the third failure opens it");
        std::thread::sleep(Duration::from_millis(60));
        let probe = b
            .admit()
            .expect("after the cooldown one probe goes through");
        assert!(b.admit().is_err(), "but only one");
        probe.record(Health::Up);
        assert!(
            b.admit().is_ok() && !b.is_open(),
            "a successful probe closes it"
        );
        let off = Breaker::new(0, Duration::ZERO);
        for _ in 0..100 {
            fail(&off);
        }
        assert!(off.admit().is_ok(), "threshold 0 disables the breaker");
    }

    /// Issue 14: five of one tenant's calls to a slow tool timed out and the
    /// next tenant's call to a healthy tool was refused "circuit open".
    #[test]
    fn timeouts_and_cancels_do_not_open_the_breaker() {
        let b = Breaker::new(2, Duration::from_secs(60));
        let server = || "s".to_owned();
        for _ in 0..10 {
            let timeout = Err(UpstreamError::Timeout {
                server: server(),
                ms: 10,
            });
            b.admit().expect("closed").record(Health::of(&timeout));
            let cancel = Err(UpstreamError::Cancelled { server: server() });
            b.admit().expect("closed").record(Health::of(&cancel));
            drop(b.admit().expect("closed")); // refused before it was sent
        }
        assert!(!b.is_open(), "only the upstream's health counts");
        let crash = Err(UpstreamError::Closed {
            server: server(),
            reason: "exited".into(),
        });
        for _ in 0..2 {
            b.admit().expect("closed").record(Health::of(&crash));
        }
        assert!(b.is_open(), "crashes count");
    }

    #[test]
    fn a_probe_that_ends_unrecorded_frees_the_probe_slot() {
        let b = Breaker::new(1, Duration::from_millis(20));
        fail(&b);
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.admit().expect("the probe");
        let closed = Err(UpstreamError::Cancelled { server: "s".into() });
        probe.record(Health::of(&closed));
        let probe = b
            .admit()
            .expect("a cancelled probe lets the next one probe");
        drop(probe);
        assert!(
            b.admit().is_ok(),
            "so does a probe refused before it was sent"
        );
    }

    #[test]
    fn a_new_handshake_closes_the_breaker() {
        let b = Breaker::new(1, Duration::from_secs(60));
        fail(&b);
        assert!(b.admit().is_err());
        b.reset();
        assert!(b.admit().is_ok() && !b.is_open());
    }

    /// The race behind "health says ok but the tool is unknown": a reader
    /// that looks while a server turns ready must see either the old state
    /// with the old catalog or the new state with the new catalog. The change
    /// is held open while the reader runs, so without the generation lock the
    /// reader would see `Ready` next to a catalog without the tool, every time.
    #[test]
    fn a_reader_never_sees_a_ready_server_missing_from_the_catalog() {
        let text = "[servers.a]\ncommand = \"true\"\n";
        let cfg = Config::parse(std::path::Path::new("t.toml"), text).expect("config");
        let servers = Arc::new(Servers::new(&cfg));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let reader = {
            let servers = servers.clone();
            std::thread::spawn(move || {
                started_rx.recv().expect("writer started");
                servers.consistent(|| {
                    let ready = lock(&servers.all()[0].state).status == Status::Ready;
                    (ready, servers.catalog().tool("a__echo").is_some())
                })
            })
        };
        let server = servers.all()[0].clone();
        servers.update("__", [], || {
            let mut st = lock(&server.state);
            st.status = Status::Ready;
            st.lists.tools = vec![
                serde_json::from_str(r#"{"name":"echo","inputSchema":{"type":"object"}}"#)
                    .expect("tool"),
            ];
            drop(st);
            started_tx.send(()).expect("reader waits");
            // Hold the change open: the reader runs now, mid-update.
            std::thread::sleep(Duration::from_millis(100));
        });
        let (ready, listed) = reader.join().expect("reader");
        assert!(ready, "the reader ran after the change");
        assert!(
            listed,
            "a ready server's tool must be in the catalog the reader sees"
        );
    }

    #[test]
    fn errors_map_to_truthful_states() {
        let s = || "x".to_owned();
        assert_eq!(
            Status::of_error(&UpstreamError::AuthFailed {
                server: s(),
                status: 401,
                challenge: None
            }),
            Status::AuthFailed
        );
        assert_eq!(
            Status::of_error(&UpstreamError::Http {
                server: s(),
                status: 500,
                detail: s()
            }),
            Status::ProtocolError
        );
        assert_eq!(
            Status::of_error(&UpstreamError::Unreachable {
                server: s(),
                detail: s()
            }),
            Status::Unreachable
        );
    }
}
