//! How `call`, `tools` and `mount` reach tools: through a gateway (`--url`,
//! with the key from `MCPGATE_KEY` or `--key-file`, never from argv) or straight
//! to a server named in a config file. A Streamable HTTP session is kept across
//! invocations without a daemon: its id and protocol version are saved in a
//! per-user state file (directory 0700, file 0600) keyed by URL, and the next
//! invocation resumes it; if the server has forgotten it, the `404` re-initializes
//! transparently. A stateless server gives no session id, so nothing is stored.
//! A gateway whose `/ready` says some upstream is still starting is given up
//! to 10 s to finish before its tools are listed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpgate_gateway::Config;
use mcpgate_upstream::{
    Connection, Reply, RequestOpts, TransportSpec, UpstreamError, UpstreamSpec,
};
use serde_json::{Value, json};

/// A failure with the exit code it maps to (documented in `main.rs`).
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: 2,
            message: message.into(),
        }
    }

    pub(crate) fn connection(message: impl Into<String>) -> CliError {
        CliError {
            code: 3,
            message: message.into(),
        }
    }
}

/// Exit code of `call` and `tools` for a rate limit (HTTP 429, JSON-RPC -32029): retry later.
pub(crate) const EXIT_RATE_LIMITED: u8 = 4;
/// Exit code of `call` and `tools` for an exhausted compute-token balance (-32030).
pub(crate) const EXIT_QUOTA_EXHAUSTED: u8 = 5;

impl From<UpstreamError> for CliError {
    fn from(e: UpstreamError) -> CliError {
        let code = match &e {
            UpstreamError::Http { status: 429, .. } => EXIT_RATE_LIMITED,
            _ => 3,
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}

/// Where the tools are.
pub(crate) enum Target {
    /// A gateway: tools are named `SERVER<sep>TOOL` (or unprefixed for a plain server URL).
    Url { url: String, key: Option<String> },
    /// One server from a config file.
    Configured { spec: UpstreamSpec },
}

impl Target {
    /// Picks the target from `--url` / `--config` (or ./mcpgate.toml) and the key sources.
    pub(crate) fn resolve(
        url: Option<&str>,
        config: Option<&Path>,
        key_file: Option<&Path>,
        server: Option<&str>,
    ) -> Result<Target, CliError> {
        if let Some(url) = url {
            let key = match key_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| CliError::usage(format!("--key-file {}: {e}", p.display())))?
                        .trim()
                        .to_owned(),
                ),
                None => std::env::var("MCPGATE_KEY").ok().filter(|k| !k.is_empty()),
            };
            return Ok(Target::Url {
                url: url.to_owned(),
                key,
            });
        }
        let (path, cfg) = load_config(config)?;
        let Some(server) = server else {
            return Err(CliError::usage("name a server from the config"));
        };
        let found = cfg
            .servers
            .into_iter()
            .find(|s| s.name == server)
            .ok_or_else(|| {
                CliError::usage(format!("no server named {server:?} in {}", path.display()))
            })?;
        Ok(Target::Configured { spec: found.spec })
    }

    /// Every server of the config (`--config`, or ./mcpgate.toml), in order.
    pub(crate) fn all_configured(config: Option<&Path>) -> Result<Vec<(String, Target)>, CliError> {
        let (_, cfg) = load_config(config)?;
        Ok(cfg
            .servers
            .into_iter()
            .map(|s| (s.name, Target::Configured { spec: s.spec }))
            .collect())
    }

    fn spec(&self) -> UpstreamSpec {
        match self {
            Target::Configured { spec } => spec.clone(),
            Target::Url { url, key } => UpstreamSpec {
                name: url_label(url),
                transport: TransportSpec::StreamableHttp {
                    url: url.clone(),
                    headers: key
                        .iter()
                        .map(|k| ("Authorization".to_owned(), format!("Bearer {k}")))
                        .collect(),
                },
                timeout: Duration::from_secs(300),
                connect_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(30),
            },
        }
    }
}

/// The config `call`/`tools` read servers from: `--config`, or ./mcpgate.toml.
fn load_config(config: Option<&Path>) -> Result<(PathBuf, Config), CliError> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None if Path::new("mcpgate.toml").exists() => PathBuf::from("mcpgate.toml"),
        None => {
            return Err(CliError::usage(
                "say where the tools are: --url URL (a gateway; key from MCPGATE_KEY or --key-file) or --config FILE",
            ));
        }
    };
    let cfg = Config::load(&path).map_err(|e| CliError::usage(e.to_string()))?;
    Ok((path, cfg))
}

