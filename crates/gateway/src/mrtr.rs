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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpgate_proto::{codes, jsonrpc};
use mcpgate_upstream::{Connection, Reply};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

use crate::dispatch::{Ctx, Out};
use crate::lock;
use crate::session::ClientCaps;

/// How long a parked call waits for the client's retry.
pub const PARK_TTL: Duration = Duration::from_secs(300);
/// The most calls parked at once; beyond it new inputs are refused.
pub const MAX_PARKED: usize = 10_000;
/// After an upstream's first request, how long to wait for more before answering
/// (a server that asks for several inputs at once sends them back to back).
pub const SETTLE: Duration = Duration::from_millis(25);
/// The `_meta` key a legacy server may use to name its input request's key.
pub const META_INPUT_KEY: &str = "dev.mcpgate/inputKey";
/// The most input rounds one call may take with a 2026-07-28 upstream.
pub const MAX_ROUNDS: usize = 16;

/// A 2026-07-28 upstream's `InputRequiredResult`.
pub struct InputRequired {
    pub requests: Vec<(String, InputRequest)>,
    pub state: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct InputRequest {
    pub method: String,
    #[serde(default)]
    pub params: Option<Value>,
}

impl InputRequired {
    /// The result as an input request, when its `resultType` says so.
    pub fn of(result: &RawValue) -> Option<InputRequired> {
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
    pub fn retry_params(
        &self,
        params: Option<&RawValue>,
        answers: Map<String, Value>,
    ) -> Result<Box<RawValue>, crate::error::CallError> {
        with_members(params, Some(answers), self.state.clone(), None)
    }
}

/// Params for a request to a 2026-07-28 upstream on behalf of a client of
/// either era: the upstream sees the client's own capabilities (so it asks
/// only for what the client can give) and, for a 2026-07-28 client, its log
/// level, its answers and the upstream's own state.
pub fn for_modern_upstream(
    modern: Option<&ModernCall>,
    session_caps: Option<&ClientCaps>,
    params: Option<&RawValue>,
) -> Result<Box<RawValue>, crate::error::CallError> {
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
) -> Result<Box<RawValue>, crate::error::CallError> {
    let answers = answers.map(|a| jsonrpc::to_raw(&a));
    let state = state.map(|s| jsonrpc::raw_string(&s));
    let mut obj = match params {
        Some(p) => jsonrpc::raw_object(p).ok_or_else(|| {
            crate::error::CallError::InvalidParams("params must be an object".into())
        })?,
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

/// What a 2026-07-28 request brings along for the length of its call.
pub struct ModernCall {
    pub caps: ClientCaps,
    /// The rank of `_meta["io.modelcontextprotocol/logLevel"]`; no logs without it.
    log_level: Option<u8>,
    log_level_name: Option<String>,
    /// `inputResponses` sent before the upstream asked for them.
    answers: Mutex<Map<String, Value>>,
    issued: Mutex<HashMap<&'static str, u32>>,
    /// A 2026-07-28 upstream's own `requestState`, on a retry of its input request.
    upstream_state: Option<String>,
}

impl ModernCall {
    pub fn new(
        caps: ClientCaps,
        log_level: Option<&str>,
        answers: Map<String, Value>,
        upstream_state: Option<String>,
    ) -> Self {
        ModernCall {
            caps,
            log_level: log_level.and_then(level_rank),
            log_level_name: log_level
                .filter(|l| level_rank(l).is_some())
                .map(str::to_owned),
            answers: Mutex::new(answers),
            issued: Mutex::new(HashMap::new()),
            upstream_state,
        }
    }

    /// The client's answers and the upstream's own state, for a 2026-07-28 upstream.
    fn take_for_upstream(&self) -> (Option<Map<String, Value>>, Option<String>) {
        let answers = std::mem::take(&mut *lock(&self.answers));
        (
            (!answers.is_empty()).then_some(answers),
            self.upstream_state.clone(),
        )
    }

    /// Whether a `notifications/message` meets the level the client asked for.
    pub fn wants_log(&self, params: &RawValue) -> bool {
        #[derive(serde::Deserialize)]
        struct P {
            level: String,
        }
        let Some(min) = self.log_level else {
            return false;
        };
        serde_json::from_str::<P>(params.get())
            .ok()
            .and_then(|p| level_rank(&p.level))
            .is_some_and(|l| l >= min)
    }

    fn key_for(&self, kind: &'static str, params: Option<&RawValue>) -> String {
        #[derive(serde::Deserialize)]
        struct P {
            #[serde(rename = "_meta")]
            meta: Option<Map<String, Value>>,
        }
        let hinted = params
            .and_then(|p| serde_json::from_str::<P>(p.get()).ok())
            .and_then(|p| p.meta)
            .and_then(|m| m.get(META_INPUT_KEY)?.as_str().map(str::to_owned))
            .filter(|k| !k.is_empty());
        if let Some(k) = hinted {
            return k;
        }
        let mut issued = lock(&self.issued);
        let n = issued.entry(kind).or_insert(0);
        *n += 1;
        if *n == 1 {
            kind.to_owned()
        } else {
            format!("{kind}_{n}")
        }
    }

    fn take_answer(&self, key: &str) -> Option<Value> {
        let mut answers = lock(&self.answers);
        match answers.get(key) {
            Some(v) if v.is_object() => answers.remove(key),
            _ => None,
        }
    }
}

fn level_rank(level: &str) -> Option<u8> {
    const LEVELS: [&str; 8] = [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ];
    LEVELS.iter().position(|l| *l == level).map(|p| p as u8)
}

/// An upstream request waiting for the client's input.
pub struct Pending {
    pub key: String,
    method: String,
    params: Option<Box<RawValue>>,
    conn: Connection,
    upstream_id: Box<RawValue>,
}

/// A session-based upstream sent `method` during a 2026-07-28 client's call:
/// refuse it if the client lacks the capability, answer it from the answers
/// sent up front, or ask the client (the call's response becomes an
/// `InputRequiredResult`).
pub async fn upstream_asks(
    ctx: &Ctx,
    m: &ModernCall,
    conn: &Connection,
    id: Box<RawValue>,
    method: String,
    params: Option<Box<RawValue>>,
) {
    let refuse = |code, message: String, data: Option<Value>| {
        Reply::Error(jsonrpc::error_object(code, &message, data.as_ref()))
    };
    let Some(kind) = ClientCaps::needed_by(&method) else {
        let e = refuse(
            codes::METHOD_NOT_FOUND,
            format!("a 2026-07-28 client cannot be asked for {method}"),
            None,
        );
        let _ = conn.respond(&id, e).await;
        return;
    };
    if !m.caps.allows(&method) {
        let e = refuse(
            codes::MISSING_CLIENT_CAPABILITY,
            format!("the client did not declare the {kind} capability that {method} needs"),
            Some(serde_json::json!({ "requiredCapabilities": { kind: {} } })),
        );
        let _ = conn.respond(&id, e).await;
        return;
    }
    let key = m.key_for(kind, params.as_deref());
    if let Some(answer) = m.take_answer(&key) {
        let _ = conn
            .respond(&id, Reply::Result(jsonrpc::to_raw(&answer)))
            .await;
        return;
    }
    let _ = ctx.out.send(Out::Input(Pending {
        key,
        method,
        params,
        conn: conn.clone(),
        upstream_id: id,
    }));
}

/// The rest of a call that the client is reading, or will read after its retry.
pub struct Tail {
    pub out: mpsc::UnboundedReceiver<Out>,
    pub reply: oneshot::Receiver<Vec<u8>>,
    /// Upstream requests the client has been asked to answer.
    pub pending: Vec<Pending>,
    /// Dropping the tail cancels the call.
    pub cancel: DropGuard,
}

impl Tail {
    /// Hands each answer to the waiting upstream request with its key. Entries
    /// that are not objects, or name no waiting request, are ignored (the
    /// request stays waiting and is asked again).
    pub async fn deliver(&mut self, answers: &Map<String, Value>) {
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            match answers.get(&p.key).filter(|v| v.is_object()) {
                Some(v) => {
                    let r = p
                        .conn
                        .respond(&p.upstream_id, Reply::Result(jsonrpc::to_raw(v)))
                        .await;
                    if let Err(e) = r {
                        tracing::warn!(server = %p.conn.name(), "could not deliver the client's input: {e}");
                    }
                }
                None => still.push(p),
            }
        }
        self.pending = still;
    }

    /// The `InputRequiredResult` asking for every pending input.
    pub fn input_required(&self, state: &str) -> Box<RawValue> {
        let requests: Map<String, Value> = self
            .pending
            .iter()
            .map(|p| {
                let mut params: Map<String, Value> = p
                    .params
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r.get()).ok())
                    .unwrap_or_default();
                // The upstream's progress token and our key hint mean nothing to the client.
                if let Some(Value::Object(meta)) = params.get_mut("_meta") {
                    meta.remove("progressToken");
                    meta.remove(META_INPUT_KEY);
                    if meta.is_empty() {
                        params.remove("_meta");
                    }
                }
                (
                    p.key.clone(),
                    serde_json::json!({ "method": p.method, "params": params }),
                )
            })
            .collect();
        jsonrpc::to_raw(&serde_json::json!({
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": state,
        }))
    }
}

/// What a parked call was issued for; a retry must match it.
#[derive(PartialEq, Eq, Clone, Debug)]
pub struct Owner {
    pub tenant: Arc<str>,
    pub method: String,
    pub name: Option<String>,
}

/// What a `requestState` stands for.
pub enum Held {
    /// A call whose session-based upstream waits for input (bridged MRTR).
    Call(Tail),
    /// A 2026-07-28 upstream's own input request: its state, if it gave one.
    Upstream(Option<String>),
}

struct Parked {
    owner: Owner,
    expires: Instant,
    held: Held,
}

/// Parked calls, by `requestState`.
#[derive(Default)]
pub struct Parking {
    map: Mutex<HashMap<String, Parked>>,
}

impl Parking {
    /// Parks a call under `state`; gives the tail back when full.
    pub fn park(&self, state: String, owner: Owner, held: Held) -> Result<(), Box<Held>> {
        let mut map = lock(&self.map);
        if map.len() >= MAX_PARKED {
            return Err(Box::new(held));
        }
        map.insert(
            state,
            Parked {
                owner,
                expires: Instant::now() + PARK_TTL,
                held,
            },
        );
        Ok(())
    }

