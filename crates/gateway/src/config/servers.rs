//! One server's table of the configuration (`[servers.NAME]`, or an entry of
//! `mcpServers`): the types it becomes (`ServerConfig`, what a server
//! inherits from the top level), its keys, and the walk that reads it, for
//! the file at start-up and for a server added at runtime (`Config::parse_server`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mcpgate_upstream::{TransportSpec, UpstreamSpec};
use serde_json::{Map, Value};

use super::{Config, ConfigError, Walker, import};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// Tools and prompts are exposed as `SERVER<sep>NAME`.
    Always,
    /// Names pass through untouched (meant for a single upstream).
    Never,
}

/// How a server's resource URIs are exposed (`resource_uris`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceUris {
    /// As the server gives them, so links inside content keep working; a URI
    /// two servers both offer goes to the first (and the clash is logged).
    Unchanged,
    /// Behind a scheme prefix naming the server, `NAME+URI` (`file:///a` from
    /// `docs` is `docs+file:///a`), so equal URIs of two servers both stay
    /// reachable; reads, subscriptions and templates are mapped back.
    Namespaced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// One upstream session (one process) serves every client session.
    Shared,
    /// Each client session gets its own upstream session or process.
    PerSession,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub spec: UpstreamSpec,
    pub isolation: Isolation,
    /// Cap on per-session upstream instances.
    pub max_instances: usize,
    pub prefix: Prefix,
    /// How its resource URIs are exposed.
    pub resource_uris: ResourceUris,
    /// Consecutive failed calls that open the circuit breaker (0: never).
    pub breaker_failures: u32,
    /// How long an open breaker fails calls fast before letting one probe through.
    pub breaker_cooldown: Duration,
}

/// Top-level settings that servers inherit unless they set their own (kept
/// in [`Config`] so a server added at runtime inherits them too).
#[derive(Debug, Clone, Copy)]
pub struct Inherited {
    pub(super) prefix: Prefix,
    pub(super) resource_uris: ResourceUris,
    pub(super) breaker_failures: u32,
    pub(super) breaker_cooldown: Duration,
}

pub(super) const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "type",
    "transport",
    "timeout",
    "connect_timeout",
    "idle_timeout",
    "isolation",
    "max_instances",
    "auth",
    "breaker_failures",
    "breaker_cooldown",
    "prefix",
    "resource_uris",
    "enabled",
    "disabled",
    "description",
    "envFile",
    "env_passthrough",
    "gallery",
    "version",
];

