//! The sandbox's first process (`mcpgate sandbox-init`, hidden; also built as
//! `mcpgate-sandbox-init` for tests). Inside the sandbox's network namespace
//! there is only loopback, so the agent reaches the gateway through this
//! relay: it listens on `127.0.0.1:PORT` and forwards each connection to a
//! Unix socket the backend bound in from outside. The agent keeps ordinary
//! URLs (`http://127.0.0.1:PORT/mcp`) and can reach nothing else.
//!
//! In order, [`sandbox_init`]: binds every relay port (so the agent's first
//! request cannot race it), becomes a child subreaper (so orphans of the
//! agent come back to it), sets the run's rlimits on itself (inherited by
//! everything it starts), starts the agent with the inherited stdio, reaps
//! children, and when the agent exits kills every remaining descendant and
//! returns the agent's exit code (128 + N for signal N). SIGTERM, SIGINT or
//! SIGHUP stop the run: the agent and every descendant are killed at once
//! (this is how the unsandboxed backend cancels; without a PID namespace only
//! the subreaper can find a process that left the group). It prints nothing to stdout itself: the agent's
//! stdout is the run's output. Its own messages go to stderr, prefixed
//! `mcpgate sandbox-init:`. Its own failures exit 125 (setup), 126 (the agent
//! cannot be executed) or 127 (the agent's program does not exist).
//!
//! Facts learnt running Claude Code 2.1.332 this way (bubblewrap 0.8, new
//! user/pid/ipc/uts/net namespaces, `--uid 1000`, caps dropped): it is one
//! native executable (no Node needed at run time) and runs headless with
//! only `/usr`, a writable `HOME` and this relay; a tool round trip against a
//! local model takes about 1.5 s; it needs no `/etc` beyond `ld.so.cache` and
//! CA certificates; an address-space limit of 2 GiB is enough.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::net::{TcpListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

use crate::limits::Limits;

/// Exit code of a failure of `sandbox-init` itself (bad args, cannot bind).
pub const EXIT_SETUP: i32 = 125;
/// Exit code when the agent's program exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit code when the agent's program does not exist.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Most relayed connections open at once.
const MAX_CONNECTIONS: usize = 256;

/// One relay: a loopback port inside the sandbox to a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySpec {
    /// The port on `127.0.0.1` inside the sandbox.
    pub port: u16,
    /// The socket's path as the sandbox sees it.
    pub socket: PathBuf,
}

/// A workflow's `cli_tools = true`: before the agent starts, the run's tools
/// are mounted as shell commands (`mcpgate mount`, through the relay, with
/// the run key) into `dir`, the agent prompt section describing them is
/// written to `prompt_file`, and, when `append_to_arg` names an argv index
/// (the agent's system prompt or prompt), that section is appended to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliTools {
    /// Where the commands go (the adapter puts it first on `PATH`).
    pub dir: PathBuf,
    /// Where the prompt section goes.
    pub prompt_file: PathBuf,
    /// The argv element the prompt section is appended to.
    pub append_to_arg: Option<usize>,
}

/// Mounts the run's tools as commands: `mcpgate mount` run in-process by the
/// `mcpgate sandbox-init` subcommand once the relays are up. `Err` is a
/// message for the run's log.
pub type MountTools =
    Box<dyn FnOnce(CliTools) -> Pin<Box<dyn Future<Output = Result<(), String>>>>>;

/// The arguments of `sandbox-init`:
/// `[--relay PORT=SOCKET]... [--limit-* N]... [--cli-tools DIR --tools-prompt FILE
/// [--append-tools-prompt N]] -- PROGRAM [ARGS]...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInitArgs {
    /// The relays to serve.
    pub relays: Vec<RelaySpec>,
    /// The rlimits to set before starting the agent.
    pub limits: Limits,
    /// The run's tools as shell commands, when the workflow asks for them.
    pub cli_tools: Option<CliTools>,
    /// The agent's argv.
    pub argv: Vec<String>,
}

/// The usage line, for error messages.
pub const USAGE: &str = "usage: sandbox-init [--relay PORT=SOCKET]... [--limit-as|--limit-nproc|--limit-cpu|\
     --limit-fsize|--limit-nofile N]... [--cli-tools DIR --tools-prompt FILE [--append-tools-prompt N]] \
     -- PROGRAM [ARGS]...";

