//! The input-asking tools and prompt of `mcpgate_testkit::mrtr_tools` over the
//! fixture's Streamable HTTP endpoint, driven by stateless 2026-07-28
//! requests: each answers natively with `InputRequiredResult` (the same keys
//! as the legacy path's hints), completes on retry with `inputResponses`, and
//! protects its `requestState`.

mod common;

use std::time::Duration;

use common::{
    CONFIRM_TOOLS, GREETING_TOOLS, accept, missing_capability, name_schema, roots, sampled,
    tool_text,
};
use mcpgate_testkit::serve::{HttpOptions, bind_http};
use serde_json::{Value, json};

const VERSION: &str = "2026-07-28";

struct Fixture {
    url: String,
    http: reqwest::Client,
}

/// A reply: HTTP status and the JSON-RPC response (notifications before it
/// on an SSE stream are collected separately).
struct Reply {
    status: u16,
    response: Value,
    notifications: Vec<Value>,
}

impl Reply {
    fn result(&self) -> &Value {
        assert!(
            self.response.get("error").is_none(),
            "unexpected error: {}",
            self.response
        );
        &self.response["result"]
    }

    fn error(&self) -> &Value {
        assert!(
            self.response.get("error").is_some(),
            "expected an error: {}",
            self.response
        );
        &self.response["error"]
    }

    fn text(&self) -> &str {
        self.result();
        tool_text(&self.response)
    }

    fn state(&self) -> &str {
        self.result()["requestState"]
            .as_str()
            .unwrap_or_else(|| panic!("no requestState: {}", self.response))
    }

    /// The sorted keys of an `InputRequiredResult`'s `inputRequests`.
    fn asked(&self) -> Vec<&str> {
        let result = self.result();
        assert_eq!(result["resultType"], "input_required", "{result}");
        let mut keys: Vec<&str> = result["inputRequests"]
            .as_object()
            .unwrap_or_else(|| panic!("no inputRequests: {result}"))
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }
}

fn all_capabilities() -> Value {
    json!({ "sampling": {}, "elicitation": {}, "roots": {} })
}

fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": capabilities
    })
}

impl Fixture {
    async fn start() -> Self {
        let bound = bind_http(&HttpOptions::default())
            .await
            .expect("bind the fixture");
        let url = bound.url();
        tokio::spawn(bound.run());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Self { url, http }
    }

    /// POST one 2026-07-28 request; `extra` is merged into `params`.
    async fn post(&self, method: &str, name: &str, mut params: Value) -> Reply {
        params["name"] = json!(name);
        if params.get("_meta").is_none() {
            params["_meta"] = meta(all_capabilities());
        }
        let body = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params });
        let response = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", VERSION)
            .header("Mcp-Method", method)
            .header("Mcp-Name", name)
            .body(body.to_string())
            .send()
            .await
            .expect("fixture answered");
        let status = response.status().as_u16();
        let sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = response.text().await.expect("response body");
        let messages: Vec<Value> = if sse {
            text.lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str(data.trim()).ok())
                .collect()
        } else {
            vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))]
        };
        let (responses, notifications): (Vec<Value>, Vec<Value>) = messages
            .into_iter()
            .partition(|message| message.get("id").is_some());
        let [response] = <[Value; 1]>::try_from(responses)
            .unwrap_or_else(|r| panic!("expected one response, got {r:?}"));
        assert_eq!(response["id"], 7, "{response}");
        Reply {
            status,
            response,
            notifications,
        }
    }

    async fn call(&self, tool: &str, params: Value) -> Reply {
        let mut params = params;
        if params.get("arguments").is_none() {
            params["arguments"] = json!({});
        }
        self.post("tools/call", tool, params).await
    }
}

