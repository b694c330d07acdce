//! Client sessions (2025-era) and their SSE event streams. A session id is 128
//! bits from the OS CSPRNG. Each SSE stream a session has (one per POST that
//! answered with SSE, plus stream 0 for the standalone GET) keeps its events
//! with ids `<stream>-<seq>`, so a client that lost its connection can resume
//! with `Last-Event-ID` and get exactly what it missed. Disconnecting never
//! cancels the work; the events wait in the buffer. Idle sessions expire.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpgate_upstream::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use mcpgate_proto::locks::{lock, read, write};

/// Events kept for the standalone stream while no one reads it.
const STANDALONE_BACKLOG: usize = 512;
/// Finished POST streams kept for resumption, per session.
const FINISHED_STREAMS_KEPT: usize = 32;
/// `Session::log_level` before `logging/setLevel`.
const LEVEL_UNSET: u8 = u8::MAX;

/// What the client declared it can do, as far as relaying needs to know.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientCaps {
    pub sampling: bool,
    pub elicitation: bool,
    pub roots: bool,
    /// The raw `capabilities` object, mirrored to per-session upstreams.
    pub raw: Option<Box<serde_json::value::RawValue>>,
}

impl ClientCaps {
    pub(crate) fn from_initialize(params: Option<&serde_json::value::RawValue>) -> ClientCaps {
        let v: serde_json::Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        ClientCaps::from_capabilities(v.get("capabilities"))
    }

    /// From a `capabilities` object (an initialize's, or a 2026-07-28 request's `_meta`).
    pub(crate) fn from_capabilities(caps: Option<&serde_json::Value>) -> ClientCaps {
        let has = |k: &str| caps.and_then(|c| c.get(k)).is_some_and(|x| !x.is_null());
        ClientCaps {
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
            raw: caps.map(mcpgate_proto::jsonrpc::to_raw),
        }
    }

    /// The capability a server-to-client request of this method needs.
    pub(crate) fn needed_by(method: &str) -> Option<&'static str> {
        match method {
            "sampling/createMessage" => Some("sampling"),
            "elicitation/create" => Some("elicitation"),
            "roots/list" => Some("roots"),
            _ => None,
        }
    }

    /// Whether the client can answer a server-to-client request of this method.
    pub(crate) fn allows(&self, method: &str) -> bool {
        match method {
            "sampling/createMessage" => self.sampling,
            "elicitation/create" => self.elicitation,
            "roots/list" => self.roots,
            _ => false,
        }
    }
}

pub(crate) struct Session {
    pub id: String,
    /// The tenant that opened the session; no other tenant may use it.
    pub tenant: Arc<str>,
    /// The name of the tenant's tier when the session opened: which
    /// upstreams its log level reaches and whose logs it reads.
    pub tier: Arc<str>,
    pub caps: ClientCaps,
    /// The rank of the level asked for with `logging/setLevel`, or
    /// [`LEVEL_UNSET`]. Changed only through `LogLevels`, which counts it.
    log_level: AtomicU8,
    last_seen_ms: AtomicU64,
    epoch: Instant,
    streams: Mutex<StreamTable>,
    next_stream: AtomicU64,
    /// Client request id (raw JSON) → token that cancels its upstream call.
    inflight: Mutex<HashMap<String, CancellationToken>>,
    /// Per-session upstream connections, by server name.
    pub private: tokio::sync::Mutex<HashMap<String, Connection>>,
    pub ended: CancellationToken,
}

#[derive(Default)]
struct StreamTable {
    live: HashMap<u64, Arc<EventStream>>,
    finished: VecDeque<u64>,
}

impl Session {
    pub(crate) fn new(
        tenant: Arc<str>,
        tier: Arc<str>,
        caps: ClientCaps,
    ) -> Result<Session, getrandom::Error> {
        let s = Session {
            id: new_session_id()?,
            tenant,
            tier,
            caps,
            log_level: AtomicU8::new(LEVEL_UNSET),
            last_seen_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            streams: Mutex::new(StreamTable::default()),
            next_stream: AtomicU64::new(1),
            inflight: Mutex::new(HashMap::new()),
            private: tokio::sync::Mutex::new(HashMap::new()),
            ended: CancellationToken::new(),
        };
        lock(&s.streams)
            .live
            .insert(0, Arc::new(EventStream::new(0, STANDALONE_BACKLOG)));
        Ok(s)
    }

    /// The rank of the log level this session asked for, if it did.
    pub(crate) fn log_level(&self) -> Option<u8> {
        Some(self.log_level.load(Ordering::Relaxed)).filter(|l| *l != LEVEL_UNSET)
    }

