//! The local sandbox: each run in its own bubblewrap (`bwrap`) sandbox.
//!
//! - Namespaces: new user (the agent is uid/gid 1000 with every capability
//!   dropped), pid, ipc, uts, cgroup (when the
//!   kernel allows) and network; nested user namespaces are refused where
//!   bwrap can (0.8 and later). The network namespace holds only loopback,
//!   so the agent reaches nothing but the relays of `sandbox-init`
//!   ([`crate::relay`]), which lead to the gateway's Unix socket bound in at
//!   `/run/mcpgate/relay-N.sock`. PostgreSQL, Redis, any other host port and
//!   the internet are unreachable.
//! - Files: `/usr` (and the `/bin`, `/lib*`, `/sbin` links or directories
//!   of the host) read-only; from `/etc` only the dynamic linker cache, CA
//!   certificates, `localtime` and `alternatives`, plus a `passwd`, `group`
//!   and `hosts` written for the run; a fresh writable `/workspace` (the
//!   working directory) and `/home/run` (`HOME`); a private `/tmp`; a
//!   minimal `/dev` and a `/proc` of the sandbox's own PID namespace. The
//!   root itself is read-only. Nothing of the host's home, the gateway's data
//!   directory or its config is visible. Agent binaries from the host are
//!   bound read-only at their own paths.
//! - Lifetime: bwrap starts in its own process group with `--die-with-parent`
//!   and `--new-session`; killing that group kills bwrap, whose death kills
//!   the sandbox's PID 1 and so every process in the PID namespace. Because
//!   `--die-with-parent` follows the thread that started bwrap, runs must be
//!   launched from a Tokio worker thread, never from `spawn_blocking`.
//!
//! [`LocalSandbox::probe`] starts one empty sandbox when the backend is
//! created: if bwrap is missing or user namespaces are disabled, the gateway
//! refuses runs with a message that says which and what to do.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::{BackendError, InitProgram, LaunchSpec, Launched, SandboxPaths, init_args};

/// The agent's home inside the sandbox.
const HOME: &str = "/home/run";
/// The agent's workspace (and working directory) inside the sandbox.
const WORKSPACE: &str = "/workspace";
/// Where `sandbox-init` and the relay sockets appear inside the sandbox.
const RUN_DIR: &str = "/run/mcpgate";
/// The agent's uid and gid inside the sandbox.
const SANDBOX_UID: &str = "1000";

/// Files of the host's `/etc` the agent may need (bound when present).
const ETC_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/localtime",
    "/etc/alternatives",
];

/// Top-level directories besides `/usr` that hold programs and libraries.
const ROOT_DIRS: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// How to build the local sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The bwrap executable; `None` looks for `bwrap` on `PATH`.
    pub bwrap: Option<PathBuf>,
    /// How to start `sandbox-init` (bound read-only into the sandbox).
    pub init: InitProgram,
}

/// How one top-level directory of the host is reproduced.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RootEntry {
    Symlink { path: String, target: PathBuf },
    Dir { path: String },
}

/// The bubblewrap backend, checked to work on this host.
#[derive(Debug)]
pub struct LocalSandbox {
    bwrap: PathBuf,
    init: InitProgram,
    roots: Vec<RootEntry>,
    /// bwrap 0.8 or later: `--disable-userns` forbids nested user namespaces.
    disable_userns: bool,
}

