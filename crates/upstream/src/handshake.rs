//! The handshake's messages, and what we learn from them: the `initialize`
//! params we send, and the [`InitInfo`] read from an `initialize` result or
//! from a `server/discover` result that offers 2026-07-28. Pure: `conn` sends
//! the requests and decides what to try next.

use std::collections::HashMap;
use std::time::Duration;

use mcpgate_proto::{jsonrpc, version};
use serde::Deserialize;
use serde_json::value::RawValue;

/// What the server told us in its initialize result.
#[derive(Debug, Clone)]
pub struct InitInfo {
    pub protocol_version: String,
    pub server_name: String,
    pub server_version: String,
    /// The server's `capabilities` object, raw.
    pub capabilities: Box<RawValue>,
    pub instructions: Option<String>,
    /// Round trip of the initialize request.
    pub latency: Duration,
}

impl InitInfo {
    /// Whether the server declared capability `name` (e.g. "tools").
    pub fn has_capability(&self, name: &str) -> bool {
        serde_json::from_str::<HashMap<String, &RawValue>>(self.capabilities.get())
            .map(|m| m.contains_key(name))
            .unwrap_or(false)
    }

    /// Whether the server declared `capabilities.<cap>.<flag> = true`.
    pub fn has_flag(&self, cap: &str, flag: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(self.capabilities.get())
            .ok()
            .and_then(|v| v.get(cap)?.get(flag)?.as_bool())
            .unwrap_or(false)
    }

    /// What we know of a session an earlier process saved: its version only.
    pub(crate) fn resumed(protocol_version: &str) -> InitInfo {
        InitInfo {
            protocol_version: protocol_version.to_owned(),
            server_name: String::new(),
            server_version: String::new(),
            capabilities: no_capabilities(),
            instructions: None,
            latency: Duration::ZERO,
        }
    }
}

#[derive(Deserialize)]
struct InitResult<'a> {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(borrow)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "serverInfo", default)]
    server_info: Option<ServerInfo>,
    #[serde(default)]
    instructions: Option<String>,
}

#[derive(Deserialize, Default)]
struct ServerInfo {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
struct Discover<'a> {
    #[serde(rename = "supportedVersions", default)]
    versions: Vec<String>,
    #[serde(borrow)]
    capabilities: Option<&'a RawValue>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(rename = "serverInfo", default)]
    server_info: Option<ServerInfo>,
    #[serde(rename = "_meta", default)]
    meta: Option<DiscoverMeta>,
}

#[derive(Deserialize)]
struct DiscoverMeta {
    #[serde(rename = "io.modelcontextprotocol/serverInfo", default)]
    server_info: Option<ServerInfo>,
}

/// The params of our `initialize` request, declaring `capabilities`.
pub(crate) fn initialize_params(capabilities: &RawValue) -> Result<Box<RawValue>, String> {
    let params = format!(
        r#"{{"protocolVersion":"{}","capabilities":{},"clientInfo":{{"name":"mcpgate","version":"{}"}}}}"#,
        version::LATEST_LEGACY,
        capabilities.get(),
        env!("CARGO_PKG_VERSION")
    );
    RawValue::from_string(params).map_err(|e| e.to_string())
}

/// Reads an `initialize` result; refuses a protocol version we do not speak.
pub(crate) fn from_initialize(result: &RawValue, latency: Duration) -> Result<InitInfo, String> {
    let res: InitResult<'_> =
        serde_json::from_str(result.get()).map_err(|e| format!("bad initialize result: {e}"))?;
    if !version::UPSTREAM_ACCEPTED.contains(&res.protocol_version.as_str()) {
        return Err(format!(
            "unsupported protocol version {:?}",
            res.protocol_version
        ));
    }
    let info = res.server_info.unwrap_or_default();
    Ok(InitInfo {
        protocol_version: res.protocol_version.clone(),
        server_name: info.name,
        server_version: info.version,
        capabilities: res
            .capabilities
            .map(|c| c.to_owned())
            .unwrap_or_else(no_capabilities),
        instructions: res.instructions,
        latency,
    })
}

/// Reads a `server/discover` result: `None` unless it offers 2026-07-28.
pub(crate) fn from_discover(result: &RawValue, latency: Duration) -> Option<InitInfo> {
    let d = serde_json::from_str::<Discover<'_>>(result.get()).ok()?;
    if !d.versions.iter().any(|v| v == version::MODERN) {
        return None;
    }
    let info = d
        .meta
        .and_then(|m| m.server_info)
        .or(d.server_info)
        .unwrap_or_default();
    Some(InitInfo {
        protocol_version: version::MODERN.to_owned(),
        server_name: info.name,
        server_version: info.version,
        capabilities: d
            .capabilities
            .map(ToOwned::to_owned)
            .unwrap_or_else(no_capabilities),
        instructions: d.instructions,
        latency,
    })
}

fn no_capabilities() -> Box<RawValue> {
    jsonrpc::to_raw(&serde_json::json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("test JSON is valid")
    }

    #[test]
    fn discover_counts_only_when_it_offers_2026_07_28() {
        let old = raw(r#"{"supportedVersions":["2025-11-25"]}"#);
        assert!(from_discover(&old, Duration::ZERO).is_none());
        let modern = raw(
            r#"{"supportedVersions":["2025-11-25","2026-07-28"],"capabilities":{"tools":{}},
               "serverInfo":{"name":"plain"},
               "_meta":{"io.modelcontextprotocol/serverInfo":{"name":"meta","version":"2"}}}"#,
        );
        let info = from_discover(&modern, Duration::ZERO).expect("modern");
        assert_eq!(info.protocol_version, version::MODERN);
        assert_eq!(
            (info.server_name.as_str(), info.server_version.as_str()),
            ("meta", "2")
        );
        assert!(info.has_capability("tools") && !info.has_capability("prompts"));
    }

    #[test]
    fn initialize_refuses_a_version_we_do_not_speak() {
        let odd = raw(r#"{"protocolVersion":"1999-01-01","capabilities":{}}"#);
        let err = from_initialize(&odd, Duration::ZERO).expect_err("refused");
        assert!(err.contains("1999-01-01"), "{err}");
        let ok = raw(
            r#"{"protocolVersion":"2025-06-18","capabilities":{"resources":{"subscribe":true}}}"#,
        );
        let info = from_initialize(&ok, Duration::ZERO).expect("accepted");
        assert!(info.has_flag("resources", "subscribe"));
        assert!(!info.has_flag("resources", "listChanged"));
    }

    #[test]
    fn initialize_params_declare_our_capabilities_verbatim() {
        let params = initialize_params(&raw(r#"{"roots":{"listChanged":true}}"#)).expect("valid");
        let v: serde_json::Value = serde_json::from_str(params.get()).expect("json");
        assert_eq!(v["protocolVersion"], version::LATEST_LEGACY);
        assert_eq!(v["capabilities"]["roots"]["listChanged"], true);
        assert_eq!(v["clientInfo"]["name"], "mcpgate");
    }
}