    /// Sets (or clears) the level; returns the one it replaces.
    pub(super) fn swap_log_level(&self, rank: Option<u8>) -> Option<u8> {
        let old = self
            .log_level
            .swap(rank.unwrap_or(LEVEL_UNSET), Ordering::Relaxed);
        Some(old).filter(|l| *l != LEVEL_UNSET)
    }

    /// Whether a `notifications/message` of this rank (see
    /// `log_levels::message_rank`) reaches the session. One that never set a
    /// level gets every message relayed to it, as the spec's default leaves
    /// it to the server; one that did gets those at or above its level, and
    /// none whose level is not one MCP defines.
    pub(crate) fn wants_log(&self, rank: Option<u8>) -> bool {
        match self.log_level() {
            None => true,
            Some(min) => rank.is_some_and(|r| r >= min),
        }
    }

    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_seen_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.last_seen_ms.load(Ordering::Relaxed),
        ))
    }

    /// The standalone stream (GET without `Last-Event-ID`).
    pub(crate) fn standalone(&self) -> Arc<EventStream> {
        let t = lock(&self.streams);
        t.live
            .get(&0)
            .cloned()
            .unwrap_or_else(|| Arc::new(EventStream::new(0, STANDALONE_BACKLOG)))
    }

    /// A new stream for one POST's SSE response.
    pub(crate) fn open_stream(&self) -> Arc<EventStream> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(EventStream::new(id, usize::MAX));
        lock(&self.streams).live.insert(id, s.clone());
        s
    }

    /// Records that a POST stream got its final event; old finished streams are forgotten.
    pub(crate) fn stream_finished(&self, id: u64) {
        let mut t = lock(&self.streams);
        t.finished.push_back(id);
        while t.finished.len() > FINISHED_STREAMS_KEPT {
            if let Some(old) = t.finished.pop_front() {
                t.live.remove(&old);
            }
        }
    }

    /// Finds the stream and position a `Last-Event-ID` points at.
    pub(crate) fn resume(&self, last_event_id: &str) -> Option<(Arc<EventStream>, u64)> {
        let (stream, seq) = last_event_id.split_once('-')?;
        let stream: u64 = stream.parse().ok()?;
        let seq: u64 = seq.parse().ok()?;
        let s = lock(&self.streams).live.get(&stream).cloned()?;
        Some((s, seq.checked_add(1)?))
    }

    /// Tracks a client request in flight under its raw JSON id, so that the
    /// client's `notifications/cancelled` can cancel it; the entry goes away
    /// when the returned guard is dropped, however the call ends.
    pub(crate) fn track(self: &Arc<Self>, id: String, cancel: CancellationToken) -> Inflight {
        lock(&self.inflight).insert(id.clone(), cancel);
        Inflight {
            session: self.clone(),
            id,
        }
    }

    /// Cancels the call in flight under this raw JSON id, if any.
    pub(crate) fn cancel_inflight(&self, id: &str) {
        if let Some(t) = lock(&self.inflight).remove(id) {
            t.cancel();
        }
    }

    pub(crate) fn is_busy(&self) -> bool {
        !lock(&self.inflight).is_empty()
    }

    /// Queues a message for the client's standalone stream.
    pub(crate) fn push_standalone(&self, msg: Bytes) {
        self.standalone().push(msg);
    }

    pub(crate) fn end(&self) {
        self.ended.cancel();
        for (_, t) in lock(&self.inflight).drain() {
            t.cancel();
        }
        for s in lock(&self.streams).live.values() {
            s.finish();
        }
    }
}

/// An ordered, resumable sequence of SSE events. Sequence 0 is the priming event.
pub(crate) struct EventStream {
    pub id: u64,
    inner: Mutex<StreamInner>,
    notify: Notify,
    cap: usize,
}

struct StreamInner {
    events: VecDeque<(u64, Bytes)>,
    next_seq: u64,
    done: bool,
    /// Highest sequence handed to a reader; where a fresh reader of stream 0 starts.
    delivered: u64,
    /// Bumped when a new reader attaches, so the older one stops.
    reader_gen: u64,
}

pub(crate) enum Next {
    Event(u64, Bytes),
    Done,
    Superseded,
}

impl EventStream {
    /// A stream that belongs to no session (stateless mode): readable once, not resumable.
    pub(crate) fn detached() -> EventStream {
        EventStream::new(0, usize::MAX)
    }

    fn new(id: u64, cap: usize) -> EventStream {
        EventStream {
            id,
            inner: Mutex::new(StreamInner {
                events: VecDeque::new(),
                next_seq: 1,
                done: false,
                delivered: 0,
                reader_gen: 0,
            }),
            notify: Notify::new(),
            cap,
        }
    }

