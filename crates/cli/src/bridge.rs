//! `mcpgate stdio --url URL`: a stdio MCP server that is a gateway, for
//! clients that only start commands (Claude Desktop). Each line on stdin is
//! one JSON-RPC message, POSTed unchanged with the key from `MCPGATE_KEY` (or
//! `--key-file`) and the session the `initialize` answer opened; every
//! message that comes back — a JSON answer, or each event of an SSE answer
//! (resumed with `Last-Event-ID` when the gateway closes it early) — is one
//! line on stdout. After `initialize` a GET stream carries what the gateway
//! sends outside any call (`list_changed`, logs). A key the gateway refuses
//! is answered to the client as a JSON-RPC error naming what to set, and
//! said on stderr. End of stdin ends the session (DELETE) and the command.
//! A session-based client's `initialize` opens the session; a 2026-07-28
//! client's requests (the protocol version in `_meta`, no session) get the
//! HTTP headers that era requires and stdio does not have:
//! `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use mcpgate_proto::locks::lock;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;

/// What every POST needs: where, the key, and the session once opened.
struct Link {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    out: mpsc::UnboundedSender<String>,
}

impl Link {
    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        self.request_in(method, true)
    }

    /// A request; `in_session`: with the session's id and protocol version
    /// (a 2026-07-28 request carries its own version and has no session).
    fn request_in(&self, method: reqwest::Method, in_session: bool) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream");
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        if !in_session {
            return r;
        }
        if let Some(s) = lock(&self.session).clone() {
            r = r.header("mcp-session-id", s);
        }
        if let Some(v) = lock(&self.version).clone() {
            r = r.header("mcp-protocol-version", v);
        }
        r
    }

    fn emit(&self, msg: &Value) {
        let _ = self.out.send(msg.to_string());
    }

    /// A JSON-RPC error answering `id` (nothing for a notification).
    fn fail(&self, id: Option<&Value>, message: &str) {
        if let Some(id) = id {
            self.emit(
                &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": message}}),
            );
        }
    }

    /// POSTs one client message and relays what comes back.
    async fn post(&self, msg: Value) {
        let id = msg
            .get("id")
            .filter(|_| msg.get("method").is_some())
            .cloned();
        let is_init = msg.get("method").and_then(Value::as_str) == Some("initialize");
        let modern = modern_headers(&msg);
        let mut req = self.request_in(reqwest::Method::POST, modern.is_empty());
        for (name, value) in modern {
            req = req.header(name, value);
        }
        let resp = match req
            .header("content-type", "application/json")
            .body(msg.to_string())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let m = format!("cannot reach the gateway: {}", e.without_url());
                eprintln!("mcpgate stdio: {m}");
                return self.fail(id.as_ref(), &m);
            }
        };
        let status = resp.status().as_u16();
        if is_init && let Some(s) = resp.headers().get("mcp-session-id") {
            *lock(&self.session) = s.to_str().ok().map(str::to_owned);
        }
        match status {
            202 => {}
            401 | 403 => {
                let m = format!(
                    "the gateway refused the key (HTTP {status}): set MCPGATE_KEY to a key from `mcpgate keys create`"
                );
                eprintln!("mcpgate stdio: {m}");
                self.fail(id.as_ref(), &m);
            }
            _ => {
                let sse = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream"));
                if sse {
                    self.relay_sse(resp, id.as_ref(), is_init).await;
                } else {
                    let body = resp.bytes().await.unwrap_or_default();
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(v) if v.get("jsonrpc").is_some() => {
                            self.note_init(&v, is_init);
                            self.emit(&v);
                        }
                        _ => self.fail(
                            id.as_ref(),
                            &format!(
                                "the gateway answered HTTP {status}: {}",
                                String::from_utf8_lossy(&body)
                                    .chars()
                                    .take(200)
                                    .collect::<String>()
                            ),
                        ),
                    }
                }
            }
        }
    }

    fn note_init(&self, v: &Value, is_init: bool) {
        if is_init && let Some(pv) = v.pointer("/result/protocolVersion").and_then(Value::as_str) {
            *lock(&self.version) = Some(pv.to_owned());
        }
    }

    /// Relays every event of an SSE answer until the one answering `id`;
    /// a stream closed before it is resumed with GET + `Last-Event-ID`.
    async fn relay_sse(&self, mut resp: reqwest::Response, id: Option<&Value>, is_init: bool) {
        let mut decoder = mcpgate_proto::sse::Decoder::new();
        let mut answered = id.is_none();
        for _attempt in 0..100 {
            while let Ok(Some(chunk)) = resp.chunk().await {
                for ev in decoder.feed(&chunk) {
                    if ev.data.trim().is_empty() {
                        continue;
                    }
                    if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                        let is_answer = v.get("method").is_none() && v.get("id") == id;
                        self.note_init(&v, is_init && is_answer);
                        self.emit(&v);
                        answered |= is_answer;
                    }
                }
                if answered {
                    return;
                }
            }
            let Some(last) = decoder.last_event_id().map(str::to_owned) else {
                break;
            };
            resp = match self
                .request(reqwest::Method::GET)
                .header("last-event-id", last)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r,
                _ => break,
            };
        }
        if !answered {
            self.fail(id, "the gateway closed the stream before answering");
        }
    }

    /// The session's GET stream: what the gateway sends outside any call.
    async fn listen(self: Arc<Self>) {
        let Ok(mut resp) = self.request(reqwest::Method::GET).send().await else {
            return;
        };
        if !resp.status().is_success() {
            return;
        }
        let mut decoder = mcpgate_proto::sse::Decoder::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            for ev in decoder.feed(&chunk) {
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    self.emit(&v);
                }
            }
        }
    }
}

