//! Multi-round-trip requests (MRTR): how a 2026-07-28 client answers the
//! sampling, elicitation and roots requests of a session-based upstream.
//!
//! The upstream's tool keeps running and waits for its answer. The gateway
//! answers the client's HTTP request with an `InputRequiredResult` and parks
//! the rest of the call (its message stream, its final reply and the upstream
//! requests waiting for input) under a random `requestState`. The client's
//! retry names that state; the gateway hands each `inputResponses` entry to the
//! upstream request with the same key and goes on reading the call. A state is
//! bound to the tenant, the method and the name it was issued for, is used
//! once, and expires, so a tampered, replayed or foreign state is refused.
//! Parked calls hold their cancellation guard: expiry cancels the upstream call.
//!
//! Keys: a legacy server may choose the key of its request with
//! `params._meta["dev.mcpgate/inputKey"]`; otherwise keys are `elicitation`,
//! `sampling` and `roots`, numbered from the second of a kind (`sampling_2`).
//! Answers sent with the first request (no `requestState`) are used as soon
//! as the upstream asks for their key.

use std::time::Duration;

use mcpgate_proto::jsonrpc;
use mcpgate_upstream::{Reply, UpstreamError};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::ctx::{Ctx, ModernCall};
use super::relay::Exchange;
use crate::state::error::CallError;
use crate::state::server_requests::Answer;
use crate::state::servers::Server;
use crate::state::sessions::ClientCaps;

/// After an upstream's first request, how long to wait for more before answering
/// (a server that asks for several inputs at once sends them back to back).
pub(crate) const SETTLE: Duration = Duration::from_millis(25);
/// The most input rounds one call may take with a 2026-07-28 upstream.
pub(crate) const MAX_ROUNDS: usize = 16;

/// A 2026-07-28 upstream's `InputRequiredResult`.
pub(crate) struct InputRequired {
    pub(crate) requests: Vec<(String, InputRequest)>,
    pub(crate) state: Option<String>,
}

#[derive(serde::Deserialize)]
pub(crate) struct InputRequest {
    pub(crate) method: String,
    #[serde(default)]
    pub(crate) params: Option<Value>,
}

impl InputRequired {
    /// The result as an input request, when its `resultType` says so.
    pub(crate) fn of(result: &RawValue) -> Option<InputRequired> {
        if !result.get().contains("input_required") {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct R {
            #[serde(rename = "resultType")]
            result_type: Option<String>,
            #[serde(rename = "inputRequests", default)]
            input_requests: Option<serde_json::Map<String, Value>>,
            #[serde(rename = "requestState", default)]
            request_state: Option<String>,
        }
        let r: R = serde_json::from_str(result.get()).ok()?;
        if r.result_type.as_deref() != Some("input_required") {
            return None;
        }
        let requests = r
            .input_requests
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?)))
            .collect();
        Some(InputRequired {
            requests,
            state: r.request_state,
        })
    }

    /// The original params plus `inputResponses` and the echoed `requestState`.
    pub(crate) fn retry_params(
        &self,
        params: Option<&RawValue>,
        answers: Map<String, Value>,
    ) -> Result<Box<RawValue>, CallError> {
        with_members(params, Some(answers), self.state.clone(), None)
    }
}

/// Params for a request to a 2026-07-28 upstream on behalf of a client of
/// either era: the upstream sees the client's own capabilities (so it asks
/// only for what the client can give) and, for a 2026-07-28 client, its log
/// level, its answers and the upstream's own state.
pub(crate) fn for_modern_upstream(
    modern: Option<&ModernCall>,
    session_caps: Option<&ClientCaps>,
    params: Option<&RawValue>,
) -> Result<Box<RawValue>, CallError> {
    let (answers, state) = modern
        .map(ModernCall::take_for_upstream)
        .unwrap_or_default();
    let caps = modern
        .map(|m| &m.caps)
        .or(session_caps)
        .and_then(|c| c.raw.clone())
        .unwrap_or_else(|| jsonrpc::to_raw(&serde_json::json!({})));
    let level = modern
        .and_then(|m| m.log_level_name.as_deref())
        .map(jsonrpc::raw_string);
    let old_meta = params
        .and_then(jsonrpc::raw_object)
        .and_then(|o| o.get("_meta").map(|m| (*m).to_owned()));
    let mut meta = old_meta
        .as_deref()
        .and_then(jsonrpc::raw_object)
        .unwrap_or_default();
    meta.insert(
        mcpgate_proto::modern::META_CLIENT_CAPABILITIES.into(),
        &caps,
    );
    if let Some(l) = &level {
        meta.insert(mcpgate_proto::modern::META_LOG_LEVEL.into(), l);
    }
    let meta = jsonrpc::to_raw(&meta);
    with_members(params, answers, state, Some(&meta))
}

