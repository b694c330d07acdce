//! CORS for browser-based clients. An `Origin` the gateway admits (loopback,
//! or listed in `allowed_origins`) gets `Access-Control-Allow-Origin` on every
//! answer, with `Mcp-Session-Id`, `Mcp-Protocol-Version`, `WWW-Authenticate`
//! and `Retry-After` exposed so a page can read them; its preflight
//! (`OPTIONS` with `Access-Control-Request-Method`) is answered `204` with the
//! methods and the headers it asked for. A preflight from any other origin is
//! `403`, and an ordinary request from one is refused by the Origin guard as
//! before. The OAuth metadata under `/.well-known/` is public (it names
//! endpoints, holds no secret), so any origin may read it: a browser client
//! served from anywhere discovers the gateway, while registration, the token
//! endpoint and `/mcp` stay with the admitted origins. CORS only lets a page
//! read answers: every guard still applies.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::guard::origin_allowed;
use super::refusal::Refusal;
use crate::state::App;

const EXPOSED: &str = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After";
const METHODS: &str = "GET, POST, DELETE";
/// What a preflight may ask for when it names no headers of its own.
const DEFAULT_HEADERS: &str = "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name";

/// The origin of a cross-origin request the gateway admits, if it is one.
fn admitted_origin(app: &App, h: &HeaderMap) -> Option<HeaderValue> {
    let mut all = h.get_all(header::ORIGIN).iter();
    let origin = all.next()?;
    if all.next().is_some() {
        return None;
    }
    origin_allowed(app, origin.to_str().ok()?).then(|| origin.clone())
}

/// The one `Origin` of a request, whatever it is.
fn any_origin(h: &HeaderMap) -> Option<HeaderValue> {
    let mut all = h.get_all(header::ORIGIN).iter();
    let origin = all.next()?;
    all.next().is_none().then(|| origin.clone())
}

/// The middleware: answers preflights and marks admitted origins' answers
/// (any origin's, for the public metadata under `/.well-known/`).
pub(crate) async fn cors(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let origin = if req.uri().path().starts_with("/.well-known/") {
        any_origin(req.headers())
    } else {
        admitted_origin(&app, req.headers())
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && req.headers().contains_key(header::ORIGIN);
    if preflight {
        let Some(origin) = origin else {
            return Refusal::invalid(
                StatusCode::FORBIDDEN,
                "Forbidden: this Origin is not allowed; add it to allowed_origins",
            )
            .into_response();
        };
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static(DEFAULT_HEADERS));
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}