impl SandboxInitArgs {
    /// Parses the arguments after the subcommand's name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<SandboxInitArgs, String> {
        let mut out = SandboxInitArgs {
            relays: Vec::new(),
            limits: Limits::none(),
            cli_tools: None,
            argv: Vec::new(),
        };
        let (mut tools_dir, mut tools_prompt, mut append_to) = (None, None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--" {
                out.argv = args.collect();
                break;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") && f != "--relay" => {
                    (f.to_owned(), Some(v.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
            };
            if flag == "--relay" {
                let v = value()?;
                let (port, socket) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--relay {v:?}: write PORT=SOCKET"))?;
                let port: u16 =
                    port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                        format!("--relay {v:?}: {port:?} is not a port (1-65535)")
                    })?;
                if socket.is_empty() {
                    return Err(format!("--relay {v:?}: the socket path is empty"));
                }
                out.relays.push(RelaySpec {
                    port,
                    socket: PathBuf::from(socket),
                });
            } else if flag.starts_with("--limit-") {
                let v = value()?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("{flag} {v:?}: not a whole number"))?;
                if !out.limits.set_from_flag(&flag, n) {
                    return Err(format!("unknown flag {flag}; {USAGE}"));
                }
            } else if flag == "--cli-tools" {
                tools_dir = Some(PathBuf::from(value()?));
            } else if flag == "--tools-prompt" {
                tools_prompt = Some(PathBuf::from(value()?));
            } else if flag == "--append-tools-prompt" {
                let v = value()?;
                append_to = Some(
                    v.parse::<usize>()
                        .map_err(|_| format!("{flag} {v:?}: not an argv index"))?,
                );
            } else {
                return Err(format!("unknown argument {arg:?}; {USAGE}"));
            }
        }
        if out.argv.is_empty() {
            return Err(format!("no program to run after `--`; {USAGE}"));
        }
        out.cli_tools = match (tools_dir, tools_prompt, append_to) {
            (None, None, None) => None,
            (Some(dir), Some(prompt_file), append_to_arg) => {
                if append_to_arg.is_some_and(|i| i == 0 || i >= out.argv.len()) {
                    return Err(format!(
                        "--append-tools-prompt: the agent's argv has no argument {}",
                        append_to_arg.unwrap_or_default()
                    ));
                }
                Some(CliTools {
                    dir,
                    prompt_file,
                    append_to_arg,
                })
            }
            _ => {
                return Err(format!(
                    "--cli-tools and --tools-prompt go together; {USAGE}"
                ));
            }
        };
        Ok(out)
    }

    /// The arguments that [`SandboxInitArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for relay in &self.relays {
            out.push("--relay".to_owned());
            out.push(format!("{}={}", relay.port, relay.socket.display()));
        }
        out.extend(self.limits.to_args());
        if let Some(tools) = &self.cli_tools {
            out.push("--cli-tools".to_owned());
            out.push(tools.dir.display().to_string());
            out.push("--tools-prompt".to_owned());
            out.push(tools.prompt_file.display().to_string());
            if let Some(i) = tools.append_to_arg {
                out.push("--append-tools-prompt".to_owned());
                out.push(i.to_string());
            }
        }
        out.push("--".to_owned());
        out.extend(self.argv.iter().cloned());
        out
    }
}

fn say(message: impl std::fmt::Display) {
    eprintln!("mcpgate sandbox-init: {message}");
}

/// Runs the sandbox's first process; returns the exit code to exit with.
/// Call it on a Tokio runtime with I/O and signals enabled. `mount` serves a
/// workflow's `cli_tools`; without it such a run fails at setup.
pub async fn sandbox_init(mut args: SandboxInitArgs, mount: Option<MountTools>) -> i32 {
    let mut listeners = Vec::with_capacity(args.relays.len());
    for relay in &args.relays {
        match TcpListener::bind(("127.0.0.1", relay.port)).await {
            Ok(listener) => listeners.push((listener, relay.socket.clone())),
            Err(e) => {
                say(format_args!(
                    "cannot listen on 127.0.0.1:{}: {e}",
                    relay.port
                ));
                return EXIT_SETUP;
            }
        }
    }
    // Orphans of the agent are re-parented here, so they can be found and reaped.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        say(format_args!("cannot become a child subreaper: {e}"));
    }
    if let Err(e) = args.limits.apply() {
        say(e);
        return EXIT_SETUP;
    }
    let signals = [
        SignalKind::child(),
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ]
    .map(signal);
    let [Ok(mut children), Ok(mut term), Ok(mut int), Ok(mut hup)] = signals else {
        say("cannot install signal handlers");
        return EXIT_SETUP;
    };
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let relays: Vec<_> = listeners
        .into_iter()
        .map(|(listener, socket)| tokio::spawn(serve_relay(listener, socket, permits.clone())))
        .collect();
    if let Some(tools) = args.cli_tools.clone()
        && let Err(message) = mount_tools(tools, mount, &mut args.argv).await
    {
        say(message);
        for relay in relays {
            relay.abort();
        }
        return EXIT_SETUP;
    }
    let agent = match std::process::Command::new(&args.argv[0])
        .args(&args.argv[1..])
        .spawn()
    {
        Ok(child) => Pid::from_raw(child.id() as i32),
        Err(e) => {
            say(format_args!("cannot start {:?}: {e}", args.argv[0]));
            return match e.kind() {
                io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                _ => EXIT_CANNOT_EXECUTE,
            };
        }
    };
    let code = loop {
        if let Some(code) = reap(agent) {
            break code;
        }
        let stop = tokio::select! {
            _ = children.recv() => None,
            _ = term.recv() => Some(Signal::SIGTERM),
            _ = int.recv() => Some(Signal::SIGINT),
            _ = hup.recv() => Some(Signal::SIGHUP),
        };
        if let Some(sig) = stop {
            // The run is being stopped: everything goes, now.
            let _ = kill(agent, Signal::SIGKILL);
            break 128 + sig as i32;
        }
    };
    for relay in relays {
        relay.abort();
    }
    kill_descendants().await;
    code
}

