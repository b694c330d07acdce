//! Agent adapters, shared by every backend: for each [`AgentKind`], the argv,
//! environment and files that start the agent against the gateway, and a
//! `Transcript` that turns its output into structured events and decides
//! whether the run succeeded.
//!
//! Every agent gets a cleared environment with `HOME`, `PATH`, `TMPDIR`, the
//! workflow's `env`, and `MCPGATE_URL`, `MCPGATE_KEY` (the run key),
//! `MCPGATE_RUN_ID`, `MCPGATE_MCP_CONFIG` (an `mcpServers` JSON file naming
//! the gateway as server `mcpgate`, type `http`, with the run key as bearer)
//! and `MCPGATE_PROMPT`. Then, per agent:
//!
//! - `claude-code`: `claude -p --output-format stream-json --verbose
//!   --mcp-config FILE --strict-mcp-config --allowedTools mcp__mcpgate,…
//!   -- PROMPT`, with the model proxy as `ANTHROPIC_BASE_URL` and the run key
//!   as `ANTHROPIC_API_KEY`. Facts of Claude Code 2.1.332 this rests on:
//!   without `MCP_CONNECTION_NONBLOCKING=0` the first model turn may leave
//!   before the MCP tools are connected; MCP tools are deferred behind its
//!   `ToolSearch` tool unless `ENABLE_TOOL_SEARCH=false` (a scoped run has
//!   few tools, so they are sent up front); it exits 0 when its MCP server
//!   failed (`"status":"failed"` in the `system/init` event) and may exit 0
//!   with `"is_error": true` in its result, so the transcript, not the exit
//!   code, decides; `CLAUDE_CODE_MAX_RETRIES=1` makes an unreachable model
//!   fail in about a second instead of minutes; telemetry, error reporting,
//!   autoupdate and non-essential traffic are switched off by environment.
//!   The workflow's system prompt is appended (`--append-system-prompt`) so
//!   Claude Code keeps its own tool instructions. `Bash` is allowed only in
//!   a sandbox.
//! - `codex`: a `CODEX_HOME/config.toml` with the model proxy as provider
//!   `mcpgate` (`wire_api = "responses"`, key from `MCPGATE_KEY`), the
//!   gateway as MCP server with `default_tools_approval_mode = "approve"`
//!   (otherwise `codex exec` cannot call it), analytics, update checks and
//!   plugins off, then `codex exec --json --strict-config
//!   --skip-git-repo-check` (strict, so a key this Codex does not know fails
//!   the run instead of being ignored; Codex 0.171.0 accepts this config and
//!   posts to `BASE_URL/responses`).
//! - `command`: the workflow's argv, as is.
//!
//! With `cli_tools = true` the run's tools are also mounted as shell commands
//! (`mcpgate mount`, done by `sandbox-init` through the relay before the agent
//! starts) into `~/.mcpgate/bin`, first on `PATH`; `MCPGATE_CLI_TOOLS` names
//! that folder and `MCPGATE_TOOLS_PROMPT_FILE` the agent prompt section that
//! describes the commands. That section is appended to Claude Code's system
//! prompt and to Codex's prompt; a `command` agent reads the file itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::backend::{RunFile, SandboxPaths};
use crate::hooks::RunGrant;
use crate::relay::CliTools;
use crate::run::{EventBody, McpServerStatus, RunId, Stream};
use crate::workflow::{AgentKind, Workflow};

/// The gateway's name as an MCP server in every agent's config.
pub const MCP_SERVER_NAME: &str = "mcpgate";
/// Where the `mcpServers` file goes, relative to the run's home.
const MCP_CONFIG_FILE: &str = ".mcpgate/mcp.json";
/// Where `cli_tools` commands go, relative to the run's home.
const CLI_TOOLS_DIR: &str = ".mcpgate/bin";
/// Where their agent prompt section goes, relative to the run's home.
const CLI_TOOLS_PROMPT: &str = ".mcpgate/tools.md";
/// Where Codex's home goes, relative to the run's home.
const CODEX_HOME_DIR: &str = ".codex";
/// Longest tool result or assistant text kept in one log event.
const MAX_EVENT_TEXT: usize = 16 * 1024;

