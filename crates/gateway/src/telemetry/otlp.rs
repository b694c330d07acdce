//! The OTLP/HTTP protobuf body of a trace export: an
//! `ExportTraceServiceRequest`, written by hand. Only the fields mcpgate
//! sets are written; field numbers and wire types are those of the
//! opentelemetry-proto schema (v1):
//!
//! - `opentelemetry/proto/collector/trace/v1/trace_service.proto`:
//!   `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }`
//! - `opentelemetry/proto/trace/v1/trace.proto`:
//!   `ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }`,
//!   `ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }`,
//!   `Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4;
//!   string name = 5; SpanKind kind = 6; fixed64 start_time_unix_nano = 7;
//!   fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
//!   repeated Link links = 13; Status status = 15; fixed32 flags = 16; }`,
//!   `Span.Link { bytes trace_id = 1; bytes span_id = 2; fixed32 flags = 6; }`,
//!   `Status { string message = 2; StatusCode code = 3; }` (`STATUS_CODE_ERROR = 2`),
//!   `SpanKind` (`INTERNAL = 1`, `SERVER = 2`, `CLIENT = 3`);
//! - `opentelemetry/proto/resource/v1/resource.proto`:
//!   `Resource { repeated KeyValue attributes = 1; }`;
//! - `opentelemetry/proto/common/v1/common.proto`:
//!   `InstrumentationScope { string name = 1; string version = 2; }`,
//!   `KeyValue { string key = 1; AnyValue value = 2; }`,
//!   `AnyValue { oneof { string string_value = 1; int64 int_value = 3; } }`.
//!
//! Protobuf's wire format: each field is a key `(number << 3) | wire type`
//! as a varint, then a varint (type 0), 8 bytes little-endian (type 1), a
//! varint length and that many bytes (type 2, strings, bytes and nested
//! messages), or 4 bytes little-endian (type 5).

use super::{Attr, Kind, SpanRecord};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` (0x100), with `..._IS_REMOTE_MASK`
/// (0x200) when the parent came from elsewhere, plus the W3C sampled flag.
fn flags(remote_parent: bool) -> u32 {
    0x100 | if remote_parent { 0x200 } else { 0 } | 0x01
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    key(out, field, FIXED32);
    out.extend_from_slice(&v.to_le_bytes());
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

/// A nested message: written to a scratch buffer, then length-prefixed.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(out, field, &inner);
}

/// `KeyValue` at `field` of the enclosing message.
fn key_value(out: &mut Vec<u8>, field: u32, k: &str, v: &Attr) {
    message(out, field, |kv| {
        bytes(kv, 1, k.as_bytes());
        message(kv, 2, |any| match v {
            Attr::Str(s) => bytes(any, 1, s.as_bytes()),
            Attr::Int(i) => uint(any, 3, *i as u64),
        });
    });
}

fn span(out: &mut Vec<u8>, s: &SpanRecord) {
    bytes(out, 1, &s.trace_id);
    bytes(out, 2, &s.span_id);
    if let Some(p) = &s.parent {
        bytes(out, 4, p);
    }
    bytes(out, 5, s.name.as_bytes());
    uint(
        out,
        6,
        match s.kind {
            Kind::Internal => 1,
            Kind::Server => 2,
            Kind::Client => 3,
        },
    );
    fixed64(out, 7, s.start_ns);
    fixed64(out, 8, s.end_ns.max(s.start_ns));
    for (k, v) in &s.attrs {
        key_value(out, 9, k, v);
    }
    for (trace, span) in &s.links {
        message(out, 13, |l| {
            bytes(l, 1, trace);
            bytes(l, 2, span);
            fixed32(l, 6, flags(false));
        });
    }
    if let Some(why) = &s.error {
        message(out, 15, |st| {
            bytes(st, 2, why.as_bytes());
            uint(st, 3, 2);
        });
    }
    fixed32(out, 16, flags(s.remote_parent));
}

/// The body of one export: `spans`, from the service `service`.
pub(super) fn export_request(service: &str, spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + spans.len() * 160);
    message(&mut out, 1, |rs| {
        message(rs, 1, |res| {
            key_value(res, 1, "service.name", &Attr::Str(service.to_owned()));
        });
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, b"mcpgate");
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                message(ss, 2, |out| span(out, s));
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        varint(&mut out, u64::MAX);
        assert_eq!(&out[..3], &[0x01, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 10);
        assert_eq!(out[12], 0x01);
    }

    #[test]
    fn a_span_encodes_its_ids_name_times_and_attributes() {
        let s = SpanRecord {
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
            parent: Some([0xef; 8]),
            remote_parent: true,
            name: "auth",
            kind: Kind::Internal,
            start_ns: 10,
            end_ns: 20,
            attrs: vec![("mcpgate.tenant", Attr::Str("acme".into()))],
            links: vec![],
            error: Some("no".into()),
        };
        let mut out = Vec::new();
        span(&mut out, &s);
        // trace_id: key 0x0a (1 << 3 | 2), length 16, the bytes.
        assert_eq!(&out[..2], &[0x0a, 16]);
        assert_eq!(&out[2..18], &[0xab; 16]);
        // span_id: key 0x12, length 8.
        assert_eq!(&out[18..20], &[0x12, 8]);
        // parent_span_id: key 0x22 (4 << 3 | 2).
        assert_eq!(&out[28..30], &[0x22, 8]);
        // name: key 0x2a, "auth".
        assert_eq!(&out[38..44], &[0x2a, 4, b'a', b'u', b't', b'h']);
        // kind INTERNAL: key 0x30, 1; start: key 0x39 (7 << 3 | 1), 8 bytes LE.
        assert_eq!(&out[44..47], &[0x30, 1, 0x39]);
        assert_eq!(&out[47..55], &10u64.to_le_bytes());
        // flags last: key 0x85 0x01 (16 << 3 | 5), has-remote | remote | sampled.
        let n = out.len();
        assert_eq!(&out[n - 6..], &[0x85, 0x01, 0x01, 0x03, 0, 0]);
    }
}
