//! The one MCP client in the codebase. A [`Connection`] is one live MCP session
//! with one server, over a child process's stdio, over Streamable HTTP, or over
//! the legacy HTTP+SSE transport of protocol 2024-11-05. It owns request-id
//! allocation, matching replies to requests, and attributing what the server
//! sends on its own (progress, logs, server-to-client requests) to the request
//! it belongs to. The gateway, `mcpgate call` and the bench all reach servers
//! through it.
//!
//! The modules stand on each other one way: `conn` owns the transports
//! (`stdio`, `http`, `legacy_sse`), which report what the server sends into
//! `routes`; the HTTP transports share `http_client`, and plain `http://`
//! servers get their connections from `pool`; `spec`, `message`,
//! `error`, `handshake` and `modern` are leaves; `redact` keeps a server's
//! configured secrets out of its stderr and error text.

mod conn;
mod error;
mod handshake;
mod http;
mod http_client;
mod legacy_sse;
mod message;
mod modern;
mod pool;
mod redact;
mod routes;
mod spec;
mod stdio;

pub use conn::{Connection, RequestOpts};
pub use error::UpstreamError;
pub use handshake::InitInfo;
pub use message::{Event, EventTx, Incoming, RelayTx, Reply};
pub use spec::{TransportSpec, UpstreamSpec};
pub use stdio::DEFAULT_ENV_PASSTHROUGH;
