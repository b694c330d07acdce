//! The input-asking tools in session-based (2025-11-25) requests: each sends
//! ordinary server-to-client requests and waits for the answers (several at
//! once where the tool asks for several). A JSON-RPC error answer from the
//! client becomes the call's error unchanged; the exception is
//! [`capabilities`], which reports it as text.

// Sampling, roots and logging are deprecated in rmcp (SEP-2577) but are what
// legacy servers use to reach the client.
#![allow(deprecated)]

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolResult, PromptMessage},
    service::{RequestContext, ServiceError},
};
use serde_json::Value;

use super::questions::{
    ELICIT, ROOTS, SAMPLE, accepted_string, capabilities_result, capability_sample_params,
    capital_answer, capital_params, color_params, confirm_params, confirmed_text, context_messages,
    context_params, elicited_summary, greeting, greeting_params, missing_capability_answer,
    missing_capability_params, multiple_inputs_result, name_params, roots_params, roots_text,
    sampled_summary, send_log,
};
use crate::util::{error_result, send_peer_request, text_result};

type ToolOutcome = Result<CallToolResult, McpError>;

/// Send one server-to-client request; gives up when the call is cancelled.
async fn ask(
    context: &RequestContext<RoleServer>,
    method: &str,
    params: Value,
) -> Result<Value, ServiceError> {
    let result = tokio::select! {
        result = send_peer_request(context, method, params) => result?,
        () = context.ct.cancelled() => {
            return Err(ServiceError::Cancelled { reason: Some("call cancelled".to_owned()) });
        }
    };
    serde_json::to_value(result)
        .map_err(|e| ServiceError::McpError(McpError::internal_error(e.to_string(), None)))
}

/// A failed request as the tool's outcome: the client's JSON-RPC error
/// becomes the call's error, anything else an error result.
fn failed(method: &str, error: ServiceError) -> ToolOutcome {
    match error {
        ServiceError::McpError(error) => Err(error),
        other => Ok(error_result(format!("{method} failed: {other}"))),
    }
}

/// [`failed`] for handlers that can only answer with a JSON-RPC error.
fn as_mcp_error(method: &str, error: ServiceError) -> McpError {
    match error {
        ServiceError::McpError(error) => error,
        other => McpError::internal_error(format!("{method} failed: {other}"), None),
    }
}

/// `test_input_required_result_elicitation` and `test_streaming_elicitation`:
/// ask for a name (key `user_name`) and greet it.
pub(crate) async fn greet_by_name(context: &RequestContext<RoleServer>) -> ToolOutcome {
    match ask(context, ELICIT, name_params()).await {
        Ok(result) => Ok(greeting(&result)),
        Err(e) => failed(ELICIT, e),
    }
}

/// `test_input_required_result_sampling`: ask the client's LLM (key `capital_question`).
pub(crate) async fn capital_question(context: &RequestContext<RoleServer>) -> ToolOutcome {
    match ask(context, SAMPLE, capital_params()).await {
        Ok(result) => Ok(capital_answer(&result)),
        Err(e) => failed(SAMPLE, e),
    }
}

/// `test_input_required_result_list_roots`: list the client's roots (key `client_roots`).
pub(crate) async fn client_roots(context: &RequestContext<RoleServer>) -> ToolOutcome {
    match ask(context, ROOTS, roots_params()).await {
        Ok(result) => Ok(text_result(roots_text(&result))),
        Err(e) => failed(ROOTS, e),
    }
}

/// `test_input_required_result_request_state` and
/// `test_input_required_result_tampered_state`: ask for a boolean `ok`
/// (key `confirm`) and answer `yes` when it is true, `no` otherwise.
pub(crate) async fn confirm(
    context: &RequestContext<RoleServer>,
    yes: &str,
    no: &str,
) -> ToolOutcome {
    match ask(context, ELICIT, confirm_params()).await {
        Ok(result) => Ok(text_result(confirmed_text(&result, yes, no))),
        Err(e) => failed(ELICIT, e),
    }
}

