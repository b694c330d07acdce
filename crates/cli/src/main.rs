//! The `mcpgate` binary: parses the command line and wires the library crates
//! together. Logic lives in `mcpgate-gateway` and `mcpgate-upstream`.
//!
//! Exit codes: 0 ok; 1 a tool error (`call`) or an upstream not ready (`check`,
//! `servers`); 2 a usage or config error (nothing was sent); 3 a connection or
//! auth error, or the gateway could not start.

mod admin;
mod call;
mod demo;
mod mount;
mod remote;
mod toolcmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mcpgate_gateway::{App, Config};

#[derive(Parser)]
#[command(
    name = "mcpgate",
    version,
    about = "One MCP endpoint for your agents, in front of many MCP servers."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
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
    },
    /// Validate the config and print each upstream's state.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Show each upstream's state: from a running gateway (--url) or by probing the config.
    Servers {
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
        /// The server (a command name under `mount`).
        server: String,
        /// TOOL, then its flags, passed through untouched.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// List tools, one line each: all servers, or one.
    Tools {
        #[command(flatten)]
        at: call::At,
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
    /// The built-in demo MCP server (stdio), used by the bundled demo config.
    #[command(hide = true)]
    DemoServer,
}

fn main() -> ExitCode {
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
        | Cmd::Audit { .. } => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
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
            Cmd::Serve { config, listen } => serve(config.as_deref(), listen).await,
            Cmd::Check { config } => check(config.as_deref(), false).await,
            Cmd::Servers {
                url: Some(url),
                json,
                ..
            } => servers_from_gateway(&url, json).await,
            Cmd::Servers { config, json, .. } => check(config.as_deref(), json).await,
            Cmd::Call {
                at,
                tools_file,
                server,
                rest,
            } => call::call(&at, tools_file.as_deref(), &server, &rest).await,
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
            Cmd::DemoServer => ExitCode::SUCCESS,
        }
    })
}

/// Loads the config from a path, ./mcpgate.toml, or the bundled demo.
pub(crate) fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    let result = match path {
        Some(p) => Config::load(p),
        None if Path::new("mcpgate.toml").exists() => Config::load(Path::new("mcpgate.toml")),
        None => {
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "mcpgate".into());
            let text = include_str!("../../../examples/demo.toml")
                .replace("${MCPGATE_EXE}", &exe.replace('\\', "\\\\"));
            Config::parse(Path::new("(bundled demo config)"), &text)
        }
    };
    result.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

async fn serve(path: Option<&Path>, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let addr = listen.unwrap_or(cfg.listen);
    let listener = match mcpgate_gateway::bind(&cfg, addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    let mut cfg = cfg;
    cfg.listen = local;
    tracing::info!(
        "mcpgate {} serving {} server(s) from {}",
        env!("CARGO_PKG_VERSION"),
        cfg.servers.len(),
        cfg.file.display()
    );
    let store = match open_store(&cfg).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    tracing::info!(
        "store: {}; auth: {}",
        store.describe(),
        match cfg.policy.auth {
            mcpgate_gateway::config::AuthMode::Keys => "bearer keys",
            mcpgate_gateway::config::AuthMode::None =>
                "none (anonymous tenant 'local', loopback only)",
        }
    );
    let app = App::new(cfg, store);
    println!("listening on http://{local}/mcp");
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: stopping upstreams");
        shutdown.cancel();
    });
    match mcpgate_gateway::serve(app, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

/// Opens the store and checks it against the config (every tenant's plan mapped).
async fn open_store(cfg: &Config) -> Result<mcpgate_store::Store, ExitCode> {
    let store = mcpgate_gateway::open_store(cfg).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(3)
    })?;
    mcpgate_gateway::prepare_store(cfg, &store)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?;
    Ok(store)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Starts every upstream once, waits until each is up or has failed, and reports.
async fn check(path: Option<&Path>, json: bool) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !json {
        println!(
            "config {}: ok ({} server(s), listen {})",
            cfg.file.display(),
            cfg.servers.len(),
            cfg.listen
        );
    }
    let store = match open_store(&cfg).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let app = App::new(cfg, store);
    app.probe().await;
    let health = serde_json::to_value(mcpgate_gateway::health::snapshot(&app)).unwrap_or_default();
    stop(app).await;
    report(&health, json)
}

async fn servers_from_gateway(url: &str, json: bool) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = url.trim_end_matches('/').trim_end_matches("/mcp");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    // A gateway with auth = "keys" shows upstream details to admin keys only.
    let mut req = client.get(format!("{base}/health"));
    if let Ok(k) = std::env::var("MCPGATE_ADMIN_KEY") {
        req = req.bearer_auth(k.trim());
    }
    let health = match req.send().await {
        Ok(r) => match r
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            Some(v) => v,
            None => {
                eprintln!("error: {base}/health did not answer JSON; is it an mcpgate gateway?");
                return ExitCode::from(3);
            }
        },
        Err(e) => {
            eprintln!("error: cannot reach {base}/health: {}", e.without_url());
            return ExitCode::from(3);
        }
    };
    report(&health, json)
}

/// Prints the health document as a table (or JSON); exit 0 only when every upstream is ready.
fn report(health: &serde_json::Value, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(health).unwrap_or_default()
        );
    } else {
        print!("{}", servers_table(health));
    }
    if health["status"] == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn servers_table(h: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let mut out = format!(
        "{:<20} {:<6} {:<15} {:>5} {:>10}  DETAIL\n",
        "SERVER", "KIND", "STATUS", "TOOLS", "LATENCY"
    );
    for srv in h["servers"].as_array().into_iter().flatten() {
        let detail = match srv.get("error").and_then(|e| e.as_str()) {
            Some(e) => e.to_owned(),
            None => format!(
                "{} {} (protocol {})",
                s(&srv["server_name"]),
                s(&srv["server_version"]),
                srv["protocol_version"].as_str().unwrap_or("?")
            ),
        };
        let latency = srv["latency_ms"]
            .as_f64()
            .map(|ms| format!("{ms:.1} ms"))
            .unwrap_or_else(|| "-".into());
        let status = if srv["breaker_open"] == true {
            format!("{} (breaker)", s(&srv["status"]))
        } else {
            s(&srv["status"])
        };
        let _ = writeln!(
            out,
            "{:<20} {:<6} {:<15} {:>5} {:>10}  {}",
            s(&srv["name"]),
            s(&srv["transport"]),
            status,
            srv["tools"].as_u64().unwrap_or(0),
            latency,
            detail
        );
    }
    for c in h["collisions"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "collision: {}", s(c));
    }
    out
}

async fn stop(app: Arc<App>) {
    app.stop().await;
}
