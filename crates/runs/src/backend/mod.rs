//! Run backends: where a prepared run executes. [`Backend`] is a closed enum
//! with one file per variant: [`Backend::Local`] (bubblewrap on this machine,
//! the default) and [`Backend::Unsandboxed`] (a plain process group, only
//! when configured explicitly); a Kubernetes Jobs backend will be a third
//! variant. Every backend starts the same first process, `sandbox-init`
//! ([`crate::relay`]), which sets the rlimits, serves the relays and runs the
//! agent, and every backend hands back a `Launched`: the output as
//! timestamped lines, the exit code, and a kill that ends every process of
//! the run.
//!
//! This module also owns what is common to both local backends: laying out
//! the run directory (`workspace/`, `home/` with the adapter's files) and
//! reading stdout and stderr line by line, with a cap on line length.

pub mod kubernetes;
pub(crate) mod local;
pub(crate) mod unsandboxed;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub use kubernetes::{KubernetesBackend, KubernetesConfig};
use kubernetes::{RemoteEnd, StopSignal};
pub use local::LocalSandbox;
pub use unsandboxed::Unsandboxed;

use crate::limits::Limits;
use crate::relay::{CliTools, RelaySpec, SandboxInitArgs};
use crate::run::{Stream, now_ms};

/// Longest output line kept whole; longer lines are split.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// How to start `sandbox-init`: a program and the arguments before its own,
/// such as `mcpgate` + `["sandbox-init"]`, or `mcpgate-sandbox-init` + `[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProgram {
    /// The executable (an absolute path).
    pub program: PathBuf,
    /// Arguments that select the subcommand.
    pub args: Vec<String>,
}

/// Why a backend cannot be used or cannot start a run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The sandbox cannot be used on this host: runs are refused.
    #[error("{0}")]
    Unavailable(String),
    /// The run directory could not be prepared.
    #[error("cannot prepare the run directory {path}: {source}")]
    Prepare {
        /// The path that failed.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The first process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The failure.
        source: io::Error,
    },
}

/// Where a run executes.
#[derive(Debug)]
pub enum Backend {
    /// bubblewrap on this machine: new user, pid, ipc, uts and network
    /// namespaces, read-only system directories, only the gateway reachable.
    Local(LocalSandbox),
    /// A plain process group with no isolation, when `[runs] backend =
    /// "unsandboxed"` says so; every run logs a warning.
    Unsandboxed(Unsandboxed),
    /// Kubernetes Jobs on a cluster (`[runs.kubernetes]`): runs outlive the
    /// gateway and are re-attached after a restart.
    Kubernetes(Box<KubernetesBackend>),
}

/// A file the adapter writes into the run's home before it starts.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RunFile {
    /// Relative to the run's home directory.
    pub(crate) path: PathBuf,
    pub(crate) contents: Vec<u8>,
    /// 0o600 for anything holding the run key.
    pub(crate) mode: u32,
}

impl std::fmt::Debug for RunFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Contents may hold the run key: never print them.
        write!(
            f,
            "RunFile({}, {} bytes)",
            self.path.display(),
            self.contents.len()
        )
    }
}

/// Where the agent sees its home and workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxPaths {
    pub(crate) home: PathBuf,
    pub(crate) workspace: PathBuf,
}

/// A relay from a port inside the sandbox to a socket on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRelay {
    /// The port on `127.0.0.1` inside the sandbox.
    pub port: u16,
    /// The Unix socket on the host it leads to (the gateway's).
    pub socket: PathBuf,
}

/// Everything a backend needs to launch one run.
#[derive(Debug, Clone)]
pub(crate) struct LaunchSpec {
    pub(crate) run_id: String,
    /// Holds `workspace/` and `home/` (created by [`prepare_run_dir`]).
    pub(crate) run_dir: PathBuf,
    pub(crate) argv: Vec<String>,
    /// The agent's whole environment (nothing is inherited from the gateway).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) files: Vec<RunFile>,
    pub(crate) relays: Vec<HostRelay>,
    /// Host paths made visible read-only at the same path (agent binaries).
    pub(crate) ro_paths: Vec<PathBuf>,
    pub(crate) limits: Limits,
    /// The run's tools as shell commands, mounted by `sandbox-init`.
    pub(crate) cli_tools: Option<CliTools>,
}

