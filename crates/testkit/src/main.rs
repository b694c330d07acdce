//! `mcpgate-fixture`: command-line entry point for the fixture MCP server.
//! Parses `stdio` / `http [--listen ADDR] [--stateless]`, `--name NAME` and
//! `--tools N` (extra synthetic tools, for benchmarks) and, in http mode,
//! `--record-traceparent FILE` (what trace context each request carried) with clap, then hands
//! off to [`mcpgate_testkit::serve`]. Every flag may stand before or after
//! the mode (`--stateless http` and `http --stateless` are the same), as the
//! gateway's tests and `bench/compare` write them. In http mode it prints
//! exactly one line, `listening on http://ADDR/mcp`, to stdout once bound.
//! `relay --to ADDR` is no MCP server: a bare TCP relay to ADDR, the floor a
//! proxy hop costs on this machine (`bench/keyed-ab` measures it), printing
//! the same one line.
//! Diagnostics go to stderr only (`RUST_LOG`, default `warn`). Exit codes:
//! 0 ok (also on Ctrl-C), 1 the server failed, 2 a usage error.

use std::{io::Write, net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};
use mcpgate_testkit::{
    DEFAULT_NAME,
    serve::{self, HttpOptions},
};

/// An MCP server offering the conformance suite's test tools, resources and
/// prompts, plus `echo`, `sleep`, `exit`, `inspect` and `inspect_meta`, for
/// mcpgate's tests and benchmarks.
#[derive(Debug, Parser)]
#[command(
    name = "mcpgate-fixture",
    version,
    disable_help_subcommand = true,
    after_help = "Examples:\n  \
        mcpgate-fixture stdio\n  \
        mcpgate-fixture --tools 69 stdio\n  \
        mcpgate-fixture http --listen 127.0.0.1:0 --stateless\n\n\
        Exit codes: 0 ok (also on Ctrl-C), 1 the server failed, 2 a usage error."
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// serverInfo.name to report.
    #[arg(long, global = true, value_name = "NAME", default_value = DEFAULT_NAME)]
    name: String,
    /// Also list N synthetic tools synthetic_0 .. synthetic_{N-1}, each echoing
    /// its `message` argument.
    #[arg(long = "tools", global = true, value_name = "N", default_value_t = 0)]
    synthetic_tools: usize,
    /// http only: the address to bind (port 0 picks a free port).
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        default_value = "127.0.0.1:0"
    )]
    listen: SocketAddr,
    /// http only: serve without sessions (default: stateful sessions).
    #[arg(long, global = true)]
    stateless: bool,
    /// http only: append each POST's JSON-RPC method and `traceparent`
    /// header (`-` when absent), tab-separated, one line each, to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    record_traceparent: Option<std::path::PathBuf>,
    /// stdio only: append each `echo` message to this file, one line per
    /// call, before answering it.
    #[arg(long, global = true, value_name = "FILE")]
    call_log: Option<std::path::PathBuf>,
    /// relay only: where to relay each connection to.
    #[arg(long, global = true, value_name = "ADDR")]
    to: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Subcommand)]
enum Mode {
    /// Serve one session over stdin/stdout.
    Stdio,
    /// Serve Streamable HTTP at /mcp; prints `listening on URL` once bound.
    Http,
    /// Not a server: relay each TCP connection to `--to` byte for byte
    /// (the floor of a proxy hop); prints `listening on URL` once bound.
    Relay,
}

/// A bare TCP relay: each accepted connection is copied both ways to `to`.
async fn relay(listen: SocketAddr, to: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}/mcp", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);
    loop {
        let (mut inbound, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

async fn run(cli: Cli) -> std::io::Result<()> {
    match cli.mode {
        Mode::Relay => match cli.to {
            Some(to) => relay(cli.listen, to).await,
            None => Ok(()), // refused in `main`
        },
        Mode::Stdio => {
            let mut fixture =
                mcpgate_testkit::Fixture::new(cli.name).with_synthetic_tools(cli.synthetic_tools);
            if let Some(path) = &cli.call_log {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                fixture = fixture.with_call_log(std::sync::Arc::new(file));
            }
            serve::serve_stdio_fixture(fixture).await
        }
        Mode::Http => {
            let options = HttpOptions {
                listen: cli.listen,
                name: cli.name,
                stateless: cli.stateless,
                synthetic_tools: cli.synthetic_tools,
                record_traceparent: cli.record_traceparent,
            };
            let bound = serve::bind_http(&options).await?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "listening on {}", bound.url())?;
            stdout.flush()?;
            drop(stdout);
            bound.run().await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    if cli.mode == Mode::Relay && cli.to.is_none() {
        eprintln!("mcpgate-fixture: relay needs --to ADDR");
        return ExitCode::from(2);
    }
    tokio::select! {
        result = run(cli) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("mcpgate-fixture: {error}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mcpgate-fixture").chain(args.iter().copied()))
    }

    #[test]
    fn parses_relay_options() {
        let cli = parse(&["relay", "--to", "127.0.0.1:9000"]).expect("valid");
        assert_eq!(cli.mode, Mode::Relay);
        assert_eq!(cli.to.map(|a| a.port()), Some(9000));
        assert!(parse(&["relay", "--to", "not-an-address"]).is_err());
    }

    #[test]
    fn parses_http_options() {
        let cli = parse(&["http", "--listen", "127.0.0.1:9000", "--name=x"]).expect("valid");
        assert_eq!(cli.mode, Mode::Http);
        assert_eq!(cli.listen.port(), 9000);
        assert_eq!(cli.name, "x");
        assert!(!cli.stateless);
        assert_eq!(cli.synthetic_tools, 0);
        let cli = parse(&["--tools", "81", "stdio"]).expect("valid");
        assert_eq!(cli.mode, Mode::Stdio);
        assert_eq!(cli.synthetic_tools, 81);
        assert_eq!(cli.name, DEFAULT_NAME);
        assert_eq!(cli.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
    }

    /// How the gateway's tests and bench/compare start the fixture: flags
    /// before the mode as well as after it.
    #[test]
    fn flags_stand_before_or_after_the_mode() {
        let cli = parse(&["--stateless", "http", "--listen", "127.0.0.1:0"]).expect("valid");
        assert_eq!(cli.mode, Mode::Http);
        assert!(cli.stateless);
        let cli = parse(&["--name", "late", "http", "--listen", "127.0.0.1:7"]).expect("valid");
        assert_eq!((cli.name.as_str(), cli.listen.port()), ("late", 7));
        let cli = parse(&["http", "--stateless", "--tools=3"]).expect("valid");
        assert!(cli.stateless);
        assert_eq!(cli.synthetic_tools, 3);
    }

    #[test]
    fn rejects_missing_mode_and_unknown_flags() {
        for bad in [
            &[][..],
            &["stdio", "--bogus"],
            &["http", "--listen"],
            &["http", "--listen", "nowhere"],
            &["--tools", "-1", "stdio"],
            &["stdio", "http"],
        ] {
            let error = parse(bad).expect_err("must be refused");
            assert_eq!(error.exit_code(), 2, "{bad:?}: {error}");
        }
    }

    #[test]
    fn help_names_every_flag() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--name",
            "--tools",
            "--listen",
            "--stateless",
            "--call-log",
            "stdio",
            "http",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
        Cli::command().debug_assert();
    }
}
