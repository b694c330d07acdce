//! The JSON-RPC 2.0 envelope. A message is parsed once into [`Message`], whose
//! `params`, `result` and `error` stay raw JSON, so nothing a peer sent (unknown
//! fields, `_meta`, extension params) is dropped when the gateway forwards it.
//! A JSON-RPC message has only these top-level members, so re-serialising the
//! envelope with a new id is lossless and cheap.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write as _;

use crate::codes;

/// One JSON-RPC message with its payload left raw.
#[derive(Debug, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub jsonrpc: Option<String>,
    /// `Some` whenever the member is present, even as `null` (which a
    /// request may not carry, and which must not turn it into a notification).
    #[serde(default, deserialize_with = "present")]
    pub id: Option<Box<RawValue>>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Box<RawValue>>,
    #[serde(default)]
    pub result: Option<Box<RawValue>>,
    #[serde(default)]
    pub error: Option<Box<RawValue>>,
}

/// Keeps a present member as raw JSON, `null` included (serde's `Option`
/// would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// What a message is, decided from which members are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// Why bytes could not be taken as one JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (-32700).
    Json(String),
    /// A JSON array: batches were removed in 2025-06-18 (-32600).
    Batch,
    /// JSON, but not a valid JSON-RPC 2.0 message (-32600).
    Invalid(&'static str),
}

impl ParseError {
    pub fn code(&self) -> i64 {
        match self {
            ParseError::Json(_) => codes::PARSE_ERROR,
            ParseError::Batch | ParseError::Invalid(_) => codes::INVALID_REQUEST,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ParseError::Json(e) => format!("Parse error: {e}"),
            ParseError::Batch => {
                "Invalid Request: JSON-RPC batches are not supported (removed in MCP 2025-06-18); send one message per POST".into()
            }
            ParseError::Invalid(why) => format!("Invalid Request: {why}"),
        }
    }
}

impl Message {
    /// Parses one message, rejecting batches and envelopes that are not JSON-RPC 2.0.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            // Still require valid JSON so that garbage starting with '[' is a parse error.
            return match serde_json::from_slice::<&RawValue>(bytes) {
                Ok(_) => Err(ParseError::Batch),
                Err(e) => Err(ParseError::Json(e.to_string())),
            };
        }
        if first != Some(&b'{') {
            return match serde_json::from_slice::<&RawValue>(bytes) {
                Ok(_) => Err(ParseError::Invalid("a message must be a JSON object")),
                Err(e) => Err(ParseError::Json(e.to_string())),
            };
        }
        let msg: Message = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                ParseError::Invalid("a member has the wrong type")
            } else {
                ParseError::Json(e.to_string())
            }
        })?;
        if msg.jsonrpc.as_deref() != Some("2.0") {
            return Err(ParseError::Invalid("\"jsonrpc\" must be \"2.0\""));
        }
        msg.kind()?;
        Ok(msg)
    }

    /// Classifies the message; errors when the member combination is impossible.
    pub fn kind(&self) -> Result<Kind, ParseError> {
        match (
            &self.method,
            &self.id,
            self.result.is_some() || self.error.is_some(),
        ) {
            (Some(_), Some(id), false) => {
                check_id(id)?;
                Ok(Kind::Request)
            }
            (Some(_), None, false) => Ok(Kind::Notification),
            (None, Some(_), true) => Ok(Kind::Response),
            (None, None, true) => Ok(Kind::Response), // error responses may carry id null
            (Some(_), _, true) => Err(ParseError::Invalid(
                "a message cannot have both \"method\" and \"result\"/\"error\"",
            )),
            (None, _, false) => Err(ParseError::Invalid(
                "a message needs \"method\", \"result\" or \"error\"",
            )),
        }
    }

    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    /// Serialises the envelope back to bytes, with `id` replaced when given.
    pub fn to_bytes_with_id(&self, id: Option<&RawValue>) -> Vec<u8> {
        let id = id.or(self.id.as_deref());
        let mut out = String::with_capacity(
            64 + self.params.as_ref().map_or(0, |p| p.get().len())
                + self.result.as_ref().map_or(0, |p| p.get().len()),
        );
        out.push_str("{\"jsonrpc\":\"2.0\"");
        if let Some(id) = id {
            out.push_str(",\"id\":");
            out.push_str(id.get());
        } else if self.method.is_none() {
            out.push_str(",\"id\":null");
        }
        if let Some(m) = &self.method {
            out.push_str(",\"method\":");
            push_json_str(&mut out, m);
        }
        if let Some(p) = &self.params {
            out.push_str(",\"params\":");
            out.push_str(p.get());
        }
        if let Some(r) = &self.result {
            out.push_str(",\"result\":");
            out.push_str(r.get());
        }
        if let Some(e) = &self.error {
            out.push_str(",\"error\":");
            out.push_str(e.get());
        }
        out.push('}');
        out.into_bytes()
    }
}