/// Why an agent cannot be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The agent's program is not configured and not on `PATH`.
    #[error(
        "the {agent} agent is not installed: put `{binary}` on PATH or set [runs] agents.{agent} = \"/path/to/{binary}\""
    )]
    NotInstalled {
        /// The agent.
        agent: AgentKind,
        /// Its usual program name.
        binary: &'static str,
    },
    /// The workflow names no model, but the agent needs one.
    #[error("agent = \"{0}\" needs a model: set `model` in the workflow to a [models.NAME] entry")]
    NoModel(AgentKind),
}

/// What an adapter gets to prepare one run.
#[derive(Debug)]
pub(crate) struct AgentInput<'a> {
    pub(crate) run_id: &'a RunId,
    pub(crate) workflow: &'a Workflow,
    pub(crate) prompt: &'a str,
    pub(crate) system_prompt: Option<&'a str>,
    pub(crate) grant: &'a RunGrant,
    pub(crate) paths: &'a SandboxPaths,
    /// The agent's program (claude-code, codex), resolved on the host.
    pub(crate) program: Option<&'a Path>,
    pub(crate) sandboxed: bool,
}

/// The argv, environment and files that start the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) files: Vec<RunFile>,
    /// The run's tools as shell commands (`cli_tools = true`).
    pub(crate) cli_tools: Option<CliTools>,
}

/// The usual program name of an agent's CLI.
pub(crate) fn binary_name(agent: AgentKind) -> Option<&'static str> {
    match agent {
        AgentKind::ClaudeCode => Some("claude"),
        AgentKind::Codex => Some("codex"),
        AgentKind::Command => None,
    }
}

