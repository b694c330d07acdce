//! The CI-safe smoke run of the benchmark harness (issue 19), so it cannot
//! rot: the debug `mcpgate-bench` against the fixture directly and through an
//! auth-off gateway, in both client eras, for about a second each. It checks
//! the harness's contract (exit 0, calls made without errors, the era and the
//! negotiated protocol reported, the percentile fields present and ordered),
//! never a latency figure: a debug build on a shared machine measures nothing.

use std::process::Command;
use std::time::Instant;

use mcpgate_proto::version::{LATEST_LEGACY, MODERN};
use serde_json::Value;

use super::common::*;

/// Tools the fixture lists without `--tools`.
const FIXTURE_TOOLS: &str = "31";

/// Runs `mcpgate-bench --json ARGS`; it must exit 0 with one JSON object.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(bench_bin())
        .arg("--json")
        .args(args)
        .output()
        .expect("run mcpgate-bench");
    assert!(
        out.status.success(),
        "mcpgate-bench {args:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mcpgate-bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// What every load run must report.
fn assert_clean_run(run: &Value, era: &str, what: &str) {
    assert_eq!(run["era"], era, "{what}: {run}");
    assert!(
        run["requests"].as_u64().is_some_and(|n| n > 0),
        "{what}: no calls: {run}"
    );
    assert_eq!(run["errors"], 0, "{what}: {run}");
    assert_eq!(run["method"], "tools/call", "{what}: {run}");
    let us = |field: &str| {
        run[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: {field} missing or not a whole number: {run}"))
    };
    let (p50, p90, p99, max) = (us("p50_us"), us("p90_us"), us("p99_us"), us("max_us"));
    assert!(
        0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{what}: percentiles out of order: {run}"
    );
    assert!(
        run["rps"].as_f64().is_some_and(|r| r > 0.0),
        "{what}: {run}"
    );
}

#[test]
fn bench_runs_direct_and_through_a_gateway_in_both_eras() {
    let started = Instant::now();
    let (_fixture, fixture_url) = fixture_http(&[]);
    let gw = Gateway::start(
        "bench-smoke",
        &format!(
            "prefix = \"never\"\naudit = false\n\n[servers.fx]\nurl = {}\n",
            q(&fixture_url)
        ),
    );
    for (path, url) in [("direct", &fixture_url), ("gateway", &gw.url)] {
        for era in ["session", "modern"] {
            let what = format!("{path}, era {era}");
            let run = bench(&[
                "--url",
                url,
                "--era",
                era,
                "--duration",
                "1s",
                "--warmup",
                "200ms",
                "--wait-tools",
                FIXTURE_TOOLS,
            ]);
            assert_clean_run(&run, era, &what);
            assert_eq!(run["calls"], Value::Null, "{what}: {run}");
            // `session` never asks server/discover, so it runs initialize
            // (2025-11-25); `modern` asks first, and both the gateway and the
            // fixture offer 2026-07-28.
            let want = if era == "session" {
                LATEST_LEGACY
            } else {
                MODERN
            };
            assert_eq!(run["protocol"], want, "{what}: {run}");
        }
    }
    // --calls: exactly N measured calls, in each era.
    for era in ["session", "modern"] {
        let run = bench(&[
            "--url", &gw.url, "--era", era, "--calls", "50", "--warmup", "0s",
        ]);
        assert_clean_run(&run, era, &format!("--calls 50, era {era}"));
        assert_eq!(run["requests"], 50, "{run}");
        assert_eq!(run["calls"], 50, "{run}");
    }
    eprintln!("bench smoke run took {:?}", started.elapsed());
}
