//! Transports for the fixture: serving one [`Fixture`] over stdio, and
//! serving a fresh [`Fixture`] per session over rmcp's Streamable HTTP
//! server mounted at `/mcp` on an axum router. Binding is split from
//! running so callers learn the bound port before serving starts.
//!
//! The HTTP endpoint also serves stateless 2026-07-28 requests. rmcp parses
//! `inputResponses: null` as absent and reports any other non-object as an
//! unknown method (-32601, HTTP 404), so a small layer in front of it refuses
//! a 2026-07-28 `tools/call`, `prompts/get` or `resources/read` whose
//! `inputResponses` is not an object, or whose `requestState` is not a
//! string, with -32602 (HTTP 200, like rmcp's other in-band -32602 errors).

use std::{io, net::SocketAddr, sync::Arc};

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::{
    ServiceExt,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

use serde_json::{Value, json};

use crate::server::Fixture;

/// Path the Streamable HTTP endpoint is mounted at.
pub const MCP_PATH: &str = "/mcp";

/// Largest request body read (rmcp's own default limit).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Serve one fixture over stdin/stdout until the client disconnects.
pub async fn serve_stdio(name: &str) -> io::Result<()> {
    serve_stdio_fixture(Fixture::new(name)).await
}

/// Serve the given fixture over stdin/stdout until the client disconnects.
pub async fn serve_stdio_fixture(fixture: Fixture) -> io::Result<()> {
    let running = fixture
        .serve(rmcp::transport::stdio())
        .await
        .map_err(io::Error::other)?;
    running.waiting().await.map_err(io::Error::other)?;
    Ok(())
}

/// Options for the Streamable HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `serverInfo.name` reported by every session.
    pub name: String,
    /// Serve without `Mcp-Session-Id` sessions (each POST handled on its own,
    /// JSON responses preferred). Default is stateful sessions.
    pub stateless: bool,
    /// Extra `synthetic_*` tools every session lists ([`Fixture::with_synthetic_tools`]).
    pub synthetic_tools: usize,
    /// Appends each POST's JSON-RPC method and `traceparent` header (`-`
    /// when absent), tab-separated, one line per request, to this file: how
    /// a test sees the trace context a gateway passed on.
    pub record_traceparent: Option<std::path::PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            name: crate::util::DEFAULT_NAME.to_owned(),
            stateless: false,
            synthetic_tools: 0,
            record_traceparent: None,
        }
    }
}

/// A bound, not yet running, Streamable HTTP fixture.
#[derive(Debug)]
pub struct BoundHttp {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    local_addr: SocketAddr,
}

impl BoundHttp {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The MCP endpoint URL, e.g. `http://127.0.0.1:40123/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.local_addr)
    }

    /// Serve until the process ends or the listener fails.
    pub async fn run(self) -> io::Result<()> {
        // SSE replies are several small writes: disable Nagle so none waits for an ACK.
        use axum::serve::ListenerExt as _;
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, self.router).await
    }
}

/// Bind the Streamable HTTP fixture. Host-header validation stays at rmcp's
/// default (loopback names only), which is what protects against DNS rebinding.
pub async fn bind_http(options: &HttpOptions) -> io::Result<BoundHttp> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!options.stateless)
        .with_json_response(options.stateless);
    let name = options.name.clone();
    let synthetic = options.synthetic_tools;
    let service = StreamableHttpService::new(
        move || Ok(Fixture::new(name.clone()).with_synthetic_tools(synthetic)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut router = axum::Router::new()
        .nest_service(MCP_PATH, service)
        .layer(axum::middleware::from_fn(refuse_malformed_mrtr_params));
    if let Some(path) = options.record_traceparent.clone() {
        let path = Arc::new(path);
        router = router.layer(axum::middleware::from_fn(move |r: Request, n: Next| {
            record_traceparent(path.clone(), r, n)
        }));
    }
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let local_addr = listener.local_addr()?;
    Ok(BoundHttp {
        listener,
        router,
        local_addr,
    })
}

/// Appends `<method>\t<traceparent or ->` for a POST to `path`, then serves it.
async fn record_traceparent(
    path: Arc<std::path::PathBuf>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let method = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|m| m.get("method")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned());
    let traceparent = parts
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let line = format!("{method}\t{traceparent}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path.as_ref())
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = written {
        eprintln!("mcpgate-fixture: cannot record a traceparent: {e}");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The -32602 answer for a 2026-07-28 request whose MRTR params have the wrong
/// type, or `None` to let rmcp handle the message.
fn malformed_mrtr_params(body: &[u8]) -> Option<Value> {
    let message: Value = serde_json::from_slice(body).ok()?;
    let id = message.get("id")?;
    let method = message.get("method")?.as_str()?;
    if !matches!(method, "tools/call" | "prompts/get" | "resources/read") {
        return None;
    }
    let params = message.get("params")?;
    let version = params
        .get("_meta")?
        .get("io.modelcontextprotocol/protocolVersion")?
        .as_str()?;
    if version < "2026-07-28" {
        return None;
    }
    let problem = match (params.get("inputResponses"), params.get("requestState")) {
        (Some(responses), _) if !responses.is_object() => "inputResponses must be an object",
        (_, Some(state)) if !state.is_string() => "requestState must be a string",
        _ => return None,
    };
    Some(json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": -32602, "message": problem }
    }))
}

/// Axum layer applying [`malformed_mrtr_params`] to every POST.
async fn refuse_malformed_mrtr_params(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if let Some(error) = malformed_mrtr_params(&bytes) {
        return axum::Json(error).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(params: Value) -> Option<Value> {
        let message =
            json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params });
        malformed_mrtr_params(message.to_string().as_bytes())
    }

    #[test]
    fn only_malformed_2026_mrtr_params_are_refused() {
        let modern = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28" });
        let refused = check(json!({ "name": "x", "inputResponses": null, "_meta": modern }))
            .expect("null inputResponses refused");
        assert_eq!(refused["id"], 7);
        assert_eq!(refused["error"]["code"], -32602);
        assert!(check(json!({ "name": "x", "inputResponses": [1], "_meta": modern })).is_some());
        assert!(check(json!({ "name": "x", "requestState": 5, "_meta": modern })).is_some());
        // Well-formed, legacy or not MRTR-capable: left to rmcp.
        assert!(
            check(
                json!({ "name": "x", "inputResponses": {}, "requestState": "s", "_meta": modern })
            )
            .is_none()
        );
        assert!(check(json!({ "name": "x", "inputResponses": null })).is_none());
        let legacy = json!({ "io.modelcontextprotocol/protocolVersion": "2025-11-25" });
        assert!(check(json!({ "name": "x", "inputResponses": null, "_meta": legacy })).is_none());
        let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": { "inputResponses": null, "_meta": modern } });
        assert!(malformed_mrtr_params(list.to_string().as_bytes()).is_none());
        assert!(malformed_mrtr_params(b"not json").is_none());
    }
}
