//! Client credentials: where a data-plane caller may put its key, how secrets are hashed, and the
//! constant-time comparison every secret check goes through.
//!
//! Invariants: secrets are compared only as SHA-256 digests with `ct_eq` (no early exit, no length
//! leak); the headers that carry credentials are listed once, here, so the proxy can strip them.

use sha2::{Digest, Sha256};

/// Request headers that may carry a client credential (lower-case). Never forwarded upstream.
pub const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// The credential a client presented: `Authorization: Bearer …` (OpenAI SDKs, curl),
/// `x-api-key` (Anthropic SDKs), `api-key` (Azure-style) or `x-goog-api-key` (Gemini SDKs).
#[must_use]
pub fn presented(headers: &[(String, String)]) -> Option<&str> {
    for (name, value) in headers {
        let value = value.trim();
        let found = match name.as_str() {
            "authorization" => {
                let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            }
            "x-api-key" | "api-key" | "x-goog-api-key" => Some(value),
            _ => None,
        };
        if let Some(v) = found.filter(|v| !v.is_empty()) {
            return Some(v);
        }
    }
    None
}

/// SHA-256 of a secret: the only form in which secrets are stored or compared.
#[must_use]
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality of two digests.
#[must_use]
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn every_sdk_header_style_is_accepted() {
        type Case = (&'static [(&'static str, &'static str)], Option<&'static str>);
        let cases: &[Case] = &[
            (&[("authorization", "Bearer sk-1")], Some("sk-1")),
            (&[("authorization", "bearer   sk-2 ")], Some("sk-2")),
            (&[("authorization", "Basic abc")], None),
            (&[("authorization", "Bearer ")], None),
            (&[("x-api-key", "sk-3")], Some("sk-3")),
            (&[("api-key", "sk-4")], Some("sk-4")),
            (&[("x-goog-api-key", "sk-5")], Some("sk-5")),
            (&[("authorization", "Basic x"), ("x-api-key", "sk-6")], Some("sk-6")),
            (&[("content-type", "application/json")], None),
        ];
        for (headers, want) in cases {
            assert_eq!(presented(&h(headers)), *want, "{headers:?}");
        }
    }

    #[test]
    fn digests_compare_in_constant_time_shape() {
        let a = digest("secret");
        assert!(ct_eq(&a, &digest("secret")));
        assert!(!ct_eq(&a, &digest("secreT")));
        let mut b = a;
        b[31] ^= 1;
        assert!(!ct_eq(&a, &b));
    }
}