impl LaunchSpec {
    pub(crate) fn workspace_dir(&self) -> PathBuf {
        self.run_dir.join("workspace")
    }

    pub(crate) fn home_dir(&self) -> PathBuf {
        self.run_dir.join("home")
    }
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutputLine {
    pub(crate) stream: Stream,
    /// When it was read (ms since the Unix epoch).
    pub(crate) at: u64,
    pub(crate) line: String,
}

impl Backend {
    /// The bubblewrap backend, after checking that bubblewrap can create a
    /// sandbox here; otherwise an error saying why and what to do.
    pub async fn local(config: local::LocalConfig) -> Result<Backend, BackendError> {
        Ok(Backend::Local(LocalSandbox::probe(config).await?))
    }

    /// The unsandboxed backend.
    pub fn unsandboxed(init: InitProgram) -> Backend {
        Backend::Unsandboxed(Unsandboxed::new(init))
    }

    /// The Kubernetes Jobs backend, connected to the cluster.
    pub async fn kubernetes(config: KubernetesConfig) -> Result<Backend, BackendError> {
        let backend = KubernetesBackend::connect(config).await?;
        Ok(Backend::Kubernetes(Box::new(backend)))
    }

    /// `local`, `unsandboxed` or `kubernetes`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Local(_) => "local",
            Backend::Unsandboxed(_) => "unsandboxed",
            Backend::Kubernetes(_) => "kubernetes",
        }
    }

    /// Whether runs are isolated from the host.
    pub fn is_sandboxed(&self) -> bool {
        matches!(self, Backend::Local(_) | Backend::Kubernetes(_))
    }

    /// Where the agent will see its home and workspace.
    pub(crate) fn paths(&self, run_dir: &Path) -> SandboxPaths {
        match self {
            Backend::Local(_) => local::paths(),
            Backend::Kubernetes(_) => SandboxPaths {
                home: PathBuf::from("/home/run"),
                workspace: PathBuf::from("/workspace"),
            },
            Backend::Unsandboxed(_) => SandboxPaths {
                home: run_dir.join("home"),
                workspace: run_dir.join("workspace"),
            },
        }
    }

    /// Prepares the run directory and starts the run.
    pub(crate) async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, BackendError> {
        prepare_run_dir(spec)?;
        tracing::debug!(run = %spec.run_id, backend = self.kind(), argv0 = ?spec.argv.first(), "launching");
        match self {
            Backend::Local(sandbox) => sandbox.launch(spec),
            Backend::Unsandboxed(plain) => plain.launch(spec),
            Backend::Kubernetes(_) => Err(BackendError::Unavailable(
                "a Kubernetes run is launched from its pod spec, not a local command".into(),
            )),
        }
    }
}

/// The `sandbox-init` arguments for a spec, given the socket paths as the
/// first process will see them.
pub(crate) fn init_args(spec: &LaunchSpec, sockets: &[PathBuf]) -> Vec<String> {
    SandboxInitArgs {
        relays: spec
            .relays
            .iter()
            .zip(sockets)
            .map(|(relay, socket)| RelaySpec {
                port: relay.port,
                socket: socket.clone(),
            })
            .collect(),
        limits: spec.limits,
        cli_tools: spec.cli_tools.clone(),
        argv: spec.argv.clone(),
    }
    .to_args()
}

