//! `GET /health`: always JSON. With `auth = "keys"` the gateway may face the
//! internet, so without an admin key it says only whether it is ok (upstream
//! names, errors and counts are for operators); with `auth = "none"`
//! (loopback) it says everything.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::guard::is_admin;
use crate::config::AuthMode;
use crate::mcp::health::snapshot;
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
