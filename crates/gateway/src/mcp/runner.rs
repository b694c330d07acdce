//! Starting and stopping the runner of agent runs with the gateway: the
//! backend from `[runs] backend` (bubblewrap, probed now; if it cannot be
//! used, runs are refused with the reason while MCP is served as usual), the
//! runner over the SQL store with `RunKeys` as its hooks, and the relay from
//! a loopback port inside each sandbox to the gateway's Unix socket. The
//! sandbox's first process is this very executable's hidden `sandbox-init`
//! subcommand. With `backend = "kubernetes"` runs are Jobs on a cluster
//! (`[runs.kubernetes]`), whose pods reach the gateway at `gateway_url`.

use std::path::PathBuf;
use std::sync::Arc;

use mcpgate_runs::{
    AgentPrograms, Backend, HostRelay, InitProgram, LocalConfig, RunStore, Runner, RunnerConfig,
};

use super::runs::RunKeys;
use crate::config::RunBackend;
use crate::state::App;

/// Where the gateway's Unix socket for run sandboxes lives.
pub(crate) fn socket_path(app: &App) -> PathBuf {
    app.cfg.data_dir.join("run").join("gateway.sock")
}

/// Starts the runner; `tcp` is the gateway's TCP address, `socket` its Unix
/// socket. Failure is recorded in `app.runs` (submits then say why).
pub(crate) async fn start(app: &Arc<App>, tcp: std::net::SocketAddr, socket: Option<PathBuf>) {
    let result = try_start(app, tcp, socket).await;
    if let Err(why) = &result {
        tracing::error!("agent runs are disabled: {why}");
    }
    app.runs.set_runner(result);
}

async fn try_start(
    app: &Arc<App>,
    tcp: std::net::SocketAddr,
    socket: Option<PathBuf>,
) -> Result<Runner, String> {
    let settings = &app.cfg.runs;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the mcpgate executable for sandbox-init: {e}"))?;
    let init = InitProgram {
        program: exe,
        args: vec!["sandbox-init".into()],
    };
    let mut config = RunnerConfig::new(&app.cfg.data_dir);
    config.max_concurrent = settings.max_concurrent;
    config.per_tenant_max = settings.per_tenant_max;
    config.agents = AgentPrograms {
        claude_code: settings.claude_code.clone(),
        codex: settings.codex.clone(),
    };
    let (backend, gateway_url) = match settings.backend {
        RunBackend::Local => {
            let socket = socket.ok_or(
                "the gateway's Unix socket for sandboxes could not be opened (see the log above)",
            )?;
            let backend = Backend::local(LocalConfig { bwrap: None, init })
                .await
                .map_err(|e| {
                    format!(
                        "the bubblewrap sandbox cannot be used on this host: {e}; runs are refused (install bubblewrap, or set [runs] backend = \"unsandboxed\" to run agents without isolation)"
                    )
                })?;
            config.relays = vec![HostRelay {
                port: tcp.port(),
                socket,
            }];
            (backend, format!("http://127.0.0.1:{}", tcp.port()))
        }
        RunBackend::Kubernetes => {
            let cluster = settings
                .kubernetes
                .clone()
                .ok_or("[runs] backend = \"kubernetes\" needs [runs.kubernetes]")?;
            if cluster.gateway_url.is_none() {
                tracing::warn!(
                    "[runs.kubernetes] gateway_url is not set: run pods will be told to reach the gateway at http://{tcp}; set it to the address pods can reach (e.g. the in-cluster Service URL)"
                );
            }
            let backend = Backend::kubernetes(cluster)
                .await
                .map_err(|e| format!("the Kubernetes backend cannot be used: {e}"))?;
            (backend, format!("http://{tcp}"))
        }
        RunBackend::Unsandboxed => {
            tracing::warn!(
                "[runs] backend = \"unsandboxed\": agents run as this user with no isolation"
            );
            (Backend::unsandboxed(init), format!("http://{tcp}"))
        }
    };
    let store: Arc<dyn RunStore> = Arc::new(app.runs.sql.clone());
    let hooks = Arc::new(RunKeys {
        app: Arc::downgrade(app),
        gateway_url,
    });
    Runner::start(config, backend, store, hooks)
        .await
        .map_err(|e| format!("the runner could not start: {e}"))
}

/// Stops the runner (running runs end `failed`, queued ones wait for the next start).
pub(crate) async fn stop(app: &App) {
    if let Ok(runner) = app.runs.runner() {
        runner.shutdown().await;
    }
}
