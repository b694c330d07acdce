//! Open 2026-07-28 `subscriptions/listen` streams, which replace the
//! session-based standalone GET stream: what each asked to hear (its
//! `Filter`), the tenant that opened it, and the channel its SSE response
//! reads. Every notification is tagged with the listen request's id.

use std::collections::HashMap;

use bytes::Bytes;
use mcpgate_proto::jsonrpc;
use mcpgate_proto::modern as wire;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use mcpgate_proto::locks::lock;

/// What one `subscriptions/listen` stream asked to hear.
#[derive(serde::Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Filter {
    pub(crate) tools_list_changed: bool,
    pub(crate) prompts_list_changed: bool,
    pub(crate) resources_list_changed: bool,
    pub(crate) resource_subscriptions: Vec<String>,
}

pub(crate) struct Listener {
    pub(crate) filter: Filter,
    /// The id of the `subscriptions/listen` request, which tags every notification.
    pub(crate) sub_id: Box<RawValue>,
    pub(crate) tx: mpsc::UnboundedSender<Bytes>,
}

/// Open `subscriptions/listen` streams, which replace the session-based
/// standalone GET stream.
#[derive(Default)]
pub(crate) struct Listeners {
    map: std::sync::Mutex<HashMap<String, Listener>>,
}

impl Listeners {
    /// Sends a list-change notification to every stream that asked for it.
    pub(crate) fn list_changed(&self, method: &str) {
        self.send(method, None, |f| match method {
            "notifications/tools/list_changed" => f.tools_list_changed,
            "notifications/prompts/list_changed" => f.prompts_list_changed,
            "notifications/resources/list_changed" => f.resources_list_changed,
            _ => false,
        });
    }

    /// Sends `notifications/resources/updated` to the streams subscribed to `uri`.
    pub(crate) fn resource_updated(&self, uri: &str) {
        self.send(
            "notifications/resources/updated",
            Some(("uri", json!(uri))),
            |f| f.resource_subscriptions.iter().any(|u| u == uri),
        );
    }

    fn send(&self, method: &str, extra: Option<(&str, Value)>, wants: impl Fn(&Filter) -> bool) {
        let map = lock(&self.map);
        for l in map.values().filter(|l| wants(&l.filter)) {
            let mut params = Map::new();
            if let Some((k, v)) = &extra {
                params.insert((*k).to_owned(), v.clone());
            }
            params.insert("_meta".into(), tag(&l.sub_id));
            let _ =
                l.tx.send(jsonrpc::notification(method, Some(&jsonrpc::to_raw(&params))).into());
        }
    }

    pub(crate) fn insert(&self, key: String, l: Listener) {
        lock(&self.map).insert(key, l);
    }

    pub(crate) fn remove(&self, key: &str) {
        lock(&self.map).remove(key);
    }
}

pub(crate) fn tag(sub_id: &RawValue) -> Value {
    let id: Value = serde_json::from_str(sub_id.get()).unwrap_or(Value::Null);
    json!({ wire::META_SUBSCRIPTION_ID: id })
}
