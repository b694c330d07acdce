//! `mcpgate-mock-model`: a MOCK model server for tests, never a real model.
//! It speaks just enough of the Anthropic Messages API (`POST /v1/messages`,
//! streamed as SSE or as one JSON body, plus `POST /v1/messages/count_tokens`)
//! to drive a real agent CLI such as Claude Code through one scripted tool
//! round trip, offline:
//!
//! 1. a request whose `tools` offer the scripted tool (`--tool NAME`) and that
//!    carries no result for it yet is answered with a `tool_use` of that tool
//!    (input from `--tool-input`, default `{}`), `stop_reason: "tool_use"`;
//! 2. a request carrying a `tool_result` block for that `tool_use` is answered
//!    with text quoting the result: `MOCK model saw the tool result: TEXT`;
//!    with `--write-file NAME`, it is first answered with a `tool_use` of the
//!    agent's own `Write` tool, writing TEXT to `--workspace`/NAME, and the
//!    quote comes once that write's result arrives (so a run leaves a file);
//! 3. anything else (an agent's side requests, such as a title) gets a short
//!    text answer that names the MOCK, so it can never pass for a real reply.
//!
//! Every request it gets is appended as one JSON line (`{"n", "path", "turn",
//! "body", "headers"}`, the headers being the credentials it was sent) to the `--record` file, and logged to stderr as `MOCK model:
//! request N ...`, so a test can check exactly which turns an agent took. It
//! listens on TCP (`--listen`, port 0 by default) or on a Unix socket
//! (`--unix PATH`), and prints one line to stdout once bound: `MOCK model
//! listening on http://ADDR` or `MOCK model listening on unix:PATH`.
//!
//! The OpenAI Responses API side (`POST /v1/responses`, for Codex) follows
//! the same script in that API's shapes (`mock_model/responses.rs`).
//!
//! This file and `mock_model/` are the whole binary (see `[[bin]]` in
//! Cargo.toml), so they stay out of the testkit library. Exit codes: 0 on Ctrl-C, 1 if it cannot bind
//! or write its record, 2 on a usage error.

use std::{
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::post,
};
use clap::Parser;
use serde_json::{Value, json};

#[path = "mock_model/responses.rs"]
mod responses;

/// A MOCK Anthropic Messages API server for tests: answers the first turn
/// with a `tool_use` of one named tool, and the next with text quoting the
/// tool's result.
#[derive(Debug, Parser)]
#[command(
    name = "mcpgate-mock-model",
    version,
    after_help = "Examples:\n  \
        mcpgate-mock-model --tool mcp__mcpgate__fixture__echo --tool-input '{\"message\":\"hi\"}'\n  \
        mcpgate-mock-model --unix /tmp/model.sock --record /tmp/requests.jsonl\n\n\
        Exit codes: 0 on Ctrl-C, 1 cannot bind or record, 2 usage error."
)]
struct Cli {
    /// The tool the first turn calls, as the agent names it (for Claude Code:
    /// `mcp__SERVER__TOOL`).
    #[arg(long, value_name = "NAME")]
    tool: String,
    /// The JSON object passed as the tool's input.
    #[arg(long, value_name = "JSON", default_value = "{}", value_parser = parse_object)]
    tool_input: Value,
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:0",
        conflicts_with = "unix"
    )]
    listen: SocketAddr,
    /// Listen on this Unix socket instead of TCP (replaced if it exists).
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// Append every request received, one JSON line each, to this file.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// After the tool's result, have the agent write it to this file (with its
    /// `Write` tool) before the final text.
    #[arg(long, value_name = "NAME")]
    write_file: Option<String>,
    /// The agent's working directory, where `--write-file` goes.
    #[arg(long, value_name = "DIR", default_value = "/workspace")]
    workspace: String,
}

fn parse_object(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("the tool input must be a JSON object".to_owned()),
        Err(error) => Err(format!("the tool input is not JSON: {error}")),
    }
}

/// Prefix of every `tool_use` id this MOCK hands out for the scripted tool.
const TOOL_USE_PREFIX: &str = "toolu_mock_";
/// Prefix of the `Write` tool uses (`--write-file`).
const WRITE_PREFIX: &str = "toolu_mockwrite_";

/// Which scripted answer a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// First turn: call the scripted tool.
    ToolUse,
    /// The request carries our tool's result: write it to a file first.
    WriteFile,
    /// The request carries our tool's result (and the write's): quote it.
    QuoteResult,
    /// Anything else: a short text naming the MOCK.
    Aside,
}

impl Turn {
    fn name(self) -> &'static str {
        match self {
            Turn::ToolUse => "tool_use",
            Turn::WriteFile => "write_file",
            Turn::QuoteResult => "quote_result",
            Turn::Aside => "aside",
        }
    }
}

struct Mock {
    tool: String,
    tool_input: Value,
    /// `--write-file`, as the absolute path the agent writes.
    write_path: Option<String>,
    record: Option<std::sync::Mutex<std::fs::File>>,
    requests: AtomicU64,
}