/// `test_input_required_result_multiple_inputs`: elicitation (`user_name`),
/// sampling (`greeting`) and roots (`client_roots`), all in flight at once.
pub(crate) async fn multiple_inputs(context: &RequestContext<RoleServer>) -> ToolOutcome {
    let (name, greeting_answer, roots) = tokio::join!(
        ask(context, ELICIT, name_params()),
        ask(context, SAMPLE, greeting_params()),
        ask(context, ROOTS, roots_params()),
    );
    let name = match name {
        Ok(result) => result,
        Err(e) => return failed(ELICIT, e),
    };
    if let Err(unusable) = accepted_string(&name, "name") {
        return Ok(unusable.into_result());
    }
    let sampled = match greeting_answer {
        Ok(result) => result,
        Err(e) => return failed(SAMPLE, e),
    };
    let roots = match roots {
        Ok(result) => result,
        Err(e) => return failed(ROOTS, e),
    };
    Ok(multiple_inputs_result(&name, &sampled, &roots))
}

/// `test_input_required_result_multi_round`: ask for a name (`user_name`),
/// then, once answered, for a favourite colour (`favorite_color`).
pub(crate) async fn multi_round(context: &RequestContext<RoleServer>) -> ToolOutcome {
    let first = match ask(context, ELICIT, name_params()).await {
        Ok(result) => result,
        Err(e) => return failed(ELICIT, e),
    };
    let name = match accepted_string(&first, "name") {
        Ok(name) => name,
        Err(unusable) => return Ok(unusable.into_result()),
    };
    let second = match ask(context, ELICIT, color_params()).await {
        Ok(result) => result,
        Err(e) => return failed(ELICIT, e),
    };
    Ok(match accepted_string(&second, "color") {
        Ok(color) => text_result(format!("{name} likes {color}")),
        Err(unusable) => unusable.into_result(),
    })
}

/// `test_input_required_result_capabilities`: elicitation (`user_name`) and
/// sampling (`capability_sample`) at once; either may be refused (a client
/// without the capability), and the summary says which succeeded.
pub(crate) async fn capabilities(context: &RequestContext<RoleServer>) -> CallToolResult {
    let (elicited, sampled) = tokio::join!(
        ask(context, ELICIT, name_params()),
        ask(context, SAMPLE, capability_sample_params()),
    );
    capabilities_result(
        elicited.map(|result| elicited_summary(&result)),
        sampled.map(|result| sampled_summary(&result)),
    )
}

/// `test_missing_capability`: a plain sampling request. A client without
/// the sampling capability makes mcpgate answer it with -32021, which this
/// tool returns as the call's JSON-RPC error.
pub(crate) async fn missing_capability(context: &RequestContext<RoleServer>) -> ToolOutcome {
    match ask(context, SAMPLE, missing_capability_params()).await {
        Ok(result) => Ok(missing_capability_answer(&result)),
        Err(e) => failed(SAMPLE, e),
    }
}

/// `test_logging_tool`: one `notifications/message` at `info`, whatever the
/// session's log level (filtering is the gateway's job for 2026-07-28 clients).
pub(crate) async fn logging_tool(context: &RequestContext<RoleServer>) -> CallToolResult {
    send_log(context).await;
    text_result("logged")
}

/// `prompts/get` of [`PROMPT`]: ask for some context (`user_context`) and
/// return it as the prompt's one user message.
pub(crate) async fn context_prompt(
    context: &RequestContext<RoleServer>,
) -> Result<Vec<PromptMessage>, McpError> {
    let result = ask(context, ELICIT, context_params())
        .await
        .map_err(|e| as_mcp_error(ELICIT, e))?;
    context_messages(&result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peer_errors_pass_through_unchanged() {
        let error = McpError::new(
            rmcp::model::ErrorCode(-32021),
            "missing sampling",
            Some(json!({ "requiredCapabilities": { "sampling": {} } })),
        );
        assert_eq!(
            failed(SAMPLE, ServiceError::McpError(error.clone())),
            Err(error.clone())
        );
        assert_eq!(
            as_mcp_error(SAMPLE, ServiceError::McpError(error.clone())),
            error
        );
        let closed = failed(SAMPLE, ServiceError::TransportClosed);
        assert!(matches!(closed, Ok(result) if result.is_error == Some(true)));
    }
}
