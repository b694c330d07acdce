//! Opening the store a config names and checking it against that config
//! before the gateway serves (an unmapped plan stops start-up).

use mcpgate_store::Store;

use crate::config::{self, Config};

/// Opens the store the config names (`database`, or SQLite in `data_dir`).
pub async fn open_store(cfg: &Config) -> Result<Store, String> {
    let r = match &cfg.database {
        Some(url) => Store::open(url).await,
        None => Store::open_in_dir(&cfg.data_dir).await,
    };
    r.map_err(|e| format!("cannot open the store: {e}"))
}

/// Start-up checks of the store against the config: every tenant's plan must
/// map to a tier (an unmapped plan stops the gateway rather than silently
/// showing that tenant nothing), and with `auth = "none"` the anonymous
/// `local` tenant exists (unlimited balance) so its calls are audited like any other.
pub async fn prepare_store(cfg: &Config, store: &Store) -> Result<(), String> {
    let tenants = store.list_tenants().await.map_err(|e| e.to_string())?;
    let unmapped: Vec<String> = tenants
        .iter()
        .filter(|t| cfg.policy.tier_for_plan(&t.plan).is_none())
        .map(|t| cfg.policy.unmapped_plan(&t.name, &t.plan))
        .collect();
    if !unmapped.is_empty() {
        return Err(format!("{}: {}", cfg.file.display(), unmapped.join("; ")));
    }
    if cfg.policy.auth == config::AuthMode::None
        && !tenants.iter().any(|t| t.name == config::LOCAL_TENANT)
    {
        match store
            .add_tenant(config::LOCAL_TENANT, config::LOCAL_PLAN, None, None)
            .await
        {
            Ok(_) | Err(mcpgate_store::StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