/// How long `mount`, `call` and `tools` wait for a gateway's upstreams to
/// finish their first connection attempt.
const READY_WAIT: Duration = Duration::from_secs(10);

impl Target {
    /// For a gateway URL whose `/ready` answers 503 (some upstream is still in
    /// its first connection attempt), polls it until it answers 200, at most
    /// [`READY_WAIT`]. Returns the servers still starting when it gave up
    /// ("a, b", or "2 server(s)" when the gateway shows only a count), or
    /// `None`. Anything that is not a gateway's readiness answer (no such
    /// route, not JSON, unreachable) returns at once: the MCP request that
    /// follows reports that.
    pub(crate) async fn wait_until_ready(&self) -> Option<String> {
        let Target::Url { url, key } = self else {
            return None;
        };
        let base = url.trim_end_matches('/').trim_end_matches("/mcp");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        loop {
            let mut req = client.get(format!("{base}/ready"));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.ok()?;
            if resp.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
                return None;
            }
            let body: Value = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
            if body.get("ready") != Some(&Value::Bool(false)) {
                return None;
            }
            let starting = match body.get("starting") {
                Some(Value::Array(names)) => names
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                Some(Value::Number(n)) => format!("{n} server(s)"),
                _ => "some server(s)".to_owned(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Some(starting);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The server names a gateway's tool list shows (`SERVER<sep>TOOL`), sorted, once each.
pub(crate) fn gateway_servers(tools: &[Value], separator: &str) -> Vec<String> {
    let mut names: Vec<String> = tools
        .iter()
        .filter_map(|t| t.get("name")?.as_str()?.split_once(separator))
        .map(|(server, _)| server.to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Scheme, host and port only: what errors may show of a URL.
pub(crate) fn url_label(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.to_owned(),
    }
}

/// An open MCP session with the target.
pub(crate) struct Remote {
    conn: Connection,
    state: Option<StateFile>,
    saved: Option<String>,
    /// Whether tool names carry a server prefix (true for a gateway URL).
    pub(crate) gateway: bool,
}

impl Remote {
    /// Resumes the saved session for this target, or initializes a new one.
    pub(crate) async fn open(target: &Target) -> Result<Remote, CliError> {
        // A gateway still starting its upstreams would list none of their tools.
        target.wait_until_ready().await;
        let spec = target.spec();
        let caps = mcpgate_proto::jsonrpc::to_raw(&json!({}));
        let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
        let state = match (&spec.transport, target) {
            (TransportSpec::StreamableHttp { url, .. }, _) => Some(StateFile::for_url(url)?),
            _ => None,
        };
        let saved = state.as_ref().and_then(StateFile::load);
        let conn = match &saved {
            Some(s) => Connection::resume(&spec, caps, events, &s.session_id, &s.protocol_version)?,
            None => Connection::connect(&spec, caps, events).await?,
        };
        Ok(Remote {
            conn,
            state,
            saved: saved.map(|s| s.session_id),
            gateway: matches!(target, Target::Url { .. }),
        })
    }

    /// Whether the other end is an mcpgate gateway (its tools are `SERVER<sep>TOOL`):
    /// what its `initialize` said, or for a resumed session whether every tool
    /// carries the separator.
    pub(crate) fn is_mcpgate(&self, tools: &[Value], separator: &str) -> bool {
        match self.conn.init_info() {
            Some(info) => info.server_name == "mcpgate",
            None => {
                !tools.is_empty()
                    && tools.iter().all(|t| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.contains(separator))
                    })
            }
        }
    }

    /// Saves the session for the next invocation if it changed.
    pub(crate) fn save(&self) {
        let (Some(state), Some(id)) = (&self.state, self.conn.session_id()) else {
            return;
        };
        if self.saved.as_deref() == Some(id.as_str()) {
            return;
        }
        let version = self
            .conn
            .init_info()
            .map(|i| i.protocol_version)
            .unwrap_or_default();
        if let Err(e) = state.store(&id, &version) {
            eprintln!(
                "warning: could not save the session in {}: {e}",
                state.path.display()
            );
        }
    }

    async fn request(&self, method: &str, params: Value) -> Result<Result<Value, Value>, CliError> {
        let raw = mcpgate_proto::jsonrpc::to_raw(&params);
        let reply = self
            .conn
            .request(method, Some(&raw), RequestOpts::default())
            .await;
        self.save();
        match reply? {
            Reply::Result(r) => Ok(Ok(serde_json::from_str(r.get()).unwrap_or(Value::Null))),
            Reply::Error(e) => Ok(Err(serde_json::from_str(e.get()).unwrap_or(Value::Null))),
        }
    }

    /// Every tool, following cursors.
    pub(crate) async fn list_tools(&self) -> Result<Vec<Value>, CliError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let page = self
                .request("tools/list", params)
                .await?
                .map_err(rpc_error)?;
            if let Some(items) = page.get("tools").and_then(Value::as_array) {
                tools.extend(items.iter().cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => return Ok(tools),
            }
        }
    }

    /// Calls a tool; a JSON-RPC error is a usage error for bad names/params, else a connection error.
    pub(crate) async fn call(&self, name: &str, arguments: Value) -> Result<Value, CliError> {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await?
        .map_err(rpc_error)
    }
}

fn rpc_error(e: Value) -> CliError {
    let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_owned();
    match code {
        -32602 | -32601 => CliError::usage(message),
        mcpgate_proto::codes::RATE_LIMITED => CliError {
            code: EXIT_RATE_LIMITED,
            message,
        },
        mcpgate_proto::codes::QUOTA_EXHAUSTED => CliError {
            code: EXIT_QUOTA_EXHAUSTED,
            message,
        },
        _ => CliError::connection(message),
    }
}

/// The tools of `server` as the command sees them: (short name, tools/list entry).
/// Through a gateway they are the ones named `SERVER<sep>NAME`; a plain server's are all its tools.
pub(crate) fn server_tools(
    tools: &[Value],
    server: &str,
    separator: &str,
    prefixed: bool,
) -> Vec<(String, Value)> {
    let prefix = format!("{server}{separator}");
    let named: Vec<(String, Value)> = tools
        .iter()
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?;
            let short = if prefixed {
                name.strip_prefix(&prefix)?
            } else {
                name
            };
            Some((short.to_owned(), t.clone()))
        })
        .collect();
    if named.is_empty() && prefixed {
        // A plain server behind --url: its tools carry no prefix.
        return server_tools(tools, server, separator, false);
    }
    named
}

