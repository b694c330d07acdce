//! Test support for mcpgate. Owns the `mcpgate-fixture` MCP server: an rmcp
//! server offering every tool, resource, resource template and prompt the
//! MCP conformance suite's server scenarios (2025-11-25) expect, plus the
//! `echo`, `sleep` and `exit` tools used by the gateway's own tests and
//! benchmarks. The binary (`src/main.rs`) is a thin CLI over [`serve`].

pub mod catalog;
pub mod serve;
pub mod server;

pub use server::Fixture;
