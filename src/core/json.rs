//! JSON written for people and tools alike: numbers in positional notation (`0.000006`, never
//! `6e-6`), which serde_json's default formatter writes for small and large floats (F15).
//!
//! Invariant: the output parses to the same value as serde_json's own (`f64` `Display` is the
//! shortest representation that round-trips, without an exponent); integral floats keep a `.0`
//! so they stay floats for typed readers.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, Serializer};

/// serde_json's compact output with floats in positional notation.
struct Plain;

impl Formatter for Plain {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e16 {
            return write!(writer, "{value}.0");
        }
        if value.is_finite() {
            return write!(writer, "{value}");
        }
        CompactFormatter.write_f64(writer, value)
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// `value` as compact JSON bytes, floats without exponents.
#[must_use]
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = Serializer::with_formatter(&mut out, Plain);
    if value.serialize(&mut ser).is_err() {
        return serde_json::to_vec(value).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_without_exponents_and_reads_back_the_same() {
        let v = serde_json::json!({"spend_usd": 6e-6, "budget": 1e-5, "cost": 5.1e-5, "big": 1.5e20, "whole": 75.0,
                                   "int": 3, "neg": -0.000001, "s": "x"});
        let text = String::from_utf8(to_vec(&v)).unwrap();
        for want in [
            "\"spend_usd\":0.000006",
            "\"budget\":0.00001",
            "\"cost\":0.000051",
            "\"big\":150000000000000000000",
            "\"whole\":75.0",
            "\"int\":3",
            "\"neg\":-0.000001",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }
}
