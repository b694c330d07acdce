//! A run's credential, end to end through a real `mcpgate serve`: a
//! `command` workflow defined in the config (`[workflows.probe]`) is fired
//! over `/api/v1`, runs in the bubblewrap sandbox and prints the key it was
//! given; with that key the test then calls the gateway like the agent
//! would: the workflow's one tool is listed and callable, any other tool is
//! invisible and refused as unknown, a call past the run's `budget` is the
//! quota error, the audit rows carry the run id (`mcpgate audit --run`), and
//! once the run is cancelled the key is refused at once.

use std::time::Duration;

use crate::common::admin::*;
use crate::common::*;
use mcpgate_proto::codes;
use serde_json::{Value, json};

fn config() -> String {
    format!(
        r#"
auth = "keys"

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]

[workflows.probe]
agent = "command"
command = ["sh", "-c", "echo \"KEY=$MCPGATE_KEY END\"; sleep 120"]
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
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Follows the run's log (SSE) until `until` appears in it, or to its end
/// (`until` None); returns the text read.
async fn follow_log(gw: &Gateway, key: &str, id: &str, until: Option<&str>) -> String {
    let mut resp = http()
        .get(format!("{}/api/v1/runs/{id}/logs", gw.base))
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("logs");
    assert_eq!(resp.status().as_u16(), 200);
    let mut text = String::new();
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if until.is_some_and(|u| text.contains(u)) {
            return text;
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_key_sees_only_its_tools_within_budget_and_dies_with_the_run() {
    let gw = Gateway::start("runs-gw", &config());
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);

    let resp = http()
        .post(format!("{}/api/v1/workflows/probe/runs", gw.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(json!({"params": {}}).to_string())
        .send()
        .await
        .expect("submit");
    let status = resp.status().as_u16();
    let run: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("run JSON");
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("run id").to_owned();
    assert_eq!(run["tenant"], "acme");

    let log = follow_log(&gw, &key, &id, Some(" END")).await;
    let run_key = log
        .split("KEY=")
        .nth(1)
        .and_then(|s| s.split(" END").next())
        .expect("the run printed its key")
        .to_owned();
    assert!(run_key.starts_with("mcpg_"), "{run_key}");
    assert_ne!(run_key, key, "the run gets a key of its own");

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

    let rows: Vec<Value> = serde_json::from_str(&cli_ok(
        &gw,
        &["audit", "--json", "--run", &id, "--limit", "100"],
    ))
    .expect("audit JSON");
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
