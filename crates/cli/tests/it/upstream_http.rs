//! The gateway's UPSTREAM side: how a real `mcpgate serve` process talks to
//! the MCP servers behind it, observed only from the gateway's own clients
//! (POSTs to /mcp, GET /health, `mcpgate servers`). Streamable HTTP upstreams
//! are the MOCK in `common/mock_upstream.rs`, used only where a behaviour has
//! to be forced (auth refusals, 5xx, SSE framing, cut streams, expired
//! sessions, hangs); the stdio crash test uses the real Rust fixture and the
//! legacy HTTP+SSE test the reference `server-everything`. Timing assertions
//! use wide margins and compare durations with each other, so the file stays
//! reliable on a loaded 2-core machine.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::client::{
    Client, PROTOCOL_VERSION, REQUEST_TIMEOUT, UPSTREAM_UNAVAILABLE, server_health, status_is,
};
use crate::common::mock_upstream::{
    Behaviour, CallMode, MockUpstream, Reject, Seen, expected_result,
};
use crate::common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A `[servers.NAME]` table for a Streamable HTTP server, plus `extra` keys.
fn url_server(name: &str, url: &str, extra: &str) -> String {
    format!("\n[servers.{name}]\nurl = {}\n{extra}\n", q(url))
}

/// Runs `mcpgate ARGS` with extra environment; returns (exit code, stdout, stderr).
fn run_mcpgate(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(mcpgate_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run mcpgate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts the request carried the session the mock issued and the negotiated version.
fn assert_session_headers(r: &Seen, what: &str) {
    let sid = r.header("mcp-session-id").unwrap_or("");
    assert!(
        sid.starts_with("mock-session-"),
        "{what}: no mock session id: {r:?}"
    );
    assert_eq!(
        r.header("mcp-protocol-version"),
        Some(PROTOCOL_VERSION),
        "{what}: {r:?}"
    );
}

/// One line per request the mock saw: arrival time, HTTP method, JSON-RPC method, session, Last-Event-ID, status.
fn summary(seen: &[Seen]) -> String {
    seen.iter()
        .map(|s| {
            format!(
                "  {:>6} ms {} {} session={} last-event-id={} -> {}",
                s.at.as_millis(),
                s.method,
                s.rpc.as_deref().unwrap_or("-"),
                s.header("mcp-session-id").unwrap_or("-"),
                s.header("last-event-id").unwrap_or("-"),
                s.status
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tool_calls(mock: &MockUpstream) -> Vec<Seen> {
    mock.requests()
        .into_iter()
        .filter(|r| r.rpc.as_deref() == Some("tools/call"))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Success over JSON and over SSE
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_sse_upstreams_return_the_exact_result() {
    let js = MockUpstream::start(Behaviour::default());
    let ev = MockUpstream::start(Behaviour {
        sse: true,
        ..Behaviour::default()
    });
    let gw = Gateway::start(
        "up-ok",
        &format!(
            "{}{}",
            url_server("js", &js.url, ""),
            url_server("ev", &ev.url, "")
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;

    let listed = c.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed.result()["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"js__ping_tool") && names.contains(&"ev__ping_tool"),
        "{names:?}"
    );

    let text = "héllo \"wörld\"\n\ttab \\ end";
    for tool in ["js__ping_tool", "ev__ping_tool"] {
        let r = c.call(tool, json!({"text": text})).await;
        assert_eq!(r.result(), &expected_result(text), "{tool}: {}", r.body);
    }

    for (name, mock) in [("js", &js), ("ev", &ev)] {
        let seen = mock.requests();
        let init = seen
            .iter()
            .find(|r| r.rpc.as_deref() == Some("initialize"))
            .unwrap_or_else(|| panic!("{name}: no initialize: {seen:?}"));
        assert!(
            init.header("mcp-session-id").is_none(),
            "{name}: initialize carried a session: {init:?}"
        );
        let accept = init.header("accept").unwrap_or("");
        assert!(
            accept.contains("application/json") && accept.contains("text/event-stream"),
            "{name}: Accept {accept:?}"
        );
        let calls = tool_calls(mock);
        assert_eq!(calls.len(), 1, "{name}: {calls:?}");
        assert_session_headers(&calls[0], name);
        let sent: Value = serde_json::from_str(&calls[0].body).expect("call body");
        assert_eq!(
            sent["params"]["name"], "ping_tool",
            "{name}: unprefixed name upstream"
        );
        assert_eq!(sent["params"]["arguments"]["text"], text, "{name}");
    }
}

// ---------------------------------------------------------------------------
// 2. 401, with and without a challenge, and no token leaks
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_upstreams_are_auth_failed_and_the_token_never_leaks() {
    let token = format!("tok-{}-s3cr3t-XYZ", std::process::id());
    let key = format!("key-{}-priv4te", std::process::id());
    let challenge = r#"Bearer realm="mock", error="invalid_token", error_description="expired""#;
    let with = MockUpstream::start(Behaviour {
        reject: Some(Reject {
            status: 401,
            www_authenticate: Some(challenge.into()),
            body: "mock: unauthorized".into(),
        }),
        ..Behaviour::default()
    });
    let without = MockUpstream::start(Behaviour {
        reject: Some(Reject {
            status: 401,
            www_authenticate: None,
            body: "mock: unauthorized".into(),
        }),
        ..Behaviour::default()
    });
    let good = MockUpstream::start(Behaviour::default());
    let creds = "auth = [{ prefix = \"Bearer \", env = \"MCPGATE_UT_TOKEN\" }]\n\
                 headers = { X-Api-Key = \"${MCPGATE_UT_KEY}\" }";
    let config = format!(
        "{}{}{}",
        url_server("challenged", &with.url, creds),
        url_server("bare", &without.url, creds),
        url_server("good", &good.url, creds)
    );
    let env = [
        ("MCPGATE_UT_TOKEN", token.as_str()),
        ("MCPGATE_UT_KEY", key.as_str()),
        ("RUST_LOG", "debug"),
    ];
    let gw = Gateway::start_with_env("up-401", &config, &env);
    let mut c = Client::new(&gw);
    let h = c
        .wait_health(
            "both 401 servers auth_failed",
            Duration::from_secs(30),
            |h| {
                status_is(h, "challenged", "auth_failed")
                    && status_is(h, "bare", "auth_failed")
                    && status_is(h, "good", "ready")
            },
        )
        .await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    let ch = server_health(&h, "challenged");
    let ch_err = ch["error"].as_str().unwrap_or("");
    assert!(
        ch_err.contains(challenge) && ch_err.contains("401") && ch_err.contains("challenged"),
        "the challenge must be in the error: {h:#}"
    );
    let bare_err = server_health(&h, "bare")["error"].as_str().unwrap_or("");
    assert!(
        bare_err.contains("401") && bare_err.contains("bare"),
        "{h:#}"
    );
    assert!(
        !bare_err.to_ascii_lowercase().contains("www-authenticate") && !bare_err.contains("realm"),
        "no challenge was sent, none may be shown: {bare_err}"
    );
    // The credentials were really sent (so not leaking them means something).
    for (name, mock) in [("challenged", &with), ("bare", &without), ("good", &good)] {
        let seen = mock.requests();
        assert!(!seen.is_empty(), "{name}: never contacted");
        for r in &seen {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {token}").as_str()),
                "{name}"
            );
            assert_eq!(r.header("x-api-key"), Some(key.as_str()), "{name}");
        }
    }
    // The gateway keeps serving the good server.
    c.initialize().await;
    let r = c
        .call("good__ping_tool", json!({"text": "still here"}))
        .await;
    assert_eq!(r.result(), &expected_result("still here"));

    let health_text = h.to_string();
    let config_path = gw.config_path();
    let config_path = config_path.to_str().expect("utf-8 path");
    let (code, probe_out, probe_err) =
        run_mcpgate(&["servers", "--config", config_path, "--json"], &env);
    assert_eq!(
        code,
        Some(1),
        "not every server is ready: {probe_out}\n{probe_err}"
    );
    let probe: Value = serde_json::from_str(&probe_out)
        .unwrap_or_else(|e| panic!("`mcpgate servers --json` is not JSON ({e}): {probe_out}"));
    assert_eq!(
        server_health(&probe, "challenged")["status"],
        "auth_failed",
        "{probe:#}"
    );
    assert_eq!(
        server_health(&probe, "bare")["status"],
        "auth_failed",
        "{probe:#}"
    );
    assert!(
        server_health(&probe, "challenged")["error"]
            .as_str()
            .is_some_and(|e| e.contains(challenge)),
        "{probe:#}"
    );
    let (_, url_out, url_err) = run_mcpgate(&["servers", "--url", &gw.base, "--json"], &[]);
    let (_, table_out, table_err) = run_mcpgate(&["servers", "--config", config_path], &env);
    let stderr = gw.stderr();
    for (what, text) in [
        ("/health", health_text.as_str()),
        (
            "`mcpgate servers --config --json` stdout",
            probe_out.as_str(),
        ),
        (
            "`mcpgate servers --config --json` stderr",
            probe_err.as_str(),
        ),
        ("`mcpgate servers --url --json` stdout", url_out.as_str()),
        ("`mcpgate servers --url --json` stderr", url_err.as_str()),
        ("`mcpgate servers --config` stdout", table_out.as_str()),
        ("`mcpgate servers --config` stderr", table_err.as_str()),
        ("gateway stderr (RUST_LOG=debug)", stderr.as_str()),
    ] {
        for secret in [&token, &key] {
            assert!(
                !text.contains(secret.as_str()),
                "{what} leaks a configured secret ({secret}):\n{text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 3. 500 and 502
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_and_502_are_protocol_errors_and_the_rest_keeps_serving() {
    let reject = |status: u16, body: &str| {
        MockUpstream::start(Behaviour {
            reject: Some(Reject {
                status,
                www_authenticate: None,
                body: body.into(),
            }),
            ..Behaviour::default()
        })
    };
    let e500 = reject(500, "mock: internal failure");
    let e502 = reject(502, "<html><body>502 Bad Gateway</body></html>");
    let good = MockUpstream::start(Behaviour::default());
    let gw = Gateway::start(
        "up-5xx",
        &format!(
            "{}{}{}",
            url_server("e500", &e500.url, ""),
            url_server("e502", &e502.url, ""),
            url_server("good", &good.url, "")
        ),
    );
    let mut c = Client::new(&gw);
    let h = c
        .wait_health("5xx servers protocol_error", Duration::from_secs(30), |h| {
            status_is(h, "e500", "protocol_error")
                && status_is(h, "e502", "protocol_error")
                && status_is(h, "good", "ready")
        })
        .await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    for (name, code) in [("e500", "500"), ("e502", "502")] {
        let s = server_health(&h, name);
        let err = s["error"].as_str().unwrap_or("");
        assert!(err.contains(code) && err.contains(name), "{h:#}");
        assert_eq!(s["tools"], 0, "{h:#}");
    }
    c.initialize().await;
    for i in 0..3 {
        let text = format!("ok {i}");
        let r = c.call("good__ping_tool", json!({"text": text})).await;
        assert_eq!(r.result(), &expected_result(&text));
    }
    // It keeps retrying the broken ones (backoff), and keeps reporting them.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        e500.rpc_count("server/discover") + e500.rpc_count("initialize") >= 2,
        "{:?}",
        e500.requests()
    );
    let h = c.health().await;
    assert!(status_is(&h, "e500", "protocol_error") && status_is(&h, "e502", "protocol_error"));
}

// ---------------------------------------------------------------------------
// 4. SSE framing and resumption
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_sse_framing_still_yields_the_exact_result() {
    let mock = MockUpstream::start(Behaviour {
        sse: true,
        call: CallMode::TrickySse,
        ..Behaviour::default()
    });
    let gw = Gateway::start("up-sse", &url_server("sse", &mock.url, ""));
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    for text in ["first", "multi\nline \"quoted\" é"] {
        let r = c.call("sse__ping_tool", json!({"text": text})).await;
        assert_eq!(r.result(), &expected_result(text), "{}", r.body);
    }
}

/// A call whose SSE stream ends (cleanly, or by a cut connection) after an
/// event id and before the result: the gateway must resume with GET and
/// `Last-Event-ID` of the last event, on the same session, and return the result.
async fn assert_resumed(mode: CallMode, tag: &str) {
    let mock = MockUpstream::start(Behaviour {
        sse: true,
        call: mode,
        ..Behaviour::default()
    });
    let gw = Gateway::start(tag, &url_server("cut", &mock.url, ""));
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    let t = Instant::now();
    let r = c.call("cut__ping_tool", json!({"text": "resumed"})).await;
    let took = t.elapsed();
    let seen = mock.requests();
    assert!(
        r.has_result(),
        "{mode:?}: the call failed instead of being resumed: {}\nmock saw:\n{}",
        r.body,
        summary(&seen)
    );
    assert_eq!(r.result(), &expected_result("resumed"), "{mode:?}");
    let call = seen
        .iter()
        .find(|s| s.rpc.as_deref() == Some("tools/call"))
        .expect("the call reached the mock");
    let resumes: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == "GET" && s.header("last-event-id").is_some())
        .collect();
    assert_eq!(resumes.len(), 1, "{mode:?}: one resuming GET: {seen:#?}");
    let last = resumes[0].header("last-event-id").unwrap_or("");
    assert!(
        last.starts_with("cut") && last.ends_with("-1"),
        "{mode:?}: Last-Event-ID must be the last id sent (cutN-1), got {last:?}"
    );
    assert_eq!(
        resumes[0].header("mcp-session-id"),
        call.header("mcp-session-id"),
        "{mode:?}: resumed on another session"
    );
    assert!(
        resumes[0]
            .header("accept")
            .is_some_and(|a| a.contains("text/event-stream")),
        "{mode:?}: {:?}",
        resumes[0]
    );
    assert_eq!(resumes[0].status, 200, "{mode:?}");
    assert!(took < Duration::from_secs(10), "{mode:?}: took {took:?}");
    assert_eq!(
        mock.rpc_count("tools/call"),
        1,
        "{mode:?}: the call was re-sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_ended_mid_call_is_resumed_with_last_event_id() {
    assert_resumed(CallMode::CutThenResume, "up-cut").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_connection_cut_mid_call_is_resumed_with_last_event_id() {
    assert_resumed(CallMode::AbortThenResume, "up-abort").await;
}

// ---------------------------------------------------------------------------
// 5. Credential injection
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_credentials_are_injected_and_client_credentials_are_not() {
    let token = format!("upstream-token-{}", std::process::id());
    let custom = format!("custom-value-{}", std::process::id());
    let mock = MockUpstream::start(Behaviour::default());
    let gw = Gateway::start_with_env(
        "up-creds",
        &url_server(
            "creds",
            &mock.url,
            "auth = [{ prefix = \"Bearer \", env = \"MCPGATE_UT_TOKEN\" }]\n\
             headers = { X-Custom = \"${MCPGATE_UT_CUSTOM}\" }",
        ),
        &[
            ("MCPGATE_UT_TOKEN", token.as_str()),
            ("MCPGATE_UT_CUSTOM", custom.as_str()),
        ],
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::with_headers(
        &gw,
        &[
            ("authorization", "Bearer client-secret"),
            ("cookie", "session=client-secret-cookie"),
        ],
    );
    c.initialize().await;
    let r = c
        .call("creds__ping_tool", json!({"text": "with creds"}))
        .await;
    assert_eq!(r.result(), &expected_result("with creds"));

    let seen = mock.requests();
    assert!(
        seen.iter().any(|s| s.rpc.as_deref() == Some("initialize"))
            && seen.iter().any(|s| s.rpc.as_deref() == Some("tools/call")),
        "{seen:#?}"
    );
    let expected_auth = format!("Bearer {token}");
    for s in &seen {
        let what = format!("{} {:?}", s.method, s.rpc);
        assert_eq!(
            s.header_all("authorization"),
            vec![expected_auth.as_str()],
            "{what}"
        );
        assert_eq!(s.header_all("x-custom"), vec![custom.as_str()], "{what}");
        for (k, v) in &s.headers {
            assert!(
                !v.contains("client-secret"),
                "{what}: the client's credential reached the upstream in {k}: {v}"
            );
        }
        assert!(
            s.header("cookie").is_none(),
            "{what}: client cookie forwarded"
        );
        assert!(!s.body.contains("client-secret"), "{what}: {}", s.body);
    }
}

// ---------------------------------------------------------------------------
// 6. Session expiry
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upstream_session_is_reinitialized_transparently() {
    let mock = MockUpstream::start(Behaviour::default());
    // A short timeout, so that a re-initialize that never completes shows up
    // as the gateway's own answer rather than as this client's HTTP timeout.
    let gw = Gateway::start(
        "up-expire",
        &url_server("exp", &mock.url, "timeout = \"5s\""),
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    let r = c.call("exp__ping_tool", json!({"text": "before"})).await;
    assert_eq!(r.result(), &expected_result("before"));
    assert_eq!(mock.rpc_count("initialize"), 1);

    mock.expire_sessions();
    let r = c.call("exp__ping_tool", json!({"text": "after"})).await;
    let seen = mock.requests();
    assert!(
        r.has_result(),
        "the call after the upstream forgot the session failed: {}\nmock saw:\n{}",
        r.body,
        summary(&seen)
    );
    assert_eq!(r.result(), &expected_result("after"));
    assert_eq!(mock.rpc_count("initialize"), 2, "{seen:#?}");
    let calls = tool_calls(&mock);
    assert_eq!(
        calls.len(),
        3,
        "first call, rejected call, retried call: {calls:#?}"
    );
    assert_eq!(calls[1].status, 404, "{calls:#?}");
    assert_eq!(calls[2].status, 200, "{calls:#?}");
    let old = calls[1].header("mcp-session-id");
    let new = calls[2].header("mcp-session-id");
    assert!(
        new.is_some() && new != old,
        "retried on the expired session: {calls:#?}"
    );
    // The new session was initialized properly before the retry.
    let pos = |pred: &dyn Fn(&Seen) -> bool| seen.iter().rposition(pred);
    let second_init = pos(&|s| s.rpc.as_deref() == Some("initialize")).expect("init");
    let initialized = pos(&|s| s.rpc.as_deref() == Some("notifications/initialized"))
        .expect("notifications/initialized");
    let retry = pos(&|s| s.rpc.as_deref() == Some("tools/call")).expect("call");
    assert!(
        second_init < initialized && initialized < retry,
        "re-initialize order: {seen:#?}"
    );
    assert_eq!(seen[initialized].header("mcp-session-id"), new);
    // Transparent: the connection was not torn down and restarted.
    let h = c.health().await;
    assert!(status_is(&h, "exp", "ready"), "{h:#}");
    assert_eq!(server_health(&h, "exp")["restarts"], 0, "{h:#}");
    let r = c.call("exp__ping_tool", json!({"text": "again"})).await;
    assert_eq!(r.result(), &expected_result("again"));
}

// ---------------------------------------------------------------------------
// 7. A stdio server killed with SIGKILL mid-call
// ---------------------------------------------------------------------------

/// The child processes of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    if out.is_empty() {
        let o = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .expect("pgrep");
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|x| x.parse::<u32>().ok()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_server_killed_mid_call_fails_the_call_fast_then_restarts() {
    let gw = Gateway::start(
        "up-kill",
        &fixture_server("fixture", "breaker_failures = 0"),
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    let r = c.call("fixture__echo", json!({"message": "before"})).await;
    assert_eq!(r.result()["content"][0]["text"], "before", "{}", r.body);
    let c = Arc::new(c);

    let sleeper = {
        let c = c.clone();
        tokio::spawn(async move {
            let r = c.call("fixture__sleep", json!({"ms": 10000})).await;
            (r, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let gw_pid = gw.proc.child.id();
    let fixtures: Vec<u32> = children_of(gw_pid)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("mcpgate-fixture"))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(
        fixtures.len(),
        1,
        "the gateway's fixture child: {fixtures:?}"
    );
    assert!(!sleeper.is_finished(), "the 10 s sleep ended early");
    let killed_at = Instant::now();
    let st = Command::new("kill")
        .args(["-9", &fixtures[0].to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let (r, done) = sleeper.await.expect("sleeper");
    let after_kill = done - killed_at;
    r.assert_rpc_error("fixture__sleep", UPSTREAM_UNAVAILABLE, &["fixture"]);
    assert!(
        after_kill < Duration::from_secs(3),
        "the call failed {after_kill:?} after the kill (the sleep was 10 s)"
    );

    let h = c
        .wait_health("fixture restarted", Duration::from_secs(30), |h| {
            status_is(h, "fixture", "ready")
                && server_health(h, "fixture")["restarts"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 1
        })
        .await;
    assert_eq!(h["status"], "ok", "{h:#}");
    let r = c.call("fixture__echo", json!({"message": "after"})).await;
    assert_eq!(r.result()["content"][0]["text"], "after", "{}", r.body);
}

// ---------------------------------------------------------------------------
// 8. A hung upstream
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_upstream_times_out_while_another_upstream_answers() {
    let hung = MockUpstream::start(Behaviour::default());
    let other = MockUpstream::start(Behaviour::default());
    let gw = Gateway::start(
        "up-hung",
        &format!(
            "{}{}",
            url_server("hung", &hung.url, "timeout = \"1s\""),
            url_server("other", &other.url, "")
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    let c = Arc::new(c);

    let start = Instant::now();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move {
            let r = c
                .call("hung__ping_tool", json!({"text": "never", "hang": true}))
                .await;
            (r, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let other_start = start.elapsed();
    let r = c.call("other__ping_tool", json!({"text": "prompt"})).await;
    let other_done = start.elapsed();
    assert_eq!(r.result(), &expected_result("prompt"));
    let (slow, slow_done) = slow.await.expect("slow task");

    slow.assert_rpc_error("hung__ping_tool", REQUEST_TIMEOUT, &["hung"]);
    assert!(
        slow_done >= Duration::from_millis(900) && slow_done < Duration::from_secs(6),
        "a 1 s timeout fired after {slow_done:?}"
    );
    let other_took = other_done - other_start;
    assert!(
        other_done < slow_done && other_took * 3 < slow_done,
        "the other server's call ({other_took:?}, done at {other_done:?}) waited behind \
         the hung one (done at {slow_done:?})"
    );
    // The hung server was told to stop, and still serves other calls.
    let r = c.call("hung__ping_tool", json!({"text": "fine"})).await;
    assert_eq!(r.result(), &expected_result("fine"));
    let cancelled = hung.rpc_count("notifications/cancelled");
    assert!(
        cancelled >= 1,
        "no notifications/cancelled: {:#?}",
        hung.requests()
    );
}

// ---------------------------------------------------------------------------
// 9. Circuit breaker
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_after_consecutive_http_failures() {
    let mock = MockUpstream::start(Behaviour {
        call: CallMode::Status(500),
        ..Behaviour::default()
    });
    let gw = Gateway::start(
        "up-breaker",
        &url_server(
            "flaky",
            &mock.url,
            "breaker_failures = 2\nbreaker_cooldown = \"60s\"",
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    for i in 1..=2 {
        let r = c.call("flaky__ping_tool", json!({"text": "x"})).await;
        r.assert_rpc_error(
            &format!("call {i}"),
            UPSTREAM_UNAVAILABLE,
            &["500", "flaky"],
        );
    }
    assert_eq!(mock.rpc_count("tools/call"), 2);
    let t = Instant::now();
    let r = c.call("flaky__ping_tool", json!({"text": "x"})).await;
    let took = t.elapsed();
    r.assert_rpc_error("call 3", UPSTREAM_UNAVAILABLE, &["circuit open", "flaky"]);
    assert!(took < Duration::from_secs(2), "failing fast took {took:?}");
    assert_eq!(
        mock.rpc_count("tools/call"),
        2,
        "an open breaker must not reach the server"
    );
    let h = c.health().await;
    assert_eq!(server_health(&h, "flaky")["breaker_open"], true, "{h:#}");
}

// ---------------------------------------------------------------------------
// 10. Legacy HTTP+SSE (server-everything in `sse` mode)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Node 22 and server-everything from tests/interop (scripts/test.sh runs it)"]
async fn legacy_http_sse_upstream_serves_echo() {
    let (_server, port) = server_everything("sse");
    let gw = Gateway::start(
        "up-legacy",
        &url_server(
            "everything",
            &format!("http://127.0.0.1:{port}/sse"),
            "type = \"sse\"",
        ),
    );
    gw.wait_ready(Duration::from_secs(60));
    let h = Client::new(&gw).health().await;
    assert_eq!(server_health(&h, "everything")["transport"], "sse", "{h:#}");
    let mut c = Client::new(&gw);
    c.initialize().await;
    let r = c
        .call("everything__echo", json!({"message": "over legacy sse"}))
        .await;
    assert_eq!(
        r.result()["content"][0]["text"],
        "Echo: over legacy sse",
        "{}",
        r.body
    );
}

/// Regression: an upstream whose `tools/list` failed was published as `ready`
/// with 0 tools and never retried (seen with 50 stdio upstreams starting at once).
#[test]
fn a_failed_listing_is_not_ready_and_is_retried() {
    let mock = MockUpstream::start(Behaviour {
        failing_lists: 2,
        ..Behaviour::default()
    });
    let gw = Gateway::start("list-retry", &url_server("flaky", &mock.url, ""));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut saw_not_ready = false;
    loop {
        let h = gw.health();
        let s = &h["servers"][0];
        assert!(
            !(s["status"] == "ready" && s["tools"] == 0),
            "published as ready with no tools: {h}"
        );
        saw_not_ready |= s["status"] == "protocol_error";
        if s["status"] == "ready" {
            assert_eq!(s["tools"], 1, "{h}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never became ready: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_not_ready, "the failed listing showed as protocol_error");
    assert!(
        mock.rpc_count("tools/list") >= 3,
        "retried until the listing worked"
    );
}

// ---------------------------------------------------------------------------
// Connection reuse: an SSE reply read to its end frees its connection
// ---------------------------------------------------------------------------

/// A TCP relay on 127.0.0.1:0 in front of `target` that counts the
/// connections it accepts: how a test sees whether the gateway reuses its
/// HTTP connections to an upstream.
struct CountingRelay {
    addr: std::net::SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// The connections being relayed, so that a test can cut them all.
    live: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    async fn start(target: std::net::SocketAddr) -> CountingRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay: bind");
        let addr = listener.local_addr().expect("relay: addr");
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let live = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, conns) = (accepted.clone(), live.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(relay.abort_handle());
            }
        });
        CountingRelay {
            addr,
            accepted,
            live,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every connection relayed so far (both of its sockets), as a
    /// server does with keep-alive connections it has let idle too long;
    /// returns once all of them are closed.
    async fn cut_all(&self) {
        let conns: Vec<_> =
            std::mem::take(&mut *self.live.lock().unwrap_or_else(|e| e.into_inner()));
        for c in &conns {
            c.abort();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !conns.iter().all(tokio::task::AbortHandle::is_finished) {
            assert!(Instant::now() < deadline, "relay: connections not closed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An upstream that answers each call with an SSE stream and ends it only
/// 30 ms after the result (the MOCK's `LingeringSse`): the gateway answers at
/// once, then reads the rest of the stream in the background, so the
/// connection goes back to the pool. 12 calls, 150 ms apart so that each
/// stream has ended before the next call, open at most a few connections
/// upstream, not one per call (a response dropped half-read closes its
/// connection: 12 without the draining). The real rmcp fixture, which ends
/// its streams right after the result, is checked the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reuse_the_upstream_connection_after_an_sse_reply() {
    let mock = MockUpstream::start(Behaviour {
        sse: true,
        call: CallMode::LingeringSse,
        ..Behaviour::default()
    });
    let (_fixture, fixture_url) = fixture_http(&[]);
    let addr = |url: &str| -> std::net::SocketAddr {
        url.trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .parse()
            .expect("upstream address")
    };
    let lazy = CountingRelay::start(addr(&mock.url)).await;
    let prompt = CountingRelay::start(addr(&fixture_url)).await;
    let gw = Gateway::start(
        "up-reuse",
        &format!(
            "{}{}",
            url_server("lazy", &format!("http://{}/mcp", lazy.addr), ""),
            url_server("fx", &format!("http://{}/mcp", prompt.addr), "")
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    let warm = c.call("lazy__ping_tool", json!({"text": "warm"})).await;
    assert_eq!(warm.result(), &expected_result("warm"), "{}", warm.body);
    c.assert_echo("fx__echo", "warm").await;
    let (lazy_before, prompt_before) = (lazy.accepted(), prompt.accepted());
    for i in 0..12 {
        // Pacing, not waiting for readiness: the lingering stream has ended.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let text = format!("call {i}");
        let started = Instant::now();
        let r = c.call("lazy__ping_tool", json!({"text": text})).await;
        assert_eq!(r.result(), &expected_result(&text), "{}", r.body);
        // The answer does not wait for the end of the upstream's stream.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "call {i} took {:?}",
            started.elapsed()
        );
        c.assert_echo("fx__echo", &text).await;
    }
    let lazy_opened = lazy.accepted() - lazy_before;
    let prompt_opened = prompt.accepted() - prompt_before;
    assert!(
        lazy_opened <= 4,
        "12 calls to a server that ends its streams late opened {lazy_opened} new connections (one per call means each SSE reply was dropped half-read)"
    );
    assert!(
        prompt_opened <= 4,
        "12 calls to the fixture opened {prompt_opened} new connections"
    );
}

/// A server that closes its idle keep-alive connections (here a relay that
/// cuts every connection between calls) costs the calls nothing: the
/// gateway finds a pooled connection closed when it takes it and opens a
/// new one, and no call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_while_idle_are_replaced() {
    let (_fixture, fixture_url) = fixture_http(&[]);
    let target: std::net::SocketAddr = fixture_url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .expect("upstream address");
    let relay = CountingRelay::start(target).await;
    let gw = Gateway::start(
        "up-idle-cut",
        &url_server("fx", &format!("http://{}/mcp", relay.addr), ""),
    );
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    c.assert_echo("fx__echo", "warm").await;
    for i in 0..8 {
        let before = relay.accepted();
        relay.cut_all().await;
        // Both ends are closed before the next call: it must not fail.
        c.assert_echo("fx__echo", &format!("after cut {i}")).await;
        assert!(
            relay.accepted() > before,
            "call {i} after the cut went over no new connection"
        );
    }
    // And without cuts, calls share a connection again.
    let before = relay.accepted();
    for i in 0..6 {
        c.assert_echo("fx__echo", &format!("steady {i}")).await;
    }
    assert!(
        relay.accepted() - before <= 1,
        "6 calls in a row opened {} connections",
        relay.accepted() - before
    );
}

/// An upstream whose endpoint redirects (307 to `/mcp`) is still served: the
/// gateway follows the redirect, with the method and body kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_endpoint_that_redirects_is_followed() {
    let mock = MockUpstream::start(Behaviour::default());
    let moved = mock.url.replace("/mcp", "/moved");
    let gw = Gateway::start("up-redirect", &url_server("mv", &moved, ""));
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    let r = c.call("mv__ping_tool", json!({"text": "moved"})).await;
    assert_eq!(r.result(), &expected_result("moved"), "{}", r.body);
    assert!(
        mock.rpc_count("tools/call") >= 1,
        "the call never reached /mcp"
    );
}