/// A request id is a JSON string or an integer: not `null` (MCP), not a
/// fraction or an exponent, not an object or array.
fn check_id(id: &RawValue) -> Result<(), ParseError> {
    let text = id.get().as_bytes();
    if text.first() == Some(&b'"') {
        return Ok(());
    }
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        return Ok(());
    }
    Err(ParseError::Invalid(if text == b"null" {
        "a request's \"id\" must not be null (send a notification without \"id\")"
    } else {
        "\"id\" must be a string or an integer"
    }))
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A request: `{"jsonrpc":"2.0","id":ID,"method":M,"params":P}`.
pub fn request(id: &str, method: &str, params: Option<&RawValue>) -> Vec<u8> {
    let mut out = String::with_capacity(64 + params.map_or(0, |p| p.get().len()));
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id);
    out.push_str(",\"method\":");
    push_json_str(&mut out, method);
    if let Some(p) = params {
        out.push_str(",\"params\":");
        out.push_str(p.get());
    }
    out.push('}');
    out.into_bytes()
}

/// A notification: `{"jsonrpc":"2.0","method":M,"params":P}`.
pub fn notification(method: &str, params: Option<&RawValue>) -> Vec<u8> {
    let mut out = String::with_capacity(48 + params.map_or(0, |p| p.get().len()));
    out.push_str("{\"jsonrpc\":\"2.0\",\"method\":");
    push_json_str(&mut out, method);
    if let Some(p) = params {
        out.push_str(",\"params\":");
        out.push_str(p.get());
    }
    out.push('}');
    out.into_bytes()
}

/// A success response carrying a raw result.
pub fn response_result(id: &RawValue, result: &RawValue) -> Vec<u8> {
    let mut out = String::with_capacity(40 + result.get().len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id.get());
    out.push_str(",\"result\":");
    out.push_str(result.get());
    out.push('}');
    out.into_bytes()
}

/// An error response carrying a raw error object.
pub fn response_error_raw(id: Option<&RawValue>, error: &RawValue) -> Vec<u8> {
    let mut out = String::with_capacity(40 + error.get().len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id.map_or("null", |i| i.get()));
    out.push_str(",\"error\":");
    out.push_str(error.get());
    out.push('}');
    out.into_bytes()
}

/// An error object `{"code":C,"message":M[,"data":D]}` as raw JSON.
pub fn error_object(code: i64, message: &str, data: Option<&serde_json::Value>) -> Box<RawValue> {
    let v = match data {
        Some(d) => serde_json::json!({"code": code, "message": message, "data": d}),
        None => serde_json::json!({"code": code, "message": message}),
    };
    to_raw(&v)
}

/// An error response built from code and message.
pub fn response_error(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Vec<u8> {
    response_error_raw(id, &error_object(code, message, data))
}

/// Serialises a value into a boxed raw value. Serialising a `Value` cannot fail.
/// A JSON object's top-level members with their values left as raw text
/// (re-serialising it copies the values verbatim; keys come out sorted).
pub type RawObject<'a> = std::collections::BTreeMap<String, &'a RawValue>;

/// Parses `obj` as a [`RawObject`]; `None` when it is not a JSON object.
pub fn raw_object(obj: &RawValue) -> Option<RawObject<'_>> {
    serde_json::from_str(obj.get()).ok()
}

/// Adds members to a JSON object without re-reading its values: each
/// `(key, raw JSON value)` goes in front unless the object already has `key`.
/// `None` when `obj` is not an object.
pub fn add_members(obj: &RawValue, add: &[(&str, &str)]) -> Option<Box<RawValue>> {
    let keys: std::collections::HashMap<std::borrow::Cow<'_, str>, serde::de::IgnoredAny> =
        serde_json::from_str(obj.get()).ok()?;
    let text = obj.get().trim_start();
    let rest = text.strip_prefix('{')?;
    let mut out = String::with_capacity(text.len() + 64);
    out.push('{');
    let mut first = true;
    for (k, v) in add.iter().filter(|(k, _)| !keys.contains_key(*k)) {
        if !first {
            out.push(',');
        }
        first = false;
        push_json_str(&mut out, k);
        out.push(':');
        out.push_str(v);
    }
    if !first && !keys.is_empty() {
        out.push(',');
    }
    out.push_str(rest);
    RawValue::from_string(out).ok()
}

pub fn to_raw<T: serde::Serialize + ?Sized>(v: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| raw_null())
}

/// A number as raw JSON.
pub fn raw_u64(n: u64) -> Box<RawValue> {
    RawValue::from_string(n.to_string()).unwrap_or_else(|_| raw_null())
}

/// The raw JSON `null`.
pub fn raw_null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is valid JSON")
}

/// A raw JSON string literal.
pub fn raw_string(s: &str) -> Box<RawValue> {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    RawValue::from_string(out).unwrap_or_else(|_| raw_null())
}