/// Creates `workspace/` and `home/` and writes the adapter's files into home.
pub(crate) fn prepare_run_dir(spec: &LaunchSpec) -> Result<(), BackendError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| BackendError::Prepare { path, source }
    };
    for dir in [spec.workspace_dir(), spec.home_dir()] {
        fs::create_dir_all(&dir).map_err(err(&dir))?;
    }
    for file in &spec.files {
        let path = spec.home_dir().join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err(parent))?;
        }
        fs::write(&path, &file.contents).map_err(err(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode)).map_err(err(&path))?;
    }
    Ok(())
}

/// A started run: a process group on this machine, or a Job on a cluster.
#[derive(Debug)]
pub(crate) struct Launched {
    what: Started,
    output: Option<mpsc::Receiver<OutputLine>>,
    /// How a remote run ended when that was not the agent's exit.
    ending: Option<RemoteEnd>,
}

#[derive(Debug)]
enum Started {
    Process {
        child: Child,
        pgid: Pid,
        graceful: bool,
        exited: bool,
    },
    Remote {
        end: Option<tokio::sync::oneshot::Receiver<RemoteEnd>>,
        stop: StopSignal,
    },
}

/// Kills a launched run's processes without borrowing the [`Launched`].
/// Only while its leader is not yet reaped (so the group id cannot have been
/// reused).
#[derive(Debug, Clone)]
pub(crate) enum Killer {
    Process {
        pgid: Pid,
        /// SIGTERM to `sandbox-init` first, which kills every descendant (even
        /// one that left the process group); for backends without a PID namespace.
        graceful: bool,
    },
    /// Deletes the run's Job (foreground propagation).
    Remote(StopSignal),
}

impl Killer {
    /// Starts stopping the run: SIGKILL to the process group, or for a
    /// graceful backend SIGTERM to `sandbox-init` (follow with [`Killer::kill`]
    /// after [`STOP_GRACE`] if it has not exited); for a remote run, deletes
    /// its Job.
    pub(crate) fn stop(&self) {
        match self {
            Killer::Process { pgid, graceful } => {
                if *graceful && pgid.as_raw() > 0 {
                    let _ = nix::sys::signal::kill(*pgid, Signal::SIGTERM);
                } else {
                    self.kill();
                }
            }
            Killer::Remote(stop) => stop.stop(),
        }
    }

    /// SIGKILL to the run's process group (nothing more for a remote run).
    pub(crate) fn kill(&self) {
        if let Killer::Process { pgid, .. } = self
            && pgid.as_raw() > 0
        {
            let _ = killpg(*pgid, Signal::SIGKILL);
        }
    }
}

