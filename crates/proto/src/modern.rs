//! The stateless 2026-07-28 revision's wire rules that need no I/O: the
//! per-request `_meta` keys, the routing headers (`Mcp-Method`, `Mcp-Name`,
//! `Mcp-Param-*`) and how their values are encoded, and how a request tells
//! which era it belongs to.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::version;

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

pub const HEADER_METHOD: &str = "mcp-method";
pub const HEADER_NAME: &str = "mcp-name";
pub const HEADER_PARAM_PREFIX: &str = "mcp-param-";

/// The methods a 2026-07-28 server answers. `initialize`, `ping`,
/// `logging/setLevel` and `resources/(un)subscribe` are gone from this era.
pub const METHODS: &[&str] = &[
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
    "subscriptions/listen",
];

/// Results that carry caching hints (`ttlMs`, `cacheScope`).
pub fn is_cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// The params member that `Mcp-Name` must repeat, for the methods that have one.
pub fn name_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// The request-level `_meta` of a modern request, as far as routing needs it.
#[derive(Debug, Default, Deserialize)]
pub struct RequestMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    pub protocol_version: Option<serde_json::Value>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    pub client_capabilities: Option<serde_json::Value>,
    #[serde(rename = "io.modelcontextprotocol/logLevel")]
    pub log_level: Option<String>,
}

#[derive(Deserialize)]
struct ParamsMeta {
    #[serde(rename = "_meta")]
    meta: Option<RequestMeta>,
}

impl RequestMeta {
    /// The `_meta` of `params`; `None` when params or `_meta` is absent or not an object.
    pub fn of(params: Option<&RawValue>) -> Option<RequestMeta> {
        let p: ParamsMeta = serde_json::from_str(params?.get()).ok()?;
        p.meta
    }

    /// The protocol version named in `_meta`, when it is a string.
    pub fn version(&self) -> Option<&str> {
        self.protocol_version.as_ref().and_then(|v| v.as_str())
    }

    /// The `_meta` keys a modern request must carry but this one lacks.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.version().is_none() {
            m.push(META_PROTOCOL_VERSION);
        }
        if !self
            .client_capabilities
            .as_ref()
            .is_some_and(|c| c.is_object())
        {
            m.push(META_CLIENT_CAPABILITIES);
        }
        m
    }
}

/// Whether a request belongs to the stateless era: its `MCP-Protocol-Version`
/// header is no session-based revision we serve and either names the modern
/// one or `_meta` carries a protocol version; `server/discover` only exists
/// in the modern era.
pub fn is_modern(header_version: Option<&str>, method: &str, meta: Option<&RequestMeta>) -> bool {
    if header_version.is_some_and(version::is_served) {
        return false;
    }
    header_version == Some(version::MODERN)
        || method == "server/discover"
        || meta.is_some_and(|m| m.protocol_version.is_some())
}

/// Decodes an `Mcp-Name` / `Mcp-Param-*` value: `=?base64?…?=` is strict
/// standard Base64 (padding required) of UTF-8 text; any other value is
/// literal, with surrounding whitespace trimmed. `None` when the Base64 form
/// is malformed.
pub fn decode_header_value(v: &str) -> Option<String> {
    let v = v.trim_matches(|c| c == ' ' || c == '\t');
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(base64_decode(b64)?).ok(),
        None => Some(v.to_owned()),
    }
}

