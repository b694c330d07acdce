//! `mcpgate check` and `mcpgate servers`: each upstream's state, probed from
//! the config or read from a running gateway's `/health`, as a table or JSON.
//! Exit 0 only when every upstream is ready. `servers add|rm` change a
//! running gateway's servers through `/admin/servers`. `check` writes nothing: the
//! upstreams are probed with a scratch store in a temporary directory, and the
//! config's own store is only read (when it exists) to check tenants' plans.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mcpgate_gateway::App;

use crate::setup::{ScratchStore, check_store, load_config};
use crate::terminal::safe;

/// Starts every upstream once, waits until each is up or has failed, and reports.
pub(crate) async fn check(path: Option<&Path>, json: bool) -> ExitCode {
    let cfg = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !json {
        println!(
            "config {}: ok ({} server(s), listen {})",
            cfg.file.display(),
            cfg.servers.len(),
            cfg.listen
        );
    }
    if let Err(code) = check_store(&cfg).await {
        return code;
    }
    let (scratch, store) = match ScratchStore::open().await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let app = App::new(cfg, store);
    mcpgate_gateway::probe(&app).await;
    let health = serde_json::to_value(mcpgate_gateway::health::snapshot(&app)).unwrap_or_default();
    mcpgate_gateway::stop(&app).await;
    drop(app);
    drop(scratch);
    report(&health, json)
}

pub(crate) async fn from_gateway(url: &str, json: bool) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = url.trim_end_matches('/').trim_end_matches("/mcp");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    // A gateway with auth = "keys" shows upstream details to admin keys only.
    let mut req = client.get(format!("{base}/health"));
    if let Ok(k) = std::env::var("MCPGATE_ADMIN_KEY") {
        req = req.bearer_auth(k.trim());
    }
    let health = match req.send().await {
        Ok(r) => match r
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            Some(v) => v,
            None => {
                eprintln!("error: {base}/health did not answer JSON; is it an mcpgate gateway?");
                return ExitCode::from(3);
            }
        },
        Err(e) => {
            eprintln!("error: cannot reach {base}/health: {}", e.without_url());
            return ExitCode::from(3);
        }
    };
    if health.get("servers").is_none() {
        let has_key = std::env::var("MCPGATE_ADMIN_KEY").is_ok_and(|k| !k.trim().is_empty());
        eprintln!(
            "error: {base} shows its upstreams to admin keys only ({}); set MCPGATE_ADMIN_KEY \
             to a key from `mcpgate keys create --admin` (gateway status: {})",
            if has_key {
                "MCPGATE_ADMIN_KEY was not accepted as one"
            } else {
                "MCPGATE_ADMIN_KEY is not set"
            },
            safe(health["status"].as_str().unwrap_or("unknown"))
        );
        return ExitCode::from(3);
    }
    report(&health, json)
}

