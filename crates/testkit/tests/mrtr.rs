//! The input-asking tools and prompt of `mcpgate_testkit::mrtr_tools`, driven
//! end to end over an in-memory pipe by a hand-written 2025-11-25 client: the
//! exact wire shape of each server-to-client request (including its
//! `dev.mcpgate/inputKey` hint), how answers become results, and that a
//! client's JSON-RPC error comes back unchanged as the call's error.

mod common;

use std::time::Duration;

use common::{
    CONFIRM_TOOLS, GREETING_TOOLS, accept, missing_capability as missing, name_schema, roots,
    sampled, tool_text,
};
use mcpgate_testkit::{Fixture, mrtr_tools::META_INPUT_KEY};
use rmcp::ServiceExt;
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A line-delimited JSON-RPC client over one end of a duplex pipe.
struct Client {
    lines: Lines<BufReader<ReadHalf<DuplexStream>>>,
    writer: WriteHalf<DuplexStream>,
    next_id: u64,
}

/// What a test's client answers to one server-to-client request.
enum Reply {
    Result(Value),
    Error(Value),
}

/// The outcome of one client request.
struct Exchange {
    /// The final response (`result` or `error`).
    response: Value,
    /// Server-to-client requests seen, in arrival order.
    requests: Vec<Value>,
    /// Notifications seen.
    notifications: Vec<Value>,
}

impl Client {
    async fn start() -> Self {
        let (server_io, client_io) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            if let Ok(running) = Fixture::default().serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let (read, writer) = tokio::io::split(client_io);
        let mut client = Self {
            lines: BufReader::new(read).lines(),
            writer,
            next_id: 1,
        };
        let init = client
            .request(
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": { "sampling": {}, "elicitation": {}, "roots": {} },
                    "clientInfo": { "name": "mrtr-test", "version": "0" }
                }),
                1,
                |_, _| panic!("no server requests during initialize"),
            )
            .await;
        assert!(init.response.get("result").is_some(), "{}", init.response);
        client
            .send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
        client
    }

    async fn send(&mut self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .await
            .expect("write to fixture");
    }

    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(TIMEOUT, self.lines.next_line())
            .await
            .expect("fixture answered in time")
            .expect("read from fixture")
            .expect("fixture still connected");
        serde_json::from_str(&line).expect("fixture sent JSON")
    }

    /// Send `method` and read until its response, answering server requests
    /// with `answer(method, params)`. Requests are held until `hold` of them
    /// are outstanding, so a test can prove they were in flight together.
    async fn request(
        &mut self,
        method: &str,
        params: Value,
        hold: usize,
        answer: impl Fn(&str, &Value) -> Reply,
    ) -> Exchange {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        let mut requests = Vec::new();
        let mut notifications = Vec::new();
        let mut held: Vec<Value> = Vec::new();
        loop {
            let message = self.read().await;
            match (message.get("method"), message.get("id")) {
                (Some(_), Some(_)) => {
                    requests.push(message.clone());
                    held.push(message);
                    if held.len() >= hold {
                        for request in std::mem::take(&mut held) {
                            let method = request["method"].as_str().unwrap_or_default();
                            let reply = match answer(method, &request["params"]) {
                                Reply::Result(result) => {
                                    json!({ "jsonrpc": "2.0", "id": request["id"], "result": result })
                                }
                                Reply::Error(error) => {
                                    json!({ "jsonrpc": "2.0", "id": request["id"], "error": error })
                                }
                            };
                            self.send(&reply).await;
                        }
                    }
                }
                (Some(_), None) => notifications.push(message),
                (None, Some(got)) if *got == json!(id) => {
                    return Exchange {
                        response: message,
                        requests,
                        notifications,
                    };
                }
                _ => panic!("unexpected message {message}"),
            }
        }
    }

    async fn call(
        &mut self,
        tool: &str,
        hold: usize,
        answer: impl Fn(&str, &Value) -> Reply,
    ) -> Exchange {
        self.request(
            "tools/call",
            json!({ "name": tool, "arguments": {} }),
            hold,
            answer,
        )
        .await
    }
}

