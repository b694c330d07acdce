//! The context a client request runs in, for both eras: who is calling,
//! their session (none for 2026-07-28), what a 2026-07-28 request brought
//! along (`ModernCall`), the token that cancels it, and the outbox that
//! carries what reaches the client while it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mcpgate_proto::logging::log_level_rank;
use mcpgate_proto::{codes, jsonrpc};
use mcpgate_upstream::{Connection, Reply};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::App;
use crate::state::auth::Principal;
use crate::state::parking::{META_INPUT_KEY, Out, Pending};
use crate::state::sessions::{ClientCaps, Session};
use mcpgate_proto::locks::lock;

pub(crate) type Outbox = mpsc::UnboundedSender<Out>;

pub(crate) struct Ctx {
    pub(crate) app: Arc<App>,
    pub(crate) principal: Arc<Principal>,
    pub(crate) session: Option<Arc<Session>>,
    /// Set for a 2026-07-28 client: its declared capabilities, log level and answers.
    pub(crate) modern: Option<Arc<ModernCall>>,
    /// Cancelled when the call must stop (a 2026-07-28 client closed its stream).
    pub(crate) cancel: CancellationToken,
    pub(crate) out: Outbox,
}

impl Ctx {
    pub(crate) fn send(&self, msg: Bytes) {
        let _ = self.out.send(Out::Msg(msg));
    }
}

/// What a 2026-07-28 request brings along for the length of its call.
pub(crate) struct ModernCall {
    pub(crate) caps: ClientCaps,
    /// The rank of `_meta["io.modelcontextprotocol/logLevel"]`; no logs without it.
    log_level: Option<u8>,
    pub(crate) log_level_name: Option<String>,
    /// `inputResponses` sent before the upstream asked for them.
    answers: Mutex<Map<String, Value>>,
    issued: Mutex<HashMap<&'static str, u32>>,
    /// A 2026-07-28 upstream's own `requestState`, on a retry of its input request.
    upstream_state: Option<String>,
}

impl ModernCall {
    pub(crate) fn new(
        caps: ClientCaps,
        log_level: Option<&str>,
        answers: Map<String, Value>,
        upstream_state: Option<String>,
    ) -> Self {
        ModernCall {
            caps,
            log_level: log_level.and_then(log_level_rank),
            log_level_name: log_level
                .filter(|l| log_level_rank(l).is_some())
                .map(str::to_owned),
            answers: Mutex::new(answers),
            issued: Mutex::new(HashMap::new()),
            upstream_state,
        }
    }

    /// The client's answers and the upstream's own state, for a 2026-07-28 upstream.
    pub(crate) fn take_for_upstream(&self) -> (Option<Map<String, Value>>, Option<String>) {
        let answers = std::mem::take(&mut *lock(&self.answers));
        (
            (!answers.is_empty()).then_some(answers),
            self.upstream_state.clone(),
        )
    }

    /// Whether a `notifications/message` meets the level the client asked for.
    pub(crate) fn wants_log(&self, params: &RawValue) -> bool {
        #[derive(serde::Deserialize)]
        struct P {
            level: String,
        }
        let Some(min) = self.log_level else {
            return false;
        };
        serde_json::from_str::<P>(params.get())
            .ok()
            .and_then(|p| log_level_rank(&p.level))
            .is_some_and(|l| l >= min)
    }

    pub(crate) fn key_for(&self, kind: &'static str, params: Option<&RawValue>) -> String {
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

    pub(crate) fn take_answer(&self, key: &str) -> Option<Value> {
        let mut answers = lock(&self.answers);
        match answers.get(key) {
            Some(v) if v.is_object() => answers.remove(key),
            _ => None,
        }
    }

    /// A session-based upstream sent `method` during a 2026-07-28 client's call:
    /// refuse it if the client lacks the capability, answer it from the answers
    /// sent up front, or ask the client (the call's response becomes an
    /// `InputRequiredResult`).
    pub(crate) async fn upstream_asks(
        &self,
        out: &Outbox,
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
        if !self.caps.allows(&method) {
            let e = refuse(
                codes::MISSING_CLIENT_CAPABILITY,
                format!("the client did not declare the {kind} capability that {method} needs"),
                Some(serde_json::json!({ "requiredCapabilities": { kind: {} } })),
            );
            let _ = conn.respond(&id, e).await;
            return;
        }
        let key = self.key_for(kind, params.as_deref());
        if let Some(answer) = self.take_answer(&key) {
            let _ = conn
                .respond(&id, Reply::Result(jsonrpc::to_raw(&answer)))
                .await;
            return;
        }
        let _ = out.send(Out::Input(Pending {
            key,
            method,
            params,
            conn: conn.clone(),
            upstream_id: id,
        }));
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
