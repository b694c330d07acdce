//! The hidden `mcpgate sandbox-init` subcommand: the first process inside a
//! run's sandbox (the runner's `InitProgram` is this executable). It is
//! dispatched before clap parses anything, because everything after it
//! belongs to `mcpgate_runs::SandboxInitArgs` (relays, rlimits, `--` and the
//! agent's argv). See `mcpgate_runs::relay` for what it does; 125 is its own
//! setup failure. A workflow's `cli_tools` are mounted here, in-process, by
//! `mcpgate mount`'s own code, once the relay to the gateway is up.

use std::process::ExitCode;

use mcpgate_runs::relay::EXIT_SETUP;
use mcpgate_runs::{CliTools, MountTools, SandboxInitArgs, sandbox_init};

/// Runs sandbox-init if the first argument asks for it; `None` otherwise.
pub(crate) fn dispatch() -> Option<ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("sandbox-init") {
        return None;
    }
    let setup_failed = ExitCode::from(u8::try_from(EXIT_SETUP).unwrap_or(125));
    let parsed = match SandboxInitArgs::parse(args) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("mcpgate sandbox-init: {message}");
            return Some(setup_failed);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcpgate sandbox-init: cannot start: {e}");
            return Some(setup_failed);
        }
    };
    let code = runtime.block_on(sandbox_init(parsed, Some(mount_tools())));
    Some(u8::try_from(code).map_or(setup_failed, ExitCode::from))
}

/// Mounts the run's tools through the gateway the adapter named in the
/// environment (`MCPGATE_URL`, the key in `MCPGATE_KEY`).
fn mount_tools() -> MountTools {
    Box::new(|tools: CliTools| {
        Box::pin(async move {
            let base =
                std::env::var("MCPGATE_URL").map_err(|_| "MCPGATE_URL is not set".to_owned())?;
            let separator =
                std::env::var("MCPGATE_TOOL_SEPARATOR").unwrap_or_else(|_| "__".to_owned());
            crate::mount::mount_for_run(
                format!("{}/mcp", base.trim_end_matches('/')),
                &separator,
                &tools.dir,
                &tools.prompt_file,
            )
            .await
            .map_err(|e| e.message)
        })
    })
}
