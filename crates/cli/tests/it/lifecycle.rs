//! The binary's life cycle and command line: the bundled demo config, config
//! errors, `check` and `servers`, refusing a non-loopback bind, a Claude-style
//! `mcpServers` JSON config, and shutdown that leaves no child process behind.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn mcpgate(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    Command::new(mcpgate_bin())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mcpgate")
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[test]
fn serve_without_config_runs_the_bundled_demo() {
    let dir = TempDir::new("demo");
    let stderr = std::fs::File::create(dir.0.join("err.log")).unwrap();
    let mut child = Command::new(mcpgate_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir.0)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let _proc = Proc { child };
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = curl_post(&url, None, INIT);
        let sid = session_header(&r);
        let (status, body) = curl_post(
            &url,
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo__add","arguments":{"a":2,"b":40}}}"#,
        );
        if body.contains("\"42\"") {
            assert_eq!(status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "the demo never answered: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bad_config_stops_with_file_key_and_problem() {
    let dir = TempDir::new("badcfg");
    std::fs::write(dir.0.join("bad.toml"), "[servers.x]\ncomand = \"npx\"\n").unwrap();
    for cmd in ["check", "serve"] {
        let out = mcpgate(&[cmd, "--config", "bad.toml"], &dir.0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("bad.toml: servers.x.comand: unknown key; did you mean `command`?"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn check_and_servers_report_each_upstream() {
    let dir = TempDir::new("check");
    std::fs::write(
        dir.0.join("mcpgate.toml"),
        format!(
            "[servers.good]\ncommand = {}\nargs = [\"stdio\"]\n[servers.broken]\ncommand = \"/nonexistent/mcp-server\"\n",
            q(fixture_bin().display().to_string())
        ),
    )
    .unwrap();
    let out = mcpgate(&["check"], &dir.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "not all ready → exit 1\n{text}");
    let good = text
        .lines()
        .find(|l| l.starts_with("good"))
        .expect("good row");
    assert!(
        good.contains("ready") && good.contains("mcpgate-fixture"),
        "{text}"
    );
    let broken = text
        .lines()
        .find(|l| l.starts_with("broken"))
        .expect("broken row");
    assert!(
        broken.contains("unreachable") && broken.contains("cannot start"),
        "{text}"
    );

    let out = mcpgate(&["servers", "--json"], &dir.0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(v["servers"][0]["status"], "ready");
    assert!(v["servers"][0]["tools"].as_u64().unwrap() > 5);
    assert_eq!(v["servers"][1]["status"], "unreachable");
}

#[test]
fn servers_url_reads_a_running_gateway() {
    let gw = Gateway::start(
        "servers-url",
        &format!(
            "[servers.fx]\ncommand = {}\nargs = [\"stdio\"]\n",
            q(fixture_bin().display().to_string())
        ),
    );
    gw.wait_ready(Duration::from_secs(20));
    let out = mcpgate(&["servers", "--url", &gw.url], &gw.dir.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text.lines().find(|l| l.starts_with("fx")).expect("fx row");
    assert!(
        row.contains("ready") && row.contains("ms"),
        "status and latency: {row}"
    );
    let out = mcpgate(&["servers", "--url", "http://127.0.0.1:1"], &gw.dir.0);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unreachable gateway is exit 3"
    );
}

#[test]
fn refuses_to_listen_beyond_loopback_without_auth() {
    let dir = TempDir::new("bind");
    let out = mcpgate(&["serve", "--listen", "0.0.0.0:0"], &dir.0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("requires client authentication"), "{err}");
}

#[test]
fn claude_style_json_config_works_unchanged() {
    let dir = TempDir::new("json");
    let cfg = dir.0.join("claude_desktop_config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"mcpServers": {{"fx": {{"command": {}, "args": ["stdio"], "env": {{}}}}}}}}"#,
            q(fixture_bin().display().to_string())
        ),
    )
    .unwrap();
    let out = mcpgate(&["check", "--config", cfg.to_str().unwrap()], &dir.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("fx") && l.contains("ready")),
        "{text}"
    );
}

fn children_of(pid: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok()
}

#[test]
fn shutdown_terminates_and_reaps_every_child() {
    let fixture = q(fixture_bin().display().to_string());
    let mut gw = Gateway::start(
        "shutdown",
        &format!(
            "[servers.a]\ncommand = {fixture}\nargs = [\"stdio\"]\n[servers.b]\ncommand = {fixture}\nargs = [\"stdio\"]\n"
        ),
    );
    gw.wait_ready(Duration::from_secs(20));
    let kids = children_of(gw.proc.child.id());
    assert_eq!(kids.len(), 2, "one child per stdio server: {kids:?}");
    // A client holding a GET stream open must not keep shutdown from finishing.
    let (_, r) = curl_post(&gw.url, None, INIT);
    let sid = session_header(&r);
    let mut get = Command::new("curl")
        .args([
            "-s",
            "-N",
            "--max-time",
            "30",
            "-H",
            "accept: text/event-stream",
            "-H",
        ])
        .arg(format!("mcp-session-id: {sid}"))
        .arg(&gw.url)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = gw.proc.terminate().expect("gateway exit status");
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}\n{}",
        gw.stderr()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
    for k in kids {
        assert!(!alive(k), "child {k} survived the gateway");
    }
    let _ = get.kill();
    let _ = get.wait();
}

#[test]
fn client_cancellation_ends_the_upstream_call() {
    let gw = Gateway::start(
        "cancel",
        &format!(
            "[servers.fx]\ncommand = {}\nargs = [\"stdio\"]\n",
            q(fixture_bin().display().to_string())
        ),
    );
    gw.wait_ready(Duration::from_secs(20));
    let (_, r) = curl_post(&gw.url, None, INIT);
    let sid = session_header(&r);
    let url = gw.url.clone();
    let sid2 = sid.clone();
    let started = Instant::now();
    let call = std::thread::spawn(move || {
        curl_post(
            &url,
            Some(&sid2),
            r#"{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"fx__sleep","arguments":{"ms":20000}}}"#,
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = curl_post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"user"}}"#,
    );
    assert_eq!(status, 202);
    let (_, body) = call.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the call was not cut short: {:?}",
        started.elapsed()
    );
    assert!(
        body.contains("cancelled") && body.contains("slow-1"),
        "{body}"
    );
    // The upstream is still healthy afterwards.
    let (_, body) = curl_post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fx__echo","arguments":{"message":"still here"}}}"#,
    );
    assert!(body.contains("still here"), "{body}");
}
