//! Where a session or a parked call lives, for replicas that share a Redis
//! (`[cluster] redis`); a single process has no directory at all.
//!
//! - `{prefix}session:{id}` → `{"t": tenant, "o": owner}`: the tenant that
//!   opened the session and the base URL of the replica holding it. Written
//!   before `initialize` is answered, re-written every [`REFRESH`] while the
//!   session lives (so an entry a peer deleted comes back), deleted when it
//!   ends, and gone [`ENTRY_TTL`] after its replica stops refreshing it.
//! - `{prefix}replica:{tag}` → the owner's base URL, refreshed the same way.
//!   A parked 2026-07-28 call's `requestState` ends in `.{tag}` (see
//!   `Parking::new_state`), so a retry that lands elsewhere finds the replica
//!   that parked it without one Redis write per parked call.
//!
//! Only base URLs found here are ever forwarded to, so a client that alters a
//! state's tag can reach at most another replica of the same cluster (which
//! re-authenticates it and does not know the state).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use super::App;
use super::redis_conn::RedisConn;

/// How long an entry outlives its replica's last refresh.
pub(crate) const ENTRY_TTL: Duration = Duration::from_secs(30);
/// How often a replica re-writes its entries.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);

/// Deletes KEYS[1] only while it still names owner ARGV[1]: a peer that found
/// the owner unreachable must not delete an entry a live replica re-wrote.
const DELETE_IF_OWNER: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and string.find(v, ARGV[1], 1, true) then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// A session's directory entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The tenant that opened the session.
    #[serde(rename = "t")]
    pub tenant: String,
    /// The owning replica's base URL (`http://host:port`).
    #[serde(rename = "o")]
    pub owner: String,
}

/// This replica as its peers know it.
#[derive(Debug)]
pub(crate) struct Me {
    /// The base URL peers forward to.
    pub addr: String,
    /// A random tag naming this process in `replica:` keys and in states.
    pub tag: String,
}

/// The session directory of one replica.
pub(crate) struct Directory {
    redis: RedisConn,
    prefix: String,
    me: OnceLock<Me>,
    delete_if_owner: Script,
}

impl Directory {
    /// A directory on the Redis at `url` whose keys start with `prefix`;
    /// connects on first use. It serves nothing until [`Directory::set_me`].
    pub(crate) fn new(url: &str, prefix: &str) -> Result<Directory, String> {
        Ok(Directory {
            redis: RedisConn::new(url)?,
            prefix: prefix.to_owned(),
            me: OnceLock::new(),
            delete_if_owner: Script::new(DELETE_IF_OWNER),
        })
    }

    /// Names this replica (once, when it knows the address it serves on);
    /// returns its tag.
    pub(crate) fn set_me(&self, addr: String) -> Option<&str> {
        let tag = super::sessions::new_session_id().ok()?;
        let tag = tag.get(..12).unwrap_or(&tag).to_owned();
        let me = self.me.get_or_init(|| Me { addr, tag });
        Some(&me.tag)
    }

    /// This replica, once named.
    pub(crate) fn me(&self) -> Option<&Me> {
        self.me.get()
    }

