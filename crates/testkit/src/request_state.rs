//! Integrity-protected `requestState` for the fixture's native (2026-07-28)
//! multi-round-trip tools. The fixture keeps no per-call memory: whatever a
//! later round needs (the step, an earlier answer) travels in the state the
//! client echoes back. A state is `s1.<hex payload>.<hex tag>`, where the
//! payload is a JSON object naming the tool it was issued for and the tag is
//! HMAC-SHA256 over a domain label and the payload, keyed with 32 random bytes
//! drawn once per process. A state that fails verification, or that was issued
//! for another tool, is refused with -32602 (invalid params).

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use rmcp::ErrorData as McpError;
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "s1.";
/// Mixed into every tag so it cannot be confused with any other HMAC.
const DOMAIN: &[u8] = b"mcpgate-fixture/request-state/v1\0";
/// The payload field naming the tool a state belongs to.
const TOOL_FIELD: &str = "tool";

/// The per-process signing key.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        key
    })
}

fn mac(payload: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(key()).expect("HMAC accepts a 32-byte key");
    mac.update(DOMAIN);
    mac.update(payload);
    mac
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

/// Seal `fields` (plus the tool's name) into a state for `tool`.
pub(crate) fn seal(tool: &str, mut fields: Map<String, Value>) -> String {
    fields.insert(TOOL_FIELD.to_owned(), Value::from(tool));
    let payload = Value::Object(fields).to_string();
    let tag = mac(payload.as_bytes()).finalize().into_bytes();
    format!("{PREFIX}{}.{}", hex(payload.as_bytes()), hex(&tag))
}

fn refused(why: &str) -> McpError {
    McpError::invalid_params(format!("invalid requestState: {why}"), None)
}

/// Verify a state echoed back for `tool` and return its fields (the tool's
/// name included). A forged, modified or foreign state is -32602.
pub(crate) fn open(tool: &str, state: &str) -> Result<Map<String, Value>, McpError> {
    let integrity = || refused("integrity check failed");
    let (payload, tag) = state
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(integrity)?;
    let payload = unhex(payload).ok_or_else(integrity)?;
    let tag = unhex(tag).ok_or_else(integrity)?;
    mac(&payload).verify_slice(&tag).map_err(|_| integrity())?;
    let fields = match serde_json::from_slice(&payload) {
        Ok(Value::Object(fields)) => fields,
        _ => return Err(refused("malformed payload")),
    };
    if fields.get(TOOL_FIELD).and_then(Value::as_str) != Some(tool) {
        return Err(refused("issued for another tool"));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use rmcp::model::ErrorCode;
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex(&bytes), "00017f80ff");
        assert_eq!(unhex("00017f80ff").as_deref(), Some(&bytes[..]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("AB"), None);
    }

    #[test]
    fn sealed_state_opens_for_its_tool_only() {
        let state = seal("t", fields(json!({ "step": 2, "name": "Alice" })));
        assert!(state.starts_with(PREFIX));
        let opened = open("t", &state).expect("genuine state");
        assert_eq!(
            Value::Object(opened),
            json!({ "step": 2, "name": "Alice", "tool": "t" })
        );
        let foreign = open("other", &state).expect_err("foreign state");
        assert_eq!(foreign.code, ErrorCode::INVALID_PARAMS);
    }

    #[test]
    fn tampered_states_are_refused() {
        let state = seal("t", Map::new());
        let (payload, tag) = state
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .expect("sealed shape");
        let forged_payload = hex(br#"{"tool":"t","step":9}"#);
        let flipped_tag = format!("{}{}", &tag[..tag.len() - 1], "0");
        let flipped_tag = if flipped_tag == tag {
            format!("{}{}", &tag[..tag.len() - 1], "1")
        } else {
            flipped_tag
        };
        for tampered in [
            format!("{state}-TAMPERED"),
            format!("{PREFIX}{forged_payload}.{tag}"),
            format!("{PREFIX}{payload}.{flipped_tag}"),
            format!("{PREFIX}{payload}"),
            String::new(),
            "opaque".to_owned(),
        ] {
            let error = open("t", &tampered).expect_err("tampered state");
            assert_eq!(error.code, ErrorCode::INVALID_PARAMS, "{tampered}");
        }
    }
}
