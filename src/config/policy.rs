//! Reading `policy.toml` with every problem reported at once: a small walker over toml's spanned
//! parse tree that records unknown keys and type errors with their line, instead of stopping at
//! the first one the way `#[derive(Deserialize)]` does.
//!
//! Invariant: a `Section` marks every key it reads; `finish` reports every key nobody read.

use std::collections::BTreeSet;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::config::ConfigError;

/// Where errors go, and the source text for turning byte offsets into line numbers.
pub(crate) struct Diagnostics<'s> {
    pub file: String,
    pub text: &'s str,
    pub errors: Vec<ConfigError>,
}

impl Diagnostics<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())].iter().filter(|&&b| b == b'\n').count() + 1
    }

    pub fn error_at(&mut self, offset: usize, key: &str, message: impl Into<String>) {
        let location = format!("{}:{}", self.file, self.line_of(offset));
        self.errors.push(ConfigError { location, key: key.to_string(), message: message.into() });
    }
}

/// A TOML table being read; `path` is its dotted name for messages (`gateway.state`).
pub(crate) struct Section<'t, 'i> {
    pub path: String,
    table: &'t DeTable<'i>,
    offset: usize,
    seen: BTreeSet<String>,
}

impl<'t, 'i> Section<'t, 'i> {
    pub fn new(path: impl Into<String>, table: &'t DeTable<'i>, offset: usize) -> Self {
        Self { path: path.into(), table, offset, seen: BTreeSet::new() }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&mut self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.seen.insert(key.to_string());
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
    }

    /// The byte offset of `key`'s value, or of the table when absent.
    pub fn offset_of(&self, key: &str) -> usize {
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map_or(self.offset, |(_, v)| v.span().start)
    }

    fn wrong_type(&self, d: &mut Diagnostics<'_>, key: &str, v: &Spanned<DeValue<'_>>, want: &str) {
        d.error_at(v.span().start, &self.key_path(key), format!("expected {want}, found {}", v.get_ref().type_str()));
    }

    pub fn string(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<String> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(d, key, v, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(d, key, v, "true or false");
                None
            }
        }
    }

    /// A non-negative integer.
    pub fn uint(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<u64> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => {
                let text = i.as_str().replace('_', "");
                let text = text.strip_prefix('+').unwrap_or(&text);
                let parsed = u64::from_str_radix(
                    text.trim_start_matches("0x").trim_start_matches("0o").trim_start_matches("0b"),
                    i.radix(),
                );
                if let Ok(n) = parsed {
                    Some(n)
                } else {
                    d.error_at(v.span().start, &self.key_path(key), "expected a non-negative integer");
                    None
                }
            }
            _ => {
                self.wrong_type(d, key, v, "an integer");
                None
            }
        }
    }

    /// A number (integer or float), e.g. a price or a USD budget.
    pub fn number(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => {
                self.wrong_type(d, key, v, "a number");
                return None;
            }
        };
        match parsed {
            Some(x) if x.is_finite() && x >= 0.0 => Some(x),
            _ => {
                d.error_at(v.span().start, &self.key_path(key), "expected a finite, non-negative number");
                None
            }
        }
    }

    pub fn string_list(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(d, key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                other => d.error_at(
                    item.span().start,
                    &self.key_path(key),
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        Some(out)
    }

    /// A sub-table (`[gateway.state]`).
    pub fn table(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Section<'t, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Section::new(self.key_path(key), t, v.span().start)),
            _ => {
                self.wrong_type(d, key, v, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[gateway.providers]]`), each with its index in the path.
    pub fn tables(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Vec<Section<'t, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(d, key, v, "an array of tables");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => {
                    out.push(Section::new(format!("{}[{i}]", self.key_path(key)), t, item.span().start))
                }
                other => d.error_at(
                    item.span().start,
                    &self.key_path(key),
                    format!("expected a table, found {}", other.type_str()),
                ),
            }
        }
        out
    }

    /// Reports every key of this table that was never read.
    pub fn finish(self, d: &mut Diagnostics<'_>) {
        let known: Vec<&str> = self.seen.iter().map(String::as_str).collect();
        for (k, v) in self.table.iter() {
            let key = k.get_ref().as_ref();
            if !self.seen.contains(key) {
                let hint = closest(key, &known).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                d.error_at(v.span().start.min(k.span().start), &self.key_path(key), format!("unknown key{hint}"));
            }
        }
    }
}

/// The known key closest to `key` by edit distance, when it is plausibly a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(dist, k)| *dist <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(closest("listen_adr", &["listen_addr", "provider"]), Some("listen_addr"));
        assert_eq!(closest("zzz", &["listen_addr", "provider"]), None);
    }
}
