//! Peers tier: the real Codex CLI (`@openai/codex`, pinned in tests/interop;
//! its native executable, so no Node in the sandbox) run as a `codex`
//! workflow in the bubblewrap sandbox through a real `mcpgate serve`, offline.
//! Its model is `mcpgate-mock-model`'s OpenAI Responses side, a scripted
//! MOCK, reached through the gateway's model proxy (`/models/mockai`,
//! `kind = "openai"`) with the run's key; the proxy puts the real model key
//! on the way out. The MOCK's script: call the fixture's echo tool (an MCP
//! tool Codex reaches through the gateway), then quote its output.
//!
//! Checked: the run succeeds; the MOCK saw its two turns with the real key
//! and never the run key; the tool call went through the gateway, audited
//! under the run id; the model tokens of both responses were added to the
//! run; Codex's own events became the run's structured log.

use std::time::Duration;

use crate::common::admin::*;
use crate::common::runs::*;
use crate::common::*;
use serde_json::{Value, json};

fn codex_bin() -> std::path::PathBuf {
    let p = interop_dir()
        .join("node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Codex from tests/interop and bubblewrap"]
async fn codex_runs_a_workflow_through_the_gateway_offline() {
    let dir = TempDir::new("codex-run");
    let record = dir.0.join("model-requests.jsonl");
    let (_mock, model_url) = mock_model(
        &record,
        &[
            "--tool",
            "mcp__mcpgate__fx__echo",
            "--tool-input",
            &json!({"message": "codex-word"}).to_string(),
        ],
    );
    let model_key = format!("sk-codex-model-{}", std::process::id());
    let key_file = dir.0.join("model.key");
    std::fs::write(&key_file, &model_key).expect("key file");
    let config = format!(
        r#"{KEYED_PRO}
[models.mockai]
kind = "openai"
url = {model_url}
model = "mock-gpt"
auth = [{{ header = "authorization", file = {key_file} }}]

[runs]
agents.codex = {codex}

[workflows.echo]
agent = "codex"
model = "mockai"
prompt = "Call the echo tool with the word codex-word and report what it said."
tools = ["fx__echo"]
timeout = "3m"
tenant = "acme"
{fixture}
"#,
        model_url = q(format!("{model_url}/v1")),
        codex = q(codex_bin().display().to_string()),
        key_file = q(key_file.display().to_string()),
        fixture = fixture_server("fx", ""),
    );
    let gw = Gateway::start("codex-run", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let (run, log) = run_to_end(&gw, &key, "echo", json!({})).await;
    let id = run["id"].as_str().expect("id").to_owned();
    let record_text = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(run["state"], "succeeded", "{run}\n{log}\n{record_text}");

    let requests: Vec<Value> = record_text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let turns: Vec<&str> = requests
        .iter()
        .filter(|r| r["path"] == "/v1/responses")
        .filter_map(|r| r["turn"].as_str())
        .collect();
    let offered: Vec<String> = requests
        .iter()
        .flat_map(|r| r["body"]["tools"].as_array().cloned().unwrap_or_default())
        .map(|t| format!("{}:{}", t["type"], t["name"]))
        .collect();
    assert!(
        turns.starts_with(&["tool_use", "quote_result"]),
        "{turns:?}, tools offered {offered:?}\n{log}"
    );
    for r in &requests {
        let auth = r["headers"]["authorization"].to_string();
        assert!(
            auth.contains(&model_key),
            "the proxy sends the real key: {r}"
        );
        assert!(
            !auth.contains("mcpg_"),
            "the run key never reaches the model: {r}"
        );
    }
    assert!(
        requests[0]["body"]
            .to_string()
            .contains("Call the echo tool with the word codex-word")
    );
    // The MCP tool call went through the gateway, audited under the run.
    let rows = run_audit(&gw, &id);
    assert!(audited_ok(&rows, "fx__echo", &id), "{rows:?}");
    // The tool's output came back to the model, and the final text is in the log.
    assert!(
        requests[1]["body"].to_string().contains("codex-word"),
        "{}",
        requests[1]["body"]
    );
    assert!(log.contains("MOCK model saw the tool result"), "{log}");
    // Codex's JSON events became structured log events.
    assert!(
        log.contains("[tool call] mcpgate__fx__echo") && log.contains("[tool result] codex-word"),
        "{log}"
    );
    assert!(log.contains("[result] MOCK model saw"), "{log}");
    // Both responses' tokens were counted on the run.
    // Two responses of 7 output tokens each (the MOCK's fixed figure).
    assert!(run["input_tokens"].as_u64().is_some_and(|n| n > 0), "{run}");
    assert!(
        run["output_tokens"].as_u64().is_some_and(|n| n >= 14),
        "{run}"
    );
}
