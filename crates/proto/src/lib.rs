//! Pure protocol pieces shared by every other crate: the JSON-RPC envelope that
//! is parsed once and forwarded as raw bytes, the SSE encoder and incremental
//! decoder, MCP protocol versions and header names, and JSON-RPC error codes.
//! Nothing here does I/O, so all of it is unit-testable and fuzzable.

pub mod codes;
pub mod jsonrpc;
pub mod modern;
pub mod sse;
pub mod version;

pub use jsonrpc::{Kind, Message, ParseError};
