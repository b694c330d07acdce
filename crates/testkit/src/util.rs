//! The small pieces every tool handler of the fixture shares, in both
//! protocol eras: the default server name (also the logger name of its log
//! messages), text and error tool results, sending a server-to-client request
//! with raw JSON params, and the rank of a log level. A leaf module: it
//! imports nothing from this crate, so [`crate::server`] and
//! [`crate::mrtr_tools`] can both stand on it.

// Logging is deprecated in rmcp (SEP-2577) but is what the conformance
// scenarios exercise.
#![allow(deprecated)]

use mcpgate_proto::logging::log_level_rank;
use rmcp::{
    RoleServer,
    model::{
        CallToolResult, ClientResult, ContentBlock, CustomRequest, LoggingLevel, ServerRequest,
    },
    service::{RequestContext, ServiceError},
};
use serde_json::Value;

/// Default `serverInfo.name`.
pub const DEFAULT_NAME: &str = "mcpgate-fixture";

/// A successful tool result with one text block.
pub(crate) fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A tool error result (`isError: true`) with one text block.
pub(crate) fn error_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// Send a server-to-client request with raw JSON params (so the wire shape is
/// exactly what we wrote). A JSON-RPC error answer from the client arrives as
/// [`ServiceError::McpError`] with its code, message and data intact.
pub(crate) async fn send_peer_request(
    context: &RequestContext<RoleServer>,
    method: &str,
    params: Value,
) -> Result<ClientResult, ServiceError> {
    let request = ServerRequest::CustomRequest(CustomRequest::new(method, Some(params)));
    context.peer.send_request(request).await
}

/// Severity rank, 0 (debug) to 7 (emergency), as
/// [`mcpgate_proto::logging::log_level_rank`] orders the levels' wire names.
pub(crate) fn level_rank(level: LoggingLevel) -> u8 {
    serde_json::to_value(level)
        .ok()
        .as_ref()
        .and_then(Value::as_str)
        .and_then(log_level_rank)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_ranks_follow_the_wire_names() {
        assert_eq!(level_rank(LoggingLevel::Debug), 0);
        assert_eq!(level_rank(LoggingLevel::Info), 1);
        assert_eq!(level_rank(LoggingLevel::Warning), 3);
        assert_eq!(level_rank(LoggingLevel::Emergency), 7);
        assert!(level_rank(LoggingLevel::Notice) < level_rank(LoggingLevel::Error));
    }
}
