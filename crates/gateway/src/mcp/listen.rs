//! `subscriptions/listen`, the 2026-07-28 replacement of the standalone GET
//! stream: the stream opens with `notifications/subscriptions/acknowledged`
//! (naming what the gateway agreed to send) and then carries the
//! notifications its filter asked for, each tagged with the listen request's
//! id. Resource subscriptions are taken out upstream for the URIs the
//! tenant may read, and given back when the stream closes (`Unlisten`).
//! Upstream, a subscription is `resources/subscribe` over a session (a
//! dual-era server's session-based connection included); a server reached
//! only statelessly has no such method, so a `subscriptions/listen` stream of
//! our own, for that one URI, stands in for it, for session-based clients'
//! `resources/subscribe` too (`dispatch`).

use std::sync::Arc;

use bytes::Bytes;
use mcpgate_proto::jsonrpc::{self, Message};
use mcpgate_upstream::{Connection, Incoming, Reply, RequestOpts, UpstreamError};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::supervise::{connection_for, session_conn};
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::error::CallError;
use crate::state::listeners::{Filter, Listener, tag};
use crate::state::sessions::new_session_id;

/// An open listen stream: its first event, what follows, and the guard
/// that ends it when the response is dropped.
pub(crate) struct Listening {
    pub(crate) ack: Vec<u8>,
    pub(crate) rx: mpsc::UnboundedReceiver<Bytes>,
    /// Ends the listener and its subscriptions when the stream is dropped.
    pub(crate) _guard: Unlisten,
}

/// Removes its listener when the stream is dropped (the client closed it),
/// and ends the upstream subscriptions nobody else holds.
pub(crate) struct Unlisten {
    app: Arc<App>,
    id: String,
    /// (URI as exposed, server, URI as the server knows it).
    uris: Vec<(String, Arc<str>, String)>,
}

impl Drop for Unlisten {
    fn drop(&mut self) {
        self.app.listeners.remove(&self.id);
        let holder = format!("listen:{}", self.id);
        for (uri, server, own) in std::mem::take(&mut self.uris) {
            if self.app.subscriptions.unsubscribe(&uri, &holder) {
                let app = self.app.clone();
                tokio::spawn(async move {
                    subscription(&app, &server, "resources/unsubscribe", &own).await;
                });
            }
        }
    }
}

/// Sends `resources/subscribe` or `resources/unsubscribe` for `uri` to its
/// server, or opens or ends the listen stream that stands in for it on a
/// server reached statelessly; true when the subscription is (or was) held.
pub(crate) async fn subscription(app: &Arc<App>, server: &str, method: &str, uri: &str) -> bool {
    let Some(srv) = app.server(server) else {
        return false;
    };
    // `resources/subscribe` needs a session: a dual-era server takes it on its session-based connection.
    let session = match srv.is_stateless() {
        true => session_conn(app, &srv).await,
        false => None,
    };
    let conn = match session {
        Some(c) => c,
        None => match connection_for(app, &srv, None).await {
            Ok(c) => c,
            Err(_) => return false,
        },
    };
    if conn.is_modern() {
        return listen_upstream(app, &conn, server, method, uri).await;
    }
    let params = jsonrpc::to_raw(&json!({ "uri": uri }));
    let r = conn
        .request(method, Some(&params), RequestOpts::default())
        .await;
    matches!(r, Ok(Reply::Result(_)))
}

