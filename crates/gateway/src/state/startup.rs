//! Opening the store a config names and checking it against that config
//! before the gateway serves (an unmapped plan stops start-up), and closing
//! the records of calls a stopped gateway left in flight.

use std::time::Duration;

use mcpgate_store::Store;

use super::parking::PARK_TTL;
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
/// Calls left `pending` by a gateway that stopped mid-call (`kill -9`, a
/// crash) are marked `interrupted`, their debit kept: all of them when no
/// other process is writing to a SQLite store, else (another gateway on the
/// same file, or replicas on PostgreSQL) only those older than
/// `longest_call`, which no live call of this config outlasts. A live call
/// marked by mistake (a replica with longer timeouts) writes its real outcome
/// over the mark when it ends.
pub async fn prepare_store(cfg: &Config, store: &Store) -> Result<(), String> {
    match store.interrupt_pending(longest_call(cfg)).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            "{n} call(s) left pending by a gateway that stopped mid-call are now marked \
             interrupted (their cost stays charged); see `mcpgate audit`"
        ),
        Err(e) => {
            return Err(format!(
                "cannot close the records of interrupted calls: {e}"
            ));
        }
    }
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

/// Longer than any call of this config can be in flight: twice the longer
/// of its longest upstream timeout and the time a parked 2026-07-28 call
/// waits for its client (a call may do both).
fn longest_call(cfg: &Config) -> Duration {
    let timeout = cfg
        .servers
        .iter()
        .map(|s| s.spec.timeout)
        .max()
        .unwrap_or_default();
    timeout.max(PARK_TTL).saturating_mul(2)
}
