//! Running one client request, the same way for both eras: the policy
//! chain's in-memory steps for a billable call (`admit_billable`: visible? →
//! rate → concurrency, each refusal recorded in the ledger), then the request
//! itself (`start_call`): its work is driven by the HTTP handler while the
//! handler waits for the first thing to send, and moves into a task of its
//! own when it must outlive the handler (`state::work`), so a dropped HTTP
//! connection never cancels it by accident; what it sends comes back on
//! `Running`.

use std::sync::Arc;

use mcpgate_proto::jsonrpc::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ctx::{Ctx, ModernCall};
use super::dispatch;
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::error::CallError;
use crate::state::parking::Out;
use crate::state::policy::{Call, Denial, Meter, retry_after_secs};
use crate::state::sessions::Session;
use crate::state::work::Work;

/// Why a request was refused before it ran.
#[derive(Debug)]
pub(crate) enum Refused {
    /// An ordinary JSON-RPC error (bad params, a hidden name as not found).
    Error(CallError),
    /// A limit: answered 429 with `Retry-After` (seconds).
    Limited { error: CallError, retry_after: u64 },
}

/// Steps 1–3 of the policy chain for a billable call (`tools/call`,
/// `resources/read`, `prompts/get`); `None` for any other request, or when
/// the ledger is off (`auth = "none"` with `audit = false`). A refusal is
/// recorded in the ledger here.
pub(crate) async fn admit_billable(
    app: &App,
    who: &Arc<Principal>,
    msg: &Message,
    session: Option<&Session>,
) -> Result<Option<Meter>, Refused> {
    let call = match Call::of(msg).filter(|_| app.cfg.policy.audit) {
        None => return Ok(None),
        Some(Err(e)) => return Err(Refused::Error(e)),
        Some(Ok(call)) => call,
    };
    let session_id = session.map(|s| s.id.clone());
    let record_args = app.cfg.policy.audit_arguments;
    let admitted = crate::telemetry::child(
        app.telemetry.as_ref(),
        "policy",
        app.gate.admit(who, &call, app.shared_rate.as_ref()),
        Result::is_err,
    )
    .await;
    let denial = match admitted {
        Ok(permit) => {
            return Ok(Some(Meter::new(
                who.clone(),
                call,
                msg,
                session_id,
                permit,
                record_args,
            )));
        }
        Err(d) => d,
    };
    let meter = Meter::new(who.clone(), call, msg, session_id, None, record_args);
    let outcome = denial.outcome();
    let refused = match denial {
        Denial::Hidden => Refused::Error(meter.call.not_found()),
        Denial::Rate { retry_after } => {
            let secs = retry_after_secs(retry_after);
            Refused::Limited {
                error: CallError::RateLimited(format!(
                    "rate limit of tier '{}' exceeded; retry in {secs} s",
                    who.tier.name
                )),
                retry_after: secs,
            }
        }
        Denial::Concurrency { limit } => Refused::Limited {
            error: CallError::RateLimited(format!(
                "tenant '{}' already has {limit} calls in flight, the most tier '{}' allows",
                who.tenant, who.tier.name
            )),
            retry_after: 1,
        },
    };
    let error = match &refused {
        Refused::Error(e) | Refused::Limited { error: e, .. } => e.to_string(),
    };
    meter.deny(&app.store, &app.metrics, None, outcome, &error);
    Err(refused)
}

/// A request on its way.
pub(crate) struct Running {
    /// What reaches the client before the reply (notifications, requests, inputs).
    pub(crate) out: mpsc::UnboundedReceiver<Out>,
    /// The serialised JSON-RPC response.
    pub(crate) reply: oneshot::Receiver<Vec<u8>>,
    /// Cancels the request (a 2026-07-28 client closing its stream).
    pub(crate) cancel: CancellationToken,
    /// The request's work: whoever waits for it drives it, or detaches it.
    pub(crate) work: Work,
}

/// A fresh 128-bit trace id in W3C form (32 lowercase hex digits): a
/// random per-process prefix and a counter, so it costs no system call.
fn trace_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b) | 1
    });
    format!("{prefix:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Starts `msg` through `dispatch`; the caller drives `Running::work`.
pub(crate) fn start_call(
    app: Arc<App>,
    principal: Arc<Principal>,
    session: Option<Arc<Session>>,
    modern: Option<Arc<ModernCall>>,
    msg: Message,
    meter: Option<Meter>,
) -> Running {
    let (out_tx, out) = mpsc::unbounded_channel::<Out>();
    let (reply_tx, reply) = oneshot::channel::<Vec<u8>>();
    let cancel = CancellationToken::new();
    // With `[telemetry]`: the request span, which the call's task carries on.
    let trace = crate::telemetry::current(app.telemetry.as_ref());
    if let Some(t) = &trace {
        let session = session.as_deref().map(|s| s.id.as_str());
        crate::telemetry::describe_call(t, msg.method(), &principal.tenant, session);
    }
    // Every log line of the call carries these fields (`--log-format json`
    // puts them in its `spans` list); the trace id is the OpenTelemetry
    // one when tracing is on.
    let span = tracing::info_span!(
        "call",
        trace_id = %trace.as_ref().map_or_else(trace_id, |t| t.trace_id_hex()),
        tenant = %principal.tenant,
        session = session.as_deref().map(|s| s.id.as_str()),
        run = principal.run.as_ref().map(|r| tracing::field::display(&r.run)),
        method = msg.method(),
    );
    let ctx = Ctx {
        app,
        principal,
        session,
        modern,
        cancel: cancel.clone(),
        out: out_tx,
    };
    let work = Work::new(
        crate::telemetry::scope(trace, async move {
            let started = std::time::Instant::now();
            let body = dispatch::request(&ctx, &msg, meter).await;
            drop(ctx);
            tracing::debug!(took_us = started.elapsed().as_micros() as u64, "call done");
            let _ = reply_tx.send(body);
        })
        .instrument(span),
    );
    Running {
        out,
        reply,
        cancel,
        work,
    }
}
