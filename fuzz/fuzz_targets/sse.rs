//! Fuzzes the incremental SSE decoder (`mcpgate_proto::sse::Decoder`) with the
//! stream cut into chunks the fuzzer chooses. Input layout: byte 0 is `n`
//! (taken mod 16), the next `n` bytes are chunk lengths used in turn (a
//! zero-length chunk is fed too), and the rest is the stream. It checks that
//! the events and `last_event_id` do not depend on how the stream is split
//! (one piece, the fuzzer's chunks, byte by byte), and that every decoded
//! event survives `encode` and a second decode with its id, data and retry.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate_proto::sse::{self, Decoder, Event};

fn decode_in(pieces: impl Iterator<Item = impl AsRef<[u8]>>) -> (Vec<Event>, Option<String>) {
    let mut d = Decoder::new();
    let mut events = Vec::new();
    for p in pieces {
        events.extend(d.feed(p.as_ref()));
    }
    (events, d.last_event_id().map(str::to_owned))
}

/// Splits `stream` by cycling through `lengths`.
fn chunks<'a>(stream: &'a [u8], lengths: &[u8]) -> Vec<&'a [u8]> {
    if lengths.is_empty() {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = usize::from(lengths[i % lengths.len()]).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
        i += 1;
        if i > stream.len() * 2 + lengths.len() {
            // Only zero lengths: feed the remainder at once.
            out.push(rest);
            break;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (lengths, stream) = rest.split_at(n);

    let whole = decode_in(std::iter::once(stream));
    let split = decode_in(chunks(stream, lengths).into_iter());
    assert_eq!(whole, split, "events depend on the chunking {lengths:?}");
    let bytewise = decode_in(stream.chunks(1));
    assert_eq!(whole, bytewise, "events differ when fed byte by byte");

    for ev in &whole.0 {
        assert!(
            !ev.data.contains('\r'),
            "a line end leaked into data: {ev:?}"
        );
        let again = sse::encode(ev.id.as_deref(), ev.data.as_bytes(), ev.retry);
        let (back, last) = decode_in(std::iter::once(&again[..]));
        assert_eq!(back.len(), 1, "one event encodes to one event: {ev:?}");
        assert_eq!(back[0].id, ev.id);
        assert_eq!(back[0].data, ev.data);
        assert_eq!(back[0].retry, ev.retry);
        assert_eq!(last, ev.id);
    }
});
