//! `mcpgate oauth requests|approve|deny --url GW`: an administrator's side of
//! OAuth authorizations that wait for one (a user without a key chose "ask an
//! administrator" on the consent page). Talks to `/admin/oauth/requests`
//! with the admin key from `MCPGATE_ADMIN_KEY`. Exit codes: 0 done, 1 no such
//! waiting request (or already decided), 2 a bad argument or unknown tenant,
//! 3 no connection or the admin key refused.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::terminal::safe;

/// `mcpgate oauth ...`.
#[derive(clap::Subcommand)]
pub(crate) enum OAuthCmd {
    /// List the authorizations waiting for an administrator.
    Requests {
        /// The running gateway's URL; the admin key comes from MCPGATE_ADMIN_KEY.
        #[arg(long)]
        url: String,
    },
    /// Approve a waiting authorization: the client acts for TENANT through a
    /// key of its own (revoke that key to end its access).
    Approve {
        /// The request's id, as its waiting page shows it (e.g. K7QX-2MPD).
        id: String,
        /// The tenant the client will act for.
        #[arg(long)]
        tenant: String,
        /// The running gateway's URL; the admin key comes from MCPGATE_ADMIN_KEY.
        #[arg(long)]
        url: String,
    },
    /// Deny a waiting authorization: the client is told access_denied.
    Deny {
        /// The request's id, as its waiting page shows it.
        id: String,
        /// The running gateway's URL; the admin key comes from MCPGATE_ADMIN_KEY.
        #[arg(long)]
        url: String,
    },
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/').trim_end_matches("/mcp")
}

/// Runs one `mcpgate oauth` command.
pub(crate) async fn run(cmd: OAuthCmd) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(key) = std::env::var("MCPGATE_ADMIN_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
    else {
        eprintln!("error: set MCPGATE_ADMIN_KEY to an admin key (`mcpgate keys create --admin`)");
        return ExitCode::from(3);
    };
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    else {
        return ExitCode::from(3);
    };
    let req = match &cmd {
        OAuthCmd::Requests { url } => client.get(format!("{}/admin/oauth/requests", base(url))),
        OAuthCmd::Approve { id, tenant, url } => client
            .post(format!("{}/admin/oauth/requests/{id}", base(url)))
            .header("content-type", "application/json")
            .body(json!({"decision": "approve", "tenant": tenant}).to_string()),
        OAuthCmd::Deny { id, url } => client
            .post(format!("{}/admin/oauth/requests/{id}", base(url)))
            .header("content-type", "application/json")
            .body(json!({"decision": "deny"}).to_string()),
    };
    let resp = match req.bearer_auth(key.trim()).send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach the gateway: {}", e.without_url());
            return ExitCode::from(3);
        }
    };
    let status = resp.status().as_u16();
    let body: Value = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let said = safe(body["error"].as_str().unwrap_or("")).into_owned();
    match (status, &cmd) {
        (200, OAuthCmd::Requests { .. }) => {
            let s = |v: &Value| safe(v.as_str().unwrap_or("")).into_owned();
            let rows = body.as_array().map(Vec::as_slice).unwrap_or(&[]);
            if rows.is_empty() {
                println!("no authorization is waiting");
            }
            for r in rows {
                println!(
                    "{}  {}  redirect {}",
                    s(&r["id"]),
                    safe(r["client_name"].as_str().unwrap_or("(no name)")),
                    s(&r["redirect_uri"])
                );
            }
            ExitCode::SUCCESS
        }
        (200, OAuthCmd::Approve { id, tenant, .. }) => {
            println!(
                "approved {} for tenant {} (its key: {})",
                safe(id),
                safe(tenant),
                safe(body["key_id"].as_str().unwrap_or("?"))
            );
            ExitCode::SUCCESS
        }
        (200, OAuthCmd::Deny { id, .. }) => {
            println!("denied {}", safe(id));
            ExitCode::SUCCESS
        }
        (400, _) => {
            eprintln!("error: {said}");
            ExitCode::from(2)
        }
        (404, OAuthCmd::Approve { .. }) if said.starts_with("no tenant") => {
            eprintln!("error: {said}");
            ExitCode::from(2)
        }
        (404 | 409, _) => {
            eprintln!("error: {said}");
            ExitCode::from(1)
        }
        (s, _) => {
            eprintln!("error: the gateway answered {s}: {said}");
            ExitCode::from(3)
        }
    }
}
