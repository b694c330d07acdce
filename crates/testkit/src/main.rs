//! `mcpgate-fixture`: command-line entry point for the fixture MCP server.
//! Parses `stdio` / `http [--listen ADDR] [--stateless]`, `--name NAME` and
//! `--tools N` (extra synthetic tools, for benchmarks),
//! then hands off to [`mcpgate_testkit::serve`]. In http mode it prints
//! exactly one line, `listening on http://ADDR/mcp`, to stdout once bound.
//! Diagnostics go to stderr only (`RUST_LOG`, default `warn`).

use std::{io::Write, net::SocketAddr, process::ExitCode};

use mcpgate_testkit::{
    DEFAULT_NAME,
    serve::{self, HttpOptions},
};

const USAGE: &str = "\
usage: mcpgate-fixture [--name NAME] [--tools N] stdio
       mcpgate-fixture [--name NAME] [--tools N] http [--listen ADDR] [--stateless]

  --name NAME      serverInfo.name to report (default: mcpgate-fixture)
  --tools N        also list N synthetic tools synthetic_0..N-1 (default: 0)
  --listen ADDR    http bind address (default: 127.0.0.1:0)
  --stateless      http without sessions (default: stateful sessions)";

#[derive(Debug)]
enum Mode {
    Stdio,
    Http,
}

#[derive(Debug)]
struct Cli {
    mode: Mode,
    name: String,
    listen: SocketAddr,
    stateless: bool,
    synthetic_tools: usize,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut mode = None;
    let mut name = DEFAULT_NAME.to_owned();
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut stateless = false;
    let mut synthetic_tools = 0;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "stdio" if mode.is_none() => mode = Some(Mode::Stdio),
            "http" if mode.is_none() => mode = Some(Mode::Http),
            "--name" => name = value("--name")?,
            "--listen" => {
                let raw = value("--listen")?;
                listen = raw
                    .parse()
                    .map_err(|e| format!("invalid --listen address {raw:?}: {e}"))?;
            }
            "--stateless" => stateless = true,
            "--tools" => {
                let raw = value("--tools")?;
                synthetic_tools = raw
                    .parse()
                    .map_err(|e| format!("invalid --tools count {raw:?}: {e}"))?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let mode = mode.ok_or("missing mode: stdio or http")?;
    Ok(Cli {
        mode,
        name,
        listen,
        stateless,
        synthetic_tools,
    })
}

async fn run(cli: Cli) -> std::io::Result<()> {
    match cli.mode {
        Mode::Stdio => {
            serve::serve_stdio_fixture(
                mcpgate_testkit::Fixture::new(cli.name).with_synthetic_tools(cli.synthetic_tools),
            )
            .await
        }
        Mode::Http => {
            let options = HttpOptions {
                listen: cli.listen,
                name: cli.name,
                stateless: cli.stateless,
                synthetic_tools: cli.synthetic_tools,
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
    let cli = match parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("mcpgate-fixture: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_http_options() {
        let cli = parse(args(&["http", "--listen", "127.0.0.1:9000", "--name=x"]))
            .expect("valid arguments");
        assert!(matches!(cli.mode, Mode::Http));
        assert_eq!(cli.listen.port(), 9000);
        assert_eq!(cli.name, "x");
        assert!(!cli.stateless);
        assert_eq!(cli.synthetic_tools, 0);
        let cli = parse(args(&["--tools", "81", "stdio"])).expect("valid arguments");
        assert_eq!(cli.synthetic_tools, 81);
    }

    #[test]
    fn rejects_missing_mode_and_unknown_flags() {
        assert!(parse(args(&[])).is_err());
        assert!(parse(args(&["stdio", "--bogus"])).is_err());
        assert!(parse(args(&["http", "--listen"])).is_err());
    }
}
