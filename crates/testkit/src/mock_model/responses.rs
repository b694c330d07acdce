//! The MOCK's OpenAI Responses API side (`POST /v1/responses` and
//! `POST /responses`), for agents such as Codex (`wire_api = "responses"`).
//! The same script as the Messages side, in the Responses API's shapes:
//!
//! 1. a request whose `tools` offer the scripted tool (a `function` tool named
//!    `--tool`) and whose `input` carries no `function_call_output` for it yet
//!    is answered with a `function_call` item of that tool (arguments from
//!    `--tool-input`); a tool inside a `namespace` tool (how Codex offers MCP
//!    tools: namespace `mcp__SERVER`) is named `NAMESPACE__NAME` in `--tool`
//!    and called with `namespace` set;
//! 2. a request carrying a `function_call_output` for that call is answered
//!    with a `message` item quoting the output:
//!    `MOCK model saw the tool result: TEXT`;
//! 3. anything else gets a short text that names the MOCK.
//!
//! Streamed requests get the SSE events a Responses client reads:
//! `response.created`, `response.output_item.added`, `response.output_text.delta`
//! (for text), `response.output_item.done`, and `response.completed` with the
//! response's `usage` (the gateway's model proxy counts it). A non-streamed
//! request gets the whole response object as JSON.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{Mock, Turn, approx_tokens, error_response};

/// Prefix of every `call_id` this MOCK hands out for the scripted tool.
const CALL_PREFIX: &str = "call_mock_";

/// The output of our function call in the request's `input`, if it carries one.
fn call_output(body: &Value) -> Option<String> {
    body.get("input")?
        .as_array()?
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .filter(|item| {
            item.get("call_id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.starts_with(CALL_PREFIX))
        })
        .map(|item| match item.get("output") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .next_back()
}

/// Where the request offers the scripted tool: `Some((None, name))` for a
/// plain `function` tool of that name, `Some((Some(ns), name))` for one inside
/// a `namespace` tool whose `NS__NAME` is the scripted name (Codex offers MCP
/// tools as namespace `mcp__SERVER`).
fn offered(body: &Value, tool: &str) -> Option<(Option<String>, String)> {
    let name = |t: &Value| t.get("name").and_then(Value::as_str).map(str::to_owned);
    for t in body.get("tools")?.as_array()? {
        match t.get("type").and_then(Value::as_str) {
            Some("function") if name(t).as_deref() == Some(tool) => {
                return Some((None, tool.to_owned()));
            }
            Some("namespace") => {
                let ns = name(t)?;
                let inner = t.get("tools").and_then(Value::as_array);
                if let Some(f) = inner
                    .into_iter()
                    .flatten()
                    .filter_map(name)
                    .find(|f| format!("{ns}__{f}") == tool)
                {
                    return Some((Some(ns), f));
                }
            }
            _ => {}
        }
    }
    None
}

fn message_item(n: u64, text: &str) -> Value {
    json!({
        "type": "message", "id": format!("msg_mock_{n}"), "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// Decides the turn and the output item of the answer.
fn script(mock: &Mock, body: &Value, n: u64) -> (Turn, Value) {
    if let Some(output) = call_output(body) {
        let text = format!("MOCK model saw the tool result: {output}");
        return (Turn::QuoteResult, message_item(n, &text));
    }
    if let Some((namespace, name)) = offered(body, &mock.tool) {
        let mut item = json!({
            "type": "function_call", "id": format!("fc_mock_{n}"),
            "call_id": format!("{CALL_PREFIX}{n}"), "name": name,
            "arguments": mock.tool_input.to_string(), "status": "completed",
        });
        if let Some(ns) = namespace {
            item["namespace"] = json!(ns);
        }
        return (Turn::ToolUse, item);
    }
    let text = "MOCK model reply (this server is a test MOCK, not a model)";
    (Turn::Aside, message_item(n, text))
}

/// `POST /v1/responses` (and `/responses`).
pub(super) async fn responses(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            mock.record(uri.path(), None, &Value::Null);
            let message = format!("MOCK model: the body is not JSON: {error}");
            return error_response(StatusCode::BAD_REQUEST, &message);
        }
    };
    let n = mock.requests.load(Ordering::SeqCst) + 1;
    let (turn, item) = script(&mock, &request, n);
    mock.record_with(uri.path(), Some(turn), &request, &headers);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_owned();
    let input_tokens = approx_tokens(body.len());
    let output_tokens = 7;
    let id = format!("resp_mock_{n}");
    let usage = json!({
        "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    });
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "model": model, "status": status,
            "output": output, "usage": usage,
        })
    };
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return Json(response("completed", json!([item]), usage)).into_response();
    }
    let mut sse = String::new();
    let mut seq = 0u64;
    let mut event = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "response.created",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    let mut added = item.clone();
    added["status"] = json!("in_progress");
    if added["type"] == "message" {
        added["content"] = json!([]);
    }
    event(
        "response.output_item.added",
        json!({"output_index": 0, "item": added}),
    );
    if let Some(text) = item["content"][0]["text"].as_str() {
        event(
            "response.output_text.delta",
            json!({"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": text}),
        );
    }
    event(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    event(
        "response.completed",
        json!({"response": response("completed", json!([item]), usage)}),
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        sse,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_our_calls_output() {
        let body = json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "call_mock_1", "name": "t", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_other", "output": "theirs"},
            {"type": "function_call_output", "call_id": "call_mock_1", "output": "ours"},
        ]});
        assert_eq!(call_output(&body).as_deref(), Some("ours"));
        let parts = json!({"input": [{"type": "function_call_output", "call_id": "call_mock_2",
            "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}]});
        assert_eq!(call_output(&parts).as_deref(), Some("a\nb"));
        assert_eq!(call_output(&json!({"input": "plain"})), None);
    }

    #[test]
    fn finds_the_tool_plain_or_in_a_namespace() {
        let plain = json!({"tools": [{"type": "function", "name": "mcp__mcpgate__fx__echo"}]});
        assert_eq!(
            offered(&plain, "mcp__mcpgate__fx__echo"),
            Some((None, "mcp__mcpgate__fx__echo".to_owned()))
        );
        assert_eq!(offered(&plain, "echo"), None);
        let nested = json!({"tools": [{"type": "namespace", "name": "mcp__mcpgate",
            "tools": [{"type": "function", "name": "fx__echo"}]}]});
        assert_eq!(
            offered(&nested, "mcp__mcpgate__fx__echo"),
            Some((Some("mcp__mcpgate".to_owned()), "fx__echo".to_owned()))
        );
        assert_eq!(offered(&nested, "fx__echo"), None);
    }
}
