//! `mcpgate call` and `mcpgate tools`: one tool call, or a tool listing, from
//! the command line. Flags come from the tool's JSON Schema (`tool_cli`), the
//! connection and session from `remote`. Order matters for honesty: the
//! arguments are validated before the call is sent, and with a cached tool list
//! (`--tools-file`, written by `mount`) before anything touches the network.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use crate::remote::{CliError, Remote, Target, gateway_servers, server_tools};
use crate::toolcmd;

/// Where the tools are: shared by `call`, `tools`.
#[derive(clap::Args)]
pub(crate) struct At {
    /// A gateway's MCP URL (or any MCP server's). The key comes from MCPGATE_KEY or --key-file.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// A config file naming the server (instead of --url).
    #[arg(long, short, conflicts_with = "url")]
    pub(crate) config: Option<PathBuf>,
    /// A file holding the gateway key.
    #[arg(long)]
    pub(crate) key_file: Option<PathBuf>,
    /// The gateway's namespace separator.
    #[arg(long, default_value = "__")]
    pub(crate) separator: String,
}

fn fail(command: &str, e: CliError) -> ExitCode {
    eprintln!("{command}: {}", e.message);
    ExitCode::from(e.code)
}

pub(crate) async fn call(
    at: &At,
    tools_file: Option<&Path>,
    server: &str,
    rest: &[String],
) -> ExitCode {
    match run_call(at, tools_file, server, rest).await {
        Ok(code) => code,
        Err(e) => fail(server, e),
    }
}

/// (short name, tool) pairs and the open session, if listing needed one.
async fn load_tools(
    at: &At,
    target: &Target,
    tools_file: Option<&Path>,
    server: &str,
) -> Result<(Vec<(String, Value)>, Option<Remote>), CliError> {
    let cached = tools_file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok())
        .map(|list| server_tools(&list, server, &at.separator, true))
        .filter(|tools| !tools.is_empty());
    if let Some(tools) = cached {
        return Ok((tools, None));
    }
    let remote = Remote::open(target).await?;
    let all = remote.list_tools().await?;
    let tools = server_tools(&all, server, &at.separator, remote.gateway);
    let prefix = format!("{server}{}", at.separator);
    let named = all.iter().any(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with(&prefix))
    });
    let servers = gateway_servers(&all, &at.separator);
    if remote.gateway && !named && !servers.is_empty() && remote.is_mcpgate(&all, &at.separator) {
        let at_url = at.url.as_deref().map(crate::remote::url_label);
        return Err(CliError::usage(format!(
            "no server {server:?} at {}; servers with tools you can see: {}",
            at_url.as_deref().unwrap_or("the gateway"),
            servers.join(", ")
        )));
    }
    Ok((tools, Some(remote)))
}

fn is_help(a: &str) -> bool {
    a == "--help" || a == "-h"
}

