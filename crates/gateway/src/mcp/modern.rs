//! What a 2026-07-28 (stateless) request does once its headers passed
//! (`http::modern` checks them): `server/discover`; and for every other
//! method, a call started through the same policy chain and `dispatch` as a
//! session-based request, with no session. MRTR members (`requestState`,
//! `inputResponses`) are taken out here: a retry resumes the call it names,
//! which `pump` parks again whenever the upstream asks for more input.
//! Replies are decorated for this era (`resultType`, caching hints, -32602 for
//! an unknown resource). The HTTP layer turns the `Frame`s into JSON or SSE.
//! A `*/list` is answered at once from the catalog's pages, already in this
//! era's shape (`dispatch::list_from_memory`): no task, no re-reading of the page.

use std::sync::Arc;

use bytes::Bytes;
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_proto::modern::{self as wire, RequestMeta};
use mcpgate_proto::{codes, version};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::call::{Refused, admit_billable, start_call};
use super::ctx::ModernCall;
use super::health::initialize_result;
use super::mrtr::{InputRequired, SETTLE};
use super::params::Params;
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::error::CallError;
use crate::state::parking::{Held, Out, Owner, Tail};
use crate::state::sessions::ClientCaps;

/// The versions this endpoint speaks: the stateless one, then the session-based ones.
pub(crate) fn supported_versions() -> Vec<&'static str> {
    std::iter::once(version::MODERN)
        .chain(version::SERVED.iter().copied())
        .collect()
}

/// A 2026-07-28 call on its way: what it was issued for, the client's
/// request id, and the rest of the call to read.
pub(crate) struct ModernRun {
    pub(crate) owner: Owner,
    pub(crate) id: Box<RawValue>,
    pub(crate) tail: Tail,
}

/// Starts (or, for a retry naming a parked call, resumes) a 2026-07-28 call.
pub(crate) async fn start(
    app: &Arc<App>,
    who: &Arc<Principal>,
    mut msg: Message,
    meta: &RequestMeta,
) -> Result<ModernRun, Refused> {
    let method = msg.method().to_owned();
    // MRTR members are the gateway's business; the upstream gets the rest.
    let (state, answers) = take_mrtr_params(&mut msg).map_err(Refused::Error)?;
    let owner = Owner {
        tenant: who.tenant.clone(),
        method: method.clone(),
        name: wire::name_param(&method)
            .and_then(|m| Params::parse(msg.params.as_deref()).ok()?.string(m).ok()),
    };
    let id = msg.id.clone().unwrap_or_else(jsonrpc::raw_null);
    // A retry names what the gateway parked: a bridged call waiting for input,
    // or a 2026-07-28 upstream's own input request (then a new request to it,
    // carrying the answers and its state, and not billed again).
    let mut resumed = None;
    if let Some(state) = state {
        match app.parking.take(&state, &owner) {
            Some(Held::Call(mut tail)) => {
                Box::pin(tail.deliver(&answers)).await;
                return Ok(ModernRun { owner, id, tail });
            }
            Some(Held::Upstream(upstream_state)) => resumed = Some(upstream_state),
            None => {
                return Err(Refused::Error(CallError::InvalidParams(
                    "requestState is not valid: it is unknown, expired, already used, altered, or was issued for another call".into(),
                )));
            }
        }
    }
    let meter = match resumed {
        None => admit_billable(app, who, &msg, None).await?,
        Some(_) => None,
    };
    let modern = ModernCall::new(
        ClientCaps::from_capabilities(meta.client_capabilities.as_ref()),
        meta.log_level.as_deref(),
        answers,
        resumed.flatten(),
    );
    let running = start_call(
        app.clone(),
        who.clone(),
        None,
        Some(Arc::new(modern)),
        msg,
        meter,
    );
    let tail = Tail {
        out: running.out,
        reply: running.reply,
        pending: Vec::new(),
        _cancel: running.cancel.drop_guard(),
        work: running.work,
    };
    Ok(ModernRun { owner, id, tail })
}

