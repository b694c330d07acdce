//! The HTTP edge, in process: every refusal rule of `/mcp` (400, 401, 403,
//! 404, 405, 406, 413, 415, 429) checked through `router(app).oneshot(request)`,
//! with no socket and no upstream. The app is built from a parsed config and
//! a SQLite store in a fresh temp dir, as `mcpgate serve` builds it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mcpgate_gateway::{App, router};
use serde_json::Value;
use tower::ServiceExt as _;

mod common;
use common::TempDir;

/// An app on a config (no servers) and a fresh SQLite store.
async fn app(dir: &TempDir, extra: &str) -> Arc<App> {
    common::app(
        dir,
        &format!("listen = \"127.0.0.1:8787\"\nmax_body = 1024\n{extra}"),
    )
    .await
}

/// A POST to /mcp with the headers a good client sends.
fn post() -> axum::http::request::Builder {
    Request::post("/mcp")
        .header(header::HOST, "127.0.0.1:8787")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

/// Sends a request; returns the status, the headers and the body as JSON.
async fn send(app: &Arc<App>, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = router(app.clone()).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

fn code(v: &Value) -> i64 {
    v["error"]["code"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn refusals_have_their_status_and_code() {
    let dir = TempDir::new("refusals");
    let app = app(&dir, "").await;

    // 400: malformed JSON is a parse error.
    let (s, _, v) = send(&app, post().body(Body::from("{not json")).expect("req")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&v), -32700, "{v}");

    // 403: a foreign Origin, and a foreign Host on a loopback bind.
    let req = post()
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::from(INIT))
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let req = Request::post("/mcp")
        .header(header::HOST, "evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(INIT))
        .expect("req");
    assert_eq!(send(&app, req).await.0, StatusCode::FORBIDDEN);

    // 404: an unknown session, and an unknown path.
    let req = post()
        .header("mcp-session-id", "0123456789abcdef0123456789abcdef")
        .body(Body::from(LIST))
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(code(&v), -32600);
    let req = Request::get("/nope")
        .header(header::HOST, "127.0.0.1")
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&app, req).await.0, StatusCode::NOT_FOUND);

    // 405: PUT on /mcp says which methods work.
    let req = Request::put("/mcp")
        .header(header::HOST, "127.0.0.1")
        .body(Body::empty())
        .expect("req");
    let (s, h, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        h.get(header::ALLOW).and_then(|v| v.to_str().ok()),
        Some("GET, POST, DELETE")
    );

    // 406: a client that takes neither JSON nor SSE.
    let req = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "image/png")
        .body(Body::from(INIT))
        .expect("req");
    assert_eq!(send(&app, req).await.0, StatusCode::NOT_ACCEPTABLE);

    // 413: over max_body_bytes, announced or not.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(2000)
    );
    let (s, _, v) = send(&app, post().body(Body::from(big.clone())).expect("req")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(big))]);
    let req = post().body(Body::from_stream(stream)).expect("req");
    assert_eq!(send(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    // 415: not JSON.
    let req = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(INIT))
        .expect("req");
    assert_eq!(send(&app, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // And a good initialize gets a session, which then lists tools.
    let (s, h, v) = send(&app, post().body(Body::from(INIT)).expect("req")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sid = h
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("session id")
        .to_owned();
    let req = post()
        .header("mcp-session-id", &sid)
        .body(Body::from(LIST))
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["result"]["tools"].is_array(), "{v}");
}

#[tokio::test]
async fn keys_are_required_and_limits_answer_429() {
    let dir = TempDir::new("keys");
    let tiers = "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"*\"]\nrate = \"1/min\"\nburst = 1\n";
    let app = app(&dir, tiers).await;
    app.store
        .add_tenant("acme", "free", Some(100), None)
        .await
        .expect("tenant");
    let key = app
        .store
        .create_key(Some("acme"), None, None)
        .await
        .expect("key")
        .token;

    // 401 without a key, with a Bearer challenge.
    let (s, h, v) = send(&app, post().body(Body::from(INIT)).expect("req")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        h.get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("Bearer")),
        "{h:?}"
    );

    let auth = format!("Bearer {key}");
    let (s, h, _) = send(
        &app,
        post()
            .header(header::AUTHORIZATION, &auth)
            .body(Body::from(INIT))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let sid = h
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("session id")
        .to_owned();
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"none__x","arguments":{}}}"#;
    let req = || {
        post()
            .header(header::AUTHORIZATION, &auth)
            .header("mcp-session-id", &sid)
            .body(Body::from(call))
            .expect("req")
    };
    // The first call passes the limit (and finds no such tool); the second is limited.
    let (s, _, v) = send(&app, req()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(code(&v), -32602, "{v}");
    let (s, h, v) = send(&app, req()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(code(&v), -32029, "{v}");
    assert_eq!(v["id"], 3);
    let retry: u64 = h
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
}

/// Opens a session; returns its id.
async fn session(app: &Arc<App>) -> String {
    let (s, h, v) = send(app, post().body(Body::from(INIT)).expect("req")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("session id")
        .to_owned()
}

#[tokio::test]
async fn null_and_fractional_ids_are_refused_not_taken_as_notifications() {
    let dir = TempDir::new("ids");
    let app = app(&dir, "").await;
    let sid = session(&app).await;
    for body in [
        r#"{"jsonrpc":"2.0","id":null,"method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}"#,
    ] {
        let req = post()
            .header("mcp-session-id", &sid)
            .body(Body::from(body))
            .expect("req");
        let (s, _, v) = send(&app, req).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(code(&v), -32600, "{body}: {v}");
    }
}

#[tokio::test]
async fn accept_json_with_q_zero_is_not_acceptable() {
    let dir = TempDir::new("accept-q0");
    let app = app(&dir, "").await;
    let req = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json;q=0")
        .body(Body::from(INIT))
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE, "{v}");
    // JSON refused but SSE taken: the answer comes as SSE.
    let req = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json;q=0, text/event-stream")
        .body(Body::from(INIT))
        .expect("req");
    let resp = router(app.clone()).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
}

#[tokio::test]
async fn a_second_origin_or_host_header_is_refused() {
    let dir = TempDir::new("dup-headers");
    let app = app(&dir, "").await;
    // Two Origins: the first is loopback, the second is not; 403 (only one could be checked).
    let req = post()
        .header(header::ORIGIN, "http://127.0.0.1:3000")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::from(INIT))
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(code(&v), -32600, "{v}");
    // Two Hosts: 400, which RFC 9112 section 3.2 requires.
    let req = post()
        .header(header::HOST, "evil.example")
        .body(Body::from(INIT))
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code(&v), -32600, "{v}");
    // One of each still works.
    let req = post()
        .header(header::ORIGIN, "http://localhost:3000")
        .body(Body::from(INIT))
        .expect("req");
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn host_and_origin_are_parsed_strictly() {
    let dir = TempDir::new("strict-host");
    let app = app(&dir, "").await;
    let with_host = |host: &str| {
        Request::post("/mcp")
            .header(header::HOST, host)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(Body::from(INIT))
            .expect("req")
    };
    for bad in [
        "[::1]evil.com",
        "[::1]evil.com:80",
        "127.0.0.1@evil.com",
        "",
    ] {
        let (s, _, v) = send(&app, with_host(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "Host {bad:?}: {v}");
    }
    for good in ["[::1]", "[::1]:8787", "localhost"] {
        let (s, _, v) = send(&app, with_host(good)).await;
        assert_eq!(s, StatusCode::OK, "Host {good:?}: {v}");
    }
    let req = post()
        .header(header::ORIGIN, "http://[::1]evil.com")
        .body(Body::from(INIT))
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn http11_without_host_is_refused() {
    let dir = TempDir::new("no-host");
    let app = app(&dir, "").await;
    let bare = |version| {
        Request::post("/mcp")
            .version(version)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(Body::from(INIT))
            .expect("req")
    };
    let (s, _, v) = send(&app, bare(axum::http::Version::HTTP_11)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code(&v), -32600, "{v}");
    // HTTP/1.0 has no Host requirement.
    let (s, _, v) = send(&app, bare(axum::http::Version::HTTP_10)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn absolute_form_target_is_checked_against_allowed_hosts() {
    let dir = TempDir::new("absolute-form");
    let app = app(&dir, "").await;
    let absolute = |uri: &str| {
        Request::post(uri)
            .header(header::HOST, "127.0.0.1:8787")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(Body::from(INIT))
            .expect("req")
    };
    let (s, _, v) = send(&app, absolute("http://evil.example/mcp")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _, v) = send(&app, absolute("http://user@127.0.0.1/mcp")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, v) = send(&app, absolute("http://127.0.0.1:8787/mcp")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn last_event_id_at_u64_max_is_400_not_a_wrap() {
    let dir = TempDir::new("last-event-id");
    let app = app(&dir, "").await;
    let sid = session(&app).await;
    let req = Request::get("/mcp")
        .header(header::HOST, "127.0.0.1:8787")
        .header(header::ACCEPT, "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("last-event-id", "0-18446744073709551615")
        .body(Body::empty())
        .expect("req");
    let (s, _, v) = send(&app, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code(&v), -32600, "{v}");
}
