//! Fuzzes the JSON-RPC envelope parser (`Message::parse`) the way the gateway
//! uses it on a POST body or an upstream line: parse, classify (`kind`), read
//! the method, tell the era from `params._meta` (`RequestMeta::of`,
//! `is_modern`), and re-serialise with a new id. Beyond "no panic", it checks
//! that an accepted message re-serialises to bytes that parse back to the same
//! envelope, member for member, with or without a replaced id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate_proto::jsonrpc::{self, Kind, Message};
use mcpgate_proto::modern::{self, RequestMeta};
use serde_json::value::RawValue;

fn raw(v: &Option<Box<RawValue>>) -> Option<&str> {
    v.as_deref().map(RawValue::get)
}

fn same_envelope(a: &Message, b: &Message, id: Option<&str>) {
    assert_eq!(b.jsonrpc.as_deref(), Some("2.0"));
    assert_eq!(a.method, b.method, "method changed in the round trip");
    assert_eq!(raw(&a.params), raw(&b.params), "params changed");
    assert_eq!(raw(&a.result), raw(&b.result), "result changed");
    assert_eq!(raw(&a.error), raw(&b.error), "error changed");
    // A response without an id is written with `"id":null`, as JSON-RPC wants.
    let absent = if a.method.is_none() {
        Some("null")
    } else {
        None
    };
    assert_eq!(id.or(raw(&a.id)).or(absent), raw(&b.id), "id changed");
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    // `parse` accepted it, so it has a kind; `kind` must agree on every call.
    let kind = match msg.kind() {
        Ok(k) => k,
        Err(e) => panic!("parse accepted a message kind() rejects: {e:?}"),
    };
    let method = msg.method();
    assert_eq!(kind == Kind::Response, msg.method.is_none());

    // What the gateway's era check does right after parsing.
    let params = msg.params.as_deref();
    let meta = params
        .filter(|p| p.get().contains(modern::META_PROTOCOL_VERSION))
        .and_then(|p| RequestMeta::of(Some(p)));
    for header in [None, Some("2026-07-28"), Some("2025-11-25"), Some("")] {
        let _ = modern::is_modern(header, method, meta.as_ref());
    }
    if let Some(m) = RequestMeta::of(params) {
        let _ = m.version();
        let _ = m.missing();
    }
    let _ = modern::name_param(method);
    if let Some(e) = msg.error.as_deref() {
        let _ = jsonrpc::error_code(e);
    }
    if let Some(p) = params {
        let _ = jsonrpc::raw_object(p);
    }

    // Re-serialising keeps every member; a replaced id is the only change.
    let same = msg.to_bytes_with_id(None);
    match Message::parse(&same) {
        Ok(back) => {
            same_envelope(&msg, &back, None);
            assert_eq!(back.kind().ok(), Some(kind));
        }
        Err(e) => panic!("re-serialised message does not parse: {e:?}"),
    }
    if kind != Kind::Notification {
        let new_id = jsonrpc::raw_string("g-1");
        let renamed = msg.to_bytes_with_id(Some(&new_id));
        match Message::parse(&renamed) {
            Ok(back) => same_envelope(&msg, &back, Some(new_id.get())),
            Err(e) => panic!("message with a new id does not parse: {e:?}"),
        }
    }
});
