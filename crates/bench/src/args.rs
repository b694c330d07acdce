//! The command line of `mcpgate-bench`, in two steps (as ripgrep's `flags/`
//! does): clap parses the raw flags into [`Args`], then [`Args::validate`]
//! turns them into one typed mode (load, idle sessions, start-up timing) with
//! its options, refusing combinations clap cannot see. No I/O, so all of it
//! is unit-tested. Durations are written as `500ms`, `2s`, `1.5s` or `1m`
//! ([`mcpgate_proto::duration::parse_duration`]).

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, Parser, error::ErrorKind};
use mcpgate_proto::duration::parse_duration;

/// Drives load through MCP servers and the mcpgate gateway with the
/// project's own MCP client: closed- or open-loop `tools/call` or
/// `tools/list`, idle sessions, or the time a server takes to start.
#[derive(Debug, Parser)]
#[command(
    name = "mcpgate-bench",
    version,
    override_usage = "\
mcpgate-bench --url URL [--concurrency C] [--duration 10s | --calls N] [--warmup 2s]
                     [--rate R] [--method tools/call|tools/list] [--tool echo]
                     [--message x] [--wait-tools N] [--era modern|session] [--json]
       mcpgate-bench --url URL --sessions N [--connections K] [--json]
       mcpgate-bench --startup [--expect-tools N] [--json] -- COMMAND [ARGS...]",
    after_help = "\
Durations: 500ms, 2s, 1.5s, 1m, 1h, or a bare number of seconds.

Environment:
  MCPGATE_KEY  if set, load runs send it as `Authorization: Bearer` (a gateway
               with auth = \"keys\")

Exit codes: 0 the run finished, 1 it failed, 2 a usage error."
)]
pub(crate) struct Args {
    /// MCP endpoint (Streamable HTTP), e.g. http://127.0.0.1:8787/mcp.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Virtual clients, each with its own MCP session.
    #[arg(short = 'c', long, value_name = "C", default_value = "1", value_parser = positive_count)]
    concurrency: usize,
    /// Measured time after warm-up.
    #[arg(short = 'd', long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Time run but not recorded.
    #[arg(long, value_name = "D", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Instead of --duration: end the measured phase after exactly N requests
    /// (successes plus errors) across all clients; closed loop only.
    #[arg(long, value_name = "N", value_parser = positive_count, conflicts_with_all = ["duration", "rate"])]
    calls: Option<usize>,
    /// Protocol era of the bench's client sessions: `modern` asks
    /// `server/discover` first and so speaks the 2026-07-28 stateless
    /// revision where the server offers it; `session` always runs the
    /// `initialize` handshake (the 2025-11-25 session era).
    #[arg(long, value_name = "ERA", default_value = "modern", value_parser = ["modern", "session"])]
    era: String,
    /// Open loop: R requests/s in total, latency measured from each request's
    /// scheduled send time (default: closed loop).
    #[arg(long, value_name = "R", value_parser = positive_rate)]
    rate: Option<f64>,
    /// The request to send.
    #[arg(long, value_name = "M", default_value = "tools/call", value_parser = ["tools/call", "tools/list"])]
    method: String,
    /// Tool to call; its arguments are {"message": MSG}.
    #[arg(long, value_name = "NAME", default_value = "echo")]
    tool: String,
    /// The `message` argument of each call.
    #[arg(long, value_name = "MSG", default_value = "x")]
    message: String,
    /// First wait (up to 120 s) until tools/list shows N tools.
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_tools: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Initialize N sessions over K keep-alive connections and leave them idle.
    #[arg(long, value_name = "N", value_parser = positive_count)]
    sessions: Option<usize>,
    /// Keep-alive connections for --sessions.
    #[arg(long, value_name = "K", default_value = "16", value_parser = positive_count)]
    connections: usize,
    /// Spawn COMMAND (it must print `listening on URL`) and time it until its
    /// first tools/list with at least --expect-tools tools.
    #[arg(long)]
    startup: bool,
    /// Tools the first complete tools/list must hold, for --startup.
    #[arg(long, value_name = "N", default_value_t = 1)]
    expect_tools: usize,
    /// The server command for --startup, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// What to run, plus whether to print JSON.
#[derive(Debug)]
pub(crate) struct Cli {
    pub(crate) mode: Mode,
    pub(crate) json: bool,
}

#[derive(Debug)]
pub(crate) enum Mode {
    Load(LoadOpts),
    Sessions(SessionOpts),
    Startup(StartupOpts),
}

/// Which handshake the bench's client sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// `server/discover` first: the 2026-07-28 stateless revision when the
    /// server offers it, else the `initialize` handshake.
    Modern,
    /// The `initialize` handshake only (2025-11-25, `Mcp-Session-Id`).
    Session,
}

