//! Runs across a gateway crash, through real `mcpgate serve` processes on one
//! data dir: with `max_concurrent = 1`, one run is running (in bubblewrap)
//! and one is queued when the gateway gets SIGKILL. The sandbox dies with it
//! (`--die-with-parent`: no process of the run survives), and after a restart
//! the running run is `failed` with reason `gateway restarted` while the
//! queued one starts and finishes.

use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::runs::*;
use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_run_fails_that_run_and_starts_the_queued_one_after_restart() {
    let data = TempDir::new("runs-kill9-data");
    // A sleep as long as it is unique to this test process: both the shell and
    // its sleep carry it on their command lines.
    let marker = format!("300.{}", std::process::id());
    let config = format!(
        r#"
auth = "keys"
data_dir = {data}

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]

[runs]
max_concurrent = 1

[workflows.slow]
agent = "command"
command = ["sh", "-c", "echo started; sleep {marker}; true"]
tenant = "acme"
timeout = "10m"

[workflows.quick]
agent = "command"
command = ["sh", "-c", "echo quick done"]
tenant = "acme"
timeout = "1m"
"#,
        data = q(data.0.display().to_string()),
    );
    let mut gw = Gateway::start("runs-kill9-a", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let slow = submit(&gw, &key, "slow", json!({})).await;
    wait_state(&gw, &key, &slow, |s| s == "running").await;
    let quick = submit(&gw, &key, "quick", json!({})).await;
    let queued = run_of(&gw, &key, &quick).await;
    assert_eq!(queued["state"], "queued", "max_concurrent = 1: {queued}");
    // The slow run's sandbox is alive now.
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the slow run's process never showed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    gw.proc.child.kill().expect("SIGKILL the gateway");
    let _ = gw.proc.child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the run outlived its gateway: {:?}",
            processes_with(&marker)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let again = Gateway::start("runs-kill9-b", &config);
    again.wait_ready(Duration::from_secs(20));
    let failed = wait_state(&again, &key, &slow, |s| s != "running").await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["reason"], "gateway restarted", "{failed}");
    let done = wait_state(&again, &key, &quick, |s| {
        !matches!(s, "queued" | "starting" | "running")
    })
    .await;
    assert_eq!(done["state"], "succeeded", "the queued run ran: {done}");
}
