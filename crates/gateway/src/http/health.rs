//! `GET /health`: always JSON. With `auth = "keys"` the gateway may face the
//! internet, so without an admin key it says only whether it is ok (upstream
//! names, errors and counts are for operators); with `auth = "none"`
//! (loopback) it says everything.
//!
//! `GET /ready`: 503 until every upstream has been tried once (its first
//! connection attempt ended, in success or failure), then 200; JSON either
//! way, naming the servers still starting (only their count without an
//! admin key under `auth = "keys"`). `mcpgate mount`/`call` poll it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::guard::is_admin;
use crate::config::AuthMode;
use crate::mcp::health::{readiness, snapshot};
use crate::state::App;

pub(crate) async fn health(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    let full = snapshot(&app);
    if app.auth.mode() == AuthMode::Keys && !is_admin(&app, &h).await {
        return axum::Json(serde_json::json!({
            "status": full.status,
            "detail": "send an admin key (Authorization: Bearer) for the upstreams' states",
        }))
        .into_response();
    }
    axum::Json(full).into_response()
}

pub(crate) async fn ready(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    let r = readiness(&app);
    let (status, word) = if r.ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    };
    let starting = if app.auth.mode() == AuthMode::Keys && !is_admin(&app, &h).await {
        serde_json::json!(r.starting.len())
    } else {
        serde_json::json!(r.starting)
    };
    let body = serde_json::json!({"ready": r.ready, "status": word, "starting": starting});
    (status, axum::Json(body)).into_response()
}
