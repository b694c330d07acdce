//! One tenant must not harm another (issue 14, items 1 to 3), end to end: a
//! real `mcpgate serve` with `auth = "keys"` on a real SQLite file, the Rust
//! fixture as the shared upstream, and two or more tenants' clients. Each
//! test is named after the harm it pins: log levels set by one tenant
//! changing another's, one tenant filling the session table, one tenant's
//! slow calls opening the shared circuit breaker. Last, a load test: one
//! tenant floods all three ways while the other's calls keep their latency
//! (a ratio to its own baseline) and its logs keep its level.

use std::time::Duration;

use crate::common::admin::*;
use crate::common::client::{Client, REQUEST_TIMEOUT, UPSTREAM_UNAVAILABLE, server_health};
use crate::common::*;
use serde_json::json;

/// Two tiers over one fixture server `fx`: `pro` sees everything, `free`
/// sees only `fx__echo` and `fx__test_*`; `server_extra` goes into `fx`'s
/// table, `top` at the top level, `tier_extra` into both tiers.
fn config(top: &str, server_extra: &str, tier_extra: &str) -> String {
    format!(
        r#"
auth = "keys"
{top}

[plans]
free = "free"
pro = "pro"

[tiers.free]
tools = ["fx__echo", "fx__test_*"]
{tier_extra}

[tiers.pro]
tools = ["*"]
prompts = ["*"]
resources = ["*"]
{tier_extra}
{}
"#,
        fixture_server("fx", server_extra)
    )
}

fn started(tag: &str, text: &str) -> Gateway {
    let gw = Gateway::start(tag, text);
    gw.wait_ready(Duration::from_secs(20));
    gw
}

/// A client holding an admin key: `/health` shows it the upstreams' states.
fn admin(gw: &Gateway) -> Client {
    let key = cli_ok(gw, &["keys", "create", "--admin"]);
    keyed(gw, key.trim())
}

async fn session(gw: &Gateway, key: &str) -> Client {
    let mut c = keyed(gw, key);
    c.initialize().await;
    c
}

