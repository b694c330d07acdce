//! What a run is, as stored and served: its id, the state machine
//! `queued → starting → running → succeeded | failed | cancelled | timed_out`,
//! the record (workflow version and snapshot, tenant, params, timestamps,
//! exit code, reason, cost, tool calls, artifacts), and the ordered,
//! timestamped events of its log (state changes, output lines, the agent's
//! structured events). Plain data with serde, shared by the runner, the
//! [`crate::RunStore`] implementations and, later, the HTTP API.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifacts::Artifact;
use crate::workflow::Workflow;

/// A run's id: `run_` and 20 lowercase hex digits, random.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// A fresh random id.
    pub fn generate() -> RunId {
        let mut bytes = [0u8; 10];
        if getrandom::fill(&mut bytes).is_err() {
            // No entropy source: fall back on time and a counter, still unique per process.
            let nanos = now_nanos();
            bytes.copy_from_slice(&nanos.to_le_bytes()[..10]);
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        RunId(format!("run_{hex}"))
    }

    /// Accepts an id as a client sends it: `run_` and hex digits, nothing else
    /// (so an id is safe in a path and a log line).
    pub fn parse(text: &str) -> Option<RunId> {
        let hex = text.strip_prefix("run_")?;
        (!hex.is_empty()
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| RunId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Accepted, waiting for a slot.
    Queued,
    /// Getting its credential, workspace and sandbox.
    Starting,
    /// The agent is running.
    Running,
    /// The agent finished and reported success.
    Succeeded,
    /// The agent failed, or could not start.
    Failed,
    /// Cancelled by a person.
    Cancelled,
    /// Killed at its deadline.
    TimedOut,
}

impl RunState {
    /// Every state, in lifecycle order.
    pub const ALL: [RunState; 7] = [
        RunState::Queued,
        RunState::Starting,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
        RunState::TimedOut,
    ];

    /// The name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::TimedOut => "timed_out",
        }
    }

    /// Parses [`RunState::as_str`] back.
    pub fn parse(text: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run is over (nothing changes any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled | RunState::TimedOut
        )
    }

    /// Whether `self → next` is a step of the state machine.
    pub fn can_become(self, next: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, next),
            (Queued, Starting | Cancelled | Failed)
                | (Starting, Running | Failed | Cancelled | TimedOut)
                | (Running, Succeeded | Failed | Cancelled | TimedOut)
        )
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run: what it ran, for whom, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow version it ran (0 for a workflow from the config file).
    pub workflow_version: u64,
    /// The definition it ran, so a queued run can start after a restart.
    pub definition: Workflow,
    /// The tenant who pays.
    pub tenant: String,
    /// Every declared param's value.
    pub params: BTreeMap<String, String>,
    /// The rendered prompt.
    pub prompt: String,
    /// Where it is in its life.
    pub state: RunState,
    /// Why it ended as it did (for anything but success), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The agent's exit code (128 + N when killed by signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When it was accepted (ms since the Unix epoch).
    pub created_at: u64,
    /// When it left the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Compute tokens spent through its key.
    #[serde(default)]
    pub cost: u64,
    /// Tool calls made through its key.
    #[serde(default)]
    pub tool_calls: u64,
    /// Model input tokens, from the model proxy.
    #[serde(default)]
    pub input_tokens: u64,
    /// Model output tokens, from the model proxy.
    #[serde(default)]
    pub output_tokens: u64,
    /// The files it left behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

/// Usage the gateway records against a run ([`crate::Runner::add_usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDelta {
    /// Compute tokens.
    pub cost: u64,
    /// Tool calls.
    pub tool_calls: u64,
    /// Model input tokens.
    pub input_tokens: u64,
    /// Model output tokens.
    pub output_tokens: u64,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The agent's stdout.
    Stdout,
    /// The agent's stderr.
    Stderr,
}

/// One MCP server as the agent reported it at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct McpServerStatus {
    /// The server's name in the agent's config.
    pub name: String,
    /// `connected`, `failed`, ...
    pub status: String,
}

