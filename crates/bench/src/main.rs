//! `mcpgate-bench`: a load generator for MCP servers and the mcpgate gateway.
//! It drives load through `mcpgate_upstream::Connection`, the codebase's one
//! MCP client, so every virtual client does a real MCP handshake and keeps its
//! session. Three modes: load (closed loop, or open loop at a fixed rate with
//! latency measured from each request's scheduled send time), `--sessions N`
//! (open N idle sessions with raw initialize POSTs and exit), and `--startup`
//! (spawn a gateway and time its first complete `tools/list`). Numbers are
//! printed for people, or as one JSON object with `--json` for scripts.

mod args;
mod client;
mod load;
mod report;
mod sessions;
mod startup;

use std::process::ExitCode;

use args::Mode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match args::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        // Usage errors exit 2; --help and --version print and exit 0.
        Err(error) => error.exit(),
    };
    let outcome = match cli.mode {
        Mode::Load(opts) => load::run(&opts).await.map(|s| {
            if cli.json {
                s.to_json().to_string()
            } else {
                s.to_text()
            }
        }),
        Mode::Sessions(opts) => sessions::run(&opts).await.map(|s| {
            if cli.json {
                s.to_json().to_string()
            } else {
                s.to_text()
            }
        }),
        Mode::Startup(opts) => startup::run(&opts).await.map(|s| {
            if cli.json {
                s.to_json().to_string()
            } else {
                s.to_text()
            }
        }),
    };
    match outcome {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("mcpgate-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
