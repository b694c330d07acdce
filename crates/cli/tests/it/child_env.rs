//! What a stdio child gets and what its death says: the default passthrough
//! set (proxies, CA bundles, locale) and a server's `env_passthrough` reach
//! the child while everything else stays out; a child that dies while
//! starting has its last stderr lines in `check`'s table; and `npx -y`
//! behind `HTTPS_PROXY` really goes through the proxy (a local one that
//! records the request and answers 403), with npm's own error shown.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;

use crate::common::*;

fn check(dir: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(mcpgate_bin())
        .current_dir(dir)
        .args(["check", "--config", "mcpgate.toml"])
        .env("MCPGATE_STATE_DIR", dir.join("state"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn children_get_the_passthrough_set_and_nothing_else() {
    let dir = TempDir::new("child-env");
    let dump = dir.0.join("env.txt");
    std::fs::write(
        dir.0.join("mcpgate.toml"),
        format!(
            "[servers.fx]\ncommand = \"sh\"\nargs = [\"-c\", {}]\nenv_passthrough = [\"MY_TEAM_VAR\"]\n",
            q(format!(
                "env > {}; exec {} stdio",
                dump.display(),
                fixture_bin().display()
            ))
        ),
    )
    .unwrap();
    let (code, out, err) = check(
        &dir.0,
        &[
            ("HTTPS_PROXY", "http://127.0.0.1:9/"),
            ("NO_PROXY", "localhost"),
            ("NODE_EXTRA_CA_CERTS", "/etc/corp-ca.pem"),
            ("SSL_CERT_FILE", "/etc/corp-bundle.pem"),
            ("LANG", "C.UTF-8"),
            ("MY_TEAM_VAR", "passed"),
            ("NOT_PASSED_VAR", "kept out"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let env = std::fs::read_to_string(&dump).unwrap();
    for line in [
        "HTTPS_PROXY=http://127.0.0.1:9/",
        "NO_PROXY=localhost",
        "NODE_EXTRA_CA_CERTS=/etc/corp-ca.pem",
        "SSL_CERT_FILE=/etc/corp-bundle.pem",
        "LANG=C.UTF-8",
        "MY_TEAM_VAR=passed",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing:\n{env}");
    }
    assert!(!env.contains("NOT_PASSED_VAR"), "{env}");
    // A bad name is a config error naming the key.
    std::fs::write(
        dir.0.join("mcpgate.toml"),
        "[servers.fx]\ncommand = \"sh\"\nenv_passthrough = [\"A-B\"]\n",
    )
    .unwrap();
    let (code, _, err) = check(&dir.0, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("servers.fx.env_passthrough"), "{err}");
}

#[test]
fn a_child_that_dies_starting_shows_its_last_stderr_lines() {
    let dir = TempDir::new("child-dies");
    std::fs::write(
        dir.0.join("mcpgate.toml"),
        "[servers.broken]\ncommand = \"sh\"\nargs = [\"-c\", \"echo starting >&2; echo 'Error: Cannot find module @acme/mcp' >&2; exit 3\"]\nenv = { TOKEN = \"s3cr3t-value\" }\n",
    )
    .unwrap();
    let (code, out, err) = check(&dir.0, &[]);
    assert_eq!(code, 1, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("broken"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("starting | Error: Cannot find module @acme/mcp"),
        "{row}"
    );
    assert!(row.contains("exit status: 3"), "{row}");
}

#[test]
#[ignore = "peers tier: needs npx (Node) on PATH; the proxy is local and answers 403"]
fn npx_behind_a_proxy_variable_goes_through_the_proxy() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in proxy.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 2048];
            let n = conn.read(&mut buf).unwrap_or(0);
            let first = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let _ = tx.send(first);
            let _ = conn.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let dir = TempDir::new("npx-proxy");
    std::fs::write(
        dir.0.join("mcpgate.toml"),
        "[servers.npx]\ncommand = \"npx\"\nargs = [\"-y\", \"mcpgate-proxy-probe-does-not-exist\"]\nenv = { npm_config_fetch_retries = \"0\" }\n",
    )
    .unwrap();
    let proxy_url = format!("http://127.0.0.1:{port}");
    let (code, out, err) = check(
        &dir.0,
        &[
            ("HTTPS_PROXY", &proxy_url),
            ("HTTP_PROXY", &proxy_url),
            ("https_proxy", &proxy_url),
            ("http_proxy", &proxy_url),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    let seen = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("npm never reached the proxy");
    assert!(
        seen.starts_with("CONNECT ") || seen.contains("http"),
        "{seen}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("npx"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("403"), "npm's error is shown: {row}");
}
