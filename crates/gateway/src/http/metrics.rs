//! `GET /metrics`, the Prometheus text exposition (`mcp::metrics` writes
//! it): on the gateway's own listener it needs an admin key, like
//! `/admin/`; on `metrics_listen`, a separate address meant for the
//! scraper's network only, it is served to anyone who can connect, and
//! nothing else is.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::guard::admit_admin;
use super::refusal::Refusal;
use crate::mcp::metrics::render;
use crate::state::App;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics` behind an admin key.
pub(crate) async fn scrape(State(app): State<Arc<App>>, h: HeaderMap) -> Result<Response, Refusal> {
    admit_admin(&app, &h).await?;
    Ok(exposition(&app).await)
}

async fn exposition(app: &App) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT))],
        render(app).await,
    )
        .into_response()
}

/// Serves `/metrics` alone, without a key, on `addr` until shutdown; the
/// address it bound is logged as `metrics on http://ADDR/metrics`.
pub(crate) async fn serve_separately(app: Arc<App>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!("metrics on http://{local}/metrics");
    let shutdown = app.shutdown.clone();
    let router = Router::new()
        .route(
            "/metrics",
            get(|State(app): State<Arc<App>>| async move { exposition(&app).await }),
        )
        .with_state(app);
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!("the metrics listener on {local} stopped: {e}");
        }
    });
    Ok(())
}
