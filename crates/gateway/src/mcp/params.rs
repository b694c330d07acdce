//! Reading and editing a request's params at the top level only: values stay
//! raw (`proto::jsonrpc::RawObject`), so everything below (arguments,
//! `_meta`, extensions) is forwarded byte for byte. Errors are the JSON-RPC
//! invalid-params errors a client should see.

use mcpgate_proto::jsonrpc::{self, RawObject};
use serde_json::value::RawValue;

use crate::state::error::CallError;

/// A params object's top-level members, with values left raw.
pub(crate) struct Params<'a>(RawObject<'a>);

impl<'a> Params<'a> {
    /// Absent params read as an empty object; anything but an object is invalid.
    pub(crate) fn parse(params: Option<&'a RawValue>) -> Result<Params<'a>, CallError> {
        match params {
            None => Ok(Params(RawObject::new())),
            Some(p) => jsonrpc::raw_object(p)
                .map(Params)
                .ok_or_else(|| CallError::InvalidParams("params must be an object".into())),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.get(key).copied()
    }

    pub(crate) fn string(&self, key: &str) -> Result<String, CallError> {
        let raw = self
            .get(key)
            .ok_or_else(|| CallError::InvalidParams(format!("missing \"{key}\"")))?;
        serde_json::from_str::<String>(raw.get())
            .map_err(|_| CallError::InvalidParams(format!("\"{key}\" must be a string")))
    }

    pub(crate) fn with(&self, key: &str, value: &str) -> Box<RawValue> {
        self.with_raw(key, &jsonrpc::raw_string(value))
    }

    pub(crate) fn with_raw(&self, key: &str, value: &RawValue) -> Box<RawValue> {
        let mut m = self.0.clone();
        m.insert(key.to_owned(), value);
        jsonrpc::to_raw(&m)
    }
}

/// `obj` with one top-level member replaced; `None` when `obj` is no object.
pub(crate) fn replace_key(obj: &RawValue, key: &str, value: &RawValue) -> Option<Box<RawValue>> {
    Some(Params::parse(Some(obj)).ok()?.with_raw(key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_edit_keeps_nested_bytes() {
        let p = RawValue::from_string(
            r#"{"name":"a__x","arguments":{"k":[1,2.50,"\u00e9"]},"_meta":{"progressToken":7,"z":1}}"#
                .into(),
        )
        .expect("json");
        let out = Params::parse(Some(&p)).expect("object").with("name", "x");
        assert!(
            out.get().contains(r#""arguments":{"k":[1,2.50,"\u00e9"]}"#),
            "{}",
            out.get()
        );
        assert!(out.get().contains(r#""name":"x""#));
        assert!(Params::parse(Some(&RawValue::from_string("[1]".into()).expect("json"))).is_err());
    }
}
