//! Loading the config (a path, ./mcpgate.toml, or the bundled demo) and
//! opening the store it names, with the exit codes the CLI documents: 2 for a
//! config error, 3 when the store cannot be opened.

use std::path::Path;
use std::process::ExitCode;

use mcpgate_gateway::Config;

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

/// Opens the store and checks it against the config (every tenant's plan mapped).
pub(crate) async fn open_store(cfg: &Config) -> Result<mcpgate_store::Store, ExitCode> {
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
