//! The JSON admin API under `/admin/` (admin keys only, Origin checked as on
//! `/mcp`): tenants, balances, keys, usage and audit. The operations and
//! their validation are `mcp::admin`'s, shared with the CLI; this module only
//! reads requests and writes answers. `POST /admin/reload` re-reads the config;
//! `/admin/servers` lists, adds and removes servers (`mcp::servers`);
//! `/admin/oauth/requests` lists the OAuth authorizations waiting for an
//! administrator and decides them (`state::oauth_approvals`).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use mcpgate_store::AuditFilter;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::edge::is_body_timeout;
use super::guard::{admit_admin, body_timed_out};
use super::refusal::Refusal;
use crate::mcp::admin::{AdminError, check_plan, expiry_from, since_from, tenant_view};
use crate::state::App;

/// The `/admin/` routes.
pub(crate) fn router() -> Router<Arc<App>> {
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
        .route("/admin/reload", post(reload))
        .route("/admin/servers", get(list_servers).post(add_server))
        .route("/admin/servers/{name}", delete(remove_server))
        .route("/admin/oauth/requests", get(oauth_requests))
        .route("/admin/oauth/requests/{id}", post(decide_oauth_request))
}

/// `GET /admin/oauth/requests`: OAuth authorizations waiting for an administrator.
async fn oauth_requests(State(app): State<Arc<App>>, h: HeaderMap) -> Answer {
    admit_admin(&app, &h).await?;
    done(StatusCode::OK, app.auth.oauth.approvals.list())
}

#[derive(Deserialize)]
struct OAuthDecision {
    /// `"approve"` or `"deny"`.
    decision: String,
    /// The tenant an approved client acts for.
    tenant: Option<String>,
}

/// `POST /admin/oauth/requests/{id}` `{"decision": "approve", "tenant": T}`
/// or `{"decision": "deny"}`. Approving makes the client a key of its own
/// for the tenant (named after it; revoking it ends the client's tokens).
async fn decide_oauth_request(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<OAuthDecision>, JsonRejection>,
) -> Answer {
    use crate::state::oauth_approvals::{DecideError, Decision};
    admit_admin(&app, &h).await?;
    let d = body(b)?;
    let approvals = &app.auth.oauth.approvals;
    let refused = |e: DecideError| -> Refusal {
        match e {
            DecideError::NotFound(_) => AdminError::NotFound(e.to_string()),
            DecideError::Decided(_) => AdminError::Conflict(e.to_string()),
        }
        .into()
    };
    match (d.decision.as_str(), d.tenant) {
        ("deny", _) => {
            approvals.decide(&id, Decision::Denied).map_err(refused)?;
            tracing::info!(request = %id, "OAuth: an administrator denied an authorization");
            done(StatusCode::OK, json!({ "denied": id }))
        }
        ("approve", Some(tenant)) => {
            let asked = approvals.asked(&id).map_err(refused)?;
            if app.store.tenant(&tenant).await?.is_none() {
                return Err(AdminError::NotFound(format!("no tenant named '{tenant}'")).into());
            }
            let label = format!(
                "OAuth client {} (request {})",
                asked.client_name.as_deref().unwrap_or("without a name"),
                id.trim().to_ascii_uppercase()
            );
            let created = app
                .store
                .create_key(Some(&tenant), Some(&label), None)
                .await?;
            let key = created.info.id.clone();
            if let Err(e) = approvals.decide(
                &id,
                Decision::Approved {
                    key: key.clone(),
                    tenant: tenant.clone(),
                },
            ) {
                // Decided meanwhile by another administrator: the key goes.
                let _ = app.store.revoke_key(&key).await;
                return Err(refused(e));
            }
            tracing::info!(request = %id, tenant = %tenant, key = %key, "OAuth: an administrator approved an authorization");
            done(
                StatusCode::OK,
                json!({ "approved": id, "tenant": tenant, "key_id": key }),
            )
        }
        ("approve", None) => Err(AdminError::BadRequest(
            "approving needs \"tenant\": the tenant the client will act for".into(),
        )
        .into()),
        (other, _) => Err(AdminError::BadRequest(format!(
            "\"decision\" must be \"approve\" or \"deny\", not {other:?}"
        ))
        .into()),
    }
}

/// `GET /admin/servers`: each server's state, as `/health` shows it to admins.
async fn list_servers(State(app): State<Arc<App>>, h: HeaderMap) -> Answer {
    admit_admin(&app, &h).await?;
    let health = serde_json::to_value(crate::mcp::health::snapshot(&app)).unwrap_or_default();
    done(
        StatusCode::OK,
        health.get("servers").cloned().unwrap_or_default(),
    )
}

#[derive(Deserialize)]
struct NewServer {
    name: String,
    /// The keys of a config file's `[servers.NAME]` table.
    #[serde(flatten)]
    table: serde_json::Map<String, serde_json::Value>,
}

fn server_change(e: crate::mcp::servers::ServerChangeError) -> Refusal {
    use crate::mcp::servers::ServerChangeError as E;
    match e {
        E::Invalid(m) => AdminError::BadRequest(m),
        E::Exists(_) => AdminError::Conflict(e.to_string()),
        E::NotFound(_) => AdminError::NotFound(e.to_string()),
    }
    .into()
}

/// `POST /admin/servers` `{"name": ..., "command"|"url": ..., ...}`: validated
/// as the config would be, then started; `201`.
async fn add_server(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    b: Result<Json<NewServer>, JsonRejection>,
) -> Answer {
    admit_admin(&app, &h).await?;
    let s = body(b)?;
    crate::mcp::servers::add_table(&app, &s.name, &serde_json::Value::Object(s.table))
        .await
        .map_err(server_change)?;
    done(StatusCode::CREATED, json!({ "added": s.name }))
}

