//! A run's credential, end to end through a real `mcpgate serve`: a
//! `command` workflow defined in the config (`[workflows.probe]`) is fired
//! over `/api/v1`, runs in the bubblewrap sandbox, lists its tools through
//! the relay to the gateway's Unix socket (only the workflow's one tool), and
//! prints the key it was given; with that key the test then calls the gateway like the agent
//! would: the workflow's one tool is listed and callable, any other tool is
//! invisible and refused as unknown, a call past the run's `budget` is the
//! quota error, the audit rows carry the run id (`mcpgate audit --run`), and
//! once the run is cancelled the key is refused at once. And the model
//! proxy against the MOCK model (`mcpgate-mock-model`): the real key reaches
//! the mock and the client's key does not, the SSE arrives intact, and the
//! response's tokens are added to the run.

use std::time::Duration;

use crate::common::admin::*;
use crate::common::runs::*;
use crate::common::*;
use mcpgate_proto::codes;
use serde_json::{Value, json};

fn config() -> String {
    format!(
        r#"{KEYED_PRO}
[workflows.probe]
agent = "command"
command = ["sh", "-c", """
echo TOOLS-BEGIN
/run/mcpgate/sandbox-init tools --url "$MCPGATE_URL/mcp"
echo "TOOLS-END KEY=$MCPGATE_KEY END"
sleep 120
"""]
tools = ["fx__echo"]
budget = 2
tenant = "acme"
timeout = "5m"
{}
"#,
        fixture_server("fx", "")
    )
}

