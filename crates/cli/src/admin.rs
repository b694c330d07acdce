//! `mcpgate tenants|keys|usage|audit`: administration on the store the config
//! names, whether or not a gateway is running (a running gateway notices key
//! and tenant changes within a second). Validation is shared with the admin
//! HTTP API through `mcpgate_gateway::admin`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mcpgate_gateway::admin::{self, AdminError};
use mcpgate_gateway::{App, Config};
use mcpgate_store::{AuditFilter, KeyInfo, Store, Tenant, format_ts};

use crate::terminal::safe;

#[derive(Args)]
pub(crate) struct At {
    /// Config file (finds the data directory, `database`, `[plans]` and `[tiers]`).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Print JSON for scripts instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum TenantsCmd {
    /// Create a tenant on a plan that `[plans]` maps to a tier.
    Add {
        /// The tenant's name (letters, digits, `_`, `-`, `.`).
        name: String,
        /// The tenant's plan; `[plans]` in the config maps it to a tier.
        #[arg(long)]
        plan: String,
        /// Compute tokens to start with (default: unlimited, or the monthly allowance).
        #[arg(long)]
        balance: Option<i64>,
        /// Reset the balance to this many tokens at the start of every month (UTC).
        #[arg(long)]
        monthly: Option<i64>,
    },
    /// Set a tenant's balance: a number of compute tokens, or `unlimited`.
    SetBalance {
        /// The tenant's name.
        name: String,
        /// Compute tokens, or `unlimited`.
        balance: String,
    },
    /// Move a tenant to another plan.
    SetPlan {
        /// The tenant's name.
        name: String,
        /// The new plan; `[plans]` in the config maps it to a tier.
        plan: String,
    },
    /// List tenants with plan, tier and balance.
    List,
    /// Show a tenant and what it sees: probes the upstreams unless --offline.
    Show {
        /// The tenant's name.
        name: String,
        /// Do not start the upstreams; show only the tier's rules.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCmd {
    /// Create a key and print it once: `mcpg_<id>_<secret>`. Only its hash is stored.
    Create {
        /// The tenant the key acts for (a key for /mcp).
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        tenant: Option<String>,
        /// An admin key instead (for the /admin/ API only).
        #[arg(long)]
        admin: bool,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 30d, 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by id; a running gateway refuses it within a second.
    Revoke {
        /// The key's id: the part after `mcpg_` and before the next `_` (see `keys list`).
        id: String,
    },
}

/// Opens the store, runs `f`, and maps its error to an exit code: 2 for bad
/// input, 1 for a missing or duplicate tenant or key, 3 when the store fails.
/// A command that only reads (`read_only`) never creates a store: with none
/// there yet it says where it looked and lists nothing; with one it says on
/// stderr which store it read.
async fn with_store<F, Fut>(at: &At, read_only: bool, f: F) -> ExitCode
where
    F: FnOnce(Config, Store) -> Fut,
    Fut: std::future::Future<Output = Result<(), AdminError>>,
{
    let cfg = match crate::setup::load_config(at.config.as_deref()) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let store = if read_only {
        match crate::setup::open_existing(&cfg).await {
            Ok(Ok(s)) => {
                eprintln!("store: {}", s.describe());
                s
            }
            Ok(Err(file)) => {
                eprintln!(
                    "store: none yet at {} (a gateway creates it on first start); nothing to list",
                    file.display()
                );
                if at.json {
                    println!("[]");
                }
                return ExitCode::SUCCESS;
            }
            Err(c) => return c,
        }
    } else {
        match mcpgate_gateway::open_store(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(3);
            }
        }
    };
    let announce = (!read_only && cfg.redis.is_some()).then(|| (cfg.clone(), store.clone()));
    let done = f(cfg, store).await;
    // Tell a running cluster's replicas now, rather than at their next poll.
    if let (Ok(()), Some((cfg, store))) = (&done, announce)
        && let Err(e) = mcpgate_gateway::announce_store_change(&cfg, &store).await
    {
        eprintln!(
            "warning: could not tell the replicas through [cluster] redis ({e}); they see the change within a second by polling the store"
        );
    }
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                AdminError::BadRequest(_) => 2,
                AdminError::NotFound(_) | AdminError::Conflict(_) => 1,
                AdminError::Store(_) => 3,
            })
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn ts(ms: Option<i64>) -> String {
    ms.map(format_ts).unwrap_or_else(|| "-".into())
}

fn balance(t: &Tenant) -> String {
    match (t.balance, t.monthly_allowance) {
        (None, _) => "unlimited".into(),
        (Some(b), None) => b.to_string(),
        (Some(b), Some(m)) => format!("{b} of {m}/month, resets {}", ts(t.resets_at_ms)),
    }
}

