//! The gateway's configuration: `mcpgate.toml`, or a Claude / VS Code style
//! `mcpServers` (or `servers`) JSON file taken unchanged. Both are read into a
//! JSON tree and walked by hand, so that every error names the file, the key
//! and what is wrong, and unknown keys are reported instead of ignored.
//! `${VAR}` in any string value is replaced from the environment. Other
//! clients' JSON forms (JSONC, VS Code variables, `envFile`, Windsurf and
//! Cline keys) are rewritten into mcpgate's first by `import.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

mod cluster;
mod duration;
mod import;
mod runs;
mod servers;
mod telemetry;
pub use import::{input_variable, provide_input, to_toml};
mod tiers;
pub use cluster::DATABASE_URL_ENV;
pub use runs::{ModelConfig, ModelKind, RunBackend, RunsSettings};
pub use servers::{Inherited, Isolation, Prefix, ResourceUris, ServerConfig};
pub use telemetry::TelemetryConfig;
pub use tiers::{AuthMode, LOCAL_PLAN, LOCAL_TENANT, Policy, Rate, Rules, Tier, parse_rate};

/// A configuration error: `file: key: message`.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub stateless: bool,
    pub session_idle_timeout: Duration,
    pub max_sessions: usize,
    pub max_body_bytes: usize,
    /// Extra allowed `Origin` values (exact, or `scheme://host:*`). Loopback origins are always allowed.
    pub allowed_origins: Vec<String>,
    /// Extra allowed `Host` values when bound to loopback.
    pub allowed_hosts: Vec<String>,
    pub separator: String,
    pub page_size: usize,
    pub sse_retry: Duration,
    /// A call still running after this long answers with SSE rather than JSON.
    pub sse_upgrade_after: Duration,
    /// Close a POST SSE stream after this much silence and let the client resume with GET.
    pub sse_close_after: Option<Duration>,
    pub servers: Vec<ServerConfig>,
    /// The top-level defaults servers inherit (`prefix`, `resource_uris`, the breaker's).
    pub server_defaults: Inherited,
    /// Whether runs mount the servers as shell commands for their agents (off by default).
    pub mount_as_clis: bool,
    /// `auth`, `[plans]`, `[tiers]`, `audit_arguments`.
    pub policy: Policy,
    /// The store's URL (`store`, `database` or `$DATABASE_URL`: `postgres://…`);
    /// unset means SQLite in `data_dir`.
    pub database: Option<String>,
    /// `metrics_listen`: a separate address serving `/metrics` without a key.
    pub metrics_listen: Option<SocketAddr>,
    /// `[cluster] redis`: the Redis replicas share rate-limit buckets and the
    /// session directory through.
    pub redis: Option<String>,
    /// `[cluster] advertise`: the base URL (`http://host:port`) other replicas
    /// reach this one at, for sessions and parked calls opened here; unset
    /// means the bound address (none for a wildcard bind).
    pub advertise: Option<String>,
    /// `[cluster] key_prefix`: what every Redis key this gateway writes starts with.
    pub key_prefix: String,
    /// `[telemetry]`: where traces go (OTLP/HTTP); unset, none are made.
    pub telemetry: Option<TelemetryConfig>,
    /// `[runs]`.
    pub runs: RunsSettings,
    /// `[workflows.NAME]`: read-only workflows.
    pub workflows: BTreeMap<String, mcpgate_runs::Workflow>,
    /// `[models.NAME]`: model endpoints for the model proxy.
    pub models: BTreeMap<String, ModelConfig>,
}

const TOP_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "auth",
    "stateless",
    "session_idle_timeout",
    "max_sessions",
    "max_body",
    "allowed_origins",
    "allowed_hosts",
    "separator",
    "prefix",
    "resource_uris",
    "page_size",
    "sse_retry",
    "sse_close_after",
    "sse_upgrade_after",
    "breaker_failures",
    "breaker_cooldown",
    "mount_as_clis",
    "audit_arguments",
    "audit",
    "ledger_sync",
    "database",
    "store",
    "metrics_listen",
    "cluster",
    "telemetry",
    "servers",
    "mcpServers",
    "plans",
    "tiers",
    "inputs",
    "runs",
    "workflows",
    "models",
];
impl Config {
    /// Loads and validates a config file (TOML, or JSON when it ends in `.json` or starts with `{`).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            key: "-".into(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Parses config text as if it were read from `path` (relative paths resolve next to it).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let is_json = path
            .extension()
            .is_some_and(|e| e == "json" || e == "jsonc")
            || text.trim_start().starts_with('{')
            || text.trim_start().starts_with("//");
        let tree: Value = if is_json {
            let mut tree =
                serde_json::from_str(&import::strip_jsonc(text)).map_err(|e| ConfigError {
                    file: file.clone(),
                    key: format!("line {} column {}", e.line(), e.column()),
                    message: format!("not valid JSON: {e}"),
                })?;
            if let Value::Object(top) = &mut tree {
                for note in import::normalize_object(top, path) {
                    if note.contains(" ignored: ") {
                        tracing::warn!("{file}: {note}");
                    }
                }
            }
            tree
        } else {
            let table: toml::Table = toml::from_str(text).map_err(|e| {
                let key = e
                    .span()
                    .map(|s| {
                        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                        format!("line {line}")
                    })
                    .unwrap_or_else(|| "-".into());
                ConfigError {
                    file: file.clone(),
                    key,
                    message: format!("not valid TOML: {}", e.message()),
                }
            })?;
            serde_json::to_value(table).map_err(|e| ConfigError {
                file: file.clone(),
                key: "-".into(),
                message: e.to_string(),
            })?
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Walker { file, base }.config(path, &tree)
    }
}

