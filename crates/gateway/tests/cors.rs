//! CORS for browser clients, in process through `router(app).oneshot`: an
//! allowed origin's preflight is answered (methods, the headers it asked
//! for) and its answers carry `Access-Control-Allow-Origin` with
//! `Mcp-Session-Id` exposed; loopback origins are allowed as the Origin guard
//! allows them; any other origin's preflight is 403 and gets no CORS headers.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use mcpgate_gateway::{App, router};
use tower::ServiceExt as _;

mod common;
use common::TempDir;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn app(dir: &TempDir) -> Arc<App> {
    common::app(
        dir,
        "listen = \"127.0.0.1:8787\"\nallowed_origins = [\"https://console.example.com\"]\n",
    )
    .await
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::HOST, "127.0.0.1:8787")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type, mcp-protocol-version",
        )
        .body(Body::empty())
        .expect("request")
}

fn init(origin: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1:8787")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(INIT)).expect("request")
}

fn get(h: &axum::http::HeaderMap, name: header::HeaderName) -> &str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn an_allowed_origin_gets_its_preflight_and_reads_the_session_id() {
    let dir = TempDir::new("cors-allowed");
    let app = app(&dir).await;
    let origin = "https://console.example.com";
    let resp = router(app.clone())
        .oneshot(preflight(origin))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN), origin);
    assert!(get(h, header::ACCESS_CONTROL_ALLOW_METHODS).contains("POST"));
    assert!(get(h, header::ACCESS_CONTROL_ALLOW_METHODS).contains("DELETE"));
    assert_eq!(
        get(h, header::ACCESS_CONTROL_ALLOW_HEADERS),
        "authorization, content-type, mcp-protocol-version"
    );

    for o in [origin, "http://localhost:5173"] {
        let resp = router(app.clone())
            .oneshot(init(Some(o)))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN), o);
        assert!(
            get(h, header::ACCESS_CONTROL_EXPOSE_HEADERS).contains("Mcp-Session-Id"),
            "{h:?}"
        );
        assert!(h.contains_key("mcp-session-id"));
    }
}

#[tokio::test]
async fn other_origins_get_no_cors_and_requests_without_origin_none_either() {
    let dir = TempDir::new("cors-refused");
    let app = app(&dir).await;
    let resp = router(app.clone())
        .oneshot(preflight("https://evil.example"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        !resp
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    let resp = router(app.clone())
        .oneshot(init(Some("https://evil.example")))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        !resp
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    let resp = router(app.clone())
        .oneshot(init(None))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !resp
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

/// OAuth for browser clients: the metadata under `/.well-known/` is public,
/// so any origin's preflight and GET are answered with CORS; registration and
/// the token endpoint answer an admitted origin's preflight (and carry CORS
/// on their answers), and refuse any other origin.
#[tokio::test]
async fn oauth_metadata_is_readable_from_any_origin_and_its_endpoints_from_admitted_ones() {
    let dir = TempDir::new("cors-oauth");
    let app = common::app(
        &dir,
        "listen = \"127.0.0.1:8787\"\nauth = \"keys\"\nallowed_origins = [\"https://console.example.com\"]\n",
    )
    .await;
    let send = |req: Request<Body>| router(app.clone()).oneshot(req);
    let pre = |path: &str, origin: &str, method: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::HOST, "127.0.0.1:8787")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "mcp-protocol-version, content-type",
            )
            .body(Body::empty())
            .expect("request")
    };
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
    ] {
        for origin in ["https://anywhere.example", "https://console.example.com"] {
            let r = send(pre(path, origin, "GET")).await.expect("infallible");
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path} {origin}");
            assert_eq!(
                get(r.headers(), header::ACCESS_CONTROL_ALLOW_ORIGIN),
                origin
            );
            let r = send(
                Request::get(path)
                    .header(header::HOST, "127.0.0.1:8787")
                    .header(header::ORIGIN, origin)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
            assert_eq!(r.status(), StatusCode::OK, "{path} {origin}");
            assert_eq!(
                get(r.headers(), header::ACCESS_CONTROL_ALLOW_ORIGIN),
                origin
            );
        }
    }
    let register = |origin: &str| {
        Request::post("/oauth/register")
            .header(header::HOST, "127.0.0.1:8787")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"redirect_uris":["https://console.example.com/cb"],"client_name":"page"}"#,
            ))
            .expect("request")
    };
    for path in ["/oauth/register", "/oauth/token"] {
        let r = send(pre(path, "https://console.example.com", "POST"))
            .await
            .expect("infallible");
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            get(r.headers(), header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "https://console.example.com"
        );
        let r = send(pre(path, "https://anywhere.example", "POST"))
            .await
            .expect("infallible");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            !r.headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }
    let r = send(register("https://console.example.com"))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        get(r.headers(), header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://console.example.com"
    );
    let r = send(register("https://anywhere.example"))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        !r.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}
