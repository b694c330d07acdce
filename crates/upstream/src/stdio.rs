//! A stdio server: a child process speaking newline-delimited JSON-RPC. The
//! child gets a cleared environment: its configured variables, plus `PATH`,
//! `HOME` and the [`DEFAULT_ENV_PASSTHROUGH`] set (proxies, CA bundles,
//! locale) and its own `env_passthrough` names taken from the gateway's
//! environment when set there. It runs in its own process group so that
//! SIGTERM/SIGKILL reach grandchildren too (npx → node), and is always
//! reaped. Its stderr goes to the gateway log, tagged with the server name,
//! rate-limited, and with the server's configured `env` values masked (a child
//! may print its environment); the last lines are kept, and a child that dies
//! has them in the reason it closed, so a server that cannot start says why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgate_proto::Message;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use crate::error::UpstreamError;
use crate::routes::Routes;
use crate::spec::{TransportSpec, UpstreamSpec};
use mcpgate_proto::locks::lock;

/// Longest line we accept from a child before calling it broken (64 MiB).
const MAX_LINE: usize = 64 << 20;
/// stderr lines per second that reach the log before we start dropping.
const STDERR_LINES_PER_SEC: u32 = 20;
/// stderr lines kept for the error when the child dies, and their length cap.
const TAIL_LINES: usize = 8;
const TAIL_LINE_CHARS: usize = 300;
/// How long a closing child's stderr is given to reach its end.
const TAIL_WAIT: Duration = Duration::from_millis(500);

/// Variables every stdio child gets from the gateway's environment when set
/// there, besides `PATH` and `HOME`: what `npx`/`uvx` servers need behind a
/// corporate proxy or a private CA, and the locale.
pub const DEFAULT_ENV_PASSTHROUGH: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "LANG",
    "LC_ALL",
];

/// The last lines a child wrote on stderr (secrets masked), and whether its
/// stderr has ended.
struct StderrTail {
    lines: std::sync::Mutex<std::collections::VecDeque<String>>,
    ended: tokio::sync::watch::Receiver<bool>,
}

impl StderrTail {
    /// `reason`, followed by the last stderr lines once stderr has ended
    /// (waiting at most [`TAIL_WAIT`]).
    async fn explain(&self, reason: String) -> String {
        let mut ended = self.ended.clone();
        let _ = tokio::time::timeout(TAIL_WAIT, ended.wait_for(|e| *e)).await;
        let lines = lock(&self.lines);
        if lines.is_empty() {
            return reason;
        }
        let tail: Vec<&str> = lines.iter().map(String::as_str).collect();
        format!("{reason}; its last stderr lines: {}", tail.join(" | "))
    }
}

pub(crate) struct Stdio {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pid: Option<u32>,
    kill: std::sync::Mutex<Option<oneshot::Sender<Duration>>>,
    exited: tokio::sync::watch::Receiver<bool>,
}

