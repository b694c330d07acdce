//! What our requests look like on the stateless 2026-07-28 wire: every
//! request's params carry `_meta` with our protocol version, capabilities and
//! client info, and `subscriptions/listen` takes the place of the GET stream.
//! Pure: no I/O, no connection state.

use mcpgate_proto::jsonrpc;
use mcpgate_proto::modern::{META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION};
use mcpgate_proto::version;
use serde_json::value::RawValue;

/// A request's params with the 2026-07-28 `_meta` keys added (what the
/// caller put in `_meta`, such as a progress token, is kept).
pub(crate) fn params_with_meta(
    params: Option<&RawValue>,
    capabilities: &RawValue,
) -> Result<Box<RawValue>, String> {
    // Values stay raw text: the arguments are copied through, never re-read.
    let mut obj = match params {
        Some(p) => jsonrpc::raw_object(p).ok_or("params must be an object")?,
        None => jsonrpc::RawObject::new(),
    };
    let old_meta = obj.remove("_meta");
    let mut meta = match old_meta {
        Some(m) => jsonrpc::raw_object(m).ok_or("params._meta must be an object")?,
        None => jsonrpc::RawObject::new(),
    };
    let version = jsonrpc::raw_string(version::MODERN);
    let info = jsonrpc::to_raw(
        &serde_json::json!({"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}),
    );
    for (k, v) in [
        (META_PROTOCOL_VERSION, &*version),
        (META_CLIENT_CAPABILITIES, capabilities),
        (META_CLIENT_INFO, &*info),
    ] {
        meta.entry(k.to_owned()).or_insert(v);
    }
    let meta = jsonrpc::to_raw(&meta);
    obj.insert("_meta".into(), &meta);
    Ok(jsonrpc::to_raw(&obj))
}

/// The `subscriptions/listen` request that replaces the GET stream on a
/// 2026-07-28 server: every list change, tagged by the server.
pub(crate) fn listen_request(capabilities: &RawValue) -> Result<Vec<u8>, String> {
    let params = serde_json::json!({
        "notifications": {
            "toolsListChanged": true,
            "promptsListChanged": true,
            "resourcesListChanged": true,
        }
    });
    let params = params_with_meta(Some(&jsonrpc::to_raw(&params)), capabilities)?;
    Ok(jsonrpc::request(
        "\"mcpgate-listen\"",
        "subscriptions/listen",
        Some(&params),
    ))
}