/// How long `sandbox-init` gets to kill the run's processes itself.
pub(crate) const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl Launched {
    /// Starts `command` in its own process group with its output piped;
    /// `graceful`: see [`Killer`].
    pub(crate) fn spawn(
        mut command: Command,
        program: &str,
        graceful: bool,
    ) -> Result<Launched, BackendError> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| BackendError::Spawn {
            program: program.to_owned(),
            source,
        })?;
        let pid = child.id().unwrap_or(0) as i32;
        let (tx, rx) = mpsc::channel(1024);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(read_lines(out, Stream::Stdout, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_lines(err, Stream::Stderr, tx));
        }
        Ok(Launched {
            what: Started::Process {
                child,
                pgid: Pid::from_raw(pid),
                graceful,
                exited: false,
            },
            output: Some(rx),
            ending: None,
        })
    }

    /// A run followed on a cluster.
    pub(crate) fn remote(run: kubernetes::RemoteRun) -> Launched {
        Launched {
            what: Started::Remote {
                end: Some(run.end),
                stop: run.stop,
            },
            output: Some(run.output),
            ending: None,
        }
    }

    /// Whether the run lives outside this gateway (and so outlives it).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.what, Started::Remote { .. })
    }

    /// stdout and stderr, line by line, closed when both reach EOF (once;
    /// later calls get a closed channel).
    pub(crate) fn take_output(&mut self) -> mpsc::Receiver<OutputLine> {
        self.output.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    /// A handle that kills the run while [`Launched::wait`] is pending.
    pub(crate) fn killer(&self) -> Killer {
        match &self.what {
            Started::Process { pgid, graceful, .. } => Killer::Process {
                pgid: *pgid,
                graceful: *graceful,
            },
            Started::Remote { stop, .. } => Killer::Remote(stop.clone()),
        }
    }

    /// Waits for the first process to exit; its exit code (128 + N for signal N).
    /// Then kills whatever is left in its process group. A remote run that
    /// ended other than by the agent's exit gives -1 and says how in
    /// [`Launched::ending`].
    pub(crate) async fn wait(&mut self) -> i32 {
        let status = match &mut self.what {
            Started::Process { child, .. } => child.wait().await,
            Started::Remote { end, .. } => {
                let got = match end.take() {
                    Some(end) => end
                        .await
                        .unwrap_or(RemoteEnd::Failed("lost track of the run's Job".into())),
                    None => RemoteEnd::Failed("the run was already waited for".into()),
                };
                return match got {
                    RemoteEnd::Exited(code) => code,
                    other => {
                        self.ending = Some(other);
                        -1
                    }
                };
            }
        };
        self.kill();
        if let Started::Process { exited, .. } = &mut self.what {
            *exited = true;
        }
        match status {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(-1)
            }
            Err(_) => -1,
        }
    }

    /// How a remote run ended when it was not the agent's own exit.
    pub(crate) fn ending(&self) -> Option<&RemoteEnd> {
        self.ending.as_ref()
    }

    /// Kills every process of the run: SIGKILL to the process group (for the
    /// local sandbox, bwrap's death takes the whole PID namespace with it).
    /// A remote run is left alone (it outlives the gateway).
    pub(crate) fn kill(&self) {
        if let Started::Process {
            pgid,
            exited: false,
            ..
        } = &self.what
            && pgid.as_raw() > 0
        {
            let _ = killpg(*pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads lines (split at [`MAX_LINE_BYTES`]) and sends them, timestamped.
async fn read_lines<R: AsyncRead + Unpin>(reader: R, stream: Stream, tx: mpsc::Sender<OutputLine>) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_capped_line(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = OutputLine {
            stream,
            at: now_ms(),
            line: String::from_utf8_lossy(&buf).into_owned(),
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

/// Reads up to and including `\n`, or `max` bytes, whichever comes first.
async fn read_capped_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read);
        }
        let room = max - buf.len();
        let (take, done) = match available.iter().take(room).position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => {
                let take = available.len().min(room);
                (take, buf.len() + take >= max)
            }
        };
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        read += take;
        if done {
            return Ok(read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_at_newlines_and_at_the_cap() {
        let data: &[u8] = b"one\ntwo\r\n0123456789abc\n\nlast";
        let mut reader = BufReader::with_capacity(4, data);
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = read_capped_line(&mut reader, &mut buf, 10)
                .await
                .expect("reads");
            if n == 0 {
                break;
            }
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        assert_eq!(
            lines,
            ["one\n", "two\r\n", "0123456789", "abc\n", "\n", "last"]
        );
    }

    #[tokio::test]
    async fn a_launched_command_reports_lines_and_exit_code() {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let mut launched = Launched::spawn(command, "sh", false).expect("spawns");
        let mut output = launched.take_output();
        let code = launched.wait().await;
        let mut lines = Vec::new();
        while let Some(line) = output.recv().await {
            lines.push((line.stream, line.line));
        }
        lines.sort_by_key(|(s, _)| *s == Stream::Stderr);
        assert_eq!(code, 3);
        assert_eq!(
            lines,
            [
                (Stream::Stdout, "out".to_owned()),
                (Stream::Stderr, "err".to_owned())
            ]
        );
    }

    #[test]
    fn run_files_never_print_their_contents() {
        let file = RunFile {
            path: "mcp.json".into(),
            contents: b"Bearer secret-key".to_vec(),
            mode: 0o600,
        };
        assert!(!format!("{file:?}").contains("secret"));
    }
}