/// `params` with `inputResponses`, `requestState` and `_meta` set (each when
/// given); the other members are copied through as raw text.
fn with_members(
    params: Option<&RawValue>,
    answers: Option<Map<String, Value>>,
    state: Option<String>,
    meta: Option<&RawValue>,
) -> Result<Box<RawValue>, CallError> {
    let answers = answers.map(|a| jsonrpc::to_raw(&a));
    let state = state.map(|s| jsonrpc::raw_string(&s));
    let mut obj = match params {
        Some(p) => jsonrpc::raw_object(p)
            .ok_or_else(|| CallError::InvalidParams("params must be an object".into()))?,
        None => jsonrpc::RawObject::new(),
    };
    for (k, v) in [
        ("inputResponses", answers.as_deref()),
        ("requestState", state.as_deref()),
        ("_meta", meta),
    ] {
        if let Some(v) = v {
            obj.insert(k.into(), v);
        }
    }
    Ok(jsonrpc::to_raw(&obj))
}

/// A 2026-07-28 upstream asks a session-based client for input: each
/// `InputRequiredResult` becomes server-to-client requests on the call's
/// stream, and the call is retried with the answers, for at most
/// `MAX_ROUNDS` rounds. Returns the final outcome; a refused or lost answer
/// ends the call with its error.
pub(crate) async fn input_rounds(
    ctx: &Ctx,
    srv: &Server,
    params: Option<&RawValue>,
    mut outcome: Result<Reply, UpstreamError>,
    exchange: &Exchange<'_>,
) -> Result<Result<Reply, UpstreamError>, CallError> {
    let mut rounds = 0;
    while let Ok(Reply::Result(r)) = &outcome {
        let Some(ir) = InputRequired::of(r) else {
            break;
        };
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Ok(Err(UpstreamError::Protocol {
                server: srv.name.to_string(),
                detail: format!("asked for client input more than {MAX_ROUNDS} times"),
            }));
        }
        let answers = ask_client(ctx, srv, &ir).await?;
        let retry = ir.retry_params(params, answers)?;
        outcome = exchange.run(Some(&retry)).await;
    }
    Ok(outcome)
}

/// Sends each input request of a 2026-07-28 upstream to a session-based
/// client as a server-to-client request, and collects the answers by key.
async fn ask_client(
    ctx: &Ctx,
    srv: &Server,
    ir: &InputRequired,
) -> Result<serde_json::Map<String, serde_json::Value>, CallError> {
    let session = ctx.session.as_ref();
    let mut waits = Vec::new();
    for (key, req) in &ir.requests {
        let allowed = session.is_some_and(|s| s.caps.allows(&req.method));
        if !allowed {
            let cap = ClientCaps::needed_by(&req.method).unwrap_or("a capability");
            return Err(CallError::MissingCapability {
                capability: cap.to_owned(),
                method: req.method.clone(),
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gid = ctx
            .app
            .server_requests
            .register(Answer::Bridge(tx), session.map(|s| s.id.as_str()));
        let params = req.params.as_ref().map(jsonrpc::to_raw);
        ctx.send(
            jsonrpc::request(
                jsonrpc::raw_string(&gid).get(),
                &req.method,
                params.as_deref(),
            )
            .into(),
        );
        waits.push((key.clone(), rx));
    }
    let timeout = srv.cfg.spec.timeout;
    let mut answers = serde_json::Map::new();
    for (key, rx) in waits {
        let reply = tokio::select! {
            r = rx => r.map_err(|_| CallError::Internal("the client's answer was lost".into()))?,
            _ = tokio::time::sleep(timeout) => {
                return Err(CallError::Upstream(UpstreamError::Timeout { server: srv.name.to_string(), ms: timeout.as_millis() }));
            }
            _ = ctx.cancel.cancelled() => {
                return Err(CallError::Upstream(UpstreamError::Cancelled { server: srv.name.to_string() }));
            }
        };
        match reply {
            Reply::Result(r) => {
                answers.insert(key, serde_json::from_str(r.get()).unwrap_or_default());
            }
            Reply::Error(e) => {
                return Err(CallError::InvalidParams(format!(
                    "the client refused the server's {key} request: {}",
                    e.get()
                )));
            }
        }
    }
    Ok(answers)
}
