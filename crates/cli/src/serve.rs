//! `mcpgate serve`: bind (loopback unless clients must authenticate), open
//! the store, and serve until SIGTERM or SIGINT.

use std::path::Path;
use std::process::ExitCode;

use mcpgate_gateway::App;

use crate::setup::{load_config, open_store};

pub(crate) async fn serve(path: Option<&Path>, listen: Option<std::net::SocketAddr>) -> ExitCode {
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
