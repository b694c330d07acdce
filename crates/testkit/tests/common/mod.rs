//! What the two end-to-end tests of the input-asking tools share: the
//! session-based one over an in-memory pipe (`mrtr.rs`) and the 2026-07-28
//! one over HTTP (`http_mrtr.rs`) ask the same questions and expect the same
//! words back, so the client's answers, the expected request shapes and the
//! tool tables are written once here.

use serde_json::{Value, json};

/// The tools that ask for a name (key `user_name`) and greet it.
pub(crate) const GREETING_TOOLS: [&str; 2] = [
    "test_input_required_result_elicitation",
    "test_streaming_elicitation",
];

/// The confirmation tools: (tool, text when confirmed, text otherwise).
pub(crate) const CONFIRM_TOOLS: [(&str, &str, &str); 2] = [
    (
        "test_input_required_result_request_state",
        "state-ok",
        "state-not-ok",
    ),
    (
        "test_input_required_result_tampered_state",
        "tamper-check passed",
        "tamper-check failed",
    ),
];

/// An elicitation answer accepting with `content`.
pub(crate) fn accept(content: Value) -> Value {
    json!({ "action": "accept", "content": content })
}

/// A sampling answer whose one text block is `text`.
pub(crate) fn sampled(text: &str) -> Value {
    json!({
        "role": "assistant",
        "content": { "type": "text", "text": text },
        "model": "test-model"
    })
}

/// A `roots/list` answer with one root.
pub(crate) fn roots() -> Value {
    json!({ "roots": [ { "uri": "file:///test/root", "name": "Test Root" } ] })
}

/// The `requestedSchema` of the "What is your name?" elicitation.
pub(crate) fn name_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "name": { "type": "string" } },
        "required": ["name"]
    })
}

/// The JSON-RPC -32021 error for a client capability that was not declared,
/// as mcpgate sends it and as the fixture's native path answers it.
pub(crate) fn missing_capability(capability: &str) -> Value {
    json!({
        "code": -32021,
        "message": format!("the client did not declare the {capability} capability"),
        "data": { "requiredCapabilities": { capability: {} } }
    })
}

/// The first text block of a JSON-RPC response's tool result.
pub(crate) fn tool_text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result: {response}"))
}
