//! Pure protocol pieces shared by every other crate: the JSON-RPC envelope that
//! is parsed once and forwarded as raw bytes, the SSE encoder and incremental
//! decoder, MCP protocol versions and header names, JSON-RPC error codes, the
//! order of MCP log levels, poison-tolerant lock helpers, and the one parser for durations people write
//! (`500ms`, `2s`, `1h`).
//! Nothing here does I/O, so all of it is unit-testable and fuzzable.

pub mod codes;
pub mod duration;
pub mod jsonrpc;
pub mod locks;
pub mod logging;
pub mod modern;
pub mod sse;
pub mod version;

pub use jsonrpc::{Kind, Message, ParseError};