/// The `mcpServers` JSON naming the gateway, as any MCP client reads it.
fn mcp_servers_json(grant: &RunGrant) -> Value {
    json!({"mcpServers": {MCP_SERVER_NAME: {
        "type": "http",
        "url": grant.mcp_url,
        "headers": {"Authorization": format!("Bearer {}", grant.key)},
    }}})
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Prepares argv, environment and files for the workflow's agent.
pub(crate) fn prepare(input: &AgentInput<'_>) -> Result<Prepared, AdapterError> {
    let home = &input.paths.home;
    let mcp_config = home.join(MCP_CONFIG_FILE);
    let mut env: BTreeMap<String, String> = input.workflow.env.clone();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    let tools_dir = input.workflow.cli_tools.then(|| home.join(CLI_TOOLS_DIR));
    set("HOME", path_text(home));
    let path = "/usr/local/bin:/usr/bin:/bin";
    match &tools_dir {
        Some(dir) => {
            set("PATH", format!("{}:{path}", path_text(dir)));
            set("MCPGATE_CLI_TOOLS", path_text(dir));
            set("MCPGATE_TOOL_SEPARATOR", input.grant.tool_separator.clone());
            set(
                "MCPGATE_TOOLS_PROMPT_FILE",
                path_text(&home.join(CLI_TOOLS_PROMPT)),
            );
        }
        None => set("PATH", path.into()),
    }
    set("TMPDIR", "/tmp".into());
    set("LANG", "C.UTF-8".into());
    set("USER", "run".into());
    set("MCPGATE_URL", input.grant.gateway_url.clone());
    set("MCPGATE_KEY", input.grant.key.clone());
    set("MCPGATE_RUN_ID", input.run_id.to_string());
    set("MCPGATE_MCP_CONFIG", path_text(&mcp_config));
    set("MCPGATE_PROMPT", input.prompt.to_owned());
    let mut files = vec![RunFile {
        path: PathBuf::from(MCP_CONFIG_FILE),
        contents: mcp_servers_json(input.grant).to_string().into_bytes(),
        mode: 0o600,
    }];
    let program = || {
        let agent = input.workflow.agent;
        input
            .program
            .map(path_text)
            .ok_or(AdapterError::NotInstalled {
                agent,
                binary: binary_name(agent).unwrap_or("?"),
            })
    };
    let argv = match input.workflow.agent {
        AgentKind::Command => input.workflow.command.clone(),
        AgentKind::ClaudeCode => {
            let base_url = input
                .grant
                .model_base_url
                .clone()
                .ok_or(AdapterError::NoModel(AgentKind::ClaudeCode))?;
            for (k, v) in [
                ("ANTHROPIC_BASE_URL", base_url.as_str()),
                ("ANTHROPIC_API_KEY", input.grant.key.as_str()),
                ("DISABLE_TELEMETRY", "1"),
                ("DISABLE_ERROR_REPORTING", "1"),
                ("DISABLE_AUTOUPDATER", "1"),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("CLAUDE_CODE_MAX_RETRIES", "1"),
                ("MCP_CONNECTION_NONBLOCKING", "0"),
                ("ENABLE_TOOL_SEARCH", "false"),
            ] {
                set(k, v.to_owned());
            }
            let mut allowed = vec![format!("mcp__{MCP_SERVER_NAME}")];
            allowed.extend(["Read", "Write", "Edit", "Glob", "Grep"].map(String::from));
            if input.sandboxed {
                allowed.push("Bash".into());
            }
            let mut argv = vec![
                program()?,
                "-p".into(),
                "--output-format".into(),
                "stream-json".into(),
                "--verbose".into(),
                "--mcp-config".into(),
                path_text(&mcp_config),
                "--strict-mcp-config".into(),
                "--allowedTools".into(),
                allowed.join(","),
                "--no-session-persistence".into(),
            ];
            // With cli_tools the commands' prompt section joins the system prompt.
            if input.system_prompt.is_some() || tools_dir.is_some() {
                let system = input.system_prompt.unwrap_or_default().to_owned();
                argv.extend(["--append-system-prompt".into(), system]);
            }
            if let Some(model) = &input.grant.model_id {
                argv.extend(["--model".into(), model.clone()]);
            }
            argv.extend(["--".into(), input.prompt.to_owned()]);
            argv
        }
        AgentKind::Codex => {
            let base_url = input
                .grant
                .model_base_url
                .clone()
                .ok_or(AdapterError::NoModel(AgentKind::Codex))?;
            let codex_home = home.join(CODEX_HOME_DIR);
            set("CODEX_HOME", path_text(&codex_home));
            files.push(RunFile {
                path: Path::new(CODEX_HOME_DIR).join("config.toml"),
                contents: codex_config(input, &base_url).into_bytes(),
                mode: 0o600,
            });
            vec![
                program()?,
                "exec".into(),
                "--json".into(),
                "--strict-config".into(),
                "--skip-git-repo-check".into(),
                "--cd".into(),
                path_text(&input.paths.workspace),
                "--".into(),
                input.prompt.to_owned(),
            ]
        }
    };
    let cli_tools = tools_dir.map(|dir| CliTools {
        dir,
        prompt_file: home.join(CLI_TOOLS_PROMPT),
        append_to_arg: match input.workflow.agent {
            AgentKind::ClaudeCode => argv
                .iter()
                .position(|a| a == "--append-system-prompt")
                .map(|i| i + 1),
            AgentKind::Codex => argv.len().checked_sub(1),
            AgentKind::Command => None,
        },
    });
    Ok(Prepared {
        argv,
        env: env.into_iter().collect(),
        files,
        cli_tools,
    })
}

/// Codex's `config.toml` for one run.
fn codex_config(input: &AgentInput<'_>, base_url: &str) -> String {
    let model = input
        .grant
        .model_id
        .clone()
        .or_else(|| input.workflow.model.clone())
        .unwrap_or_default();
    // Inside the bubblewrap sandbox Codex's own sandbox is redundant (and
    // needs namespaces it cannot get); outside one, keep it.
    let sandbox_mode = if input.sandboxed {
        "danger-full-access"
    } else {
        "workspace-write"
    };
    let mut config = toml::Table::new();
    let mut put = |k: &str, v: toml::Value| {
        config.insert(k.to_owned(), v);
    };
    put("model", model.into());
    put("model_provider", MCP_SERVER_NAME.into());
    put("approval_policy", "never".into());
    put("sandbox_mode", sandbox_mode.into());
    put("check_for_update_on_startup", false.into());
    if let Some(system) = input.system_prompt {
        put("developer_instructions", system.into());
    }
    let table = |pairs: &[(&str, toml::Value)]| {
        toml::Value::Table(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    };
    put("analytics", table(&[("enabled", false.into())]));
    put("features", table(&[("plugins", false.into())]));
    put(
        "model_providers",
        table(&[(
            MCP_SERVER_NAME,
            table(&[
                ("name", "mcpgate model proxy".into()),
                ("base_url", base_url.into()),
                ("env_key", "MCPGATE_KEY".into()),
                ("wire_api", "responses".into()),
            ]),
        )]),
    );
    put(
        "mcp_servers",
        table(&[(
            MCP_SERVER_NAME,
            table(&[
                ("url", input.grant.mcp_url.clone().into()),
                ("bearer_token_env_var", "MCPGATE_KEY".into()),
                ("default_tools_approval_mode", "approve".into()),
            ]),
        )]),
    );
    toml::to_string(&config).unwrap_or_default()
}

/// How a run ended, as the agent's output tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Succeeded,
    Failed(String),
}

/// Reads one agent's output into events and a verdict.
#[derive(Debug)]
pub(crate) enum Transcript {
    Claude(Observed),
    Codex(Observed),
    Plain,
}

/// What a structured transcript has seen so far.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// MCP servers that did not connect, with their status.
    failed_servers: Vec<McpServerStatus>,
    /// The final result: (is_error, text).
    result: Option<(bool, Option<String>)>,
    /// The last error the agent reported.
    error: Option<String>,
}

