//! Incremental Server-Sent Events decoding: bytes in (any split), whole events out, each with the
//! exact bytes the upstream sent so they can be relayed untouched.
//!
//! Invariants: events are emitted in order, each exactly once, with their raw bytes (terminator
//! included); a single event larger than `MAX_EVENT_BYTES` is an error, never unbounded growth.

/// Largest single event accepted from an upstream.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The bytes as received, including the blank line that ended the event.
    pub raw: Vec<u8>,
    /// The `event:` field, if any.
    pub name: Option<String>,
    /// The `data:` lines joined with `\n` (empty when the event had none).
    pub data: String,
}

/// The decoder: feed bytes, take events.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned without finding an event end (avoids rescanning).
    scanned: usize,
}

/// Error when an event exceeds the size limit.
#[derive(Debug, PartialEq, Eq)]
pub struct EventTooLarge;

impl Decoder {
    /// Appends bytes and returns every event completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, EventTooLarge> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.buf, self.scanned.saturating_sub(3)) {
            let raw: Vec<u8> = self.buf.drain(..end).collect();
            self.scanned = 0;
            events.push(parse_event(raw));
        }
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(events)
    }

    /// Bytes received after the last complete event (a stream that ends without a final blank line).
    #[must_use]
    pub fn remainder(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the trailing partial event, if it holds anything.
    pub fn finish(&mut self) -> Option<Event> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            self.buf.clear();
            return None;
        }
        self.scanned = 0;
        Some(parse_event(std::mem::take(&mut self.buf)))
    }
}

/// The index just past the blank line ending the first event (`\n\n`, `\r\n\r\n`, `\r\r`, or mixes).
fn find_event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let b = buf[i];
        if b == b'\n' || b == b'\r' {
            // end of a line; is the next line empty?
            let next = if b == b'\r' && buf.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
            match buf.get(next) {
                Some(b'\n') => return Some(next + 1),
                Some(b'\r') => {
                    if buf.get(next + 1) == Some(&b'\n') {
                        return Some(next + 2);
                    }
                    if next + 1 < buf.len() {
                        return Some(next + 1);
                    }
                    return None; // `\r` at the very end: wait to see whether `\n` follows
                }
                _ => {}
            }
            i = next;
        } else {
            i += 1;
        }
    }
    None
}

fn parse_event(raw: Vec<u8>) -> Event {
    let text = String::from_utf8_lossy(&raw);
    let mut name = None;
    let mut data: Option<String> = None;
    for line in text.split(['\n', '\r']) {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            "event" => name = Some(value.to_string()),
            _ => {}
        }
    }
    let data = data.unwrap_or_default();
    Event { raw, name, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(input: &[u8], step: usize) -> Vec<Event> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            out.extend(d.feed(chunk).unwrap());
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn events_survive_any_split() {
        let input =
            b"data: {\"a\":1}\n\nevent: response.completed\ndata: {\"b\":2}\n\n: keep-alive\n\ndata: [DONE]\n\n";
        for step in 1..input.len() {
            let events = decode_split(input, step);
            assert_eq!(events.len(), 4, "step {step}");
            assert_eq!(events[0].data, "{\"a\":1}");
            assert_eq!(events[1].name.as_deref(), Some("response.completed"));
            assert_eq!(events[1].data, "{\"b\":2}");
            assert_eq!(events[2].data, "");
            assert_eq!(events[3].data, "[DONE]");
            let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
            assert_eq!(raw, input.to_vec(), "raw bytes are relayed untouched");
        }
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let input = b"data: x\r\n\r\ndata: y\r\rdata: z\n\n";
        for step in 1..input.len() {
            let data: Vec<String> = decode_split(input, step).into_iter().map(|e| e.data).collect();
            assert_eq!(data, ["x", "y", "z"], "step {step}");
        }
    }

    #[test]
    fn multi_line_data_joins_with_newlines() {
        let events = decode_split(b"data: one\ndata: two\ndata\n\n", 64);
        assert_eq!(events[0].data, "one\ntwo\n");
    }

    #[test]
    fn a_trailing_partial_event_is_kept() {
        let events = decode_split(b"data: a\n\ndata: b", 64);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "b");
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut d = Decoder::default();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(d.feed(&big), Err(EventTooLarge));
    }
}
