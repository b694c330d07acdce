//! `mcpgate mount`: one executable per MCP server in `--out DIR`, so an agent
//! can run `everything echo --message hi` from a shell. Each executable is a
//! two-line `sh` wrapper that `exec`s `mcpgate call` with the URL and the
//! server name and passes its arguments through untouched (`"$@"`); no shell
//! parsing of values ever happens. Next to them, `.tools/NAME.json` caches each
//! server's tool list, so `--help` and usage errors need no network call. The
//! files and the directory are left read-only. `--prompt FILE` writes the
//! agent prompt section describing the commands. Against a gateway whose
//! upstreams are still in their first connection attempt (`/ready` 503) it
//! waits up to 10 s, and names the servers still starting if any are left.
//!
//! A wrapper holds no absolute path of the folder it lives in: it finds its
//! tool list next to itself, so the folder works when bind-mounted elsewhere
//! (a run's sandbox). The `mcpgate` binary is `$MCPGATE_BIN`, else the one
//! that wrote the wrapper if it still exists there, else `mcpgate` on `PATH`.
//! `--rewrite-host` with a port refuses to send URLs of different ports to
//! that one port.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::remote::{CliError, Remote, Target, server_tools};
use crate::toolcmd::{ToolSpec, prompt_section, specs_named};

pub(crate) enum Source {
    /// A gateway: every server it fronts.
    Url(String),
    /// `{"servers":[{"name":..., "url":...}]}` (each URL a server or a gateway route).
    Manifest(PathBuf),
}

pub(crate) struct Options<'a> {
    pub(crate) out: &'a Path,
    pub(crate) prompt: Option<&'a Path>,
    pub(crate) rewrite_host: Option<&'a str>,
    pub(crate) exclude: &'a [String],
    pub(crate) key_file: Option<&'a Path>,
    pub(crate) separator: &'a str,
}

/// One server to mount: its command name, the URL its wrapper calls, its tools.
struct Mounted {
    name: String,
    url: String,
    tools: Vec<(String, Value)>,
}

pub(crate) async fn mount(source: Source, opts: &Options<'_>) -> Result<(), CliError> {
    let mounted = collect(source, opts).await?;
    for m in &mounted {
        println!(
            "mounted {} ({} tools) → {}",
            m.name,
            m.tools.len(),
            opts.out.join(&m.name).display()
        );
    }
    Ok(())
}

/// A run's `cli_tools`: mounts every tool the run key sees (through the
/// sandbox's relay to `url`) into `out`, and the prompt section into `prompt`.
/// Reports on stderr only: stdout is the agent's.
pub(crate) async fn mount_for_run(
    url: String,
    separator: &str,
    out: &Path,
    prompt: &Path,
) -> Result<(), CliError> {
    let opts = Options {
        out,
        prompt: Some(prompt),
        rewrite_host: None,
        exclude: &[],
        key_file: None,
        separator,
    };
    let mounted = collect(Source::Url(url), &opts).await?;
    let names: Vec<String> = mounted
        .iter()
        .map(|m| format!("{} ({} tools)", m.name, m.tools.len()))
        .collect();
    eprintln!(
        "mcpgate sandbox-init: mounted {} as commands in {}",
        names.join(", "),
        out.display()
    );
    Ok(())
}

