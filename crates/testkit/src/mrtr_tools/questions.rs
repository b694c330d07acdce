//! What the input-asking tools ask and what the answers become, the same in
//! both eras: the params of each `elicitation/create`, `sampling/createMessage`
//! and `roots/list` request (with the `dev.mcpgate/inputKey` hint the
//! session-based path sends; the 2026-07-28 path strips it and uses the key
//! as the `inputRequests` key instead), how an answer is read, the result
//! texts, and the one log message of `test_logging_tool`. Both
//! [`super::legacy`] and [`super::modern`] build on these, so the two eras
//! ask the same questions and answer with the same words.

// Sampling, roots and logging are deprecated in rmcp (SEP-2577) but are what
// legacy servers use to reach the client.
#![allow(deprecated)]

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolResult, ErrorCode, JsonObject, LoggingLevel, LoggingMessageNotificationParam,
        PromptMessage, Role,
    },
    service::{RequestContext, ServiceError},
};
use serde_json::{Value, json};

use super::{META_INPUT_KEY, keys};
use crate::util::{DEFAULT_NAME, error_result, text_result};

pub(super) const ELICIT: &str = "elicitation/create";

pub(super) const SAMPLE: &str = "sampling/createMessage";

pub(super) const ROOTS: &str = "roots/list";

