//! Resource limits of one run, applied as rlimits by the sandbox's first
//! process ([`crate::relay`]) to itself before it starts the agent, so every
//! process of the run inherits them. rlimits need no privilege and no unsafe
//! code (nix's `setrlimit`), unlike cgroups or a `pre_exec` hook.
//!
//! Known gap: the kernel does not enforce `RLIMIT_NPROC` for processes whose
//! real user is root outside the sandbox (a gateway running as root maps the
//! sandbox user onto root), so there the process cap needs cgroups; the
//! other limits hold for every user.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::{Deserialize, Serialize};

/// Resource limits of one run; `None` leaves a limit as inherited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Address space per process, in bytes (`RLIMIT_AS`).
    pub memory_bytes: Option<u64>,
    /// Processes of the sandbox user (`RLIMIT_NPROC`).
    pub processes: Option<u64>,
    /// CPU time per process, in seconds (`RLIMIT_CPU`).
    pub cpu_seconds: Option<u64>,
    /// Largest file a process may write, in bytes (`RLIMIT_FSIZE`).
    pub file_size_bytes: Option<u64>,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
}

impl Default for Limits {
    /// 8 GiB of address space (Claude Code runs in 2 GiB), 512 processes,
    /// no CPU-time cap (the runner derives one from the timeout), 1 GiB
    /// files, 4096 open files.
    fn default() -> Self {
        Limits {
            memory_bytes: Some(8 << 30),
            processes: Some(512),
            cpu_seconds: None,
            file_size_bytes: Some(1 << 30),
            open_files: Some(4096),
        }
    }
}

impl Limits {
    /// No limits at all.
    pub fn none() -> Limits {
        Limits {
            memory_bytes: None,
            processes: None,
            cpu_seconds: None,
            file_size_bytes: None,
            open_files: None,
        }
    }

    fn table(&self) -> [(&'static str, Resource, Option<u64>); 5] {
        [
            ("--limit-as", Resource::RLIMIT_AS, self.memory_bytes),
            ("--limit-nproc", Resource::RLIMIT_NPROC, self.processes),
            ("--limit-cpu", Resource::RLIMIT_CPU, self.cpu_seconds),
            (
                "--limit-fsize",
                Resource::RLIMIT_FSIZE,
                self.file_size_bytes,
            ),
            ("--limit-nofile", Resource::RLIMIT_NOFILE, self.open_files),
        ]
    }

    /// The `sandbox-init` flags that carry these limits.
    pub(crate) fn to_args(self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, _, value) in self.table() {
            if let Some(v) = value {
                out.push(flag.to_owned());
                out.push(v.to_string());
            }
        }
        out
    }

    /// Takes one `--limit-*` flag's value; false if `flag` is not one.
    pub(crate) fn set_from_flag(&mut self, flag: &str, value: u64) -> bool {
        let slot = match flag {
            "--limit-as" => &mut self.memory_bytes,
            "--limit-nproc" => &mut self.processes,
            "--limit-cpu" => &mut self.cpu_seconds,
            "--limit-fsize" => &mut self.file_size_bytes,
            "--limit-nofile" => &mut self.open_files,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    /// Sets each limit (soft and hard) on the calling process; a limit above
    /// the inherited hard limit is lowered to it (raising needs privilege).
    pub(crate) fn apply(&self) -> Result<(), String> {
        for (flag, resource, value) in self.table() {
            if let Some(v) = value {
                let (_, hard) =
                    getrlimit(resource).map_err(|e| format!("{flag}: getrlimit: {e}"))?;
                let v = v.min(hard);
                setrlimit(resource, v, v).map_err(|e| format!("{flag} {v}: setrlimit: {e}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip() {
        let limits = Limits {
            cpu_seconds: Some(60),
            ..Limits::default()
        };
        let args = limits.to_args();
        assert_eq!(args.len(), 10);
        let mut back = Limits::none();
        for pair in args.chunks(2) {
            let value = pair[1].parse().expect("number");
            assert!(back.set_from_flag(&pair[0], value), "{}", pair[0]);
        }
        assert_eq!(back, limits);
        assert!(!back.set_from_flag("--limit-bogus", 1));
        assert!(Limits::none().to_args().is_empty());
    }
}
