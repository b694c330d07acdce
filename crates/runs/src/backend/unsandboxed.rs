//! The unsandboxed backend: `sandbox-init` and the agent run as a plain
//! process group of the gateway's user, with a cleared environment, the run's
//! workspace as working directory and the run's rlimits, but no namespaces:
//! the agent can read what the gateway's user can read and reach the whole
//! network. It exists for hosts where bubblewrap cannot run, only when
//! `[runs] backend = "unsandboxed"` is set explicitly, and the runner logs a
//! warning on every run. No relays are started (the agent reaches the
//! gateway's TCP address directly). Without a PID namespace, a process that
//! left the group (`setsid`) would survive a SIGKILL of the group, so cancel
//! and timeout send SIGTERM to `sandbox-init`, which kills every descendant
//! it finds (it is their subreaper) and exits; a second of grace later the
//! group gets SIGKILL. `sandbox-init` does the same when the agent exits.

use tokio::process::Command;

use super::{BackendError, InitProgram, LaunchSpec, Launched, init_args};

/// The unsandboxed backend.
#[derive(Debug)]
pub struct Unsandboxed {
    init: InitProgram,
}

impl Unsandboxed {
    pub(super) fn new(init: InitProgram) -> Unsandboxed {
        Unsandboxed { init }
    }

    pub(super) fn launch(&self, spec: &LaunchSpec) -> Result<Launched, BackendError> {
        let plain = LaunchSpec {
            relays: Vec::new(),
            ..spec.clone()
        };
        let mut command = Command::new(&self.init.program);
        command
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(spec.workspace_dir())
            .args(&self.init.args)
            .args(init_args(&plain, &[]));
        Launched::spawn(command, &self.init.program.display().to_string(), true)
    }
}
