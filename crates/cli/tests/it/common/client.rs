//! The one MCP client the HTTP integration tests use to talk to a running
//! gateway: it POSTs JSON-RPC to `/mcp` with the spec's headers (plus any
//! fixed extra headers and per-request overrides), keeps the session id that
//! `initialize` hands out, and turns every answer, a JSON body or an SSE
//! stream, into a [`Reply`] holding the JSON-RPC messages it carried. Also
//! here: the JSON-RPC codes the gateway puts on the wire and lookups into a
//! `/health` snapshot.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Gateway;

/// The protocol version the client negotiates and sends on every request.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The Accept header of a Streamable HTTP client.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// JSON-RPC codes the gateway puts on the wire.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
pub const UPSTREAM_UNAVAILABLE: i64 = -32000;
pub const REQUEST_TIMEOUT: i64 = -32001;

/// One HTTP answer: status, headers, raw body, and the JSON-RPC messages it
/// carried (the JSON body, or the `data` of every non-empty SSE event).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub messages: Vec<Value>,
    /// SSE event ids of the events that carried a message, in order (empty for JSON).
    pub event_ids: Vec<String>,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn is_sse(&self) -> bool {
        self.content_type().starts_with("text/event-stream")
    }

    /// The JSON body (for plain JSON answers such as /health).
    pub fn json(&self) -> &Value {
        assert!(
            !self.is_sse() && self.messages.len() == 1,
            "expected one JSON body, got HTTP {} {:?}: {}",
            self.status,
            self.content_type(),
            self.body
        );
        &self.messages[0]
    }

    /// The JSON-RPC response (the one message with `result` or `error`).
    pub fn response(&self) -> &Value {
        let responses: Vec<&Value> = self
            .messages
            .iter()
            .filter(|m| m.get("result").is_some() || m.get("error").is_some())
            .collect();
        assert_eq!(
            responses.len(),
            1,
            "expected exactly one JSON-RPC response, got HTTP {}: {}",
            self.status,
            self.body
        );
        responses[0]
    }

    /// Whether the answer is HTTP 200 and carries a JSON-RPC result (never panics).
    pub fn has_result(&self) -> bool {
        self.status == 200 && self.messages.iter().any(|m| m.get("result").is_some())
    }

    /// The successful result (HTTP 200); panics with the whole body otherwise.
    pub fn result(&self) -> &Value {
        assert_eq!(self.status, 200, "HTTP status; body: {}", self.body);
        self.response()
            .get("result")
            .unwrap_or_else(|| panic!("expected a result, got: {}", self.body))
    }

    /// The JSON-RPC error object, whatever the HTTP status (assert that
    /// separately); panics with the whole body if there is none.
    pub fn error(&self) -> &Value {
        self.response()
            .get("error")
            .unwrap_or_else(|| panic!("expected a JSON-RPC error, got: {}", self.body))
    }

    pub fn error_code(&self) -> i64 {
        self.error()["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("error without an integer code: {}", self.body))
    }

    pub fn error_message(&self) -> String {
        self.error()["message"].as_str().unwrap_or("").to_owned()
    }

    /// Asserts a JSON-RPC error on HTTP 200 with this code whose message
    /// contains every one of `words` (e.g. the name of the failed server).
    pub fn assert_rpc_error(&self, what: &str, code: i64, words: &[&str]) {
        assert_eq!(self.status, 200, "{what}: HTTP status; body: {}", self.body);
        assert_eq!(self.error_code(), code, "{what}: {}", self.body);
        let message = self.error_message();
        for word in words {
            assert!(
                message.contains(word),
                "{what}: the error must say {word:?}: {}",
                self.body
            );
        }
    }

    /// The first text content of a tools/call result (which must not be `isError`).
    pub fn text(&self) -> String {
        let r = self.result();
        assert_ne!(
            r["isError"],
            json!(true),
            "tool reported an error: {}",
            self.body
        );
        r["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text content: {}", self.body))
            .to_owned()
    }

    /// The notifications with this method, in order.
    pub fn notifications(&self, method: &str) -> Vec<&Value> {
        self.messages
            .iter()
            .filter(|m| m["method"] == method)
            .collect()
    }
}

