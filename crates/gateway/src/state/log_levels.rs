//! The log levels client sessions asked for with `logging/setLevel`, held
//! per session (`Session::log_level`), never as one level for the whole
//! gateway. A shared upstream serves every tenant, so the level it is sent is
//! the most verbose one asked for by any live session whose tier sees
//! something that server offers; each session then gets only the messages at
//! or above its own level (`Session::wants_log`). This file keeps, per tier,
//! how many sessions asked for each level (so that level is found without
//! walking every session), and per server what its current connection was
//! last sent. Who sends it is `mcp::logging`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mcpgate_proto::logging::LOG_LEVELS;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use super::sessions::Session;
use mcpgate_proto::locks::lock;

/// Sessions per level (by rank), for one tier.
type Counts = [u32; LOG_LEVELS.len()];

/// What a server's connection was last sent: the connection (its `since`)
/// and the level's rank.
pub(crate) type Sent = Option<(Instant, u8)>;

pub(crate) struct LogLevels {
    /// Tier name → how many live sessions of that tier asked for each level.
    by_tier: Mutex<HashMap<Arc<str>, Counts>>,
    /// Server name → the level its connection was last sent. The async lock
    /// is held while a level is being sent, so two sends to one server never
    /// cross. A server added at runtime gets its entry on first use.
    sent: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<Sent>>>>,
    /// Wakes whoever brings upstreams to the wanted levels.
    changed: Notify,
}

impl LogLevels {
    pub(crate) fn new<'a>(servers: impl IntoIterator<Item = &'a Arc<str>>) -> LogLevels {
        LogLevels {
            by_tier: Mutex::new(HashMap::new()),
            sent: Mutex::new(
                servers
                    .into_iter()
                    .map(|s| (s.clone(), Arc::new(tokio::sync::Mutex::new(None))))
                    .collect(),
            ),
            changed: Notify::new(),
        }
    }

    /// Records the level `session` asked for (a rank). A session that has
    /// ended keeps none.
    pub(crate) fn set(&self, session: &Session, rank: u8) {
        let mut by_tier = lock(&self.by_tier);
        if session.ended.is_cancelled() {
            return;
        }
        let old = session.swap_log_level(Some(rank));
        let counts = by_tier.entry(session.tier.clone()).or_default();
        move_count(counts, old, Some(rank));
        drop(by_tier);
        self.changed.notify_one();
    }

    /// Forgets an ended session's level.
    pub(crate) fn forget(&self, session: &Session) {
        let mut by_tier = lock(&self.by_tier);
        let Some(old) = session.swap_log_level(None) else {
            return;
        };
        if let Some(counts) = by_tier.get_mut(&session.tier) {
            move_count(counts, Some(old), None);
            if counts.iter().all(|n| *n == 0) {
                by_tier.remove(&session.tier);
            }
        }
        drop(by_tier);
        self.changed.notify_one();
    }

    /// The most verbose level (lowest rank) asked for by a session of a tier
    /// that `sees` accepts; `None` when no such session set one.
    pub(crate) fn wanted(&self, sees: impl Fn(&str) -> bool) -> Option<u8> {
        lock(&self.by_tier)
            .iter()
            .filter(|(tier, _)| sees(tier))
            .filter_map(|(_, counts)| counts.iter().position(|n| *n > 0))
            .min()
            .and_then(|rank| u8::try_from(rank).ok())
    }

    /// What `server`'s connection was last sent (locked while sending);
    /// nothing yet for a server not seen before (one added at runtime).
    pub(crate) fn sent(&self, server: &str) -> Arc<tokio::sync::Mutex<Sent>> {
        let mut sent = lock(&self.sent);
        if let Some(slot) = sent.get(server) {
            return slot.clone();
        }
        let slot = Arc::new(tokio::sync::Mutex::new(None));
        sent.insert(Arc::from(server), slot.clone());
        slot
    }

    /// Says that the wanted levels may have changed (a server reconnected,
    /// the catalog changed what tiers see).
    pub(crate) fn notify(&self) {
        self.changed.notify_one();
    }

    /// Resolves after the next change (a change made before this is called
    /// counts too: `Notify` keeps one wake-up).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

fn move_count(counts: &mut Counts, from: Option<u8>, to: Option<u8>) {
    let slot = |rank: u8| usize::from(rank).min(LOG_LEVELS.len() - 1);
    if let Some(r) = from {
        counts[slot(r)] = counts[slot(r)].saturating_sub(1);
    }
    if let Some(r) = to {
        counts[slot(r)] = counts[slot(r)].saturating_add(1);
    }
}

/// The rank of a `notifications/message`'s level; `None` when it has none
/// MCP defines.
pub(crate) fn message_rank(params: Option<&RawValue>) -> Option<u8> {
    #[derive(serde::Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        level: std::borrow::Cow<'a, str>,
    }
    let p: P<'_> = serde_json::from_str(params?.get()).ok()?;
    mcpgate_proto::logging::log_level_rank(&p.level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sessions::ClientCaps;

    fn session(tier: &str) -> Session {
        Session::new(Arc::from("t"), Arc::from(tier), ClientCaps::default()).expect("id")
    }

    #[test]
    fn the_most_verbose_level_of_the_sessions_a_server_serves_wins() {
        let levels = LogLevels::new([]);
        let (debug, warning, error) = (0, 3, 4);
        let free = session("free");
        let pro = session("pro");
        levels.set(&free, error);
        levels.set(&pro, warning);
        assert_eq!(levels.wanted(|_| true), Some(warning));
        assert_eq!(levels.wanted(|t| t == "free"), Some(error));
        assert_eq!(levels.wanted(|_| false), None);
        levels.set(&free, debug);
        assert_eq!(levels.wanted(|_| true), Some(debug), "a change replaces");
        levels.forget(&free);
        assert_eq!(
            levels.wanted(|_| true),
            Some(warning),
            "an end takes it back"
        );
        levels.forget(&free);
        assert_eq!(levels.wanted(|_| true), Some(warning), "only once");
        pro.end();
        levels.forget(&pro);
        levels.set(&pro, debug);
        assert_eq!(levels.wanted(|_| true), None, "an ended session sets none");
    }

    #[test]
    fn message_levels_are_read_from_params() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).expect("json");
        assert_eq!(
            message_rank(Some(&raw(r#"{"level":"warning","data":1}"#))),
            Some(3)
        );
        assert_eq!(message_rank(Some(&raw(r#"{"level":"loud"}"#))), None);
        assert_eq!(message_rank(Some(&raw(r#"{"data":1}"#))), None);
        assert_eq!(message_rank(None), None);
    }
}
