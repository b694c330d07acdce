//! Interop with the official SDK clients. The gateway fronts three real
//! upstreams: @modelcontextprotocol/server-everything over stdio, the same
//! server over streamableHttp, and PyPI mcp-server-time over stdio. The Python
//! SDK (`mcp` 2.x) and the TypeScript SDK (`@modelcontextprotocol/sdk` 1.x)
//! each list tools from all three, call one on each, see progress during a
//! long-running tool, answer a sampling request an upstream sends mid-call, read
//! a resource and get a prompt (tests/interop/py_client.py and ts_client.mjs).
//! The same SDKs as 2026-07-28 clients (Python `mode="2026-07-28"` and
//! `"auto"`, the TypeScript v2 client with version negotiation `auto` and a
//! pin) list and call tools through the gateway in front of server-everything,
//! which speaks only 2025-11-25, including a call whose elicitation is bridged
//! into an input round trip (tests/interop/py_modern.py and ts_modern.mjs).
//! And the other way round: a 2026-07-28 upstream built on the Python SDK
//! (py_modern_server.py) behind the gateway, used by the Python SDK in legacy
//! mode (its input requests become elicitation requests on the session) and
//! in 2026-07-28 mode (they pass through under a gateway-issued state), and
//! by `mcpgate call` directly, which keeps no session for it (py_bridge.py).

use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn gateway_with_three_upstreams() -> (Gateway, Proc) {
    let (everything_http, port) = server_everything("streamableHttp");
    let gw = Gateway::start(
        "interop",
        &format!(
            r#"
[servers.everything]
command = {node}
args = [{js}, "stdio"]
[servers.everything_http]
url = "http://127.0.0.1:{port}/mcp"
[servers.time]
command = {time}
args = ["--local-timezone", "UTC"]
"#,
            node = q(node_bin().display().to_string()),
            js = q(server_everything_js().display().to_string()),
            time = q(venv_bin("mcp-server-time").display().to_string()),
        ),
    );
    gw.wait_ready(Duration::from_secs(60));
    (gw, everything_http)
}

fn run_client(cmd: &mut Command, gw: &Gateway, what: &str) {
    run_script(
        cmd.args([
            gw.url.as_str(),
            "--prefix-everything",
            "everything",
            "--prefix-everything-http",
            "everything_http",
            "--prefix-time",
            "time",
        ]),
        gw,
        what,
    );
}

/// Runs an interop script (its arguments already given); it must print PASS.
fn run_script(cmd: &mut Command, gw: &Gateway, what: &str) {
    let out = cmd
        .current_dir(interop_dir())
        .output()
        .unwrap_or_else(|e| panic!("run the {what} client: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "{what} client failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}\ngateway stderr:\n{}",
        out.status,
        gw.stderr()
    );
    println!("{what}:\n{stdout}");
}

#[test]
#[ignore = "peers tier: needs Node 22, Python and the MCP SDKs from tests/interop (scripts/test.sh runs it)"]
fn python_sdk_client_through_the_gateway() {
    let (gw, _upstream) = gateway_with_three_upstreams();
    run_client(
        Command::new(venv_bin("python")).arg("py_client.py"),
        &gw,
        "Python SDK",
    );
}

#[test]
#[ignore = "peers tier: needs Node 22, Python and the MCP SDKs from tests/interop (scripts/test.sh runs it)"]
fn typescript_sdk_client_through_the_gateway() {
    let (gw, _upstream) = gateway_with_three_upstreams();
    run_client(
        Command::new(node_bin()).arg("ts_client.mjs"),
        &gw,
        "TypeScript SDK",
    );
}

/// The gateway in front of server-everything over stdio alone (a 2025-11-25 server).
fn gateway_with_a_legacy_upstream() -> Gateway {
    let gw = Gateway::start(
        "interop-modern",
        &format!(
            "[servers.everything]\ncommand = {}\nargs = [{}, \"stdio\"]\n",
            q(node_bin().display().to_string()),
            q(server_everything_js().display().to_string()),
        ),
    );
    gw.wait_ready(Duration::from_secs(60));
    gw
}

#[test]
#[ignore = "peers tier: needs Node 22, Python and the MCP SDKs from tests/interop (scripts/test.sh runs it)"]
fn python_sdk_in_2026_mode_through_the_gateway_to_a_legacy_server() {
    let gw = gateway_with_a_legacy_upstream();
    for mode in ["2026-07-28", "auto"] {
        run_script(
            Command::new(venv_bin("python")).args(["py_modern.py", &gw.url, "--mode", mode]),
            &gw,
            &format!("Python SDK, mode={mode}"),
        );
    }
}

#[test]
#[ignore = "peers tier: needs Node 22, Python and the MCP SDKs from tests/interop (scripts/test.sh runs it)"]
fn typescript_v2_client_with_version_negotiation_through_the_gateway() {
    let gw = gateway_with_a_legacy_upstream();
    for mode in ["auto", "pin"] {
        run_script(
            Command::new(node_bin()).args(["ts_modern.mjs", &gw.url, "--mode", mode]),
            &gw,
            &format!("TypeScript v2 client, versionNegotiation {mode}"),
        );
    }
}

/// The Python SDK's 2026-07-28 server (tests/interop/py_modern_server.py); returns it and its URL.
fn python_modern_server() -> (Proc, String) {
    let log = std::env::temp_dir().join(format!("py-modern-{}.log", std::process::id()));
    let mut child = Command::new(venv_bin("python"))
        .arg(interop_dir().join("py_modern_server.py"))
        .args(["--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start py_modern_server.py");
    let url = read_listening_line(&mut child, "py_modern_server.py", &log);
    (Proc { child }, url)
}

#[test]
#[ignore = "peers tier: needs Node 22, Python and the MCP SDKs from tests/interop (scripts/test.sh runs it)"]
fn a_2026_upstream_serves_clients_of_both_eras_and_the_cli() {
    let (_server, url) = python_modern_server();
    let gw = Gateway::start(
        "interop-modern-upstream",
        &format!("[servers.modern]\nurl = {}\n", q(url.clone())),
    );
    let h = gw.wait_ready(Duration::from_secs(30));
    let s = &h["servers"][0];
    assert_eq!(
        s["protocol_version"], "2026-07-28",
        "discovered, not initialized: {h:#}"
    );
    assert_eq!(s["server_name"], "py-modern", "{h:#}");
    run_script(
        Command::new(venv_bin("python")).args(["py_bridge.py", &gw.url]),
        &gw,
        "Python SDK (legacy and 2026-07-28) via a 2026-07-28 upstream",
    );
    // `mcpgate call` straight at the 2026-07-28 server: it works, and stores no session.
    let state = TempDir::new("cli-state-modern");
    let out = mcpgate_call(
        &state.0,
        &["--url", &url, "py", "echo", "--message", "stateless"],
    );
    assert_eq!(out.trim(), "stateless");
    let stored = files_in(&state.0);
    assert!(
        stored.is_empty(),
        "nothing to store for a stateless server: {stored:?}"
    );
}