impl Config {
    /// Reads one server's table (the keys of `[servers.NAME]`, as JSON) with
    /// this config's rules and top-level defaults; paths resolve next to its
    /// file. `None` when the table disables the server.
    pub fn parse_server(
        &self,
        name: &str,
        table: &Value,
    ) -> Result<Option<ServerConfig>, ConfigError> {
        let file = self.file.display().to_string();
        // Other clients' keys are understood as they are in a JSON file.
        let mut top = Map::new();
        top.insert(
            "servers".into(),
            Value::Object(Map::from_iter([(name.to_owned(), table.clone())])),
        );
        for note in import::normalize_object(&mut top, &self.file) {
            if note.contains(" ignored: ") {
                tracing::warn!("{file}: {note}");
            }
        }
        let table = top
            .get("servers")
            .and_then(|s| s.get(name))
            .cloned()
            .unwrap_or(Value::Null);
        let walker = Walker {
            file,
            base: self
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        walker.server(
            &format!("servers.{name}"),
            name,
            &table,
            self.server_defaults,
        )
    }
}

impl Walker {
    pub(super) fn server(
        &self,
        key: &str,
        name: &str,
        v: &Value,
        inherited: Inherited,
    ) -> Result<Option<ServerConfig>, ConfigError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(self.err(key, "server names may use only letters, digits, _ and -"));
        }
        let t = v
            .as_object()
            .ok_or_else(|| self.err(key, "must be a table"))?;
        self.unknown_keys(key, t, SERVER_KEYS)?;
        if self.opt_bool(t, "disabled")?.unwrap_or(false)
            || !self.opt_bool(t, "enabled")?.unwrap_or(true)
        {
            return Ok(None);
        }
        let k = |sub: &str| format!("{key}.{sub}");
        let kind = match (t.get("type"), t.get("transport")) {
            (Some(v), _) => Some(self.string(&k("type"), v)?),
            (None, Some(v)) => Some(self.string(&k("transport"), v)?),
            _ => None,
        };
        let transport = match (t.get("command"), t.get("url")) {
            (Some(_), Some(_)) => {
                return Err(self.err(key, "has both `command` (stdio) and `url` (HTTP); pick one"));
            }
            (None, None) => {
                return Err(self.err(
                    key,
                    "needs `command` (a stdio server) or `url` (a Streamable HTTP server)",
                ));
            }
            (Some(c), None) => {
                if t.contains_key("auth") || t.contains_key("headers") {
                    return Err(self.err(
                        &k(if t.contains_key("auth") { "auth" } else { "headers" }),
                        "applies to url servers only; give a stdio server its secrets through `env`",
                    ));
                }
                if let Some(kind) = kind.as_deref().filter(|k| *k != "stdio") {
                    return Err(self.err(
                        &k("type"),
                        format!("{kind:?} does not go with `command`; use \"stdio\""),
                    ));
                }
                let command = self.string(&k("command"), c)?;
                if command.trim().is_empty() {
                    return Err(self.err(&k("command"), "is empty"));
                }
                let args = match t.get("args") {
                    Some(a) => self.strings(&k("args"), a)?,
                    None => Vec::new(),
                };
                let mut env = match t.get("env") {
                    Some(e) => self.string_map(&k("env"), e)?,
                    None => BTreeMap::new(),
                };
                // `envFile`'s values are taken literally; `env` wins over it.
                if let Some(f) = t.get("envFile") {
                    let f = self.base.join(self.string(&k("envFile"), f)?);
                    let vars = import::read_env_file(&f).map_err(|m| self.err(&k("envFile"), m))?;
                    for (name, value) in vars {
                        env.entry(name).or_insert(value);
                    }
                }
                let cwd = match t.get("cwd") {
                    Some(c) => Some(self.base.join(self.string(&k("cwd"), c)?)),
                    None => None,
                };
                let env_passthrough = self
                    .opt_strings(t, "env_passthrough")
                    .map_err(|e| self.rekey(e, &k("env_passthrough")))?;
                if let Some(bad) = env_passthrough.iter().find(|n| {
                    n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }) {
                    return Err(self.err(
                        &k("env_passthrough"),
                        format!("{bad:?} is not an environment variable name"),
                    ));
                }
                TransportSpec::Stdio {
                    command,
                    args,
                    env,
                    env_passthrough,
                    cwd,
                }
            }
            (None, Some(u)) => {
                match kind.as_deref() {
                    None | Some("http") | Some("streamable-http") | Some("streamableHttp") => {}
                    Some("sse") => {}
                    Some(other) => {
                        return Err(self.err(
                            &k("type"),
                            format!("{other:?} is not a known transport (\"http\" or \"stdio\")"),
                        ));
                    }
                }
                let url = self.string(&k("url"), u)?;
                match url.split_once("://") {
                    Some(("http" | "https", rest)) if !rest.is_empty() => {}
                    _ => {
                        return Err(self.err(
                            &k("url"),
                            format!("{url:?} is not an http:// or https:// URL"),
                        ));
                    }
                }
                let mut headers: Vec<(String, String)> = match t.get("headers") {
                    Some(h) => self.string_map(&k("headers"), h)?.into_iter().collect(),
                    None => Vec::new(),
                };
                if let Some(a) = t.get("auth") {
                    headers.extend(self.auth_schemes(&k("auth"), a)?);
                }
                if kind.as_deref() == Some("sse") {
                    TransportSpec::LegacySse { url, headers }
                } else {
                    TransportSpec::StreamableHttp { url, headers }
                }
            }
        };
        let isolation = match t.get("isolation") {
            None => Isolation::Shared,
            Some(v) => match self.string(&k("isolation"), v)?.as_str() {
                "shared" => Isolation::Shared,
                "per-session" => Isolation::PerSession,
                other => {
                    return Err(self.err(
                        &k("isolation"),
                        format!("{other:?} is not \"shared\" or \"per-session\""),
                    ));
                }
            },
        };
        Ok(Some(ServerConfig {
            name: name.to_owned(),
            spec: UpstreamSpec {
                name: name.to_owned(),
                transport,
                timeout: self
                    .opt_duration(t, "timeout")
                    .map_err(|e| self.rekey(e, &k("timeout")))?
                    .unwrap_or(Duration::from_secs(60)),
                connect_timeout: self
                    .opt_duration(t, "connect_timeout")
                    .map_err(|e| self.rekey(e, &k("connect_timeout")))?
                    .unwrap_or(Duration::from_secs(30)),
                idle_timeout: self
                    .opt_duration(t, "idle_timeout")
                    .map_err(|e| self.rekey(e, &k("idle_timeout")))?
                    .unwrap_or(Duration::from_secs(90)),
            },
            isolation,
            max_instances: self
                .opt_uint(t, "max_instances")
                .map_err(|e| self.rekey(e, &k("max_instances")))?
                .unwrap_or(64),
            prefix: match t.get("prefix") {
                Some(v) => self.prefix(&k("prefix"), v)?,
                None => inherited.prefix,
            },
            resource_uris: match t.get("resource_uris") {
                Some(v) => {
                    let r = self.resource_uris(&k("resource_uris"), v)?;
                    if r == ResourceUris::Namespaced
                        && !name.starts_with(|c: char| c.is_ascii_alphabetic())
                    {
                        return Err(self.err(
                            &k("resource_uris"),
                            "\"namespaced\" needs a server name that starts with a letter (it becomes the start of a URI scheme)",
                        ));
                    }
                    r
                }
                None if inherited.resource_uris == ResourceUris::Namespaced
                    && !name.starts_with(|c: char| c.is_ascii_alphabetic()) =>
                {
                    return Err(self.err(
                        key,
                        "resource_uris = \"namespaced\" needs server names that start with a letter (each becomes the start of a URI scheme); rename it or set resource_uris = \"unchanged\" on it",
                    ));
                }
                None => inherited.resource_uris,
            },
            breaker_failures: self
                .opt_u32(t, "breaker_failures", &k("breaker_failures"))?
                .unwrap_or(inherited.breaker_failures),
            breaker_cooldown: self
                .opt_duration(t, "breaker_cooldown")
                .map_err(|e| self.rekey(e, &k("breaker_cooldown")))?
                .unwrap_or(inherited.breaker_cooldown),
        }))
    }

    pub(super) fn opt_u32(
        &self,
        t: &Map<String, Value>,
        key: &str,
        full: &str,
    ) -> Result<Option<u32>, ConfigError> {
        self.opt_uint(t, key)
            .map_err(|e| self.rekey(e, full))?
            .map(|n| u32::try_from(n).map_err(|_| self.err(full, "is too large")))
            .transpose()
    }

    /// Static credentials attached as headers: `[{ header, prefix, env | file }]`.
    /// The secret is read now; errors name the variable or file, never the value.
    pub(super) fn auth_schemes(
        &self,
        key: &str,
        v: &Value,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let list = match v {
            Value::Array(a) => a.clone(),
            Value::Object(_) => vec![v.clone()],
            _ => {
                return Err(self.err(
                    key,
                    "must be a list of { header, prefix, env | file } tables",
                ));
            }
        };
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let at = format!("{key}[{i}]");
            let t = item
                .as_object()
                .ok_or_else(|| self.err(&at, "must be a table"))?;
            self.unknown_keys(&at, t, &["header", "prefix", "env", "file"])?;
            let header = match t.get("header") {
                Some(h) => self.string(&format!("{at}.header"), h)?,
                None => "Authorization".to_owned(),
            };
            let prefix = match t.get("prefix") {
                Some(p) => self.string(&format!("{at}.prefix"), p)?,
                None => String::new(),
            };
            let secret = match (t.get("env"), t.get("file")) {
                (Some(e), None) => {
                    let var = self.string(&format!("{at}.env"), e)?;
                    std::env::var(&var).map_err(|_| {
                        self.err(
                            &format!("{at}.env"),
                            format!("the environment variable {var} is not set"),
                        )
                    })?
                }
                (None, Some(f)) => {
                    let path = self.base.join(self.string(&format!("{at}.file"), f)?);
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        self.err(
                            &format!("{at}.file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    text.trim_end_matches(['\n', '\r']).to_owned()
                }
                _ => {
                    return Err(
                        self.err(&at, "needs exactly one of `env` or `file` for the secret")
                    );
                }
            };
            if secret.is_empty() {
                return Err(self.err(&at, "the secret is empty"));
            }
            out.push((header, format!("{prefix}{secret}")));
        }
        Ok(out)
    }

    pub(super) fn rekey(&self, mut e: ConfigError, key: &str) -> ConfigError {
        e.key = key.to_owned();
        e
    }

    pub(super) fn prefix(&self, key: &str, v: &Value) -> Result<Prefix, ConfigError> {
        match self.string(key, v)?.as_str() {
            "always" => Ok(Prefix::Always),
            "never" => Ok(Prefix::Never),
            other => Err(self.err(key, format!("{other:?} is not \"always\" or \"never\""))),
        }
    }

    pub(super) fn resource_uris(&self, key: &str, v: &Value) -> Result<ResourceUris, ConfigError> {
        match self.string(key, v)?.as_str() {
            "unchanged" => Ok(ResourceUris::Unchanged),
            "namespaced" => Ok(ResourceUris::Namespaced),
            other => Err(self.err(
                key,
                format!("{other:?} is not \"unchanged\" or \"namespaced\""),
            )),
        }
    }
}
