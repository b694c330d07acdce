//! `mcpgate stdio --url`: a stdio client (as Claude Desktop runs one) reaches
//! a keyed gateway through the bridge: initialize, list, call, and
//! `list_changed` from the GET stream after a reload; without a key the
//! client gets a JSON-RPC error naming `MCPGATE_KEY`. End of stdin ends the
//! bridge. The upstream is the Rust fixture.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::common::admin::tenant_with_key;
use crate::common::*;
use serde_json::{Value, json};

struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Bridge {
    fn start(url: &str, key: Option<&str>) -> Bridge {
        let mut cmd = Command::new(mcpgate_bin());
        cmd.args(["stdio", "--url", url])
            .env_remove("MCPGATE_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(k) = key {
            cmd.env("MCPGATE_KEY", k);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Bridge {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    fn send(&mut self, msg: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next message on stdout matching `want` (others are skipped).
    fn wait_for(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if want(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("no {what} on the bridge's stdout"),
            }
        }
    }

    fn answer(&self, id: i64) -> Value {
        self.wait_for(&format!("answer {id}"), |v| {
            v["id"] == id && v.get("method").is_none()
        })
    }
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "stdio-test", "version": "1"}}})
}

#[test]
fn a_stdio_client_reaches_a_keyed_gateway() {
    let gw = Gateway::start(
        "stdio-bridge",
        &format!(
            "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"fx__echo\"]\n{}",
            fixture_server("fx", "")
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let key = tenant_with_key(&gw, "acme", "free", None);
    let mut b = Bridge::start(&gw.url, Some(&key));
    b.send(initialize());
    let init = b.answer(0);
    assert_eq!(init["result"]["serverInfo"]["name"], "mcpgate", "{init}");
    b.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    b.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let list = b.answer(1);
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["fx__echo"], "{list}");
    b.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "fx__echo", "arguments": {"message": "through stdio"}}}));
    let call = b.answer(2);
    assert_eq!(
        call["result"]["content"][0]["text"], "through stdio",
        "{call}"
    );

    // What the gateway sends outside a call reaches the client too. The GET
    // stream opens right after initialize, unseen by the client: each round
    // changes the tier and reloads (every change is broadcast) until one is heard.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut round = 0;
    let heard = loop {
        round += 1;
        std::fs::write(
            gw.config_path(),
            format!(
                "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"fx__echo\", \"x{round}\"]\n{}",
                fixture_server("fx", "")
            ),
        )
        .unwrap();
        let _ = Command::new("kill")
            .args(["-HUP", &gw.proc.child.id().to_string()])
            .status();
        if let Ok(v) = b.lines.recv_timeout(Duration::from_millis(500))
            && v["method"] == "notifications/tools/list_changed"
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(heard, "no list_changed through the bridge");

    // End of stdin ends the bridge.
    drop(b.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = b.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the bridge did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
}

#[test]
fn without_a_key_the_client_is_told_what_to_set() {
    let gw = Gateway::start(
        "stdio-bridge-nokey",
        &format!(
            "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"*\"]\n{}",
            fixture_server("fx", "")
        ),
    );
    let mut b = Bridge::start(&gw.url, None);
    b.send(initialize());
    let err = b.answer(0);
    let msg = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("HTTP 401") && msg.contains("MCPGATE_KEY"),
        "{err}"
    );
    drop(b.stdin.take());
    let out = b.child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("MCPGATE_KEY"));
}

#[test]
#[ignore = "peers tier: needs Node 22 and the TypeScript SDK from tests/interop (scripts/test.sh runs it)"]
fn the_typescript_sdk_stdio_client_runs_the_bridge() {
    let gw = Gateway::start(
        "stdio-bridge-ts",
        &format!(
            "auth = \"keys\"\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"*\"]\n{}",
            fixture_server("fx", "")
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let key = tenant_with_key(&gw, "acme", "free", None);
    let out = Command::new(node_bin())
        .arg("ts_stdio_bridge.mjs")
        .arg(mcpgate_bin())
        .arg(&gw.url)
        .current_dir(interop_dir())
        .env("MCPGATE_KEY", &key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok   closed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok   ").count(), 4, "{stdout}");
}

/// A 2026-07-28 client over stdio (no `initialize`, the version in `_meta`)
/// through the bridge to a stateless keyed gateway: the bridge adds the
/// routing headers that era requires over HTTP (`MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name`), so discovery, a list, a call and a read work.
/// Without them the gateway refuses each request (a header mismatch).
#[test]
fn a_2026_07_28_stdio_client_reaches_a_stateless_gateway() {
    let gw = Gateway::start(
        "stdio-bridge-modern",
        &format!(
            "auth = \"keys\"\nstateless = true\n[plans]\nfree = \"free\"\n[tiers.free]\ntools = [\"fx__echo\"]\nresources = [\"*\"]\n{}",
            fixture_server("fx", "")
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let key = tenant_with_key(&gw, "acme", "free", None);
    let mut b = Bridge::start(&gw.url, Some(&key));
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "stdio-modern", "version": "1"}
    });
    b.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
    );
    let found = b.answer(1);
    assert!(
        found["result"]["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v == "2026-07-28")),
        "{found}"
    );
    b.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}}));
    let list = b.answer(2);
    assert_eq!(list["result"]["tools"][0]["name"], "fx__echo", "{list}");
    b.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "_meta": meta, "name": "fx__echo", "arguments": {"message": "modern über stdio"}}}),
    );
    let call = b.answer(3);
    assert!(
        call["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("modern über stdio")),
        "{call}"
    );
    b.send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "resources/read", "params": {
        "_meta": meta, "uri": "test://static-text"}}),
    );
    let read = b.answer(4);
    assert_eq!(
        read["result"]["contents"][0]["uri"], "test://static-text",
        "{read}"
    );
    drop(b.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the bridge did not end with stdin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
