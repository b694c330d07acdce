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

// Sampling, roots and logging are deprecated in rmcp (SEP-2577) but are what
// legacy servers use to reach the client.
#![allow(deprecated)]

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ErrorCode, GetPromptRequestParams,
        GetPromptResponse, GetPromptResult, InputRequest, InputRequests, InputRequiredResult,
        InputResponses, JsonObject, LoggingLevel, LoggingMessageNotificationParam, PromptMessage,
        ProtocolVersion, Role,
    },
    service::{RequestContext, ServiceError},
};
use serde_json::{Map, Value, json};

use crate::{
    request_state,
    server::{DEFAULT_NAME, error_result, level_rank, send_peer_request, text_result},
};

/// The `_meta` key naming the `inputRequests` key mcpgate should use for a
/// server-to-client request.
pub const META_INPUT_KEY: &str = "dev.mcpgate/inputKey";

/// Name of the prompt whose `prompts/get` asks for input.
pub const PROMPT: &str = "test_input_required_result_prompt";

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

const ELICIT: &str = "elicitation/create";
const SAMPLE: &str = "sampling/createMessage";
const ROOTS: &str = "roots/list";

type ToolOutcome = Result<CallToolResult, McpError>;

/// `params` (an object) with `_meta[META_INPUT_KEY] = key` added.
fn keyed(mut params: Value, key: &str) -> Value {
    if let Some(object) = params.as_object_mut() {
        let meta = object
            .entry("_meta")
            .or_insert_with(|| Value::Object(JsonObject::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(META_INPUT_KEY.to_owned(), Value::from(key));
        }
    }
    params
}

/// `elicitation/create` params asking for one required property.
fn elicit_params(message: &str, property: &str, kind: &str, key: &str) -> Value {
    keyed(
        json!({
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": { property: { "type": kind } },
                "required": [property]
            }
        }),
        key,
    )
}

/// The "What is your name?" elicitation.
fn name_params() -> Value {
    elicit_params("What is your name?", "name", "string", keys::USER_NAME)
}

/// `sampling/createMessage` params with one user text message.
fn sample_params(text: &str, max_tokens: u32, key: Option<&str>) -> Value {
    let params = json!({
        "messages": [ { "role": "user", "content": { "type": "text", "text": text } } ],
        "maxTokens": max_tokens
    });
    match key {
        Some(key) => keyed(params, key),
        None => params,
    }
}

fn roots_params() -> Value {
    keyed(json!({}), keys::CLIENT_ROOTS)
}

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

/// How the user answered an elicitation.
#[derive(Debug, PartialEq)]
enum Answer<'a> {
    /// `action: "accept"` with this `content` (`null` when absent).
    Accepted(&'a Value),
    /// Any other action (`decline`, `cancel`, or something unknown).
    Refused(&'a str),
}

fn answer(result: &Value) -> Answer<'_> {
    static NO_CONTENT: Value = Value::Null;
    match result.get("action").and_then(Value::as_str) {
        Some("accept") => Answer::Accepted(result.get("content").unwrap_or(&NO_CONTENT)),
        Some(action) => Answer::Refused(action),
        None => Answer::Refused("answered without an action"),
    }
}

/// Why an elicitation answer holds no usable value.
#[derive(Debug, PartialEq)]
enum Unusable<'a> {
    /// The user did not accept; the action.
    Refused(&'a str),
    /// Accepted, but without this property as a string.
    Missing(&'a str),
}

impl Unusable<'_> {
    /// The tool result reporting it: a refusal is an ordinary answer, a
    /// malformed acceptance an error.
    fn into_result(self) -> CallToolResult {
        match self {
            Unusable::Refused(action) => text_result(format!("Elicitation {action}")),
            Unusable::Missing(property) => error_result(format!(
                "elicitation accepted without a string `{property}`"
            )),
        }
    }
}

/// The accepted string `property` of an elicitation answer.
fn accepted_string<'a>(result: &'a Value, property: &'a str) -> Result<&'a str, Unusable<'a>> {
    match answer(result) {
        Answer::Accepted(content) => content
            .get(property)
            .and_then(Value::as_str)
            .ok_or(Unusable::Missing(property)),
        Answer::Refused(action) => Err(Unusable::Refused(action)),
    }
}