#[tokio::test]
async fn elicitation_round_trip() {
    let fixture = Fixture::start().await;
    for tool in GREETING_TOOLS {
        let first = fixture.call(tool, json!({})).await;
        assert_eq!(first.status, 200);
        assert_eq!(first.asked(), ["user_name"]);
        let request = &first.result()["inputRequests"]["user_name"];
        assert_eq!(request["method"], "elicitation/create");
        assert_eq!(request["params"]["message"], "What is your name?");
        assert_eq!(request["params"]["requestedSchema"], name_schema());
        assert!(
            request["params"].get("_meta").is_none(),
            "no mcpgate key hint on the native request: {request}"
        );
        assert!(first.result().get("requestState").is_none());

        // No requestState needed; unknown extra keys are ignored.
        let done = fixture
            .call(
                tool,
                json!({ "inputResponses": {
                    "user_name": accept(json!({ "name": "Alice" })),
                    "unknown_extra_key": accept(json!({ "foo": "bar" }))
                } }),
            )
            .await;
        assert_eq!(done.text(), "Hello, Alice!");
        assert_eq!(done.result()["resultType"], "complete");
    }
}

#[tokio::test]
async fn missing_or_malformed_answers() {
    let fixture = Fixture::start().await;
    let tool = "test_input_required_result_elicitation";
    for responses in [
        json!({ "wrong_key": accept(json!({ "data": "wrong" })) }),
        json!({ "user_name": 12345 }),
        json!({}),
    ] {
        let reply = fixture
            .call(tool, json!({ "inputResponses": responses }))
            .await;
        assert_eq!(reply.asked(), ["user_name"], "re-asked for {responses}");
    }
    for bad in [json!(null), json!([1]), json!("x")] {
        let reply = fixture.call(tool, json!({ "inputResponses": bad })).await;
        assert_eq!(reply.error()["code"], -32602, "inputResponses {bad}");
    }
    let declined = fixture
        .call(
            tool,
            json!({ "inputResponses": { "user_name": { "action": "decline" } } }),
        )
        .await;
    assert_eq!(declined.text(), "Elicitation decline");
}

#[tokio::test]
async fn sampling_and_roots() {
    let fixture = Fixture::start().await;
    let first = fixture
        .call("test_input_required_result_sampling", json!({}))
        .await;
    assert_eq!(first.asked(), ["capital_question"]);
    let request = &first.result()["inputRequests"]["capital_question"];
    assert_eq!(request["method"], "sampling/createMessage");
    assert_eq!(request["params"]["maxTokens"], 100);
    let done = fixture
        .call(
            "test_input_required_result_sampling",
            json!({ "inputResponses": { "capital_question": sampled("Paris") } }),
        )
        .await;
    assert_eq!(done.text(), "Answer: Paris");

    let first = fixture
        .call("test_input_required_result_list_roots", json!({}))
        .await;
    assert_eq!(first.asked(), ["client_roots"]);
    assert_eq!(
        first.result()["inputRequests"]["client_roots"]["method"],
        "roots/list"
    );
    let done = fixture
        .call(
            "test_input_required_result_list_roots",
            json!({ "inputResponses": { "client_roots": roots() } }),
        )
        .await;
    assert_eq!(done.text(), "Roots: file:///test/root");
}

#[tokio::test]
async fn request_state_is_verified() {
    let fixture = Fixture::start().await;
    for (tool, yes, _) in CONFIRM_TOOLS {
        let first = fixture.call(tool, json!({})).await;
        assert_eq!(first.asked(), ["confirm"]);
        let state = first.state().to_owned();
        assert!(!state.is_empty());
        let confirm = json!({ "confirm": accept(json!({ "ok": true })) });

        let done = fixture
            .call(
                tool,
                json!({ "inputResponses": confirm, "requestState": state }),
            )
            .await;
        assert_eq!(done.text(), yes);

        let tampered = fixture
            .call(
                tool,
                json!({ "inputResponses": confirm, "requestState": format!("{state}-TAMPERED") }),
            )
            .await;
        assert_eq!(tampered.error()["code"], -32602);
    }
    // A state is bound to the tool it was issued for.
    let state = fixture
        .call("test_input_required_result_request_state", json!({}))
        .await
        .state()
        .to_owned();
    let foreign = fixture
        .call(
            "test_input_required_result_tampered_state",
            json!({
                "inputResponses": { "confirm": accept(json!({ "ok": true })) },
                "requestState": state
            }),
        )
        .await;
    assert_eq!(foreign.error()["code"], -32602);
}