    async fn conn(&self) -> Result<ConnectionManager, redis::RedisError> {
        self.redis.get().await
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}session:{id}", self.prefix)
    }

    fn replica_key(&self, tag: &str) -> String {
        format!("{}replica:{tag}", self.prefix)
    }

    fn entry_for(&self, tenant: &str) -> Option<String> {
        let me = self.me()?;
        serde_json::to_string(&Entry {
            tenant: tenant.to_owned(),
            owner: me.addr.clone(),
        })
        .ok()
    }

    /// Records that this replica holds session `id` of `tenant`.
    pub(crate) async fn register(&self, id: &str, tenant: &str) -> Result<(), redis::RedisError> {
        let Some(value) = self.entry_for(tenant) else {
            return Ok(());
        };
        let mut conn = self.conn().await?;
        conn.set_ex::<_, _, ()>(self.session_key(id), value, ENTRY_TTL.as_secs())
            .await
    }

    /// The entry for session `id`, if one is live.
    pub(crate) async fn lookup(&self, id: &str) -> Result<Option<Entry>, redis::RedisError> {
        let mut conn = self.conn().await?;
        let v: Option<String> = conn.get(self.session_key(id)).await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// The base URL of the replica tagged `tag`, if it is alive.
    pub(crate) async fn replica(&self, tag: &str) -> Result<Option<String>, redis::RedisError> {
        let mut conn = self.conn().await?;
        conn.get(self.replica_key(tag)).await
    }

    /// Deletes session `id`'s entry (its session ended here).
    #[cfg(test)]
    pub(crate) async fn forget(&self, id: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.conn().await?;
        conn.del::<_, ()>(self.session_key(id)).await
    }

    /// Deletes session `id`'s entry in the background (from sync code that
    /// ended it); nothing to do when this replica never reached Redis.
    pub(crate) fn forget_soon(&self, id: &str) {
        let (Some(conn), Ok(rt)) = (
            self.redis.connected(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let mut conn = conn.clone();
        let key = self.session_key(id);
        rt.spawn(async move {
            if let Err(e) = conn.del::<_, ()>(&key).await {
                tracing::debug!("could not delete {key} from the session directory: {e}");
            }
        });
    }

    /// Deletes session `id`'s entry if it still names `owner`, which could
    /// not be reached.
    pub(crate) async fn forget_unreachable(
        &self,
        id: &str,
        owner: &str,
    ) -> Result<(), redis::RedisError> {
        let mut conn = self.conn().await?;
        self.delete_if_owner
            .key(self.session_key(id))
            .arg(format!("\"o\":{}", serde_json::Value::from(owner)))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
    }

    /// Re-writes this replica's `replica:` key and the entries of its live
    /// sessions (`(id, tenant)`), in one pipeline.
    pub(crate) async fn refresh(
        &self,
        sessions: &[(String, String)],
    ) -> Result<(), redis::RedisError> {
        let Some(me) = self.me() else {
            return Ok(());
        };
        let ttl = ENTRY_TTL.as_secs();
        let mut pipe = redis::pipe();
        pipe.set_ex(self.replica_key(&me.tag), &me.addr, ttl)
            .ignore();
        for (id, tenant) in sessions {
            if let Some(v) = self.entry_for(tenant) {
                pipe.set_ex(self.session_key(id), v, ttl).ignore();
            }
        }
        let mut conn = self.conn().await?;
        pipe.query_async::<()>(&mut conn).await
    }

    /// Deletes this replica's `replica:` key (a clean shutdown).
    pub(crate) async fn leave(&self) -> Result<(), redis::RedisError> {
        let Some(me) = self.me() else {
            return Ok(());
        };
        let mut conn = self.conn().await?;
        conn.del::<_, ()>(self.replica_key(&me.tag)).await
    }
}

/// Names this replica in the directory (its `[cluster] advertise`, or the
/// bound address unless that is a wildcard) and keeps its entries fresh until
/// shutdown. Without an address peers can reach, the directory stays unused
/// and sessions stay on the replica that opened them.
pub(crate) async fn start(app: &Arc<App>, bound: SocketAddr) {
    let Some(dir) = &app.directory else {
        return;
    };
    let Some(addr) = advertised(app.cfg.advertise.as_deref(), bound) else {
        tracing::error!(
            "[cluster] advertise is not set and {bound} is a wildcard address, so peers cannot be told where to reach this replica: sessions and parked calls stay on the replica that opened them; set advertise = \"http://HOST:PORT\" to the address other replicas reach this one at"
        );
        return;
    };
    let Some(tag) = dir.set_me(addr.clone()) else {
        tracing::error!("cannot create a replica tag: the OS random generator failed");
        return;
    };
    app.parking.set_tag(tag);
    tracing::info!(
        "sessions and parked calls are shared with other replicas through Redis; peers reach this one at {addr}"
    );
    // Named in Redis before the first request is served, so a state issued
    // here can be followed from a peer at once.
    if let Err(e) = dir.refresh(&[]).await {
        tracing::error!(
            "[cluster] redis cannot be reached ({e}); sessions stay on this replica until it can"
        );
    }
    let app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = app.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let Some(dir) = &app.directory else { break };
            let live: Vec<(String, String)> = app
                .sessions
                .all()
                .iter()
                .map(|s| (s.id.clone(), s.tenant.to_string()))
                .collect();
            if let Err(e) = dir.refresh(&live).await {
                tracing::warn!("could not refresh the session directory: {e}");
            }
        }
        if let Some(dir) = &app.directory
            && let Err(e) = dir.leave().await
        {
            tracing::debug!("could not leave the session directory: {e}");
        }
    });
}

