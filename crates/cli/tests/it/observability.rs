//! What operators watch, end to end through a real `mcpgate serve`:
//! `/metrics` (behind an admin key on the gateway's listener, and keyless on
//! `metrics_listen`) parsed by the real Prometheus text parser of PyPI
//! `prometheus_client` (tests/interop/metrics_parse.py), with every value
//! checked against the calls, refusals, sessions and runs the test made; and
//! `--log-format json`, one JSON object per stderr line, a call's lines
//! carrying its trace id, tenant and session.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::*;
use serde_json::{Value, json};

fn config() -> String {
    format!(
        r#"
auth = "keys"
metrics_listen = "127.0.0.1:0"

[plans]
pro = "pro"
free = "free"

[tiers.pro]
tools = ["*"]

[tiers.free]
tools = ["fx__echo"]
rate = "2/min"

[workflows.hello]
agent = "command"
command = ["echo", "hi"]
tenant = "acme"
timeout = "1m"
{}
"#,
        fixture_server("fx", "")
    )
}

/// The samples of a Prometheus text document, as prometheus_client parses them.
fn parse(text: &str) -> Vec<Value> {
    let mut child = Command::new(venv_bin("python"))
        .arg(interop_dir().join("metrics_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "prometheus_client rejected the document: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches {} samples",
        found.len()
    );
    found.first().copied()
}

/// The address from the gateway's `metrics on http://ADDR/metrics` log line.
fn metrics_url(gw: &Gateway) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(url) = gw
            .stderr()
            .split("metrics on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
        {
            return url.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no 'metrics on' line: {}",
            gw.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn get(url: &str, key: Option<&str>) -> (u16, String, String) {
    let mut req = http_client(Duration::from_secs(10)).get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("GET");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ctype, resp.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: parses /metrics with Python prometheus_client from tests/interop/.venv"]
async fn metrics_count_the_calls_refusals_sessions_and_runs_made() {
    let gw = Gateway::start("metrics", &config());
    gw.wait_ready(Duration::from_secs(20));
    let admin = cli_ok(&gw, &["keys", "create", "--admin", "--name", "prometheus"]);
    let admin = admin.trim();

    // pro: a balance of 2, three calls: 2 ok, 1 refused for quota.
    let pro_key = tenant_with_key(&gw, "acme", "pro", Some(2));
    let mut pro = keyed(&gw, &pro_key);
    pro.initialize().await;
    pro.assert_echo("fx__echo", "one").await;
    pro.assert_echo("fx__echo", "two").await;
    let r = pro.call("fx__echo", json!({"message": "three"})).await;
    r.assert_rpc_error("quota", -32030, &["quota"]);
    // free: 2/min, three calls: 2 ok, 1 refused by the rate limit.
    let free_key = tenant_with_key(&gw, "cheap", "free", None);
    let mut free = keyed(&gw, &free_key);
    free.initialize().await;
    free.assert_echo("fx__echo", "a").await;
    free.assert_echo("fx__echo", "b").await;
    let r = free.call("fx__echo", json!({"message": "c"})).await;
    assert_eq!(r.status, 429, "{}", r.body);

    // A run of acme's workflow (unlimited key of its own tenant's, balance aside).
    let resp = http_client(Duration::from_secs(30))
        .post(format!("{}/api/v1/workflows/hello/runs", gw.base))
        .bearer_auth(&pro_key)
        .header("content-type", "application/json")
        .body(json!({"params": {}}).to_string())
        .send()
        .await
        .expect("submit");
    assert_eq!(resp.status().as_u16(), 201);
    let run: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("run");
    let id = run["id"].as_str().expect("id").to_owned();

    // The run ends; then /metrics says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let (status, ctype, text) = get(&format!("{}/metrics", gw.base), Some(admin)).await;
        assert_eq!(status, 200, "{text}");
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
        let samples = parse(&text);
        if value(&samples, "mcpgate_runs", &[("state", "succeeded")]) == Some(1.0) {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} never counted as succeeded:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let calls = |tier: &str, server: &str, outcome: &str| {
        value(
            &samples,
            "mcpgate_requests_total",
            &[
                ("method", "tools/call"),
                ("server", server),
                ("tier", tier),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(calls("pro", "fx", "ok"), Some(2.0));
    assert_eq!(calls("pro", "fx", "denied_quota"), Some(1.0));
    assert_eq!(calls("free", "fx", "ok"), Some(2.0));
    assert_eq!(calls("free", "", "denied_rate"), Some(1.0));
    let denials = |reason: &str, tier: &str| {
        value(
            &samples,
            "mcpgate_denials_total",
            &[("reason", reason), ("tier", tier)],
        )
    };
    assert_eq!(denials("quota", "pro"), Some(1.0));
    assert_eq!(denials("rate", "free"), Some(1.0));
    // Latency: the whole call for the 4 that ran, the upstream's share likewise.
    let whole = [("tier", "pro"), ("outcome", "ok"), ("server", "fx")];
    assert_eq!(
        value(&samples, "mcpgate_request_duration_seconds_count", &whole),
        Some(2.0)
    );
    let mut inf = whole.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(&samples, "mcpgate_request_duration_seconds_bucket", &inf),
        Some(2.0)
    );
    let upstream_sum = value(
        &samples,
        "mcpgate_upstream_duration_seconds_sum",
        &[("server", "fx")],
    )
    .expect("upstream sum");
    assert_eq!(
        value(
            &samples,
            "mcpgate_upstream_duration_seconds_count",
            &[("server", "fx")]
        ),
        Some(4.0)
    );
    let whole_sum =
        value(&samples, "mcpgate_request_duration_seconds_sum", &whole).expect("whole sum");
    assert!(
        upstream_sum > 0.0 && whole_sum > 0.0,
        "{upstream_sum} {whole_sum}"
    );
    // Upstream and breaker states, sessions, the ledger.
    assert_eq!(
        value(&samples, "mcpgate_upstream_up", &[("server", "fx")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "mcpgate_upstream_status",
            &[("server", "fx"), ("status", "ready")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "mcpgate_breaker_state",
            &[("server", "fx"), ("state", "closed")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&samples, "mcpgate_sessions", &[]), Some(2.0));
    assert!(value(&samples, "mcpgate_ledger_queue_depth", &[]).is_some());
    assert!(
        value(
            &samples,
            "mcpgate_ledger_commit_duration_seconds_count",
            &[]
        )
        .is_some_and(|n| n >= 1.0)
    );

    // Without an admin key: refused, as on /admin/.
    let (status, _, _) = get(&format!("{}/metrics", gw.base), None).await;
    assert_eq!(status, 401);
    let (status, _, _) = get(&format!("{}/metrics", gw.base), Some(&pro_key)).await;
    assert_eq!(status, 403);
    // On metrics_listen: no key needed, the same counters.
    let (status, _, text) = get(&metrics_url(&gw), None).await;
    assert_eq!(status, 200, "{text}");
    let separate = parse(&text);
    assert_eq!(
        value(
            &separate,
            "mcpgate_requests_total",
            &[
                ("method", "tools/call"),
                ("server", "fx"),
                ("tier", "pro"),
                ("outcome", "ok")
            ]
        ),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_calls_trace_id_tenant_and_session() {
    let gw = Gateway::start_with_args(
        "json-logs",
        &config(),
        &["--log-format", "json"],
        &[("RUST_LOG", "info,mcpgate_gateway::mcp::call=debug")],
    );
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    c.assert_echo("fx__echo", "logged").await;
    let session = c.session.clone().expect("a session");

    let deadline = Instant::now() + Duration::from_secs(10);
    let (lines, call) = loop {
        let text = gw.stderr();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))
            })
            .collect();
        let call = lines
            .iter()
            .find(|l| l["message"] == "call done" && l["spans"][0]["method"] == "tools/call")
            .cloned();
        if let Some(call) = call {
            break (lines, call);
        }
        assert!(
            Instant::now() < deadline,
            "no 'call done' line for tools/call:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string()),
        "{lines:?}"
    );
    let span = &call["spans"][0];
    assert_eq!(span["name"], "call", "{call}");
    assert_eq!(span["tenant"], "acme", "{call}");
    assert_eq!(span["session"], session.as_str(), "{call}");
    let trace = span["trace_id"].as_str().expect("trace_id");
    assert!(
        trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit()),
        "{trace}"
    );
    assert_eq!(call["level"], "DEBUG");
    // Each call its own trace id.
    c.assert_echo("fx__echo", "again").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let traces: std::collections::BTreeSet<String> = gw
            .stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "call done")
            .filter_map(|l| l["spans"][0]["trace_id"].as_str().map(str::to_owned))
            .collect();
        if traces.len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{traces:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