/// Takes out what belongs to the client-to-gateway hop: `requestState` and
/// `inputResponses` (MRTR is the gateway's business; an `inputResponses`
/// that is not an object of objects is invalid params) and the 2026-07-28
/// `_meta` keys (the upstream hop speaks its own revision; rmcp, for one,
/// refuses server-to-client requests when it sees a 2026 version there).
fn take_mrtr_params(msg: &mut Message) -> Result<(Option<String>, Map<String, Value>), CallError> {
    use CallError::InvalidParams;
    let Some(p) = msg.params.as_deref() else {
        return Ok((None, Map::new()));
    };
    // Values stay raw: the arguments are copied through, never re-read.
    let mut all =
        jsonrpc::raw_object(p).ok_or_else(|| InvalidParams("params must be an object".into()))?;
    let state = match all.remove("requestState") {
        None => None,
        Some(s) => Some(
            serde_json::from_str::<String>(s.get())
                .map_err(|_| InvalidParams("requestState must be a string".into()))?,
        ),
    };
    let answers = match all.remove("inputResponses") {
        None => Map::new(),
        Some(a) => serde_json::from_str::<Map<String, Value>>(a.get()).map_err(|_| {
            InvalidParams(
                "inputResponses must be an object mapping each inputRequests key to its result"
                    .into(),
            )
        })?,
    };
    // Each answer is the result of one input request, so an object: anything
    // else would be dropped unseen and the call finish as if nothing were sent.
    if let Some((key, _)) = answers.iter().find(|(_, v)| !v.is_object()) {
        return Err(InvalidParams(format!(
            "inputResponses[{key:?}] must be an object (the result of that input request)"
        )));
    }
    let meta = all.remove("_meta").and_then(jsonrpc::raw_object);
    let kept = meta.map(|mut m| {
        m.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        m
    });
    let kept_raw = kept.filter(|m| !m.is_empty()).map(|m| jsonrpc::to_raw(&m));
    if let Some(m) = &kept_raw {
        all.insert("_meta".into(), m);
    }
    msg.params = Some(jsonrpc::to_raw(&all));
    Ok((state, answers))
}

/// How the HTTP layer should answer a call's final message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Ok,
    /// A client error the revision answers with 400 (a missing capability).
    BadRequest,
    /// Too many calls are parked: 503.
    Busy,
    /// The gateway failed: 500.
    Internal,
}

/// What travels from a call to its HTTP response.
pub(crate) enum Frame {
    /// A notification (progress, logs): only on an SSE response.
    Event(Bytes),
    /// The last message: the result, an error, or an `InputRequiredResult`.
    Final(Verdict, Vec<u8>),
}

/// Reads a call until its reply or its first input request, writing frames;
/// parks the call when the client must answer input first.
pub(crate) async fn pump(app: Arc<App>, run: ModernRun, tx: mpsc::Sender<Frame>, sse: bool) {
    let ModernRun {
        owner,
        id,
        mut tail,
    } = run;
    if tail.pending.is_empty() {
        loop {
            let o = tokio::select! {
                _ = tx.closed() => return, // the client left: dropping the tail cancels
                o = tail.next_out() => o,
            };
            match o {
                Some(Out::Msg(m)) => {
                    if sse && tx.send(Frame::Event(m)).await.is_err() {
                        return;
                    }
                }
                Some(Out::Input(p)) => {
                    tail.pending.push(p);
                    // Several inputs asked together go out in one InputRequiredResult.
                    while let Ok(Some(o)) = tokio::time::timeout(SETTLE, tail.next_out()).await {
                        match o {
                            Out::Input(p) => tail.pending.push(p),
                            Out::Msg(m) if sse => {
                                let _ = tx.send(Frame::Event(m)).await;
                            }
                            Out::Msg(_) => {}
                        }
                    }
                    break;
                }
                None => {
                    let reply = tail.final_reply().await.unwrap_or_else(|| {
                        jsonrpc::response_error(
                            None,
                            codes::INTERNAL_ERROR,
                            "internal error: the call ended without an answer",
                            None,
                        )
                    });
                    let (status, body) = finish(&app, &owner, &id, &reply);
                    let _ = tx.send(Frame::Final(status, body)).await;
                    return;
                }
            }
        }
    }
    let state = app.parking.new_state();
    let frame = match state {
        Some(state) => {
            let result = tail.input_required(&state);
            match app.parking.park(state, owner, Held::Call(tail)) {
                Ok(()) => Frame::Final(Verdict::Ok, jsonrpc::response_result(&id, &result)),
                Err(_dropped) => busy(&id),
            }
        }
        None => busy(&id),
    };
    let _ = tx.send(frame).await;
}

