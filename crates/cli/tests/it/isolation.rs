//! One tenant must not harm another (issue 14, items 1 to 3), end to end: a
//! real `mcpgate serve` with `auth = "keys"` on a real SQLite file, the Rust
//! fixture as the shared upstream, and two or more tenants' clients. Each
//! test is named after the harm it pins: log levels set by one tenant
//! changing another's, one tenant filling the session table, one tenant's
//! slow calls opening the shared circuit breaker.

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