/// `DELETE /admin/servers/{name}`: unpublished and stopped.
async fn remove_server(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    admit_admin(&app, &h).await?;
    crate::mcp::servers::remove_named(&app, &name)
        .await
        .map_err(server_change)?;
    done(StatusCode::OK, json!({ "removed": name }))
}

/// The config with the plans and tiers in force (a reload may have changed them).
fn cfg_now(app: &App) -> crate::config::Config {
    let mut cfg = app.cfg.clone();
    cfg.policy = (*app.auth.policy()).clone();
    cfg
}

/// `POST /admin/reload`: re-reads the config file (see `state::reload`); a
/// refused one is a 400 naming the problem, and the running config stays.
async fn reload(State(app): State<Arc<App>>, h: HeaderMap) -> Answer {
    admit_admin(&app, &h).await?;
    match crate::mcp::reload::reload(&app).await {
        Ok(r) => done(StatusCode::OK, r),
        Err(e) => Err(AdminError::BadRequest(e).into()),
    }
}

type Answer = Result<Response, Refusal>;

fn done<T: Serialize>(status: StatusCode, v: T) -> Answer {
    Ok((status, Json(v)).into_response())
}

/// A JSON body the handler could not read is the admin API's 400; one that
/// did not arrive in time is 408.
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, Refusal> {
    b.map(|Json(t)| t).map_err(|e| {
        if is_body_timeout(&e) {
            body_timed_out()
        } else {
            AdminError::BadRequest(e.body_text()).into()
        }
    })
}

/// Waits until every usage and audit record queued so far is stored, so
/// that what the admin API reads includes every call already answered
/// (the ledger writer gathers records for a moment before it stores them).
async fn settled(app: &App) {
    if let Err(e) = app.store.ledger().flush().await {
        tracing::warn!("admin read without the latest usage records: {e}");
    }
}

async fn list_tenants(State(app): State<Arc<App>>, h: HeaderMap) -> Answer {
    admit_admin(&app, &h).await?;
    settled(&app).await;
    done(StatusCode::OK, app.store.list_tenants().await?)
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
    b: Result<Json<NewTenant>, JsonRejection>,
) -> Answer {
    admit_admin(&app, &h).await?;
    let t = body(b)?;
    check_plan(&cfg_now(&app), &t.plan)?;
    let tenant = app
        .store
        .add_tenant(&t.name, &t.plan, t.balance, t.monthly_allowance)
        .await?;
    done(StatusCode::CREATED, tenant)
}

async fn show_tenant(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    admit_admin(&app, &h).await?;
    settled(&app).await;
    let t = app
        .store
        .tenant(&name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no tenant named '{name}'")))?;
    done(
        StatusCode::OK,
        tenant_view(&cfg_now(&app), &app.catalog(), t),
    )
}

#[derive(Deserialize)]
struct Balance {
    balance: Option<i64>,
}

async fn set_balance(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
    b: Result<Json<Balance>, JsonRejection>,
) -> Answer {
    admit_admin(&app, &h).await?;
    let b = body(b)?;
    done(
        StatusCode::OK,
        app.store.set_balance(&name, b.balance).await?,
    )
}

#[derive(Deserialize)]
struct KeyQuery {
    tenant: Option<String>,
}

async fn list_keys(State(app): State<Arc<App>>, h: HeaderMap, Query(q): Query<KeyQuery>) -> Answer {
    admit_admin(&app, &h).await?;
    done(
        StatusCode::OK,
        app.store.list_keys(q.tenant.as_deref()).await?,
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
    b: Result<Json<NewKey>, JsonRejection>,
) -> Answer {
    admit_admin(&app, &h).await?;
    let k = body(b)?;
    if k.admin == k.tenant.is_some() {
        return Err(AdminError::BadRequest(
            "give either \"tenant\" (a key for /mcp) or \"admin\": true (a key for /admin/)".into(),
        )
        .into());
    }
    let expires = k.expires.as_deref().map(expiry_from).transpose()?;
    let created = app
        .store
        .create_key(k.tenant.as_deref(), k.name.as_deref(), expires)
        .await?;
    done(
        StatusCode::CREATED,
        json!({ "key": created.token, "info": created.info }),
    )
}

async fn revoke_key(State(app): State<Arc<App>>, h: HeaderMap, Path(id): Path<String>) -> Answer {
    admit_admin(&app, &h).await?;
    done(StatusCode::OK, app.store.revoke_key(&id).await?)
}

#[derive(Deserialize)]
struct UsageQuery {
    tenant: Option<String>,
    since: Option<String>,
    tool: Option<String>,
    limit: Option<i64>,
    /// Only calls made with this agent run's key (`/admin/audit?run=ID`).
    run: Option<String>,
}

async fn usage(State(app): State<Arc<App>>, h: HeaderMap, Query(q): Query<UsageQuery>) -> Answer {
    admit_admin(&app, &h).await?;
    settled(&app).await;
    let since = q.since.as_deref().map(since_from).transpose()?;
    done(
        StatusCode::OK,
        app.store.usage_summary(q.tenant.as_deref(), since).await?,
    )
}

async fn audit(State(app): State<Arc<App>>, h: HeaderMap, Query(q): Query<UsageQuery>) -> Answer {
    admit_admin(&app, &h).await?;
    settled(&app).await;
    let filter = AuditFilter {
        tenant: q.tenant,
        name_glob: q.tool,
        since_ms: q.since.as_deref().map(since_from).transpose()?,
        limit: Some(q.limit.unwrap_or(1000).clamp(1, 100_000)),
        run: q.run,
    };
    done(StatusCode::OK, app.store.audit(&filter).await?)
}
