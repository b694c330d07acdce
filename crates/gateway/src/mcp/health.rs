//! What the gateway says about itself: the health snapshot `GET /health`
//! renders (gateway status plus each upstream's state, tool count and last
//! error; `starting` while some upstream has not finished its first
//! connection attempt), the readiness `GET /ready` answers (ready once every
//! upstream has been tried once, whatever the outcome), and the `initialize`
//! result, whose capabilities are what the gateway itself serves and whose
//! instructions merge the upstreams'.

use mcpgate_proto::jsonrpc;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::state::App;
use crate::state::servers::Status;
use mcpgate_proto::locks::lock;

#[derive(Serialize)]
pub struct ServerHealth {
    pub name: String,
    pub transport: &'static str,
    pub status: Status,
    pub tools: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    pub breaker_open: bool,
    pub restarts: u32,
    pub since_s: u64,
}

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_s: u64,
    pub sessions: usize,
    pub sessions_opened: u64,
    pub tools: usize,
    pub collisions: Vec<String>,
    pub servers: Vec<ServerHealth>,
}

pub fn snapshot(app: &App) -> Health {
    app.servers.consistent(|| snapshot_now(app))
}

fn snapshot_now(app: &App) -> Health {
    let catalog = app.catalog();
    let servers: Vec<ServerHealth> = app
        .servers
        .all()
        .iter()
        .map(|s| {
            let st = lock(&s.state);
            ServerHealth {
                name: s.name.to_string(),
                transport: st
                    .conn
                    .as_ref()
                    .map_or(s.cfg.spec.transport.kind(), |c| c.transport_kind()),
                status: st.status,
                tools: catalog.tool_counts.get(&s.name).copied().unwrap_or(0),
                protocol_version: st.init.as_ref().map(|i| i.protocol_version.clone()),
                server_name: st.init.as_ref().map(|i| i.server_name.clone()),
                server_version: st.init.as_ref().map(|i| i.server_version.clone()),
                error: st.last_error.clone(),
                latency_ms: st
                    .conn
                    .as_ref()
                    .and_then(|c| c.last_rtt())
                    .or(st.init.as_ref().map(|i| i.latency))
                    .map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
                breaker_open: s.breaker.is_open(),
                restarts: st.restarts,
                since_s: st.since.elapsed().as_secs(),
            }
        })
        .collect();
    let all_ready = servers.iter().all(|s| s.status == Status::Ready);
    let starting = servers.iter().any(|s| s.status == Status::Starting);
    Health {
        status: match (starting, all_ready) {
            (true, _) => "starting",
            (false, true) => "ok",
            (false, false) => "degraded",
        },
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: app.started.elapsed().as_secs(),
        sessions: app.sessions.len(),
        sessions_opened: app.sessions.opened(),
        tools: catalog.tools.len(),
        collisions: catalog.collisions.clone(),
        servers,
    }
}

/// Whether every upstream has been tried once, and which have not.
pub struct Readiness {
    pub ready: bool,
    /// The servers still in their first connection attempt, in config order.
    pub starting: Vec<String>,
}

pub fn readiness(app: &App) -> Readiness {
    let starting: Vec<String> = app
        .servers
        .all()
        .iter()
        .filter(|s| lock(&s.state).status == Status::Starting)
        .map(|s| s.name.to_string())
        .collect();
    Readiness {
        ready: starting.is_empty(),
        starting,
    }
}

/// The initialize result for a client that negotiated `version`.
pub(crate) fn initialize_result(app: &App, version: &str) -> Box<RawValue> {
    let mut instructions = String::new();
    let mut known: Vec<serde_json::Value> = Vec::new();
    let mut unknown = false;
    for s in app.servers.all().iter() {
        let st = lock(&s.state);
        match st.init.as_ref() {
            Some(init) => {
                known.push(serde_json::from_str(init.capabilities.get()).unwrap_or_default());
                if let Some(text) = init
                    .instructions
                    .as_deref()
                    .filter(|t| !t.trim().is_empty())
                {
                    if !instructions.is_empty() {
                        instructions.push_str("\n\n");
                    }
                    instructions.push_str(&format!("## {}\n{}", s.name, text.trim()));
                }
            }
            None => unknown = true,
        }
    }
    let mut v = serde_json::json!({
        "protocolVersion": version,
        "capabilities": merge_capabilities(&known, unknown),
        "serverInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}
    });
    if !instructions.is_empty() {
        v["instructions"] = serde_json::Value::String(instructions);
    }
    jsonrpc::to_raw(&v)
}

/// The union of the upstreams' capabilities, as the gateway serves them.
/// `tools` is always there (upstreams coming and going change the tool list),
/// and every list capability gains `listChanged`, because the gateway emits it.
/// While some upstream has never been up (`unknown`), its capabilities cannot
/// be known, so everything the gateway can relay is offered rather than
/// hiding, say, prompts from a client that connects during start-up.
pub(crate) fn merge_capabilities(known: &[serde_json::Value], unknown: bool) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let any = |k: &str| unknown || known.iter().any(|c| c.get(k).is_some_and(|x| !x.is_null()));
    let flag = |k: &str, f: &str| {
        unknown
            || known
                .iter()
                .any(|c| c.get(k).and_then(|x| x.get(f)).and_then(Value::as_bool) == Some(true))
    };
    let mut caps = Map::new();
    caps.insert("tools".into(), json!({"listChanged": true}));
    if any("prompts") {
        caps.insert("prompts".into(), json!({"listChanged": true}));
    }
    if any("resources") {
        caps.insert(
            "resources".into(),
            json!({"listChanged": true, "subscribe": flag("resources", "subscribe")}),
        );
    }
    if any("logging") {
        caps.insert("logging".into(), json!({}));
    }
    if any("completions") {
        caps.insert("completions".into(), json!({}));
    }
    let mut experimental = Map::new();
    for c in known {
        if let Some(Value::Object(e)) = c.get("experimental") {
            for (k, v) in e {
                experimental.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if !experimental.is_empty() {
        caps.insert("experimental".into(), Value::Object(experimental));
    }
    Value::Object(caps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capabilities_are_the_union_of_the_upstreams() {
        let a =
            json!({"tools": {}, "resources": {"subscribe": false}, "experimental": {"x/a": {}}});
        let b = json!({"prompts": {}, "resources": {"subscribe": true}, "logging": {}});
        let m = merge_capabilities(&[a.clone(), b], false);
        assert_eq!(m["tools"]["listChanged"], true);
        assert_eq!(m["prompts"]["listChanged"], true);
        assert_eq!(m["resources"]["subscribe"], true);
        assert!(m.get("logging").is_some());
        assert!(m.get("completions").is_none(), "nobody offers completions");
        assert!(m["experimental"].get("x/a").is_some());
        let only_tools = merge_capabilities(&[json!({"tools": {}})], false);
        assert_eq!(
            only_tools.as_object().map(|o| o.len()),
            Some(1),
            "{only_tools}"
        );
        let starting = merge_capabilities(&[json!({"tools": {}})], true);
        assert!(starting.get("prompts").is_some() && starting.get("completions").is_some());
    }
}