#[tokio::test]
async fn multiple_inputs_in_one_result() {
    let fixture = Fixture::start().await;
    let tool = "test_input_required_result_multiple_inputs";
    let first = fixture.call(tool, json!({})).await;
    assert_eq!(first.asked(), ["client_roots", "greeting", "user_name"]);
    let state = first.state().to_owned();
    let answers = json!({
        "user_name": accept(json!({ "name": "Alice" })),
        "greeting": sampled("Hello there!"),
        "client_roots": roots()
    });
    let done = fixture
        .call(
            tool,
            json!({ "inputResponses": answers, "requestState": state }),
        )
        .await;
    assert_eq!(
        done.text(),
        "Hello, Alice!; greeting: Hello there!; Roots: file:///test/root"
    );
}

#[tokio::test]
async fn multi_round_carries_the_name_in_its_state() {
    let fixture = Fixture::start().await;
    let tool = "test_input_required_result_multi_round";
    let first = fixture.call(tool, json!({})).await;
    assert_eq!(first.asked(), ["user_name"]);
    let s1 = first.state().to_owned();

    let second = fixture
        .call(
            tool,
            json!({
                "inputResponses": { "user_name": accept(json!({ "name": "Alice" })) },
                "requestState": s1
            }),
        )
        .await;
    assert_eq!(second.asked(), ["favorite_color"]);
    let s2 = second.state().to_owned();
    assert_ne!(s1, s2);

    let done = fixture
        .call(
            tool,
            json!({
                "inputResponses": { "favorite_color": accept(json!({ "color": "blue" })) },
                "requestState": s2
            }),
        )
        .await;
    assert_eq!(done.text(), "Alice likes blue");
}

#[tokio::test]
async fn capabilities_decide_what_is_asked() {
    let fixture = Fixture::start().await;
    let tool = "test_input_required_result_capabilities";
    let sampling_only = meta(json!({ "sampling": {} }));
    let first = fixture.call(tool, json!({ "_meta": sampling_only })).await;
    assert_eq!(first.asked(), ["capability_sample"]);
    let done = fixture
        .call(
            tool,
            json!({
                "_meta": sampling_only,
                "inputResponses": { "capability_sample": sampled("Hi") }
            }),
        )
        .await;
    assert_eq!(
        done.text(),
        "elicitation: failed (-32021: the client did not declare the elicitation capability); \
         sampling: ok (Hi)"
    );

    let both = fixture.call(tool, json!({})).await;
    assert_eq!(both.asked(), ["capability_sample", "user_name"]);
}

#[tokio::test]
async fn missing_capability_is_refused() {
    let fixture = Fixture::start().await;
    let tool = "test_missing_capability";
    let refused = fixture
        .call(tool, json!({ "_meta": meta(json!({})) }))
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error(), &missing_capability("sampling"));

    let first = fixture.call(tool, json!({})).await;
    assert_eq!(first.asked(), ["sampling"]);
    let done = fixture
        .call(
            tool,
            json!({ "inputResponses": { "sampling": sampled("Hi") } }),
        )
        .await;
    assert_eq!(done.text(), "Answer: Hi");
}

#[tokio::test]
async fn logging_only_when_asked() {
    let fixture = Fixture::start().await;
    let quiet = fixture.call("test_logging_tool", json!({})).await;
    assert_eq!(quiet.text(), "logged");
    assert!(quiet.notifications.is_empty(), "{:?}", quiet.notifications);

    let mut with_level = meta(json!({}));
    with_level["io.modelcontextprotocol/logLevel"] = json!("debug");
    let logged = fixture
        .call("test_logging_tool", json!({ "_meta": with_level }))
        .await;
    assert_eq!(logged.text(), "logged");
    let [log] = logged.notifications.as_slice() else {
        panic!("expected one log: {:?}", logged.notifications);
    };
    assert_eq!(log["method"], "notifications/message");
    assert_eq!(log["params"]["level"], "info");
}

#[tokio::test]
async fn prompt_round_trip() {
    let fixture = Fixture::start().await;
    let prompt = "test_input_required_result_prompt";
    let first = fixture.post("prompts/get", prompt, json!({})).await;
    assert_eq!(first.asked(), ["user_context"]);
    let done = fixture
        .post(
            "prompts/get",
            prompt,
            json!({ "inputResponses": { "user_context": accept(json!({ "context": "test context" })) } }),
        )
        .await;
    assert_eq!(
        done.result()["messages"],
        json!([ { "role": "user", "content": { "type": "text", "text": "Context: test context" } } ])
    );
}
