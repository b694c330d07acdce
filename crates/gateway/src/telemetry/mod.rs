//! OpenTelemetry traces, sent over OTLP/HTTP with protobuf (`[telemetry]
//! otlp = "http://…"`). Without `[telemetry]`, `App::telemetry` is `None`
//! and every function here (given `App::telemetry`) returns at its first line: no span is built,
//! nothing is allocated, the request path pays one branch.
//!
//! With it, each POST to `/mcp` gets a request span (kind SERVER), whose
//! children are `auth`, `policy`, `ledger reserve` and `upstream call`
//! (kind CLIENT). The request span's parent is the client's W3C
//! `traceparent` when it sent one; an HTTP upstream gets a `traceparent`
//! naming the upstream call span. A run is a span of its own, whose trace
//! and span ids follow from the run id ([`run_ids`]), so any replica can
//! name it without asking another: a tool call made with a run's key joins
//! the run's trace as a child of the run span (or, when the agent sent a
//! `traceparent` of its own, keeps that parent and links to the run span).
//! The run span itself is sent when the run ends.
//!
//! The request span travels with the request as a task-local
//! ([`scope`]/[`current`]), so the layers it crosses need no new
//! parameters. Finished spans go to a bounded queue that one background
//! task ([`export`]) batches and POSTs; when the queue is full or the
//! collector does not answer, spans are dropped and counted
//! (`mcpgate_trace_spans_dropped_total`), never waited for.

pub(crate) mod export;
mod otlp;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::TelemetryConfig;
use mcpgate_proto::locks::lock;

pub(crate) type TraceId = [u8; 16];
pub(crate) type SpanId = [u8; 8];

/// How many finished spans may wait for the exporter.
const QUEUE: usize = 8192;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attr {
    Str(String),
    Int(i64),
}

/// OTLP's `SpanKind`, as far as mcpgate uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal,
    Server,
    Client,
}

/// A finished span, waiting for export.
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: Option<SpanId>,
    /// The parent came from another process (a client's `traceparent`).
    pub(crate) remote_parent: bool,
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    pub(crate) attrs: Vec<(&'static str, Attr)>,
    pub(crate) links: Vec<(TraceId, SpanId)>,
    pub(crate) error: Option<String>,
}

/// The gateway's tracer: where finished spans go.
pub(crate) struct Tracer {
    cfg: TelemetryConfig,
    tx: mpsc::Sender<SpanRecord>,
    rx: Mutex<Option<mpsc::Receiver<SpanRecord>>>,
    /// Spans dropped (queue full, collector unreachable or refusing).
    pub(crate) dropped: AtomicU64,
    /// Spans the collector accepted.
    pub(crate) exported: AtomicU64,
}

impl Tracer {
    pub(crate) fn new(cfg: TelemetryConfig) -> Tracer {
        let (tx, rx) = mpsc::channel(QUEUE);
        Tracer {
            cfg,
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
        }
    }

    fn submit(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Starts the span of one request, the child of `traceparent` when
    /// that is a valid W3C header value.
    pub(crate) fn request(self: &Arc<Self>, traceparent: Option<&[u8]>) -> Arc<RequestSpan> {
        let remote = traceparent.and_then(parse_traceparent);
        let ids = match remote {
            Some((trace_id, parent)) => Ids {
                trace_id,
                parent: Some(parent),
                remote: true,
            },
            None => Ids {
                trace_id: random_trace_id(),
                parent: None,
                remote: false,
            },
        };
        Arc::new(RequestSpan {
            tracer: self.clone(),
            span_id: random_span_id(),
            start_ns: now_ns(),
            state: Mutex::new(State {
                ids,
                attrs: Vec::new(),
                links: Vec::new(),
                error: None,
            }),
        })
    }
}

#[derive(Clone, Copy)]
struct Ids {
    trace_id: TraceId,
    parent: Option<SpanId>,
    remote: bool,
}

struct State {
    ids: Ids,
    attrs: Vec<(&'static str, Attr)>,
    links: Vec<(TraceId, SpanId)>,
    error: Option<String>,
}

/// The span of one request to `/mcp`. Shared by the HTTP handler and the
/// call's task; it ends (and is queued for export) when the last holder
/// drops it.
pub(crate) struct RequestSpan {
    tracer: Arc<Tracer>,
    span_id: SpanId,
    start_ns: u64,
    state: Mutex<State>,
}

impl RequestSpan {
    /// The trace id, as 32 lowercase hex digits (for log lines).
    pub(crate) fn trace_id_hex(&self) -> String {
        hex(&lock(&self.state).ids.trace_id)
    }

    /// Marks the request as failed.
    pub(crate) fn fail(&self, why: impl Into<String>) {
        lock(&self.state).error = Some(why.into());
    }

