//! Fuzzes the 2026-07-28 routing-header rules in `mcpgate_proto::modern`:
//! `decode_header_value`, `header_matches_argument`, `header_params` and
//! `RequestMeta::of` with `is_modern`, the way the gateway's header checks use
//! them. Input layout, split on the first three `\n`: an `Mcp-Name` /
//! `Mcp-Param-*` header value, an `MCP-Protocol-Version` header value (empty:
//! absent), the body's method, then the request's `params` as JSON (also read
//! as a tool definition for its `x-mcp-header` arguments).
//! Besides "no panic" it checks the properties clients rely on: any text
//! survives `encode_header_value` then `decode_header_value`, and a header
//! written from an argument (string, number, boolean, null) matches it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate_proto::modern::{self, RequestMeta};
use serde_json::Value;
use serde_json::value::RawValue;

/// The header value a client writes for an argument.
fn header_for(arg: &Value) -> Option<String> {
    let text = match arg {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Array(_) | Value::Object(_) => return None,
    };
    Some(modern::encode_header_value(&text))
}

fn check_roundtrip(text: &str) {
    let encoded = modern::encode_header_value(text);
    assert_eq!(
        modern::decode_header_value(&encoded).as_deref(),
        Some(text),
        "{text:?} encoded as {encoded:?} does not decode back"
    );
}

fn check_argument(decoded: Option<&str>, arg: &Value) {
    if let Some(d) = decoded {
        let _ = modern::header_matches_argument(d, arg);
    }
    if let Some(h) = header_for(arg) {
        let back = modern::decode_header_value(&h);
        let ok = back
            .as_deref()
            .is_some_and(|d| modern::header_matches_argument(d, arg));
        assert!(ok, "argument {arg} sent as {h:?} does not match itself");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let header = parts.next().unwrap_or_default();
    let version = parts.next().filter(|v| !v.is_empty());
    let method = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    let decoded = modern::decode_header_value(header);
    check_roundtrip(header);
    if let Some(d) = &decoded {
        check_roundtrip(d);
    }

    let Ok(params) = serde_json::from_str::<Box<RawValue>>(body) else {
        let _ = modern::is_modern(version, method, None);
        return;
    };
    let meta = RequestMeta::of(Some(&params));
    let _ = modern::is_modern(version, method, meta.as_ref());
    if let Some(m) = &meta {
        let _ = (m.version(), m.missing());
    }
    let _ = modern::name_param(method);

    let mapped = modern::header_params(&params);
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(params.get()) else {
        return;
    };
    if let Some(Value::Object(args)) = top.get("arguments") {
        for (_, v) in mapped.iter().filter_map(|(a, s)| Some((s, args.get(a)?))) {
            check_argument(decoded.as_deref(), v);
        }
        for v in args.values() {
            check_argument(decoded.as_deref(), v);
        }
    }
    for member in ["name", "uri"] {
        if let Some(v) = top.get(member) {
            check_argument(decoded.as_deref(), v);
        }
    }
});
