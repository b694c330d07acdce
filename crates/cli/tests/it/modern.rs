//! 2026-07-28 (stateless) clients on the same `/mcp` endpoint as session-based
//! ones, end to end: a real `mcpgate serve` with `auth = "keys"` and the Rust
//! fixture behind it over stdio, which speaks only 2025-11-25, so every
//! input request below is bridged (MRTR). Checked: the order and exact
//! status/code of each header and `_meta` refusal, `server/discover`,
//! `resultType` and caching hints, the era's 404/405 answers, a full
//! elicitation round trip, refused states (altered, reused, another
//! tenant's), an undeclared capability, logs only with a log level, closing
//! the stream as cancellation (seen in the audit log), and
//! `subscriptions/listen`.

use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::client::{Client, Reply};
use crate::common::*;
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

fn config() -> String {
    format!(
        "auth = \"keys\"\nprefix = \"never\"\n[plans]\npro = \"pro\"\n[tiers.pro]\ntools = [\"*\"]\nprompts = [\"*\"]\nresources = [\"*\"]\n{}",
        fixture_server("fx", "")
    )
}

fn meta(caps: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"}
    })
}

/// A 2026-07-28 request with the headers a conforming client sends, then
/// `headers` applied on top (an empty value removes one).
async fn modern(
    c: &Client,
    id: i64,
    method: &str,
    mut params: Value,
    headers: &[(&str, &str)],
) -> Reply {
    if params.get("_meta").is_none() {
        params["_meta"] = meta(json!({"elicitation": {}, "sampling": {}, "roots": {}}));
    }
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut all: Vec<(&str, &str)> = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if !name.is_empty() {
        all.push(("mcp-name", &name));
    }
    all.extend_from_slice(headers);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    c.post_raw(body.to_string(), &all).await
}

fn assert_refused(r: &Reply, status: u16, code: i64, id: i64, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    let m = r.json();
    assert_eq!(m["error"]["code"], code, "{what}: {}", r.body);
    assert_eq!(
        m["id"], id,
        "{what}: the error must carry the request's id: {}",
        r.body
    );
}