/// A well-behaved client: accepts every elicitation with `content`, samples
/// "Paris", and has one root.
fn happy(content: Value) -> impl Fn(&str, &Value) -> Reply {
    move |method, _| match method {
        "elicitation/create" => Reply::Result(accept(content.clone())),
        "sampling/createMessage" => Reply::Result(sampled("Paris")),
        "roots/list" => Reply::Result(roots()),
        other => panic!("unexpected server request {other}"),
    }
}

fn key(request: &Value) -> &str {
    request["params"]["_meta"][META_INPUT_KEY]
        .as_str()
        .unwrap_or_default()
}

fn text(exchange: &Exchange) -> &str {
    tool_text(&exchange.response)
}

#[tokio::test]
async fn elicitation_greets_by_name() {
    let mut client = Client::start().await;
    for tool in GREETING_TOOLS {
        let exchange = client
            .call(tool, 1, happy(json!({ "name": "Alice" })))
            .await;
        assert_eq!(text(&exchange), "Hello, Alice!");
        let [request] = exchange.requests.as_slice() else {
            panic!("expected one request, got {:?}", exchange.requests);
        };
        assert_eq!(request["method"], "elicitation/create");
        assert_eq!(key(request), "user_name");
        assert_eq!(request["params"]["message"], "What is your name?");
        assert_eq!(request["params"]["requestedSchema"], name_schema());
    }
}

#[tokio::test]
async fn declined_elicitation_is_reported() {
    let mut client = Client::start().await;
    let exchange = client
        .call("test_input_required_result_elicitation", 1, |_, _| {
            Reply::Result(json!({ "action": "decline" }))
        })
        .await;
    assert_eq!(text(&exchange), "Elicitation decline");
}

#[tokio::test]
async fn sampling_and_roots() {
    let mut client = Client::start().await;
    let exchange = client
        .call("test_input_required_result_sampling", 1, happy(json!({})))
        .await;
    assert_eq!(text(&exchange), "Answer: Paris");
    assert_eq!(key(&exchange.requests[0]), "capital_question");
    assert_eq!(exchange.requests[0]["params"]["maxTokens"], 100);
    assert_eq!(
        exchange.requests[0]["params"]["messages"][0]["content"]["text"],
        "What is the capital of France?"
    );

    let exchange = client
        .call("test_input_required_result_list_roots", 1, happy(json!({})))
        .await;
    assert_eq!(text(&exchange), "Roots: file:///test/root");
    assert_eq!(exchange.requests[0]["method"], "roots/list");
    assert_eq!(key(&exchange.requests[0]), "client_roots");
}

#[tokio::test]
async fn confirmation_tools() {
    let mut client = Client::start().await;
    for (tool, yes, no) in CONFIRM_TOOLS {
        let exchange = client.call(tool, 1, happy(json!({ "ok": true }))).await;
        assert_eq!(text(&exchange), yes);
        assert_eq!(key(&exchange.requests[0]), "confirm");
        assert_eq!(exchange.requests[0]["params"]["message"], "Please confirm");
        let exchange = client.call(tool, 1, happy(json!({ "ok": false }))).await;
        assert_eq!(text(&exchange), no);
    }
}

#[tokio::test]
async fn multiple_inputs_are_in_flight_together() {
    let mut client = Client::start().await;
    // Hold 3: the call only completes if all three requests were sent
    // before any was answered.
    let exchange = client
        .call(
            "test_input_required_result_multiple_inputs",
            3,
            happy(json!({ "name": "Alice" })),
        )
        .await;
    let mut keys: Vec<&str> = exchange.requests.iter().map(key).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["client_roots", "greeting", "user_name"]);
    assert_eq!(
        text(&exchange),
        "Hello, Alice!; greeting: Paris; Roots: file:///test/root"
    );
}

#[tokio::test]
async fn multi_round_asks_twice_in_order() {
    let mut client = Client::start().await;
    let exchange = client
        .call("test_input_required_result_multi_round", 1, |_, params| {
            let content = if params["requestedSchema"]["properties"]
                .get("color")
                .is_some()
            {
                json!({ "color": "blue" })
            } else {
                json!({ "name": "Alice" })
            };
            Reply::Result(accept(content))
        })
        .await;
    let keys: Vec<&str> = exchange.requests.iter().map(key).collect();
    assert_eq!(keys, ["user_name", "favorite_color"]);
    assert_eq!(text(&exchange), "Alice likes blue");
}