/// The address peers reach this replica at: `[cluster] advertise`, else the
/// bound address (loopback for replicas on one machine, or one interface's
/// address); `None` for a wildcard bind (`0.0.0.0`, `[::]`) without
/// `advertise`, which names no address a peer could use.
pub(crate) fn advertised(advertise: Option<&str>, bound: SocketAddr) -> Option<String> {
    match advertise {
        Some(a) => Some(a.to_owned()),
        None if bound.ip().is_unspecified() => None,
        None => Some(format!("http://{bound}")),
    }
}

/// The tag a `requestState` issued under a directory ends with, if any.
pub(crate) fn state_tag(state: &str) -> Option<&str> {
    let (_, tag) = state.rsplit_once('.')?;
    (!tag.is_empty() && tag.len() <= 32 && tag.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(
            advertised(None, at("127.0.0.1:8787")).as_deref(),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(
            advertised(None, at("[::1]:8787")).as_deref(),
            Some("http://[::1]:8787")
        );
        assert_eq!(
            advertised(None, at("10.0.0.5:8787")).as_deref(),
            Some("http://10.0.0.5:8787")
        );
        // A wildcard names no address a peer could use.
        assert_eq!(advertised(None, at("0.0.0.0:8787")), None);
        assert_eq!(advertised(None, at("[::]:8787")), None);
        assert_eq!(
            advertised(Some("http://10.0.0.5:8787"), at("0.0.0.0:8787")).as_deref(),
            Some("http://10.0.0.5:8787")
        );
    }

    #[test]
    fn state_tags() {
        assert_eq!(state_tag("0f3a.abc123"), Some("abc123"));
        assert_eq!(state_tag("0f3a"), None);
        assert_eq!(state_tag("0f3a."), None);
        assert_eq!(state_tag("a.b/c"), None);
        assert_eq!(state_tag("a.x:y@evil"), None);
    }

    fn random_prefix() -> String {
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).expect("random");
        format!("test-{}:", u64::from_le_bytes(buf))
    }

    /// Two replicas' directories on one Redis: what one registers the other
    /// finds; a peer's delete of an unreachable owner's entry spares an entry
    /// re-written by another owner; refresh re-creates and `forget` removes.
    #[tokio::test]
    #[ignore = "peers tier: needs Redis at 127.0.0.1:6379"]
    async fn two_replicas_share_one_directory() {
        let prefix = random_prefix();
        let a = Directory::new("redis://127.0.0.1:6379", &prefix).expect("url");
        let b = Directory::new("redis://127.0.0.1:6379", &prefix).expect("url");
        // Unnamed, a directory writes nothing.
        a.register("s1", "acme").await.expect("redis");
        assert_eq!(b.lookup("s1").await.expect("redis"), None);
        let tag_a = a
            .set_me("http://127.0.0.1:1001".into())
            .expect("tag")
            .to_owned();
        b.set_me("http://127.0.0.1:1002".into());
        a.register("s1", "acme").await.expect("redis");
        let want = Entry {
            tenant: "acme".into(),
            owner: "http://127.0.0.1:1001".into(),
        };
        assert_eq!(b.lookup("s1").await.expect("redis"), Some(want.clone()));
        // B found A unreachable, but only A's own entry may be deleted.
        b.forget_unreachable("s1", "http://127.0.0.1:1002")
            .await
            .expect("redis");
        assert_eq!(b.lookup("s1").await.expect("redis"), Some(want.clone()));
        b.forget_unreachable("s1", "http://127.0.0.1:1001")
            .await
            .expect("redis");
        assert_eq!(b.lookup("s1").await.expect("redis"), None);
        // A's refresh re-creates its live sessions and names A by its tag.
        assert_eq!(b.replica(&tag_a).await.expect("redis"), None);
        a.refresh(&[("s1".into(), "acme".into())])
            .await
            .expect("redis");
        assert_eq!(b.lookup("s1").await.expect("redis"), Some(want));
        assert_eq!(
            b.replica(&tag_a).await.expect("redis").as_deref(),
            Some("http://127.0.0.1:1001")
        );
        a.forget("s1").await.expect("redis");
        assert_eq!(b.lookup("s1").await.expect("redis"), None);
        a.leave().await.expect("redis");
        assert_eq!(b.replica(&tag_a).await.expect("redis"), None);
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error() {
        let d = Directory::new("redis://127.0.0.1:1", "x:").expect("url");
        d.set_me("http://127.0.0.1:1".into());
        assert!(d.lookup("s").await.is_err());
        assert!(d.register("s", "t").await.is_err());
    }
}