/// The routing headers a 2026-07-28 request needs over HTTP (its version is
/// in `_meta`; stdio has no headers): `MCP-Protocol-Version` (replacing a
/// session's), `Mcp-Method`, and `Mcp-Name` where the method names a tool,
/// prompt or resource. None for any other message.
fn modern_headers(msg: &Value) -> Vec<(&'static str, String)> {
    use mcpgate_proto::modern;
    let pointer = format!(
        "/params/_meta/{}",
        modern::META_PROTOCOL_VERSION
            .replace('~', "~0")
            .replace('/', "~1")
    );
    let (Some(version), Some(method)) = (
        msg.pointer(&pointer).and_then(Value::as_str),
        msg.get("method").and_then(Value::as_str),
    ) else {
        return Vec::new();
    };
    let mut out = vec![
        ("mcp-protocol-version", version.to_owned()),
        (modern::HEADER_METHOD, method.to_owned()),
    ];
    if let Some(key) = modern::name_param(method)
        && let Some(name) = msg
            .get("params")
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
    {
        out.push((modern::HEADER_NAME, modern::encode_header_value(name)));
    }
    out
}

/// Runs the bridge until stdin ends.
pub(crate) async fn stdio(url: &str, key_file: Option<&Path>) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = match key_file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(k) => Some(k.trim().to_owned()),
            Err(e) => {
                eprintln!("mcpgate stdio: --key-file {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => std::env::var("MCPGATE_KEY").ok().filter(|k| !k.is_empty()),
    };
    let Ok(http) = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
    else {
        return ExitCode::from(3);
    };
    let (out, mut lines_out) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = lines_out.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });
    let link = Arc::new(Link {
        http,
        url: url.to_owned(),
        key,
        session: Mutex::new(None),
        version: Mutex::new(None),
        out,
    });
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut calls = tokio::task::JoinSet::new();
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    while let Ok(Some(line)) = stdin.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                link.emit(&json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("parse error: {e}")}}));
                continue;
            }
        };
        if msg.get("method").and_then(Value::as_str) == Some("initialize") {
            // Everything after it needs the session it opens.
            link.post(msg).await;
            if lock(&link.session).is_some() && listener.is_none() {
                listener = Some(tokio::spawn(link.clone().listen()));
            }
        } else {
            let l = link.clone();
            calls.spawn(async move { l.post(msg).await });
        }
    }
    // stdin ended: let calls in flight finish briefly, then end the session.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while calls.join_next().await.is_some() {}
    })
    .await;
    calls.abort_all();
    if let Some(l) = listener {
        l.abort();
        let _ = l.await;
    }
    while calls.join_next().await.is_some() {}
    if lock(&link.session).is_some() {
        let _ = link.request(reqwest::Method::DELETE).send().await;
    }
    drop(link);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    ExitCode::SUCCESS
}
