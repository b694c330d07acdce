//! `--sessions N`: open N MCP sessions as cheaply as possible and leave them
//! idle, to measure what idle sessions cost the server. `K` workers share one
//! keep-alive HTTP client; each session is one `initialize` POST (its
//! `MCP-Session-Id` is read from the reply) and one `notifications/initialized`
//! POST. Nothing is closed: the sessions stay until the server expires them.
//! Raw POSTs rather than `Connection`, which would also hold a GET stream and a
//! connection pool per session and so measure the client's footprint too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::args::SessionOpts;

const PROTOCOL_VERSION: &str = "2025-11-25";
const ACCEPT: &str = "application/json, text/event-stream";

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-bench","version":"0.1.0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

#[derive(Debug)]
pub(crate) struct SessionsSummary {
    pub(crate) opened: usize,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
}

impl SessionsSummary {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "sessions": self.opened,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_ms": self.elapsed.as_millis() as u64,
        })
    }

    pub(crate) fn to_text(&self) -> String {
        let mut text = format!(
            "opened {} idle sessions in {:.2} s, errors {}",
            self.opened,
            self.elapsed.as_secs_f64(),
            self.errors
        );
        if let Some(e) = &self.first_error {
            text.push_str(&format!(" (first: {e})"));
        }
        text
    }
}

async fn open_one(client: &reqwest::Client, url: &str) -> Result<(), String> {
    let reply = client
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .body(INITIALIZE)
        .send()
        .await
        .map_err(|e| format!("initialize: {e}"))?;
    let status = reply.status();
    let session = reply
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read the body to the end so the connection goes back to the pool.
    let _ = reply.bytes().await;
    if !status.is_success() {
        return Err(format!("initialize: HTTP {status}"));
    }
    let session = session.ok_or("initialize: no MCP-Session-Id in the reply")?;
    let reply = client
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .body(INITIALIZED)
        .send()
        .await
        .map_err(|e| format!("notifications/initialized: {e}"))?;
    let status = reply.status();
    let _ = reply.bytes().await;
    if !status.is_success() {
        return Err(format!("notifications/initialized: HTTP {status}"));
    }
    Ok(())
}

pub(crate) async fn run(opts: &SessionOpts) -> Result<SessionsSummary, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(opts.connections)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..opts.connections {
        let client = client.clone();
        let next = next.clone();
        let url = opts.url.clone();
        let total = opts.sessions;
        workers.spawn(async move {
            let (mut opened, mut errors, mut first_error) = (0, 0, None);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                match open_one(&client, &url).await {
                    Ok(()) => opened += 1,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (opened, errors, first_error)
        });
    }
    let mut summary = SessionsSummary {
        opened: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = workers.join_next().await {
        let (opened, errors, first_error) = joined.map_err(|e| e.to_string())?;
        summary.opened += opened;
        summary.errors += errors;
        if summary.first_error.is_none() {
            summary.first_error = first_error;
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}
