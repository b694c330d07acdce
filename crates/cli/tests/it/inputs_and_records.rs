//! Issue 14, through the real `mcpgate` binary: input that once panicked the
//! CLI (durations too long for `Duration`) is an exit-2 error naming the
//! value; client-chosen names in `audit` and `usage` tables are escaped so
//! they cannot forge rows or drive the terminal (JSON stays exact); a call in
//! flight at `kill -9` is marked `interrupted` on the next start; and a
//! stdio server's secret never reaches the gateway's log.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Runs `mcpgate ARGS --config CONFIG`; returns (exit code, stdout, stderr).
fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mcpgate_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run mcpgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config file with key auth and one plan, in a fresh temp dir.
fn keyed_config(dir: &TempDir, extra: &str) -> std::path::PathBuf {
    let path = dir.0.join("mcpgate.toml");
    let text = format!(
        "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"*\"]\n{extra}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

const HUGE: &str = "999999999999999d";

#[test]
fn regression_keys_create_with_a_huge_expiry_exits_2_not_101() {
    let dir = TempDir::new("huge-expiry");
    let cfg = keyed_config(&dir, "");
    let (code, _, err) = run(&cfg, &["tenants", "add", "acme", "--plan", "free"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        &cfg,
        &["keys", "create", "--tenant", "acme", "--expires", HUGE],
    );
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(err.contains(HUGE), "the error names the value: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.contains("mcpg_"), "no key was printed: {out}");
    for cmd in ["usage", "audit"] {
        let (code, _, err) = run(&cfg, &[cmd, "--since", HUGE]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(
            err.contains(HUGE) && !err.contains("panicked"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn regression_check_with_a_huge_timeout_is_a_config_error_not_a_panic() {
    let dir = TempDir::new("huge-timeout");
    for (extra, key) in [
        (
            "[servers.s]\ncommand = \"true\"\ntimeout = \"99999999999999999999s\"\n",
            "servers.s.timeout",
        ),
        ("session_idle_timeout = 1e20\n", "session_idle_timeout"),
    ] {
        let path = dir.0.join("mcpgate.toml");
        std::fs::write(&path, extra).expect("write config");
        let (code, _, err) = run(&path, &["check"]);
        assert_eq!(code, 2, "{extra}: {err}");
        assert!(
            err.contains(&format!("{}: {key}: ", path.display())),
            "names file and key: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}
