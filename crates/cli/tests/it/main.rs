//! The `mcpgate` crate's integration tests, as one test binary: real
//! `mcpgate serve` processes (and the fixture, reference servers and SDK
//! clients) on port 0, one module per area, and `tidy`, which reads the
//! workspace's sources instead of running them. One binary means `common/`,
//! the shared harness, compiles and links once instead of once per file.

mod common;

mod bench_smoke;
mod child_env;
mod cli_edges;
mod cluster;
mod cluster_pubsub;
mod cluster_sessions;
mod config_import;
mod conformance;
mod http_behaviour;
mod inputs_and_records;
mod interop;
mod interop_dual;
mod isolation;
mod lifecycle;
mod modern;
mod oauth_interop;
mod observability;
mod protocol;
mod relay;
mod reload;
mod resource_uris;
mod runs_api;
mod runs_claude;
mod runs_codex;
mod runs_gateway;
mod runs_kubernetes;
mod runs_restart;
mod stdio_bridge;
mod telemetry;
mod tenancy;
mod tidy;
mod tool_commands;
mod ui_browser;
mod upstream_http;
