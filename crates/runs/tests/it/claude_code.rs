//! Peers tier: the real Claude Code CLI (pinned in tests/interop, installed
//! by scripts/install-test-deps.sh) as a `claude-code` workflow in the
//! bubblewrap sandbox, offline. Its model is `mcpgate-mock-model`, a MOCK
//! Anthropic Messages server, and its MCP server is the Rust fixture; the
//! sandbox reaches both only through `sandbox-init`'s relays (8787 → the
//! fixture, through a Unix socket this test serves; 8788 → the MOCK's Unix
//! socket). The MOCK must see two turns: one it answers with a `tool_use` of
//! the fixture's `echo`, and one carrying the tool's result, which it quotes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use mcpgate_runs::{EventBody, HostRelay, RunGrant, RunState, SubmitRequest, Workflow};
use serde_json::Value;
use tokio::net::{TcpStream, UnixListener};

use crate::common::*;

/// A child process killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a program and reads its first stdout line (its "listening" report).
fn start(program: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a listening line");
    (Child(child), line.trim().to_owned())
}

/// Serves `socket`, forwarding each connection to `tcp` (the fixture).
fn unix_to_tcp(socket: &Path, tcp: String) {
    let listener = UnixListener::bind(socket).expect("unix listener");
    tokio::spawn(async move {
        while let Ok((mut unix, _)) = listener.accept().await {
            let tcp = tcp.clone();
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(&tcp).await {
                    let _ = tokio::io::copy_bidirectional(&mut unix, &mut upstream).await;
                }
            });
        }
    });
}

fn claude_bin() -> std::path::PathBuf {
    let p = repo_root().join("tests/interop/node_modules/.bin/claude");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        p.display()
    );
    p
}

struct Peers {
    _fixture: Child,
    _mock: Child,
    dir: Scratch,
    record: std::path::PathBuf,
}

/// The fixture behind a Unix socket and the MOCK model on another; the MOCK
/// answers its first turn with `mcp__mcpgate__echo` of `message`.
fn peers(message: &str) -> Peers {
    let dir = Scratch::new("claude");
    let (fixture, listening) = start(
        &workspace_bin("mcpgate-fixture"),
        &["http", "--listen", "127.0.0.1:0"],
    );
    let url = listening
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .unwrap_or_else(|| panic!("unexpected fixture report: {listening}"))
        .to_owned();
    unix_to_tcp(&dir.0.join("mcp.sock"), url);
    let record = dir.0.join("requests.jsonl");
    let input = serde_json::json!({ "message": message }).to_string();
    let model_sock = dir.0.join("model.sock");
    let (mock, listening) = start(
        &workspace_bin("mcpgate-mock-model"),
        &[
            "--tool",
            "mcp__mcpgate__echo",
            "--tool-input",
            &input,
            "--unix",
            model_sock.to_str().expect("utf-8 path"),
            "--record",
            record.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        listening.starts_with("MOCK model listening on unix:"),
        "{listening}"
    );
    Peers {
        _fixture: fixture,
        _mock: mock,
        dir,
        record,
    }
}

fn claude_workflow() -> Workflow {
    Workflow::from_json_str(
        r#"{"agent": "claude-code", "prompt": "Call the echo tool with the word {{word}}.",
            "system_prompt": "You are a test run.", "timeout": "2m",
            "params": {"word": {"required": true, "pattern": "[a-z0-9-]+"}}}"#,
    )
    .expect("workflow")
}

async fn claude_harness(peers: &Peers, mcp_port: u16) -> Harness {
    let grant = RunGrant {
        key: "mcpg_run_claude_test".into(),
        gateway_url: "http://127.0.0.1:8787".into(),
        mcp_url: format!("http://127.0.0.1:{mcp_port}/mcp"),
        tool_separator: "__".into(),
        model_base_url: Some("http://127.0.0.1:8788".into()),
        model_id: None,
    };
    let relays = vec![
        HostRelay {
            port: 8787,
            socket: peers.dir.0.join("mcp.sock"),
        },
        HostRelay {
            port: 8788,
            socket: peers.dir.0.join("model.sock"),
        },
    ];
    harness_with(local_backend().await, grant, |c| {
        c.relays = relays;
        c.agents.claude_code = Some(claude_bin());
    })
    .await
}

