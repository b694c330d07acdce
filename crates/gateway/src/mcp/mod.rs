//! What MCP methods do, above the state they act on and below HTTP:
//! `dispatch` (the closed match), `call` (admit and run a request, both
//! eras), `forward` and `relay` (one request to its upstream and what it sends
//! back), `mrtr` (bridging the two eras' ways of asking the client for input),
//! `modern` (the 2026-07-28 call's life and its replies), `listen`
//! (`subscriptions/listen`), `logging` (per-session log levels), `supervise` (upstream lifecycles), `lifecycle`
//! (start, probe, stop, a session's initialize and end), `health`, `metrics`
//! (the `/metrics` document), `admin`, and `changes` (what replicas tell
//! each other through Redis).
//! Nothing here imports `http`.

pub mod admin;
pub(crate) mod call;
pub(crate) mod changes;
pub(crate) mod ctx;
pub(crate) mod dispatch;
pub(crate) mod forward;
pub mod health;
pub(crate) mod lifecycle;
pub(crate) mod listen;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod modern;
pub(crate) mod mrtr;
pub(crate) mod params;
pub(crate) mod relay;
pub(crate) mod reload;
pub(crate) mod runner;
pub(crate) mod runs;
pub(crate) mod servers;
pub(crate) mod supervise;