struct Walker {
    file: String,
    base: PathBuf,
}

impl Walker {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn config(&self, path: &Path, tree: &Value) -> Result<Config, ConfigError> {
        let top = tree
            .as_object()
            .ok_or_else(|| self.err("-", "the top level must be a table / object"))?;
        self.unknown_keys("", top, TOP_KEYS)?;
        let listen = match top.get("listen") {
            None => SocketAddr::from(([127, 0, 0, 1], 8787)),
            Some(v) => {
                let s = self.string("listen", v)?;
                s.parse().map_err(|_| {
                    self.err(
                        "listen",
                        format!("{s:?} is not an address like \"127.0.0.1:8787\""),
                    )
                })?
            }
        };
        let data_dir = match top.get("data_dir") {
            Some(v) => self.base.join(self.string("data_dir", v)?),
            None => self.base.join(".mcpgate"),
        };
        let policy = self.policy(top)?;
        let separator = match top.get("separator") {
            Some(v) => {
                let s = self.string("separator", v)?;
                if s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
                {
                    return Err(self.err(
                        "separator",
                        "must be non-empty and use only letters, digits, _ - . /",
                    ));
                }
                s
            }
            None => "__".into(),
        };
        let prefix = match top.get("prefix") {
            Some(v) => self.prefix("prefix", v)?,
            None => Prefix::Always,
        };
        let inherited = Inherited {
            prefix,
            resource_uris: match top.get("resource_uris") {
                Some(v) => self.resource_uris("resource_uris", v)?,
                None => ResourceUris::Unchanged,
            },
            breaker_failures: self
                .opt_u32(top, "breaker_failures", "breaker_failures")?
                .unwrap_or(5),
            breaker_cooldown: self
                .opt_duration(top, "breaker_cooldown")?
                .unwrap_or(Duration::from_secs(30)),
        };
        let servers_val = top.get("servers").or_else(|| top.get("mcpServers"));
        let servers_key = if top.contains_key("servers") {
            "servers"
        } else {
            "mcpServers"
        };
        let mut servers = Vec::new();
        if let Some(v) = servers_val {
            let table = v
                .as_object()
                .ok_or_else(|| self.err(servers_key, "must be a table of servers"))?;
            for (name, sv) in table {
                let key = format!("{servers_key}.{name}");
                if let Some(s) = self.server(&key, name, sv, inherited)? {
                    servers.push(s);
                }
            }
        }
        let never: Vec<&str> = servers
            .iter()
            .filter(|s| s.prefix == Prefix::Never)
            .map(|s| s.name.as_str())
            .collect();
        if !never.is_empty() && servers.len() > 1 && prefix == Prefix::Never {
            tracing::warn!(
                "prefix = \"never\" with {} servers: colliding names will be reported and only the first kept",
                servers.len()
            );
        }
        Ok(Config {
            file: path.to_path_buf(),
            listen,
            data_dir,
            stateless: self.opt_bool(top, "stateless")?.unwrap_or(false),
            session_idle_timeout: self
                .opt_duration(top, "session_idle_timeout")?
                .unwrap_or(Duration::from_secs(1800)),
            max_sessions: self.opt_uint(top, "max_sessions")?.unwrap_or(100_000),
            max_body_bytes: match top.get("max_body") {
                Some(v) => self.size("max_body", v)?,
                None => 4 << 20,
            },
            allowed_origins: self.opt_strings(top, "allowed_origins")?,
            allowed_hosts: self.opt_strings(top, "allowed_hosts")?,
            separator,
            page_size: self.opt_uint(top, "page_size")?.unwrap_or(1000).max(1),
            sse_retry: self
                .opt_duration(top, "sse_retry")?
                .unwrap_or(Duration::from_millis(1000)),
            sse_close_after: self.opt_duration(top, "sse_close_after")?,
            sse_upgrade_after: self
                .opt_duration(top, "sse_upgrade_after")?
                .unwrap_or(Duration::from_secs(2)),
            servers,
            server_defaults: inherited,
            mount_as_clis: self.opt_bool(top, "mount_as_clis")?.unwrap_or(false),
            policy,
            database: self.store_url(top)?,
            metrics_listen: self.metrics_listen(top)?,
            redis: self.cluster_redis(top)?,
            advertise: self.cluster_advertise(top)?,
            key_prefix: self.cluster_key_prefix(top)?,
            telemetry: self.telemetry(top)?,
            runs: self.runs_settings(top)?,
            workflows: self.workflows(top)?,
            models: self.models(top)?,
        })
    }