/// The error code inside a raw error object, if it has one.
pub fn error_code(error: &RawValue) -> Option<i64> {
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Code>(error.get())
        .ok()
        .map(|c| c.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_added_without_touching_values() {
        let r = |s: &str| RawValue::from_string(s.to_owned()).expect("json");
        let out = add_members(
            &r(r#"{"a":[1, 2.50],"resultType":"x"}"#),
            &[("resultType", r#""complete""#), ("ttlMs", "0")],
        )
        .expect("object");
        assert_eq!(out.get(), r#"{"ttlMs":0,"a":[1, 2.50],"resultType":"x"}"#);
        let out = add_members(&r("{ }"), &[("k", "1")]).expect("object");
        assert_eq!(out.get(), r#"{"k":1 }"#);
        assert!(add_members(&r("[1]"), &[("k", "1")]).is_none());
        let src = r(r#"{"b":{"x": 1},"a":2}"#);
        let o = raw_object(&src).expect("object");
        assert_eq!(to_raw(&o).get(), r#"{"a":2,"b":{"x": 1}}"#);
    }

    #[test]
    fn request_roundtrips_unknown_fields_verbatim() {
        let src = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"p","vendor/ext":[1,2]},"zzz":true}}"#;
        let m = Message::parse(src).expect("valid");
        assert_eq!(m.kind().expect("kind"), Kind::Request);
        let out = m.to_bytes_with_id(Some(&raw_string("g-1")));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["id"], "g-1");
        assert_eq!(v["params"]["_meta"]["vendor/ext"][1], 2);
        assert_eq!(v["params"]["zzz"], true);
    }

    #[test]
    fn batches_are_rejected_as_invalid_request() {
        let e = Message::parse(br#" [{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err();
        assert_eq!(e, ParseError::Batch);
        assert_eq!(e.code(), codes::INVALID_REQUEST);
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        for bad in [&b"{\"jsonrpc\":"[..], b"[1,", b"nope", b""] {
            let e = Message::parse(bad).unwrap_err();
            assert_eq!(
                e.code(),
                codes::PARSE_ERROR,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn envelope_shape_errors_are_invalid_request() {
        for bad in [
            &br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#[..],
            br#"{"id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            br#"42"#,
        ] {
            let e = Message::parse(bad).unwrap_err();
            assert_eq!(
                e.code(),
                codes::INVALID_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn null_id_is_not_a_notification() {
        let e =
            Message::parse(br#"{"jsonrpc":"2.0","id":null,"method":"notifications/initialized"}"#)
                .unwrap_err();
        assert_eq!(e.code(), codes::INVALID_REQUEST);
        assert!(e.message().contains("null"), "{}", e.message());
        let e = Message::parse(br#"{"jsonrpc":"2.0","id": null ,"method":"ping"}"#).unwrap_err();
        assert_eq!(e.code(), codes::INVALID_REQUEST);
        // An error response may still carry a null id (its request could not be read).
        let r = Message::parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#)
            .expect("error response with null id");
        assert_eq!(r.kind(), Ok(Kind::Response));
        let out: serde_json::Value =
            serde_json::from_slice(&r.to_bytes_with_id(None)).expect("json");
        assert!(out["id"].is_null(), "{out}");
    }

    #[test]
    fn fractional_and_exponent_ids_are_refused() {
        for bad in ["1.5", "1e3", "-2.0", "true", "[1]", "{}"] {
            let src = format!(r#"{{"jsonrpc":"2.0","id":{bad},"method":"ping"}}"#);
            let r = Message::parse(src.as_bytes());
            assert!(
                r.as_ref()
                    .is_err_and(|e| e.code() == codes::INVALID_REQUEST),
                "{bad}: {:?}",
                r.map(|m| m.kind())
            );
        }
        for good in ["0", "-7", "18446744073709551616", r#""1.5""#, r#""""#] {
            let src = format!(r#"{{"jsonrpc":"2.0","id":{good},"method":"ping"}}"#);
            let m = Message::parse(src.as_bytes()).expect(good);
            assert_eq!(m.kind(), Ok(Kind::Request), "{good}");
            assert_eq!(m.id.as_deref().map(RawValue::get), Some(good));
        }
    }

    #[test]
    fn kinds() {
        let n =
            Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.kind().unwrap(), Kind::Notification);
        let r = Message::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(r.kind().unwrap(), Kind::Response);
    }

    #[test]
    fn builders_escape_and_emit_valid_json() {
        let b = response_error(
            Some(&raw_string("q\"1")),
            -32602,
            "Unknown tool: a\"b\n",
            None,
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], "q\"1");
        assert_eq!(v["error"]["message"], "Unknown tool: a\"b\n");
        assert_eq!(error_code(&error_object(-5, "m", None)), Some(-5));
    }
}