fn submit(word: &str) -> SubmitRequest {
    SubmitRequest {
        params: [("word".to_owned(), word.to_owned())].into(),
        ..request(claude_workflow())
    }
}

#[tokio::test]
#[ignore = "peers tier: needs Claude Code from tests/interop"]
async fn claude_code_calls_a_tool_through_the_relay_against_the_mock_model() {
    let nonce = format!("nonce-{}", std::process::id());
    let peers = peers(&nonce);
    let h = claude_harness(&peers, 8787).await;
    let run = h.runner.submit(submit(&nonce)).await.expect("submitted");
    let ended = h.runner.wait(&run.id).await.expect("ends");
    let events = h.events(&run.id).await;
    assert_eq!(ended.state, RunState::Succeeded, "{}", text(&events));
    assert_eq!(ended.exit_code, Some(0));

    let requests: Vec<Value> = std::fs::read_to_string(&peers.record)
        .expect("the MOCK's record")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let turns: Vec<&str> = requests.iter().filter_map(|r| r["turn"].as_str()).collect();
    assert_eq!(
        turns,
        ["tool_use", "quote_result"],
        "the MOCK saw exactly the two scripted turns"
    );
    let first = &requests[0]["body"];
    assert!(
        first
            .to_string()
            .contains(&format!("Call the echo tool with the word {nonce}")),
        "the rendered prompt reached the model"
    );
    assert!(
        first["system"].to_string().contains("You are a test run."),
        "the workflow's system prompt is appended"
    );
    let second = requests[1]["body"].to_string();
    assert!(
        second.contains("tool_result") && second.contains(&nonce),
        "the second turn carries the fixture's echo of the nonce"
    );

    let started = events.iter().find_map(|e| match &e.body {
        EventBody::AgentStarted { mcp_servers, .. } => Some(mcp_servers.clone()),
        _ => None,
    });
    let servers = started.expect("an agent_started event");
    assert_eq!(servers.len(), 1);
    assert_eq!(
        (servers[0].name.as_str(), servers[0].status.as_str()),
        ("mcpgate", "connected")
    );
    assert!(events.iter().any(|e| matches!(&e.body,
        EventBody::ToolCall { name, .. } if name == "mcp__mcpgate__echo")));
    assert!(events.iter().any(|e| matches!(&e.body,
        EventBody::ToolResult { text, is_error: false, .. } if text.contains(&nonce))));
    let quoted = format!("MOCK model saw the tool result: {nonce}");
    assert!(
        events.iter().any(|e| matches!(&e.body,
        EventBody::AgentResult { is_error: false, text: Some(t), .. } if *t == quoted)),
        "{}",
        text(&events)
    );
}

/// Regression: Claude Code exits 0 when its MCP server cannot be reached; the
/// run must fail anyway, saying which server.
#[tokio::test]
#[ignore = "peers tier: needs Claude Code from tests/interop"]
async fn claude_code_with_an_unreachable_mcp_server_fails_the_run() {
    let peers = peers("unused");
    let h = claude_harness(&peers, 8799).await;
    let run = h.runner.submit(submit("word")).await.expect("submitted");
    let ended = h.runner.wait(&run.id).await.expect("ends");
    let events = h.events(&run.id).await;
    assert_eq!(ended.state, RunState::Failed, "{}", text(&events));
    assert_eq!(ended.exit_code, Some(0), "Claude Code itself exits 0");
    let reason = ended.reason.expect("a reason");
    assert!(reason.contains("`mcpgate` did not connect"), "{reason}");
}