    /// Takes the call a retry names, if it is live and was issued to the same
    /// tenant for the same method and name. A state is good for one retry.
    pub fn take(&self, state: &str, owner: &Owner) -> Option<Held> {
        let mut map = lock(&self.map);
        match map.get(state) {
            Some(p) if p.owner == *owner && p.expires > Instant::now() => {
                map.remove(state).map(|p| p.held)
            }
            _ => None,
        }
    }

    /// Drops expired calls, which cancels them upstream.
    pub fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Parked> = {
            let mut map = lock(&self.map);
            let keys: Vec<String> = map
                .iter()
                .filter(|(_, p)| p.expires <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        if !expired.is_empty() {
            tracing::info!(
                "{} call(s) waiting for client input expired after {PARK_TTL:?}",
                expired.len()
            );
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hinted_or_numbered_per_kind() {
        let m = ModernCall::new(ClientCaps::from_capabilities(None), None, Map::new(), None);
        let hint = RawValue::from_string(
            r#"{"message":"x","_meta":{"dev.mcpgate/inputKey":"user_name"}}"#.into(),
        )
        .expect("json");
        assert_eq!(m.key_for("elicitation", Some(&hint)), "user_name");
        assert_eq!(m.key_for("sampling", None), "sampling");
        assert_eq!(m.key_for("sampling", None), "sampling_2");
        assert_eq!(m.key_for("roots", None), "roots");
    }

    #[test]
    fn logs_need_a_level_and_meet_it() {
        let info = RawValue::from_string(r#"{"level":"info","data":1}"#.into()).expect("json");
        let none = ModernCall::new(ClientCaps::from_capabilities(None), None, Map::new(), None);
        assert!(!none.wants_log(&info));
        let warn = ModernCall::new(
            ClientCaps::from_capabilities(None),
            Some("warning"),
            Map::new(),
            None,
        );
        assert!(!warn.wants_log(&info));
        let debug = ModernCall::new(
            ClientCaps::from_capabilities(None),
            Some("debug"),
            Map::new(),
            None,
        );
        assert!(debug.wants_log(&info));
    }

    #[test]
    fn only_object_answers_are_taken() {
        let mut a = Map::new();
        a.insert("user_name".into(), serde_json::json!(12345));
        a.insert("ok".into(), serde_json::json!({"action": "accept"}));
        let m = ModernCall::new(ClientCaps::from_capabilities(None), None, a, None);
        assert!(m.take_answer("user_name").is_none());
        assert!(m.take_answer("ok").is_some());
        assert!(m.take_answer("ok").is_none(), "an answer is used once");
    }
}