impl Mock {
    /// Appends the request to the record file and logs it; returns its number.
    fn record(&self, path: &str, turn: Option<Turn>, body: &Value) -> u64 {
        self.record_with(path, turn, body, &HeaderMap::new())
    }

    /// As `record`, keeping the credential headers the request carried, so a
    /// test can check which key reached the model (`x-api-key`, `authorization`).
    fn record_with(
        &self,
        path: &str,
        turn: Option<Turn>,
        body: &Value,
        headers: &HeaderMap,
    ) -> u64 {
        let creds: serde_json::Map<String, Value> = ["x-api-key", "authorization"]
            .iter()
            .filter_map(|h| Some((h.to_string(), json!(headers.get(*h)?.to_str().ok()?))))
            .collect();
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let turn = turn.map(Turn::name);
        eprintln!(
            "MOCK model: request {n} POST {path} -> {}",
            turn.unwrap_or("-")
        );
        if let Some(file) = &self.record {
            let line = json!({"n": n, "path": path, "turn": turn, "body": body, "headers": creds});
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = writeln!(file, "{line}").and_then(|()| file.flush()) {
                eprintln!("MOCK model: cannot write the record: {error}");
                std::process::exit(1);
            }
        }
        n
    }
}

/// The text of our tool's result in the request, if it carries one.
fn tool_result_text(body: &Value) -> Option<String> {
    result_text(body, TOOL_USE_PREFIX)
}

/// The text of the last `tool_result` answering one of our ids with `prefix`.
fn result_text(body: &Value, prefix: &str) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
        .filter(|block| {
            block
                .get("tool_use_id")
                .and_then(Value::as_str)
                .is_some_and(|id| {
                    id.starts_with(prefix)
                        && (prefix == WRITE_PREFIX || !id.starts_with(WRITE_PREFIX))
                })
        })
        .map(|block| match block.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .next_back()
}

fn offers_tool(body: &Value, tool: &str) -> bool {
    body.get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| {
            tools
                .iter()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(tool))
        })
}

/// Decides the turn and the content blocks of the answer.
fn script(mock: &Mock, body: &Value, n: u64) -> (Turn, Vec<Value>) {
    if let Some(result) = tool_result_text(body) {
        if let Some(path) = &mock.write_path
            && result_text(body, WRITE_PREFIX).is_none()
        {
            let block = json!({
                "type": "tool_use",
                "id": format!("{WRITE_PREFIX}{n}"),
                "name": "Write",
                "input": {"file_path": path, "content": result},
            });
            return (Turn::WriteFile, vec![block]);
        }
        let text = format!("MOCK model saw the tool result: {result}");
        return (
            Turn::QuoteResult,
            vec![json!({"type": "text", "text": text})],
        );
    }
    if offers_tool(body, &mock.tool) {
        let block = json!({
            "type": "tool_use",
            "id": format!("{TOOL_USE_PREFIX}{n}"),
            "name": mock.tool,
            "input": mock.tool_input,
        });
        return (Turn::ToolUse, vec![block]);
    }
    let text = "MOCK model reply (this server is a test MOCK, not a model)";
    (Turn::Aside, vec![json!({"type": "text", "text": text})])
}

fn approx_tokens(bytes: usize) -> u64 {
    (bytes / 4).max(1) as u64
}

async fn messages(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            mock.record("/v1/messages", None, &Value::Null);
            let message = format!("MOCK model: the body is not JSON: {error}");
            return error_response(StatusCode::BAD_REQUEST, &message);
        }
    };
    let n = mock.requests.load(Ordering::SeqCst) + 1;
    let (turn, blocks) = script(&mock, &request, n);
    mock.record_with("/v1/messages", Some(turn), &request, &headers);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_owned();
    let input_tokens = approx_tokens(body.len());
    let output_tokens = 7 * blocks.len() as u64;
    let stop_reason = if matches!(turn, Turn::ToolUse | Turn::WriteFile) {
        "tool_use"
    } else {
        "end_turn"
    };
    let id = format!("msg_mock_{n}");
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        let message = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        });
        return Json(message).into_response();
    }
    let mut sse = String::new();
    let mut event = |name: &str, data: Value| {
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }}),
    );
    for (index, block) in blocks.iter().enumerate() {
        let (start, delta) = match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let mut start = block.clone();
                start["input"] = json!({});
                let partial = block.get("input").cloned().unwrap_or(json!({})).to_string();
                (
                    start,
                    json!({"type": "input_json_delta", "partial_json": partial}),
                )
            }
            _ => {
                let text = block.get("text").cloned().unwrap_or(json!(""));
                (
                    json!({"type": "text", "text": ""}),
                    json!({"type": "text_delta", "text": text}),
                )
            }
        };
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        "message_delta",
        json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        sse,
    )
        .into_response()
}

async fn count_tokens(State(mock): State<Arc<Mock>>, body: Bytes) -> Response {
    let request = serde_json::from_slice(&body).unwrap_or(Value::Null);
    mock.record("/v1/messages/count_tokens", None, &request);
    Json(json!({"input_tokens": approx_tokens(body.len())})).into_response()
}

