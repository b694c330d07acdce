//! The config keys of a gateway that runs as one of several replicas and is
//! watched from outside: where the store lives (`store`, its older name
//! `database`, or `DATABASE_URL` in the environment) and `metrics_listen`,
//! the separate address Prometheus scrapes `/metrics` on, and `[cluster]`
//! (`redis`, the Redis replicas share rate-limit buckets, the session directory
//! and change announcements through; TCP or a Unix socket). Kept apart from
//! `mod.rs` so that file stays about one gateway's own behaviour. With
//! `redis`, `advertise` is the base URL peers reach this replica at (sessions
//! and parked calls are forwarded there) and `key_prefix` starts every key.

use std::net::SocketAddr;

use serde_json::{Map, Value};

use super::{ConfigError, Walker};

/// What Redis keys start with unless `[cluster] key_prefix` says otherwise.
pub(crate) const DEFAULT_KEY_PREFIX: &str = "mcpgate:";

/// `s` as `scheme://host:port` when it is an `http(s)` base URL with a
/// host and nothing else (a trailing `/` is allowed); else why not.
pub(crate) fn advertise_url(s: &str) -> Result<String, &'static str> {
    let url = reqwest::Url::parse(s).map_err(|_| "is not a URL like \"http://10.0.0.5:8787\"")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://");
    }
    let Some(host) = url.host_str() else {
        return Err("names no host");
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("must be a base URL, without a path, query or fragment (peers add /mcp)");
    }
    let port = url.port_or_known_default().ok_or("names no port")?;
    Ok(format!("{}://{host}:{port}", url.scheme()))
}

/// The environment variable naming the store when the config names none.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