/// Lists what to mount and writes the wrappers, the caches and the prompt.
async fn collect(source: Source, opts: &Options<'_>) -> Result<Vec<Mounted>, CliError> {
    let mut mounted = Vec::new();
    let mut failed = 0;
    let mut starting = None;
    match source {
        Source::Url(url) => {
            let target = target(&url, opts)?;
            // Waits (bounded) for upstreams in their first connection attempt.
            starting = target.wait_until_ready().await;
            let remote = Remote::open(&target).await?;
            let tools = remote.list_tools().await?;
            for name in server_names(&url, &tools, opts.separator).await {
                if opts.exclude.contains(&name) {
                    continue;
                }
                let tools = server_tools(&tools, &name, opts.separator, true);
                mounted.push(Mounted {
                    name,
                    url: url.clone(),
                    tools,
                });
            }
        }
        Source::Manifest(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CliError::usage(format!("--manifest {}: {e}", path.display())))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                CliError::usage(format!("--manifest {}: not JSON: {e}", path.display()))
            })?;
            let servers = v.get("servers").and_then(Value::as_array).ok_or_else(|| {
                CliError::usage(format!(
                    "--manifest {}: expected {{\"servers\": [{{\"name\", \"url\"}}]}}",
                    path.display()
                ))
            })?;
            for s in servers {
                let (Some(name), Some(url)) = (
                    s.get("name").and_then(Value::as_str),
                    s.get("url").and_then(Value::as_str),
                ) else {
                    return Err(CliError::usage(format!(
                        "--manifest {}: every server needs \"name\" and \"url\"",
                        path.display()
                    )));
                };
                if opts.exclude.iter().any(|e| e == name) {
                    continue;
                }
                check_command_name(name)?;
                let listed = async {
                    let remote = Remote::open(&target(url, opts)?).await?;
                    remote.list_tools().await
                };
                match listed.await {
                    Ok(tools) => mounted.push(Mounted {
                        name: name.to_owned(),
                        url: url.to_owned(),
                        tools: server_tools(&tools, name, opts.separator, true),
                    }),
                    Err(e) => {
                        failed += 1;
                        eprintln!("skipped {name}: tools/list failed: {}", e.message);
                    }
                }
            }
        }
    }
    write_out(&mounted, opts)?;
    if let (Some(s), false) = (&starting, mounted.is_empty()) {
        eprintln!("warning: still starting after 10 s, not mounted: {s}");
    }
    if mounted.is_empty() {
        let still = starting
            .map(|s| format!("; still starting after 10 s: {s}"))
            .unwrap_or_default();
        return Err(CliError::connection(format!(
            "nothing mounted ({failed} server(s) failed{still})"
        )));
    }
    Ok(mounted)
}

fn target(url: &str, opts: &Options<'_>) -> Result<Target, CliError> {
    Target::resolve(Some(url), None, opts.key_file, None)
}

/// The servers behind a gateway: its `/health` names them; failing that, the tool-name prefixes.
async fn server_names(url: &str, tools: &[Value], separator: &str) -> Vec<String> {
    let base = url.trim_end_matches('/').trim_end_matches("/mcp");
    let from_health = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .ok()?;
        let v: Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .ok()?
            .json_value()
            .await?;
        let names: Vec<String> = v
            .get("servers")?
            .as_array()?
            .iter()
            .filter_map(|s| s.get("name")?.as_str().map(str::to_owned))
            .collect();
        Some(names)
    };
    let mut names = match from_health.await {
        Some(n) => n,
        None => tools
            .iter()
            .filter_map(|t| {
                t.get("name")?
                    .as_str()?
                    .split_once(separator)
                    .map(|(s, _)| s.to_owned())
            })
            .collect(),
    };
    names.dedup();
    names.retain(|n| {
        tools.iter().any(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with(&format!("{n}{separator}")))
        })
    });
    names
}

trait JsonValue {
    async fn json_value(self) -> Option<Value>;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Option<Value> {
        serde_json::from_slice(&self.bytes().await.ok()?).ok()
    }
}

fn check_command_name(name: &str) -> Result<(), CliError> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(CliError::usage(format!(
            "{name:?} cannot be a command name (letters, digits, _ - . only)"
        )));
    }
    Ok(())
}