/// Mounts the run's tools and appends the prompt section to the agent's argv.
async fn mount_tools(
    tools: CliTools,
    mount: Option<MountTools>,
    argv: &mut [String],
) -> Result<(), String> {
    let mount = mount.ok_or(
        "cli_tools = true needs the `mcpgate sandbox-init` subcommand (this first process cannot mount tools)",
    )?;
    let (prompt_file, append_to) = (tools.prompt_file.clone(), tools.append_to_arg);
    mount(tools)
        .await
        .map_err(|e| format!("cannot mount the run's tools as commands: {e}"))?;
    if let Some(arg) = append_to.and_then(|i| argv.get_mut(i)) {
        let section = std::fs::read_to_string(&prompt_file)
            .map_err(|e| format!("cannot read {}: {e}", prompt_file.display()))?;
        if !arg.is_empty() {
            arg.push_str("\n\n");
        }
        arg.push_str(section.trim_end());
    }
    Ok(())
}

/// Reaps every exited child; returns the agent's exit code once it is among them.
fn reap(agent: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, status)) if pid == agent => code = Some(status),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == agent => code = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

async fn serve_relay(listener: TcpListener, socket: PathBuf, permits: Arc<Semaphore>) {
    let mut warned = false;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Ok((mut tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        match UnixStream::connect(&socket).await {
            Ok(mut unix) => {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    drop(permit);
                });
            }
            Err(e) => {
                if !warned {
                    say(format_args!("cannot reach {}: {e}", socket.display()));
                    warned = true;
                }
            }
        }
    }
}