/// Parses a body as JSON or as SSE, by its content type: the messages, and
/// for SSE the event id of each (`""` where an event had none).
pub fn parse_body(content_type: &str, body: &str) -> (Vec<Value>, Vec<String>) {
    if !content_type.starts_with("text/event-stream") {
        // Not JSON (an empty 202, or a misbehaving error page): no messages;
        // the assertions show the body.
        let messages = serde_json::from_str(body)
            .map(|v| vec![v])
            .unwrap_or_default();
        return (messages, Vec::new());
    }
    let mut messages = Vec::new();
    let mut ids = Vec::new();
    for event in body.replace("\r\n", "\n").split("\n\n") {
        let mut id = None;
        let mut data: Vec<&str> = Vec::new();
        for line in event.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim_start().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        let data = data.join("\n");
        if data.trim().is_empty() {
            continue; // priming event, retry hint, keep-alive comment
        }
        let msg: Value = serde_json::from_str(&data).unwrap_or_else(|e| {
            panic!("SSE data is not JSON ({e}): {data:?}\nwhole body:\n{body}")
        });
        messages.push(msg);
        ids.push(id.unwrap_or_default());
    }
    (messages, ids)
}

/// An MCP client speaking raw HTTP to the gateway: one optional session, and
/// optional extra headers sent on every request.
pub struct Client {
    http: reqwest::Client,
    base: String,
    url: String,
    /// The session id sent as `Mcp-Session-Id` (set by [`Client::initialize`]).
    pub session: Option<String>,
    extra: Vec<(String, String)>,
    next_id: AtomicI64,
}

impl Client {
    /// A client of the gateway's MCP URL.
    pub fn new(gw: &Gateway) -> Client {
        Client::build(gw, &gw.url, &[])
    }

    /// A client posting to `url` (e.g. the `/mcp/` variant).
    pub fn at(gw: &Gateway, url: &str) -> Client {
        Client::build(gw, url, &[])
    }

    /// A client of the gateway's MCP URL that sends these headers on every
    /// request (replacing a default header of the same name).
    pub fn with_headers(gw: &Gateway, extra: &[(&str, &str)]) -> Client {
        Client::build(gw, &gw.url, extra)
    }