impl Era {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Era::Modern => "modern",
            Era::Session => "session",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadOpts {
    pub(crate) url: String,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    /// End the measured phase after exactly this many requests instead of
    /// after `duration`.
    pub(crate) calls: Option<usize>,
    pub(crate) warmup: Duration,
    pub(crate) era: Era,
    /// Total requests per second for the open loop; `None` is a closed loop.
    pub(crate) rate: Option<f64>,
    pub(crate) method: String,
    pub(crate) tool: String,
    pub(crate) message: String,
    /// Before measuring, wait until tools/list returns at least this many tools.
    pub(crate) wait_tools: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionOpts {
    pub(crate) url: String,
    pub(crate) sessions: usize,
    pub(crate) connections: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StartupOpts {
    pub(crate) command: Vec<String>,
    pub(crate) expect_tools: usize,
}

fn positive_count(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("needs a positive whole number".to_owned()),
    }
}

fn positive_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err("needs a positive number".to_owned()),
    }
}

/// Parses and validates a whole command line (program name first); a usage
/// error or `--help` comes back as the `clap::Error` to print and exit with.
pub(crate) fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Args::try_parse_from(args)?.validate()
}

impl Args {
    /// The one mode these flags ask for, or the usage error that says why none.
    fn validate(self) -> Result<Cli, clap::Error> {
        let usage = |kind: ErrorKind, message: &str| Args::command().error(kind, message);
        if self.calls.is_some() && (self.startup || self.sessions.is_some()) {
            return Err(usage(
                ErrorKind::ArgumentConflict,
                "--calls is for load runs, not --sessions or --startup",
            ));
        }
        let mode = if self.startup {
            if self.command.is_empty() {
                return Err(usage(
                    ErrorKind::MissingRequiredArgument,
                    "--startup needs a command after `--`",
                ));
            }
            Mode::Startup(StartupOpts {
                command: self.command,
                expect_tools: self.expect_tools,
            })
        } else {
            if !self.command.is_empty() {
                return Err(usage(
                    ErrorKind::ArgumentConflict,
                    "a command after `--` is only used with --startup",
                ));
            }
            let Some(url) = self.url else {
                return Err(usage(
                    ErrorKind::MissingRequiredArgument,
                    "--url is required (or --startup with a command)",
                ));
            };
            match self.sessions {
                Some(sessions) => Mode::Sessions(SessionOpts {
                    url,
                    sessions,
                    connections: self.connections,
                }),
                None => {
                    let era = match self.era.as_str() {
                        "session" => Era::Session,
                        _ => Era::Modern,
                    };
                    if self.duration.is_zero() {
                        return Err(usage(
                            ErrorKind::ValueValidation,
                            "--duration must be more than zero",
                        ));
                    }
                    Mode::Load(LoadOpts {
                        url,
                        concurrency: self.concurrency,
                        duration: self.duration,
                        calls: self.calls,
                        warmup: self.warmup,
                        era,
                        rate: self.rate,
                        method: self.method,
                        tool: self.tool,
                        message: self.message,
                        wait_tools: self.wait_tools,
                    })
                }
            }
        };
        Ok(Cli {
            mode,
            json: self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(std::iter::once("mcpgate-bench").chain(list.iter().copied()))
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn load_mode_with_defaults_and_overrides() {
        let cli = parse(&["--url", "http://h/mcp", "-c", "16", "--rate=2000"]).expect("valid");
        let Mode::Load(opts) = cli.mode else {
            panic!("expected load mode");
        };
        assert_eq!(opts.concurrency, 16);
        assert_eq!(opts.rate, Some(2000.0));
        assert_eq!(opts.duration, Duration::from_secs(10));
        assert_eq!(opts.warmup, Duration::from_secs(2));
        assert_eq!(opts.method, "tools/call");
        assert_eq!(opts.tool, "echo");
        assert_eq!(opts.message, "x");
        assert_eq!(opts.wait_tools, 0);
        assert_eq!(opts.era, Era::Modern);
        assert_eq!(opts.calls, None);
        assert!(!cli.json);
    }

    #[test]
    fn era_and_fixed_call_count() {
        let load = |list: &[&str]| {
            let Mode::Load(opts) = parse(list).expect("valid").mode else {
                panic!("expected load mode for {list:?}");
            };
            opts
        };
        assert_eq!(load(&["--url", "u", "--era", "session"]).era, Era::Session);
        assert_eq!(load(&["--url", "u", "--era=modern"]).era, Era::Modern);
        assert_eq!(Era::Session.as_str(), "session");
        assert_eq!(Era::Modern.as_str(), "modern");
        let opts = load(&["--url", "u", "--calls", "2000", "--warmup", "0s"]);
        assert_eq!(opts.calls, Some(2000));
        assert_eq!(opts.warmup, Duration::ZERO);
        // bench/hop-profile's measured runs.
        let opts = load(&[
            "--json", "--url", "u", "--era", "session", "--calls", "300", "--warmup", "0s",
        ]);
        assert_eq!((opts.era, opts.calls), (Era::Session, Some(300)));
    }

    /// Every way bench/compare calls the bench still parses to what it meant.
    #[test]
    fn the_compare_script_invocations() {
        let cli = parse(&[
            "--json",
            "--url",
            "u",
            "--concurrency",
            "64",
            "--duration",
            "5s",
            "--warmup",
            "1s",
            "--wait-tools",
            "31",
        ])
        .expect("valid");
        assert!(cli.json);
        let Mode::Load(opts) = cli.mode else {
            panic!("expected load mode");
        };
        assert_eq!(
            (
                opts.concurrency,
                opts.duration,
                opts.warmup,
                opts.wait_tools
            ),
            (64, Duration::from_secs(5), Duration::from_secs(1), 31)
        );
        let cli = parse(&[
            "--json",
            "--url",
            "u",
            "--method",
            "tools/list",
            "--duration",
            "200ms",
            "--warmup",
            "0s",
        ])
        .expect("valid");
        let Mode::Load(opts) = cli.mode else {
            panic!("expected load mode");
        };
        assert_eq!(opts.method, "tools/list");
        assert_eq!(opts.duration, Duration::from_millis(200));
        assert_eq!(opts.warmup, Duration::ZERO);
    }

    #[test]
    fn sessions_and_startup_modes() {
        let cli = parse(&["--url", "u", "--sessions", "10000", "--json"]).expect("valid");
        assert!(matches!(
            cli.mode,
            Mode::Sessions(SessionOpts {
                sessions: 10000,
                connections: 16,
                ..
            })
        ));
        assert!(cli.json);
        let cli =
            parse(&["--startup", "--expect-tools", "5000", "--", "gw", "--x"]).expect("valid");
        let Mode::Startup(opts) = cli.mode else {
            panic!("expected startup mode");
        };
        assert_eq!(opts.command, args(&["gw", "--x"]));
        assert_eq!(opts.expect_tools, 5000);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &[][..],
            &["--url", "u", "-c", "0"],
            &["--url", "u", "--rate", "-5"],
            &["--url", "u", "--rate", "0"],
            &["--url", "u", "--method", "ping"],
            &["--url", "u", "--duration", "0s"],
            &["--url", "u", "--duration", "999999999999999d"],
            &["--url", "u", "--warmup", "fast"],
            &["--url", "u", "--sessions", "0"],
            &["--url", "u", "--era", "2025"],
            &["--url", "u", "--era"],
            &["--url", "u", "--calls", "0"],
            &["--url", "u", "--calls", "-1"],
            &["--url", "u", "--calls", "10", "--duration", "1s"],
            &["--url", "u", "--calls", "10", "--rate", "100"],
            &["--url", "u", "--calls", "10", "--sessions", "5"],
            &["--calls", "10", "--startup", "--", "gw"],
            &["--url", "u", "--", "gw"],
            &["--startup"],
            &["--url"],
        ] {
            let error = parse(bad).expect_err("must be refused");
            assert_eq!(error.exit_code(), 2, "{bad:?}: {error}");
        }
    }

    #[test]
    fn help_shows_every_flag() {
        let error = parse(&["--help"]).expect_err("help is not a run");
        assert_eq!(error.kind(), ErrorKind::DisplayHelp);
        assert_eq!(error.exit_code(), 0);
        let help = error.to_string();
        for flag in [
            "--url",
            "--concurrency",
            "--duration",
            "--warmup",
            "--rate",
            "--method",
            "--tool",
            "--message",
            "--wait-tools",
            "--calls",
            "--era",
            "--json",
            "--sessions",
            "--connections",
            "--startup",
            "--expect-tools",
            "MCPGATE_KEY",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
        Args::command().debug_assert();
    }
}
