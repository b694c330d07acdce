//! What the runs tests share: a config preamble with a keyed `pro` tier, the
//! MOCK model (`mcpgate-mock-model`) started on port 0, and firing a run over
//! `/api/v1` then following it to its end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::admin::cli_ok;
use super::{Gateway, Proc, http_client, mcpgate_bin};

/// `auth = "keys"`, plan `pro` → tier `pro` seeing every tool.
pub const KEYED_PRO: &str = r#"
auth = "keys"

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]
"#;

fn http() -> reqwest::Client {
    http_client(Duration::from_secs(240))
}

/// Starts the MOCK model on a port of its own choosing with its script in
/// `args`, recording every request to `record`; returns it and its base URL.
pub fn mock_model(record: &std::path::Path, args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(mcpgate_bin().with_file_name("mcpgate-mock-model"))
        .args(args)
        .arg("--record")
        .arg(record)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcpgate-mock-model (cargo build --workspace builds it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the MOCK's listening line");
    let url = line
        .trim()
        .strip_prefix("MOCK model listening on ")
        .unwrap_or_else(|| panic!("unexpected MOCK report: {line}"))
        .to_owned();
    (Proc { child }, url)
}

/// The requests the MOCK model recorded, one JSON value each.
pub fn recorded(record: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Fires `workflow` with `params` as `key`; the run's id (asserting a 201).
pub async fn submit(gw: &Gateway, key: &str, workflow: &str, params: Value) -> String {
    let resp = http()
        .post(format!("{}/api/v1/workflows/{workflow}/runs", gw.base))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(json!({ "params": params }).to_string())
        .send()
        .await
        .expect("submit");
    let status = resp.status().as_u16();
    let run: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("run JSON");
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().expect("run id").to_owned()
}

/// The run as `/api/v1/runs/{id}` shows it.
pub async fn run_of(gw: &Gateway, key: &str, id: &str) -> Value {
    let text = http()
        .get(format!("{}/api/v1/runs/{id}", gw.base))
        .bearer_auth(key)
        .send()
        .await
        .expect("run")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).expect("run JSON")
}

/// Waits (60 s at most) until the run's state satisfies `ok`; returns the run.
pub async fn wait_state(gw: &Gateway, key: &str, id: &str, ok: impl Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = run_of(gw, key, id).await;
        if run["state"].as_str().is_some_and(&ok) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} stuck: {run}\ngateway stderr:\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes whose command line carries `marker`, other than this test's own.
pub fn processes_with(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(marker) {
            found.push(format!("{pid}: {cmd}"));
        }
    }
    found
}

/// Follows the run's log (SSE) until `until` appears in it, or to its end
/// (`until` None); returns the text read.
pub async fn follow_log(gw: &Gateway, key: &str, id: &str, until: Option<&str>) -> String {
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

/// Fires `workflow` and waits for the run to end; returns the run and its
/// plain-text log.
pub async fn run_to_end(gw: &Gateway, key: &str, workflow: &str, params: Value) -> (Value, String) {
    let id = submit(gw, key, workflow, params).await;
    follow_log(gw, key, &id, None).await;
    let run = run_of(gw, key, &id).await;
    let log = http()
        .get(format!("{}/api/v1/runs/{id}/logs", gw.base))
        .bearer_auth(key)
        .send()
        .await
        .expect("log")
        .text()
        .await
        .expect("log text");
    (run, log)
}

/// The audit rows of one run (`mcpgate audit --json --run ID`).
pub fn run_audit(gw: &Gateway, id: &str) -> Vec<Value> {
    serde_json::from_str(&cli_ok(
        gw,
        &["audit", "--json", "--run", id, "--limit", "100"],
    ))
    .expect("audit JSON")
}

/// Whether `rows` hold a successful call of `tool` under run `id`.
pub fn audited_ok(rows: &[Value], tool: &str, id: &str) -> bool {
    rows.iter()
        .any(|r| r["name"] == tool && r["outcome"] == "ok" && r["run_id"] == id)
}