async fn setup(tag: &str) -> (Gateway, Client, Client) {
    let gw = Gateway::start(tag, &config());
    gw.wait_ready(Duration::from_secs(20));
    let a = keyed(&gw, &tenant_with_key(&gw, "acme", "pro", None));
    let b = keyed(&gw, &tenant_with_key(&gw, "beta", "pro", None));
    (gw, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_malformed_modern_request_gets_its_exact_refusal() {
    let (_gw, c, _) = setup("modern-refusals").await;
    let list = json!({});
    // _meta comes first: without it nothing else is judged.
    let r = modern(&c, 1, "tools/list", json!({"_meta": {}}), &[]).await;
    assert_refused(&r, 400, -32602, 1, "no _meta keys");
    let r = modern(
        &c,
        2,
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}),
        &[],
    )
    .await;
    assert_refused(&r, 400, -32602, 2, "no clientCapabilities");
    // Header and _meta disagree: -32020, before asking whether the version is supported.
    let mut m = meta(json!({}));
    m["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
    let r = modern(&c, 3, "tools/list", json!({"_meta": m.clone()}), &[]).await;
    assert_refused(&r, 400, -32020, 3, "header vs _meta version");
    let r = modern(
        &c,
        4,
        "tools/list",
        json!({"_meta": m}),
        &[("mcp-protocol-version", "v999.0.0")],
    )
    .await;
    assert_refused(&r, 400, -32022, 4, "unsupported version");
    let data = &r.json()["error"]["data"];
    assert_eq!(data["requested"], "v999.0.0");
    assert!(
        data["supported"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == MODERN)),
        "{data}"
    );
    let r = modern(&c, 5, "tools/list", list.clone(), &[("mcp-method", "")]).await;
    assert_refused(&r, 400, -32020, 5, "missing Mcp-Method");
    let r = modern(
        &c,
        6,
        "tools/list",
        list.clone(),
        &[("mcp-method", "TOOLS/LIST")],
    )
    .await;
    assert_refused(&r, 400, -32020, 6, "Mcp-Method values are case-sensitive");
    let r = modern(
        &c,
        7,
        "tools/list",
        list.clone(),
        &[("MCP-METHOD", "tools/list")],
    )
    .await;
    assert_eq!(r.status, 200, "header names are not: {}", r.body);
    for (id, gone) in [
        (8, "ping"),
        (9, "initialize"),
        (10, "logging/setLevel"),
        (11, "nope/x"),
    ] {
        let r = modern(&c, id, gone, list.clone(), &[]).await;
        assert_refused(&r, 404, -32601, id, gone);
    }
    let call = json!({"name": "echo", "arguments": {"message": "hi"}});
    let r = modern(&c, 12, "tools/call", call.clone(), &[("mcp-name", "wrong")]).await;
    assert_refused(&r, 400, -32020, 12, "Mcp-Name mismatch");
    let r = modern(&c, 13, "tools/call", call.clone(), &[("mcp-name", "")]).await;
    assert_refused(&r, 400, -32020, 13, "missing Mcp-Name");
    for (id, name) in [(14, "  echo  "), (15, "=?base64?ZWNobw==?=")] {
        let r = modern(&c, id, "tools/call", call.clone(), &[("mcp-name", name)]).await;
        assert_eq!(r.status, 200, "{name:?} names echo: {}", r.body);
        assert_eq!(r.result()["content"][0]["text"], "hi", "{}", r.body);
    }
    // The stateless era has no GET stream and no session to DELETE.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = c
            .send(
                method.clone(),
                "",
                None,
                &[("mcp-protocol-version", MODERN)],
            )
            .await;
        assert_eq!(r.status, 405, "{method}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_and_results_speak_the_modern_era_beside_a_legacy_session() {
    let (_gw, c, _) = setup("modern-results").await;
    let r = modern(&c, 1, "server/discover", json!({}), &[]).await;
    let d = r.result();
    assert!(
        d["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == MODERN) && v.iter().any(|x| x == "2025-11-25")),
        "{d}"
    );
    assert_eq!(d["resultType"], "complete");
    assert!(d["capabilities"]["tools"].is_object(), "{d}");
    assert_eq!(
        d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcpgate"
    );
    let r = modern(&c, 2, "tools/list", json!({}), &[]).await;
    let l = r.result();
    assert_eq!(l["resultType"], "complete");
    assert!(
        l["ttlMs"].as_u64().is_some() && l["cacheScope"] == "private",
        "{l}"
    );
    assert!(l["tools"].as_array().is_some_and(|t| t.len() > 10), "{l}");
    let r = modern(
        &c,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "m"}}),
        &[],
    )
    .await;
    assert_eq!(r.result()["resultType"], "complete");
    // An unknown resource: -32602 with the URI (the 2026-07-28 code), never empty contents.
    let uri = "test://no-such-resource";
    let r = modern(&c, 4, "resources/read", json!({"uri": uri}), &[]).await;
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.body);
    assert_eq!(r.json()["error"]["data"]["uri"], uri, "{}", r.body);
    // A session-based client on the same endpoint is untouched.
    let mut legacy = c;
    legacy.initialize().await;
    let r = legacy.call("echo", json!({"message": "old"})).await;
    assert_eq!(r.text(), "old");
    assert!(r.result().get("resultType").is_none(), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_elicitation_becomes_an_input_round_trip_with_a_guarded_state() {
    let (_gw, a, b) = setup("modern-mrtr").await;
    let call = json!({"name": "test_elicitation", "arguments": {}});
    let ask = |id| modern(&a, id, "tools/call", call.clone(), &[]);
    let r = ask(1).await;
    let first = r.result().clone();
    assert_eq!(first["resultType"], "input_required", "{first}");
    let req = &first["inputRequests"]["elicitation"];
    assert_eq!(req["method"], "elicitation/create", "{first}");
    assert!(req["params"]["requestedSchema"].is_object(), "{first}");
    let state = first["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned();
    let answer = json!({"elicitation": {"action": "accept", "content": {"username": "ann", "email": "a@x"}}});
    let retry = |state: String| {
        let mut p = call.clone();
        p["requestState"] = json!(state);
        p["inputResponses"] = answer.clone();
        p
    };
    // Another tenant cannot use it, nor can an altered one.
    let r = modern(&b, 2, "tools/call", retry(state.clone()), &[]).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    let r = modern(&a, 3, "tools/call", retry(format!("{state}-TAMPERED")), &[]).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    // The owner's retry completes the upstream's waiting call, under the retry's id.
    let r = modern(&a, 4, "tools/call", retry(state.clone()), &[]).await;
    let done = r.response();
    assert_eq!(done["id"], 4, "{}", r.body);
    assert_eq!(done["result"]["resultType"], "complete", "{}", r.body);
    assert!(
        done["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("ann")),
        "{}",
        r.body
    );
    // A state is good once.
    let r = modern(&a, 5, "tools/call", retry(state), &[]).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    // Answers sent up front are used as soon as the upstream asks.
    let mut p = call.clone();
    p["inputResponses"] = answer.clone();
    let r = modern(&a, 6, "tools/call", p, &[]).await;
    assert_eq!(r.result()["resultType"], "complete", "{}", r.body);
    // An answer that is not an object is invalid params (it was dropped
    // unseen), and the state it named is left for a good retry.
    let r = ask(7).await;
    let state = r.result()["requestState"]
        .as_str()
        .expect("state")
        .to_owned();
    let mut p = call.clone();
    p["requestState"] = json!(state);
    p["inputResponses"] = json!({"elicitation": 12345});
    let r = modern(&a, 8, "tools/call", p, &[]).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    let r = modern(&a, 9, "tools/call", retry(state), &[]).await;
    assert_eq!(r.result()["resultType"], "complete", "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_capabilities_and_log_levels_are_respected() {
    let (_gw, c, _) = setup("modern-caps").await;
    // No sampling declared: the upstream's sampling request is refused on the
    // client's behalf, and the tool reports that (it never reaches the client).
    let params =
        json!({"name": "test_sampling", "arguments": {"prompt": "hi"}, "_meta": meta(json!({}))});
    let r = modern(&c, 1, "tools/call", params, &[]).await;
    let res = r.result();
    assert_eq!(res["resultType"], "complete", "{}", r.body);
    assert_eq!(res["isError"], true, "{}", r.body);
    assert!(
        res["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("sampling")),
        "{}",
        r.body
    );
    // Logs reach a modern client only when it names a level.
    let quiet = modern(
        &c,
        2,
        "tools/call",
        json!({"name": "test_tool_with_logging", "arguments": {}, "_meta": meta(json!({}))}),
        &[],
    )
    .await;
    assert!(
        quiet.notifications("notifications/message").is_empty(),
        "{}",
        quiet.body
    );
    let mut m = meta(json!({}));
    m["io.modelcontextprotocol/logLevel"] = json!("debug");
    let loud = modern(
        &c,
        3,
        "tools/call",
        json!({"name": "test_tool_with_logging", "arguments": {}, "_meta": m}),
        &[],
    )
    .await;
    assert!(
        !loud.notifications("notifications/message").is_empty(),
        "{}",
        loud.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_stream_cancels_the_call_upstream() {
    let (gw, _, _) = setup("modern-cancel").await;
    let key = tenant_with_key(&gw, "gamma", "pro", None);
    let mut m = meta(json!({}));
    m["progressToken"] = json!("t1");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 20000}, "_meta": m}});
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut resp = http
        .post(&gw.url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "sleep")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream"),
        "progress makes it a stream"
    );
    let chunk = resp.chunk().await.expect("first event");
    assert!(chunk.is_some_and(|c| String::from_utf8_lossy(&c).contains("notifications/progress")));
    drop(resp);
    // The call is recorded as cancelled long before the 20 s sleep would end.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = audit(&gw, "gamma");
        if let Some(row) = rows
            .iter()
            .find(|r| r["outcome"] != "pending" && r["outcome"] != Value::Null)
        {
            assert_eq!(row["outcome"], "cancelled", "{rows:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cancellation recorded: {rows:#?}\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// Opens a `subscriptions/listen` stream with this filter.
async fn listen(gw: &Gateway, key: &str, id: i64, filter: Value) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": {"notifications": filter, "_meta": meta(json!({}))}});
    let resp = reqwest::Client::new()
        .post(&gw.url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .expect("POST subscriptions/listen");
    assert_eq!(resp.status(), 200);
    resp
}

/// The events a stream carries within `window`, or until it has `enough`.
async fn events(resp: &mut reqwest::Response, window: Duration, enough: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + window;
    let mut text = String::new();
    loop {
        let (msgs, _) = crate::common::client::parse_body("text/event-stream", &text);
        if msgs.len() >= enough {
            return msgs;
        }
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            _ => return msgs,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_listen_acknowledges_filters_and_tags_its_notifications() {
    let (gw, c, _) = setup("modern-listen").await;
    let key = tenant_with_key(&gw, "delta", "pro", None);
    let mut tools = listen(&gw, &key, 77, json!({"toolsListChanged": true})).await;
    let mut prompts = listen(&gw, &key, 78, json!({"promptsListChanged": true})).await;
    for (stream, id, agreed) in [
        (&mut tools, 77, "toolsListChanged"),
        (&mut prompts, 78, "promptsListChanged"),
    ] {
        let ack = events(stream, Duration::from_secs(5), 1).await;
        let ack = ack
            .first()
            .unwrap_or_else(|| panic!("listen {id}: no acknowledgement"));
        assert_eq!(
            ack["method"], "notifications/subscriptions/acknowledged",
            "{ack}"
        );
        assert_eq!(ack["params"]["notifications"][agreed], true, "{ack}");
        assert_eq!(
            ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], id,
            "the tag is the listen request's id: {ack}"
        );
    }
    // The fixture exits: its tools and prompts leave the catalog, then return.
    let r = modern(
        &c,
        1,
        "tools/call",
        json!({"name": "exit", "arguments": {}}),
        &[],
    )
    .await;
    assert!(r.status == 200, "{}", r.body);
    let got = events(&mut tools, Duration::from_secs(10), 1).await;
    assert!(
        !got.is_empty(),
        "no tools/list_changed on the tools stream\n{}",
        gw.stderr()
    );
    for e in &got {
        assert_eq!(
            e["method"], "notifications/tools/list_changed",
            "filter broken: {e}"
        );
        assert_eq!(
            e["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 77,
            "{e}"
        );
    }
    let got = events(&mut prompts, Duration::from_secs(5), 1).await;
    assert!(
        !got.is_empty(),
        "no prompts/list_changed on the prompts stream"
    );
    for e in &got {
        assert_eq!(
            e["method"], "notifications/prompts/list_changed",
            "filter broken: {e}"
        );
        assert_eq!(
            e["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 78,
            "{e}"
        );
    }
}
