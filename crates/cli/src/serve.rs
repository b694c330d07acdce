//! `mcpgate serve`: bind (loopback unless clients must authenticate), open
//! the store, and serve until SIGTERM or SIGINT. SIGHUP re-reads the config
//! (`mcpgate_gateway::reload`): a bad one is logged and the old one kept.

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
    // SQLite: balances in memory, reservations made durable in the ledger's
    // journal instead of one database commit per call.
    match store.open_journal(cfg.policy.ledger_sync).await {
        Ok(true) => tracing::info!("ledger: balances in memory, reservations journaled"),
        Ok(false) => {}
        Err(e) => {
            eprintln!("error: cannot open the ledger journal: {e}");
            return ExitCode::from(3);
        }
    }
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
    let reloading = app.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading {}", reloading.cfg.file.display());
            let _ = mcpgate_gateway::reload(&reloading).await;
        }
    });
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

/// `mcpgate reload --url URL`: asks a running gateway to re-read its config
/// (`POST /admin/reload`, with the admin key from `MCPGATE_ADMIN_KEY`).
/// Exit 0 applied, 2 the new config was refused (the old one stays), 3 no
/// connection or the key was refused.
pub(crate) async fn reload(url: &str) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = url.trim_end_matches('/').trim_end_matches("/mcp");
    let Ok(client) = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
    else {
        return ExitCode::from(3);
    };
    let mut req = client.post(format!("{base}/admin/reload"));
    match std::env::var("MCPGATE_ADMIN_KEY") {
        Ok(k) if !k.trim().is_empty() => req = req.bearer_auth(k.trim()),
        _ => {
            eprintln!(
                "error: set MCPGATE_ADMIN_KEY to an admin key (`mcpgate keys create --admin`), \
                 or send the gateway SIGHUP"
            );
            return ExitCode::from(2);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach {base}: {}", e.without_url());
            return ExitCode::from(3);
        }
    };
    let status = resp.status();
    let body: serde_json::Value = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let say = |v: &serde_json::Value| {
        v.get("error")
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    match status.as_u16() {
        200 => {
            println!(
                "reloaded {}: plans and tiers {}",
                crate::terminal::safe(body["file"].as_str().unwrap_or("?")),
                if body["policy_changed"] == true {
                    "changed and applied"
                } else {
                    "unchanged"
                }
            );
            for (what, key) in [
                ("added", "servers_added"),
                ("removed", "servers_removed"),
                ("restarted", "servers_changed"),
            ] {
                let names: Vec<&str> = body[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str())
                    .collect();
                if !names.is_empty() {
                    println!(
                        "servers {what}: {}",
                        crate::terminal::safe(&names.join(", "))
                    );
                }
            }
            for r in body["needs_restart"].as_array().into_iter().flatten() {
                println!(
                    "needs a restart: {}",
                    crate::terminal::safe(r.as_str().unwrap_or(""))
                );
            }
            ExitCode::SUCCESS
        }
        400 => {
            eprintln!(
                "error: the gateway refused the new config and keeps the old one: {}",
                crate::terminal::safe(&say(&body))
            );
            ExitCode::from(2)
        }
        s => {
            eprintln!(
                "error: {base}/admin/reload answered {s}: {}",
                crate::terminal::safe(&say(&body))
            );
            ExitCode::from(3)
        }
    }
}
