//! Namespaced resource URIs on their way out. A server with
//! `resource_uris = "namespaced"` is listed under `NAME+URI` (see
//! `catalog::resource_namespace`); the URIs it sends back must read the same
//! way, or a client could not read again what it was given: the `uri` of each
//! `resources/read` content, resource links and embedded resources in tool
//! results and prompt messages, and `notifications/resources/updated`.
//! Only these known places are rewritten; text inside content is left alone.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use mcpgate_proto::jsonrpc::to_raw;

/// `result` with every URI it carries put under `ns`; `None` when there is
/// nothing to change (the raw result is then sent as it came).
pub(crate) fn expose_in_result(ns: &str, method: &str, result: &RawValue) -> Option<Box<RawValue>> {
    if !result.get().contains("\"uri\"") {
        return None;
    }
    let mut v: Value = serde_json::from_str(result.get()).ok()?;
    let mut changed = false;
    match method {
        "resources/read" => {
            for c in items(&mut v, "contents") {
                changed |= prefix_uri(c, ns);
            }
        }
        "tools/call" => {
            for c in items(&mut v, "content") {
                changed |= expose_content(c, ns);
            }
        }
        "prompts/get" => {
            for m in items(&mut v, "messages") {
                if let Some(Value::Object(c)) = m.get_mut("content") {
                    changed |= expose_content(c, ns);
                }
            }
        }
        _ => {}
    }
    changed.then(|| to_raw(&v))
}

/// `notifications/resources/updated` params with their `uri` under `ns`.
pub(crate) fn expose_in_updated(ns: &str, params: &RawValue) -> Option<Box<RawValue>> {
    let mut v: Map<String, Value> = serde_json::from_str(params.get()).ok()?;
    prefix_uri(&mut v, ns).then(|| to_raw(&v))
}

/// The objects of the array `key` of `v`.
fn items<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// One content block: a `resource_link`'s `uri`, an embedded `resource`'s `resource.uri`.
fn expose_content(c: &mut Map<String, Value>, ns: &str) -> bool {
    match c.get("type").and_then(Value::as_str) {
        Some("resource_link") => prefix_uri(c, ns),
        Some("resource") => match c.get_mut("resource") {
            Some(Value::Object(r)) => prefix_uri(r, ns),
            _ => false,
        },
        _ => false,
    }
}

fn prefix_uri(o: &mut Map<String, Value>, ns: &str) -> bool {
    match o.get_mut("uri") {
        Some(Value::String(u)) => {
            u.insert_str(0, ns);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> Box<RawValue> {
        to_raw(&v)
    }

    #[test]
    fn read_results_links_and_embedded_resources_are_namespaced() {
        let read = raw(json!({"contents": [{"uri": "file:///a", "text": "x uri"}]}));
        let out = expose_in_result("s+", "resources/read", &read).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(out.get()).unwrap(),
            json!({"contents": [{"uri": "s+file:///a", "text": "x uri"}]})
        );
        let call = raw(json!({"content": [
            {"type": "text", "text": "\"uri\""},
            {"type": "resource_link", "uri": "test://1", "name": "one"},
            {"type": "resource", "resource": {"uri": "test://2", "text": "t"}}
        ]}));
        let out: Value =
            serde_json::from_str(expose_in_result("s+", "tools/call", &call).unwrap().get())
                .unwrap();
        assert_eq!(out["content"][0]["text"], "\"uri\"");
        assert_eq!(out["content"][1]["uri"], "s+test://1");
        assert_eq!(out["content"][2]["resource"]["uri"], "s+test://2");
        let prompt = raw(json!({"messages": [
            {"role": "user", "content": {"type": "resource", "resource": {"uri": "a://b"}}}
        ]}));
        let out: Value = serde_json::from_str(
            expose_in_result("s+", "prompts/get", &prompt)
                .unwrap()
                .get(),
        )
        .unwrap();
        assert_eq!(out["messages"][0]["content"]["resource"]["uri"], "s+a://b");
        // Nothing to change: the raw result stays.
        let plain = raw(json!({"content": [{"type": "text", "text": "uri"}]}));
        assert!(expose_in_result("s+", "tools/call", &plain).is_none());
        let updated = raw(json!({"uri": "a://b"}));
        assert_eq!(
            serde_json::from_str::<Value>(expose_in_updated("s+", &updated).unwrap().get())
                .unwrap(),
            json!({"uri": "s+a://b"})
        );
    }
}