// ---------------------------------------------------------------------------
// Item 3: the circuit breaker counts the upstream's health only
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_timed_out_calls_do_not_open_the_breaker_for_another() {
    let gw = started(
        "iso-breaker-timeouts",
        &config(
            "",
            "timeout = \"300ms\"\nbreaker_failures = 2\nbreaker_cooldown = \"60s\"",
            "",
        ),
    );
    let alice = session(&gw, &tenant_with_key(&gw, "alice", "pro", None)).await;
    let bob = session(&gw, &tenant_with_key(&gw, "bob", "pro", None)).await;
    bob.assert_echo("fx__echo", "before").await;
    // Alice's calls to a slow tool run past the server's 300 ms timeout.
    for i in 0..5 {
        let r = alice.call("fx__sleep", json!({"ms": 2000})).await;
        r.assert_rpc_error(&format!("slow call {i}"), REQUEST_TIMEOUT, &["fx"]);
    }
    // Bob's call to a healthy tool on the same server still goes through.
    bob.assert_echo("fx__echo", "after alice's timeouts").await;
    let h = admin(&gw).health().await;
    assert_eq!(server_health(&h, "fx")["breaker_open"], false, "{h:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_closes_when_a_restarted_server_completes_its_handshake() {
    let gw = started(
        "iso-breaker-restart",
        &config("", "breaker_failures = 1\nbreaker_cooldown = \"60s\"", ""),
    );
    let alice = session(&gw, &tenant_with_key(&gw, "alice", "pro", None)).await;
    let bob = session(&gw, &tenant_with_key(&gw, "bob", "pro", None)).await;
    // The fixture exits mid-call: a crash, which opens the breaker.
    let r = alice.call("fx__exit", json!({})).await;
    r.assert_rpc_error("exit", UPSTREAM_UNAVAILABLE, &["fx"]);
    let h = admin(&gw)
        .wait_health("fx restarted", Duration::from_secs(20), |h| {
            let fx = server_health(h, "fx");
            fx["restarts"].as_u64().unwrap_or(0) >= 1 && fx["status"] == "ready"
        })
        .await;
    assert_eq!(
        server_health(&h, "fx")["breaker_open"],
        false,
        "a completed handshake closes the breaker: {h:#}"
    );
    // Not 60 s later: now.
    bob.assert_echo("fx__echo", "right after the restart").await;
}

// ---------------------------------------------------------------------------
// Item 2: one tenant cannot fill the session table
// ---------------------------------------------------------------------------

/// Starts a `fx__sleep` call of `ms` in `session` and returns once the call
/// is running upstream (its first progress notification came back); the
/// returned task reads the rest of the answer.
async fn slow_call_in_flight(
    gw: &Gateway,
    key: &str,
    session: &str,
    ms: u64,
) -> tokio::task::JoinHandle<String> {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "fx__sleep", "arguments": {"ms": ms}, "_meta": {"progressToken": "p"}}});
    let mut resp = reqwest::Client::new()
        .post(&gw.url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", session)
        .body(body.to_string())
        .send()
        .await
        .expect("slow call sent");
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let chunk = resp
            .chunk()
            .await
            .expect("slow call stream")
            .unwrap_or_else(|| panic!("the slow call ended before any progress: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = resp.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_fill_the_session_table() {
    // Room for 6 sessions in all; each tenant may hold 3.
    let gw = started(
        "iso-sessions",
        &config("max_sessions = 6", "", "max_sessions = 3"),
    );
    let alice_key = tenant_with_key(&gw, "alice", "pro", None);
    let bob_key = tenant_with_key(&gw, "bob", "pro", None);
    // Alice opens many more sessions than her cap (and than the gateway
    // holds): each new one ends her own session idle longest.
    let mut alice = Vec::new();
    for _ in 0..10 {
        alice.push(session(&gw, &alice_key).await);
    }
    for (i, c) in alice.iter().enumerate() {
        let r = c.request("ping", json!({})).await;
        let expected = if i < 7 { 404 } else { 200 };
        assert_eq!(r.status, expected, "alice's session {i}: {}", r.body);
    }
    // Bob is not crowded out.
    let bob = session(&gw, &bob_key).await;
    bob.assert_echo("fx__echo", "room for bob").await;

    // With a call in flight in each of her 3 sessions, Alice has nothing
    // idle to give up: her next initialize is refused, 429 with Retry-After.
    let mut calls = Vec::new();
    for c in &alice[7..] {
        let id = c.session.as_deref().expect("session id");
        calls.push(slow_call_in_flight(&gw, &alice_key, id, 1500).await);
    }
    let r = keyed(&gw, &alice_key).initialize_raw().await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.error_code(), -32029, "{}", r.body);
    assert!(
        r.error_message().contains("3 sessions"),
        "the refusal says which cap: {}",
        r.body
    );
    assert_eq!(r.header("retry-after"), Some("1"), "{}", r.body);
    // Bob still opens sessions, and Alice's busy sessions kept their calls.
    let bob2 = session(&gw, &bob_key).await;
    bob2.assert_echo("fx__echo", "still room for bob").await;
    for call in calls {
        let text = call.await.expect("slow call task");
        assert!(text.contains("slept 1500 ms"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_is_rate_limited_per_key_like_a_call() {
    let gw = started("iso-init-rate", &config("", "", "rate = \"2/min\""));
    let alice_key = tenant_with_key(&gw, "alice", "pro", None);
    let bob_key = tenant_with_key(&gw, "bob", "pro", None);
    let alice = session(&gw, &alice_key).await;
    session(&gw, &alice_key).await;
    let r = keyed(&gw, &alice_key).initialize_raw().await;
    assert_eq!(
        r.status, 429,
        "the third initialize in a minute: {}",
        r.body
    );
    assert_eq!(r.error_code(), -32029, "{}", r.body);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!((29..=30).contains(&retry), "Retry-After {retry}");
    // Opening sessions spent none of Alice's calls, and Bob's key has its own bucket.
    alice.assert_echo("fx__echo", "one").await;
    alice.assert_echo("fx__echo", "two").await;
    session(&gw, &bob_key)
        .await
        .assert_echo("fx__echo", "bob")
        .await;
}

// ---------------------------------------------------------------------------
// Item 1: logging/setLevel is per session
// ---------------------------------------------------------------------------

/// Two fixture servers, `fx` and `fy`; tier `free` sees only `fx`.
fn two_servers() -> String {
    format!(
        r#"
auth = "keys"

[plans]
free = "free"
pro = "pro"

[tiers.free]
tools = ["fx__*"]

[tiers.pro]
tools = ["*"]
{}{}"#,
        fixture_server("fx", ""),
        fixture_server("fy", "")
    )
}

async fn set_level(c: &Client, level: &str) {
    let r = c
        .request("logging/setLevel", json!({ "level": level }))
        .await;
    assert_eq!(r.result(), &json!({}), "setLevel {level}: {}", r.body);
}

/// The levels of the log messages relayed during one call of `TOOL`
/// (`test_tool_with_logging` logs three messages at `info`).
async fn logs_during(c: &Client, tool: &str) -> Vec<String> {
    let r = c.call(tool, json!({})).await;
    r.result();
    r.notifications("notifications/message")
        .iter()
        .map(|m| m["params"]["level"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_log_level_does_not_change_anothers() {
    let gw = started("iso-levels", &two_servers());
    let bob = session(&gw, &tenant_with_key(&gw, "bob", "pro", None)).await;
    let alice = session(&gw, &tenant_with_key(&gw, "alice", "pro", None)).await;
    let carol = session(&gw, &tenant_with_key(&gw, "carol", "pro", None)).await;
    let info = vec!["info".to_owned(); 3];
    // Bob asks for info, then Alice for error: the shared upstream is sent
    // the most verbose (info), and each session gets its own.
    set_level(&bob, "info").await;
    set_level(&alice, "error").await;
    assert_eq!(logs_during(&bob, "fx__test_tool_with_logging").await, info);
    assert!(
        logs_during(&alice, "fx__test_tool_with_logging")
            .await
            .is_empty()
    );
    // Alice turning the upstream up to debug does not reach Bob at warning.
    set_level(&bob, "warning").await;
    set_level(&alice, "debug").await;
    assert!(
        logs_during(&bob, "fx__test_tool_with_logging")
            .await
            .is_empty()
    );
    assert_eq!(
        logs_during(&alice, "fx__test_tool_with_logging").await,
        info
    );
    // Carol never set a level: she gets what the upstream sends, which
    // follows the sessions still open. Alice leaves; Bob's warning remains.
    assert_eq!(
        logs_during(&carol, "fx__test_tool_with_logging").await,
        info
    );
    assert_eq!(alice.delete().await.status, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !logs_during(&carol, "fx__test_tool_with_logging")
        .await
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream level never went back to warning after the debug session ended"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_level_reaches_only_servers_the_tenant_can_see() {
    let gw = started("iso-level-reach", &two_servers());
    let free = session(&gw, &tenant_with_key(&gw, "small", "free", None)).await;
    let pro = session(&gw, &tenant_with_key(&gw, "big", "pro", None)).await;
    set_level(&free, "error").await;
    let info = vec!["info".to_owned(); 3];
    // `fy` is hidden from the free tier: its level is untouched, and a
    // session that set none gets its info messages.
    assert_eq!(logs_during(&pro, "fy__test_tool_with_logging").await, info);
    // `fx` is visible to it, so there the free tenant's level counts.
    assert!(
        logs_during(&pro, "fx__test_tool_with_logging")
            .await
            .is_empty()
    );
    let bad = free
        .request("logging/setLevel", json!({"level": "loud"}))
        .await;
    assert_eq!(bad.error_code(), -32602, "{}", bad.body);
}

// ---------------------------------------------------------------------------
// The isolation load test: one tenant floods, the other is unharmed
// ---------------------------------------------------------------------------

/// B's calls under A's flood may take at most this many times B's own
/// baseline (medians, measured in the same test on the same gateway).
const LOAD_RATIO: f64 = 8.0;
/// Sequential echo calls per measurement.
const LOAD_CALLS: usize = 40;

#[derive(Default)]
struct Flood {
    stop: std::sync::atomic::AtomicBool,
    initialized: std::sync::atomic::AtomicU64,
    init_refused: std::sync::atomic::AtomicU64,
    timed_out: std::sync::atomic::AtomicU64,
    levels_set: std::sync::atomic::AtomicU64,
}

impl Flood {
    fn running(&self) -> bool {
        !self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(n: &std::sync::atomic::AtomicU64) {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(n: &std::sync::atomic::AtomicU64) -> u64 {
        n.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Opens a fresh session of tenant A in `c` (one HTTP client reused, as a
/// flooding client would) and turns its level up to debug; false when refused.
async fn flood_session(c: &mut Client, flood: &Flood) -> bool {
    c.session = None;
    let r = c.initialize_raw().await;
    if r.status != 200 {
        Flood::count(&flood.init_refused);
        return false;
    }
    Flood::count(&flood.initialized);
    c.session = r.header("mcp-session-id").map(str::to_owned);
    let r = c
        .request("logging/setLevel", json!({"level": "debug"}))
        .await;
    if r.has_result() {
        Flood::count(&flood.levels_set);
    }
    true
}

/// Median and 90th percentile, in ms.
fn p50_p90(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

/// B's echo calls, one after another; every tenth opens a new session at
/// level warning, whose call to a logging tool must bring no `info` log.
async fn tenant_b_round(gw: &Gateway, b: &Client, key: &str) -> Vec<f64> {
    let mut ms = Vec::with_capacity(LOAD_CALLS);
    for i in 0..LOAD_CALLS {
        let t = std::time::Instant::now();
        b.assert_echo("fx__echo", &format!("b{i}")).await;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if i % 10 == 9 {
            let fresh = session(gw, key).await;
            set_level(&fresh, "warning").await;
            let logs = logs_during(&fresh, "fx__test_tool_with_logging").await;
            assert!(logs.is_empty(), "B's new session at warning got {logs:?}");
        }
    }
    let logs = logs_during(b, "fx__test_tool_with_logging").await;
    assert!(logs.is_empty(), "B's session at warning got {logs:?}");
    ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tenant_b_is_unharmed_while_tenant_a_floods() {
    // One fixture upstream for both tenants; the gateway holds 200 sessions,
    // each tenant 20; a call times out after 1 s; the breaker is the default.
    let gw = started(
        "iso-load",
        &config(
            "max_sessions = 200",
            "timeout = \"1s\"",
            "max_sessions = 20\nmax_concurrent = 32",
        ),
    );
    let a_key = tenant_with_key(&gw, "tenant-a", "pro", None);
    let b_key = tenant_with_key(&gw, "tenant-b", "pro", None);
    let b = session(&gw, &b_key).await;
    set_level(&b, "warning").await;
    b.assert_echo("fx__echo", "warm up").await;
    let baseline = tenant_b_round(&gw, &b, &b_key).await;

    let gw = std::sync::Arc::new(gw);
    let flood = std::sync::Arc::new(Flood::default());
    let mut tasks = Vec::new();
    // Initialize floods, each new session turning its level up to debug.
    for _ in 0..2 {
        let (gw, flood, key) = (gw.clone(), flood.clone(), a_key.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = keyed(&gw, &key);
            while flood.running() {
                flood_session(&mut c, &flood).await;
            }
        }));
    }
    // Slow calls that run past the server's timeout, more at once than the
    // breaker's default threshold of 5.
    for _ in 0..6 {
        let (gw, flood, key) = (gw.clone(), flood.clone(), a_key.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = keyed(&gw, &key);
            let mut open = false;
            while flood.running() {
                if !open {
                    open = flood_session(&mut c, &flood).await;
                    continue;
                }
                let r = c.call("fx__sleep", json!({"ms": 3000})).await;
                if r.status == 404 {
                    open = false; // evicted by the flood while between calls
                } else if r.status == 200 && r.error_code() == REQUEST_TIMEOUT {
                    Flood::count(&flood.timed_out);
                }
            }
        }));
    }
    // The flood is on once A has gone past its session cap (so its own
    // sessions are being evicted) and its slow calls have timed out.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Flood::get(&flood.initialized) < 40 || Flood::get(&flood.timed_out) < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flood did not get going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let loaded = tenant_b_round(&gw, &b, &b_key).await;
    flood.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.expect("flood task");
    }

    let (base50, base90) = p50_p90(baseline);
    let (load50, load90) = p50_p90(loaded);
    eprintln!(
        "isolation load: B echo baseline p50 {base50:.2} ms p90 {base90:.2} ms; under A's flood p50 {load50:.2} ms p90 {load90:.2} ms (x{:.1}); A: {} sessions opened, {} initializes refused, {} setLevel debug, {} slow calls timed out",
        load50 / base50,
        Flood::get(&flood.initialized),
        Flood::get(&flood.init_refused),
        Flood::get(&flood.levels_set),
        Flood::get(&flood.timed_out),
    );
    assert!(
        load50 <= base50 * LOAD_RATIO,
        "B's median call took {load50:.2} ms under A's flood, more than {LOAD_RATIO}x its baseline of {base50:.2} ms"
    );
}
