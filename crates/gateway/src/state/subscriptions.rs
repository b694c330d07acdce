//! Resource subscriptions: which holders (client sessions, or 2026-07-28
//! `subscriptions/listen` streams named `listen:<key>`) are subscribed to
//! which URI, so that an upstream's `notifications/resources/updated` reaches
//! exactly them, and the upstream subscription ends with its last holder.
//! On a server reached statelessly (2026-07-28), which has no
//! `resources/subscribe`, an upstream `subscriptions/listen` stream per URI
//! stands in for it; `upstream` holds what ends each one.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mcpgate_proto::locks::lock;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(crate) struct Subscriptions {
    by_uri: Mutex<HashMap<String, HashSet<String>>>,
    /// Open upstream listen streams by (server, URI): an id, and what cancels it.
    upstream: Mutex<HashMap<(String, String), (u64, CancellationToken)>>,
    next_upstream: AtomicU64,
}

impl Subscriptions {
    pub(crate) fn subscribe(&self, uri: &str, holder: &str) {
        lock(&self.by_uri)
            .entry(uri.to_owned())
            .or_default()
            .insert(holder.to_owned());
    }

    /// Removes a subscription; returns whether nobody else is subscribed to `uri`.
    pub(crate) fn unsubscribe(&self, uri: &str, holder: &str) -> bool {
        let mut subs = lock(&self.by_uri);
        let Some(set) = subs.get_mut(uri) else {
            return true;
        };
        set.remove(holder);
        if set.is_empty() {
            subs.remove(uri);
            true
        } else {
            false
        }
    }

    /// Drops every subscription of a holder that went away.
    pub(crate) fn drop_holder(&self, holder: &str) {
        let mut subs = lock(&self.by_uri);
        for set in subs.values_mut() {
            set.remove(holder);
        }
        subs.retain(|_, set| !set.is_empty());
    }

    /// Records a new upstream listen stream for `uri` on `server`; its id, or
    /// `None` when one is open already (the caller then starts none).
    pub(crate) fn hold_upstream(
        &self,
        server: &str,
        uri: &str,
        cancel: CancellationToken,
    ) -> Option<u64> {
        let mut up = lock(&self.upstream);
        let key = (server.to_owned(), uri.to_owned());
        if up.get(&key).is_some_and(|(_, t)| !t.is_cancelled()) {
            return None;
        }
        let id = self.next_upstream.fetch_add(1, Ordering::Relaxed);
        up.insert(key, (id, cancel));
        Some(id)
    }

    /// Ends the upstream listen stream for `uri` on `server`, if one is open.
    pub(crate) fn release_upstream(&self, server: &str, uri: &str) {
        if let Some((_, t)) = lock(&self.upstream).remove(&(server.to_owned(), uri.to_owned())) {
            t.cancel();
        }
    }

    /// Forgets upstream listen stream `id`, which ended (unless a newer one replaced it).
    pub(crate) fn upstream_ended(&self, server: &str, uri: &str, id: u64) {
        let mut up = lock(&self.upstream);
        let key = (server.to_owned(), uri.to_owned());
        if up.get(&key).is_some_and(|(held, _)| *held == id) {
            up.remove(&key);
        }
    }

    /// Who is subscribed to `uri`.
    pub(crate) fn holders(&self, uri: &str) -> Vec<String> {
        lock(&self.by_uri)
            .get(uri)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}