    pub(crate) fn push(&self, msg: Bytes) {
        {
            let mut g = lock(&self.inner);
            let seq = g.next_seq;
            g.next_seq += 1;
            g.events.push_back((seq, msg));
            while g.events.len() > self.cap {
                g.events.pop_front();
            }
        }
        self.notify.notify_waiters();
    }

    pub(crate) fn finish(&self) {
        lock(&self.inner).done = true;
        self.notify.notify_waiters();
    }

    /// Registers a new reader; returns its generation and where a fresh reader starts.
    pub(crate) fn attach(&self) -> (u64, u64) {
        let mut g = lock(&self.inner);
        g.reader_gen += 1;
        let start = g.delivered + 1;
        drop(g);
        self.notify.notify_waiters();
        let g = lock(&self.inner);
        (g.reader_gen, start)
    }

    /// Waits for the event at or after `from`, for at most `wait`.
    pub(crate) async fn next(&self, from: u64, reader_gen: u64, wait: Duration) -> Option<Next> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = lock(&self.inner);
                if g.reader_gen != reader_gen {
                    return Some(Next::Superseded);
                }
                if let Some((seq, b)) = g.events.iter().find(|(s, _)| *s >= from).cloned() {
                    g.delivered = g.delivered.max(seq);
                    return Some(Next::Event(seq, b));
                }
                if g.done {
                    return Some(Next::Done);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// A client request in flight; dropping it forgets the request.
pub(crate) struct Inflight {
    session: Arc<Session>,
    id: String,
}

impl Drop for Inflight {
    fn drop(&mut self) {
        lock(&self.session.inflight).remove(&self.id);
    }
}

/// The table of live client sessions, capped at `max_sessions` in all and
/// per tenant at its tier's `max_sessions`.
#[derive(Default)]
pub(crate) struct Sessions {
    map: RwLock<Table>,
    /// Client sessions initialized since start (a metric: session reuse shows here).
    opened: AtomicU64,
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Arc<Session>>,
    /// Tenant → the ids of its sessions: a tenant's cap is checked, and its
    /// idle sessions found, without walking everyone else's.
    by_tenant: HashMap<Arc<str>, HashSet<String>>,
}

/// Why a session could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The gateway holds `max_sessions` sessions.
    Gateway,
    /// The tenant holds as many as its tier allows.
    Tenant,
}

impl Sessions {
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        read(&self.map).by_id.get(id).cloned()
    }

    /// Adds a session unless the gateway holds `max` sessions or its tenant
    /// holds `tenant_max`.
    pub(crate) fn add(&self, s: Arc<Session>, max: usize, tenant_max: usize) -> Result<(), Full> {
        let mut t = write(&self.map);
        if t.by_tenant.get(&s.tenant).map_or(0, HashSet::len) >= tenant_max {
            return Err(Full::Tenant);
        }
        if t.by_id.len() >= max {
            return Err(Full::Gateway);
        }
        t.by_tenant
            .entry(s.tenant.clone())
            .or_default()
            .insert(s.id.clone());
        t.by_id.insert(s.id.clone(), s);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let mut t = write(&self.map);
        let s = t.by_id.remove(id)?;
        if let Some(ids) = t.by_tenant.get_mut(&s.tenant) {
            ids.remove(id);
            if ids.is_empty() {
                t.by_tenant.remove(&s.tenant);
            }
        }
        Some(s)
    }

    pub(crate) fn len(&self) -> usize {
        read(&self.map).by_id.len()
    }

    /// Sessions `tenant` holds open.
    #[cfg(test)]
    fn count_of(&self, tenant: &str) -> usize {
        read(&self.map)
            .by_tenant
            .get(tenant)
            .map_or(0, HashSet::len)
    }

    /// The tenant's session that has been idle longest with nothing in
    /// flight: the one to end when the tenant is at its cap.
    pub(crate) fn longest_idle_of(&self, tenant: &str) -> Option<String> {
        let t = read(&self.map);
        t.by_tenant
            .get(tenant)?
            .iter()
            .filter_map(|id| t.by_id.get(id))
            .filter(|s| !s.is_busy())
            .max_by_key(|s| s.idle_for())
            .map(|s| s.id.clone())
    }

    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        read(&self.map).by_id.keys().cloned().collect()
    }

    /// Every live session (a snapshot: the table is not held while the caller works).
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        read(&self.map).by_id.values().cloned().collect()
    }

    /// Sessions idle for longer than `idle` with nothing in flight.
    pub(crate) fn idle(&self, idle: Duration) -> Vec<String> {
        read(&self.map)
            .by_id
            .values()
            .filter(|s| s.idle_for() > idle && !s.is_busy())
            .map(|s| s.id.clone())
            .collect()
    }

    /// Removes and returns every session (shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<Session>> {
        let mut t = write(&self.map);
        t.by_tenant.clear();
        t.by_id.drain().map(|(_, s)| s).collect()
    }
}

