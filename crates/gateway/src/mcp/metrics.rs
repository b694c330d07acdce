//! The `/metrics` document: the request path's counters (`state::metrics`)
//! plus what is read when Prometheus scrapes: each upstream's status and
//! breaker state, open sessions, the ledger writer's queue depth and commit
//! latency, and runs by state (one `GROUP BY` on the store). Nothing here
//! runs on the request path.

use crate::state::App;
use crate::state::metrics::Exposition;
use crate::state::servers::Status;
use mcpgate_proto::locks::lock;

const STATUSES: [(Status, &str); 5] = [
    (Status::Starting, "starting"),
    (Status::Ready, "ready"),
    (Status::Unreachable, "unreachable"),
    (Status::AuthFailed, "auth_failed"),
    (Status::ProtocolError, "protocol_error"),
];

/// The Prometheus text exposition of this gateway, now.
pub(crate) async fn render(app: &App) -> String {
    let mut out = Exposition::default();
    app.metrics.write(&mut out);

    out.family(
        "mcpgate_upstream_up",
        "gauge",
        "1 when the upstream server is ready, else 0.",
    );
    let statuses: Vec<(String, Status, &'static str)> = app
        .servers
        .all()
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                lock(&s.state).status,
                s.breaker.state_name(),
            )
        })
        .collect();
    for (name, status, _) in &statuses {
        out.sample(
            "mcpgate_upstream_up",
            &[("server", name.clone())],
            u8::from(*status == Status::Ready),
        );
    }
    out.family(
        "mcpgate_upstream_status",
        "gauge",
        "1 for the state each upstream server is in (starting, ready, unreachable, auth_failed, protocol_error).",
    );
    for (name, status, _) in &statuses {
        for (s, label) in STATUSES {
            out.sample(
                "mcpgate_upstream_status",
                &[("server", name.clone()), ("status", label.to_owned())],
                u8::from(*status == s),
            );
        }
    }
    out.family(
        "mcpgate_breaker_state",
        "gauge",
        "1 for each upstream's circuit breaker state (closed, open, half_open).",
    );
    for (name, _, breaker) in &statuses {
        for state in ["closed", "open", "half_open"] {
            out.sample(
                "mcpgate_breaker_state",
                &[("server", name.clone()), ("state", state.to_owned())],
                u8::from(*breaker == state),
            );
        }
    }

    out.family(
        "mcpgate_sessions",
        "gauge",
        "Open client sessions on this replica.",
    );
    out.sample("mcpgate_sessions", &[], app.sessions.len());

    let ledger = app.store.ledger();
    out.family(
        "mcpgate_ledger_queue_depth",
        "gauge",
        "Usage-ledger operations waiting for the writer.",
    );
    out.sample(
        "mcpgate_ledger_queue_depth",
        &[],
        ledger.stats().queue_depth(),
    );
    out.family(
        "mcpgate_ledger_commit_duration_seconds",
        "histogram",
        "Time to apply and commit one batch of the usage ledger.",
    );
    out.histogram(
        "mcpgate_ledger_commit_duration_seconds",
        &[],
        &ledger.stats().commit.snapshot(),
    );

    if let Some(t) = &app.telemetry {
        use std::sync::atomic::Ordering::Relaxed;
        out.family(
            "mcpgate_trace_spans_exported_total",
            "counter",
            "Trace spans the OTLP collector accepted.",
        );
        out.sample(
            "mcpgate_trace_spans_exported_total",
            &[],
            t.exported.load(Relaxed),
        );
        out.family(
            "mcpgate_trace_spans_dropped_total",
            "counter",
            "Trace spans dropped: the export queue was full or the collector did not take them.",
        );
        out.sample(
            "mcpgate_trace_spans_dropped_total",
            &[],
            t.dropped.load(Relaxed),
        );
    }

    out.family(
        "mcpgate_runs",
        "gauge",
        "Runs in the store by state (every replica on the same store reports the same).",
    );
    match app.store.count_runs_by_state().await {
        Ok(counts) => {
            for (state, n) in counts {
                out.sample("mcpgate_runs", &[("state", state)], n);
            }
        }
        Err(e) => tracing::warn!("/metrics: cannot count runs by state: {e}"),
    }
    out.finish()
}