/// Replaces a loopback host in `url` with `host` (for agents in containers).
pub(crate) fn rewrite_url(url: &str, host: Option<&str>) -> String {
    let Some(host) = host else {
        return url.to_owned();
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (h, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    if !matches!(h, "127.0.0.1" | "localhost" | "[::1]" | "0.0.0.0") {
        return url.to_owned();
    }
    let new_authority = match (host.contains(':'), port) {
        (true, _) | (false, None) => host.to_owned(),
        (false, Some(p)) => format!("{host}:{p}"),
    };
    format!("{scheme}://{new_authority}{path}")
}

/// Single-quotes a string for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `--rewrite-host HOST:PORT` sends every loopback URL to that one port: refused
/// when the loopback URLs have different ports (give HOST alone to keep each
/// URL's own port).
fn check_rewrite_ports(urls: &[&str], host: Option<&str>) -> Result<(), CliError> {
    let Some(host) = host.filter(|h| h.contains(':')) else {
        return Ok(());
    };
    let mut ports: Vec<String> = urls
        .iter()
        .filter(|u| rewrite_url(u, Some("x")) != **u)
        .filter_map(|u| {
            let authority = u.split_once("://")?.1.split('/').next()?;
            Some(authority.rsplit_once(':')?.1.to_owned())
        })
        .collect();
    ports.sort();
    ports.dedup();
    if ports.len() > 1 {
        return Err(CliError::usage(format!(
            "--rewrite-host {host} would send the ports {} all to one port; give the host \
             without a port (each URL keeps its own) or mount them separately",
            ports.join(", ")
        )));
    }
    Ok(())
}

fn write_out(mounted: &[Mounted], opts: &Options<'_>) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let urls: Vec<&str> = mounted.iter().map(|m| m.url.as_str()).collect();
    check_rewrite_ports(&urls, opts.rewrite_host)?;
    let io = |what: &Path, e: std::io::Error| CliError::usage(format!("{}: {e}", what.display()));
    std::fs::create_dir_all(opts.out).map_err(|e| io(opts.out, e))?;
    // Wrappers must work from any directory and wherever the folder is
    // mounted: they find their tool lists relative to themselves.
    let out = &std::fs::canonicalize(opts.out).map_err(|e| io(opts.out, e))?;
    let cache = out.join(".tools");
    // A previous mount left everything read-only: make it writable to replace it.
    for dir in [out, cache.as_path()] {
        if dir.exists() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io(dir, e))?;
        }
    }
    std::fs::create_dir_all(&cache).map_err(|e| io(&cache, e))?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::usage(format!("cannot find the mcpgate binary: {e}")))?;
    for m in mounted {
        let tools_file = cache.join(format!("{}.json", m.name));
        let list: Vec<&Value> = m.tools.iter().map(|(_, t)| t).collect();
        let body = serde_json::to_vec_pretty(&list).unwrap_or_default();
        write_file(&tools_file, &body, 0o444).map_err(|e| io(&tools_file, e))?;
        let mut cmd = format!(
            "exec \"$exe\" call --url {} --tools-file \"$here/.tools/\"{}",
            sh_quote(&rewrite_url(&m.url, opts.rewrite_host)),
            sh_quote(&format!("{}.json", m.name)),
        );
        if let Some(k) = opts.key_file {
            let k = std::fs::canonicalize(k).map_err(|e| io(k, e))?;
            // A key file inside the folder moves with it.
            match k.strip_prefix(out) {
                Ok(rel) => cmd.push_str(&format!(
                    " --key-file \"$here/\"{}",
                    sh_quote(&rel.display().to_string())
                )),
                Err(_) => cmd.push_str(&format!(
                    " --key-file {}",
                    sh_quote(&k.display().to_string())
                )),
            }
        }
        let script = format!(
            "#!/bin/sh\n\
             here=$(CDPATH= cd -- \"$(dirname -- \"$0\")\" && pwd) || exit 3\n\
             exe=${{MCPGATE_BIN:-{exe}}}\n\
             [ -x \"$exe\" ] || exe=mcpgate\n\
             {cmd} {name} \"$@\"\n",
            exe = sh_quote(&exe.display().to_string()),
            name = sh_quote(&m.name)
        );
        let path = out.join(&m.name);
        write_file(&path, script.as_bytes(), 0o555).map_err(|e| io(&path, e))?;
    }
    if let Some(p) = opts.prompt {
        let commands: Vec<(String, Vec<ToolSpec>)> = mounted
            .iter()
            .map(|m| (m.name.clone(), specs_named(&m.tools)))
            .collect();
        std::fs::write(p, prompt_section(&commands)).map_err(|e| io(p, e))?;
    }
    for dir in [cache.as_path(), out] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
}

fn write_file(path: &Path, body: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    std::fs::write(path, body)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_host_only_touches_loopback() {
        assert_eq!(
            rewrite_url("http://127.0.0.1:8787/mcp", Some("host.docker.internal")),
            "http://host.docker.internal:8787/mcp"
        );
        assert_eq!(
            rewrite_url("http://localhost:8787/mcp", Some("gw:9000")),
            "http://gw:9000/mcp"
        );
        assert_eq!(
            rewrite_url("https://mcp.example.com/mcp", Some("x")),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(
            rewrite_url("http://127.0.0.1:1/mcp", None),
            "http://127.0.0.1:1/mcp"
        );
    }

    #[test]
    fn regression_rewrite_host_with_a_port_never_merges_two_ports() {
        let urls = ["http://127.0.0.1:8787/mcp", "http://127.0.0.1:9797/mcp"];
        let err = check_rewrite_ports(&urls, Some("gw:9000")).expect_err("two ports, one target");
        assert!(err.message.contains("8787, 9797"), "{}", err.message);
        check_rewrite_ports(&urls, Some("gw")).expect("each URL keeps its port");
        check_rewrite_ports(&urls[..1], Some("gw:9000")).expect("one port is fine");
        check_rewrite_ports(
            &[
                "http://127.0.0.1:8787/mcp",
                "https://remote.example:9797/mcp",
            ],
            Some("gw:9000"),
        )
        .expect("a remote URL is not rewritten");
        assert_eq!(
            rewrite_url(urls[1], Some("gw")),
            "http://gw:9797/mcp",
            "a host alone keeps the port"
        );
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
