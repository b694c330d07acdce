//! The one Redis connection a replica's request-path users share the set-up
//! of (the shared rate buckets, the session directory): a client opened from
//! `[cluster] redis`, connected on first use with short timeouts and one
//! retry, so a request waits at most about a second for Redis before it
//! falls back to what the replica knows alone.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// Opens a Redis client for `[cluster] redis`, with the error the config names.
pub(crate) fn open_client(url: &str) -> Result<redis::Client, String> {
    redis::Client::open(url).map_err(|e| format!("[cluster] redis: not a Redis URL: {e}"))
}

/// A lazily connected, self-reconnecting Redis connection.
pub(crate) struct RedisConn {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl RedisConn {
    /// A connection to the Redis at `url`; nothing connects before [`RedisConn::get`].
    pub(crate) fn new(url: &str) -> Result<RedisConn, String> {
        Ok(RedisConn {
            client: open_client(url)?,
            conn: OnceCell::new(),
        })
    }

    /// The connection, connecting the first time.
    pub(crate) async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(500));
        self.conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
    }

    /// The connection if it is already made (for work that must not connect).
    pub(crate) fn connected(&self) -> Option<&ConnectionManager> {
        self.conn.get()
    }
}
