//! The `mcpgate` binary: parses the command line and wires the library crates
//! together. Logic lives in `mcpgate-gateway` and `mcpgate-upstream`.
//!
//! Exit codes: 0 ok, 1 a checked upstream is not ready, 2 usage or config error,
//! 3 the gateway could not start (address in use, refused bind).

mod demo;

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
            Cmd::Check { config } => check(config.as_deref()).await,
            Cmd::DemoServer => ExitCode::SUCCESS,
        }
    })
}

/// Loads the config from a path, ./mcpgate.toml, or the bundled demo.
fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
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
    let app = App::new(cfg);
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

async fn check(path: Option<&Path>) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!(
        "config {}: ok ({} server(s), listen {})",
        cfg.file.display(),
        cfg.servers.len(),
        cfg.listen
    );
    let app = App::new(cfg);
    app.start();
    // Wait until every upstream has either come up or failed once.
    let deadline = tokio::time::Instant::now()
        + app
            .servers
            .iter()
            .map(|s| s.cfg.spec.connect_timeout)
            .max()
            .unwrap_or_default()
        + Duration::from_secs(1);
    loop {
        let pending = app.servers.iter().any(|s| {
            s.state
                .lock()
                .map(|st| st.status == mcpgate_gateway::upstreams::Status::Starting)
                .unwrap_or(false)
        });
        if !pending || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = mcpgate_gateway::health::snapshot(&app);
    print_servers(&health);
    for c in &health.collisions {
        println!("collision: {c}");
    }
    let all_ready = health.status == "ok";
    stop(app).await;
    if all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_servers(h: &mcpgate_gateway::health::Health) {
    println!(
        "{:<20} {:<6} {:<9} {:>5}  DETAIL",
        "SERVER", "KIND", "STATUS", "TOOLS"
    );
    for s in &h.servers {
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let detail = match (&s.error, &s.server_name) {
            (Some(e), _) => e.clone(),
            (None, Some(n)) => format!(
                "{n} {} (protocol {})",
                s.server_version.as_deref().unwrap_or(""),
                s.protocol_version.as_deref().unwrap_or("?")
            ),
            _ => String::new(),
        };
        println!(
            "{:<20} {:<6} {:<9} {:>5}  {}",
            s.name, s.transport, status, s.tools, detail
        );
    }
}

async fn stop(app: Arc<App>) {
    app.stop().await;
}