/// What one log event says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// The run changed state.
    State {
        /// The new state.
        state: RunState,
        /// Why, for a final state other than success.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A line of output that is not one of the agent's structured events.
    Output {
        /// stdout or stderr.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// The agent started: its model and MCP servers.
    AgentStarted {
        /// The model it talks to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// Its MCP servers and whether they connected.
        mcp_servers: Vec<McpServerStatus>,
    },
    /// Text the model wrote.
    AssistantText {
        /// The text.
        text: String,
    },
    /// The agent called a tool.
    ToolCall {
        /// The call's id (pairs it with its result).
        id: String,
        /// The tool as the agent names it.
        name: String,
        /// The arguments.
        input: Value,
    },
    /// A tool's result came back to the agent.
    ToolResult {
        /// The call's id.
        id: String,
        /// Whether the tool reported an error.
        is_error: bool,
        /// The result's text (truncated for the log).
        text: String,
    },
    /// The agent's own final verdict.
    AgentResult {
        /// Whether the agent says it failed.
        is_error: bool,
        /// The final text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Model turns taken.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turns: Option<u64>,
    },
    /// Something the runner says about the run (a warning, a refused artifact,
    /// the log cap).
    Notice {
        /// The message.
        message: String,
    },
}

impl EventBody {
    /// Bytes this event counts against the log cap.
    pub(crate) fn weight(&self) -> usize {
        match self {
            EventBody::Output { line, .. } => line.len() + 16,
            EventBody::AssistantText { text } | EventBody::Notice { message: text } => {
                text.len() + 16
            }
            EventBody::ToolCall { name, input, .. } => name.len() + input.to_string().len() + 32,
            EventBody::ToolResult { text, .. } => text.len() + 32,
            EventBody::AgentResult { text, .. } => text.as_ref().map_or(0, String::len) + 32,
            EventBody::State { .. } | EventBody::AgentStarted { .. } => 64,
        }
    }
}

/// One event of a run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunEvent {
    /// Position in the run's log, from 1; an SSE event id.
    pub seq: u64,
    /// When it happened (ms since the Unix epoch).
    pub at: u64,
    /// What it says.
    #[serde(flatten)]
    pub body: EventBody,
}

impl RunEvent {
    /// The event as one line of plain text, as `GET …/logs` serves it.
    pub fn to_text(&self) -> String {
        let body = match &self.body {
            EventBody::State { state, reason } => match reason {
                Some(reason) => format!("[run] {state}: {reason}"),
                None => format!("[run] {state}"),
            },
            EventBody::Output { stream, line } => match stream {
                Stream::Stdout => line.clone(),
                Stream::Stderr => format!("[stderr] {line}"),
            },
            EventBody::AgentStarted { model, mcp_servers } => {
                let servers: Vec<String> = mcp_servers
                    .iter()
                    .map(|s| format!("{} {}", s.name, s.status))
                    .collect();
                format!(
                    "[agent] started (model {}; MCP: {})",
                    model.as_deref().unwrap_or("?"),
                    servers.join(", ")
                )
            }
            EventBody::AssistantText { text } => format!("[assistant] {text}"),
            EventBody::ToolCall { name, input, .. } => format!("[tool call] {name} {input}"),
            EventBody::ToolResult { is_error, text, .. } => {
                let tag = if *is_error {
                    "tool error"
                } else {
                    "tool result"
                };
                format!("[{tag}] {text}")
            }
            EventBody::AgentResult { is_error, text, .. } => {
                let tag = if *is_error { "result: error" } else { "result" };
                format!("[{tag}] {}", text.as_deref().unwrap_or(""))
            }
            EventBody::Notice { message } => format!("[mcpgate] {message}"),
        };
        format!("{} {body}", format_ms(self.at))
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// `HH:MM:SS.mmm` (UTC) of a timestamp, for log lines.
fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_random_and_parse_back() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 24);
        assert_eq!(RunId::parse(a.as_str()), Some(a));
        for bad in ["", "run_", "run_XYZ", "run_../x", "job_00", "run_AB"] {
            assert_eq!(RunId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_state_machine() {
        use RunState::*;
        assert!(Queued.can_become(Starting));
        assert!(Queued.can_become(Cancelled));
        assert!(Starting.can_become(Running));
        assert!(Running.can_become(TimedOut));
        assert!(!Queued.can_become(Running), "a run starts before it runs");
        assert!(!Queued.can_become(Succeeded));
        for end in [Succeeded, Failed, Cancelled, TimedOut] {
            assert!(end.is_final());
            assert!(RunState::ALL.iter().all(|s| !end.can_become(*s)));
        }
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).expect("serializes"),
                Value::String(s.as_str().into())
            );
        }
        assert!(!Running.is_final());
    }

    #[test]
    fn events_serialize_flat_with_a_type() {
        let e = RunEvent {
            seq: 3,
            at: 1_000,
            body: EventBody::Output {
                stream: Stream::Stderr,
                line: "oops".into(),
            },
        };
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"seq": 3, "at": 1000, "type": "output", "stream": "stderr", "line": "oops"})
        );
        let back: RunEvent = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, e);
        assert_eq!(e.to_text(), "00:00:01.000 [stderr] oops");
    }
}
