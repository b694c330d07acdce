//! Input that once panicked or blew up the gateway (issue 14, "panics and
//! blow-ups from input"): durations too long for `Duration` or for a clock,
//! in a config file and in the admin API, and a tier's `max_concurrent` above
//! what a semaphore holds. Each case must be a clear error (a config error
//! naming file and key, a 400 naming the value), never a panic or a dropped
//! connection. Built in process: a parsed config, a temp-dir SQLite store and
//! `router(app).oneshot(request)`.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mcpgate_gateway::{App, Config, router};
use serde_json::Value;
use tower::ServiceExt as _;

mod common;
use common::TempDir;

const FILE: &str = "/etc/mcpgate/limits.toml";

/// The config error for `text`, as `file: key: message`.
fn config_error(text: &str) -> String {
    match Config::parse(Path::new(FILE), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn regression_huge_config_durations_are_errors_not_panics() {
    let server = "[servers.s]\ncommand = \"true\"\n";
    for (text, key) in [
        (
            format!("{server}timeout = \"99999999999999999999s\"\n"),
            "servers.s.timeout",
        ),
        (
            format!("{server}connect_timeout = \"999999999999999d\"\n"),
            "servers.s.connect_timeout",
        ),
        (
            "session_idle_timeout = 1e20\n".to_owned(),
            "session_idle_timeout",
        ),
        (
            "sse_retry = 1.8446744073709552e19\n".to_owned(),
            "sse_retry",
        ),
        (
            "breaker_cooldown = \"1e300d\"\n".to_owned(),
            "breaker_cooldown",
        ),
        // Fits a Duration, but `Instant::now() + it` would overflow the clock.
        (
            "breaker_cooldown = \"18000000000000000000s\"\n".to_owned(),
            "breaker_cooldown",
        ),
    ] {
        let e = config_error(&text);
        assert!(e.starts_with(&format!("{FILE}: {key}: ")), "{e}");
        assert!(e.contains("too long"), "{e}");
    }
    // Still errors, still naming the key: negative, NaN-like and unknown units.
    for (text, key) in [
        ("sse_retry = -1\n", "sse_retry"),
        ("sse_retry = \"5 fortnights\"\n", "sse_retry"),
    ] {
        let e = config_error(text);
        assert!(e.starts_with(&format!("{FILE}: {key}: ")), "{e}");
    }
}

#[test]
fn config_durations_keep_their_meaning() {
    let text = "session_idle_timeout = 0.25\nsse_retry = \"1.5m\"\nsse_upgrade_after = \"250ms\"\n\
                breaker_cooldown = \"2d\"\n[servers.s]\ncommand = \"true\"\ntimeout = 7\n";
    let cfg = Config::parse(Path::new(FILE), text).expect("config");
    assert_eq!(cfg.session_idle_timeout.as_millis(), 250);
    assert_eq!(cfg.sse_retry.as_secs(), 90);
    assert_eq!(cfg.sse_upgrade_after.as_millis(), 250);
    assert_eq!(cfg.servers[0].breaker_cooldown.as_secs(), 2 * 86_400);
    assert_eq!(cfg.servers[0].spec.timeout.as_secs(), 7);
}

#[test]
fn regression_tier_max_concurrent_above_the_semaphore_limit_is_a_config_error() {
    let text = format!(
        "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"*\"]\nmax_concurrent = {}\n",
        u64::MAX >> 2
    );
    let e = config_error(&text);
    assert!(
        e.starts_with(&format!("{FILE}: tiers.free.max_concurrent: ")),
        "{e}"
    );
    // The largest sane value still loads.
    let ok = "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"*\"]\nmax_concurrent = 100000\n";
    Config::parse(Path::new(FILE), ok).expect("100000 is fine");
}

/// An app with key auth and an admin key; returns the app and the key.
async fn admin_app(dir: &TempDir) -> (Arc<App>, String) {
    let app = common::app(
        dir,
        "listen = \"127.0.0.1:8787\"\nauth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"*\"]\n",
    )
    .await;
    app.store
        .add_tenant("acme", "free", None, None)
        .await
        .expect("tenant");
    let key = app
        .store
        .create_key(None, Some("ops"), None)
        .await
        .expect("admin key")
        .token;
    (app, key)
}

async fn send(app: &Arc<App>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(app.clone()).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const HUGE: &str = "999999999999999d";

#[tokio::test]
async fn regression_admin_api_huge_expires_and_since_are_400() {
    let dir = TempDir::new("admin");
    let (app, key) = admin_app(&dir).await;
    let auth = format!("Bearer {key}");

    let body = format!(r#"{{"tenant":"acme","expires":"{HUGE}"}}"#);
    let req = Request::post("/admin/keys")
        .header(header::HOST, "127.0.0.1:8787")
        .header(header::AUTHORIZATION, &auth)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("req");
    let (s, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v.to_string().contains(HUGE),
        "the error names the value: {v}"
    );

    for path in ["/admin/usage", "/admin/audit"] {
        let req = Request::get(format!("{path}?since={HUGE}"))
            .header(header::HOST, "127.0.0.1:8787")
            .header(header::AUTHORIZATION, &auth)
            .body(Body::empty())
            .expect("req");
        let (s, v) = send(&app, req).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(v.to_string().contains(HUGE), "{path}: {v}");
    }

    // A sane lifetime still works, and its expiry is in the future.
    let req = Request::post("/admin/keys")
        .header(header::HOST, "127.0.0.1:8787")
        .header(header::AUTHORIZATION, &auth)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"tenant":"acme","expires":"1.5h"}"#))
        .expect("req");
    let (s, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let expires = v["info"]["expires_at_ms"].as_i64().expect("expiry");
    let ahead = expires - mcpgate_store::now_ms();
    assert!((5_300_000..=5_400_000).contains(&ahead), "{ahead}");
}
