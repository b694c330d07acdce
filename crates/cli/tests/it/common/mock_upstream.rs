//! A MOCK MCP server on the Streamable HTTP transport, for the upstream tests
//! only. Real peers (the Rust fixture, the reference servers) are used wherever
//! they can show a behaviour; this mock exists for the behaviours no real peer
//! produces on demand: refusing credentials (401 with or without a challenge),
//! failing with 500 / 502, SSE framing edge cases, a stream cut mid-call that
//! must be resumed with `Last-Event-ID`, forgetting a session (404), answering a
//! tool call with an HTTP error, and never answering at all.
//!
//! It speaks just enough MCP: `initialize` (issues an `Mcp-Session-Id`),
//! notifications and responses (202), `tools/list` (one tool, `ping_tool`),
//! `tools/call`, and `DELETE`. It runs in-process on 127.0.0.1:0 on its own
//! thread and runtime (so that a test blocking its own runtime cannot starve
//! it), records every request it receives (method, headers, body, the status
//! it answered), and stops on drop.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};

/// What every request is answered with before any MCP is looked at.
#[derive(Clone, Debug)]
pub struct Reject {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: String,
}

/// How `tools/call` is answered (a call with `"hang": true` in its arguments
/// never is, whatever the mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallMode {
    /// Like every other request: JSON, or SSE when [`Behaviour::sse`] is set.
    #[default]
    Normal,
    /// SSE with every framing edge case: `:` comments, CRLF line ends, a
    /// `retry:` field, a priming event with empty data, an `event:` field, the
    /// one JSON message spread over many `data:` lines (with and without the
    /// space after the colon), all sent in small chunks that split CRLF pairs.
    TrickySse,
    /// SSE: a priming event and a log notification, each with an id, then the
    /// stream ends cleanly without the result; the result is only given to a
    /// GET carrying `Last-Event-ID` of the last event sent.
    CutThenResume,
    /// As `CutThenResume`, but the connection is aborted (no end of the chunked
    /// body) instead of the stream ending cleanly.
    AbortThenResume,
    /// An HTTP error status with a short text body.
    Status(u16),
    /// SSE: the result at once, then the stream stays open 30 ms before it
    /// ends (a server that closes its streams lazily).
    LingeringSse,
}

/// How the mock behaves; change it later with [`MockUpstream::set_call_mode`].
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Answer requests with an SSE stream rather than one JSON body.
    pub sse: bool,
    /// Answer every request (any method) with this instead.
    pub reject: Option<Reject>,
    pub call: CallMode,
    /// Answer this many `tools/list` requests with a JSON-RPC error first.
    pub failing_lists: usize,
}

/// One request the mock received, and the status it answered (0 while a
/// handler is still running, e.g. a hung call).
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Lower-case names, in the order received; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The JSON-RPC method of a POSTed message, if any.
    pub rpc: Option<String>,
    pub status: u16,
    /// When it arrived, since the mock started.
    pub at: Duration,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The `tools/call` result the mock gives for `ping_tool` with this `text`:
/// escapes, non-ASCII, a big integer and a decimal, to show it arrives intact.
pub fn expected_result(text: &str) -> Value {
    json!({
        "content": [{"type": "text", "text": format!("pong: {text}")}],
        "structuredContent": {
            "echo": text,
            "unicode": "é ✓ 日本 \u{1F600}",
            "escapes": "line1\nline2\t\"quoted\" \\ back",
            "numbers": [0, -1, 12345678901234567_u64, 2.5, 1e-7],
            "nested": {"a": [{"b": null}, true, false]}
        },
        "isError": false
    })
}

#[derive(Default)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
    active: Mutex<HashSet<String>>,
    forgotten: Mutex<HashSet<String>>,
    /// Results held back for a resuming GET, by the `Last-Event-ID` that earns them.
    resumable: Mutex<HashMap<String, (String, Value)>>,
    counter: Mutex<u64>,
    started: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    fn next(&self) -> u64 {
        let mut c = lock(&self.counter);
        *c += 1;
        *c
    }
}

