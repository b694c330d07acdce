//! Peers tier, the whole product path with a real agent, offline: a real
//! `mcpgate serve` fires the real Claude Code CLI (pinned in tests/interop) as
//! a `claude-code` workflow in the bubblewrap sandbox. The sandbox reaches
//! only the gateway (its Unix socket, relayed to a loopback port); Claude
//! Code's model is `mcpgate-mock-model`, a scripted MOCK of the Anthropic
//! Messages API, reached through the gateway's model proxy (`/models/mock`)
//! with the run's key, the proxy putting the real model key on the way out.
//! The MOCK's script: call the fixture's echo tool, write its result to
//! `out.txt` with Claude Code's own Write tool, then quote it.
//!
//! Checked: the run succeeds; the MOCK saw exactly its three turns, each
//! with the real model key and never the run key; the tool call went through
//! the gateway with an audit row carrying the run id; the artifact is
//! downloadable; and neither the real model key nor the upstream secret is
//! anywhere the sandbox can read (a `command` run searches its environment
//! and the files it can write or was given, with a positive control) or in
//! the run's log. With `cli_tools = true`, the MOCK's script instead runs
//! the mounted `fx echo` command with Claude Code's own Bash tool: the
//! system prompt describes the commands, and the call is audited under the run.

use std::time::Duration;

use crate::common::admin::*;
use crate::common::runs::*;
use crate::common::*;
use serde_json::{Value, json};

/// The fragment both secrets share and nothing else in the test writes
/// contiguously (the sandbox's search spells it split: `"ZQ""XJ"`).
const MARK: &str = "ZQXJ";

fn claude_bin() -> std::path::PathBuf {
    let p = interop_dir().join("node_modules/.bin/claude");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        p.display()
    );
    p
}

/// The MOCK model on a TCP port of its own choosing; returns it and its URL.
fn echo_mock(record: &std::path::Path) -> (Proc, String) {
    mock_model(
        record,
        &[
            "--tool",
            "mcp__mcpgate__fx__echo",
            "--tool-input",
            &json!({"message": "artifact-word"}).to_string(),
            "--write-file",
            "out.txt",
        ],
    )
}

fn config(model_url: &str, key_file: &std::path::Path, upstream_secret: &str) -> String {
    format!(
        r#"{KEYED_PRO}
[models.mock]
kind = "anthropic"
url = {model_url}
auth = [{{ header = "x-api-key", file = {key_file} }}]

[runs]
agents.claude-code = {claude}

[workflows.echo]
agent = "claude-code"
model = "mock"
prompt = "Call the echo tool with the word {{{{word}}}}, then write what it said to out.txt."
system_prompt = "You are a test run."
params = {{ word = {{ required = true, pattern = "[a-z0-9-]+" }} }}
tools = ["fx__echo"]
artifacts = ["out.txt"]
timeout = "3m"
tenant = "acme"

[workflows.snoop]
agent = "command"
command = ["sh", "-c", "echo ZQ''XJ-probe > /tmp/probe; echo CONTROL=$(grep -rsl 'ZQ''XJ' /tmp | wc -l); echo ENV=$(env | grep -c 'ZQ''XJ'); echo FILES=$(grep -rsl 'ZQ''XJ' /workspace \"$HOME\" /etc /run 2>/dev/null | wc -l)"]
tools = ["fx__echo"]
tenant = "acme"
timeout = "1m"
{fixture}
"#,
        model_url = q(model_url),
        claude = q(claude_bin().display().to_string()),
        key_file = q(key_file.display().to_string()),
        fixture = fixture_server(
            "fx",
            &format!("env = {{ FIXTURE_TOKEN = {} }}", q(upstream_secret))
        ),
    )
}

