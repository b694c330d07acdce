//! Loading the config (a path, ./mcpgate.toml, or the bundled demo) and
//! opening the store it names, with the exit codes the CLI documents: 2 for a
//! config error, 3 when the store cannot be opened.

use std::path::Path;
use std::process::ExitCode;

use mcpgate_gateway::Config;

/// Loads the config from a path, ./mcpgate.toml, or the bundled demo. On a
/// terminal, a VS Code `${input:ID}` whose `MCPGATE_INPUT_<ID>` is unset is
/// asked for (without echo) instead of being an error.
pub(crate) fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    let mut asked = 0;
    loop {
        match load_config_once(path) {
            Err(e) if asked < 32 => match missing_input(&e).and_then(|var| ask(&e, &var)) {
                Some(()) => asked += 1,
                None => return Err(report(e)),
            },
            Err(e) => return Err(report(e)),
            Ok(c) => return Ok(c),
        }
    }
}

fn report(e: mcpgate_gateway::config::ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// The `MCPGATE_INPUT_…` variable a config error says is unset.
fn missing_input(e: &mcpgate_gateway::config::ConfigError) -> Option<String> {
    let rest = e.message.split("${MCPGATE_INPUT_").nth(1)?;
    Some(format!("MCPGATE_INPUT_{}", rest.split('}').next()?))
}

/// Asks for `var` on the terminal (echo off), if stdin and stderr are one.
fn ask(e: &mcpgate_gateway::config::ConfigError, var: &str) -> Option<()> {
    use std::io::{IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let stty = |arg: &str| {
        std::fs::File::open("/dev/tty").ok().map(|tty| {
            std::process::Command::new("stty")
                .arg(arg)
                .stdin(tty)
                .status()
        })
    };
    eprint!("{} {}: value for {var} (not echoed): ", e.file, e.key);
    let _ = std::io::stderr().flush();
    let _ = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    let _ = stty("echo");
    eprintln!();
    let value = line.trim_end_matches(['\r', '\n']);
    if read.is_err() || value.is_empty() {
        return None;
    }
    mcpgate_gateway::config::provide_input(var, value);
    Some(())
}

fn load_config_once(path: Option<&Path>) -> Result<Config, mcpgate_gateway::config::ConfigError> {
    match path {
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
    }
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

/// The file of the config's SQLite store (`data_dir/mcpgate.db`, or a
/// `sqlite:` database URL); `None` for PostgreSQL.
pub(crate) fn sqlite_file(cfg: &Config) -> Option<std::path::PathBuf> {
    match &cfg.database {
        None => Some(cfg.data_dir.join("mcpgate.db")),
        Some(url) => {
            let rest = url.trim().strip_prefix("sqlite:")?;
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            Some(std::path::PathBuf::from(
                rest.split('?').next().unwrap_or(rest),
            ))
        }
    }
}

/// For commands that only read: the store if it exists, or the SQLite file
/// it would be (`Err`), so that reading never creates a store.
pub(crate) async fn open_existing(
    cfg: &Config,
) -> Result<Result<mcpgate_store::Store, std::path::PathBuf>, ExitCode> {
    if let Some(file) = sqlite_file(cfg).filter(|f| !f.exists()) {
        return Ok(Err(file));
    }
    mcpgate_gateway::open_store(cfg).await.map(Ok).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(3)
    })
}

/// What `check` needs of the store without writing to it: every tenant's
/// plan mapped to a tier (when the store exists).
pub(crate) async fn check_store(cfg: &Config) -> Result<(), ExitCode> {
    let store = match open_existing(cfg).await? {
        Ok(s) => s,
        Err(_) => return Ok(()),
    };
    let tenants = store.list_tenants().await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(3)
    })?;
    let unmapped: Vec<String> = tenants
        .iter()
        .filter(|t| cfg.policy.tier_for_plan(&t.plan).is_none())
        .map(|t| cfg.policy.unmapped_plan(&t.name, &t.plan))
        .collect();
    if unmapped.is_empty() {
        Ok(())
    } else {
        eprintln!("error: {}: {}", cfg.file.display(), unmapped.join("; "));
        Err(ExitCode::from(2))
    }
}

/// A store in a fresh temporary directory, removed when dropped: what `check`
/// probes the upstreams with, so that it writes nothing where it runs.
pub(crate) struct ScratchStore {
    dir: std::path::PathBuf,
}

impl ScratchStore {
    pub(crate) async fn open() -> Result<(ScratchStore, mcpgate_store::Store), ExitCode> {
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-check-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let scratch = ScratchStore { dir };
        match mcpgate_store::Store::open_in_dir(&scratch.dir).await {
            Ok(s) => Ok((scratch, s)),
            Err(e) => {
                eprintln!("error: cannot open a scratch store: {e}");
                Err(ExitCode::from(3))
            }
        }
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