struct Saved {
    session_id: String,
    protocol_version: String,
}

/// One URL's saved session, in the per-user state directory.
struct StateFile {
    path: PathBuf,
    url: String,
}

impl StateFile {
    fn for_url(url: &str) -> Result<StateFile, CliError> {
        let dir = state_dir().ok_or_else(|| {
            CliError::usage("cannot find a state directory: set HOME or MCPGATE_STATE_DIR")
        })?;
        Ok(StateFile {
            path: dir.join(format!("session-{:016x}.json", fnv1a(url.as_bytes()))),
            url: url.to_owned(),
        })
    }

    fn load(&self) -> Option<Saved> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&self.path).ok()?).ok()?;
        if v.get("url")?.as_str()? != self.url {
            return None;
        }
        Some(Saved {
            session_id: v.get("session_id")?.as_str()?.to_owned(),
            protocol_version: v.get("protocol_version")?.as_str()?.to_owned(),
        })
    }

    fn store(&self, session_id: &str, protocol_version: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let body = json!({ "url": self.url, "session_id": session_id, "protocol_version": protocol_version });
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(body.to_string().as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, &self.path)
    }
}

fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MCPGATE_STATE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return Some(PathBuf::from(d).join("mcpgate"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/mcpgate"))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_tools_are_picked_by_prefix_and_plain_servers_pass() {
        let tools = vec![
            json!({"name": "gh__list_issues"}),
            json!({"name": "time__now"}),
            json!({"name": "gh__x"}),
        ];
        let names: Vec<String> = server_tools(&tools, "gh", "__", true)
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(names, ["list_issues", "x"]);
        let plain = vec![json!({"name": "echo"})];
        assert_eq!(server_tools(&plain, "everything", "__", true)[0].0, "echo");
    }

    #[test]
    fn url_label_drops_path_and_query() {
        assert_eq!(
            url_label("https://h.example:8443/mcp?token=secret"),
            "https://h.example:8443"
        );
    }
}