pub(super) fn paths() -> SandboxPaths {
    SandboxPaths {
        home: PathBuf::from(HOME),
        workspace: PathBuf::from(WORKSPACE),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn host_roots() -> Vec<RootEntry> {
    ROOT_DIRS
        .iter()
        .filter_map(|dir| {
            let meta = std::fs::symlink_metadata(dir).ok()?;
            if meta.file_type().is_symlink() {
                Some(RootEntry::Symlink {
                    path: (*dir).to_owned(),
                    target: std::fs::read_link(dir).ok()?,
                })
            } else if meta.is_dir() {
                Some(RootEntry::Dir {
                    path: (*dir).to_owned(),
                })
            } else {
                None
            }
        })
        .collect()
}

const UNAVAILABLE_HINT: &str = "Runs need bubblewrap: install the Debian package `bubblewrap` \
     (apt-get install bubblewrap) and allow unprivileged user namespaces \
     (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu \
     kernel.apparmor_restrict_unprivileged_userns=0), or set [runs] backend = \"unsandboxed\" \
     to run agents WITHOUT isolation.";

impl LocalSandbox {
    /// Finds bwrap and the init program, and starts one empty sandbox with the
    /// same namespaces a run gets.
    pub(super) async fn probe(config: LocalConfig) -> Result<LocalSandbox, BackendError> {
        let bwrap = match config.bwrap {
            Some(path) => path,
            None => find_on_path("bwrap").ok_or_else(|| {
                BackendError::Unavailable(format!(
                    "bubblewrap (bwrap) is not on PATH. {UNAVAILABLE_HINT}"
                ))
            })?,
        };
        let program = config.init.program.canonicalize().map_err(|e| {
            BackendError::Unavailable(format!(
                "the sandbox's first process {} cannot be used: {e}",
                config.init.program.display()
            ))
        })?;
        let sandbox = LocalSandbox {
            bwrap,
            init: InitProgram {
                program,
                args: config.init.args,
            },
            roots: host_roots(),
            disable_userns: false,
        };
        let version = Command::new(&sandbox.bwrap)
            .arg("--version")
            .env_clear()
            .output()
            .await
            .map_err(|e| {
                BackendError::Unavailable(format!(
                    "cannot run {}: {e}. {UNAVAILABLE_HINT}",
                    sandbox.bwrap.display()
                ))
            })?;
        let sandbox = LocalSandbox {
            disable_userns: version_at_least(&String::from_utf8_lossy(&version.stdout), (0, 8)),
            ..sandbox
        };
        let mut probe = Command::new(&sandbox.bwrap);
        probe
            .env_clear()
            .args(sandbox.isolation_args())
            .args(["--", "/usr/bin/true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let output = probe.output().await.map_err(|e| {
            BackendError::Unavailable(format!(
                "cannot run {}: {e}. {UNAVAILABLE_HINT}",
                sandbox.bwrap.display()
            ))
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(BackendError::Unavailable(format!(
                "bubblewrap cannot create a sandbox here ({}: {}). {UNAVAILABLE_HINT}",
                sandbox.bwrap.display(),
                stderr.trim()
            )));
        }
        Ok(sandbox)
    }

    /// Namespaces, identity and the read-only system directories.
    fn isolation_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            SANDBOX_UID,
            "--gid",
            SANDBOX_UID,
            "--hostname",
            "mcpgate-run",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        .map(OsString::from)
        .into();
        if self.disable_userns {
            args.push("--disable-userns".into());
        }
        for root in &self.roots {
            match root {
                RootEntry::Symlink { path, target } => {
                    args.extend(["--symlink".into(), target.into(), path.into()]);
                }
                RootEntry::Dir { path } => {
                    args.extend(["--ro-bind".into(), path.into(), path.into()]);
                }
            }
        }
        for etc in ETC_FILES {
            args.extend(["--ro-bind-try".into(), (*etc).into(), (*etc).into()]);
        }
        args.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(OsString::from));
        args
    }

    /// The whole bwrap command line for a run (after the bwrap program).
    fn run_args(&self, spec: &LaunchSpec, etc_dir: &Path) -> Vec<OsString> {
        let mut args = self.isolation_args();
        let mut bind = |kind: &str, from: &Path, to: &Path| {
            args.extend([kind.into(), from.into(), to.into()]);
        };
        for name in ["passwd", "group", "hosts"] {
            bind(
                "--ro-bind",
                &etc_dir.join(name),
                &Path::new("/etc").join(name),
            );
        }
        bind("--bind", &spec.workspace_dir(), Path::new(WORKSPACE));
        bind("--bind", &spec.home_dir(), Path::new(HOME));
        for path in &spec.ro_paths {
            bind("--ro-bind", path, path);
        }
        let init = Path::new(RUN_DIR).join("sandbox-init");
        bind("--ro-bind", &self.init.program, &init);
        let sockets: Vec<PathBuf> = (0..spec.relays.len())
            .map(|i| Path::new(RUN_DIR).join(format!("relay-{i}.sock")))
            .collect();
        for (relay, inside) in spec.relays.iter().zip(&sockets) {
            bind("--ro-bind", &relay.socket, inside);
        }
        args.extend(["--remount-ro", "/", "--chdir", WORKSPACE, "--"].map(OsString::from));
        args.push(init.into());
        args.extend(self.init.args.iter().map(OsString::from));
        args.extend(init_args(spec, &sockets).into_iter().map(OsString::from));
        args
    }

    pub(super) fn launch(&self, spec: &LaunchSpec) -> Result<Launched, BackendError> {
        let etc_dir = spec.run_dir.join("etc");
        write_etc(&etc_dir)?;
        let mut command = Command::new(&self.bwrap);
        command
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .args(self.run_args(spec, &etc_dir));
        Launched::spawn(command, &self.bwrap.display().to_string(), false)
    }
}

/// Whether `bubblewrap X.Y.Z` (as `bwrap --version` prints it) is at least
/// `major.minor`.
fn version_at_least(text: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = text
        .split_whitespace()
        .last()
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}

/// The sandbox's `passwd`, `group` and `hosts`: only the run's own user and
/// loopback names.
fn write_etc(dir: &Path) -> Result<(), BackendError> {
    let err = |path: PathBuf| move |source| BackendError::Prepare { path, source };
    std::fs::create_dir_all(dir).map_err(err(dir.to_owned()))?;
    let files = [
        (
            "passwd",
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             run:x:1000:1000:mcpgate run:/home/run:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        ("group", "root:x:0:\nrun:x:1000:\nnogroup:x:65534:\n"),
        (
            "hosts",
            "127.0.0.1 localhost mcpgate-run\n::1 localhost ip6-localhost\n",
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(err(path.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::HostRelay;

    #[test]
    fn bwrap_versions() {
        assert!(version_at_least("bubblewrap 0.8.0\n", (0, 8)));
        assert!(version_at_least("bubblewrap 0.11.1", (0, 8)));
        assert!(version_at_least("bubblewrap 1.0", (0, 8)));
        assert!(!version_at_least("bubblewrap 0.6.1", (0, 8)));
        assert!(!version_at_least("", (0, 8)));
    }
    use crate::limits::Limits;

    fn sandbox() -> LocalSandbox {
        LocalSandbox {
            bwrap: "/usr/bin/bwrap".into(),
            init: InitProgram {
                program: "/opt/mcpgate".into(),
                args: vec!["sandbox-init".into()],
            },
            roots: vec![
                RootEntry::Symlink {
                    path: "/bin".into(),
                    target: "usr/bin".into(),
                },
                RootEntry::Dir {
                    path: "/lib64".into(),
                },
            ],
            disable_userns: true,
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_command_line_isolates_and_binds_only_what_the_run_needs() {
        let spec = LaunchSpec {
            run_id: "run_1".into(),
            run_dir: "/data/runs/run_1".into(),
            argv: vec!["echo".into(), "hi".into()],
            env: vec![],
            files: vec![],
            relays: vec![HostRelay {
                port: 8787,
                socket: "/data/gateway.sock".into(),
            }],
            ro_paths: vec!["/opt/claude".into()],
            limits: Limits {
                memory_bytes: Some(1 << 30),
                ..Limits::none()
            },
            cli_tools: None,
        };
        let args = strings(sandbox().run_args(&spec, Path::new("/data/runs/run_1/etc")));
        let line = args.join(" ");
        for flag in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--die-with-parent",
            "--new-session",
            "--cap-drop ALL",
            "--disable-userns",
            "--ro-bind /usr /usr",
            "--symlink usr/bin /bin",
            "--ro-bind /lib64 /lib64",
            "--tmpfs /tmp",
            "--bind /data/runs/run_1/workspace /workspace",
            "--bind /data/runs/run_1/home /home/run",
            "--ro-bind /data/runs/run_1/etc/passwd /etc/passwd",
            "--ro-bind /opt/claude /opt/claude",
            "--ro-bind /opt/mcpgate /run/mcpgate/sandbox-init",
            "--ro-bind /data/gateway.sock /run/mcpgate/relay-0.sock",
            "--chdir /workspace",
        ] {
            assert!(line.contains(flag), "{flag} missing from {line}");
        }
        let (_, tail) = line.split_once(" -- ").expect("a program after --");
        assert_eq!(
            tail,
            "/run/mcpgate/sandbox-init sandbox-init --relay 8787=/run/mcpgate/relay-0.sock \
             --limit-as 1073741824 -- echo hi"
        );
        assert!(
            !line.contains("/root") && !line.contains("--bind / "),
            "{line}"
        );
    }
}