pub struct MockUpstream {
    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockUpstream {
    pub fn start(behaviour: Behaviour) -> MockUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("mock: bind");
        listener.set_nonblocking(true).expect("mock: nonblocking");
        let addr = listener.local_addr().expect("mock: addr");
        let shared = Arc::new(Shared::default());
        *lock(&shared.behaviour) = behaviour;
        *lock(&shared.started) = Some(std::time::Instant::now());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("mock: runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("mock: listener");
                let app = Router::new()
                    .route("/mcp", any(handle))
                    .route("/moved", any(moved))
                    .with_state(state);
                tokio::select! {
                    r = axum::serve(listener, app) => { r.expect("mock: serve"); }
                    _ = stop_rx => {}
                }
            });
            // Hung handlers are simply dropped.
            rt.shutdown_background();
        });
        MockUpstream {
            url: format!("http://{addr}/mcp"),
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn set_call_mode(&self, mode: CallMode) {
        lock(&self.shared.behaviour).call = mode;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// How many POSTs carried this JSON-RPC method.
    pub fn rpc_count(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|s| s.rpc.as_deref() == Some(method))
            .count()
    }

    /// Forgets every session issued so far: requests carrying one get 404.
    pub fn expire_sessions(&self) {
        let ids: Vec<String> = lock(&self.shared.active).drain().collect();
        lock(&self.shared.forgotten).extend(ids);
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let msg: Option<Value> = serde_json::from_slice(&body).ok();
    let rpc = msg
        .as_ref()
        .and_then(|m| m.get("method"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let index = {
        let mut seen = lock(&s.seen);
        seen.push(Seen {
            method: method.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body_text,
            rpc: rpc.clone(),
            status: 0,
            at: lock(&s.started).map(|t| t.elapsed()).unwrap_or_default(),
        });
        seen.len() - 1
    };
    let resp = answer(&s, &method, &headers, msg.as_ref(), rpc.as_deref()).await;
    lock(&s.seen)[index].status = resp.status().as_u16();
    resp
}

async fn answer(
    s: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    msg: Option<&Value>,
    rpc: Option<&str>,
) -> Response {
    let behaviour = lock(&s.behaviour).clone();
    if let Some(r) = &behaviour.reject {
        let mut b = Response::builder().status(r.status);
        if let Some(c) = &r.www_authenticate {
            b = b.header("www-authenticate", c);
        }
        return b
            .header("content-type", "text/plain")
            .body(Body::from(r.body.clone()))
            .expect("response");
    }
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_initialize = *method == Method::POST && rpc == Some("initialize");
    if !is_initialize {
        match &session {
            Some(id) if lock(&s.active).contains(id) => {}
            Some(_) => return plain(StatusCode::NOT_FOUND, "mock: unknown or expired session"),
            None => return plain(StatusCode::BAD_REQUEST, "mock: missing Mcp-Session-Id"),
        }
    }
    match *method {
        Method::DELETE => {
            if let Some(id) = &session {
                lock(&s.active).remove(id);
            }
            plain(StatusCode::OK, "")
        }
        Method::GET => {
            let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) else {
                // No standalone stream: the client should stop asking.
                return plain(StatusCode::METHOD_NOT_ALLOWED, "mock: no GET stream");
            };
            let held = lock(&s.resumable).remove(last);
            match held {
                Some((next_id, reply)) => sse(vec![Step::Data(
                    format!("id: {next_id}\nevent: message\ndata: {reply}\n\n").into(),
                )]),
                None => plain(StatusCode::BAD_REQUEST, "mock: nothing to resume there"),
            }
        }
        Method::POST => post(s, &behaviour, msg, rpc).await,
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "mock: method not allowed"),
    }
}

async fn post(
    s: &Arc<Shared>,
    behaviour: &Behaviour,
    msg: Option<&Value>,
    rpc: Option<&str>,
) -> Response {
    let Some(msg) = msg else {
        return plain(StatusCode::BAD_REQUEST, "mock: body is not JSON");
    };
    let Some(id) = msg.get("id").cloned() else {
        return plain(StatusCode::ACCEPTED, ""); // a notification
    };
    let Some(rpc) = rpc else {
        return plain(StatusCode::ACCEPTED, ""); // a response to a request of ours
    };
    let ok = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
    match rpc {
        "initialize" => {
            let n = s.next();
            let sid = format!("mock-session-{n}");
            lock(&s.active).insert(sid.clone());
            let version = msg["params"]["protocolVersion"]
                .as_str()
                .unwrap_or("2025-11-25")
                .to_owned();
            let reply = ok(json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mock-upstream", "version": "0.0.1"}
            }));
            let mut r = reply_as(s, behaviour, &reply);
            r.headers_mut()
                .insert("mcp-session-id", sid.parse().expect("header"));
            r
        }
        "tools/list" if lock(&s.behaviour).failing_lists > 0 => {
            lock(&s.behaviour).failing_lists -= 1;
            let err = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": "mock: listing failed"}});
            reply_as(s, behaviour, &err)
        }
        "tools/list" => reply_as(
            s,
            behaviour,
            &ok(json!({"tools": [{
                "name": "ping_tool",
                "description": "Answers pong (MOCK)",
                "inputSchema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}, "hang": {"type": "boolean"}}
                }
            }]})),
        ),
        "tools/call" => {
            let args = &msg["params"]["arguments"];
            if args["hang"] == json!(true) {
                std::future::pending::<()>().await;
            }
            let text = args["text"].as_str().unwrap_or("").to_owned();
            let reply = ok(expected_result(&text));
            match behaviour.call {
                CallMode::Normal => reply_as(s, behaviour, &reply),
                CallMode::TrickySse => sse(tricky_steps(&reply)),
                CallMode::LingeringSse => sse(vec![
                    Step::Data(
                        format!("id: ev-{}\nevent: message\ndata: {reply}\n\n", s.next()).into(),
                    ),
                    Step::Pause(Duration::from_millis(30)),
                ]),
                CallMode::CutThenResume | CallMode::AbortThenResume => {
                    let k = format!("cut{}", s.next());
                    lock(&s.resumable).insert(format!("{k}-1"), (format!("{k}-2"), reply));
                    let log = json!({"jsonrpc": "2.0", "method": "notifications/message",
                        "params": {"level": "info", "logger": "mock", "data": "working"}});
                    let mut steps = vec![
                        Step::Data(format!("retry: 100\nid: {k}-0\ndata:\n\n").into()),
                        Step::Data(format!("id: {k}-1\nevent: message\ndata: {log}\n\n").into()),
                        Step::Pause(Duration::from_millis(50)),
                    ];
                    if behaviour.call == CallMode::AbortThenResume {
                        steps.push(Step::Abort);
                    }
                    sse(steps)
                }
                CallMode::Status(code) => plain(
                    StatusCode::from_u16(code).expect("status"),
                    "mock: tools/call failed on purpose",
                ),
            }
        }
        other => reply_as(
            s,
            behaviour,
            &json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("mock: no method {other}")}}),
        ),
    }
}