/// `params` (an object) with `_meta[META_INPUT_KEY] = key` added.
pub(super) fn keyed(mut params: Value, key: &str) -> Value {
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
pub(super) fn elicit_params(message: &str, property: &str, kind: &str, key: &str) -> Value {
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
pub(super) fn name_params() -> Value {
    elicit_params("What is your name?", "name", "string", keys::USER_NAME)
}

/// `sampling/createMessage` params with one user text message.
pub(super) fn sample_params(text: &str, max_tokens: u32, key: Option<&str>) -> Value {
    let params = json!({
        "messages": [ { "role": "user", "content": { "type": "text", "text": text } } ],
        "maxTokens": max_tokens
    });
    match key {
        Some(key) => keyed(params, key),
        None => params,
    }
}

pub(super) fn roots_params() -> Value {
    keyed(json!({}), keys::CLIENT_ROOTS)
}

/// How the user answered an elicitation.
#[derive(Debug, PartialEq)]
pub(super) enum Answer<'a> {
    /// `action: "accept"` with this `content` (`null` when absent).
    Accepted(&'a Value),
    /// Any other action (`decline`, `cancel`, or something unknown).
    Refused(&'a str),
}

pub(super) fn answer(result: &Value) -> Answer<'_> {
    static NO_CONTENT: Value = Value::Null;
    match result.get("action").and_then(Value::as_str) {
        Some("accept") => Answer::Accepted(result.get("content").unwrap_or(&NO_CONTENT)),
        Some(action) => Answer::Refused(action),
        None => Answer::Refused("answered without an action"),
    }
}

/// Why an elicitation answer holds no usable value.
#[derive(Debug, PartialEq)]
pub(super) enum Unusable<'a> {
    /// The user did not accept; the action.
    Refused(&'a str),
    /// Accepted, but without this property as a string.
    Missing(&'a str),
}

impl Unusable<'_> {
    /// The tool result reporting it: a refusal is an ordinary answer, a
    /// malformed acceptance an error.
    pub(super) fn into_result(self) -> CallToolResult {
        match self {
            Unusable::Refused(action) => text_result(format!("Elicitation {action}")),
            Unusable::Missing(property) => error_result(format!(
                "elicitation accepted without a string `{property}`"
            )),
        }
    }
}

/// The accepted string `property` of an elicitation answer.
pub(super) fn accepted_string<'a>(
    result: &'a Value,
    property: &'a str,
) -> Result<&'a str, Unusable<'a>> {
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
pub(super) fn sampled_text(result: &Value) -> Option<String> {
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
pub(super) fn root_uris(result: &Value) -> Vec<&str> {
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

pub(super) fn roots_text(result: &Value) -> String {
    let uris = root_uris(result);
    if uris.is_empty() {
        "Roots: (none)".to_owned()
    } else {
        format!("Roots: {}", uris.join(", "))
    }
}

pub(super) fn greeting(result: &Value) -> CallToolResult {
    match accepted_string(result, "name") {
        Ok(name) => text_result(format!("Hello, {name}!")),
        Err(unusable) => unusable.into_result(),
    }
}

pub(super) fn capital_params() -> Value {
    sample_params(
        "What is the capital of France?",
        100,
        Some(keys::CAPITAL_QUESTION),
    )
}

pub(super) fn capital_answer(result: &Value) -> CallToolResult {
    match sampled_text(result) {
        Some(text) => text_result(format!("Answer: {text}")),
        None => error_result("sampling result without text content"),
    }
}

pub(super) fn confirm_params() -> Value {
    elicit_params("Please confirm", "ok", "boolean", keys::CONFIRM)
}

/// `yes` when the confirmation was accepted with `ok: true`, else `no`.
pub(super) fn confirmed_text<'a>(result: &Value, yes: &'a str, no: &'a str) -> &'a str {
    let ok = matches!(answer(result), Answer::Accepted(content)
        if content.get("ok").and_then(Value::as_bool) == Some(true));
    if ok { yes } else { no }
}

pub(super) fn greeting_params() -> Value {
    sample_params("Say hello", 50, Some(keys::GREETING))
}

/// The result of `multiple_inputs` from its three answers.
pub(super) fn multiple_inputs_result(
    name: &Value,
    sampled: &Value,
    roots: &Value,
) -> CallToolResult {
    let name = match accepted_string(name, "name") {
        Ok(name) => format!("Hello, {name}!"),
        Err(unusable) => return unusable.into_result(),
    };
    let sampled = sampled_text(sampled).unwrap_or_else(|| "(no text)".to_owned());
    let roots = roots_text(roots);
    text_result(format!("{name}; greeting: {sampled}; {roots}"))
}

pub(super) fn color_params() -> Value {
    elicit_params(
        "What is your favorite color?",
        "color",
        "string",
        keys::FAVORITE_COLOR,
    )
}

/// One line of the capabilities summary.
pub(super) fn outcome_line(kind: &str, outcome: Result<String, ServiceError>) -> String {
    match outcome {
        Ok(text) => format!("{kind}: ok ({text})"),
        Err(ServiceError::McpError(e)) => {
            format!("{kind}: failed ({}: {})", e.code.0, e.message)
        }
        Err(e) => format!("{kind}: failed ({e})"),
    }
}

pub(super) fn capability_sample_params() -> Value {
    sample_params("Say hello", 50, Some(keys::CAPABILITY_SAMPLE))
}

/// The summary of an elicitation answer: `name=...`, `accepted` or the action.
pub(super) fn elicited_summary(result: &Value) -> String {
    match answer(result) {
        Answer::Accepted(content) => content
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| "accepted".to_owned(), |name| format!("name={name}")),
        Answer::Refused(action) => action.to_owned(),
    }
}

pub(super) fn sampled_summary(result: &Value) -> String {
    sampled_text(result).unwrap_or_else(|| "no text".to_owned())
}

pub(super) fn capabilities_result(
    elicited: Result<String, ServiceError>,
    sampled: Result<String, ServiceError>,
) -> CallToolResult {
    text_result(format!(
        "{}; {}",
        outcome_line("elicitation", elicited),
        outcome_line("sampling", sampled)
    ))
}

/// The unhinted sampling request of `test_missing_capability`.
pub(super) fn missing_capability_params() -> Value {
    sample_params("Say hello", 50, None)
}

pub(super) fn missing_capability_answer(result: &Value) -> CallToolResult {
    text_result(format!(
        "Answer: {}",
        sampled_text(result).unwrap_or_else(|| "(no text)".to_owned())
    ))
}

/// A JSON-RPC -32021 naming the client capability `capability`.
pub(super) fn missing_capability_error(capability: &str) -> McpError {
    McpError::new(
        ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!("the client did not declare the {capability} capability"),
        Some(json!({ "requiredCapabilities": { capability: {} } })),
    )
}

/// The one `notifications/message` of `test_logging_tool`, at `info`.
pub(super) async fn send_log(context: &RequestContext<RoleServer>) {
    let params = LoggingMessageNotificationParam::new(
        LoggingLevel::Info,
        Value::from("test_logging_tool ran"),
    )
    .with_logger(DEFAULT_NAME);
    // A closed peer only means nobody is listening any more.
    let _ = context.peer.notify_logging_message(params).await;
}

pub(super) fn context_params() -> Value {
    elicit_params("Give some context", "context", "string", keys::USER_CONTEXT)
}

/// The prompt's messages for the `user_context` elicitation answer.
pub(super) fn context_messages(result: &Value) -> Result<Vec<PromptMessage>, McpError> {
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
}