pub(crate) async fn tenants(at: &At, cmd: TenantsCmd) -> ExitCode {
    let read_only = matches!(cmd, TenantsCmd::List | TenantsCmd::Show { .. });
    with_store(at, read_only, |cfg, store| async move {
        match cmd {
            TenantsCmd::Add {
                name,
                plan,
                balance: b,
                monthly,
            } => {
                admin::check_plan(&cfg, &plan)?;
                let t = store.add_tenant(&name, &plan, b, monthly).await?;
                if at.json {
                    print_json(&t);
                } else {
                    println!(
                        "tenant {} added: plan {}, balance {}",
                        safe(&t.name),
                        safe(&t.plan),
                        balance(&t)
                    );
                }
            }
            TenantsCmd::SetBalance { name, balance: b } => {
                let value = match b.as_str() {
                    "unlimited" => None,
                    n => Some(n.parse::<i64>().map_err(|_| {
                        AdminError::BadRequest(format!(
                            "{n:?} is not a number of tokens or `unlimited`"
                        ))
                    })?),
                };
                let t = store.set_balance(&name, value).await?;
                if at.json {
                    print_json(&t);
                } else {
                    println!("tenant {}: balance {}", safe(&t.name), balance(&t));
                }
            }
            TenantsCmd::SetPlan { name, plan } => {
                admin::check_plan(&cfg, &plan)?;
                let t = store.set_plan(&name, &plan).await?;
                println!("tenant {}: plan {}", safe(&t.name), safe(&t.plan));
            }
            TenantsCmd::List => {
                let list = store.list_tenants().await?;
                if at.json {
                    print_json(&list);
                } else {
                    let mut out = format!(
                        "{:<24} {:<14} {:<16} {:<20} BALANCE\n",
                        "TENANT", "PLAN", "TIER", "CREATED"
                    );
                    for t in &list {
                        let tier = cfg
                            .policy
                            .tier_for_plan(&t.plan)
                            .map(|t| t.name.clone())
                            .unwrap_or_else(|| "(unmapped plan!)".into());
                        let _ = writeln!(
                            out,
                            "{:<24} {:<14} {:<16} {:<20} {}",
                            safe(&t.name),
                            safe(&t.plan),
                            safe(&tier),
                            ts(Some(t.created_at_ms)),
                            balance(t)
                        );
                    }
                    print!("{out}");
                }
            }
            TenantsCmd::Show { name, offline } => {
                let t = store
                    .tenant(&name)
                    .await?
                    .ok_or_else(|| AdminError::NotFound(format!("no tenant named '{name}'")))?;
                let app = App::new(cfg.clone(), store.clone());
                if !offline {
                    mcpgate_gateway::probe(&app).await;
                }
                let view = admin::tenant_view(&cfg, &app.catalog(), t);
                mcpgate_gateway::stop(&app).await;
                if at.json {
                    print_json(&view);
                } else {
                    print!("{}", show_text(&cfg, &view, offline));
                }
            }
        }
        Ok(())
    })
    .await
}

fn show_text(cfg: &Config, v: &admin::TenantView, offline: bool) -> String {
    let t = &v.tenant;
    let mut out = format!(
        "tenant   {}\nplan     {}\ntier     {}\nbalance  {}\n",
        safe(&t.name),
        safe(&t.plan),
        safe(
            v.tier
                .as_deref()
                .unwrap_or("(unmapped: add this plan to [plans])")
        ),
        balance(t)
    );
    let _ = writeln!(out, "rate     {}", v.rate.as_deref().unwrap_or("unlimited"));
    let _ = writeln!(
        out,
        "calls    {}",
        v.max_concurrent
            .map(|n| format!("at most {n} at once"))
            .unwrap_or_else(|| "no concurrency cap".into())
    );
    if let Some(tier) = v.tier.as_ref().and_then(|n| cfg.policy.tiers.get(n)) {
        let _ = writeln!(
            out,
            "rules    tools {:?} deny {:?}; prompts {:?}; resources {:?}",
            tier.tools.allow, tier.tools.deny, tier.prompts.allow, tier.resources.allow
        );
    }
    if offline {
        return out;
    }
    let _ = writeln!(
        out,
        "\nsees {} of {} tools:",
        v.tools.len(),
        v.catalog_tools
    );
    for n in &v.tools {
        let _ = writeln!(out, "  {}", safe(n));
    }
    for (what, list) in [
        ("prompts", &v.prompts),
        ("resources", &v.resources),
        ("resource templates", &v.resource_templates),
    ] {
        let _ = writeln!(out, "{} {what}:", list.len());
        for n in list {
            let _ = writeln!(out, "  {}", safe(n));
        }
    }
    out
}

