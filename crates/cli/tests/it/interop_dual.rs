//! A server that offers both eras behind the gateway (issue 14, item 9): the
//! TypeScript SDK v2 server tests/interop/ts_dual_server.mjs answers
//! 2026-07-28 statelessly and 2025-11-25 with sessions. The gateway must speak
//! each client's own era to it: a legacy client's call reaches the server's
//! session path, where the server pushes `elicitation/create` and takes
//! `resources/subscribe`; a 2026-07-28 client's call reaches the stateless
//! path, where the server asks through an input-required result. Before the
//! fix the gateway spoke 2026-07-28 to this server for everyone, so the legacy
//! client's elicitation came back bridged (`modern-mrtr`) and its
//! subscription was refused. And the same server in `--modern-only` mode (one
//! era): a legacy client is bridged, and its `resources/subscribe` is carried
//! upstream by a `subscriptions/listen` stream. Driven by tests/interop/py_dual.py.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// The TypeScript server (with `extra` arguments); returns it and its URL.
fn ts_dual_server(extra: &[&str]) -> (Proc, String) {
    let log = std::env::temp_dir().join(format!(
        "ts-dual-{}-{:?}.log",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut child = Command::new(node_bin())
        .arg(interop_dir().join("ts_dual_server.mjs"))
        .arg("0")
        .args(extra)
        .current_dir(interop_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start ts_dual_server.mjs");
    let url = read_listening_line(&mut child, "ts_dual_server.mjs", &log);
    (Proc { child }, url)
}

fn run_py_dual(gw: &Gateway, mode: &str, extra: &[&str]) -> String {
    let out = Command::new(venv_bin("python"))
        .args(["py_dual.py", &gw.url, "--mode", mode, "--prefix", "dual__"])
        .args(extra)
        .current_dir(interop_dir())
        .output()
        .unwrap_or_else(|e| panic!("run py_dual.py: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "py_dual.py --mode {mode} failed ({})\nstdout:\n{stdout}\nstderr:\n{}\ngateway stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        gw.stderr()
    );
    stdout
}

#[test]
#[ignore = "peers tier: needs Node 22 and the SDKs from tests/interop"]
fn a_dual_era_upstream_is_spoken_to_in_each_clients_own_era() {
    let (_server, url) = ts_dual_server(&[]);
    let gw = Gateway::start(
        "interop-dual-era",
        &format!("[servers.dual]\nurl = {}\n", q(url)),
    );
    let h = gw.wait_ready(Duration::from_secs(30));
    assert_eq!(
        h["servers"][0]["protocol_version"], "2026-07-28",
        "the shared connection discovers 2026-07-28: {h:#}"
    );
    let legacy = run_py_dual(&gw, "legacy", &[]);
    assert!(
        legacy.contains("legacy-push") && legacy.contains("notifications/resources/updated"),
        "the legacy client was served on the server's session path:\n{legacy}"
    );
    let modern = run_py_dual(&gw, "2026-07-28", &[]);
    assert!(
        modern.contains("modern-mrtr"),
        "the 2026-07-28 client was served statelessly:\n{modern}"
    );
    // And the legacy client again, now that the session-based connection is open.
    run_py_dual(&gw, "legacy", &[]);
}

#[test]
#[ignore = "peers tier: needs Node 22 and the SDKs from tests/interop"]
fn a_legacy_clients_resource_subscription_reaches_a_2026_only_upstream_as_a_listen_stream() {
    let (_server, url) = ts_dual_server(&["--modern-only"]);
    let gw = Gateway::start(
        "interop-modern-only",
        &format!("[servers.dual]\nurl = {}\n", q(url)),
    );
    gw.wait_ready(Duration::from_secs(30));
    let legacy = run_py_dual(&gw, "legacy", &["--modern-only"]);
    assert!(
        legacy.contains("modern-mrtr") && legacy.contains("notifications/resources/updated"),
        "bridged, and the subscription held by a listen stream upstream:\n{legacy}"
    );
    // A 2026-07-28 client still works statelessly.
    run_py_dual(&gw, "2026-07-28", &["--modern-only"]);
}