    fn build(gw: &Gateway, url: &str, extra: &[(&str, &str)]) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        Client {
            http,
            base: gw.base.clone(),
            url: url.to_owned(),
            session: None,
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            next_id: AtomicI64::new(1),
        }
    }

    /// Sends a request to `path` (relative to the gateway's base, or "" for the MCP URL).
    /// Default headers (JSON content type, Accept both, protocol version, session,
    /// then the client's extra headers) are replaced by any of `headers` with the
    /// same name; an empty value removes one.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.try_send(method, path, body, headers)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// POSTs one message; a transport failure (the gateway is gone) is an `Err`, not a panic.
    pub async fn try_post(&self, msg: &Value) -> Result<Reply, String> {
        let body = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
        self.try_send(reqwest::Method::POST, "", Some(body), &[])
            .await
    }

    /// Like [`Client::send`], with transport failures returned.
    pub async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut all: Vec<(String, String)> = vec![
            ("accept".into(), ACCEPT_BOTH.into()),
            ("mcp-protocol-version".into(), PROTOCOL_VERSION.into()),
        ];
        if body.is_some() {
            all.push(("content-type".into(), "application/json".into()));
        }
        if let Some(s) = &self.session {
            all.push(("mcp-session-id".into(), s.clone()));
        }
        let extra = self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in extra.chain(headers.iter().copied()) {
            all.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
            if !v.is_empty() {
                all.push((k.to_owned(), v.to_owned()));
            }
        }
        let url = if path.is_empty() {
            self.url.clone()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.http.request(method.clone(), &url);
        for (k, v) in &all {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url} failed: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("{method} {url}: reading the body failed: {e}"))?;
        let ctype = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (messages, event_ids) = parse_body(ctype, &body);
        Ok(Reply {
            status,
            headers,
            body,
            messages,
            event_ids,
        })
    }

    /// POSTs a raw body to the MCP URL with header overrides.
    pub async fn post_raw(&self, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        self.send(reqwest::Method::POST, "", Some(body.into()), headers)
            .await
    }

    /// POSTs one JSON-RPC message to the MCP URL.
    pub async fn post(&self, msg: &Value) -> Reply {
        self.post_raw(msg.to_string(), &[]).await
    }

    /// Sends a JSON-RPC request with this id.
    pub async fn request_with_id(&self, id: Value, method: &str, params: Value) -> Reply {
        self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// Sends a JSON-RPC request with the next id (1, 2, ...).
    pub async fn request(&self, method: &str, params: Value) -> Reply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.request_with_id(json!(id), method, params).await
    }

    /// Sends `tools/call`.
    pub async fn call(&self, tool: &str, arguments: Value) -> Reply {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
    }

    /// Calls `TOOL` (an echo tool) and asserts the message comes back.
    pub async fn assert_echo(&self, tool: &str, message: &str) {
        let r = self.call(tool, json!({"message": message})).await;
        assert_eq!(r.text(), message, "echo through {tool}");
    }

    /// Initializes a session (stores its id) and sends `notifications/initialized`.
    pub async fn initialize(&mut self) -> Reply {
        let r = self.initialize_raw().await;
        assert_eq!(r.status, 200, "initialize: {}", r.body);
        assert_eq!(r.result()["serverInfo"]["name"], "mcpgate", "{}", r.body);
        self.session = r.header("mcp-session-id").map(str::to_owned);
        let n = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(n.status, 202, "notifications/initialized: {}", n.body);
        r
    }

    /// Sends `initialize` (id 0, client name = the test binary's name) and
    /// returns the answer as it is, keeping no session.
    pub async fn initialize_raw(&self) -> Reply {
        self.request_with_id(
            json!(0),
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": env!("CARGO_CRATE_NAME"), "version": "0"}
            }),
        )
        .await
    }

    /// DELETEs the session.
    pub async fn delete(&self) -> Reply {
        self.send(reqwest::Method::DELETE, "", None, &[]).await
    }

    /// GET /health: asserts HTTP 200 and a JSON content type, returns the JSON.
    pub async fn health(&self) -> Value {
        let r = self.send(reqwest::Method::GET, "/health", None, &[]).await;
        assert_eq!(r.status, 200, "/health: {}", r.body);
        assert!(
            r.content_type().starts_with("application/json"),
            "/health Content-Type {:?}",
            r.content_type()
        );
        r.json().clone()
    }

    /// Polls /health until `ok` holds, or panics with the last snapshot.
    pub async fn wait_health(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self.health().await;
            if ok(&h) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {h:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// All tool names from tools/list, following cursors.
    pub async fn all_tool_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let r = self.request("tools/list", params).await;
            let result = r.result();
            for t in result["tools"].as_array().expect("tools array") {
                names.push(t["name"].as_str().expect("tool name").to_owned());
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return names,
            }
        }
        panic!("tools/list never ended after 1000 pages")
    }
}

/// The entry for server `name` in a /health snapshot (or `mcpgate servers --json`).
pub fn server_health<'a>(h: &'a Value, name: &str) -> &'a Value {
    h["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no server {name:?} in: {h:#}"))
}

/// Whether server `name` has this status in a /health snapshot.
pub fn status_is(h: &Value, name: &str, status: &str) -> bool {
    server_health(h, name)["status"] == status
}
