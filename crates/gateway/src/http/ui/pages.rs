//! The overview (upstreams as `/health` reports them, runs in flight, spend
//! today), the servers page (each server's tools, their descriptions and
//! input schemas, and which tiers see each) and the admin's tenants and keys
//! page (create a tenant, set a balance, create a key shown once, revoke a
//! key, last use). The operations are the admin API's (`mcp::admin`, the
//! store); this module only renders them.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use mcpgate_runs::RunFilter;
use mcpgate_store::{CreatedKey, now_ms};
use serde_json::Value;

use super::{Page, Signed, UiError, esc, see_other, url_part, when};
use crate::mcp::admin::{check_plan, expiry_from};
use crate::mcp::health::snapshot;
use crate::mcp::runs::Runs;
use crate::state::App;

pub(crate) async fn overview(State(app): State<Arc<App>>, s: Signed) -> Page {
    let health = snapshot(&app);
    let mut b = String::from("<h1>Overview</h1>");
    let day_start = now_ms() - now_ms().rem_euclid(86_400_000);
    let spent: i64 = app
        .store
        .usage_summary(s.tenant(), Some(day_start))
        .await?
        .iter()
        .map(|u| u.cost)
        .sum();
    let runs = Runs::of(&app);
    let live: Vec<_> = runs
        .list(
            &s.who,
            RunFilter {
                limit: 500,
                ..RunFilter::default()
            },
        )
        .await?
        .into_iter()
        .filter(|r| !r.state.is_final())
        .collect();
    let _ = write!(
        b,
        "<div class=\"cards\"><div class=\"card\">Gateway<b class=\"status-{st}\">{st}</b></div><div class=\"card\">Upstreams<b>{}</b></div><div class=\"card\">Tools<b>{}</b></div><div class=\"card\">Runs in flight<b id=\"in-flight\">{}</b></div><div class=\"card\">Spent today<b id=\"spent-today\">{spent}</b></div></div>",
        health.servers.len(),
        health.tools,
        live.len(),
        st = esc(health.status),
    );
    if s.is_admin() || app.auth.mode() == crate::config::AuthMode::None {
        b.push_str("<h2>Upstreams</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Server</th><th scope=\"col\">Status</th><th scope=\"col\">Tools</th><th scope=\"col\">Latency</th><th scope=\"col\" class=\"hide-narrow\">Transport</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
        for sv in &health.servers {
            let status = serde_json::to_value(sv.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut detail = Vec::new();
            if let Some(n) = &sv.server_name {
                detail.push(format!(
                    "{n} {}",
                    sv.server_version.as_deref().unwrap_or("")
                ));
            }
            if let Some(e) = &sv.error {
                detail.push(e.clone());
            }
            if sv.breaker_open {
                detail.push("breaker open".into());
            }
            if sv.restarts > 0 {
                detail.push(format!("{} restarts", sv.restarts));
            }
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"status-{status}\">{status}</td><td>{}</td><td>{}</td><td class=\"hide-narrow\">{}</td><td>{}</td></tr>",
                esc(&sv.name),
                sv.tools,
                sv.latency_ms
                    .map(|l| format!("{l:.1} ms"))
                    .unwrap_or_else(|| "—".into()),
                esc(sv.transport),
                esc(&detail.join("; "))
            );
        }
        if health.servers.is_empty() {
            b.push_str("<tr><td colspan=\"6\">No upstream servers are configured.</td></tr>");
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("<h2>Runs in flight</h2>");
    b.push_str(&super::runs::run_table(&live));
    Ok(s.page("Overview", &b))
}

/// A tool as the catalog lists it.
struct ToolRow {
    name: String,
    description: String,
    schema: String,
}

fn tool_rows(app: &App) -> Vec<(String, ToolRow)> {
    let catalog = app.catalog();
    catalog
        .tools
        .iter()
        .filter_map(|raw| {
            let v: Value = serde_json::from_str(raw.get()).ok()?;
            let name = v.get("name")?.as_str()?.to_owned();
            let server = catalog
                .tool(&name)
                .map(|r| r.server.to_string())
                .unwrap_or_default();
            let schema = v
                .get("inputSchema")
                .and_then(|s| serde_json::to_string_pretty(s).ok())
                .unwrap_or_default();
            Some((
                server,
                ToolRow {
                    description: v
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    name,
                    schema,
                },
            ))
        })
        .collect()
}

pub(crate) async fn servers(State(app): State<Arc<App>>, s: Signed) -> Page {
    let mut rows = tool_rows(&app);
    rows.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
    let tiers: Vec<_> = app.cfg.policy.tiers.values().cloned().collect();
    let mine = match &s.who {
        crate::mcp::runs::Caller::Tenant(p) => Some(p.tier.clone()),
        crate::mcp::runs::Caller::Admin => None,
    };
    let mut b = String::from("<h1>Servers</h1>");
    if mine.is_some() {
        b.push_str("<p class=\"hint\">The tools your tenant's tier sees.</p>");
    }
    let health = snapshot(&app);
    let mut shown = 0;
    for sv in &health.servers {
        let tools: Vec<&ToolRow> = rows
            .iter()
            .filter(|(server, t)| {
                *server == sv.name && mine.as_ref().is_none_or(|tier| tier.tools.allows(&t.name))
            })
            .map(|(_, t)| t)
            .collect();
        if mine.is_some() && tools.is_empty() {
            continue;
        }
        shown += 1;
        let status = serde_json::to_value(sv.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if mine.is_none() {
            let _ = write!(
                b,
                "<h2>{} <span class=\"status-{status}\">{status}</span></h2>",
                esc(&sv.name)
            );
        } else {
            let _ = write!(b, "<h2>{}</h2>", esc(&sv.name));
        }
        if tools.is_empty() {
            b.push_str("<p>No tools listed.</p>");
            continue;
        }
        let _ = write!(
            b,
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Tool</th><th scope=\"col\">Description and input schema</th>{}</tr></thead><tbody>",
            if mine.is_none() {
                "<th scope=\"col\">Tiers that see it</th>"
            } else {
                ""
            }
        );
        for t in tools {
            let seen_by = if mine.is_none() {
                let names: Vec<&str> = tiers
                    .iter()
                    .filter(|tier| tier.tools.allows(&t.name))
                    .map(|tier| tier.name.as_str())
                    .collect();
                format!(
                    "<td>{}</td>",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        esc(&names.join(", "))
                    }
                )
            } else {
                String::new()
            };
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}<details><summary>Input schema</summary><pre>{}</pre></details></td>{seen_by}</tr>",
                esc(&t.name),
                esc(&t.description),
                esc(&t.schema)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    if shown == 0 {
        b.push_str("<p>No tools to show.</p>");
    }
    Ok(s.page("Servers", &b))
}

pub(crate) async fn tenants(State(app): State<Arc<App>>, s: Signed) -> Page {
    s.require_admin()?;
    tenants_page(&app, &s, None, None).await
}

async fn tenants_page(
    app: &App,
    s: &Signed,
    created: Option<&CreatedKey>,
    error: Option<&str>,
) -> Page {
    let tenants = app.store.list_tenants().await?;
    let keys = app.store.list_keys(None).await?;
    let csrf = s.csrf_field();
    let mut b = String::from("<h1>Tenants and keys</h1>");
    if let Some(e) = error {
        let _ = write!(b, "<p class=\"error\" role=\"alert\">{}</p>", esc(e));
    }
    if let Some(k) = created {
        let _ = write!(
            b,
            "<div class=\"secret\" role=\"status\"><span>New key <b>{}</b> (shown once; copy it now):</span><code id=\"new-key\">{}</code><button type=\"button\" data-copy=\"new-key\">Copy</button></div>",
            esc(&k.info.id),
            esc(&k.token)
        );
    }
    b.push_str("<h2>Tenants</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Tenant</th><th scope=\"col\">Plan</th><th scope=\"col\">Balance</th><th scope=\"col\">Set balance</th></tr></thead><tbody>");
    for t in &tenants {
        let id = format!("bal-{}", esc(&t.name));
        let _ = write!(
            b,
            "<tr><td>{n}</td><td>{}</td><td>{}</td><td><form method=\"post\" class=\"inline\" action=\"/ui/tenants/{}/balance\">{csrf}<label for=\"{id}\" class=\"sr\">Balance of {n}</label><input id=\"{id}\" name=\"balance\" type=\"number\" placeholder=\"unlimited\" value=\"{}\"><button type=\"submit\">Set</button></form></td></tr>",
            esc(&t.plan),
            t.balance
                .map(|x| x.to_string())
                .unwrap_or_else(|| "unlimited".into()),
            url_part(&t.name),
            t.balance.map(|x| x.to_string()).unwrap_or_default(),
            n = esc(&t.name),
        );
    }
    if tenants.is_empty() {
        b.push_str("<tr><td colspan=\"4\">No tenants yet.</td></tr>");
    }
    b.push_str("</tbody></table></div>");
    let plans: String = app
        .cfg
        .policy
        .plans
        .keys()
        .map(|p| format!("<option>{}</option>", esc(p)))
        .collect();
    let _ = write!(
        b,
        "<h2>Create a tenant</h2><form method=\"post\" action=\"/ui/tenants\" class=\"grid\">{csrf}<div><label for=\"t-name\">Name</label><input id=\"t-name\" name=\"name\" type=\"text\" required></div><div><label for=\"t-plan\">Plan</label><select id=\"t-plan\" name=\"plan\">{plans}</select></div><div><label for=\"t-balance\">Balance (blank: unlimited)</label><input id=\"t-balance\" name=\"balance\" type=\"number\"></div><div><button type=\"submit\">Create tenant</button></div></form>"
    );
    b.push_str("<h2>Keys</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Key id</th><th scope=\"col\">Tenant</th><th scope=\"col\">Name</th><th scope=\"col\">Last used</th><th scope=\"col\" class=\"hide-narrow\">Created</th><th scope=\"col\" class=\"hide-narrow\">Expires</th><th scope=\"col\">State</th></tr></thead><tbody>");
    for k in keys.iter().filter(|k| {
        !k.label.as_deref().is_some_and(|l| l.starts_with("run:")) || k.revoked_at_ms.is_none()
    }) {
        let state = if k.revoked_at_ms.is_some() {
            "revoked".to_owned()
        } else {
            format!(
                "<form method=\"post\" class=\"inline\" action=\"/ui/keys/{}/revoke\">{csrf}<button type=\"submit\" class=\"danger\" aria-label=\"Revoke key {id}\">Revoke</button></form>",
                url_part(&k.id),
                id = esc(&k.id)
            )
        };
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"hide-narrow\">{}</td><td class=\"hide-narrow\">{}</td><td>{state}</td></tr>",
            esc(&k.id),
            esc(k.tenant.as_deref().unwrap_or("(admin)")),
            esc(k.label.as_deref().unwrap_or("")),
            k.last_used_ms.map(when).unwrap_or_else(|| "never".into()),
            when(k.created_at_ms),
            k.expires_at_ms.map(when).unwrap_or_else(|| "never".into()),
        );
    }
    b.push_str("</tbody></table></div>");
    let options: String = tenants
        .iter()
        .map(|t| format!("<option value=\"{n}\">{n}</option>", n = esc(&t.name)))
        .collect();
    let _ = write!(
        b,
        "<h2>Create a key</h2><form method=\"post\" action=\"/ui/keys\" class=\"grid\">{csrf}<div><label for=\"k-tenant\">For</label><select id=\"k-tenant\" name=\"tenant\">{options}<option value=\"\">an admin key</option></select></div><div><label for=\"k-name\">Name</label><input id=\"k-name\" name=\"name\" type=\"text\"></div><div><label for=\"k-expires\">Expires after (30d, 12h; blank: never)</label><input id=\"k-expires\" name=\"expires\" type=\"text\"></div><div><button type=\"submit\">Create key</button></div></form>"
    );
    Ok(s.page("Tenants and keys", &b))
}

fn balance_from(v: Option<&str>) -> Result<Option<i64>, UiError> {
    v.map(|b| {
        b.parse::<i64>().map_err(|_| {
            UiError::bad(format!(
                "balance {b:?}: a whole number of compute tokens, or blank for unlimited"
            ))
        })
    })
    .transpose()
}

pub(crate) async fn add_tenant(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    body: Body,
) -> Page {
    s.require_admin()?;
    let f = s.form(&app, &h, body).await?;
    let result = async {
        let name = f
            .text("name")
            .ok_or_else(|| UiError::bad("name: give the tenant a name"))?;
        let plan = f
            .text("plan")
            .ok_or_else(|| UiError::bad("plan: choose a plan"))?;
        check_plan(&app.cfg, plan)?;
        let balance = balance_from(f.text("balance"))?;
        app.store.add_tenant(name, plan, balance, None).await?;
        Ok::<(), UiError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(see_other("/ui/tenants")),
        Err(e) => tenants_page(&app, &s, None, Some(&e.message)).await,
    }
}

pub(crate) async fn set_balance(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Page {
    s.require_admin()?;
    let f = s.form(&app, &h, body).await?;
    let balance = balance_from(f.text("balance"))?;
    app.store.set_balance(&name, balance).await?;
    Ok(see_other("/ui/tenants"))
}

pub(crate) async fn create_key(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    body: Body,
) -> Page {
    s.require_admin()?;
    let f = s.form(&app, &h, body).await?;
    let created = async {
        let expires = f.text("expires").map(expiry_from).transpose()?;
        Ok::<_, UiError>(
            app.store
                .create_key(f.text("tenant"), f.text("name"), expires)
                .await?,
        )
    }
    .await;
    match created {
        Ok(k) => tenants_page(&app, &s, Some(&k), None).await,
        Err(e) => tenants_page(&app, &s, None, Some(&e.message)).await,
    }
}

pub(crate) async fn revoke_key(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Page {
    s.require_admin()?;
    s.form(&app, &h, body).await?;
    app.store.revoke_key(&id).await?;
    // Now, not at the revision watcher's next poll.
    app.auth.forget_cached();
    Ok(see_other("/ui/tenants"))
}
