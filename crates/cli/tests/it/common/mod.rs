//! Shared harness for the integration tests: starts real processes (the
//! `mcpgate` binary, the Rust fixture, the reference servers) on port 0 and
//! reads their addresses back, so tests run in parallel. Everything is killed
//! on drop. Real peers come from `scripts/install-test-deps.sh`; when they are
//! missing a test fails with a message saying so, it never skips silently.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn mcpgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcpgate"))
}

/// The Rust fixture server, built by `cargo build --workspace` next to `mcpgate`.
pub fn fixture_bin() -> PathBuf {
    must_exist(
        mcpgate_bin().with_file_name("mcpgate-fixture"),
        "build the workspace first (`cargo build --workspace`, which scripts/test.sh does)",
    )
}

/// The load generator `mcpgate-bench`, built by `cargo build --workspace`
/// next to `mcpgate`.
pub fn bench_bin() -> PathBuf {
    must_exist(
        mcpgate_bin().with_file_name("mcpgate-bench"),
        "build the workspace first (`cargo build --workspace`, which scripts/test.sh does)",
    )
}

/// `p`, after asserting it exists (else: "P is missing: HINT").
fn must_exist(p: PathBuf, hint: &str) -> PathBuf {
    assert!(p.exists(), "{} is missing: {hint}", p.display());
    p
}

pub fn interop_dir() -> PathBuf {
    repo_root().join("tests/interop")
}

/// Node 22 from npm's node@22, installed by scripts/install-test-deps.sh.
pub fn node_bin() -> PathBuf {
    must_exist(
        interop_dir().join("node_modules/.bin/node"),
        "Node 22 is not installed; run scripts/install-test-deps.sh",
    )
}

pub fn venv_bin(name: &str) -> PathBuf {
    must_exist(
        interop_dir().join(".venv/bin").join(name),
        "run scripts/install-test-deps.sh",
    )
}

pub fn server_everything_js() -> PathBuf {
    must_exist(
        interop_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        "run scripts/install-test-deps.sh",
    )
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n: u64 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("mcpgate-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGTERM, then SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// A running gateway.
pub struct Gateway {
    pub url: String,
    pub base: String,
    pub proc: Proc,
    pub dir: TempDir,
    pub stderr_path: PathBuf,
}

impl Gateway {
    /// Starts `mcpgate serve` with this config text (listen is forced to 127.0.0.1:0).
    pub fn start(tag: &str, config: &str) -> Gateway {
        Gateway::start_with_env(tag, config, &[])
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// GET /health as JSON.
    pub fn health(&self) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5"])
            .arg(format!("{}/health", self.base))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).expect("health is JSON")
    }

    /// Waits until /health shows every server ready (or panics with the health JSON).
    pub fn wait_ready(&self, timeout: Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let h = self.health();
            if h["status"] == "ok" {
                return h;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "gateway not ready after {timeout:?}: {h:#}\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads the child's stdout until `listening on URL`, with a timeout.
pub fn read_listening_line(child: &mut Child, what: &str, stderr_path: &Path) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => url,
        Err(_) => panic!(
            "{what} did not print 'listening on URL' within 30 s; stderr:\n{}",
            std::fs::read_to_string(stderr_path).unwrap_or_default()
        ),
    }
}

/// Starts the Rust fixture over HTTP; returns it and its /mcp URL.
pub fn fixture_http(extra: &[&str]) -> (Proc, String) {
    let dir = std::env::temp_dir();
    let stderr_path = dir.join(format!(
        "fixture-{}-{:?}.log",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut child = Command::new(fixture_bin())
        .args(extra)
        .args(["http", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fixture");
    let url = read_listening_line(&mut child, "mcpgate-fixture", &stderr_path);
    (Proc { child }, url)
}

/// Starts @modelcontextprotocol/server-everything in `mode` (`streamableHttp`
/// or `sse`) on a free port and waits until it listens; returns it and its port.
pub fn server_everything(mode: &str) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(node_bin())
        .arg(server_everything_js())
        .arg(mode)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server-everything");
    let server = Proc { child };
    wait_port(port, Duration::from_secs(30));
    (server, port)
}

/// Runs `mcpgate call ARGS` with its state in `state_dir`; it must succeed.
/// Returns stdout.
pub fn mcpgate_call(state_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(mcpgate_bin())
        .arg("call")
        .args(args)
        .env("MCPGATE_STATE_DIR", state_dir)
        .output()
        .expect("run mcpgate call");
    assert!(
        out.status.success(),
        "mcpgate call {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files in a directory (none when it does not exist).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1 (for servers that cannot take port 0).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Waits until something accepts TCP connections on the port.
pub fn wait_port(port: u16, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP client for the gateway's JSON APIs, giving up after `timeout`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
}

/// TOML string literal.
pub fn q(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).expect("string")
}

/// A `[servers.NAME]` table running the Rust fixture over stdio, plus `extra` keys.
pub fn fixture_server(name: &str, extra: &str) -> String {
    format!(
        "\n[servers.{name}]\ncommand = {}\nargs = [\"stdio\"]\n{extra}\n",
        q(fixture_bin().display().to_string())
    )
}

impl Gateway {
    /// Like [`Gateway::start`], with extra environment variables for the
    /// gateway process (e.g. the secrets a config's `auth` / `${VAR}` refer to;
    /// `RUST_LOG` here overrides the default `info`).
    pub fn start_with_env(tag: &str, config: &str, env: &[(&str, &str)]) -> Gateway {
        Gateway::start_with_args(tag, config, &[], env)
    }

    /// Like [`Gateway::start_with_env`], with extra `serve` arguments
    /// (e.g. `--log-format json`).
    pub fn start_with_args(
        tag: &str,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = TempDir::new(tag);
        let cfg = dir.0.join("mcpgate.toml");
        std::fs::write(&cfg, config).expect("write config");
        let stderr_path = dir.0.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(mcpgate_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn mcpgate");
        let url = read_listening_line(&mut child, "mcpgate", &stderr_path);
        let base = url.trim_end_matches("/mcp").to_owned();
        Gateway {
            url,
            base,
            proc: Proc { child },
            dir,
            stderr_path,
        }
    }

    /// The config file the gateway was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.0.join("mcpgate.toml")
    }
}

pub mod admin;
pub mod client;
pub mod mock_kube;
pub mod mock_upstream;
pub mod postgres;
pub mod runs;
pub mod webdriver;

/// POSTs one JSON-RPC message with curl (a client outside this process and
/// crate); returns the HTTP status and the raw response, headers included.
pub fn curl_post(url: &str, session: Option<&str>, body: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-i",
        "--max-time",
        "20",
        "-H",
        "content-type: application/json",
    ])
    .args([
        "-H",
        "accept: application/json, text/event-stream",
        "-H",
        "mcp-protocol-version: 2025-11-25",
    ]);
    if let Some(s) = session {
        cmd.args(["-H", &format!("mcp-session-id: {s}")]);
    }
    let out = cmd.args(["-d", body, url]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The `mcp-session-id` header of a raw response.
pub fn session_header(resp: &str) -> String {
    resp.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("mcp-session-id")
                .then(|| v.trim().to_owned())
        })
        .expect("an mcp-session-id header")
}