/// Prints the health document as a table (or JSON); exit 0 only when every upstream is ready.
fn report(health: &serde_json::Value, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(health).unwrap_or_default()
        );
    } else {
        print!("{}", servers_table(health));
    }
    if health["status"] == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The health document as a table. Its text comes from upstreams (server
/// names and versions, error messages) or from a remote gateway, so every
/// string is escaped for the terminal.
fn servers_table(h: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let s = |v: &serde_json::Value| safe(v.as_str().unwrap_or("")).into_owned();
    let mut out = format!(
        "{:<20} {:<6} {:<15} {:>5} {:>10}  DETAIL\n",
        "SERVER", "KIND", "STATUS", "TOOLS", "LATENCY"
    );
    for srv in h["servers"].as_array().into_iter().flatten() {
        let detail = match srv.get("error").and_then(|e| e.as_str()) {
            Some(e) => safe(e).into_owned(),
            None => format!(
                "{} {} (protocol {})",
                s(&srv["server_name"]),
                s(&srv["server_version"]),
                safe(srv["protocol_version"].as_str().unwrap_or("?"))
            ),
        };
        let latency = srv["latency_ms"]
            .as_f64()
            .map(|ms| format!("{ms:.1} ms"))
            .unwrap_or_else(|| "-".into());
        let status = if srv["breaker_open"] == true {
            format!("{} (breaker)", s(&srv["status"]))
        } else {
            s(&srv["status"])
        };
        let _ = writeln!(
            out,
            "{:<20} {:<6} {:<15} {:>5} {:>10}  {}",
            s(&srv["name"]),
            s(&srv["transport"]),
            status,
            srv["tools"].as_u64().unwrap_or(0),
            latency,
            detail
        );
    }
    for c in h["collisions"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "collision: {}", s(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regression_upstream_text_cannot_forge_rows_or_drive_the_terminal() {
        let h = json!({"status": "degraded", "servers": [
            {"name": "a", "transport": "stdio", "status": "ready", "tools": 1,
             "server_name": "srv\u{1b}]0;pwned\u{7}", "server_version": "1\nb      stdio  ready",
             "protocol_version": "2025-11-25"},
            {"name": "b", "transport": "http", "status": "failed", "tools": 0,
             "error": "refused\r\n\u{1b}[2Jc      http   ready"}
        ], "collisions": ["x\ny"]});
        let table = servers_table(&h);
        assert_eq!(table.lines().count(), 1 + 2 + 1, "{table}");
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(table.contains("srv\\u{1b}]0;pwned\\u{7} 1\\nb"), "{table}");
        assert!(table.contains("refused\\r\\n\\u{1b}[2Jc"), "{table}");
    }
}

/// `mcpgate servers add|rm`.
#[derive(clap::Subcommand)]
pub(crate) enum ServersCmd {
    /// Add a server to a running gateway (until its next reload or restart):
    /// `servers add NAME --url GW -- COMMAND ARGS...` or `--server-url URL`.
    Add {
        /// The new server's name.
        name: String,
        /// The running gateway's URL; the admin key comes from MCPGATE_ADMIN_KEY.
        #[arg(long)]
        url: String,
        /// A Streamable HTTP server's URL (instead of a command).
        #[arg(long)]
        server_url: Option<String>,
        /// More keys of the server's table as JSON, e.g. '{"env": {"TZ": "UTC"}}'.
        #[arg(long)]
        table: Option<String>,
        /// A stdio server's command and its arguments, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Remove a server from a running gateway.
    Rm {
        /// The server's name.
        name: String,
        /// The running gateway's URL; the admin key comes from MCPGATE_ADMIN_KEY.
        #[arg(long)]
        url: String,
    },
}

/// Sends `servers add|rm` to the gateway: exit 0 done, 2 refused as invalid,
/// 1 the name exists or is unknown, 3 no connection or the admin key refused.
pub(crate) async fn change(cmd: ServersCmd) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(key) = std::env::var("MCPGATE_ADMIN_KEY") else {
        eprintln!("error: set MCPGATE_ADMIN_KEY to an admin key (`mcpgate keys create --admin`)");
        return ExitCode::from(2);
    };
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    else {
        return ExitCode::from(3);
    };
    let req = match &cmd {
        ServersCmd::Add {
            name,
            url,
            server_url,
            table,
            command,
        } => {
            let mut t = match table
                .as_deref()
                .map(serde_json::from_str::<serde_json::Value>)
            {
                None => serde_json::Map::new(),
                Some(Ok(serde_json::Value::Object(m))) => m,
                Some(_) => {
                    eprintln!("error: --table must be a JSON object");
                    return ExitCode::from(2);
                }
            };
            match (server_url, command.split_first()) {
                (Some(u), None) => {
                    t.insert("url".into(), u.clone().into());
                }
                (None, Some((c, args))) => {
                    t.insert("command".into(), c.clone().into());
                    t.insert("args".into(), args.to_vec().into());
                }
                _ => {
                    eprintln!(
                        "error: give the server as --server-url URL or after `--` as COMMAND ARGS"
                    );
                    return ExitCode::from(2);
                }
            }
            t.insert("name".into(), name.clone().into());
            let base = url.trim_end_matches('/').trim_end_matches("/mcp");
            client
                .post(format!("{base}/admin/servers"))
                .json_body(&serde_json::Value::Object(t))
        }
        ServersCmd::Rm { name, url } => {
            let base = url.trim_end_matches('/').trim_end_matches("/mcp");
            client.delete(format!("{base}/admin/servers/{name}"))
        }
    };
    let resp = match req.bearer_auth(key.trim()).send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach the gateway: {}", e.without_url());
            return ExitCode::from(3);
        }
    };
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let said = safe(body["error"].as_str().unwrap_or("")).into_owned();
    match status {
        200 | 201 => {
            match cmd {
                ServersCmd::Add { name, .. } => println!("server {} added", safe(&name)),
                ServersCmd::Rm { name, .. } => println!("server {} removed", safe(&name)),
            }
            ExitCode::SUCCESS
        }
        400 => {
            eprintln!("error: {said}");
            ExitCode::from(2)
        }
        404 | 409 => {
            eprintln!("error: {said}");
            ExitCode::from(1)
        }
        s => {
            eprintln!("error: the gateway answered {s}: {said}");
            ExitCode::from(3)
        }
    }
}

/// A JSON request body without reqwest's `json` feature.
trait JsonBody {
    fn json_body(self, v: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}