    /// The caller is a run's key: its calls join the run's trace under the
    /// run span, unless the client named a parent of its own, in which
    /// case the request links to the run span instead.
    pub(crate) fn join_run(&self, run_id: &str) {
        let (trace_id, span_id) = run_ids(run_id);
        let mut st = lock(&self.state);
        if st.ids.remote {
            st.links.push((trace_id, span_id));
        } else {
            st.ids = Ids {
                trace_id,
                parent: Some(span_id),
                remote: false,
            };
        }
        st.attrs.push(("mcpgate.run", Attr::Str(run_id.to_owned())));
    }

    fn ids(&self) -> Ids {
        lock(&self.state).ids
    }
}

impl Drop for RequestSpan {
    fn drop(&mut self) {
        let st = match self.state.get_mut() {
            Ok(st) => st,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.tracer.submit(SpanRecord {
            trace_id: st.ids.trace_id,
            span_id: self.span_id,
            parent: st.ids.parent,
            remote_parent: st.ids.remote,
            name: "mcp request",
            kind: Kind::Server,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attrs: std::mem::take(&mut st.attrs),
            links: std::mem::take(&mut st.links),
            error: st.error.take(),
        });
    }
}

/// A child of the current request span, open until [`ChildSpan::end`].
pub(crate) struct ChildSpan {
    request: Arc<RequestSpan>,
    span_id: SpanId,
    name: &'static str,
    kind: Kind,
    start_ns: u64,
}

impl ChildSpan {
    /// Starts `name` under the current request span; `None` when tracing is
    /// off (`tracer` is `App::telemetry`) or no request span is current.
    pub(crate) fn start(
        tracer: Option<&Arc<Tracer>>,
        name: &'static str,
        kind: Kind,
    ) -> Option<ChildSpan> {
        tracer?;
        let request = CURRENT.try_with(Arc::clone).ok()?;
        Some(ChildSpan {
            request,
            span_id: random_span_id(),
            name,
            kind,
            start_ns: now_ns(),
        })
    }

    /// The W3C `traceparent` that makes a callee's spans children of this one.
    pub(crate) fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-01",
            hex(&self.request.ids().trace_id),
            hex(&self.span_id)
        )
    }

    /// Ends the `auth` span: when the caller is a run's key, the request
    /// joins the run's trace first (see [`RequestSpan::join_run`]), so
    /// this span and every later one land in it.
    pub(crate) fn end_auth(self, run: Option<&str>, failed: bool) {
        if let Some(run) = run {
            self.request.join_run(run);
        }
        self.end(Vec::new(), failed.then(|| "not authenticated".to_owned()));
    }

