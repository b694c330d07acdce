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

/// A keyed gateway fronting the fixture as `fx`; tier `free` sees only `fx__echo`
/// and `fx__sleep`.
fn keyed_gateway(tag: &str) -> Gateway {
    let config = format!(
        "auth = \"keys\"\naudit_arguments = true\n[plans]\nfree = \"free\"\n\
         [tiers.free]\ntools = [\"fx__echo\", \"fx__sleep\"]\n{}",
        fixture_server("fx", "")
    );
    let gw = Gateway::start(tag, &config);
    gw.wait_ready(std::time::Duration::from_secs(20));
    gw
}

/// Characters a terminal acts on, or that end a line.
fn has_raw_controls(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_audit_and_usage_escape_client_chosen_names() {
    use crate::common::admin::*;
    let gw = keyed_gateway("escape");
    let key = tenant_with_key(&gw, "acme", "free", None);
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    // Hidden names are denied, and every denial is audited under the name
    // the client chose.
    let forged =
        "fx__x\n2000-01-01T00:00:00Z     acme             forged         tools/call     fx__echo";
    let noisy = "fx__y\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{202e}";
    for name in [forged, noisy] {
        let r = c.call(name, serde_json::json!({})).await;
        assert!(!r.has_result(), "{name:?} is hidden: {}", r.text());
    }
    // One honest call, so the tables have an ordinary row too.
    c.assert_echo("fx__echo", "hello").await;

    let table = cli_ok(&gw, &["audit", "--tenant", "acme"]);
    assert!(!has_raw_controls(&table), "raw controls in:\n{table:?}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 3,
        "a header and one line per record:\n{table}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("2000-01-01")),
        "no forged row: {table}"
    );
    assert!(table.contains("fx__x\\n2000-01-01"), "{table}");
    assert!(table.contains("fx__y\\u{1b}]0;pwned\\u{7}"), "{table}");

    let usage = cli_ok(&gw, &["usage", "--tenant", "acme"]);
    assert!(!has_raw_controls(&usage), "raw controls in:\n{usage:?}");
    assert_eq!(usage.lines().count(), 1 + 3, "{usage}");

    // JSON is the exact record.
    let rows = audit(&gw, "acme");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(
        names.contains(&forged) && names.contains(&noisy),
        "{names:?}"
    );
}

/// Waits until the gateway's log holds `needle` (the relayed line is the
/// signal), or panics with the log.
fn wait_log(gw: &Gateway, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let log = gw.stderr();
        if log.contains(needle) {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in the log:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn regression_a_stdio_servers_env_secret_never_reaches_the_log() {
    let secret = format!("tok-{}-s3cr3t-env", std::process::id());
    // The server prints its whole environment to stderr, then serves.
    let config = format!(
        "[servers.leaky]\ncommand = \"sh\"\nargs = [\"-c\", \"env >&2; exec \\\"$0\\\" stdio\", {}]\n\
         env = {{ LEAKY_TOKEN = {}, LEAKY_MODE = \"debug\" }}\n",
        q(fixture_bin().display().to_string()),
        q(&secret)
    );
    let gw = Gateway::start("env-secret", &config);
    gw.wait_ready(std::time::Duration::from_secs(20));
    let log = wait_log(&gw, "LEAKY_TOKEN=");
    assert!(
        log.contains("LEAKY_TOKEN=[redacted]"),
        "the line is relayed, masked:\n{log}"
    );
    assert!(
        log.contains("LEAKY_MODE=debug"),
        "short values are not secrets:\n{log}"
    );
    assert!(!log.contains(&secret), "the secret is in the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_an_http_servers_error_text_never_carries_its_header_secret() {
    use crate::common::client::{Client, status_is};
    use crate::common::mock_upstream::{Behaviour, MockUpstream, Reject};
    let secret = format!("tok-{}-s3cr3t-hdr", std::process::id());
    // A server that echoes the credentials it was sent, in its error body.
    // The client keeps 200 characters of it: the second copy straddles the
    // cut, 8 characters of it before.
    let before = "echo: Bearer ".len() + secret.len() + " and again ".len();
    let pad = "x".repeat(192 - before);
    let echo = MockUpstream::start(Behaviour {
        reject: Some(Reject {
            status: 500,
            www_authenticate: None,
            body: format!("echo: Bearer {secret} and again {pad}{secret}"),
        }),
        ..Behaviour::default()
    });
    let challenger = MockUpstream::start(Behaviour {
        reject: Some(Reject {
            status: 401,
            www_authenticate: Some(format!(
                "Bearer error=\"invalid_token\", token=\"{secret}\""
            )),
            body: String::new(),
        }),
        ..Behaviour::default()
    });
    let config = format!(
        "[servers.echo]\nurl = {}\nheaders = {{ Authorization = {} }}\n\
         [servers.challenger]\nurl = {}\nheaders = {{ Authorization = {} }}\n",
        q(&echo.url),
        q(format!("Bearer {secret}")),
        q(&challenger.url),
        q(format!("Bearer {secret}")),
    );
    let gw = Gateway::start_with_env("hdr-secret", &config, &[("RUST_LOG", "debug")]);
    let c = Client::new(&gw);
    let h = c
        .wait_health(
            "both servers failed",
            std::time::Duration::from_secs(30),
            |h| status_is(h, "echo", "protocol_error") && status_is(h, "challenger", "auth_failed"),
        )
        .await;
    let health = h.to_string();
    assert!(
        !health.contains(&secret),
        "the secret is in /health: {health}"
    );
    assert!(
        health.contains("echo: [redacted] and again xxx"),
        "the error text is kept, masked: {health}"
    );
    assert!(
        health.contains("xxx[redacted]\""),
        "the copy cut off at the end is masked too: {health}"
    );
    assert!(
        health.contains("token=\\\"[redacted]\\\""),
        "the challenge is masked: {health}"
    );
    let log = gw.stderr();
    assert!(!log.contains(&secret), "the secret is in the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_call_in_flight_at_kill_9_is_interrupted_after_a_restart() {
    use crate::common::admin::*;
    let data = TempDir::new("kill9-data");
    let config = format!(
        "auth = \"keys\"\naudit_arguments = true\ndata_dir = {}\n[plans]\nfree = \"free\"\n\
         [tiers.free]\ntools = [\"fx__sleep\"]\ncost = 3\n{}",
        q(data.0.display().to_string()),
        fixture_server("fx", "")
    );
    let mut gw = Gateway::start("kill9-a", &config);
    gw.wait_ready(std::time::Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "free", Some(100));
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    let call = tokio::spawn(async move {
        let msg = serde_json::json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "fx__sleep", "arguments": {"ms": 60_000}}});
        c.try_post(&msg).await
    });

    // The reservation is committed before the call is forwarded: wait for its row.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let row = loop {
        let rows = audit(&gw, "acme");
        if let Some(r) = rows.iter().find(|r| r["name"] == "fx__sleep") {
            break r.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no usage row: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(row["outcome"], "pending", "{row}");
    gw.proc.child.kill().expect("SIGKILL the gateway");
    let _ = gw.proc.child.wait();
    let _ = call.await;

    // Still pending while no gateway runs: nothing has looked at it yet.
    let rows = audit(&gw, "acme");
    assert_eq!(rows[0]["outcome"], "pending", "{rows:?}");

    let again = Gateway::start("kill9-b", &config);
    again.wait_ready(std::time::Duration::from_secs(20));
    let rows = audit(&again, "acme");
    let row = rows
        .iter()
        .find(|r| r["id"] == row["id"])
        .expect("the same row");
    assert_eq!(row["outcome"], "interrupted", "{row}");
    assert_eq!(row["cost"], 3, "the debit is kept: {row}");
    let tenant = cli_ok(&again, &["tenants", "list", "--json"]);
    let tenants: serde_json::Value = serde_json::from_str(&tenant).expect("json");
    assert_eq!(tenants[0]["balance"], 97, "{tenants}");

    let table = cli_ok(&again, &["audit", "--tenant", "acme"]);
    assert!(table.contains("interrupted"), "{table}");
    let usage = cli_ok(&again, &["usage", "--tenant", "acme"]);
    let line = usage
        .lines()
        .find(|l| l.contains("fx__sleep"))
        .unwrap_or_else(|| panic!("{usage}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // TENANT NAME CALLS OK ERRORS DENIED INTERRUPTED COST AVG
    assert_eq!(cols[2..8], ["1", "0", "0", "0", "1", "3"], "{usage}");
    assert!(
        again.stderr().contains("1 call(s) left pending"),
        "{}",
        again.stderr()
    );
}
