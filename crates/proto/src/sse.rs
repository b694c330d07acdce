//! Server-Sent Events: an encoder for the events the gateway sends and an
//! incremental decoder for streams it reads from upstreams. The decoder follows
//! the WHATWG event-stream rules: CR, LF or CRLF line ends, comments, multi-line
//! `data`, `id`, `event` and `retry` fields, and a stream cut mid-event yields
//! nothing for the unfinished event.

use bytes::{Bytes, BytesMut};

/// Encodes one event. `data` may hold newlines; each line becomes a `data:` field.
pub fn encode(id: Option<&str>, data: &[u8], retry_ms: Option<u64>) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 48);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\n");
    }
    if let Some(r) = retry_ms {
        out.extend_from_slice(format!("retry: {r}\n").as_bytes());
    }
    if data.is_empty() {
        out.extend_from_slice(b"data: \n");
    } else {
        out.extend_from_slice(b"event: message\n");
        for line in data.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.extend_from_slice(b"\n");
        }
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

/// One decoded event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// Incremental decoder: feed bytes as they arrive, take complete events out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pending: Event,
    has_data: bool,
    last_id: Option<String>,
    saw_cr: bool,
    started: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last `id` seen (what a client sends back as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &b in chunk {
            if self.saw_cr {
                self.saw_cr = false;
                if b == b'\n' {
                    continue; // CRLF: the CR already ended the line
                }
            }
            match b {
                b'\r' => {
                    self.saw_cr = true;
                    self.line(&mut events);
                }
                b'\n' => self.line(&mut events),
                _ => self.buf.push(b),
            }
        }
        events
    }

    fn line(&mut self, events: &mut Vec<Event>) {
        let mut line = std::mem::take(&mut self.buf);
        if !self.started {
            self.started = true;
            if line.starts_with("\u{feff}".as_bytes()) {
                line.drain(..3);
            }
        }
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.pending.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => {
                self.pending.id = Some(value.to_string());
                self.last_id = Some(value.into_owned());
            }
            b"retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.pending.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<Event>) {
        let ev = std::mem::take(&mut self.pending);
        let had_data = std::mem::replace(&mut self.has_data, false);
        if had_data || ev.id.is_some() || ev.retry.is_some() {
            events.push(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut d = Decoder::new();
        chunks.iter().flat_map(|c| d.feed(c)).collect()
    }

    #[test]
    fn multiline_data_comments_and_fields() {
        let evs =
            all(&[b": keepalive\nid: 5\nevent: message\nretry: 3000\ndata: {\"a\":\ndata: 1}\n\n"]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].id.as_deref(), Some("5"));
        assert_eq!(evs[0].event.as_deref(), Some("message"));
        assert_eq!(evs[0].retry, Some(3000));
        assert_eq!(evs[0].data, "{\"a\":\n1}");
    }

    #[test]
    fn split_anywhere_and_crlf() {
        let src = b"id: 1\r\ndata: x\r\n\r\ndata:y\r\rdata: z\n\n";
        let whole = all(&[src]);
        for cut in 0..src.len() {
            let parts = all(&[&src[..cut], &src[cut..]]);
            assert_eq!(parts, whole, "cut at {cut}");
        }
        assert_eq!(
            whole.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["x", "y", "z"]
        );
    }

    #[test]
    fn stream_cut_mid_event_yields_nothing_for_it() {
        let evs = all(&[b"data: done\n\ndata: half"]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].data, "done");
    }

    #[test]
    fn priming_event_with_id_and_empty_data() {
        let evs = all(&[&encode(Some("s1-0"), b"", Some(500))]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].id.as_deref(), Some("s1-0"));
        assert_eq!(evs[0].data, "");
        assert_eq!(evs[0].retry, Some(500));
    }

    #[test]
    fn encode_decode_roundtrip() {
        let data = b"{\"x\":\"a\\nb\"}\nsecond";
        let evs = all(&[&encode(Some("7"), data, None)]);
        assert_eq!(evs[0].data.as_bytes(), data);
    }
}