/// 128 random bits from the OS CSPRNG, hex-encoded (visible ASCII only).
/// Errs only if the OS generator is unavailable; never falls back to a weak id.
pub(crate) fn new_session_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    Ok(b.iter().fold(String::with_capacity(32), |mut s, x| {
        use std::fmt::Write as _;
        let _ = write!(s, "{x:02x}");
        s
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resume_after_last_event_id_gets_only_what_was_missed() {
        let s = Session::new(Arc::from("t"), Arc::from("tier"), ClientCaps::default()).unwrap();
        let st = s.open_stream();
        st.push(Bytes::from_static(b"a"));
        st.push(Bytes::from_static(b"b"));
        st.push(Bytes::from_static(b"c"));
        st.finish();
        let (stream, from) = s.resume(&format!("{}-1", st.id)).unwrap();
        let (g, _) = stream.attach();
        let mut got = Vec::new();
        let mut at = from;
        while let Some(Next::Event(seq, b)) = stream.next(at, g, Duration::from_millis(10)).await {
            got.push(b);
            at = seq + 1;
        }
        assert_eq!(got, [Bytes::from_static(b"b"), Bytes::from_static(b"c")]);
        assert!(s.resume("99-1").is_none());
        assert!(s.resume("garbage").is_none());
    }

    #[tokio::test]
    async fn a_new_reader_supersedes_the_old_one() {
        let st = EventStream::new(0, 8);
        let (g1, _) = st.attach();
        let (_g2, _) = st.attach();
        assert!(matches!(
            st.next(1, g1, Duration::from_millis(10)).await,
            Some(Next::Superseded)
        ));
    }

    fn new_session(tenant: &str) -> Arc<Session> {
        let s = Arc::new(
            Session::new(Arc::from(tenant), Arc::from("tier"), ClientCaps::default()).unwrap(),
        );
        s.touch();
        s
    }

    #[test]
    fn each_tenant_has_its_own_cap_under_the_gateways() {
        let t = Sessions::default();
        let a1 = new_session("a");
        t.add(a1.clone(), 10, 2).expect("a's first");
        t.add(new_session("a"), 10, 2).expect("a's second");
        assert_eq!(t.add(new_session("a"), 10, 2), Err(Full::Tenant));
        t.add(new_session("b"), 10, 2)
            .expect("b is not held back by a");
        assert_eq!(t.add(new_session("c"), 3, 2), Err(Full::Gateway));
        assert_eq!((t.count_of("a"), t.count_of("b"), t.len()), (2, 1, 3));
        t.remove(&a1.id).expect("removed");
        assert_eq!(t.count_of("a"), 1);
        t.add(new_session("a"), 10, 2).expect("room again");
    }

    #[test]
    fn the_longest_idle_session_of_the_tenant_without_calls_is_picked() {
        let t = Sessions::default();
        let busy = new_session("a");
        let old = new_session("a");
        let fresh = new_session("a");
        let other = new_session("b");
        // `old` and `busy` were last seen at their start; `fresh` just now.
        std::thread::sleep(Duration::from_millis(20));
        fresh.touch();
        for s in [&old, &busy, &fresh, &other] {
            t.add(s.clone(), 10, 10).expect("added");
        }
        // `busy` has been idle about as long as `old`, but a call is in flight.
        let _call = busy.track("1".into(), CancellationToken::new());
        assert_eq!(t.longest_idle_of("a").as_deref(), Some(old.id.as_str()));
        assert_eq!(t.longest_idle_of("b").as_deref(), Some(other.id.as_str()));
        assert_eq!(t.longest_idle_of("nobody"), None);
    }

    #[test]
    fn a_session_reads_logs_at_or_above_its_own_level() {
        let s = new_session("a");
        assert!(
            s.wants_log(Some(0)) && s.wants_log(None),
            "unset: everything"
        );
        s.swap_log_level(Some(3));
        assert!(!s.wants_log(Some(1)), "info is below warning");
        assert!(s.wants_log(Some(3)) && s.wants_log(Some(7)));
        assert!(!s.wants_log(None), "an unknown level is not at or above it");
        assert_eq!(s.swap_log_level(None), Some(3));
        assert_eq!(s.log_level(), None);
    }

    #[test]
    fn session_ids_are_visible_ascii_and_distinct() {
        let a = new_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_ne!(a, new_session_id().unwrap());
    }
}
