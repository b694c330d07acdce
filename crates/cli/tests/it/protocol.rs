//! Protocol items of issue 14, end to end on a real `mcpgate serve` with the
//! Rust fixture behind it over stdio:
//! - an upstream's own `tools/list_changed` and `prompts/list_changed` (the
//!   fixture's `toggle_lists` changes both lists and announces it) reach an
//!   open 2026-07-28 `subscriptions/listen` stream, tagged with its listen
//!   id, as they reach a session's GET stream (item 11);
//! - readiness (item 12): a gateway whose upstream takes a second to start
//!   answers `/ready` 503 and `/health` `starting` at first; `mcpgate mount
//!   --url` run right away waits for it and mounts it, after which `/ready`
//!   is 200 (`mcpgate call` waits the same way); and when a server never
//!   finishes starting, mount names it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::client::Client;
use crate::common::*;
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The SSE messages a stream carries within `window`, or until one satisfies `done`.
async fn read_until(
    resp: &mut reqwest::Response,
    window: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + window;
    let mut text = String::new();
    loop {
        let (msgs, _) = crate::common::client::parse_body("text/event-stream", &text);
        if done(&msgs) {
            return msgs;
        }
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            _ => return msgs,
        }
    }
}

fn methods(msgs: &[Value]) -> Vec<&str> {
    msgs.iter().filter_map(|m| m["method"].as_str()).collect()
}

fn has_both(msgs: &[Value]) -> bool {
    let m = methods(msgs);
    m.contains(&"notifications/tools/list_changed")
        && m.contains(&"notifications/prompts/list_changed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_list_changed_reaches_modern_listen_streams_as_it_reaches_get_streams() {
    let gw = Gateway::start("protocol-list-changed", &fixture_server("fx", ""));
    list_changes_reach_both_eras(&gw).await;
}

/// The same over HTTP, where the gateway speaks 2026-07-28 to the fixture
/// and hears its list changes on a `subscriptions/listen` stream of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modern_upstreams_list_changed_reaches_modern_listen_streams_and_get_streams() {
    let (_fixture, url) = fixture_http(&[]);
    let gw = Gateway::start(
        "protocol-list-changed-http",
        &format!("[servers.fx]\nurl = {}\n", q(url)),
    );
    list_changes_reach_both_eras(&gw).await;
}

async fn list_changes_reach_both_eras(gw: &Gateway) {
    gw.wait_ready(Duration::from_secs(20));
    let http = http();

    // A 2026-07-28 client listening for both list changes.
    let listen = json!({"jsonrpc": "2.0", "id": 41, "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true, "promptsListChanged": true},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "listener", "version": "1"}}}});
    let mut modern = http
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(listen.to_string())
        .send()
        .await
        .expect("POST subscriptions/listen");
    assert_eq!(modern.status(), 200);
    let ack = read_until(&mut modern, Duration::from_secs(10), |m| !m.is_empty()).await;
    assert_eq!(
        methods(&ack),
        ["notifications/subscriptions/acknowledged"],
        "{ack:?}"
    );

    // A 2025-11-25 session with its standalone GET stream.
    let mut legacy = Client::new(gw);
    legacy.initialize().await;
    let sid = legacy.session.clone().expect("session id");
    let mut get = http
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .expect("GET stream");
    assert_eq!(get.status(), 200);

    // The upstream changes its lists while up, and says so.
    let r = legacy.call("fx__toggle_lists", json!({})).await;
    let health = gw.health();
    assert_eq!(r.text(), "on", "{}", r.body);

    let got = read_until(&mut modern, Duration::from_secs(10), has_both).await;
    assert!(
        has_both(&got),
        "the listen stream did not hear both list changes: {got:?}\n{health}\n{}",
        gw.stderr()
    );
    for m in got.iter().skip(1) {
        assert_eq!(
            m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 41,
            "tagged with the listen request's id: {m}"
        );
    }
    let got = read_until(&mut get, Duration::from_secs(10), has_both).await;
    assert!(
        has_both(&got),
        "the GET stream did not hear both list changes: {got:?}"
    );
    // And the new lists are what clients now see.
    let tools = legacy.all_tool_names().await;
    assert!(tools.iter().any(|t| t == "fx__toggled_tool"), "{tools:?}");
    let prompts = legacy.request("prompts/list", json!({})).await;
    assert!(
        prompts.result()["prompts"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "fx__toggled_prompt")),
        "{}",
        prompts.body
    );
}

/// GET `path` on the gateway: (status, JSON body).
async fn get_json(gw: &Gateway, path: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{}{path}", gw.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status().as_u16();
    let body = r.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `mcpgate mount --url` into a fresh directory: (success, stdout + stderr, out dir).
fn mount(gw: &Gateway, tag: &str) -> (bool, String, TempDir) {
    let work = TempDir::new(tag);
    let out = Command::new(mcpgate_bin())
        .args(["mount", "--url", &gw.url, "--out"])
        .arg(work.0.join("bin"))
        .env("MCPGATE_STATE_DIR", work.0.join("state"))
        .stdin(Stdio::null())
        .output()
        .expect("run mcpgate mount");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_right_after_start_waits_for_a_slow_upstream_and_ready_says_when() {
    // The upstream's process needs a second before it can answer initialize.
    let slow = format!(
        "[servers.fx]\ncommand = \"sh\"\nargs = [\"-c\", {}]\n",
        q(format!("sleep 1; exec {} stdio", fixture_bin().display()))
    );
    let gw = Gateway::start("protocol-ready", &slow);
    let (status, r) = get_json(&gw, "/ready").await;
    assert_eq!(status, 503, "{r}");
    assert_eq!(r["ready"], false, "{r}");
    assert_eq!(r["starting"], json!(["fx"]), "{r}");
    let (_, h) = get_json(&gw, "/health").await;
    assert_eq!(h["status"], "starting", "{h}");
    assert_eq!(h["servers"][0]["status"], "starting", "{h}");

    let (ok, text, work) = mount(&gw, "protocol-mount");
    assert!(ok, "mount failed: {text}\n{}", gw.stderr());
    assert!(text.contains("mounted fx"), "{text}");
    assert!(work.0.join("bin").join("fx").exists(), "{text}");

    let (status, r) = get_json(&gw, "/ready").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(r["starting"], json!([]), "{r}");
    let (_, h) = get_json(&gw, "/health").await;
    assert_eq!(h["status"], "ok", "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_names_the_servers_still_starting_when_nothing_was_mounted() {
    // A server that never answers initialize within its connect timeout.
    let never =
        "[servers.never]\ncommand = \"sleep\"\nargs = [\"60\"]\nconnect_timeout = \"40s\"\n";
    let gw = Gateway::start("protocol-never", never);
    let (ok, text, _work) = mount(&gw, "protocol-never-mount");
    assert!(!ok, "{text}");
    assert!(
        text.contains("nothing mounted")
            && text.contains("still starting")
            && text.contains("never"),
        "mount says which servers were still starting: {text}"
    );
}

#[test]
fn call_right_after_start_waits_for_a_slow_upstream() {
    let slow = format!(
        "[servers.fx]\ncommand = \"sh\"\nargs = [\"-c\", {}]\n",
        q(format!("sleep 1; exec {} stdio", fixture_bin().display()))
    );
    let gw = Gateway::start("protocol-call-ready", &slow);
    let state = TempDir::new("protocol-call-state");
    let out = mcpgate_call(
        &state.0,
        &["--url", &gw.url, "fx", "echo", "--message", "waited"],
    );
    assert!(out.contains("waited"), "{out}");
}
