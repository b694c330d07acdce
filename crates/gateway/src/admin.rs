//! Tenant and key administration, shared by the CLI (`mcpgate tenants|keys|usage|audit`,
//! which works on the store directly, gateway running or not) and the JSON
//! admin API under `/admin/` (behind admin keys). Both go through the same
//! operations here, so a plan is validated against `[plans]` the same way
//! wherever a tenant is created.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use mcpgate_store::{AuditFilter, StoreError, Tenant, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::App;
use crate::catalog::Catalog;
use crate::config::{Config, parse_duration};

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

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
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

/// "30d", "12h", "90m": a key lifetime, as an absolute expiry in ms.
pub fn expiry_from(spec: &str) -> Result<i64, AdminError> {
    let d = parse_duration(spec)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            AdminError::BadRequest(format!(
                "{spec:?} is not a lifetime like \"30d\", \"12h\" or \"90m\""
            ))
        })?;
    Ok(now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// "7d", "24h": a look-back window, as an absolute start in ms.
pub fn since_from(spec: &str) -> Result<i64, AdminError> {
    let d = parse_duration(spec).ok_or_else(|| {
        AdminError::BadRequest(format!("{spec:?} is not a duration like \"7d\" or \"24h\""))
    })?;
    Ok(now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
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

/// The `/admin/` routes (state supplied by the caller).
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/admin/tenants", get(list_tenants).post(add_tenant))
        .route("/admin/tenants/{name}", get(show_tenant))
        .route(
            "/admin/tenants/{name}/balance",
            post(set_balance).put(set_balance),
        )
        .route("/admin/keys", get(list_keys).post(create_key))
        .route("/admin/keys/{id}", delete(revoke_key))
        .route("/admin/usage", get(usage))
        .route("/admin/audit", get(audit))
}

/// Every admin route: Origin as on /mcp, then an admin key.
async fn guard(app: &App, h: &HeaderMap) -> Result<(), Response> {
    crate::transport::check_origin(app, h).map_err(|r| *r)?;
    app.auth
        .admin(h)
        .await
        .map(|_| ())
        .map_err(|e| e.response())
}

macro_rules! guarded {
    ($app:expr, $h:expr) => {
        if let Err(r) = guard(&$app, &$h).await {
            return r;
        }
    };
}

fn done<T: Serialize>(status: StatusCode, r: Result<T, AdminError>) -> Response {
    match r {
        Ok(v) => (status, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_tenants(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    guarded!(app, h);
    done(
        StatusCode::OK,
        app.store.list_tenants().await.map_err(AdminError::from),
    )
}

#[derive(Deserialize)]
struct NewTenant {
    name: String,
    plan: String,
    balance: Option<i64>,
    monthly_allowance: Option<i64>,
}

async fn add_tenant(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    body: Result<Json<NewTenant>, axum::extract::rejection::JsonRejection>,
) -> Response {
    guarded!(app, h);
    let r = async {
        let Json(t) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
        check_plan(&app.cfg, &t.plan)?;
        Ok(app
            .store
            .add_tenant(&t.name, &t.plan, t.balance, t.monthly_allowance)
            .await?)
    }
    .await;
    done(StatusCode::CREATED, r)
}

async fn show_tenant(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    guarded!(app, h);
    let r = async {
        let t = app
            .store
            .tenant(&name)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no tenant named '{name}'")))?;
        Ok(tenant_view(&app.cfg, &app.catalog(), t))
    }
    .await;
    done(StatusCode::OK, r)
}

#[derive(Deserialize)]
struct Balance {
    balance: Option<i64>,
}

async fn set_balance(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Json<Balance>, axum::extract::rejection::JsonRejection>,
) -> Response {
    guarded!(app, h);
    let r = async {
        let Json(b) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
        Ok(app.store.set_balance(&name, b.balance).await?)
    }
    .await;
    done(StatusCode::OK, r)
}

#[derive(Deserialize)]
struct KeyQuery {
    tenant: Option<String>,
}

async fn list_keys(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Query(q): Query<KeyQuery>,
) -> Response {
    guarded!(app, h);
    done(
        StatusCode::OK,
        app.store
            .list_keys(q.tenant.as_deref())
            .await
            .map_err(AdminError::from),
    )
}

#[derive(Deserialize)]
struct NewKey {
    tenant: Option<String>,
    name: Option<String>,
    expires: Option<String>,
    #[serde(default)]
    admin: bool,
}

async fn create_key(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    body: Result<Json<NewKey>, axum::extract::rejection::JsonRejection>,
) -> Response {
    guarded!(app, h);
    let r = async {
        let Json(k) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
        if k.admin == k.tenant.is_some() {
            return Err(AdminError::BadRequest(
                "give either \"tenant\" (a key for /mcp) or \"admin\": true (a key for /admin/)"
                    .into(),
            ));
        }
        let expires = k.expires.as_deref().map(expiry_from).transpose()?;
        let created = app
            .store
            .create_key(k.tenant.as_deref(), k.name.as_deref(), expires)
            .await?;
        Ok(json!({ "key": created.token, "info": created.info }))
    }
    .await;
    done(StatusCode::CREATED, r)
}

async fn revoke_key(State(app): State<Arc<App>>, h: HeaderMap, Path(id): Path<String>) -> Response {
    guarded!(app, h);
    done(
        StatusCode::OK,
        app.store.revoke_key(&id).await.map_err(AdminError::from),
    )
}

#[derive(Deserialize)]
struct UsageQuery {
    tenant: Option<String>,
    since: Option<String>,
    tool: Option<String>,
    limit: Option<i64>,
}

async fn usage(State(app): State<Arc<App>>, h: HeaderMap, Query(q): Query<UsageQuery>) -> Response {
    guarded!(app, h);
    let r = async {
        let since = q.since.as_deref().map(since_from).transpose()?;
        Ok(app.store.usage_summary(q.tenant.as_deref(), since).await?)
    }
    .await;
    done(StatusCode::OK, r)
}

async fn audit(State(app): State<Arc<App>>, h: HeaderMap, Query(q): Query<UsageQuery>) -> Response {
    guarded!(app, h);
    let r = async {
        let filter = AuditFilter {
            tenant: q.tenant,
            name_glob: q.tool,
            since_ms: q.since.as_deref().map(since_from).transpose()?,
            limit: Some(q.limit.unwrap_or(1000).clamp(1, 100_000)),
        };
        Ok(app.store.audit(&filter).await?)
    }
    .await;
    done(StatusCode::OK, r)
}