    /// Ends the span, with `error` as its failure if any.
    pub(crate) fn end(self, attrs: Vec<(&'static str, Attr)>, error: Option<String>) {
        let ids = self.request.ids();
        self.request.tracer.submit(SpanRecord {
            trace_id: ids.trace_id,
            span_id: self.span_id,
            parent: Some(self.request.span_id),
            remote_parent: false,
            name: self.name,
            kind: self.kind,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attrs,
            links: Vec::new(),
            error,
        });
    }
}

tokio::task_local! {
    static CURRENT: Arc<RequestSpan>;
}

/// Starts the span of a request to `/mcp` (`None` when tracing is off).
pub(crate) fn request_span(
    tracer: Option<&Arc<Tracer>>,
    traceparent: Option<&[u8]>,
) -> Option<Arc<RequestSpan>> {
    Some(tracer?.request(traceparent))
}

/// Runs `f` with `span` as the current request span (as is, without one).
pub(crate) async fn scope<F: Future>(span: Option<Arc<RequestSpan>>, f: F) -> F::Output {
    match span {
        Some(s) => CURRENT.scope(s, f).await,
        None => f.await,
    }
}

/// The current request span (`None` when tracing is off: no task-local is read).
pub(crate) fn current(tracer: Option<&Arc<Tracer>>) -> Option<Arc<RequestSpan>> {
    tracer?;
    CURRENT.try_with(Arc::clone).ok()
}

/// Names a call on its request span: method, tenant, session.
pub(crate) fn describe_call(span: &RequestSpan, method: &str, tenant: &str, session: Option<&str>) {
    let mut st = lock(&span.state);
    st.attrs
        .push(("mcp.method.name", Attr::Str(method.to_owned())));
    st.attrs
        .push(("mcpgate.tenant", Attr::Str(tenant.to_owned())));
    if let Some(s) = session {
        st.attrs.push(("mcp.session.id", Attr::Str(s.to_owned())));
    }
}

/// Runs `f` as the child span `name` of the current request span; `failed`
/// says whether its output is a failure (the span's status).
pub(crate) async fn child<F: Future>(
    tracer: Option<&Arc<Tracer>>,
    name: &'static str,
    f: F,
    failed: impl FnOnce(&F::Output) -> bool,
) -> F::Output {
    let Some(span) = ChildSpan::start(tracer, name, Kind::Internal) else {
        return f.await;
    };
    let out = f.await;
    let error = failed(&out).then(|| format!("{name} refused"));
    span.end(Vec::new(), error);
    out
}

/// Sends the span of a run that ended: its ids follow from its id, so its
/// tool calls (children of it, whichever replica served them) and it meet
/// in one trace.
pub(crate) fn run_span(tracer: Option<&Arc<Tracer>>, run: &mcpgate_runs::Run) {
    let Some(tracer) = tracer else {
        return;
    };
    let (trace_id, span_id) = run_ids(run.id.as_str());
    let ms_ns = |ms: u64| ms.saturating_mul(1_000_000);
    let start = ms_ns(run.started_at.unwrap_or(run.created_at));
    let end = run.finished_at.map(ms_ns).unwrap_or_else(now_ns);
    tracer.submit(SpanRecord {
        trace_id,
        span_id,
        parent: None,
        remote_parent: false,
        name: "run",
        kind: Kind::Internal,
        start_ns: start,
        end_ns: end,
        attrs: vec![
            ("mcpgate.run", Attr::Str(run.id.to_string())),
            ("mcpgate.workflow", Attr::Str(run.workflow.clone())),
            ("mcpgate.tenant", Attr::Str(run.tenant.clone())),
            (
                "mcpgate.run.tool_calls",
                Attr::Int(i64::try_from(run.tool_calls).unwrap_or(i64::MAX)),
            ),
        ],
        links: Vec::new(),
        error: run.reason.clone(),
    });
}

/// The trace id and span id of a run: the first 24 bytes of SHA-256 of
/// its id, so every replica derives the same ones.
pub(crate) fn run_ids(run_id: &str) -> (TraceId, SpanId) {
    let d = Sha256::digest(format!("mcpgate run {run_id}").as_bytes());
    let mut t = [0u8; 16];
    let mut s = [0u8; 8];
    t.copy_from_slice(&d[..16]);
    s.copy_from_slice(&d[16..24]);
    (t, s)
}

/// Reads a W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2
/// hex flags>`); `None` when malformed or when either id is all zeros, as
/// the Trace Context recommendation requires. Later versions may append
/// fields after the flags; version `ff` is invalid.
pub(crate) fn parse_traceparent(v: &[u8]) -> Option<(TraceId, SpanId)> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let mut parts = v.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version.eq_ignore_ascii_case("ff") || flags.len() != 2 {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let _ = unhex::<1>(version)?;
    let _ = unhex::<1>(flags)?;
    let t = unhex::<16>(trace)?;
    let p = unhex::<8>(parent)?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    Some((t, p))
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Random ids: a per-process random key stirred with a counter through
/// SHA-256, so that a span costs no system call and ids never repeat.
fn random_bytes() -> [u8; 32] {
    use std::sync::OnceLock;
    static KEY: OnceLock<[u8; 16]> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 16];
        let _ = getrandom::fill(&mut k);
        k
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(key);
    h.update(n.to_le_bytes());
    h.finalize().into()
}

fn random_trace_id() -> TraceId {
    let b = random_bytes();
    let mut t = [0u8; 16];
    t.copy_from_slice(&b[..16]);
    t
}

fn random_span_id() -> SpanId {
    let b = random_bytes();
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[..8]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_w3c() {
        let ok = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (t, p) = parse_traceparent(ok).expect("valid");
        assert_eq!(hex(&t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p), "00f067aa0ba902b7");
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(
                parse_traceparent(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version may carry more fields.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
    }

    #[test]
    fn ids_are_distinct_and_runs_ids_stable() {
        let a = random_span_id();
        let b = random_span_id();
        assert_ne!(a, b);
        assert_ne!(random_trace_id(), random_trace_id());
        assert_eq!(run_ids("r1"), run_ids("r1"));
        assert_ne!(run_ids("r1"), run_ids("r2"));
    }

    #[tokio::test]
    async fn spans_nest_under_the_request_and_a_run_call_joins_the_run() {
        let tracer = Arc::new(Tracer::new(TelemetryConfig {
            traces_url: "http://127.0.0.1:1/v1/traces".into(),
            service_name: "t".into(),
        }));
        let mut rx = lock(&tracer.rx).take().expect("receiver");
        let req = tracer.request(None);
        let req_id = req.span_id;
        req.join_run("r1");
        let child = ChildSpan {
            request: req.clone(),
            span_id: random_span_id(),
            name: "auth",
            kind: Kind::Internal,
            start_ns: now_ns(),
        };
        let tp = child.traceparent();
        child.end(Vec::new(), None);
        drop(req);
        let auth = rx.recv().await.expect("auth span");
        let request = rx.recv().await.expect("request span");
        let (run_trace, run_span) = run_ids("r1");
        assert_eq!(auth.trace_id, run_trace);
        assert_eq!(auth.parent, Some(req_id));
        assert_eq!(request.trace_id, run_trace);
        assert_eq!(request.parent, Some(run_span));
        assert_eq!(
            tp,
            format!("00-{}-{}-01", hex(&run_trace), hex(&auth.span_id))
        );
        // With a client's parent, the run is a link instead.
        let req = tracer.request(Some(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        req.join_run("r1");
        drop(req);
        let request = rx.recv().await.expect("request span");
        assert_eq!(hex(&request.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(request.remote_parent);
        assert_eq!(request.links, vec![(run_trace, run_span)]);
    }
}