async fn run_call(
    at: &At,
    tools_file: Option<&Path>,
    server: &str,
    rest: &[String],
) -> Result<ExitCode, CliError> {
    let target = Target::resolve(
        at.url.as_deref(),
        at.config.as_deref(),
        at.key_file.as_deref(),
        Some(server),
    )?;
    let (tools, remote) = load_tools(at, &target, tools_file, server).await?;
    let specs = toolcmd::specs_named(&tools);
    let Some(tool_arg) = rest.first().filter(|a| !is_help(a)) else {
        print!("{}", toolcmd::server_help(server, &specs));
        return Ok(ExitCode::SUCCESS);
    };
    let wanted = tool_arg.replace('-', "_");
    let Some(idx) = specs
        .iter()
        .position(|s| s.name == *tool_arg || s.name.replace('-', "_") == wanted)
    else {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(CliError::usage(format!(
            "no tool {tool_arg:?} on {server}; tools: {}. Run `{server} --help`.",
            names.join(", ")
        )));
    };
    let spec = &specs[idx];
    let flags = &rest[1..];
    let wants_help = flags.iter().any(|a| is_help(a));
    // A bare `--json` (no value, or followed by another flag) asks for the whole
    // result as JSON; `--json '{...}'` / `--json -` give the arguments.
    let mut json_output = false;
    let mut args: Vec<String> = Vec::with_capacity(flags.len());
    for (i, a) in flags.iter().enumerate() {
        let next = flags.get(i + 1);
        if a == "--json" && next.is_none_or(|n| n.starts_with("--")) {
            json_output = true;
        } else {
            args.push(a.clone());
        }
    }
    let read_file = |p: &str| std::fs::read_to_string(p);
    let stdin = || std::io::read_to_string(std::io::stdin());
    // `--help` asks for help unless it parses as a value (`--text --help`); a
    // help request never reads stdin.
    let no_stdin = || Ok(String::new());
    let stdin_for_parse: &dyn Fn() -> std::io::Result<String> =
        if wants_help { &no_stdin } else { &stdin };
    let parsed = toolcmd::parse_args(spec, &args, &read_file, stdin_for_parse);
    let arguments = match parsed {
        Err(_) if wants_help => {
            print!("{}", toolcmd::tool_help(server, spec));
            return Ok(ExitCode::SUCCESS);
        }
        other => other
            .map_err(|e| CliError::usage(format!("{e} (see `{server} {} --help`)", spec.name)))?,
    };

    let real_name = tools[idx]
        .1
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&spec.name)
        .to_owned();
    let remote = match remote {
        Some(r) => r,
        None => Remote::open(&target).await?,
    };
    let result = remote.call(&real_name, arguments).await?;
    let out_dir = std::env::var_os("MCPGATE_OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mcpgate-files"));
    let rendered = toolcmd::render_result(&result, json_output, &out_dir);
    for (path, bytes) in &rendered.files {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, bytes)
            .map_err(|e| CliError::connection(format!("cannot write {}: {e}", path.display())))?;
    }
    print_ignoring_broken_pipe(&rendered.stdout, false);
    print_ignoring_broken_pipe(&rendered.stderr, true);
    Ok(ExitCode::from(rendered.exit))
}

/// Writes output; a closed pipe (`| head`) is not an error.
fn print_ignoring_broken_pipe(text: &str, stderr: bool) {
    use std::io::Write as _;
    if text.is_empty() {
        return;
    }
    let _ = if stderr {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        std::io::stdout().write_all(text.as_bytes())
    };
}

pub(crate) async fn tools(at: &At, server: Option<&str>) -> ExitCode {
    if at.url.is_none() && server.is_none() {
        return tools_of_config(at).await;
    }
    let result = async {
        let target = Target::resolve(
            at.url.as_deref(),
            at.config.as_deref(),
            at.key_file.as_deref(),
            server,
        )?;
        let remote = Remote::open(&target).await?;
        let all = remote.list_tools().await?;
        let listed: Vec<(String, Value)> = match server {
            Some(s) => server_tools(&all, s, &at.separator, remote.gateway),
            None => all
                .iter()
                .filter_map(|t| Some((t.get("name")?.as_str()?.to_owned(), t.clone())))
                .collect(),
        };
        let mut out = String::new();
        for (name, t) in &listed {
            let desc = t.get("description").and_then(Value::as_str).unwrap_or("");
            let first = desc.lines().next().unwrap_or("").trim();
            out.push_str(&format!("{name:<32} {first}\n"));
        }
        print_ignoring_broken_pipe(&out, false);
        Ok::<(), CliError>(())
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("mcpgate tools", e),
    }
}

/// `tools --config F` without a server: every configured server's tools, named
/// `SERVER<sep>TOOL` as a gateway would show them. A server that cannot be
/// reached is reported and the others still listed (exit 3 at the end).
async fn tools_of_config(at: &At) -> ExitCode {
    let targets = match Target::all_configured(at.config.as_deref()) {
        Ok(t) => t,
        Err(e) => return fail("mcpgate tools", e),
    };
    let mut code = ExitCode::SUCCESS;
    for (name, target) in targets {
        let listed = async {
            let remote = Remote::open(&target).await?;
            remote.list_tools().await
        };
        match listed.await {
            Ok(list) => {
                let mut out = String::new();
                for t in &list {
                    let tool = t.get("name").and_then(Value::as_str).unwrap_or("");
                    let desc = t.get("description").and_then(Value::as_str).unwrap_or("");
                    let first = desc.lines().next().unwrap_or("").trim();
                    let full = format!("{name}{}{tool}", at.separator);
                    out.push_str(&format!("{full:<32} {first}\n"));
                }
                print_ignoring_broken_pipe(&out, false);
            }
            Err(e) => {
                eprintln!("mcpgate tools: {name}: {}", e.message);
                code = ExitCode::from(e.code);
            }
        }
    }
    code
}
