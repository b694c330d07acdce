//! The MCP conformance suite (npm @modelcontextprotocol/conformance, server mode,
//! `--suite all --spec-version 2025-11-25`) run against the gateway, with the
//! Rust fixture behind it over stdio and `prefix = "never"`. The gateway is
//! configured to switch long calls to SSE quickly and to close silent streams,
//! so that the SSE polling and `Last-Event-ID` resumption scenario really
//! exercises resumption through the gateway.

mod common;

use std::process::Command;

use common::*;

#[test]
fn conformance_suite_passes_through_the_gateway() {
    let fixture = fixture_bin();
    let gw = Gateway::start(
        "conformance",
        &format!(
            r#"
prefix = "never"
sse_upgrade_after = "20ms"
sse_close_after = "40ms"
sse_retry = "200ms"
[servers.fixture]
command = {}
args = ["stdio"]
"#,
            q(fixture.display().to_string())
        ),
    );
    gw.wait_ready(std::time::Duration::from_secs(20));
    let out_dir = TempDir::new("conformance-results");
    let out = Command::new(node_bin())
        .current_dir(interop_dir())
        .arg("node_modules/@modelcontextprotocol/conformance/dist/index.js")
        .args([
            "server",
            "--url",
            &gw.url,
            "--suite",
            "all",
            "--spec-version",
            "2025-11-25",
            "-o",
        ])
        .arg(&out_dir.0)
        .output()
        .expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("Total:"))
        .unwrap_or_else(|| {
            panic!("no summary line from the suite\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
    // "Total: 80 passed, 0 failed"
    let nums: Vec<u32> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (passed, failed) = (nums[0], nums[1]);
    let failing: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✗')).collect();
    assert_eq!(
        failed,
        0,
        "conformance failures: {failing:#?}\n{summary}\ngateway stderr:\n{}",
        gw.stderr()
    );
    assert!(
        passed >= 75,
        "expected the full 2025-11-25 suite (~80 checks), got: {summary}"
    );
    assert!(out.status.success(), "suite exited with {}", out.status);
    // The polling scenario must have resumed through the gateway, not been skipped.
    let polling = std::fs::read_dir(&out_dir.0)
        .expect("results dir")
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("server-sse-polling")
        })
        .expect("server-sse-polling results");
    let checks = std::fs::read_to_string(polling.path().join("checks.json")).expect("checks.json");
    assert!(
        checks.contains("\"server-sse-disconnect-resume\"")
            && checks.contains("Successfully received tool response after reconnection"),
        "SSE resumption was not exercised: {checks}"
    );
    println!("{summary}");
}
