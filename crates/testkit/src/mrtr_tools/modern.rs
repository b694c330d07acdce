//! The input-asking tools in 2026-07-28 requests, which the fixture's
//! Streamable HTTP endpoint serves statelessly and where rmcp refuses
//! server-to-client requests: each answers natively (SEP-2322). A call
//! without the answers it needs returns `InputRequiredResult` whose
//! `inputRequests` use the same keys and params as the session-based path
//! (minus the hint); the retry's `inputResponses` complete it with the same
//! result texts. An answer that is missing or not an object is asked for
//! again. Tools that need memory across rounds carry it in an HMAC-protected
//! `requestState` (see `request_state.rs`); a tampered state is -32602.

// Logging is deprecated in rmcp (SEP-2577) but is what the scenarios exercise.
#![allow(deprecated)]

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
        GetPromptResponse, GetPromptResult, InputRequest, InputRequests, InputRequiredResult,
        InputResponses, LoggingLevel, ProtocolVersion,
    },
    service::{RequestContext, ServiceError},
};
use serde_json::{Map, Value, json};

use super::{
    META_INPUT_KEY, keys,
    questions::{
        ELICIT, ROOTS, SAMPLE, accepted_string, capabilities_result, capability_sample_params,
        capital_answer, capital_params, color_params, confirm_params, confirmed_text,
        context_messages, context_params, elicited_summary, greeting, greeting_params,
        missing_capability_answer, missing_capability_error, missing_capability_params,
        multiple_inputs_result, name_params, roots_params, roots_text, sampled_summary, send_log,
    },
};
use crate::{
    request_state,
    util::{level_rank, text_result},
};

/// Whether `context`'s request speaks protocol 2026-07-28 or later, where
/// rmcp refuses server-to-client requests and input is gathered with
/// `InputRequiredResult`. [`RequestContext::protocol_version`] prefers the
/// request's own `_meta["io.modelcontextprotocol/protocolVersion"]` over the
/// session's negotiated version, the same order rmcp uses to refuse
/// server-to-client requests.
pub(crate) fn speaks_mrtr(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28)
}

/// The MRTR fields of a (possibly retried) request.
#[derive(Debug, Clone, Copy, Default)]
struct Retry<'a> {
    responses: Option<&'a InputResponses>,
    state: Option<&'a str>,
}

impl<'a> Retry<'a> {
    fn of_call(request: &'a CallToolRequestParams) -> Self {
        Self {
            responses: request.input_responses.as_ref(),
            state: request.request_state.as_deref(),
        }
    }

    fn of_prompt(request: &'a GetPromptRequestParams) -> Self {
        Self {
            responses: request.input_responses.as_ref(),
            state: request.request_state.as_deref(),
        }
    }

    /// The answer under `key` when it is an object; anything else (absent,
    /// `null`, a number...) counts as unanswered and is asked for again.
    /// Keys nobody asked for are ignored.
    fn answer(&self, key: &str) -> Option<&'a Value> {
        self.responses?.get(key).filter(|value| value.is_object())
    }
}

type CallOutcome = Result<CallToolResponse, McpError>;

/// One entry of `inputRequests`: the legacy request's params without the
/// `dev.mcpgate/inputKey` hint (the key is the map's key instead).
fn input_request(
    key: &str,
    method: &str,
    mut params: Value,
) -> Result<(String, InputRequest), McpError> {
    if let Some(object) = params.as_object_mut() {
        let meta_left = object
            .get_mut("_meta")
            .and_then(Value::as_object_mut)
            .map(|meta| {
                meta.remove(META_INPUT_KEY);
                !meta.is_empty()
            });
        if meta_left == Some(false) {
            object.remove("_meta");
        }
    }
    let request =
        serde_json::from_value(json!({ "method": method, "params": params })).map_err(|e| {
            McpError::internal_error(format!("building {method} input request: {e}"), None)
        })?;
    Ok((key.to_owned(), request))
}