fn http() -> reqwest::Client {
    http_client(Duration::from_secs(240))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Claude Code from tests/interop and bubblewrap"]
async fn claude_code_runs_a_workflow_through_the_gateway_offline() {
    let dir = TempDir::new("claude-run");
    let record = dir.0.join("model-requests.jsonl");
    let (_mock, model_url) = echo_mock(&record);
    let nonce = std::process::id();
    let model_key = format!("sk-{MARK}-model-{nonce}");
    let upstream_secret = format!("{MARK}-upstream-{nonce}");
    let key_file = dir.0.join("model.key");
    std::fs::write(&key_file, &model_key).expect("key file");
    let gw = Gateway::start(
        "claude-run",
        &config(&model_url, &key_file, &upstream_secret),
    );
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);

    let (run, log) = run_to_end(&gw, &key, "echo", json!({"word": "artifact-word"})).await;
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");

    // The MOCK saw exactly its script, each time with the real key.
    let requests: Vec<Value> = recorded(&record);
    let turns: Vec<&str> = requests.iter().filter_map(|r| r["turn"].as_str()).collect();
    assert_eq!(turns, ["tool_use", "write_file", "quote_result"], "{log}");
    for r in &requests {
        assert_eq!(
            r["headers"]["x-api-key"], model_key,
            "the proxy sends the real model key: {r}"
        );
        assert!(
            !r["headers"].to_string().contains("mcpg_"),
            "the run key never reaches the model: {r}"
        );
    }
    assert!(
        requests[0]["body"]
            .to_string()
            .contains("Call the echo tool with the word artifact-word")
    );

    // The tool call went through the gateway, audited under the run.
    let rows = run_audit(&gw, &id);
    assert!(audited_ok(&rows, "fx__echo", &id), "{rows:?}");

    // The artifact the agent wrote.
    let listed: Value = http()
        .get(format!("{}/api/v1/runs/{id}/artifacts", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("artifacts")
        .text()
        .await
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .expect("artifacts JSON");
    assert!(listed.to_string().contains("out.txt"), "{listed}");
    let body = http()
        .get(format!("{}/api/v1/runs/{id}/artifacts/out.txt", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("artifact")
        .text()
        .await
        .expect("artifact text");
    assert!(body.contains("artifact-word"), "{body}");

    // Neither secret is in the log, or anywhere the sandbox can read.
    assert!(
        !log.contains(MARK),
        "a secret reached the run's log:\n{log}"
    );
    let (snoop, out) = run_to_end(&gw, &key, "snoop", json!({})).await;
    assert_eq!(snoop["state"], "succeeded", "{snoop}\n{out}");
    assert!(
        out.contains("CONTROL=1"),
        "the search finds a planted mark: {out}"
    );
    assert!(out.contains("ENV=0"), "no secret in the environment: {out}");
    assert!(
        out.contains("FILES=0"),
        "no secret in readable files: {out}"
    );
    assert!(!out.contains(MARK), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Claude Code from tests/interop and bubblewrap"]
async fn claude_code_uses_the_runs_tools_as_shell_commands_with_cli_tools() {
    let dir = TempDir::new("claude-cli-tools");
    let record = dir.0.join("model-requests.jsonl");
    // The MOCK's first turn runs the mounted command with Claude Code's Bash tool.
    let (_mock, model_url) = mock_model(
        &record,
        &[
            "--tool",
            "Bash",
            "--tool-input",
            &json!({"command": "fx echo --message shell-word", "description": "echo"}).to_string(),
        ],
    );
    let key_file = dir.0.join("model.key");
    std::fs::write(&key_file, "sk-test-model-key").expect("key file");
    let config = format!(
        r#"{KEYED_PRO}
[models.mock]
kind = "anthropic"
url = {model_url}
auth = [{{ header = "x-api-key", file = {key_file} }}]

[runs]
agents.claude-code = {claude}

[workflows.shell]
agent = "claude-code"
model = "mock"
cli_tools = true
prompt = "Echo shell-word with the fx command."
tools = ["fx__echo"]
timeout = "3m"
tenant = "acme"
{fixture}
"#,
        model_url = q(&model_url),
        claude = q(claude_bin().display().to_string()),
        key_file = q(key_file.display().to_string()),
        fixture = fixture_server("fx", ""),
    );
    let gw = Gateway::start("claude-cli-tools", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let (run, log) = run_to_end(&gw, &key, "shell", json!({})).await;
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");

    let requests: Vec<Value> = recorded(&record);
    let turns: Vec<&str> = requests.iter().filter_map(|r| r["turn"].as_str()).collect();
    assert_eq!(turns, ["tool_use", "quote_result"], "{log}");
    // Claude Code was told about the commands in its system prompt.
    let system = requests[0]["body"]["system"].to_string();
    assert!(
        system.contains("Tools available as shell commands") && system.contains("`fx echo`"),
        "{system}"
    );
    // The Bash tool ran the mounted command, which called the tool through
    // the gateway with the run's key; its output went back to the model.
    assert!(
        requests[1]["body"].to_string().contains("shell-word"),
        "the command's output reached the model: {}",
        requests[1]["body"]
    );
    let rows = run_audit(&gw, &id);
    assert!(audited_ok(&rows, "fx__echo", &id), "{rows:?}");
}