impl Walker {
    /// `store = "postgres://…"` (or `database`, or `$DATABASE_URL`); `None`
    /// means SQLite in `data_dir`.
    pub(super) fn store_url(
        &self,
        top: &Map<String, Value>,
    ) -> Result<Option<String>, ConfigError> {
        let url = match (top.get("store"), top.get("database")) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "store",
                    "`store` and `database` name the same thing; keep one",
                ));
            }
            (Some(v), None) => Some(("store", self.string("store", v)?)),
            (None, Some(v)) => Some(("database", self.string("database", v)?)),
            (None, None) => None,
        };
        match url {
            Some((key, url)) if url.trim().is_empty() => {
                Err(self.err(key, "is empty; leave it out to use SQLite in data_dir"))
            }
            Some((_, url)) => Ok(Some(url)),
            None => Ok(std::env::var(DATABASE_URL_ENV)
                .ok()
                .filter(|u| !u.trim().is_empty())),
        }
    }

    /// `[cluster] redis = "redis://…"`: what replicas share beyond the store.
    pub(super) fn cluster_redis(
        &self,
        top: &Map<String, Value>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(v) = top.get("cluster") else {
            return Ok(None);
        };
        let t = v.as_object().ok_or_else(|| {
            self.err(
                "cluster",
                "must be a table, like [cluster] redis = \"redis://…\"",
            )
        })?;
        self.unknown_keys("cluster", t, &["redis", "advertise", "key_prefix"])?;
        if t.get("redis").is_none() {
            for k in ["advertise", "key_prefix"] {
                if t.contains_key(k) {
                    return Err(self.err(
                        &format!("cluster.{k}"),
                        "only means something with [cluster] redis = \"redis://…\", which replicas share it through",
                    ));
                }
            }
        }
        match t.get("redis") {
            None => Ok(None),
            Some(v) => {
                let url = self.string("cluster.redis", v)?;
                let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
                if !schemes.iter().any(|s| url.starts_with(s)) {
                    return Err(self.err(
                        "cluster.redis",
                        format!(
                            "{url:?} is not a Redis URL like \"redis://127.0.0.1:6379\" (or \"redis+unix:///run/redis.sock\")"
                        ),
                    ));
                }
                Ok(Some(url))
            }
        }
    }

    /// `[cluster] advertise = "http://10.0.0.5:8787"`: where peers reach this
    /// replica; an `http(s)://host:port` base URL, without a path, query or
    /// credentials. Normalised to `scheme://host:port`.
    pub(super) fn cluster_advertise(
        &self,
        top: &Map<String, Value>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(v) = top
            .get("cluster")
            .and_then(Value::as_object)
            .and_then(|t| t.get("advertise"))
        else {
            return Ok(None);
        };
        let s = self.string("cluster.advertise", v)?;
        advertise_url(&s)
            .map(Some)
            .map_err(|why| self.err("cluster.advertise", format!("{s:?} {why}")))
    }

    /// `[cluster] key_prefix = "mcpgate:"` (the default): what every Redis key starts with.
    pub(super) fn cluster_key_prefix(
        &self,
        top: &Map<String, Value>,
    ) -> Result<String, ConfigError> {
        let Some(v) = top
            .get("cluster")
            .and_then(Value::as_object)
            .and_then(|t| t.get("key_prefix"))
        else {
            return Ok(DEFAULT_KEY_PREFIX.to_owned());
        };
        let s = self.string("cluster.key_prefix", v)?;
        if s.is_empty() || s.len() > 64 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.err(
                "cluster.key_prefix",
                format!("{s:?} must be 1 to 64 characters without spaces, like \"mcpgate:\""),
            ));
        }
        Ok(s)
    }

    /// `metrics_listen = "127.0.0.1:9464"`: serve `/metrics` there, without a key.
    pub(super) fn metrics_listen(
        &self,
        top: &Map<String, Value>,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(v) = top.get("metrics_listen") else {
            return Ok(None);
        };
        let s = self.string("metrics_listen", v)?;
        s.parse().map(Some).map_err(|_| {
            self.err(
                "metrics_listen",
                format!("{s:?} is not an address like \"127.0.0.1:9464\""),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, super::ConfigError> {
        Config::parse(Path::new("c.toml"), text)
    }

    #[test]
    fn store_database_and_metrics_listen() {
        let c = load("store = \"postgres://u@h:5432/d\"\nmetrics_listen = \"127.0.0.1:0\"\n")
            .expect("valid");
        assert_eq!(c.database.as_deref(), Some("postgres://u@h:5432/d"));
        assert_eq!(c.metrics_listen, Some("127.0.0.1:0".parse().expect("addr")));
        let c = load("database = \"postgres://u@h/d\"\n").expect("valid");
        assert_eq!(c.database.as_deref(), Some("postgres://u@h/d"));
        let e =
            load("store = \"postgres://a/b\"\ndatabase = \"postgres://a/b\"\n").expect_err("both");
        assert_eq!(e.key, "store");
        assert!(e.message.contains("keep one"), "{e}");
        let e = load("store = \"\"\n").expect_err("empty");
        assert!(e.message.contains("SQLite"), "{e}");
        let e = load("metrics_listen = \"9464\"\n").expect_err("not an address");
        assert_eq!(e.key, "metrics_listen");
        let c = load("[cluster]\nredis = \"redis://127.0.0.1:6379\"\n").expect("valid");
        assert_eq!(c.redis.as_deref(), Some("redis://127.0.0.1:6379"));
        let c = load("[cluster]\nredis = \"redis+unix:///run/r.sock\"\n").expect("a socket");
        assert_eq!(c.redis.as_deref(), Some("redis+unix:///run/r.sock"));
        let e = load("[cluster]\nredis = \"127.0.0.1:6379\"\n").expect_err("no scheme");
        assert_eq!(e.key, "cluster.redis");
        let e = load("[cluster]\nredsi = \"redis://h\"\n").expect_err("typo");
        assert!(e.message.contains("did you mean `redis`"), "{e}");
    }

    #[test]
    fn advertise_and_key_prefix() {
        let c = load("[cluster]\nredis = \"redis://h\"\n").expect("valid");
        assert_eq!(c.advertise, None);
        assert_eq!(c.key_prefix, "mcpgate:");
        let c = load(
            "[cluster]\nredis = \"redis://h\"\nadvertise = \"http://10.0.0.5:8787/\"\nkey_prefix = \"t1:\"\n",
        )
        .expect("valid");
        assert_eq!(c.advertise.as_deref(), Some("http://10.0.0.5:8787"));
        assert_eq!(c.key_prefix, "t1:");
        let c = load("[cluster]\nredis = \"redis://h\"\nadvertise = \"https://gw-2.internal\"\n")
            .expect("valid");
        assert_eq!(c.advertise.as_deref(), Some("https://gw-2.internal:443"));
        for bad in [
            "10.0.0.5:8787",
            "ftp://h:1",
            "http://h:1/mcp",
            "http://u:p@h:1",
            "http://h:1?x=1",
            "not a url",
        ] {
            let e = load(&format!(
                "[cluster]\nredis = \"redis://h\"\nadvertise = {bad:?}\n"
            ))
            .expect_err(bad);
            assert_eq!(e.key, "cluster.advertise", "{bad}: {e}");
        }
        let e = load("[cluster]\nadvertise = \"http://h:1\"\n").expect_err("no redis");
        assert_eq!(e.key, "cluster.advertise");
        assert!(e.message.contains("redis"), "{e}");
        let e =
            load("[cluster]\nredis = \"redis://h\"\nkey_prefix = \"a b\"\n").expect_err("space");
        assert_eq!(e.key, "cluster.key_prefix");
    }
}
