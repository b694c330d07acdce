//! Command-line parsing for `mcpgate-bench`, by hand and without I/O so it can
//! be unit-tested: which mode runs (load, idle sessions, start-up timing) and
//! its options, with durations written as `500ms`, `2s`, `1.5s` or `1m`.

use std::time::Duration;

pub(crate) const USAGE: &str = "\
usage: mcpgate-bench --url URL [--concurrency C] [--duration 10s] [--warmup 2s]
                     [--rate R] [--method tools/call|tools/list] [--tool echo]
                     [--message x] [--wait-tools N] [--json]
       mcpgate-bench --url URL --sessions N [--connections K] [--json]
       mcpgate-bench --startup [--expect-tools N] [--json] -- COMMAND [ARGS...]

  --url URL          MCP endpoint (Streamable HTTP), e.g. http://127.0.0.1:8787/mcp
  --concurrency C    virtual clients, each with its own MCP session (default 1)
  --duration D       measured time after warm-up (default 10s)
  --warmup D         time run but not recorded (default 2s)
  --rate R           open loop: R requests/s in total, latency measured from each
                     request's scheduled send time (default: closed loop)
  --method M         tools/call (default) or tools/list
  --tool NAME        tool to call (default echo); arguments are {\"message\": MSG}
  --message MSG      (default x)
  --wait-tools N     first wait (up to 120 s) until tools/list shows N tools
  --json             print one JSON object
  --sessions N       initialize N sessions over K keep-alive connections, leave them idle
  --connections K    (default 16)
  --startup          spawn COMMAND (it must print `listening on URL`), time until
                     its first tools/list with at least --expect-tools tools (default 1)

  MCPGATE_KEY        if set, load runs send it as `Authorization: Bearer` (a gateway
                     with auth = \"keys\")";

/// What to run, plus whether to print JSON.
#[derive(Debug)]
pub(crate) struct Cli {
    pub(crate) mode: Mode,
    pub(crate) json: bool,
}

#[derive(Debug)]
pub(crate) enum Mode {
    Help,
    Load(LoadOpts),
    Sessions(SessionOpts),
    Startup(StartupOpts),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadOpts {
    pub(crate) url: String,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
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

/// Parses `500ms`, `2s`, `1.5s`, `1m`, or a bare number of seconds.
pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, scale) = if let Some(n) = raw.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = raw.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = raw.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = raw.strip_suffix('m') {
        (n, 60.0)
    } else {
        (raw, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {raw:?}: use e.g. 500ms, 2s or 1m"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("invalid duration {raw:?}: must be finite and not negative"))
}

fn parse_count(flag: &str, raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} needs a positive whole number, got {raw:?}")),
    }
}

pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut url = None;
    let mut concurrency = 1;
    let mut duration = Duration::from_secs(10);
    let mut warmup = Duration::from_secs(2);
    let mut rate = None;
    let mut method = "tools/call".to_owned();
    let mut tool = "echo".to_owned();
    let mut message = "x".to_owned();
    let mut json = false;
    let mut sessions = None;
    let mut connections = 16;
    let mut startup = false;
    let mut expect_tools = 1;
    let mut wait_tools = 0;
    let mut command = Vec::new();

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
            "-h" | "--help" => {
                return Ok(Cli {
                    mode: Mode::Help,
                    json,
                });
            }
            "--url" => url = Some(value("--url")?),
            "--concurrency" | "-c" => concurrency = parse_count(&flag, &value(&flag)?)?,
            "--duration" | "-d" => duration = parse_duration(&value(&flag)?)?,
            "--warmup" => warmup = parse_duration(&value("--warmup")?)?,
            "--rate" => {
                let raw = value("--rate")?;
                match raw.parse::<f64>() {
                    Ok(r) if r.is_finite() && r > 0.0 => rate = Some(r),
                    _ => return Err(format!("--rate needs a positive number, got {raw:?}")),
                }
            }
            "--method" => {
                method = value("--method")?;
                if method != "tools/call" && method != "tools/list" {
                    return Err(format!(
                        "--method must be tools/call or tools/list, got {method:?}"
                    ));
                }
            }
            "--tool" => tool = value("--tool")?,
            "--message" => message = value("--message")?,
            "--json" => json = true,
            "--sessions" => sessions = Some(parse_count("--sessions", &value("--sessions")?)?),
            "--connections" => {
                connections = parse_count("--connections", &value("--connections")?)?;
            }
            "--startup" => startup = true,
            "--wait-tools" => {
                let raw = value("--wait-tools")?;
                wait_tools = raw
                    .parse()
                    .map_err(|_| format!("--wait-tools needs a whole number, got {raw:?}"))?;
            }
            "--expect-tools" => {
                let raw = value("--expect-tools")?;
                expect_tools = raw
                    .parse()
                    .map_err(|_| format!("--expect-tools needs a whole number, got {raw:?}"))?;
            }
            "--" => {
                command.extend(args.by_ref());
                break;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }

    let mode = if startup {
        if command.is_empty() {
            return Err("--startup needs a command after `--`".into());
        }
        Mode::Startup(StartupOpts {
            command,
            expect_tools,
        })
    } else {
        if !command.is_empty() {
            return Err("a command after `--` is only used with --startup".into());
        }
        let url = url.ok_or("--url is required")?;
        match sessions {
            Some(sessions) => Mode::Sessions(SessionOpts {
                url,
                sessions,
                connections,
            }),
            None => {
                if duration.is_zero() {
                    return Err("--duration must be more than zero".into());
                }
                Mode::Load(LoadOpts {
                    url,
                    concurrency,
                    duration,
                    warmup,
                    rate,
                    method,
                    tool,
                    message,
                    wait_tools,
                })
            }
        }
    };
    Ok(Cli { mode, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn load_mode_with_defaults_and_overrides() {
        let cli = parse(args(&["--url", "http://h/mcp", "-c", "16", "--rate=2000"]))
            .expect("valid arguments");
        let Mode::Load(opts) = cli.mode else {
            panic!("expected load mode");
        };
        assert_eq!(opts.concurrency, 16);
        assert_eq!(opts.rate, Some(2000.0));
        assert_eq!(opts.duration, Duration::from_secs(10));
        assert_eq!(opts.warmup, Duration::from_secs(2));
        assert_eq!(opts.method, "tools/call");
        assert!(!cli.json);
    }

    #[test]
    fn sessions_and_startup_modes() {
        let cli = parse(args(&["--url", "u", "--sessions", "10000", "--json"])).expect("valid");
        assert!(matches!(
            cli.mode,
            Mode::Sessions(SessionOpts {
                sessions: 10000,
                connections: 16,
                ..
            })
        ));
        assert!(cli.json);
        let cli = parse(args(&[
            "--startup",
            "--expect-tools",
            "5000",
            "--",
            "gw",
            "--x",
        ]))
        .expect("valid");
        let Mode::Startup(opts) = cli.mode else {
            panic!("expected startup mode");
        };
        assert_eq!(opts.command, args(&["gw", "--x"]));
        assert_eq!(opts.expect_tools, 5000);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(args(&[])).is_err());
        assert!(parse(args(&["--url", "u", "-c", "0"])).is_err());
        assert!(parse(args(&["--url", "u", "--rate", "-5"])).is_err());
        assert!(parse(args(&["--url", "u", "--method", "ping"])).is_err());
        assert!(parse(args(&["--url", "u", "--duration", "0s"])).is_err());
        assert!(parse(args(&["--startup"])).is_err());
        assert!(parse(args(&["--url"])).is_err());
    }
}
