//! Why a client request failed, and the one function that turns it into a
//! JSON-RPC error. Upstream failures name the server but never leak internals;
//! a hidden or unknown tool gets exactly the spec's unknown-tool error.

use mcpgate_proto::codes;
use mcpgate_upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("Method not found: {0}")]
    MethodNotFound(String),
    #[error("Invalid params: {0}")]
    InvalidParams(String),
    #[error("Unknown tool: {0}")]
    UnknownTool(String),
    #[error("Unknown prompt: {0}")]
    UnknownPrompt(String),
    #[error("Resource not found: {0}")]
    ResourceNotFound(String),
    #[error("server '{server}' is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("{0}")]
    Upstream(UpstreamError),
    #[error("compute-token quota exhausted: tenant '{tenant}' has {balance} tokens and this call costs {cost}{}", resets_at_ms.map(|t| format!("; the balance resets at {}", mcpgate_store::format_ts(t))).unwrap_or_default())]
    QuotaExhausted {
        tenant: String,
        balance: i64,
        cost: i64,
        resets_at_ms: Option<i64>,
    },
    #[error(
        "the server needs the client's {capability} capability ({method}), which the client did not declare"
    )]
    MissingCapability { capability: String, method: String },
    #[error("Too Many Requests: {0}")]
    RateLimited(String),
    #[error("the usage ledger cannot be written, so the call was not forwarded; try again")]
    LedgerUnavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl CallError {
    /// The JSON-RPC error code and any `data` for the wire.
    pub(crate) fn wire(&self) -> (i64, Option<serde_json::Value>) {
        match self {
            CallError::MethodNotFound(_) => (codes::METHOD_NOT_FOUND, None),
            CallError::InvalidParams(_)
            | CallError::UnknownTool(_)
            | CallError::UnknownPrompt(_) => (codes::INVALID_PARAMS, None),
            CallError::ResourceNotFound(uri) => (
                codes::RESOURCE_NOT_FOUND,
                Some(serde_json::json!({ "uri": uri })),
            ),
            CallError::Unavailable { server, .. } => (
                codes::UPSTREAM_UNAVAILABLE,
                Some(serde_json::json!({ "server": server })),
            ),
            CallError::Upstream(e) => {
                let code = match e {
                    UpstreamError::Timeout { .. } => codes::REQUEST_TIMEOUT,
                    _ => codes::UPSTREAM_UNAVAILABLE,
                };
                (code, Some(serde_json::json!({ "server": e.server() })))
            }
            CallError::QuotaExhausted {
                balance,
                cost,
                resets_at_ms,
                ..
            } => (
                codes::QUOTA_EXHAUSTED,
                Some(serde_json::json!({
                    "balance": balance,
                    "cost": cost,
                    "resetsAt": resets_at_ms.map(mcpgate_store::format_ts),
                })),
            ),
            CallError::MissingCapability { capability, .. } => (
                codes::MISSING_CLIENT_CAPABILITY,
                Some(serde_json::json!({ "requiredCapabilities": { capability: {} } })),
            ),
            CallError::RateLimited(_) => (codes::RATE_LIMITED, None),
            CallError::LedgerUnavailable | CallError::Internal(_) => (codes::INTERNAL_ERROR, None),
        }
    }
}
