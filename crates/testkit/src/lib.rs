//! Test support for mcpgate. Owns the `mcpgate-fixture` MCP server: an rmcp
//! server offering every tool, resource, resource template and prompt the
//! MCP conformance suite's server scenarios (2025-11-25) expect, plus the
//! `echo`, `sleep` and `exit` tools used by the gateway's own tests and
//! benchmarks, and the [`mrtr_tools`] that ask the client for input mid-call
//! (server-to-client requests in 2025-11-25 sessions, which mcpgate turns into
//! `InputRequiredResult`s for 2026-07-28 clients; native `InputRequiredResult`s
//! for 2026-07-28 requests to the fixture's HTTP endpoint).
//! The binary (`src/main.rs`) is a thin CLI over [`serve`].

pub mod catalog;
pub mod mrtr_tools;
mod request_state;
pub mod serve;
pub mod server;
mod util;

pub use server::Fixture;
pub use util::DEFAULT_NAME;