/// An `InputRequiredResult` asking for `requests`, with `state` if any.
fn input_required(
    requests: impl IntoIterator<Item = Result<(String, InputRequest), McpError>>,
    state: Option<String>,
) -> Result<InputRequiredResult, McpError> {
    let requests = requests.into_iter().collect::<Result<InputRequests, _>>()?;
    Ok(InputRequiredResult::new(Some(requests), state))
}

fn ask_name() -> Result<(String, InputRequest), McpError> {
    input_request(keys::USER_NAME, ELICIT, name_params())
}

fn ask_confirm() -> Result<(String, InputRequest), McpError> {
    input_request(keys::CONFIRM, ELICIT, confirm_params())
}

fn ask_color() -> Result<(String, InputRequest), McpError> {
    input_request(keys::FAVORITE_COLOR, ELICIT, color_params())
}

/// The key `test_missing_capability`'s unhinted sampling request gets behind
/// mcpgate, used for its native request too.
const MISSING_CAPABILITY_KEY: &str = "sampling";

/// Seal the state of `tool` with these fields.
fn seal(tool: &str, fields: Value) -> String {
    let fields = match fields {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    request_state::seal(tool, fields)
}

/// `tools/call` of one of [`TOOLS`] that asks for input, in a 2026-07-28
/// request, answered with MRTR; `None` for any other tool.
pub(crate) async fn call_tool_natively(
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Option<CallOutcome> {
    let retry = Retry::of_call(request);
    let name = request.name.as_ref();
    let outcome = match name {
        "test_input_required_result_elicitation" | "test_streaming_elicitation" => {
            native_greet_by_name(retry)
        }
        "test_input_required_result_sampling" => native_capital_question(retry),
        "test_input_required_result_list_roots" => native_client_roots(retry),
        "test_input_required_result_request_state" => {
            native_confirm(name, retry, "state-ok", "state-not-ok")
        }
        "test_input_required_result_tampered_state" => {
            native_confirm(name, retry, "tamper-check passed", "tamper-check failed")
        }
        "test_input_required_result_multiple_inputs" => native_multiple_inputs(name, retry),
        "test_input_required_result_multi_round" => native_multi_round(name, retry),
        "test_input_required_result_capabilities" => native_capabilities(context, retry),
        "test_missing_capability" => native_missing_capability(context, retry),
        "test_logging_tool" => Ok(native_logging_tool(context).await.into()),
        // `test_header_param` asks for nothing: the shared path serves both eras.
        _ => return None,
    };
    Some(outcome)
}

fn native_greet_by_name(retry: Retry<'_>) -> CallOutcome {
    Ok(match retry.answer(keys::USER_NAME) {
        Some(result) => greeting(result).into(),
        None => input_required([ask_name()], None)?.into(),
    })
}

fn native_capital_question(retry: Retry<'_>) -> CallOutcome {
    Ok(match retry.answer(keys::CAPITAL_QUESTION) {
        Some(result) => capital_answer(result).into(),
        None => input_required(
            [input_request(
                keys::CAPITAL_QUESTION,
                SAMPLE,
                capital_params(),
            )],
            None,
        )?
        .into(),
    })
}

fn native_client_roots(retry: Retry<'_>) -> CallOutcome {
    Ok(match retry.answer(keys::CLIENT_ROOTS) {
        Some(result) => text_result(roots_text(result)).into(),
        None => input_required(
            [input_request(keys::CLIENT_ROOTS, ROOTS, roots_params())],
            None,
        )?
        .into(),
    })
}

/// `request_state` and `tampered_state`: the first round issues a state; a
/// retry must bring it back intact (else -32602) with the `confirm` answer.
/// A retry without any state starts over.
fn native_confirm(tool: &str, retry: Retry<'_>, yes: &str, no: &str) -> CallOutcome {
    let Some(state) = retry.state else {
        let state = seal(tool, json!({ "step": keys::CONFIRM }));
        return Ok(input_required([ask_confirm()], Some(state))?.into());
    };
    request_state::open(tool, state)?;
    Ok(match retry.answer(keys::CONFIRM) {
        Some(result) => text_result(confirmed_text(result, yes, no)).into(),
        None => input_required([ask_confirm()], Some(state.to_owned()))?.into(),
    })
}

/// `multiple_inputs`: all three requests in one result, with a state; the
/// retry must answer all three (else all three are asked again).
fn native_multiple_inputs(tool: &str, retry: Retry<'_>) -> CallOutcome {
    let ask_all = |state: String| -> CallOutcome {
        Ok(input_required(
            [
                ask_name(),
                input_request(keys::GREETING, SAMPLE, greeting_params()),
                input_request(keys::CLIENT_ROOTS, ROOTS, roots_params()),
            ],
            Some(state),
        )?
        .into())
    };
    let Some(state) = retry.state else {
        return ask_all(seal(tool, json!({ "step": "all" })));
    };
    request_state::open(tool, state)?;
    let (Some(name), Some(sampled), Some(roots)) = (
        retry.answer(keys::USER_NAME),
        retry.answer(keys::GREETING),
        retry.answer(keys::CLIENT_ROOTS),
    ) else {
        return ask_all(state.to_owned());
    };
    Ok(multiple_inputs_result(name, sampled, roots).into())
}

/// `multi_round`: round 1 asks for the name (state step 1); its answer makes
/// round 2 ask for the colour under a new state carrying the name (step 2);
/// round 3 completes.
fn native_multi_round(tool: &str, retry: Retry<'_>) -> CallOutcome {
    let Some(state) = retry.state else {
        let state = seal(tool, json!({ "step": 1 }));
        return Ok(input_required([ask_name()], Some(state))?.into());
    };
    let fields = request_state::open(tool, state)?;
    match fields.get("step").and_then(Value::as_u64) {
        Some(1) => {
            let Some(first) = retry.answer(keys::USER_NAME) else {
                return Ok(input_required([ask_name()], Some(state.to_owned()))?.into());
            };
            match accepted_string(first, "name") {
                Ok(name) => {
                    let next = seal(tool, json!({ "step": 2, "name": name }));
                    Ok(input_required([ask_color()], Some(next))?.into())
                }
                Err(unusable) => Ok(unusable.into_result().into()),
            }
        }
        Some(2) => {
            let Some(name) = fields.get("name").and_then(Value::as_str) else {
                return Err(McpError::invalid_params(
                    "invalid requestState: no name",
                    None,
                ));
            };
            let Some(second) = retry.answer(keys::FAVORITE_COLOR) else {
                return Ok(input_required([ask_color()], Some(state.to_owned()))?.into());
            };
            Ok(match accepted_string(second, "color") {
                Ok(color) => text_result(format!("{name} likes {color}")),
                Err(unusable) => unusable.into_result(),
            }
            .into())
        }
        _ => Err(McpError::invalid_params(
            "invalid requestState: unknown step",
            None,
        )),
    }
}

/// `capabilities`: asks only for what the request's `clientCapabilities`
/// declare; an undeclared one is reported the way the legacy path reports
/// mcpgate's -32021.
fn native_capabilities(context: &RequestContext<RoleServer>, retry: Retry<'_>) -> CallOutcome {
    let declared = context.client_capabilities().unwrap_or_default();
    let elicits = declared.elicitation.is_some();
    let samples = declared.sampling.is_some();
    let elicited = retry.answer(keys::USER_NAME);
    let sampled = retry.answer(keys::CAPABILITY_SAMPLE);
    if (elicits && elicited.is_none()) || (samples && sampled.is_none()) {
        let mut requests = Vec::new();
        if elicits {
            requests.push(ask_name());
        }
        if samples {
            requests.push(input_request(
                keys::CAPABILITY_SAMPLE,
                SAMPLE,
                capability_sample_params(),
            ));
        }
        return Ok(input_required(requests, None)?.into());
    }
    let elicited = match elicited {
        Some(result) if elicits => Ok(elicited_summary(result)),
        _ => Err(ServiceError::McpError(missing_capability_error(
            "elicitation",
        ))),
    };
    let sampled = match sampled {
        Some(result) if samples => Ok(sampled_summary(result)),
        _ => Err(ServiceError::McpError(missing_capability_error("sampling"))),
    };
    Ok(capabilities_result(elicited, sampled).into())
}

/// `test_missing_capability`: -32021 unless the request declares sampling.
fn native_missing_capability(
    context: &RequestContext<RoleServer>,
    retry: Retry<'_>,
) -> CallOutcome {
    let declared = context.client_capabilities().unwrap_or_default();
    if declared.sampling.is_none() {
        return Err(missing_capability_error("sampling"));
    }
    Ok(match retry.answer(MISSING_CAPABILITY_KEY) {
        Some(result) => missing_capability_answer(result).into(),
        None => input_required(
            [input_request(
                MISSING_CAPABILITY_KEY,
                SAMPLE,
                missing_capability_params(),
            )],
            None,
        )?
        .into(),
    })
}

/// `test_logging_tool`: logs only when the request opted in with
/// `_meta["io.modelcontextprotocol/logLevel"]`, and only at or above it.
async fn native_logging_tool(context: &RequestContext<RoleServer>) -> CallToolResult {
    if let Some(level) = context.meta.log_level()
        && level_rank(LoggingLevel::Info) >= level_rank(level)
    {
        send_log(context).await;
    }
    text_result("logged")
}

/// `prompts/get` of [`PROMPT`] in a 2026-07-28 request.
pub(crate) fn context_prompt_natively(
    request: &GetPromptRequestParams,
) -> Result<GetPromptResponse, McpError> {
    let retry = Retry::of_prompt(request);
    Ok(match retry.answer(keys::USER_CONTEXT) {
        Some(result) => GetPromptResult::new(context_messages(result)?).into(),
        None => input_required(
            [input_request(keys::USER_CONTEXT, ELICIT, context_params())],
            None,
        )?
        .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mrtr_tools::questions::sample_params;

    #[test]
    fn native_requests_drop_only_the_hint() {
        let (key, request) =
            input_request(keys::USER_NAME, ELICIT, name_params()).expect("valid request");
        assert_eq!(key, "user_name");
        let wire = serde_json::to_value(&request).expect("serializable");
        assert_eq!(wire["method"], ELICIT);
        assert_eq!(wire["params"]["message"], "What is your name?");
        assert!(wire["params"].get("_meta").is_none(), "{wire}");

        let mut params = sample_params("x", 1, Some("k"));
        params["_meta"]["other"] = json!(1);
        let (_, request) = input_request("k", SAMPLE, params).expect("valid request");
        let wire = serde_json::to_value(&request).expect("serializable");
        assert_eq!(wire["params"]["_meta"], json!({ "other": 1 }));

        let (_, request) =
            input_request(keys::CLIENT_ROOTS, ROOTS, roots_params()).expect("valid request");
        assert_eq!(
            serde_json::to_value(&request).expect("serializable")["method"],
            ROOTS
        );
        assert!(input_request("k", "ping", json!({})).is_err());
    }

    #[test]
    fn retry_answers_must_be_objects() {
        let responses: InputResponses = [
            ("a".to_owned(), json!({ "action": "accept" })),
            ("b".to_owned(), json!(12345)),
            ("c".to_owned(), Value::Null),
        ]
        .into_iter()
        .collect();
        let retry = Retry {
            responses: Some(&responses),
            state: None,
        };
        assert!(retry.answer("a").is_some());
        assert!(retry.answer("b").is_none());
        assert!(retry.answer("c").is_none());
        assert!(retry.answer("d").is_none());
        assert!(Retry::default().answer("a").is_none());
    }
}
