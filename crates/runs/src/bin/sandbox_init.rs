//! `mcpgate-sandbox-init`: the sandbox's first process as a standalone
//! binary, for tests and development. The product runs the same code as the
//! hidden `mcpgate sandbox-init` subcommand. See [`mcpgate_runs::relay`] for
//! what it does and its exit codes (125 for its own failures).

use std::process::ExitCode;

use mcpgate_runs::relay::{EXIT_SETUP, SandboxInitArgs, sandbox_init};

fn main() -> ExitCode {
    let args = match SandboxInitArgs::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("mcpgate sandbox-init: {message}");
            return ExitCode::from(EXIT_SETUP as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcpgate sandbox-init: cannot start: {e}");
            return ExitCode::from(EXIT_SETUP as u8);
        }
    };
    let code = runtime.block_on(sandbox_init(args, None));
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_SETUP as u8))
}
