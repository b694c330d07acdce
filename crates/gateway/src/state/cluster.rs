//! What replicas share through Redis (`[cluster] redis = "redis://…"`):
//! for now, the per-key rate limit. `SharedRate` keeps one GCRA timestamp
//! per key in Redis and checks it with one Lua script call (`EVALSHA`), so a
//! key limited to 60/min gets 60 calls through all replicas together, not
//! 60 per replica. The script reads Redis' own clock (`TIME`), so replicas'
//! clocks need not agree. If Redis cannot be reached the caller falls back
//! to its own in-memory bucket, without asking Redis again for 5 s: an outage
//! makes the limit per replica for a while, and never refuses every call.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

use super::redis_conn::RedisConn;
use crate::config::Rate;
use mcpgate_proto::locks::lock;

/// GCRA in one step. KEYS[1]: the key's bucket; ARGV[1]: the interval
/// between calls (µs); ARGV[2]: the burst tolerance (µs). Returns 0 when the
/// call may go, else how long until it may (µs, > 0).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return tat - tolerance - now
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return 0
";

/// How long calls skip Redis after it failed to answer.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The shared rate limiter (one per gateway when `[cluster] redis` is set).
pub(crate) struct SharedRate {
    redis: RedisConn,
    script: Script,
    /// `[cluster] key_prefix`: buckets are `{prefix}rate:{key id}`.
    prefix: String,
    /// When Redis last failed to answer: for `RETRY_AFTER` after that, calls
    /// use their replica's bucket without waiting on Redis again.
    failed_at: Mutex<Option<Instant>>,
}

impl SharedRate {
    /// A limiter on the Redis at `url` whose keys start with `prefix`;
    /// connects on first use.
    pub(crate) fn new(url: &str, prefix: &str) -> Result<SharedRate, String> {
        Ok(SharedRate {
            redis: RedisConn::new(url)?,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            failed_at: Mutex::new(None),
        })
    }

    /// Short timeouts and one retry (`RedisConn`): a call waits at most
    /// about a second for Redis before its replica's own bucket decides instead.
    async fn conn(&self) -> Result<ConnectionManager, redis::RedisError> {
        self.redis.get().await
    }

    /// Connects now (at start-up), so a wrong address is reported at once.
    pub(crate) async fn check(&self) -> Result<(), String> {
        let mut conn = self.conn().await.map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Takes one token from `who`'s shared bucket: `Ok(Ok(()))`, or
    /// `Ok(Err(wait))` when limited; `Err` when Redis could not answer.
    pub(crate) async fn take(&self, who: &str, rate: Rate) -> Result<Result<(), Duration>, ()> {
        if lock(&self.failed_at).is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err(());
        }
        let t = rate.interval();
        let tolerance = t * rate.burst.saturating_sub(1);
        let answer = async {
            let mut conn = self.conn().await?;
            self.script
                .key(format!("{}rate:{who}", self.prefix))
                .arg(u64::try_from(t.as_micros()).unwrap_or(u64::MAX))
                .arg(u64::try_from(tolerance.as_micros()).unwrap_or(u64::MAX))
                .invoke_async::<i64>(&mut conn)
                .await
        }
        .await;
        match answer {
            Ok(0) => Ok(Ok(())),
            Ok(wait_us) => Ok(Err(Duration::from_micros(
                u64::try_from(wait_us).unwrap_or(1).max(1),
            ))),
            Err(e) => {
                *lock(&self.failed_at) = Some(Instant::now());
                tracing::warn!(
                    "Redis unavailable for the shared rate limit ({e}); limiting per replica for {RETRY_AFTER:?}"
                );
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[ignore = "peers tier: needs Redis at 127.0.0.1:6379"]
    async fn a_shared_bucket_lets_the_burst_through_then_says_how_long_to_wait() {
        let a = SharedRate::new("redis://127.0.0.1:6379", "mcpgate:").expect("url");
        let b = SharedRate::new("redis://127.0.0.1:6379", "mcpgate:").expect("url");
        a.check().await.expect("Redis at 127.0.0.1:6379");
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).expect("random");
        let who = format!("test-{}", u64::from_le_bytes(buf));
        let rate = Rate {
            count: 2,
            per: Duration::from_secs(60),
            burst: 2,
        };
        // Two limiters (two replicas) draw from one bucket.
        assert_eq!(a.take(&who, rate).await, Ok(Ok(())));
        assert_eq!(b.take(&who, rate).await, Ok(Ok(())));
        match a.take(&who, rate).await {
            Ok(Err(wait)) => assert!(
                wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
                "{wait:?}"
            ),
            other => panic!("expected a wait, got {other:?}"),
        }
        assert!(matches!(b.take(&who, rate).await, Ok(Err(_))));
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_not_a_refusal() {
        // Port 1 on loopback: nothing listens there.
        let r = SharedRate::new("redis://127.0.0.1:1", "mcpgate:").expect("url");
        let rate = Rate {
            count: 1,
            per: Duration::from_secs(60),
            burst: 1,
        };
        assert_eq!(r.take("k", rate).await, Err(()));
        assert!(r.check().await.is_err());
    }
}