/// How long an upstream listen stream may stay open (it ends sooner when unsubscribed).
const UPSTREAM_LISTEN_FOR: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// `resources/subscribe` (or `unsubscribe`) for a server reached statelessly:
/// one `subscriptions/listen` stream upstream per URI, whose
/// `notifications/resources/updated` arrive among the connection's own
/// messages (`supervise::shared_events`). Held once the server acknowledges
/// the stream (within its connect timeout); refused when the server does not
/// declare `resources.subscribe`.
async fn listen_upstream(
    app: &Arc<App>,
    conn: &Connection,
    server: &str,
    method: &str,
    uri: &str,
) -> bool {
    if method != "resources/subscribe" {
        app.subscriptions.release_upstream(server, uri);
        return true;
    }
    if !conn
        .init_info()
        .is_some_and(|i| i.has_flag("resources", "subscribe"))
    {
        return false;
    }
    let cancel = CancellationToken::new();
    let Some(id) = app.subscriptions.hold_upstream(server, uri, cancel.clone()) else {
        return true; // one is open already
    };
    let params = jsonrpc::to_raw(&json!({"notifications": {"resourceSubscriptions": [uri]}}));
    let wait = conn.spec().connect_timeout;
    let (relay, mut relayed) = mpsc::unbounded_channel();
    let (acked, ack) = tokio::sync::oneshot::channel::<()>();
    let task = (app.clone(), conn.clone(), server.to_owned(), uri.to_owned());
    tokio::spawn(async move {
        let (app, conn, server, uri) = task;
        let opts = RequestOpts {
            relay: Some(relay),
            cancel: Some(cancel),
            timeout: Some(UPSTREAM_LISTEN_FOR),
            ..RequestOpts::default()
        };
        let request = conn.request("subscriptions/listen", Some(&params), opts);
        tokio::pin!(request);
        let mut acked = Some(acked);
        let outcome = loop {
            tokio::select! {
                r = &mut request => break r,
                Some(m) = relayed.recv() => {
                    if matches!(&m, Incoming::Notification { method, .. } if method == "notifications/subscriptions/acknowledged")
                        && let Some(a) = acked.take()
                    {
                        let _ = a.send(());
                    }
                }
            }
        };
        match outcome {
            Err(UpstreamError::Cancelled { .. }) => {}
            Ok(Reply::Error(e)) => {
                tracing::warn!(server = %server, "subscriptions/listen for {uri} refused: {}", e.get())
            }
            Ok(Reply::Result(_)) => {
                tracing::debug!(server = %server, "subscriptions/listen for {uri} ended")
            }
            Err(e) => tracing::warn!(server = %server, "subscriptions/listen for {uri}: {e}"),
        }
        app.subscriptions.upstream_ended(&server, &uri, id);
    });
    if matches!(tokio::time::timeout(wait, ack).await, Ok(Ok(()))) {
        return true;
    }
    app.subscriptions.release_upstream(server, uri);
    false
}

/// Whether a call from `session` to `server` goes over a stateless
/// (2026-07-28) connection, where `resources/subscribe` does not exist.
pub(crate) async fn reaches_statelessly(
    app: &Arc<App>,
    server: &str,
    session: Option<&Arc<crate::state::sessions::Session>>,
) -> bool {
    let Some(srv) = app.server(server) else {
        return false;
    };
    connection_for(app, &srv, session)
        .await
        .is_ok_and(|c| c.is_modern())
}

/// Opens a listen stream for `who`, as `msg` asks.
pub(crate) async fn open(
    app: &Arc<App>,
    who: &Principal,
    msg: &Message,
) -> Result<Listening, CallError> {
    #[derive(serde::Deserialize)]
    struct P {
        notifications: Filter,
    }
    let mut filter = msg
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<P>(p.get()).ok())
        .ok_or_else(|| {
            CallError::InvalidParams(
                "subscriptions/listen takes {\"notifications\": {\"toolsListChanged\": true, …}}"
                    .into(),
            )
        })?
        .notifications;
    let key =
        new_session_id().map_err(|_| CallError::Internal("cannot create a subscription".into()))?;
    let sub_id = msg.id.clone().unwrap_or_else(jsonrpc::raw_null);
    let catalog = app.catalog();
    let holder = format!("listen:{key}");
    let mut held = Vec::new();
    for uri in std::mem::take(&mut filter.resource_subscriptions) {
        let Some(route) = catalog.resource_for(&uri, &who.tier) else {
            continue; // not agreed: left out of the acknowledgement
        };
        app.subscriptions.subscribe(&uri, &holder);
        if subscription(app, &route.server, "resources/subscribe", &route.name).await {
            filter.resource_subscriptions.push(uri.clone());
        }
        held.push((uri, route.server, route.name));
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let mut ack = Map::new();
    ack.insert("notifications".into(), agreed(&filter));
    ack.insert("_meta".into(), tag(&sub_id));
    let ack = jsonrpc::notification(
        "notifications/subscriptions/acknowledged",
        Some(&jsonrpc::to_raw(&ack)),
    );
    app.listeners
        .insert(key.clone(), Listener { filter, sub_id, tx });
    let guard = Unlisten {
        app: app.clone(),
        id: key,
        uris: held,
    };
    Ok(Listening {
        ack,
        rx,
        _guard: guard,
    })
}

/// The filter as acknowledged: only the members the client asked for.
fn agreed(f: &Filter) -> Value {
    let mut m = Map::new();
    for (k, on) in [
        ("toolsListChanged", f.tools_list_changed),
        ("promptsListChanged", f.prompts_list_changed),
        ("resourcesListChanged", f.resources_list_changed),
    ] {
        if on {
            m.insert(k.into(), json!(true));
        }
    }
    if !f.resource_subscriptions.is_empty() {
        m.insert(
            "resourceSubscriptions".into(),
            json!(f.resource_subscriptions),
        );
    }
    Value::Object(m)
}