fn busy(id: &RawValue) -> Frame {
    Frame::Final(
        Verdict::Busy,
        jsonrpc::response_error(
            Some(id),
            codes::INTERNAL_ERROR,
            "Service Unavailable: too many calls are waiting for client input",
            None,
        ),
    )
}

/// The client's view of a call's reply: its own request id, `resultType` on
/// results (with caching hints where the method has them), and the
/// 2026-07-28 code for an unknown resource (-32602 with `data.uri`).
fn finish(app: &App, owner: &Owner, id: &RawValue, reply: &[u8]) -> (Verdict, Vec<u8>) {
    let method = owner.method.as_str();
    let internal = || {
        (
            Verdict::Internal,
            jsonrpc::response_error(Some(id), codes::INTERNAL_ERROR, "internal error", None),
        )
    };
    let Ok(m) = Message::parse(reply) else {
        return internal();
    };
    if let Some(r) = m.result {
        // The common case, a complete result, is decorated without re-reading
        // its values (a 5,000-tool list is a megabyte).
        if InputRequired::of(&r).is_none() {
            let cacheable = wire::is_cacheable(method);
            let hints: &[(&str, &str)] = if cacheable {
                &[
                    ("resultType", "\"complete\""),
                    ("ttlMs", "0"),
                    ("cacheScope", "\"private\""),
                ]
            } else {
                &[("resultType", "\"complete\"")]
            };
            let Some(out) = jsonrpc::add_members(&r, hints) else {
                return internal();
            };
            return (Verdict::Ok, jsonrpc::response_result(id, &out));
        }
        let Ok(mut obj) = serde_json::from_str::<Map<String, Value>>(r.get()) else {
            return internal();
        };
        obj.entry("resultType").or_insert_with(|| json!("complete"));
        if obj.get("resultType").and_then(Value::as_str) == Some("input_required") {
            // A 2026-07-28 upstream's input request: the client gets a state
            // bound to it (tenant, method, name); the upstream's own rides along.
            let theirs = match obj.remove("requestState") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            let Some(ours) = app.parking.new_state() else {
                return internal();
            };
            if app
                .parking
                .park(ours.clone(), owner.clone(), Held::Upstream(theirs))
                .is_err()
            {
                return internal();
            }
            obj.insert("requestState".into(), json!(ours));
        }
        if wire::is_cacheable(method) {
            cache_hints(&mut obj);
        }
        return (
            Verdict::Ok,
            jsonrpc::response_result(id, &jsonrpc::to_raw(&obj)),
        );
    }
    let Some(e) = m.error else {
        return internal();
    };
    let Ok(mut err) = serde_json::from_str::<Map<String, Value>>(e.get()) else {
        return internal();
    };
    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
    if code == codes::RESOURCE_NOT_FOUND {
        err.insert("code".into(), json!(codes::INVALID_PARAMS));
    }
    let status = if code == codes::MISSING_CLIENT_CAPABILITY {
        Verdict::BadRequest
    } else {
        Verdict::Ok
    };
    (
        status,
        jsonrpc::response_error_raw(Some(id), &jsonrpc::to_raw(&err)),
    )
}

/// Lists are filtered per tier, so they may be cached by this client only, and
/// only until the next `list_changed`.
pub(crate) fn cache_hints(obj: &mut Map<String, Value>) {
    obj.entry("ttlMs").or_insert_with(|| json!(0));
    obj.entry("cacheScope").or_insert_with(|| json!("private"));
}

/// `server/discover`: the versions this endpoint speaks and what the gateway
/// serves across its upstreams (the same capabilities `initialize` reports).
pub(crate) fn discover(app: &App) -> Box<RawValue> {
    let init: Map<String, Value> =
        serde_json::from_str(initialize_result(app, version::MODERN).get()).unwrap_or_default();
    let mut out = Map::new();
    out.insert("resultType".into(), json!("complete"));
    out.insert("supportedVersions".into(), json!(supported_versions()));
    out.insert(
        "capabilities".into(),
        init.get("capabilities")
            .cloned()
            .unwrap_or_else(|| json!({})),
    );
    if let Some(i) = init.get("instructions") {
        out.insert("instructions".into(), i.clone());
    }
    cache_hints(&mut out);
    out.insert(
        "_meta".into(),
        json!({ wire::META_SERVER_INFO: {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")} }),
    );
    jsonrpc::to_raw(&out)
}
