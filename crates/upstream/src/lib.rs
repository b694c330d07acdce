//! The one MCP client in the codebase. A [`Connection`] is one live MCP session
//! with one server, over a child process's stdio, over Streamable HTTP, or over
//! the legacy HTTP+SSE transport of protocol 2024-11-05. It owns request-id
//! allocation, matching replies to requests, and attributing what the server
//! sends on its own (progress, logs, server-to-client requests) to the request
//! it belongs to. The gateway, `mcpgate call` and the bench all reach servers
//! through it.

mod conn;
mod error;
mod http;
mod http_client;
mod legacy_sse;
mod locks;
mod modern;
mod routes;
mod stdio;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::value::RawValue;

pub use conn::{Connection, InitInfo, RequestOpts};
pub use error::UpstreamError;

/// How to reach one server, already validated and with `${VAR}` expanded.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    pub transport: TransportSpec,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Time allowed to spawn or connect and finish the initialize handshake.
    pub connect_timeout: Duration,
    /// How long an idle pooled HTTP connection to the server is kept open.
    pub idle_timeout: Duration,
}

#[derive(Clone)]
pub enum TransportSpec {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    StreamableHttp {
        url: String,
        /// Header name and value. Values may hold secrets: never log them.
        headers: Vec<(String, String)>,
    },
    /// The 2024-11-05 HTTP+SSE transport: GET an SSE stream, POST to its `endpoint`.
    LegacySse {
        url: String,
        headers: Vec<(String, String)>,
    },
}

impl std::fmt::Debug for TransportSpec {
    // Written by hand so that env values and header values (secrets) never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportSpec::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            TransportSpec::StreamableHttp { url, headers }
            | TransportSpec::LegacySse { url, headers } => f
                .debug_struct(self.kind())
                .field("url", url)
                .field(
                    "headers",
                    &headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

impl TransportSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TransportSpec::Stdio { .. } => "stdio",
            TransportSpec::StreamableHttp { .. } => "http",
            TransportSpec::LegacySse { .. } => "sse",
        }
    }
}

/// A reply to one request: the raw `result`, or the raw `error` object.
#[derive(Debug)]
pub enum Reply {
    Result(Box<RawValue>),
    Error(Box<RawValue>),
}

/// Something the server sent that is not a reply to one of our requests.
#[derive(Debug)]
pub enum Incoming {
    Notification {
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// A server-to-client request (sampling, elicitation, roots). Answer it with
    /// [`Connection::respond`], passing `id` back unchanged.
    Request {
        id: Box<RawValue>,
        method: String,
        params: Option<Box<RawValue>>,
    },
}

/// Where messages tied to one request go while it is in flight.
pub type RelayTx = tokio::sync::mpsc::UnboundedSender<Incoming>;

/// Connection-level events: unattributed messages, and the end of the connection.
#[derive(Debug)]
pub enum Event {
    Incoming(Incoming),
    Closed { reason: String },
}

pub type EventTx = tokio::sync::mpsc::UnboundedSender<Event>;