/// One JSON-RPC message as JSON or as a one-event SSE stream.
fn reply_as(s: &Arc<Shared>, behaviour: &Behaviour, msg: &Value) -> Response {
    if behaviour.sse {
        let n = s.next();
        sse(vec![Step::Data(
            format!("id: ev-{n}\nevent: message\ndata: {msg}\n\n").into(),
        )])
    } else {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(msg.to_string()))
            .expect("response")
    }
}

/// `/moved`: every request is sent on to `/mcp` with a 307 (which keeps
/// the method and the body).
async fn moved() -> Response {
    Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header("location", "/mcp")
        .body(Body::empty())
        .expect("response")
}

fn plain(status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(text.to_owned()))
        .expect("response")
}

/// A piece of a streamed body.
enum Step {
    Data(Bytes),
    Pause(Duration),
    /// Fail the body: the connection is cut without the chunked terminator.
    Abort,
}

fn sse(steps: Vec<Step>) -> Response {
    let stream = futures::stream::unfold(VecDeque::from(steps), |mut q| async move {
        loop {
            match q.pop_front()? {
                Step::Data(b) => return Some((Ok::<Bytes, std::io::Error>(b), q)),
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Abort => {
                    return Some((Err(std::io::Error::other("mock: stream cut")), q));
                }
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .expect("response")
}

/// The tricky framing of [`CallMode::TrickySse`], cut into 7-byte chunks.
fn tricky_steps(reply: &Value) -> Vec<Step> {
    let pretty = serde_json::to_string_pretty(reply).expect("json");
    let mut text = String::new();
    text.push_str(": mock comment before anything\r\n");
    text.push_str("retry: 1500\r\n");
    text.push_str("id: prime-0\r\n");
    text.push_str("data:\r\n");
    text.push_str("\r\n");
    text.push_str(":keep-alive\r\n\r\n");
    text.push_str("event: message\r\n");
    text.push_str("id: tricky-1\r\n");
    for (i, line) in pretty.lines().enumerate() {
        // Alternate `data:value` and `data: value`; one leading space is the
        // separator, any further whitespace belongs to the JSON.
        if i % 2 == 0 {
            text.push_str(&format!("data:{line}\r\n"));
        } else {
            text.push_str(&format!("data: {line}\r\n"));
        }
        if i == 1 {
            text.push_str(": a comment inside the event\r\n");
        }
    }
    text.push_str("\r\n");
    text.push_str(": trailing comment\r\n");
    let bytes = text.into_bytes();
    let mut steps = Vec::new();
    for chunk in bytes.chunks(7) {
        steps.push(Step::Data(Bytes::copy_from_slice(chunk)));
        steps.push(Step::Pause(Duration::from_millis(1)));
    }
    steps
}