#[tokio::test]
async fn capabilities_survives_a_refused_request() {
    let mut client = Client::start().await;
    let exchange = client
        .call("test_input_required_result_capabilities", 2, |method, p| {
            if method == "elicitation/create" {
                Reply::Error(missing("elicitation"))
            } else {
                happy(json!({}))(method, p)
            }
        })
        .await;
    let mut keys: Vec<&str> = exchange.requests.iter().map(key).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["capability_sample", "user_name"]);
    assert_eq!(
        text(&exchange),
        "elicitation: failed (-32021: the client did not declare the elicitation capability); \
         sampling: ok (Paris)"
    );
    assert_ne!(exchange.response["result"]["isError"], true);
}

#[tokio::test]
async fn missing_capability_error_is_passed_through() {
    let mut client = Client::start().await;
    let exchange = client
        .call("test_missing_capability", 1, |_, _| {
            Reply::Error(missing("sampling"))
        })
        .await;
    assert_eq!(exchange.requests[0]["method"], "sampling/createMessage");
    assert_eq!(exchange.response["error"], missing("sampling"));

    let exchange = client
        .call("test_missing_capability", 1, happy(json!({})))
        .await;
    assert_eq!(text(&exchange), "Answer: Paris");
}

#[tokio::test]
async fn elicitation_error_is_passed_through() {
    let mut client = Client::start().await;
    let exchange = client
        .call("test_input_required_result_elicitation", 1, |_, _| {
            Reply::Error(missing("elicitation"))
        })
        .await;
    assert_eq!(exchange.response["error"], missing("elicitation"));
}

#[tokio::test]
async fn logging_tool_logs_once() {
    let mut client = Client::start().await;
    let exchange = client.call("test_logging_tool", 1, happy(json!({}))).await;
    assert_eq!(text(&exchange), "logged");
    let logs: Vec<&Value> = exchange
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 1, "{:?}", exchange.notifications);
    assert_eq!(logs[0]["params"]["level"], "info");
    assert_eq!(logs[0]["params"]["data"], "test_logging_tool ran");
}

#[tokio::test]
async fn header_param_and_listing() {
    let mut client = Client::start().await;
    let exchange = client
        .request(
            "tools/call",
            json!({ "name": "test_header_param", "arguments": { "region": "eu-west" } }),
            1,
            happy(json!({})),
        )
        .await;
    assert_eq!(text(&exchange), "region=eu-west");

    let listed = client
        .request("tools/list", json!({}), 1, happy(json!({})))
        .await;
    let tools = listed.response["result"]["tools"]
        .as_array()
        .expect("tools array");
    let header = tools
        .iter()
        .find(|t| t["name"] == "test_header_param")
        .expect("test_header_param listed");
    assert_eq!(
        header["inputSchema"]["properties"]["region"]["x-mcp-header"],
        "Region"
    );
    for name in mcpgate_testkit::mrtr_tools::TOOLS {
        let tool = tools
            .iter()
            .find(|t| t["name"] == *name)
            .unwrap_or_else(|| panic!("{name} listed"));
        if *name != "test_header_param" {
            assert!(
                tool["inputSchema"]["required"]
                    .as_array()
                    .is_none_or(Vec::is_empty),
                "{name} must not require arguments"
            );
        }
    }
}

#[tokio::test]
async fn prompt_asks_for_context() {
    let mut client = Client::start().await;
    let listed = client
        .request("prompts/list", json!({}), 1, happy(json!({})))
        .await;
    let prompts = listed.response["result"]["prompts"]
        .as_array()
        .expect("prompts array");
    assert!(
        prompts
            .iter()
            .any(|p| p["name"] == "test_input_required_result_prompt")
    );

    let exchange = client
        .request(
            "prompts/get",
            json!({ "name": "test_input_required_result_prompt" }),
            1,
            happy(json!({ "context": "test context" })),
        )
        .await;
    assert_eq!(key(&exchange.requests[0]), "user_context");
    assert_eq!(
        exchange.requests[0]["params"]["message"],
        "Give some context"
    );
    assert_eq!(
        exchange.response["result"]["messages"],
        json!([ { "role": "user", "content": { "type": "text", "text": "Context: test context" } } ])
    );
}