async fn not_found(State(mock): State<Arc<Mock>>, uri: Uri) -> Response {
    mock.record(uri.path(), None, &Value::Null);
    let message = format!("MOCK model: no route for {}", uri.path());
    error_response(StatusCode::NOT_FOUND, &message)
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let body =
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
    (status, Json(body)).into_response()
}

fn app(mock: Arc<Mock>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/responses", post(responses::responses))
        .route("/responses", post(responses::responses))
        .fallback(not_found)
        .with_state(mock)
}

fn announce(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

async fn run(cli: Cli) -> std::io::Result<()> {
    let record = match &cli.record {
        Some(path) => Some(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => None,
    };
    let mock = Arc::new(Mock {
        tool: cli.tool,
        tool_input: cli.tool_input,
        write_path: cli
            .write_file
            .as_ref()
            .map(|f| format!("{}/{f}", cli.workspace.trim_end_matches('/'))),
        record,
        requests: AtomicU64::new(0),
    });
    match cli.unix {
        Some(path) => {
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
            let listener = tokio::net::UnixListener::bind(&path)?;
            announce(&format!("MOCK model listening on unix:{}", path.display()))?;
            axum::serve(listener, app(mock)).await
        }
        None => {
            let listener = tokio::net::TcpListener::bind(cli.listen).await?;
            announce(&format!(
                "MOCK model listening on http://{}",
                listener.local_addr()?
            ))?;
            axum::serve(listener, app(mock)).await
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tokio::select! {
        result = run(cli) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("mcpgate-mock-model: {error}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> Mock {
        Mock {
            tool: "mcp__gw__echo".to_owned(),
            tool_input: json!({"message": "hi"}),
            write_path: None,
            record: None,
            requests: AtomicU64::new(0),
        }
    }

    #[test]
    fn with_write_file_the_result_is_written_before_it_is_quoted() {
        let mut m = mock();
        m.write_path = Some("/workspace/out.txt".into());
        let result = |id: &str, text: &str| json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": text}]});
        let after_tool = json!({"messages": [{"role": "user", "content": "go"}, result("toolu_mock_1", "echo: hi")]});
        let (turn, blocks) = script(&m, &after_tool, 2);
        assert_eq!(turn, Turn::WriteFile);
        assert_eq!(blocks[0]["name"], "Write");
        assert_eq!(blocks[0]["input"]["file_path"], "/workspace/out.txt");
        assert_eq!(blocks[0]["input"]["content"], "echo: hi");
        let after_write = json!({"messages": [{"role": "user", "content": "go"},
            result("toolu_mock_1", "echo: hi"), result("toolu_mockwrite_2", "File created")]});
        let (turn, blocks) = script(&m, &after_write, 3);
        assert_eq!(turn, Turn::QuoteResult);
        assert_eq!(
            blocks[0]["text"],
            "MOCK model saw the tool result: echo: hi"
        );
    }

    #[test]
    fn first_turn_calls_the_offered_tool() {
        let body = json!({"tools": [{"name": "Read"}, {"name": "mcp__gw__echo"}],
            "messages": [{"role": "user", "content": "go"}]});
        let (turn, blocks) = script(&mock(), &body, 3);
        assert_eq!(turn, Turn::ToolUse);
        assert_eq!(blocks[0]["name"], "mcp__gw__echo");
        assert_eq!(blocks[0]["id"], "toolu_mock_3");
        assert_eq!(blocks[0]["input"], json!({"message": "hi"}));
    }

    #[test]
    fn second_turn_quotes_the_result() {
        let body = json!({"tools": [{"name": "mcp__gw__echo"}], "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_mock_1"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_1",
                "content": [{"type": "text", "text": "Echo: hi"}]}]},
        ]});
        let (turn, blocks) = script(&mock(), &body, 2);
        assert_eq!(turn, Turn::QuoteResult);
        assert_eq!(
            blocks[0]["text"],
            "MOCK model saw the tool result: Echo: hi"
        );
        let plain = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_mock_9", "content": "plain"}]}]});
        assert_eq!(
            tool_result_text(&plain).as_deref(),
            Some("plain"),
            "a string content is quoted as is"
        );
    }

    #[test]
    fn other_requests_get_an_aside_naming_the_mock() {
        let body = json!({"messages": [{"role": "user", "content": "title?"}]});
        let (turn, blocks) = script(&mock(), &body, 1);
        assert_eq!(turn, Turn::Aside);
        assert!(
            blocks[0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("MOCK"))
        );
        let foreign = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_other", "content": "x"}]}]});
        assert_eq!(tool_result_text(&foreign), None);
    }

    #[test]
    fn tool_input_must_be_an_object() {
        assert!(parse_object("{\"a\":1}").is_ok());
        assert!(parse_object("[1]").is_err());
        assert!(parse_object("nope").is_err());
    }
}
