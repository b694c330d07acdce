//! JSON-RPC error codes used on the wire: the standard ones, MCP's, and the
//! gateway's own from the implementation-defined -32000..-32099 range.

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP: a resource URI that no server owns.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// Gateway: the upstream that owns the name is down, crashed or refused us.
pub const UPSTREAM_UNAVAILABLE: i64 = -32000;
/// Gateway: the upstream did not answer within its timeout.
pub const REQUEST_TIMEOUT: i64 = -32001;
/// Gateway: the request was rejected before reaching any upstream (e.g. missing session).
pub const BAD_REQUEST: i64 = -32003;
/// 2026-07-28: a routing header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the request needs a client capability it did not declare.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// 2026-07-28: the protocol version is not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// Gateway: the key's rate limit or the tenant's concurrent-call cap was hit (HTTP 429).
pub const RATE_LIMITED: i64 = -32029;
/// Gateway: the tenant's compute-token balance cannot cover the call.
pub const QUOTA_EXHAUSTED: i64 = -32030;
/// Gateway: missing, malformed, unknown, revoked or expired credentials (HTTP 401).
pub const UNAUTHORIZED: i64 = -32040;
/// Gateway: valid credentials that may not do this (HTTP 403).
pub const FORBIDDEN: i64 = -32041;
