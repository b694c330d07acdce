//! What the gateway passes along unchanged or tells its clients on its own:
//! `_meta` and unknown params reach the upstream byte for byte, and an upstream
//! that comes up after the gateway adds its tools and every client session
//! hears `notifications/tools/list_changed` on its GET stream.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

/// The JSON-RPC message in a response body (JSON, or the last SSE `data:` line).
fn message(resp: &str) -> Value {
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .rfind(|d| !d.trim().is_empty())
        .unwrap_or(body);
    serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {resp}"))
}

fn open_session(url: &str) -> String {
    let (status, r) = curl_post(
        url,
        None,
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"relay-test","version":"1"}}}"#,
    );
    assert_eq!(status, 200, "{r}");
    let sid = session_header(&r);
    let (status, _) = curl_post(
        url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202);
    sid
}

#[test]
fn meta_and_unknown_params_reach_the_upstream_unchanged() {
    let gw = Gateway::start(
        "relay-meta",
        &format!(
            "[servers.fx]\ncommand = {}\nargs = [\"stdio\"]\n",
            q(fixture_bin().display().to_string())
        ),
    );
    gw.wait_ready(Duration::from_secs(20));
    let sid = open_session(&gw.url);
    let meta =
        json!({"vendor.example/trace": "t-1", "nested": {"list": [1, 2.5, "\u{e9}"], "empty": {}}});
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "fx__inspect_meta", "arguments": {}, "_meta": meta, "x-extension": {"keep": true}}});
    let (status, r) = curl_post(&gw.url, Some(&sid), &body.to_string());
    assert_eq!(status, 200, "{r}");
    let got = message(&r);
    assert_eq!(got["result"]["structuredContent"], meta, "{got}");
    // Nested arguments, including unknown keys, arrive unchanged too.
    let args = json!({"text": "t", "extra": {"deep": [null, true, {"k": "v"}]}});
    let body = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "fx__inspect", "arguments": args}});
    let got = message(&curl_post(&gw.url, Some(&sid), &body.to_string()).1);
    assert_eq!(got["result"]["structuredContent"], args);
}

#[test]
fn an_upstream_that_comes_up_late_adds_its_tools_and_clients_hear_list_changed() {
    let port = free_port();
    let gw = Gateway::start(
        "relay-late",
        &format!(
            "[servers.fx]\ncommand = {}\nargs = [\"stdio\"]\n[servers.late]\nurl = \"http://127.0.0.1:{port}/mcp\"\nconnect_timeout = \"1s\"\n",
            q(fixture_bin().display().to_string())
        ),
    );
    // fx comes up; late cannot (nothing listens on its port yet).
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.health()["servers"][0]["status"] != "ready" {
        assert!(Instant::now() < deadline, "fx never came up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let sid = open_session(&gw.url);
    let list = |id: u32| {
        let r = curl_post(
            &gw.url,
            Some(&sid),
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#),
        )
        .1;
        message(&r)["result"]["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(
        !list(1).iter().any(|n| n.starts_with("late__")),
        "late's tools cannot be listed yet"
    );

    // The client's standalone GET stream.
    let stream_file = gw.dir.0.join("get-stream.txt");
    let mut get = Command::new("curl")
        .args([
            "-s",
            "-N",
            "--max-time",
            "60",
            "-H",
            "accept: text/event-stream",
            "-H",
            "mcp-protocol-version: 2025-11-25",
            "-H",
        ])
        .arg(format!("mcp-session-id: {sid}"))
        .arg(&gw.url)
        .stdout(std::fs::File::create(&stream_file).expect("stream file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("curl GET");
    std::thread::sleep(Duration::from_millis(300));

    // Now the late server starts, on the port the gateway keeps retrying.
    let late = Command::new(fixture_bin())
        .args([
            "--name",
            "late-fixture",
            "http",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the late server");
    let _late = Proc { child: late };
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let seen = std::fs::read_to_string(&stream_file).unwrap_or_default();
        if seen.contains("notifications/tools/list_changed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no list_changed on the GET stream; it got:\n{seen}\nhealth: {}",
            gw.health()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = get.kill();
    let _ = get.wait();
    assert!(
        list(2).iter().any(|n| n == "late__echo"),
        "late's tools are listed now"
    );
    let r = curl_post(&gw.url, Some(&sid), r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"late__echo","arguments":{"message":"up"}}}"#).1;
    assert_eq!(message(&r)["result"]["content"][0]["text"], "up");
}
