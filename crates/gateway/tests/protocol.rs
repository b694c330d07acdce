//! Protocol rules of issue 14 checked in process (`router(app).oneshot`, no
//! socket): a 2026-07-28 retry whose `inputResponses` is not an object, or
//! holds an answer that is not one, is invalid params (item 10), and readiness: while an upstream has not been
//! tried once, `/health` says `starting` for it and overall and `/ready`
//! answers 503 with a JSON body (item 12). The app's supervisors are never
//! started here, so its one upstream stays in its first attempt for the
//! whole test; the 200 side of `/ready` is checked end to end in the cli
//! tests (`it/readiness.rs`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mcpgate_gateway::{App, router};
use serde_json::{Value, json};
use tower::ServiceExt as _;

mod common;
use common::TempDir;

/// An app with one configured (never started) stdio server `slow`.
async fn new_app(dir: &TempDir, extra: &str) -> Arc<App> {
    let body =
        format!("listen = \"127.0.0.1:8787\"\n{extra}\n[servers.slow]\ncommand = \"true\"\n");
    common::app(dir, &body).await
}

async fn send(app: &Arc<App>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(app.clone()).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

const MODERN: &str = "2026-07-28";

/// A 2026-07-28 POST of `method` with these params (a conforming `_meta` added).
fn modern(id: i64, method: &str, mut params: Value) -> Request<Body> {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}
    });
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut b = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1:8787")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if !name.is_empty() {
        b = b.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    b.body(Body::from(body.to_string())).expect("request")
}

#[tokio::test]
async fn a_modern_retry_whose_input_responses_is_not_an_object_is_invalid_params() {
    let dir = TempDir::new("input-responses");
    let app = new_app(&dir, "").await;
    for (id, bad) in [
        (1, json!(12345)),
        (2, json!("yes")),
        (3, json!([{"action": "accept"}])),
        (4, Value::Null),
        (5, json!(true)),
        // An object whose answers are not objects: before the fix these were
        // dropped unseen and the call completed as if nothing had been sent.
        (6, json!({"elicitation": 12345})),
        (7, json!({"a": {"action": "accept"}, "b": "yes"})),
        (8, json!({"sampling": null})),
    ] {
        for (method, params) in [
            ("tools/list", json!({"inputResponses": bad.clone()})),
            (
                "tools/call",
                json!({"name": "slow__echo", "arguments": {}, "inputResponses": bad.clone()}),
            ),
            (
                "tools/call",
                json!({"name": "slow__echo", "arguments": {}, "inputResponses": bad.clone(),
                    "requestState": "not-a-state"}),
            ),
        ] {
            let (s, v) = send(&app, modern(id, method, params.clone())).await;
            assert_eq!(
                v["error"]["code"], -32602,
                "{method} with inputResponses = {bad}: {s} {v}"
            );
            assert_eq!(v["id"], id, "{v}");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            assert!(
                msg.contains("inputResponses"),
                "{method} with inputResponses = {bad}: the error names the member: {v}"
            );
        }
    }
    // An object of objects is fine.
    for ok in [json!({}), json!({"elicitation": {"action": "decline"}})] {
        let (_, v) = send(&app, modern(9, "tools/list", json!({"inputResponses": ok}))).await;
        assert!(v["result"]["tools"].is_array(), "{v}");
    }
}

#[tokio::test]
async fn health_says_starting_and_ready_is_503_until_every_upstream_was_tried() {
    let dir = TempDir::new("ready");
    let app = new_app(&dir, "").await;
    let get = |path: &str| {
        Request::get(path)
            .header(header::HOST, "127.0.0.1:8787")
            .body(Body::empty())
            .expect("request")
    };
    let (s, h) = send(&app, get("/health")).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["status"], "starting", "{h}");
    assert_eq!(h["servers"][0]["name"], "slow", "{h}");
    assert_eq!(h["servers"][0]["status"], "starting", "{h}");
    let (s, r) = send(&app, get("/ready")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{r}");
    assert_eq!(r["ready"], false, "{r}");
    assert_eq!(r["status"], "starting", "{r}");
    assert_eq!(r["starting"], json!(["slow"]), "{r}");

    // With keys, an anonymous caller learns only how many are starting.
    let dir = TempDir::new("ready-keys");
    let keyed = new_app(&dir, "auth = \"keys\"").await;
    let (s, r) = send(&keyed, get("/ready")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{r}");
    assert_eq!(r["ready"], false, "{r}");
    assert_eq!(r["starting"], 1, "{r}");
    let (_, h) = send(&keyed, get("/health")).await;
    assert_eq!(h["status"], "starting", "{h}");
}
