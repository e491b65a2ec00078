//! Timestamps as Unix milliseconds, and RFC 3339 formatting and parsing. Pure: the current time
//! is always passed in by the shell (`crate::clock`).

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type UnixMs = u64;

/// RFC 3339 UTC with milliseconds: `2026-11-28T12:00:00.000Z`.
#[must_use]
pub fn format_rfc3339(ms: UnixMs) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60, ms % 1000)
}

/// Parses RFC 3339 (`2027-01-01T00:00:00Z`, fractional seconds and `±hh:mm` offsets allowed).
pub fn parse_rfc3339(s: &str) -> Result<UnixMs, &'static str> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err("expected RFC 3339, e.g. 2027-01-01T00:00:00Z");
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let part = s.get(r).ok_or("bad date-time")?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| "bad number in date-time")
        } else {
            Err("expected digits in date-time")
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err("date-time field out of range");
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err("empty fractional seconds");
        }
        let frac = &s[start..i.min(start + 3)];
        millis = frac.parse::<i64>().map_err(|_| "bad fractional seconds")?
            * 10i64.pow(3 - u32::try_from(frac.len()).unwrap_or(3));
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err("expected `Z` or an offset like +02:00 at the end"),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
    u64::try_from(secs * 1000 + millis).map_err(|_| "date-time before 1970")
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_rfc3339(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_and_round_trips() {
        let cases = [
            ("1970-01-01T00:00:00Z", Ok(0)),
            ("2027-01-01T00:00:00Z", Ok(1_798_761_600_000)),
            ("2027-01-01T02:00:00+02:00", Ok(1_798_761_600_000)),
            ("2026-12-31T19:00:00.5-05:00", Ok(1_798_761_600_500)),
            ("2000-02-29T00:00:00.123Z", Ok(951_782_400_123)),
            ("2001-02-29T00:00:00Z", Err("date-time field out of range")),
            ("2027-01-01", Err("expected RFC 3339, e.g. 2027-01-01T00:00:00Z")),
            ("2027-01-01T00:00:00", Err("expected RFC 3339, e.g. 2027-01-01T00:00:00Z")),
            ("2027-01-01T00:00:00+2:00", Err("expected `Z` or an offset like +02:00 at the end")),
            ("20x7-01-01T00:00:00Z", Err("expected digits in date-time")),
            ("1969-12-31T23:59:59Z", Err("date-time before 1970")),
        ];
        for (input, want) in cases {
            assert_eq!(parse_rfc3339(input), want, "{input}");
        }
        for ms in [0, 1, 86_399_999, 1_798_761_600_000, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Ok(ms));
        }
    }
}