/// The text of a sampling answer: `content.text`, or the text blocks of an
/// array `content`, joined.
fn sampled_text(result: &Value) -> Option<String> {
    match result.get("content")? {
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join(" "))
        }
        block => block.get("text").and_then(Value::as_str).map(str::to_owned),
    }
}

/// The URIs of a `roots/list` answer.
fn root_uris(result: &Value) -> Vec<&str> {
    result
        .get("roots")
        .and_then(Value::as_array)
        .map(|roots| {
            roots
                .iter()
                .filter_map(|root| root.get("uri").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

fn roots_text(result: &Value) -> String {
    let uris = root_uris(result);
    if uris.is_empty() {
        "Roots: (none)".to_owned()
    } else {
        format!("Roots: {}", uris.join(", "))
    }
}

fn greeting(result: &Value) -> CallToolResult {
    match accepted_string(result, "name") {
        Ok(name) => text_result(format!("Hello, {name}!")),
        Err(unusable) => unusable.into_result(),
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

fn capital_params() -> Value {
    sample_params(
        "What is the capital of France?",
        100,
        Some(keys::CAPITAL_QUESTION),
    )
}

fn capital_answer(result: &Value) -> CallToolResult {
    match sampled_text(result) {
        Some(text) => text_result(format!("Answer: {text}")),
        None => error_result("sampling result without text content"),
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

fn confirm_params() -> Value {
    elicit_params("Please confirm", "ok", "boolean", keys::CONFIRM)
}

/// `yes` when the confirmation was accepted with `ok: true`, else `no`.
fn confirmed_text<'a>(result: &Value, yes: &'a str, no: &'a str) -> &'a str {
    let ok = matches!(answer(result), Answer::Accepted(content)
        if content.get("ok").and_then(Value::as_bool) == Some(true));
    if ok { yes } else { no }
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

fn greeting_params() -> Value {
    sample_params("Say hello", 50, Some(keys::GREETING))
}

/// The result of `multiple_inputs` from its three answers.
fn multiple_inputs_result(name: &Value, sampled: &Value, roots: &Value) -> CallToolResult {
    let name = match accepted_string(name, "name") {
        Ok(name) => format!("Hello, {name}!"),
        Err(unusable) => return unusable.into_result(),
    };
    let sampled = sampled_text(sampled).unwrap_or_else(|| "(no text)".to_owned());
    let roots = roots_text(roots);
    text_result(format!("{name}; greeting: {sampled}; {roots}"))
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

fn color_params() -> Value {
    elicit_params(
        "What is your favorite color?",
        "color",
        "string",
        keys::FAVORITE_COLOR,
    )
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

/// One line of the capabilities summary.
fn outcome_line(kind: &str, outcome: Result<String, ServiceError>) -> String {
    match outcome {
        Ok(text) => format!("{kind}: ok ({text})"),
        Err(ServiceError::McpError(e)) => {
            format!("{kind}: failed ({}: {})", e.code.0, e.message)
        }
        Err(e) => format!("{kind}: failed ({e})"),
    }
}

fn capability_sample_params() -> Value {
    sample_params("Say hello", 50, Some(keys::CAPABILITY_SAMPLE))
}

/// The summary of an elicitation answer: `name=...`, `accepted` or the action.
fn elicited_summary(result: &Value) -> String {
    match answer(result) {
        Answer::Accepted(content) => content
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| "accepted".to_owned(), |name| format!("name={name}")),
        Answer::Refused(action) => action.to_owned(),
    }
}

fn sampled_summary(result: &Value) -> String {
    sampled_text(result).unwrap_or_else(|| "no text".to_owned())
}

fn capabilities_result(
    elicited: Result<String, ServiceError>,
    sampled: Result<String, ServiceError>,
) -> CallToolResult {
    text_result(format!(
        "{}; {}",
        outcome_line("elicitation", elicited),
        outcome_line("sampling", sampled)
    ))
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

/// The unhinted sampling request of `test_missing_capability`.
fn missing_capability_params() -> Value {
    sample_params("Say hello", 50, None)
}

fn missing_capability_answer(result: &Value) -> CallToolResult {
    text_result(format!(
        "Answer: {}",
        sampled_text(result).unwrap_or_else(|| "(no text)".to_owned())
    ))
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

/// The one `notifications/message` of `test_logging_tool`, at `info`.
async fn send_log(context: &RequestContext<RoleServer>) {
    let params = LoggingMessageNotificationParam::new(
        LoggingLevel::Info,
        Value::from("test_logging_tool ran"),
    )
    .with_logger(DEFAULT_NAME);
    // A closed peer only means nobody is listening any more.
    let _ = context.peer.notify_logging_message(params).await;
}

/// `test_logging_tool`: one `notifications/message` at `info`, whatever the
/// session's log level (filtering is the gateway's job for 2026-07-28 clients).
pub(crate) async fn logging_tool(context: &RequestContext<RoleServer>) -> CallToolResult {
    send_log(context).await;
    text_result("logged")
}

/// `test_header_param`: echoes its `region` argument.
pub(crate) fn header_param(args: &JsonObject) -> CallToolResult {
    match args.get("region").and_then(Value::as_str) {
        Some(region) => text_result(format!("region={region}")),
        None => error_result("argument `region` must be a string"),
    }
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

fn context_params() -> Value {
    elicit_params("Give some context", "context", "string", keys::USER_CONTEXT)
}

/// The prompt's messages for the `user_context` elicitation answer.
fn context_messages(result: &Value) -> Result<Vec<PromptMessage>, McpError> {
    let text = match answer(result) {
        Answer::Accepted(content) => match content.get("context").and_then(Value::as_str) {
            Some(given) => format!("Context: {given}"),
            None => {
                return Err(McpError::invalid_params(
                    "elicitation accepted without a string `context`",
                    None,
                ));
            }
        },
        Answer::Refused(action) => {
            return Err(McpError::invalid_request(
                format!("elicitation {action}: no context for the prompt"),
                None,
            ));
        }
    };
    Ok(vec![PromptMessage::new_text(Role::User, text)])
}

// ---------------------------------------------------------------------------
// 2026-07-28: native multi-round-trip requests (SEP-2322).
// ---------------------------------------------------------------------------

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

/// A JSON-RPC -32021 naming the client capability `capability`.
fn missing_capability_error(capability: &str) -> McpError {
    McpError::new(
        ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!("the client did not declare the {capability} capability"),
        Some(json!({ "requiredCapabilities": { capability: {} } })),
    )
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

    #[test]
    fn keyed_adds_the_hint_and_keeps_other_meta() {
        let params = keyed(json!({ "_meta": { "other": 1 }, "x": true }), "k");
        assert_eq!(
            params,
            json!({ "_meta": { "other": 1, META_INPUT_KEY: "k" }, "x": true })
        );
        assert_eq!(
            roots_params(),
            json!({ "_meta": { META_INPUT_KEY: "client_roots" } })
        );
    }

    #[test]
    fn request_shapes() {
        assert_eq!(
            name_params(),
            json!({
                "message": "What is your name?",
                "requestedSchema": {
                    "type": "object",
                    "properties": { "name": { "type": "string" } },
                    "required": ["name"]
                },
                "_meta": { META_INPUT_KEY: "user_name" }
            })
        );
        assert_eq!(
            sample_params(
                "What is the capital of France?",
                100,
                Some("capital_question")
            ),
            json!({
                "messages": [{
                    "role": "user",
                    "content": { "type": "text", "text": "What is the capital of France?" }
                }],
                "maxTokens": 100,
                "_meta": { META_INPUT_KEY: "capital_question" }
            })
        );
        assert!(sample_params("x", 1, None).get("_meta").is_none());
    }

    #[test]
    fn elicitation_answers() {
        let accepted = json!({ "action": "accept", "content": { "name": "Alice" } });
        assert_eq!(
            answer(&accepted),
            Answer::Accepted(&json!({ "name": "Alice" }))
        );
        assert_eq!(accepted_string(&accepted, "name"), Ok("Alice"));
        assert_eq!(
            accepted_string(&json!({ "action": "decline" }), "name"),
            Err(Unusable::Refused("decline"))
        );
        assert_eq!(
            accepted_string(&json!({ "action": "accept" }), "name"),
            Err(Unusable::Missing("name"))
        );
        assert_eq!(
            Unusable::Refused("decline").into_result(),
            text_result("Elicitation decline")
        );
        assert_eq!(
            Unusable::Missing("name").into_result(),
            error_result("elicitation accepted without a string `name`")
        );
        assert_eq!(
            answer(&json!({})),
            Answer::Refused("answered without an action")
        );
    }

    #[test]
    fn sampling_and_roots_answers() {
        let single = json!({ "role": "assistant", "content": { "type": "text", "text": "Paris" } });
        assert_eq!(sampled_text(&single).as_deref(), Some("Paris"));
        let blocks = json!({ "content": [
            { "type": "text", "text": "a" }, { "type": "image" }, { "type": "text", "text": "b" }
        ] });
        assert_eq!(sampled_text(&blocks).as_deref(), Some("a b"));
        assert_eq!(sampled_text(&json!({ "content": [] })), None);
        assert_eq!(sampled_text(&json!({})), None);

        let roots =
            json!({ "roots": [ { "uri": "file:///a" }, { "name": "x" }, { "uri": "file:///b" } ] });
        assert_eq!(root_uris(&roots), ["file:///a", "file:///b"]);
        assert_eq!(roots_text(&roots), "Roots: file:///a, file:///b");
        assert_eq!(roots_text(&json!({})), "Roots: (none)");
    }

    #[test]
    fn capability_summary_lines() {
        assert_eq!(
            outcome_line("sampling", Ok("Paris".to_owned())),
            "sampling: ok (Paris)"
        );
        let refused = McpError::new(
            rmcp::model::ErrorCode(-32021),
            "no elicitation",
            Some(json!({ "requiredCapabilities": { "elicitation": {} } })),
        );
        assert_eq!(
            outcome_line("elicitation", Err(ServiceError::McpError(refused))),
            "elicitation: failed (-32021: no elicitation)"
        );
    }

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

    #[test]
    fn shared_result_texts() {
        let yes = json!({ "action": "accept", "content": { "ok": true } });
        let no = json!({ "action": "accept", "content": { "ok": false } });
        assert_eq!(confirmed_text(&yes, "y", "n"), "y");
        assert_eq!(confirmed_text(&no, "y", "n"), "n");
        assert_eq!(
            confirmed_text(&json!({ "action": "decline" }), "y", "n"),
            "n"
        );
        let paris = json!({ "content": { "type": "text", "text": "Paris" } });
        assert_eq!(
            multiple_inputs_result(
                &json!({ "action": "accept", "content": { "name": "Alice" } }),
                &paris,
                &json!({ "roots": [] })
            ),
            text_result("Hello, Alice!; greeting: Paris; Roots: (none)")
        );
        assert_eq!(
            multiple_inputs_result(&json!({ "action": "cancel" }), &paris, &json!({})),
            text_result("Elicitation cancel")
        );
        assert_eq!(
            capabilities_result(
                Err(ServiceError::McpError(missing_capability_error(
                    "elicitation"
                ))),
                Ok(sampled_summary(&paris)),
            ),
            text_result(
                "elicitation: failed (-32021: the client did not declare the elicitation \
                 capability); sampling: ok (Paris)"
            )
        );
        assert_eq!(
            missing_capability_error("sampling").data,
            Some(json!({ "requiredCapabilities": { "sampling": {} } }))
        );
        assert!(context_messages(&json!({ "action": "decline" })).is_err());
    }

    #[test]
    fn header_param_echoes_region() {
        let mut args = JsonObject::new();
        assert_eq!(header_param(&args).is_error, Some(true));
        args.insert("region".to_owned(), json!("eu-west"));
        assert_eq!(header_param(&args), text_result("region=eu-west"));
    }
}
