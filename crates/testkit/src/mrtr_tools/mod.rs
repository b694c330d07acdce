//! Tools and one prompt that ask the client for input in the middle of a
//! call, in both protocol eras; names and keys follow the conformance suite's
//! SEP-2322 and SEP-2575 server scenarios.
//!
//! **Session-based (2025-11-25) requests**, e.g. the fixture over stdio behind
//! mcpgate: each tool sends ordinary server-to-client requests
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`) and waits for
//! the answers. Behind mcpgate a 2026-07-28 client sees those requests as the
//! `inputRequests` of an `InputRequiredResult`, keyed by the
//! `_meta["dev.mcpgate/inputKey"]` hint each request carries. A JSON-RPC error
//! answer from the client (such as the gateway's -32021 for a capability the
//! client did not declare) is returned unchanged as the call's error, except
//! by `test_input_required_result_capabilities`, which reports it as text.
//!
//! **2026-07-28 requests** (the fixture's Streamable HTTP endpoint also serves
//! stateless 2026-07-28 calls, where rmcp refuses server-to-client requests):
//! the same tools answer natively with multi-round-trip results. A call
//! without the answers it needs returns `InputRequiredResult` whose
//! `inputRequests` use the same keys and params (minus the hint); the retry's
//! `inputResponses` complete it with the same result texts. An answer that is
//! missing or not an object is asked for again. Tools that need memory across
//! rounds (`request_state`, `tampered_state`, `multiple_inputs`,
//! `multi_round`) carry it in an HMAC-protected `requestState` (see
//! `request_state.rs`); a tampered state is -32602.
//!
//! Layout: this file holds the public names and `test_header_param` (which
//! asks for nothing, so one handler serves both eras); `questions.rs` what
//! each tool asks and what the answers become, the same in both eras;
//! `legacy.rs` the session-based handlers; `modern.rs` the 2026-07-28 ones.
//! Both stand on `questions.rs`, neither on the other. The prompt's name is
//! [`crate::catalog::INPUT_REQUIRED_PROMPT`].

use rmcp::model::{CallToolResult, JsonObject};
use serde_json::Value;

use crate::util::{error_result, text_result};

pub(crate) mod legacy;
pub(crate) mod modern;
mod questions;

/// The `_meta` key naming the `inputRequests` key mcpgate should use for a
/// server-to-client request.
pub const META_INPUT_KEY: &str = "dev.mcpgate/inputKey";

/// Every tool this module implements, in catalogue order.
pub const TOOLS: &[&str] = &[
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_header_param",
];

/// Input keys the tools ask mcpgate to use.
pub mod keys {
    /// The name elicitation of most tools.
    pub const USER_NAME: &str = "user_name";
    /// `test_input_required_result_sampling`.
    pub const CAPITAL_QUESTION: &str = "capital_question";
    /// Every `roots/list`.
    pub const CLIENT_ROOTS: &str = "client_roots";
    /// The boolean confirmation of the request-state tools.
    pub const CONFIRM: &str = "confirm";
    /// The sampling request of `test_input_required_result_multiple_inputs`.
    pub const GREETING: &str = "greeting";
    /// The second round of `test_input_required_result_multi_round`.
    pub const FAVORITE_COLOR: &str = "favorite_color";
    /// The sampling request of `test_input_required_result_capabilities`.
    pub const CAPABILITY_SAMPLE: &str = "capability_sample";
    /// The elicitation of the prompt.
    pub const USER_CONTEXT: &str = "user_context";
}

/// `test_header_param`: echoes its `region` argument.
pub(crate) fn header_param(args: &JsonObject) -> CallToolResult {
    match args.get("region").and_then(Value::as_str) {
        Some(region) => text_result(format!("region={region}")),
        None => error_result("argument `region` must be a string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::catalog;

    #[test]
    fn header_param_echoes_region() {
        let mut args = JsonObject::new();
        assert_eq!(header_param(&args).is_error, Some(true));
        args.insert("region".to_owned(), json!("eu-west"));
        assert_eq!(header_param(&args), text_result("region=eu-west"));
    }

    #[test]
    fn every_mrtr_tool_is_listed_without_required_arguments() {
        for name in TOOLS {
            let tool = catalog::tools()
                .iter()
                .find(|tool| tool.name == *name)
                .unwrap_or_else(|| panic!("tool {name} missing"));
            let schema = &tool.input_schema;
            assert_eq!(schema.get("type"), Some(&json!("object")), "{name}");
            if *name != "test_header_param" {
                assert!(
                    schema
                        .get("required")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty),
                    "{name} must not require arguments"
                );
            }
        }
    }
}
