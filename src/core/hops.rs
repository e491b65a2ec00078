//! Loop detection between gateways: every upstream request carries this gateway's entry in
//! `Via` (RFC 9110 §7.6.3), and a request that already carries it — or too many gateway hops —
//! is refused before it is authenticated, metered or forwarded.
//!
//! Invariants: a gateway pointed at itself, or two gateways pointed at each other, fail on the
//! second hop instead of fanning out; tiered gateways (an edge gateway in front of a central one)
//! keep working up to `MAX_GATEWAY_HOPS`.

/// Gateway hops a request may already have made (each a `prodex-…` Via entry).
pub const MAX_GATEWAY_HOPS: usize = 8;

/// Prefix of this product's `received-by` pseudonym in `Via`.
const PSEUDONYM: &str = "prodex-";

/// Why a request is refused as a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// This very gateway forwarded it before.
    Own,
    /// More gateway hops than `MAX_GATEWAY_HOPS`.
    TooManyHops(usize),
}

impl Loop {
    /// The message a client sees (no secret: instance ids are random and public).
    #[must_use]
    pub fn message(self) -> String {
        match self {
            Self::Own => "this request already passed through this gateway (its Via header carries our entry): \
                          the upstream base URL points back at the gateway"
                .into(),
            Self::TooManyHops(n) => {
                format!("this request already passed through {n} gateways (at most {MAX_GATEWAY_HOPS}): a routing loop")
            }
        }
    }
}

/// This gateway's `Via` entry.
#[must_use]
pub fn via_entry(instance: &str) -> String {
    format!("1.1 {PSEUDONYM}{instance}")
}

/// Checks the request's `Via` header values against this gateway's `instance` id.
pub fn check<'a>(via_values: impl IntoIterator<Item = &'a str>, instance: &str) -> Result<(), Loop> {
    let mut hops = 0;
    for value in via_values {
        for entry in value.split(',') {
            // `protocol received-by [comment]`
            let received_by = entry.split_whitespace().nth(1).unwrap_or("");
            if let Some(id) = received_by.strip_prefix(PSEUDONYM) {
                if id == instance {
                    return Err(Loop::Own);
                }
                hops += 1;
            }
        }
    }
    if hops > MAX_GATEWAY_HOPS {
        return Err(Loop::TooManyHops(hops));
    }
    Ok(())
}

/// The `Via` value to send upstream: the client's entries (if any), then ours.
#[must_use]
pub fn forwarded_via<'a>(via_values: impl IntoIterator<Item = &'a str>, instance: &str) -> String {
    let mut out = String::new();
    for v in via_values {
        let v = v.trim();
        if !v.is_empty() {
            out.push_str(v);
            out.push_str(", ");
        }
    }
    out.push_str(&via_entry(instance));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_are_seen_in_via() {
        let me = "a1b2c3";
        let many = (0..9).map(|i| format!("1.1 prodex-n{i}")).collect::<Vec<_>>().join(", ");
        let eight = (0..8).map(|i| format!("1.1 prodex-n{i}")).collect::<Vec<_>>().join(", ");
        let cases: Vec<(Vec<&str>, Result<(), Loop>)> = vec![
            (vec![], Ok(())),
            (vec!["1.1 squid"], Ok(())),
            (vec!["1.1 prodex-a1b2c3"], Err(Loop::Own)),
            (vec!["1.0 fred, 1.1 prodex-a1b2c3 (prodex)"], Err(Loop::Own)),
            (vec!["1.1 prodex-other"], Ok(())),
            (vec!["1.1 prodex-other", "HTTP/1.1 prodex-a1b2c3"], Err(Loop::Own)),
            (vec!["1.1 prodex-a1b2c3d"], Ok(())),
            (vec![eight.as_str()], Ok(())),
            (vec![many.as_str()], Err(Loop::TooManyHops(9))),
            (vec![",,, ,1.1"], Ok(())),
        ];
        for (values, want) in cases {
            assert_eq!(check(values.iter().copied(), me), want, "{values:?}");
        }
    }

    #[test]
    fn our_entry_is_appended_to_the_clients() {
        assert_eq!(forwarded_via([], "x"), "1.1 prodex-x");
        assert_eq!(forwarded_via(["1.1 edge", " "], "x"), "1.1 edge, 1.1 prodex-x");
        assert_eq!(check([forwarded_via(["1.1 edge"], "x").as_str()], "x"), Err(Loop::Own));
    }
}
