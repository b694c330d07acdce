//! The one background task that sends finished spans to the collector:
//! it takes up to [`BATCH`] spans from the tracer's queue, or what came
//! within [`DELAY`] of the first, encodes them (`otlp`) and POSTs them to
//! `[telemetry] otlp` with `Content-Type: application/x-protobuf`, waiting
//! at most [`TIMEOUT`]. A batch the collector does not take (unreachable,
//! slow, or not 2xx) is dropped and counted; there is no retry, so a
//! collector that is down costs a warning a minute and the queue never
//! grows past its bound. At shutdown the task sends what it holds once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{SpanRecord, Tracer, otlp};
use mcpgate_proto::locks::lock;

/// The most spans in one export.
const BATCH: usize = 512;
/// How long the first span of a batch waits for company.
const DELAY: Duration = Duration::from_millis(200);
/// The longest one export may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How often a failing collector is reported.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Runs the exporter until `shutdown`; a second call returns at once.
pub(crate) async fn run(tracer: Arc<Tracer>, shutdown: CancellationToken) {
    let Some(mut rx) = lock(&tracer.rx).take() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot build the OTLP client ({e}); traces are not sent");
            return;
        }
    };
    tracing::info!(to = %tracer.cfg.traces_url, "sending traces over OTLP/HTTP");
    let mut warned: Option<Instant> = None;
    let mut batch: Vec<SpanRecord> = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            s = rx.recv() => s,
            _ = shutdown.cancelled() => None,
        };
        let Some(first) = first else {
            // Shutdown (or the tracer is gone): send what is queued, once.
            while let Ok(s) = rx.try_recv() {
                batch.push(s);
                if batch.len() == BATCH {
                    send(&tracer, &client, &mut batch, &mut warned).await;
                }
            }
            send(&tracer, &client, &mut batch, &mut warned).await;
            return;
        };
        batch.push(first);
        let until = tokio::time::Instant::now() + DELAY;
        while batch.len() < BATCH {
            tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => batch.push(s),
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
                _ = shutdown.cancelled() => break,
            }
        }
        send(&tracer, &client, &mut batch, &mut warned).await;
    }
}

/// POSTs `batch` (emptied either way).
async fn send(
    tracer: &Tracer,
    client: &reqwest::Client,
    batch: &mut Vec<SpanRecord>,
    warned: &mut Option<Instant>,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    let body = otlp::export_request(&tracer.cfg.service_name, batch);
    batch.clear();
    let outcome = client
        .post(&tracer.cfg.traces_url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await;
    let failure = match outcome {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("the collector answered {}", r.status())),
        Err(e) => Some(format!("cannot reach the collector: {e}")),
    };
    match failure {
        None => {
            tracer.exported.fetch_add(n, Ordering::Relaxed);
        }
        Some(why) => {
            let dropped = tracer.dropped.fetch_add(n, Ordering::Relaxed) + n;
            if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                *warned = Some(Instant::now());
                tracing::warn!("traces not sent ({why}); {dropped} spans dropped so far");
            }
        }
    }
}