pub(crate) async fn keys(at: &At, cmd: KeysCmd) -> ExitCode {
    let read_only = matches!(cmd, KeysCmd::List { .. });
    with_store(at, read_only, |_cfg, store| async move {
        match cmd {
            KeysCmd::Create {
                tenant,
                admin: _,
                name,
                expires,
            } => {
                let exp = expires.as_deref().map(admin::expiry_from).transpose()?;
                let k = store
                    .create_key(tenant.as_deref(), name.as_deref(), exp)
                    .await?;
                if at.json {
                    print_json(&serde_json::json!({ "key": k.token, "info": k.info }));
                } else {
                    println!("{}", k.token);
                    eprintln!(
                        "key {} for {} created{}; this is the only time it is shown",
                        safe(&k.info.id),
                        safe(k.info.tenant.as_deref().unwrap_or("admin")),
                        k.info
                            .expires_at_ms
                            .map(|e| format!(", expires {}", format_ts(e)))
                            .unwrap_or_default()
                    );
                }
            }
            KeysCmd::List { tenant } => {
                let list = store.list_keys(tenant.as_deref()).await?;
                if at.json {
                    print_json(&list);
                } else {
                    print!("{}", keys_table(&list));
                }
            }
            KeysCmd::Revoke { id } => {
                let k = store.revoke_key(&id).await?;
                if at.json {
                    print_json(&k);
                } else {
                    println!("key {} revoked at {}", safe(&k.id), ts(k.revoked_at_ms));
                }
            }
        }
        Ok(())
    })
    .await
}

fn keys_table(list: &[KeyInfo]) -> String {
    let mut out = format!(
        "{:<14} {:<20} {:<16} {:<20} {:<20} {:<20} STATE\n",
        "ID", "TENANT", "LABEL", "CREATED", "LAST USED", "EXPIRES"
    );
    let now = mcpgate_store::now_ms();
    for k in list {
        let state = match (k.revoked_at_ms, k.expires_at_ms) {
            (Some(_), _) => "revoked",
            (None, Some(e)) if e <= now => "expired",
            _ => "active",
        };
        let _ = writeln!(
            out,
            "{:<14} {:<20} {:<16} {:<20} {:<20} {:<20} {state}",
            safe(&k.id),
            safe(k.tenant.as_deref().unwrap_or("(admin)")),
            safe(k.label.as_deref().unwrap_or("-")),
            ts(Some(k.created_at_ms)),
            ts(k.last_used_ms),
            ts(k.expires_at_ms),
        );
    }
    out
}

#[derive(Args)]
pub(crate) struct UsageArgs {
    /// Only this tenant's usage.
    #[arg(long)]
    tenant: Option<String>,
    /// Only records newer than this, e.g. 7d, 24h.
    #[arg(long)]
    since: Option<String>,
}

pub(crate) async fn usage(at: &At, a: UsageArgs) -> ExitCode {
    with_store(at, true, |_cfg, store| async move {
        let since = a.since.as_deref().map(admin::since_from).transpose()?;
        let rows = store.usage_summary(a.tenant.as_deref(), since).await?;
        if at.json {
            print_json(&rows);
            return Ok(());
        }
        let mut out = format!(
            "{:<20} {:<40} {:>7} {:>7} {:>7} {:>7} {:>11} {:>9} {:>10}\n",
            "TENANT", "NAME", "CALLS", "OK", "ERRORS", "DENIED", "INTERRUPTED", "COST", "AVG MS"
        );
        for u in &rows {
            let finished = (u.ok + u.errors).max(1);
            let _ = writeln!(
                out,
                "{:<20} {:<40} {:>7} {:>7} {:>7} {:>7} {:>11} {:>9} {:>10.2}",
                safe(&u.tenant),
                safe(&u.name),
                u.calls,
                u.ok,
                u.errors,
                u.denied,
                u.interrupted,
                u.cost,
                u.total_duration_us as f64 / 1000.0 / finished as f64
            );
        }
        print!("{out}");
        Ok(())
    })
    .await
}

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// Only this tenant's records.
    #[arg(long)]
    tenant: Option<String>,
    /// Tool, prompt or URI glob, e.g. 'github__*'.
    #[arg(long)]
    tool: Option<String>,
    /// Only records newer than this, e.g. 7d, 24h.
    #[arg(long)]
    since: Option<String>,
    /// At most this many records, newest first.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Only calls made with this agent run's key.
    #[arg(long)]
    run: Option<String>,
}

pub(crate) async fn audit(at: &At, a: AuditArgs) -> ExitCode {
    with_store(at, true, |_cfg, store| async move {
        let filter = AuditFilter {
            tenant: a.tenant,
            name_glob: a.tool,
            since_ms: a.since.as_deref().map(admin::since_from).transpose()?,
            limit: Some(a.limit.max(1)),
            run: a.run,
        };
        let rows = store.audit(&filter).await?;
        if at.json {
            print_json(&rows);
            return Ok(());
        }
        let mut out = format!(
            "{:<24} {:<16} {:<14} {:<14} {:<36} {:<18} {:>9} {:>5}\n",
            "TIME", "TENANT", "KEY", "METHOD", "NAME", "OUTCOME", "MS", "COST"
        );
        for r in &rows {
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:<14} {:<14} {:<36} {:<18} {:>9} {:>5}",
                format_ts(r.ts_ms),
                safe(&r.tenant),
                safe(r.key_id.as_deref().unwrap_or("-")),
                safe(&r.method),
                safe(&r.name),
                safe(&r.outcome),
                r.duration_us
                    .map(|d| format!("{:.2}", d as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                r.cost
            );
        }
        print!("{out}");
        Ok(())
    })
    .await
}
