//! Tenant and key administration, shared by the CLI (`mcpgate tenants|keys|usage|audit`,
//! which works on the store directly, gateway running or not) and the JSON
//! admin API under `/admin/` (behind admin keys). Both go through the same
//! operations here, so a plan is validated against `[plans]` the same way
//! wherever a tenant is created.

use mcpgate_proto::duration::parse_duration;
use mcpgate_store::{StoreError, Tenant, now_ms};
use serde::Serialize;

use crate::config::Config;
use crate::state::catalog::Catalog;

/// Why an admin operation failed, with the HTTP status the API gives it.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        match e {
            StoreError::NotFound(m) => AdminError::NotFound(format!("not found: {m}")),
            StoreError::AlreadyExists(m) => AdminError::Conflict(format!("already exists: {m}")),
            StoreError::Invalid(m) => AdminError::BadRequest(m),
            StoreError::Db(m) => AdminError::Store(m),
        }
    }
}

/// The plan must map to a tier in this config.
pub fn check_plan(cfg: &Config, plan: &str) -> Result<(), AdminError> {
    if cfg.policy.tier_for_plan(plan).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = cfg.policy.plans.keys().map(String::as_str).collect();
    Err(AdminError::BadRequest(format!(
        "plan '{plan}' is not mapped to a tier in {}; mapped plans: {}",
        cfg.file.display(),
        if known.is_empty() {
            "none (add a [plans] table)".to_owned()
        } else {
            known.join(", ")
        }
    )))
}

/// A duration from a client or the command line, in whole milliseconds; the
/// error names the value. The shared parser never panics, so a lifetime of
/// `999999999999999d` is a 400 (exit 2 in the CLI), not a dropped connection.
fn millis(spec: &str, what: &str) -> Result<i64, AdminError> {
    let d = parse_duration(spec)
        .map_err(|e| AdminError::BadRequest(format!("{what} {spec:?}: {e}")))?;
    i64::try_from(d.as_millis()).map_err(|_| {
        AdminError::BadRequest(format!(
            "{what} {spec:?}: duration too long to be a point in time"
        ))
    })
}

/// "30d", "12h", "90m": a key lifetime, as an absolute expiry in ms.
pub fn expiry_from(spec: &str) -> Result<i64, AdminError> {
    let ms = millis(spec, "expires")?;
    if ms == 0 {
        return Err(AdminError::BadRequest(format!(
            "expires {spec:?}: a key lifetime must be longer than zero, like \"30d\", \"12h\" or \"90m\""
        )));
    }
    now_ms().checked_add(ms).ok_or_else(|| {
        AdminError::BadRequest(format!(
            "expires {spec:?}: duration too long to be a point in time"
        ))
    })
}

/// "7d", "24h": a look-back window, as an absolute start in ms (a window
/// longer than the ledger's history simply covers all of it).
pub fn since_from(spec: &str) -> Result<i64, AdminError> {
    Ok(now_ms().saturating_sub(millis(spec, "since")?))
}

/// What a tenant sees: its tier and the names visible to it in a catalog.
#[derive(Debug, Serialize)]
pub struct TenantView {
    pub tenant: Tenant,
    pub tier: Option<String>,
    pub rate: Option<String>,
    pub max_concurrent: Option<usize>,
    pub tools: Vec<String>,
    pub prompts: Vec<String>,
    pub resources: Vec<String>,
    pub resource_templates: Vec<String>,
    /// Tools in the catalog at all (so "0 of 40" reads as a mistake, not an empty gateway).
    pub catalog_tools: usize,
}

pub fn tenant_view(cfg: &Config, catalog: &Catalog, tenant: Tenant) -> TenantView {
    let tier = cfg.policy.tier_for_plan(&tenant.plan);
    let names = |items: &[Box<serde_json::value::RawValue>], key: &str| -> Vec<String> {
        items
            .iter()
            .filter_map(|i| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(i.get())
                    .ok()?
                    .get(key)?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    };
    let (tools, prompts, resources, templates) = match &tier {
        Some(t) => (
            names(&catalog.tools, "name")
                .into_iter()
                .filter(|n| t.tools.allows(n))
                .collect(),
            names(&catalog.prompts, "name")
                .into_iter()
                .filter(|n| t.prompts.allows(n))
                .collect(),
            names(&catalog.resources, "uri")
                .into_iter()
                .filter(|n| t.resources.allows(n))
                .collect(),
            names(&catalog.templates, "uriTemplate")
                .into_iter()
                .filter(|n| t.resources.allows(n))
                .collect(),
        ),
        None => Default::default(),
    };
    TenantView {
        tier: tier.as_ref().map(|t| t.name.clone()),
        rate: tier
            .as_ref()
            .and_then(|t| t.rate)
            .map(|r| format!("{}/{}s, burst {}", r.count, r.per.as_secs(), r.burst)),
        max_concurrent: tier.as_ref().and_then(|t| t.max_concurrent),
        tools,
        prompts,
        resources,
        resource_templates: templates,
        catalog_tools: catalog.tools.len(),
        tenant,
    }
}
