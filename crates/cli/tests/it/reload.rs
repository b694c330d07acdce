//! Re-reading the config while serving: SIGHUP and `mcpgate reload` apply a
//! tier change to an open session without a reconnect (and its GET stream
//! hears `list_changed`), while a broken file, or one that leaves a tenant's
//! plan unmapped, is refused with the error logged and the old config keeps
//! serving. Real gateway processes and the Rust fixture.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::admin::{cli_ok, keyed, tenant_with_key};
use crate::common::client::Client;
use crate::common::*;
use serde_json::json;

fn config(free_tools: &str, extra: &str) -> String {
    format!(
        "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = {free_tools}\n{}{extra}",
        fixture_server("fx", "")
    )
}

fn hangup(gw: &Gateway) {
    let ok = Command::new("kill")
        .args(["-HUP", &gw.proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits until the gateway's log has `needle` (at most 10 s).
fn wait_log(gw: &Gateway, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.stderr().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            gw.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reload_cli(gw: &Gateway, admin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(mcpgate_bin());
    cmd.args(["reload", "--url", &gw.url])
        .env_remove("MCPGATE_ADMIN_KEY");
    if let Some(k) = admin {
        cmd.env("MCPGATE_ADMIN_KEY", k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_tier_change_to_an_open_session() {
    let gw = Gateway::start("reload-hup", &config("[\"fx__echo\"]", ""));
    gw.wait_ready(Duration::from_secs(30));
    let key = tenant_with_key(&gw, "acme", "free", None);
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    let session = c.session.clone().unwrap();
    assert_eq!(c.all_tool_names().await, ["fx__echo"]);
    c.call("fx__test_simple_text", json!({}))
        .await
        .assert_rpc_error("hidden tool", -32602, &[]);

    // The session's GET stream: attached once its 200 arrives.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut stream = reqwest::Client::new()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &session)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    std::fs::write(
        gw.config_path(),
        config("[\"fx__echo\", \"fx__test_simple_text\"]", ""),
    )
    .unwrap();
    hangup(&gw);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no list_changed; got {seen:?}\n{}", gw.stderr()))
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
    }
    // Same session, new view, and the newly visible tool is callable.
    assert_eq!(c.session.as_deref(), Some(session.as_str()));
    let mut names = c.all_tool_names().await;
    names.sort();
    assert_eq!(names, ["fx__echo", "fx__test_simple_text"]);
    let r = c.call("fx__test_simple_text", json!({})).await;
    assert!(r.has_result(), "{}", r.body);
    wait_log(&gw, "config reloaded", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_refused_and_the_old_one_keeps_serving() {
    let mut gw = Gateway::start("reload-broken", &config("[\"fx__echo\"]", ""));
    gw.wait_ready(Duration::from_secs(30));
    let key = tenant_with_key(&gw, "acme", "free", None);
    let admin = cli_ok(&gw, &["keys", "create", "--admin"]);
    let admin = admin.trim();
    let mut c = keyed(&gw, &key);
    c.initialize().await;

    // Not TOML at all: SIGHUP logs the error and the gateway keeps serving.
    std::fs::write(gw.config_path(), "auth = \"keys\"\n[tiers.free\n").unwrap();
    hangup(&gw);
    wait_log(&gw, "config reload refused", 1);
    assert!(gw.stderr().contains("not valid TOML"), "{}", gw.stderr());
    assert!(
        matches!(gw.proc.child.try_wait(), Ok(None)),
        "SIGHUP must not stop the gateway"
    );
    c.assert_echo("fx__echo", "still here").await;

    // The same through `mcpgate reload`: exit 2, naming the problem.
    let (code, out, err) = reload_cli(&gw, Some(admin));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("keeps the old one") && err.contains("not valid TOML"),
        "{err}"
    );
    // A config that leaves acme's plan unmapped is refused too.
    std::fs::write(
        gw.config_path(),
        format!(
            "auth = \"keys\"\n[plans]\npro = \"pro\"\n[tiers.pro]\ntools = [\"*\"]\n{}",
            fixture_server("fx", "")
        ),
    )
    .unwrap();
    let (code, _, err) = reload_cli(&gw, Some(admin));
    assert_eq!(code, 2);
    assert!(err.contains("tenant 'acme' has plan 'free'"), "{err}");
    assert_eq!(c.all_tool_names().await, ["fx__echo"], "the old tiers stay");
    c.assert_echo("fx__echo", "old config").await;

    // No admin key: a usage error that says what to set.
    let (code, _, err) = reload_cli(&gw, None);
    assert_eq!(code, 2);
    assert!(err.contains("MCPGATE_ADMIN_KEY"), "{err}");

    // A good one applies; a server added is reported as needing a restart.
    std::fs::write(
        gw.config_path(),
        format!(
            "max_body = \"1MiB\"\n{}",
            config("[\"fx__*\"]", &fixture_server("fy", ""))
        ),
    )
    .unwrap();
    let (code, out, err) = reload_cli(&gw, Some(admin));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("changed and applied"), "{out}");
    assert!(out.contains("servers added: fy"), "{out}");
    assert!(
        out.contains("needs a restart: settings changed: max_body"),
        "{out}"
    );
    // fy starts in the background; the tier (`fx__*`) still hides it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.stderr().matches("upstream ready").count() < 2 {
        assert!(Instant::now() < deadline, "{}", gw.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = c.all_tool_names().await;
    assert!(
        names.len() > 1 && names.iter().all(|n| n.starts_with("fx__")),
        "{names:?}"
    );
}

fn servers_cli(admin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mcpgate_bin())
        .arg("servers")
        .args(args)
        .env("MCPGATE_ADMIN_KEY", admin)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_added_and_removed_at_runtime() {
    let gw = Gateway::start("runtime-servers", &config("[\"*\"]", ""));
    gw.wait_ready(Duration::from_secs(30));
    let key = tenant_with_key(&gw, "acme", "free", None);
    let admin = cli_ok(&gw, &["keys", "create", "--admin"]);
    let admin = admin.trim();
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    assert!(
        !c.all_tool_names()
            .await
            .iter()
            .any(|n| n.starts_with("fy__"))
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut stream = reqwest::Client::new()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", c.session.clone().unwrap())
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let fixture = fixture_bin().display().to_string();
    let add_fy = ["add", "fy", "--url", &gw.url, "--", &fixture, "stdio"];
    let (code, out, err) = servers_cli(admin, &add_fy);
    assert_eq!(code, 0, "{out}{err}");
    // The session hears list_changed once fy is up, and sees its tools.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no list_changed; got {seen:?}\n{}", gw.stderr()))
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.all_tool_names().await.iter().any(|n| n == "fy__echo") {
        assert!(Instant::now() < deadline, "{}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.assert_echo("fy__echo", "added at runtime").await;

    // The same name again, and a table the config would refuse.
    let (code, _, err) = servers_cli(admin, &add_fy);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = servers_cli(
        admin,
        &["add", "bad", "--url", &gw.url, "--server-url", "ftp://x"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("servers.bad.url") && err.contains("not an http"),
        "{err}"
    );

    let (code, out, err) = servers_cli(admin, &["rm", "fy", "--url", &gw.url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !c.all_tool_names()
            .await
            .iter()
            .any(|n| n.starts_with("fy__"))
    );
    c.assert_echo("fx__echo", "fx unaffected").await;
    let (code, _, err) = servers_cli(admin, &["rm", "fy", "--url", &gw.url]);
    assert_eq!(code, 1, "{err}");
    // A key that is not an admin key: refused.
    let (code, _, _) = servers_cli(&key, &["rm", "fx", "--url", &gw.url]);
    assert_eq!(code, 3);
    c.assert_echo("fx__echo", "still there").await;
}

/// A session opened now (so nothing earlier is queued for it), and its GET stream.
async fn listening_session(gw: &Gateway, key: &str) -> (Client, reqwest::Response) {
    let mut c = keyed(gw, key);
    c.initialize().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stream = reqwest::Client::new()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", c.session.clone().unwrap())
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    (c, stream)
}

/// Reads `stream` until `notifications/tools/list_changed` (at most 20 s).
async fn hears_tools_list_changed(gw: &Gateway, stream: &mut reqwest::Response, what: &str) {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("{what}: no list_changed; got {seen:?}\n{}", gw.stderr()))
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
    }
}

async fn has_tool(c: &Client, name: &str) -> bool {
    c.all_tool_names().await.iter().any(|n| n == name)
}

/// Servers added at runtime inherit the file's top-level server defaults
/// (here `resource_uris`), and every change of the server set (runtime add,
/// runtime remove, a reload adding one, a reload removing it) reaches an open
/// session as `list_changed`. Each step listens on a session opened after the
/// previous step had finished, so a notification it hears is the step's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_and_reloaded_servers_get_the_defaults_and_list_changed() {
    let with = |extra_server: &str| {
        format!(
            "resource_uris = \"namespaced\"\n{}{extra_server}",
            config("[\"*\"]\nresources = [\"*\"]", "")
        )
    };
    let gw = Gateway::start("runtime-defaults", &with(""));
    gw.wait_ready(Duration::from_secs(30));
    let key = tenant_with_key(&gw, "acme", "free", None);
    let admin = cli_ok(&gw, &["keys", "create", "--admin"]);
    let admin = admin.trim();

    // A session asks for errors only: the level servers are sent.
    let mut quiet = keyed(&gw, &key);
    quiet.initialize().await;
    let r = quiet
        .request("logging/setLevel", json!({"level": "error"}))
        .await;
    assert!(r.has_result(), "{}", r.body);

    // Added at runtime: list_changed, and its URIs namespaced like fx's.
    let (c, mut stream) = listening_session(&gw, &key).await;
    let fixture = fixture_bin().display().to_string();
    let (code, out, err) = servers_cli(
        admin,
        &["add", "fy", "--url", &gw.url, "--", &fixture, "stdio"],
    );
    assert_eq!(code, 0, "{out}{err}");
    hears_tools_list_changed(&gw, &mut stream, "runtime add").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_tool(&c, "fy__echo").await {
        assert!(Instant::now() < deadline, "{}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c.request("resources/list", json!({})).await;
    let uris: Vec<&str> = r.result()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(
        uris.contains(&"fx+test://static-text") && uris.contains(&"fy+test://static-text"),
        "{uris:?}"
    );
    assert!(
        !gw.stderr().contains("is offered by both"),
        "{}",
        gw.stderr()
    );
    // And the level the sessions asked for: once fy is sent `error`, its
    // info messages stop (c set no level, so it would get every one relayed).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call("fy__test_tool_with_logging", json!({})).await;
        assert!(r.has_result(), "{}", r.body);
        if r.notifications("notifications/message").is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fy still logs at info: {}\n{}",
            r.body,
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Removed at runtime.
    let (c, mut stream) = listening_session(&gw, &key).await;
    let (code, out, err) = servers_cli(admin, &["rm", "fy", "--url", &gw.url]);
    assert_eq!(code, 0, "{out}{err}");
    hears_tools_list_changed(&gw, &mut stream, "runtime remove").await;
    assert!(!has_tool(&c, "fy__echo").await);

    // Added by a reload of the file.
    let (c, mut stream) = listening_session(&gw, &key).await;
    std::fs::write(gw.config_path(), with(&fixture_server("fz", ""))).unwrap();
    hangup(&gw);
    hears_tools_list_changed(&gw, &mut stream, "reload add").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_tool(&c, "fz__echo").await {
        assert!(Instant::now() < deadline, "{}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.assert_echo("fz__echo", "added by reload").await;

    // Removed by a reload of the file.
    let (c, mut stream) = listening_session(&gw, &key).await;
    std::fs::write(gw.config_path(), with("")).unwrap();
    hangup(&gw);
    hears_tools_list_changed(&gw, &mut stream, "reload remove").await;
    assert!(!has_tool(&c, "fz__echo").await);
    c.assert_echo("fx__echo", "fx unaffected").await;
}
