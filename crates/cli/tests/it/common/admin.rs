//! The real `mcpgate` admin commands run against a test gateway's config
//! (tenants, keys, audit), and a client that presents a tenant's key.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;

use serde_json::Value;

use super::client::Client;
use super::{Gateway, mcpgate_bin};

/// Runs `mcpgate ARGS --config <the gateway's config>`; returns (exit code, stdout, stderr).
pub fn cli(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mcpgate_bin())
        .args(args)
        .arg("--config")
        .arg(gw.config_path())
        .output()
        .expect("run mcpgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn cli_ok(gw: &Gateway, args: &[&str]) -> String {
    let (code, out, err) = cli(gw, args);
    assert_eq!(code, 0, "mcpgate {args:?} failed:\n{out}\n{err}");
    out
}

/// Adds a tenant and returns a fresh key for it.
pub fn tenant_with_key(gw: &Gateway, name: &str, plan: &str, balance: Option<i64>) -> String {
    let b = balance.map(|b| b.to_string());
    let mut args = vec!["tenants", "add", name, "--plan", plan];
    if let Some(b) = &b {
        args.extend(["--balance", b.as_str()]);
    }
    cli_ok(gw, &args);
    let key = cli_ok(gw, &["keys", "create", "--tenant", name, "--name", "test"]);
    let key = key.trim().to_owned();
    assert!(key.starts_with("mcpg_"), "key format: {key}");
    key
}

pub fn keyed(gw: &Gateway, key: &str) -> Client {
    Client::with_headers(gw, &[("authorization", &format!("Bearer {key}"))])
}

pub fn audit(gw: &Gateway, tenant: &str) -> Vec<Value> {
    let out = cli_ok(
        gw,
        &["audit", "--json", "--tenant", tenant, "--limit", "100000"],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("audit --json: {e}\n{out}"))
}
