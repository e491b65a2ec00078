//! Chunked request bodies: decoding in any split produces the same bytes as decoding at once.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::http::codec::ChunkedDecoder;

fn decode(data: &[u8], step: usize, out_size: usize) -> Result<(Vec<u8>, bool), &'static str> {
    let mut d = ChunkedDecoder::default();
    let mut out = Vec::new();
    let mut buf = vec![0u8; out_size];
    for piece in data.chunks(step.max(1)) {
        let mut piece = piece;
        while !piece.is_empty() && !d.is_done() {
            let (used, produced) = d.decode(piece, &mut buf)?;
            out.extend_from_slice(&buf[..produced]);
            piece = &piece[used..];
            if used == 0 && produced == 0 {
                break;
            }
        }
    }
    Ok((out, d.is_done()))
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let step = usize::from(data[0] % 17) + 1;
    let whole = decode(&data[1..], data.len(), 1 << 16);
    let split = decode(&data[1..], step, 7);
    if let (Ok(a), Ok(b)) = (&whole, &split) {
        assert_eq!(a, b);
    }
});