impl Stdio {
    /// Starts the child; what it writes on stdout goes to `routes`, and its
    /// exit (or the end of its stdout) closes them.
    pub(crate) fn spawn(routes: &Arc<Routes>, spec: &UpstreamSpec) -> Result<Stdio, UpstreamError> {
        let TransportSpec::Stdio {
            command,
            args,
            env,
            env_passthrough,
            cwd,
        } = &spec.transport
        else {
            return Err(UpstreamError::Protocol {
                server: spec.name.clone(),
                detail: "not a stdio server".into(),
            });
        };
        let mut cmd = Command::new(command);
        cmd.args(args)
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let passed = ["PATH", "HOME"]
            .iter()
            .chain(DEFAULT_ENV_PASSTHROUGH)
            .copied()
            .chain(env_passthrough.iter().map(String::as_str));
        for key in passed {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(env);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| UpstreamError::Unreachable {
            server: spec.name.clone(),
            detail: format!("cannot start `{command}`: {e}"),
        })?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(UpstreamError::Unreachable {
                server: spec.name.clone(),
                detail: "child has no stdio pipes".into(),
            });
        };

        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(mut line) = rx.recv().await {
                line.push(b'\n');
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });

        let (tail_end_tx, tail_end_rx) = tokio::sync::watch::channel(false);
        let tail = Arc::new(StderrTail {
            lines: std::sync::Mutex::default(),
            ended: tail_end_rx,
        });
        let reader_routes = routes.clone();
        let reader_tail = tail.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut buf)
                    .await
                {
                    Ok(0) => break,
                    Ok(_) => {
                        if buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE {
                            tracing::error!(server = %reader_routes.name(), "line longer than {MAX_LINE} bytes on stdout");
                            break;
                        }
                        let line = trim_line(&buf);
                        if line.is_empty() {
                            continue;
                        }
                        match Message::parse(line) {
                            Ok(msg) => reader_routes.dispatch(msg, None),
                            Err(e) => tracing::warn!(
                                server = %reader_routes.name(),
                                "non-JSON-RPC line on stdout ignored: {}",
                                reader_routes.secrets().redact(&e.message())
                            ),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(server = %reader_routes.name(), "stdout read failed: {e}");
                        break;
                    }
                }
            }
            let reason = reader_tail
                .explain("the process closed its stdout".into())
                .await;
            // Give the reaper a moment to report the exit status, which says more.
            tokio::time::sleep(Duration::from_millis(50)).await;
            reader_routes.mark_closed(reason);
        });

        let name = spec.name.clone();
        let secrets = routes.secrets().clone();
        let stderr_tail = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut window = Instant::now();
            let (mut count, mut dropped) = (0u32, 0u64);
            while let Ok(Some(line)) = lines.next_line().await {
                if window.elapsed() >= Duration::from_secs(1) {
                    if dropped > 0 {
                        tracing::warn!(server = %name, "stderr: {dropped} lines dropped (rate limit)");
                    }
                    window = Instant::now();
                    count = 0;
                    dropped = 0;
                }
                count += 1;
                let line = secrets.redact(&line);
                if count <= STDERR_LINES_PER_SEC {
                    tracing::info!(server = %name, "stderr: {line}");
                } else {
                    dropped += 1;
                }
                let line = line.trim();
                if !line.is_empty() {
                    let mut kept = lock(&stderr_tail.lines);
                    if kept.len() == TAIL_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line.chars().take(TAIL_LINE_CHARS).collect());
                }
            }
            let _ = tail_end_tx.send(true);
        });

        let (kill_tx, kill_rx) = oneshot::channel::<Duration>();
        let (exited_tx, exited_rx) = tokio::sync::watch::channel(false);
        let reaper_routes = routes.clone();
        tokio::spawn(async move {
            let status = reap(&mut child, pid, kill_rx).await;
            let _ = exited_tx.send(true);
            reaper_routes.mark_closed(tail.explain(status).await);
        });

        Ok(Stdio {
            tx,
            pid,
            kill: std::sync::Mutex::new(Some(kill_tx)),
            exited: exited_rx,
        })
    }

    pub(crate) fn send(&self, bytes: Vec<u8>) -> Result<(), ()> {
        self.tx.send(bytes).map_err(|_| ())
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// SIGTERM to the process group, SIGKILL after `grace`; returns once reaped.
    pub(crate) async fn terminate(&self, grace: Duration) {
        let kill = lock(&self.kill).take();
        if let Some(k) = kill {
            let _ = k.send(grace);
        }
        let mut exited = self.exited.clone();
        let _ = tokio::time::timeout(grace + Duration::from_secs(2), exited.wait_for(|e| *e)).await;
    }
}

/// Waits for the child to exit, or terminates it when asked; always reaps.
async fn reap(child: &mut Child, pid: Option<u32>, kill_rx: oneshot::Receiver<Duration>) -> String {
    let describe = |s: std::io::Result<std::process::ExitStatus>| match s {
        Ok(s) => format!("the process exited ({s})"),
        Err(e) => format!("the process could not be waited for: {e}"),
    };
    tokio::select! {
        s = child.wait() => {
            // The leader is gone; make sure nothing it started outlives it.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            }
            describe(s)
        }
        grace = kill_rx => {
            let grace = grace.unwrap_or(Duration::from_secs(1));
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            }
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(s) => describe(s),
                Err(_) => {
                    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    let _ = child.start_kill();
                    describe(child.wait().await)
                }
            }
        }
    }
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && (buf[end - 1] == b'\n' || buf[end - 1] == b'\r') {
        end -= 1;
    }
    &buf[..end]
}