/// Encodes a value for `Mcp-Name` / `Mcp-Param-*`: literal when it is
/// printable ASCII without surrounding whitespace, else `=?base64?…?=`.
pub fn encode_header_value(v: &str) -> String {
    let printable = v.bytes().all(|b| (0x20..0x7f).contains(&b));
    let padded = v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']);
    let looks_encoded = v.starts_with("=?base64?") && v.ends_with("?=");
    if printable && !padded && !looks_encoded {
        return v.to_owned();
    }
    format!("=?base64?{}?=", base64_encode(v.as_bytes()))
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict RFC 4648 Base64 (standard alphabet, padding required).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let chunks = b.chunks(4);
    let last = chunks.len().saturating_sub(1);
    for (i, c) in chunks.enumerate() {
        let pad = c.iter().rev().take_while(|&&x| x == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &x in &c[..4 - pad] {
            n = (n << 6) | val(x)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// A tool's header-mapped arguments: `(argument, header suffix)` for each
/// top-level property of `inputSchema` that declares `x-mcp-header`.
pub fn header_params(tool: &RawValue) -> Vec<(String, String)> {
    #[derive(Deserialize)]
    struct Tool {
        #[serde(rename = "inputSchema")]
        input_schema: Option<Schema>,
    }
    #[derive(Deserialize)]
    struct Schema {
        properties: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let Ok(t) = serde_json::from_str::<Tool>(tool.get()) else {
        return Vec::new();
    };
    t.input_schema
        .and_then(|s| s.properties)
        .map(|props| {
            props
                .iter()
                .filter_map(|(k, v)| {
                    let h = v.get("x-mcp-header")?.as_str()?;
                    Some((k.clone(), h.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a header value (already decoded) carries the same argument as the body.
pub fn header_matches_argument(decoded: &str, arg: &serde_json::Value) -> bool {
    match arg {
        serde_json::Value::String(s) => s == decoded,
        serde_json::Value::Number(n) => decoded
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        serde_json::Value::Bool(b) => decoded == if *b { "true" } else { "false" },
        serde_json::Value::Null => decoded == "null",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_decode_strictly() {
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=?=").as_deref(),
            Some("Hello")
        );
        assert_eq!(decode_header_value("=?base64?SGVsbG8?="), None, "padding");
        assert_eq!(decode_header_value("=?base64?SGVs!!!bG8=?="), None);
        assert_eq!(
            decode_header_value("SGVsbG8=").as_deref(),
            Some("SGVsbG8="),
            "no prefix: literal"
        );
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=").as_deref(),
            Some("=?base64?SGVsbG8="),
            "no suffix: literal"
        );
        assert_eq!(decode_header_value("  t  ").as_deref(), Some("t"));
        assert_eq!(decode_header_value("=?base64?w6k=?=").as_deref(), Some("é"));
        assert_eq!(decode_header_value("=?base64?=?=").as_deref(), None);
        assert_eq!(decode_header_value("=?base64??=").as_deref(), Some(""));
        for v in [
            "plain_name",
            "Hello, 世界",
            " padded ",
            "a",
            "ab",
            "abc",
            "=?base64?x?=",
        ] {
            let e = encode_header_value(v);
            assert_eq!(decode_header_value(&e).as_deref(), Some(v), "{v:?} -> {e}");
        }
        assert_eq!(encode_header_value("Hello"), "Hello");
        assert_eq!(encode_header_value("é"), "=?base64?w6k=?=");
    }

    #[test]
    fn eras_are_told_apart_per_request() {
        let meta =
            |s: &str| RequestMeta::of(Some(&RawValue::from_string(s.to_owned()).expect("json")));
        let m = meta(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#);
        assert!(is_modern(None, "tools/list", m.as_ref()));
        assert!(!is_modern(Some("2025-11-25"), "tools/list", m.as_ref()));
        assert!(is_modern(Some("2026-07-28"), "tools/list", None));
        assert!(is_modern(None, "server/discover", None));
        assert!(!is_modern(None, "tools/list", meta(r#"{"a":1}"#).as_ref()));
        let m =
            meta(r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":[]}}"#).expect("meta");
        assert_eq!(
            m.missing(),
            [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES]
        );
    }

    #[test]
    fn header_params_come_from_the_schema() {
        let t = RawValue::from_string(
            r#"{"name":"t","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"number"}}}}"#.into(),
        )
        .expect("json");
        assert_eq!(
            header_params(&t),
            [("region".to_owned(), "Region".to_owned())]
        );
        assert!(header_matches_argument("42", &serde_json::json!(42.0)));
        assert!(!header_matches_argument("x", &serde_json::json!("y")));
    }
}