/// One process as /proc shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcEntry {
    pid: i32,
    ppid: i32,
    zombie: bool,
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid ...`, where comm may hold
/// spaces and parentheses.
fn parse_stat(text: &str) -> Option<ProcEntry> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcEntry {
        pid,
        ppid,
        zombie: state == "Z" || state == "X",
    })
}

fn processes() -> Vec<ProcEntry> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect()
}

/// The live (non-zombie) descendants of `root` in `procs`.
fn descendants(root: i32, procs: &[ProcEntry]) -> Vec<i32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        let children: Vec<i32> = procs
            .iter()
            .filter(|p| p.ppid == parent && !found.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        found.extend(children);
        i += 1;
    }
    found.retain(|pid| *pid != root && procs.iter().any(|p| p.pid == *pid && !p.zombie));
    found
}

/// Kills whatever the agent left running, and reaps it. Orphans come back to
/// this process (it is a subreaper), so descendants are all of them. A few
/// rounds catch processes forked while the previous round was killing; in the
/// sandbox, whatever still remains dies with the PID namespace when this
/// process exits.
async fn kill_descendants() {
    let me = std::process::id() as i32;
    for _ in 0..20 {
        let victims = descendants(me, &processes());
        if victims.is_empty() {
            break;
        }
        for pid in victims {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        reap(Pid::from_raw(0));
    }
    reap(Pid::from_raw(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_relays_limits_and_argv() {
        let args = SandboxInitArgs::parse(strings(&[
            "--relay",
            "8787=/run/mcpgate/gateway.sock",
            "--relay",
            "9000=/s",
            "--limit-as",
            "1024",
            "--limit-cpu=60",
            "--",
            "sh",
            "-c",
            "echo --relay",
        ]))
        .expect("valid");
        assert_eq!(args.relays.len(), 2);
        assert_eq!(args.relays[0].port, 8787);
        assert_eq!(
            args.relays[0].socket,
            PathBuf::from("/run/mcpgate/gateway.sock")
        );
        assert_eq!(args.limits.memory_bytes, Some(1024));
        assert_eq!(args.limits.cpu_seconds, Some(60));
        assert_eq!(args.limits.processes, None);
        assert_eq!(args.argv, ["sh", "-c", "echo --relay"]);
        assert_eq!(args.cli_tools, None);
        assert_eq!(
            SandboxInitArgs::parse(args.to_args()).expect("round trip"),
            args
        );
    }

    #[test]
    fn parses_cli_tools() {
        let args = SandboxInitArgs::parse(strings(&[
            "--cli-tools",
            "/home/run/.mcpgate/bin",
            "--tools-prompt=/home/run/.mcpgate/tools.md",
            "--append-tools-prompt",
            "2",
            "--",
            "claude",
            "--append-system-prompt",
            "be brief",
        ]))
        .expect("valid");
        assert_eq!(
            args.cli_tools,
            Some(CliTools {
                dir: "/home/run/.mcpgate/bin".into(),
                prompt_file: "/home/run/.mcpgate/tools.md".into(),
                append_to_arg: Some(2),
            })
        );
        assert_eq!(
            SandboxInitArgs::parse(args.to_args()).expect("round trip"),
            args
        );
    }

    #[tokio::test]
    async fn mounting_appends_the_prompt_section_or_fails_the_setup() {
        let dir = std::env::temp_dir().join(format!("mcpgate-relay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let prompt_file = dir.join("tools.md");
        let tools = CliTools {
            dir: dir.join("bin"),
            prompt_file: prompt_file.clone(),
            append_to_arg: Some(1),
        };
        let mut argv = strings(&["agent", "system text", "prompt"]);
        let mount: MountTools = Box::new(move |t: CliTools| {
            Box::pin(async move {
                std::fs::write(&t.prompt_file, "## Commands\nfixture echo\n")
                    .map_err(|e| e.to_string())
            })
        });
        mount_tools(tools.clone(), Some(mount), &mut argv)
            .await
            .expect("mounted");
        assert_eq!(
            argv,
            [
                "agent",
                "system text\n\n## Commands\nfixture echo",
                "prompt"
            ]
        );
        let error = mount_tools(tools.clone(), None, &mut argv)
            .await
            .expect_err("no mounter");
        assert!(error.contains("sandbox-init"), "{error}");
        let failing: MountTools =
            Box::new(|_| Box::pin(async { Err("gateway unreachable".to_owned()) }));
        let error = mount_tools(tools, Some(failing), &mut argv)
            .await
            .expect_err("mount failed");
        assert!(error.contains("gateway unreachable"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn refuses_bad_arguments() {
        for (bad, needle) in [
            (&[][..], "no program"),
            (&["--"][..], "no program"),
            (&["sh"][..], "unknown argument"),
            (&["--relay", "80", "--", "x"][..], "PORT=SOCKET"),
            (&["--relay", "0=/s", "--", "x"][..], "not a port"),
            (&["--relay", "99999=/s", "--", "x"][..], "not a port"),
            (&["--relay", "80=", "--", "x"][..], "empty"),
            (&["--relay"][..], "needs a value"),
            (&["--limit-as", "lots", "--", "x"][..], "whole number"),
            (&["--limit-moon", "1", "--", "x"][..], "unknown flag"),
            (&["--cli-tools", "/b", "--", "x"][..], "go together"),
            (
                &[
                    "--cli-tools",
                    "/b",
                    "--tools-prompt",
                    "/p",
                    "--append-tools-prompt",
                    "1",
                    "--",
                    "x",
                ][..],
                "has no argument 1",
            ),
            (&["--append-tools-prompt", "x", "--", "x"][..], "argv index"),
        ] {
            let error = SandboxInitArgs::parse(strings(bad)).expect_err(needle);
            assert!(error.contains(needle), "{bad:?}: {error}");
        }
    }

    #[test]
    fn reads_proc_stat_with_odd_names() {
        let e = parse_stat("4242 (my (odd) name) S 17 4242 4242 0 -1").expect("parses");
        assert_eq!(
            e,
            ProcEntry {
                pid: 4242,
                ppid: 17,
                zombie: false
            }
        );
        assert!(parse_stat("7 (z) Z 1 7").expect("parses").zombie);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn finds_descendants_but_not_zombies_or_strangers() {
        let p = |pid, ppid, zombie| ProcEntry { pid, ppid, zombie };
        let procs = [
            p(1, 0, false),
            p(10, 1, false),
            p(11, 10, false),
            p(12, 11, false),
            p(13, 10, true),
            p(20, 1, false),
        ];
        let mut got = descendants(10, &procs);
        got.sort();
        assert_eq!(got, [11, 12]);
        assert!(descendants(20, &procs).is_empty());
    }

    #[test]
    fn this_process_is_in_proc() {
        let me = std::process::id() as i32;
        assert!(processes().iter().any(|p| p.pid == me));
    }
}
