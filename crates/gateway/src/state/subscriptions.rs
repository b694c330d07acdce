//! Resource subscriptions: which holders (client sessions, or 2026-07-28
//! `subscriptions/listen` streams named `listen:<key>`) are subscribed to
//! which URI, so that an upstream's `notifications/resources/updated` reaches
//! exactly them, and the upstream subscription ends with its last holder.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use mcpgate_proto::locks::lock;

#[derive(Default)]
pub(crate) struct Subscriptions {
    by_uri: Mutex<HashMap<String, HashSet<String>>>,
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

    /// Who is subscribed to `uri`.
    pub(crate) fn holders(&self, uri: &str) -> Vec<String> {
        lock(&self.by_uri)
            .get(uri)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}