    fn unknown_keys(
        &self,
        at: &str,
        t: &Map<String, Value>,
        known: &[&str],
    ) -> Result<(), ConfigError> {
        for key in t.keys() {
            if !known.contains(&key.as_str()) {
                let full = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                let hint = known
                    .iter()
                    .find(|k| edit_distance(k, key) <= 2)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(self.err(&full, format!("unknown key{hint}")));
            }
        }
        Ok(())
    }

    fn string(&self, key: &str, v: &Value) -> Result<String, ConfigError> {
        match v {
            Value::String(s) => expand_env(s).map_err(|var| {
                let input = var
                    .strip_prefix("MCPGATE_INPUT_")
                    .map(|_| " (a VS Code ${input:...}: set it to the input's value)")
                    .unwrap_or("");
                self.err(
                    key,
                    format!("refers to ${{{var}}}, which is not set in the environment{input}"),
                )
            }),
            _ => Err(self.err(key, format!("must be a string, found {}", type_name(v)))),
        }
    }

    fn strings(&self, key: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
        let arr = v.as_array().ok_or_else(|| {
            self.err(
                key,
                format!("must be a list of strings, found {}", type_name(v)),
            )
        })?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| self.string(&format!("{key}[{i}]"), x))
            .collect()
    }

    fn string_map(&self, key: &str, v: &Value) -> Result<BTreeMap<String, String>, ConfigError> {
        let t = v.as_object().ok_or_else(|| {
            self.err(
                key,
                format!("must be a table of strings, found {}", type_name(v)),
            )
        })?;
        t.iter()
            .map(|(k, x)| Ok((k.clone(), self.string(&format!("{key}.{k}"), x)?)))
            .collect()
    }

    fn opt_strings(&self, t: &Map<String, Value>, key: &str) -> Result<Vec<String>, ConfigError> {
        t.get(key)
            .map(|v| self.strings(key, v))
            .unwrap_or(Ok(Vec::new()))
    }

    fn opt_bool(&self, t: &Map<String, Value>, key: &str) -> Result<Option<bool>, ConfigError> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(
                key,
                format!("must be true or false, found {}", type_name(v)),
            )),
        }
    }

    fn opt_uint(&self, t: &Map<String, Value>, key: &str) -> Result<Option<usize>, ConfigError> {
        match t.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.err(
                        key,
                        format!("must be a non-negative integer, found {}", type_name(v)),
                    )
                }),
        }
    }

    fn opt_duration(
        &self,
        t: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(v) = t.get(key) else {
            return Ok(None);
        };
        match v {
            Value::Number(n) => duration::from_seconds(n),
            Value::String(_) => duration::from_text(&self.string(key, v)?),
            other => Err(format!(
                "must be a duration like \"500ms\", \"30s\", \"5m\" or \"1h\", or a number of seconds; found {}",
                type_name(other)
            )),
        }
        .map(Some)
        .map_err(|m| self.err(key, m))
    }

    fn size(&self, key: &str, v: &Value) -> Result<usize, ConfigError> {
        if let Some(n) = v.as_u64() {
            return usize::try_from(n).map_err(|_| self.err(key, "too large"));
        }
        let s = self.string(key, v)?;
        parse_size(&s).ok_or_else(|| {
            self.err(
                key,
                format!("{s:?} is not a size like \"4MiB\", \"512KiB\" or 1048576"),
            )
        })
    }
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Replaces `${VAR}` from the environment; `$${` is a literal `${`. Errors with the missing name.
pub fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let var = &after[..end];
        let (name, default) = match var.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (var, None),
        };
        let value = import::provided(name)
            .ok_or(())
            .or_else(|()| std::env::var(name));
        match (value, default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => return Err(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Levenshtein distance, for "did you mean" hints (config keys, CLI flags).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_upstream::TransportSpec;

    fn load(name: &str, text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("mcpgate-cfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    #[test]
    fn toml_servers_of_both_kinds() {
        // SAFETY-free: set_var is unsafe in edition 2024, so use a variable the test environment has.
        let home = std::env::var("HOME").unwrap();
        let c = load(
            "a.toml",
            r#"
listen = "127.0.0.1:0"
[servers.time]
command = "uvx"
args = ["mcp-server-time"]
env = { HOME_COPY = "${HOME}" }
timeout = "5s"
[servers.gh]
url = "https://example.com/mcp/"
headers = { Authorization = "Bearer ${MCPGATE_TEST_UNSET:-dflt}" }
isolation = "per-session"
"#,
        )
        .unwrap();
        assert_eq!(c.servers.len(), 2);
        let gh = c.servers.iter().find(|s| s.name == "gh").unwrap();
        assert_eq!(gh.isolation, Isolation::PerSession);
        match &gh.spec.transport {
            TransportSpec::StreamableHttp { headers, .. } => {
                assert_eq!(headers[0].1, "Bearer dflt")
            }
            _ => panic!("http expected"),
        }
        let t = c.servers.iter().find(|s| s.name == "time").unwrap();
        assert_eq!(t.spec.timeout, Duration::from_secs(5));
        match &t.spec.transport {
            TransportSpec::Stdio { env, .. } => assert_eq!(env["HOME_COPY"], home),
            _ => panic!("stdio expected"),
        }
    }

    #[test]
    fn claude_mcp_servers_json_works_unchanged() {
        let c = load(
            "claude.json",
            r#"{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"], "env": {}},
                "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp"}}}"#,
        )
        .unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.listen.port(), 8787);
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = load("b.toml", "[servers.x]\ncomand = \"a\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("b.toml: servers.x.comand: unknown key; did you mean `command`?"),
            "{e}"
        );
        let e = load(
            "c.toml",
            "[servers.x]\ncommand = \"a\"\nurl = \"http://h\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "servers.x");
        let e = load("d.toml", "[servers.x]\nurl = \"ftp://h\"\n").unwrap_err();
        assert_eq!(e.key, "servers.x.url");
        let e = load(
            "e.toml",
            "[servers.x]\ncommand = \"a\"\ntimeout = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "servers.x.timeout");
        let e = load("f.toml", "listen = 5\n").unwrap_err();
        assert!(e.message.contains("must be a string, found a number"));
        let e = load(
            "g.toml",
            "[servers.x]\ncommand = \"${MCPGATE_SURELY_UNSET_VAR}\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("MCPGATE_SURELY_UNSET_VAR"));
        let e = load("h.toml", "listen = \n").unwrap_err();
        assert_eq!(e.key, "line 1");
    }

    #[test]
    fn auth_schemes_read_env_and_file_and_errors_hide_values() {
        let dir = std::env::temp_dir().join(format!("mcpgate-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tok"), "s3cr3t-from-file\n").unwrap();
        let c = load(
            "auth.toml",
            &format!(
                r#"
[servers.gh]
url = "https://example.com/mcp"
auth = [{{ prefix = "Bearer ", file = "{}" }}, {{ header = "X-Home", env = "HOME" }}]
"#,
                dir.join("tok").display()
            ),
        )
        .unwrap();
        match &c.servers[0].spec.transport {
            TransportSpec::StreamableHttp { headers, .. } => {
                assert_eq!(
                    headers[0],
                    ("Authorization".into(), "Bearer s3cr3t-from-file".into())
                );
                assert_eq!(headers[1].0, "X-Home");
            }
            _ => panic!("http expected"),
        }
        let e = load(
            "auth2.toml",
            "[servers.gh]\nurl = \"https://h/mcp\"\nauth = [{ env = \"MCPGATE_NOPE_UNSET\" }]\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "servers.gh.auth[0].env");
        assert!(e.message.contains("MCPGATE_NOPE_UNSET is not set"));
        let e = load(
            "auth3.toml",
            "[servers.s]\ncommand = \"x\"\nauth = [{ env = \"HOME\" }]\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "servers.s.auth");
        let dbg = format!("{:?}", c.servers[0].spec);
        assert!(
            !dbg.contains("s3cr3t"),
            "Debug must not print secrets: {dbg}"
        );
    }

    #[test]
    fn sizes_and_env() {
        assert_eq!(parse_size("4MiB"), Some(4 << 20));
        assert_eq!(expand_env("a$${b}").unwrap(), "a${b}");
    }
}
