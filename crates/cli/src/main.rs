//! The `mcpgate` binary: parses the command line and wires the library crates
//! together. Logic lives in `mcpgate-gateway` and `mcpgate-upstream`.
//!
//! Exit codes: 0 ok; 1 a tool error (`call`) or an upstream not ready (`check`,
//! `servers`); 2 a usage or config error (nothing was sent); 3 a connection or
//! auth error, or the gateway could not start; `call` and `tools` also 4 rate
//! limited (HTTP 429: retry later) and 5 the tenant's compute-token balance is
//! exhausted.
//!
//! `workflows`, `run` and `runs` (clients of a gateway's `/api/v1`): 0 done
//! (for `run --follow`: the run succeeded); 1 the run failed, was cancelled
//! or timed out; 2 a usage error or a request the gateway refused as bad
//! (400, 409); 3 no connection, or the key was refused (401, 403, 5xx);
//! 4 not found (an unknown workflow or run).

mod admin;
mod bridge;
mod call;
mod demo;
mod mount;
mod oauth;
mod remote;
mod run_pod;
mod runs;
mod sandbox_init;
mod serve;
mod servers;
mod setup;
mod terminal;
mod toolcmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mcpgate",
    version,
    about = "One MCP endpoint for your agents, in front of many MCP servers.",
    after_help = "Exit codes: 0 ok; 1 a tool error (call) or an upstream not ready (check, servers); 2 usage or config error, nothing sent; 3 connection or auth error; 4 rate limited (call, tools: HTTP 429, retry later); 5 compute-token balance exhausted (call, tools).\n\nExit codes of workflows, run and runs: 0 done (run --follow: the run succeeded); 1 the run failed, was cancelled or timed out; 2 usage error or bad request; 3 connection or auth error; 4 not found."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// How `serve` writes its log.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway. Without --config it uses ./mcpgate.toml, or the bundled demo.
    Serve {
        /// Config file: mcpgate.toml, or a Claude / VS Code mcpServers JSON file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address, overriding the config's `listen` (e.g. 127.0.0.1:0 for any free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Log lines on stderr: `text` for people, `json` (one object per line, with the
        /// call's trace_id, tenant, session and run) for a log pipeline.
        #[arg(long, value_enum, default_value = "text", env = "MCPGATE_LOG_FORMAT")]
        log_format: LogFormat,
    },
    /// Validate the config and print each upstream's state.
    Check {
        /// Config file: mcpgate.toml, or a Claude / VS Code mcpServers JSON file (default ./mcpgate.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Be a stdio MCP server that forwards to a gateway (for Claude Desktop and other command-only clients).
    Stdio {
        /// The gateway's MCP URL, e.g. http://127.0.0.1:8787/mcp. The key comes from MCPGATE_KEY or --key-file.
        #[arg(long)]
        url: String,
        /// A file holding the gateway key.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Make a running gateway re-read its config file (plans and tiers apply at once; a bad file is refused).
    Reload {
        /// The gateway's base URL or /mcp URL; the admin key comes from MCPGATE_ADMIN_KEY.
        #[arg(long)]
        url: String,
    },
    /// Decide OAuth authorizations waiting for an administrator (clients whose user has no key).
    Oauth {
        #[command(subcommand)]
        cmd: oauth::OAuthCmd,
    },
    /// Print a Claude / VS Code / Cursor / Windsurf / Cline MCP config as the equivalent mcpgate.toml.
    Import {
        /// The client's JSON (or JSONC) file, e.g. .vscode/mcp.json or claude_desktop_config.json.
        file: PathBuf,
    },
    /// Show each upstream's state: from a running gateway (--url) or by probing the config.
    /// `servers add|rm NAME --url GW` change a running gateway's servers.
    #[command(args_conflicts_with_subcommands = true)]
    Servers {
        #[command(subcommand)]
        cmd: Option<servers::ServersCmd>,
        /// Config file whose upstreams are started and probed (default ./mcpgate.toml).
        #[arg(long, short, conflicts_with = "url")]
        config: Option<PathBuf>,
        /// A running gateway: its base URL or its /mcp URL (reads /health; with auth = "keys"
        /// set MCPGATE_ADMIN_KEY to an admin key to see the upstreams).
        #[arg(long)]
        url: Option<String>,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call one tool: `mcpgate call --url URL SERVER TOOL --flag value ...`.
    /// `mcpgate call --url URL SERVER --help` lists the tools; `... TOOL --help` explains one.
    #[command(disable_help_flag = true)]
    Call {
        #[command(flatten)]
        at: call::At,
        /// A cached tools/list (written by `mount`): help and validation need no network.
        #[arg(long)]
        tools_file: Option<PathBuf>,
        /// The server (a command name under `mount`); without one, this help.
        #[arg(allow_hyphen_values = true)]
        server: Option<String>,
        /// TOOL, then its flags, passed through untouched.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// List tools, one line each: all servers, or one.
    Tools {
        #[command(flatten)]
        at: call::At,
        /// Only this server's tools (default: every server's).
        server: Option<String>,
    },
    /// Write one command per server into --out DIR (read-only), plus an agent prompt section.
    Mount {
        /// A gateway: mount every server it fronts.
        #[arg(
            long,
            conflicts_with = "manifest",
            required_unless_present = "manifest"
        )]
        url: Option<String>,
        /// {"servers":[{"name":..., "url":...}]}
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Directory to write the commands into (created; its files are made read-only).
        #[arg(long)]
        out: PathBuf,
        /// Write the agent prompt section (Markdown in `<mcp-clis>` tags) here.
        #[arg(long)]
        prompt: Option<PathBuf>,
        /// Replace a loopback host in the URLs, e.g. host.docker.internal:8787.
        #[arg(long)]
        rewrite_host: Option<String>,
        /// Skip a server (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
        /// A file holding the gateway key (else MCPGATE_KEY at call time).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The gateway's namespace separator between server and tool names.
        #[arg(long, default_value = "__")]
        separator: String,
    },
    /// Tenants: add, set-balance, set-plan, list, show (works on the store directly).
    Tenants {
        #[command(flatten)]
        at: admin::At,
        #[command(subcommand)]
        cmd: admin::TenantsCmd,
    },
    /// API keys: create, list, revoke.
    Keys {
        #[command(flatten)]
        at: admin::At,
        #[command(subcommand)]
        cmd: admin::KeysCmd,
    },
    /// Compute tokens and calls per tenant and tool.
    Usage {
        #[command(flatten)]
        at: admin::At,
        #[command(flatten)]
        args: admin::UsageArgs,
    },
    /// The audit log: one record per call and per denial, newest first.
    Audit {
        #[command(flatten)]
        at: admin::At,
        #[command(flatten)]
        args: admin::AuditArgs,
    },
    /// Workflows on a gateway: list, show NAME, add FILE, rm NAME.
    Workflows {
        #[command(flatten)]
        at: runs::At,
        #[command(subcommand)]
        cmd: runs::WorkflowsCmd,
    },
    /// Fire off a run of a workflow; prints its id (exit codes: see --help).
    Run {
        #[command(flatten)]
        at: runs::At,
        #[command(flatten)]
        args: runs::RunArgs,
    },
    /// Runs on a gateway: list, show ID, logs ID [-f], cancel ID, artifacts ID [--download DIR].
    Runs {
        #[command(flatten)]
        at: runs::At,
        #[command(subcommand)]
        cmd: runs::RunsCmd,
    },
    /// The built-in demo MCP server (stdio), used by the bundled demo config.
    #[command(hide = true)]
    DemoServer,
}

fn main() -> ExitCode {
    if let Some(code) = sandbox_init::dispatch() {
        return code;
    }
    if let Some(code) = run_pod::dispatch() {
        return code;
    }
    let cli = Cli::parse();
    if let Cmd::DemoServer = cli.cmd {
        return match demo::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    // Client commands print only their own output unless RUST_LOG says otherwise.
    let default_level = match cli.cmd {
        Cmd::Call { .. }
        | Cmd::Tools { .. }
        | Cmd::Mount { .. }
        | Cmd::Tenants { .. }
        | Cmd::Keys { .. }
        | Cmd::Usage { .. }
        | Cmd::Audit { .. }
        | Cmd::Workflows { .. }
        | Cmd::Run { .. }
        | Cmd::Runs { .. }
        | Cmd::Import { .. }
        | Cmd::Reload { .. }
        | Cmd::Oauth { .. }
        | Cmd::Stdio { .. } => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let log = tracing_subscriber::fmt()
        .with_ansi(colour_logs())
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if let Cmd::Serve {
        log_format: LogFormat::Json,
        ..
    } = cli.cmd
    {
        // The fields of the spans a line was written in (a call's trace_id,
        // tenant, session, run) are flattened into the line's own object.
        log.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init();
    } else {
        log.init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve { config, listen, .. } => serve::serve(config.as_deref(), listen).await,
            Cmd::Check { config } => servers::check(config.as_deref(), false).await,
            Cmd::Reload { url } => serve::reload(&url).await,
            Cmd::Oauth { cmd } => oauth::run(cmd).await,
            Cmd::Stdio { url, key_file } => bridge::stdio(&url, key_file.as_deref()).await,
            Cmd::Import { file } => match mcpgate_gateway::config::to_toml(&file) {
                Ok(toml) => {
                    print!("{toml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            },
            Cmd::Servers { cmd: Some(cmd), .. } => servers::change(cmd).await,
            Cmd::Servers {
                url: Some(url),
                json,
                ..
            } => servers::from_gateway(&url, json).await,
            Cmd::Servers { config, json, .. } => servers::check(config.as_deref(), json).await,
            Cmd::Call {
                at,
                tools_file,
                server,
                rest,
            } => match server.as_deref() {
                None | Some("--help" | "-h" | "help") => call_help(),
                Some(server) => call::call(&at, tools_file.as_deref(), server, &rest).await,
            },
            Cmd::Tools { at, server } => call::tools(&at, server.as_deref()).await,
            Cmd::Mount {
                url,
                manifest,
                out,
                prompt,
                rewrite_host,
                exclude,
                key_file,
                separator,
            } => {
                let source = match (url, manifest) {
                    (Some(u), _) => mount::Source::Url(u),
                    (None, Some(m)) => mount::Source::Manifest(m),
                    (None, None) => return ExitCode::from(2),
                };
                let opts = mount::Options {
                    out: &out,
                    prompt: prompt.as_deref(),
                    rewrite_host: rewrite_host.as_deref(),
                    exclude: &exclude,
                    key_file: key_file.as_deref(),
                    separator: &separator,
                };
                match mount::mount(source, &opts).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("mcpgate mount: {}", e.message);
                        ExitCode::from(e.code)
                    }
                }
            }
            Cmd::Tenants { at, cmd } => admin::tenants(&at, cmd).await,
            Cmd::Keys { at, cmd } => admin::keys(&at, cmd).await,
            Cmd::Usage { at, args } => admin::usage(&at, args).await,
            Cmd::Audit { at, args } => admin::audit(&at, args).await,
            Cmd::Workflows { at, cmd } => runs::workflows(&at, cmd).await,
            Cmd::Run { at, args } => runs::run(&at, args).await,
            Cmd::Runs { at, cmd } => runs::runs(&at, cmd).await,
            Cmd::DemoServer => ExitCode::SUCCESS,
        }
    })
}

/// Log lines carry ANSI colours only on a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>: any non-empty value).
fn colour_logs() -> bool {
    use std::io::IsTerminal as _;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `mcpgate call --help` (or no server): the help of `call` itself. The
/// command turns off clap's own help flag so that `call SERVER TOOL --help`
/// reaches the tool's generated help.
fn call_help() -> ExitCode {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    cmd.build();
    match cmd.find_subcommand_mut("call") {
        Some(call) => {
            let _ = call.print_long_help();
            ExitCode::SUCCESS
        }
        None => ExitCode::from(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Every option and positional of every command says what it is for.
    fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() {
                continue;
            }
            missing_help(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_and_positional_has_help_text() {
        let mut missing = Vec::new();
        missing_help(&Cli::command(), "mcpgate", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
