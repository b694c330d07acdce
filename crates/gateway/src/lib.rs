//! The gateway: one Streamable HTTP endpoint in front of many MCP servers.
//! Three layers, each importing only what is below it: `http` (every HTTP
//! decision) stands on `mcp` (what MCP methods do), which stands on `state`
//! (what the gateway holds); `config` is read in beneath them all, and
//! `telemetry` (trace spans and their export) beside them.

pub mod config;
mod http;
mod mcp;
mod state;
mod telemetry;

pub use config::Config;
pub use http::{EdgeLimits, bind, router, serve, serve_with};
pub use mcp::admin;
pub use mcp::changes::announce_store_change;
pub use mcp::health;
pub use mcp::lifecycle::{probe, stop};
pub use mcp::reload::{Reloaded, reload};
pub use state::App;
pub use state::startup::{open_store, prepare_store};