fn clip(text: &str) -> String {
    if text.len() <= MAX_EVENT_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_EVENT_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// The text of a tool result's `content` (a string or a list of blocks).
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn text_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Transcript {
    pub(crate) fn for_agent(agent: AgentKind) -> Transcript {
        match agent {
            AgentKind::ClaudeCode => Transcript::Claude(Observed::default()),
            AgentKind::Codex => Transcript::Codex(Observed::default()),
            AgentKind::Command => Transcript::Plain,
        }
    }

    /// The events one line of output becomes.
    pub(crate) fn on_line(&mut self, stream: Stream, line: &str) -> Vec<EventBody> {
        let raw = || {
            vec![EventBody::Output {
                stream,
                line: line.to_owned(),
            }]
        };
        if stream == Stream::Stderr {
            return raw();
        }
        let event = || serde_json::from_str::<Value>(line).ok();
        let parsed = match self {
            Transcript::Plain => None,
            Transcript::Claude(seen) => event().and_then(|e| claude_event(seen, &e)),
            Transcript::Codex(seen) => event().and_then(|e| codex_event(seen, &e)),
        };
        parsed.unwrap_or_else(raw)
    }

    /// Whether the run succeeded, given the first process's exit code.
    pub(crate) fn verdict(&self, exit_code: i32) -> Verdict {
        let seen = match self {
            Transcript::Plain => {
                return if exit_code == 0 {
                    Verdict::Succeeded
                } else {
                    Verdict::Failed(format!("exit code {exit_code}"))
                };
            }
            Transcript::Claude(seen) | Transcript::Codex(seen) => seen,
        };
        let agent = match self {
            Transcript::Claude(_) => "Claude Code",
            _ => "Codex",
        };
        if let Some(server) = seen.failed_servers.first() {
            return Verdict::Failed(format!(
                "{agent}'s MCP server `{}` did not connect (status {})",
                server.name, server.status
            ));
        }
        match (&seen.result, exit_code) {
            (Some((true, text)), _) => Verdict::Failed(format!(
                "{agent} reported an error: {}",
                text.as_deref()
                    .or(seen.error.as_deref())
                    .unwrap_or("(no message)")
            )),
            (Some((false, _)), 0) => Verdict::Succeeded,
            (_, code) if code != 0 => Verdict::Failed(match &seen.error {
                Some(error) => format!("exit code {code}: {error}"),
                None => format!("exit code {code}"),
            }),
            (None, _) => Verdict::Failed(format!(
                "{agent} exited without a result{}",
                seen.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
            (Some((false, _)), _) => Verdict::Succeeded,
        }
    }
}

/// One Claude Code `stream-json` event; `None` keeps the line as raw output.
fn claude_event(seen: &mut Observed, event: &Value) -> Option<Vec<EventBody>> {
    let blocks = || {
        event
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match (
        event.get("type").and_then(Value::as_str)?,
        event.get("subtype").and_then(Value::as_str),
    ) {
        ("system", Some("init")) => {
            let servers: Vec<McpServerStatus> = event
                .get("mcp_servers")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|s| McpServerStatus {
                            name: text_of(s, "name").unwrap_or_default(),
                            status: text_of(s, "status").unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            seen.failed_servers.extend(
                servers
                    .iter()
                    .filter(|s| matches!(s.status.as_str(), "failed" | "needs-auth"))
                    .cloned(),
            );
            Some(vec![EventBody::AgentStarted {
                model: text_of(event, "model"),
                mcp_servers: servers,
            }])
        }
        ("assistant", _) => {
            let mut out = Vec::new();
            for block in blocks() {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(EventBody::AssistantText {
                        text: clip(&text_of(&block, "text").unwrap_or_default()),
                    }),
                    Some("tool_use") => out.push(EventBody::ToolCall {
                        id: text_of(&block, "id").unwrap_or_default(),
                        name: text_of(&block, "name").unwrap_or_default(),
                        input: block.get("input").cloned().unwrap_or(Value::Null),
                    }),
                    _ => {}
                }
            }
            if let Some(error) = text_of(event, "error") {
                seen.error = Some(error);
            }
            Some(out)
        }
        ("user", _) => Some(
            blocks()
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .map(|b| EventBody::ToolResult {
                    id: text_of(b, "tool_use_id").unwrap_or_default(),
                    is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                    text: clip(&content_text(b.get("content"))),
                })
                .collect(),
        ),
        ("result", _) => {
            let is_error = event
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let text = text_of(event, "result").map(|t| clip(&t));
            seen.result = Some((is_error, text.clone()));
            Some(vec![EventBody::AgentResult {
                is_error,
                text,
                turns: event.get("num_turns").and_then(Value::as_u64),
            }])
        }
        _ => None,
    }
}

/// One Codex `exec --json` event; `None` keeps the line as raw output.
fn codex_event(seen: &mut Observed, event: &Value) -> Option<Vec<EventBody>> {
    let item = event.get("item");
    match event.get("type").and_then(Value::as_str)? {
        "item.completed" => {
            let item = item?;
            match item.get("type").and_then(Value::as_str)? {
                "agent_message" => {
                    let text = text_of(item, "text").unwrap_or_default();
                    seen.result = Some((false, Some(clip(&text))));
                    Some(vec![EventBody::AssistantText { text: clip(&text) }])
                }
                "mcp_tool_call" => {
                    let id = text_of(item, "id").unwrap_or_default();
                    let name = format!(
                        "{}__{}",
                        text_of(item, "server").unwrap_or_default(),
                        text_of(item, "tool").unwrap_or_default()
                    );
                    let failed = text_of(item, "status").as_deref() == Some("failed");
                    let text = match item.get("error") {
                        Some(e) if !e.is_null() => content_text(e.get("message").or(Some(e))),
                        _ => content_text(item.get("result").and_then(|r| r.get("content"))),
                    };
                    Some(vec![
                        EventBody::ToolCall {
                            id: id.clone(),
                            name,
                            input: item.get("arguments").cloned().unwrap_or(Value::Null),
                        },
                        EventBody::ToolResult {
                            id,
                            is_error: failed,
                            text: clip(&text),
                        },
                    ])
                }
                _ => None,
            }
        }
        "turn.failed" => {
            let message = event
                .get("error")
                .and_then(|e| text_of(e, "message"))
                .unwrap_or_else(|| "the turn failed".to_owned());
            seen.result = Some((true, Some(message.clone())));
            Some(vec![EventBody::AgentResult {
                is_error: true,
                text: Some(message),
                turns: None,
            }])
        }
        "error" => {
            seen.error = text_of(event, "message");
            None
        }
        "turn.completed" => {
            let text = seen.result.as_ref().and_then(|r| r.1.clone());
            if seen.result.is_none() {
                seen.result = Some((false, None));
            }
            Some(vec![EventBody::AgentResult {
                is_error: false,
                text,
                turns: None,
            }])
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "adapters_tests.rs"]
mod tests;