fn http() -> reqwest::Client {
    http_client(Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_key_sees_only_its_tools_within_budget_and_dies_with_the_run() {
    let gw = Gateway::start("runs-gw", &config());
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);

    let id = submit(&gw, &key, "probe", json!({})).await;
    assert_eq!(run_of(&gw, &key, &id).await["tenant"], "acme");

    let log = follow_log(&gw, &key, &id, Some(" END")).await;
    let run_key = log
        .split(" KEY=")
        .nth(1)
        .and_then(|s| s.split(" END").next())
        .expect("the run printed its key")
        .to_owned();
    assert!(run_key.starts_with("mcpg_"), "{run_key}");
    assert_ne!(run_key, key, "the run gets a key of its own");
    // Inside the sandbox, `mcpgate tools` reached the gateway through the
    // relay to its Unix socket, with the run's key: one tool.
    let listed_inside = log
        .split("TOOLS-BEGIN")
        .nth(1)
        .and_then(|s| s.split("TOOLS-END").next())
        .expect("the sandbox listed tools");
    assert_eq!(
        listed_inside.matches("\"line\":\"fx__").count(),
        1,
        "{listed_inside}"
    );
    assert!(
        listed_inside.contains("\"line\":\"fx__echo "),
        "{listed_inside}"
    );

    let mut agent = keyed(&gw, &run_key);
    agent.initialize().await;
    let listed = agent.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed.result()["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["fx__echo"],
        "a run sees exactly its workflow's tools"
    );

    // The tenant's own key sees more: pick one the run must not reach.
    let mut tenant = keyed(&gw, &key);
    tenant.initialize().await;
    let all = tenant.all_tool_names().await;
    let other = all
        .iter()
        .find(|n| *n != "fx__echo")
        .expect("the fixture has more tools")
        .clone();
    agent.assert_echo("fx__echo", "one").await;
    let refused = agent.call(&other, json!({})).await;
    assert!(
        refused.error_message().contains("Unknown tool"),
        "{}",
        refused.body
    );
    agent.assert_echo("fx__echo", "two").await;
    let over = agent.call("fx__echo", json!({"message": "three"})).await;
    assert_eq!(over.error_code(), codes::QUOTA_EXHAUSTED, "{}", over.body);
    assert!(over.error_message().contains(&id), "{}", over.body);
    // The tenant itself is not capped by the run's budget.
    tenant.assert_echo("fx__echo", "tenant").await;

    let rows = run_audit(&gw, &id);
    assert_eq!(rows.len(), 4, "the run key's four calls: {rows:?}");
    assert!(rows.iter().all(|r| r["run_id"] == id.as_str()), "{rows:?}");
    assert!(
        audit(&gw, "acme")
            .iter()
            .any(|r| r["run_id"].is_null() && r["key_id"].is_string()),
        "the tenant's own call carries no run id"
    );

    let resp = http()
        .post(format!("{}/api/v1/runs/{id}/cancel", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status().as_u16(), 200);
    // The log ends with the run's final state; by then its key is revoked.
    let end = follow_log(&gw, &key, &id, None).await;
    assert!(end.contains("cancelled"), "{end}");
    let after = agent.call("fx__echo", json!({"message": "late"})).await;
    assert_eq!(
        after.status, 401,
        "a finished run's key is refused: {}",
        after.body
    );
}

const REAL_KEY: &str = "sk-ant-REAL-model-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_proxy_injects_the_real_key_streams_sse_and_counts_tokens_on_the_run() {
    let dir = TempDir::new("runs-model");
    let record = dir.0.join("model-requests.jsonl");
    let (_model, model_url) = mock_model(&record, &["--tool", "fx__echo"]);
    let secret_file = dir.0.join("model.key");
    std::fs::write(&secret_file, format!("{REAL_KEY}\n")).expect("secret file");
    let secret = secret_file.display().to_string();
    let config = format!(
        r#"{KEYED_PRO}
[models.mock]
kind = "anthropic"
url = "{model_url}"
auth = {{ header = "x-api-key", file = {secret:?} }}

[workflows.think]
agent = "command"
command = ["sh", "-c", "echo \"KEY=$MCPGATE_KEY END\"; sleep 120"]
model = "mock"
tenant = "acme"
timeout = "5m"
"#
    );
    let gw = Gateway::start("runs-model", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);

    let resp = http()
        .post(format!("{}/api/v1/workflows/think/runs", gw.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(json!({"params": {}}).to_string())
        .send()
        .await
        .expect("submit");
    assert_eq!(resp.status().as_u16(), 201);
    let run: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("run");
    let id = run["id"].as_str().expect("id").to_owned();
    let log = follow_log(&gw, &key, &id, Some(" END")).await;
    let run_key = log
        .split("KEY=")
        .nth(1)
        .and_then(|s| s.split(" END").next())
        .expect("the run printed its key")
        .to_owned();

    // Claude Code's way: x-api-key, streamed.
    let body = json!({"model": "mock-model", "stream": true, "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello"}]});
    let resp = http()
        .post(format!("{}/models/mock/v1/messages?beta=true", gw.base))
        .header("x-api-key", &run_key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("model call");
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    let sse = resp.text().await.expect("sse");
    let events: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{sse}");
    assert_eq!(events.last(), Some(&"message_stop"), "{sse}");
    assert!(sse.contains("MOCK"), "the mock's text came through: {sse}");
    let output: u64 = sse
        .split("\"output_tokens\":")
        .last()
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("output tokens in the stream");

    // A bearer tenant key works too, and a plain JSON answer.
    let resp = http()
        .post(format!("{}/models/mock/v1/messages", gw.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(
            json!({"model": "m", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("model call");
    assert_eq!(resp.status().as_u16(), 200);
    // No key, or an unknown model: refused before anything is sent.
    let resp = http()
        .post(format!("{}/models/mock/v1/messages", gw.base))
        .body("{}")
        .send()
        .await
        .expect("no key");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http()
        .post(format!("{}/models/nope/v1/messages", gw.base))
        .bearer_auth(&key)
        .body("{}")
        .send()
        .await
        .expect("unknown model");
    assert_eq!(resp.status().as_u16(), 404);

    let seen: Vec<Value> = std::fs::read_to_string(&record)
        .expect("the mock's record")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record line"))
        .collect();
    assert_eq!(
        seen.len(),
        2,
        "only the two keyed calls reached the model: {seen:?}"
    );
    for r in &seen {
        assert_eq!(r["headers"]["x-api-key"], REAL_KEY, "{r}");
        assert!(r["headers"]["authorization"].is_null(), "{r}");
        let text = r.to_string();
        assert!(!text.contains(&run_key) && !text.contains(&key), "{text}");
    }
    assert_eq!(seen[0]["body"], body, "the body is forwarded untouched");

    let now: Value = serde_json::from_str(
        &http()
            .get(format!("{}/api/v1/runs/{id}", gw.base))
            .bearer_auth(&key)
            .send()
            .await
            .expect("run")
            .text()
            .await
            .expect("body"),
    )
    .expect("run JSON");
    assert!(now["input_tokens"].as_u64().is_some_and(|n| n > 0), "{now}");
    assert_eq!(now["output_tokens"].as_u64(), Some(output), "{now}");
    assert!(
        !gw.stderr().contains(REAL_KEY) && !gw.stderr().contains(&run_key),
        "neither key is logged"
    );
    let _ = http()
        .post(format!("{}/api/v1/runs/{id}/cancel", gw.base))
        .bearer_auth(&key)
        .send()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bubblewrap_runs_are_refused_and_mcp_is_still_served() {
    let config = format!(
        r#"{KEYED_PRO}
[workflows.hello]
agent = "command"
command = ["echo", "hi"]
tenant = "acme"
{}
"#,
        fixture_server("fx", "")
    );
    // No bwrap on the gateway's PATH (the fixture is named by its full path).
    let gw = Gateway::start_with_env("runs-nobwrap", &config, &[("PATH", "/nonexistent")]);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let resp = http()
        .post(format!("{}/api/v1/workflows/hello/runs", gw.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(json!({"params": {}}).to_string())
        .send()
        .await
        .expect("submit");
    assert_eq!(resp.status().as_u16(), 503);
    let v: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("JSON");
    let msg = v["error"].as_str().expect("an error");
    assert!(
        msg.contains("bubblewrap") && msg.contains("unsandboxed"),
        "{msg}"
    );
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    c.assert_echo("fx__echo", "still serving").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_tools_mount_the_runs_tools_as_shell_commands_in_the_sandbox() {
    let config = format!(
        r#"{KEYED_PRO}
[workflows.shell]
agent = "command"
cli_tools = true
command = ["sh", "-c", """
echo PROMPT-BEGIN; cat "$MCPGATE_TOOLS_PROMPT_FILE"; echo PROMPT-END
echo "WHICH=$(command -v fx)"
fx echo --message hello-from-the-shell
fx sleep --ms 1; echo "HIDDEN-EXIT=$?"
"""]
tools = ["fx__echo"]
tenant = "acme"
timeout = "2m"
{}
"#,
        fixture_server("fx", "")
    );
    let gw = Gateway::start("runs-cli-tools", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "shell", json!({})).await;
    let log = follow_log(&gw, &key, &id, None).await;
    let run = run_of(&gw, &key, &id).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");

    // The prompt section names the command and the run's one tool only.
    let prompt = log
        .split("PROMPT-BEGIN")
        .nth(1)
        .and_then(|s| s.split("PROMPT-END").next())
        .expect("the run printed its prompt section");
    assert!(
        prompt.contains("Tools available as shell commands"),
        "{log}"
    );
    assert!(prompt.contains("`fx echo`"), "{prompt}");
    assert!(!prompt.contains("`fx sleep`"), "{prompt}");
    assert!(
        log.contains("WHICH=/home/run/.mcpgate/bin/fx"),
        "fx is on PATH: {log}"
    );
    // The command reached the tool through the gateway, with the run's key.
    assert!(log.contains("hello-from-the-shell"), "{log}");
    assert!(
        log.contains("HIDDEN-EXIT=2"),
        "a tool outside the workflow is not a subcommand (usage error): {log}"
    );
    let rows = run_audit(&gw, &id);
    assert!(
        rows.iter()
            .any(|r| r["name"] == "fx__echo" && r["outcome"] == "ok"),
        "the shell command's call is audited under the run: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_key_stops_working_at_the_runs_deadline() {
    let config = format!(
        r#"{KEYED_PRO}
[workflows.slow]
agent = "command"
command = ["sh", "-c", "echo \"KEY=$MCPGATE_KEY END\"; sleep 120"]
tools = ["fx__echo"]
tenant = "acme"
timeout = "4s"
{}
"#,
        fixture_server("fx", "")
    );
    let gw = Gateway::start("runs-deadline", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "slow", json!({})).await;
    let log = follow_log(&gw, &key, &id, Some(" END")).await;
    let run_key = log
        .split("KEY=")
        .nth(1)
        .and_then(|s| s.split(" END").next())
        .expect("the run printed its key")
        .to_owned();
    let mut agent = keyed(&gw, &run_key);
    agent.initialize().await;
    agent.assert_echo("fx__echo", "before the deadline").await;
    // The log ends when the run does: at its 4 s deadline, not the sleep's end.
    let end = follow_log(&gw, &key, &id, None).await;
    let run = run_of(&gw, &key, &id).await;
    assert_eq!(run["state"], "timed_out", "{run}\n{end}");
    let after = agent.call("fx__echo", json!({"message": "late"})).await;
    assert_eq!(
        after.status, 401,
        "the key is refused past the deadline: {}",
        after.body
    );
    let fresh = keyed(&gw, &run_key).initialize_raw().await;
    assert_eq!(
        fresh.status, 401,
        "a new session with the run key is refused too: {}",
        fresh.body
    );
}
