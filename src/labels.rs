//! Label sets: the identity of a series and, with the alert name, of an alert.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};

/// A set of `name="value"` pairs, sorted by name, names unique. Cheap to hash and
/// compare; the metric name is not part of it (it is the series' key beside it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// Builds from pairs in any order; a later duplicate name wins; empty values are
    /// dropped, as in Prometheus (an empty label is the same as no label).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Labels(map.into_iter().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These labels with `extra` added (overriding same names).
    pub fn merged<'a>(&'a self, extra: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        Labels::from_pairs(self.iter().chain(extra))
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }

    /// Alertmanager's fingerprint of a label set (FNV-1a 64 over sorted names and
    /// values, each followed by 0xff), so an alert has the same id here as in an
    /// Alertmanager webhook for the same labels.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = fnv::FnvHasher::default();
        for (k, v) in &self.0 {
            h.write(k.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        Fingerprint(h.finish())
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Self {
        Labels::from_pairs(m)
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(l: Labels) -> Self {
        l.0.into_iter().collect()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// A stable 64-bit identity, printed as 16 hex digits like Alertmanager's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(Fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_alertmanager() {
        // From ../shared/samples/alertmanager-webhook-firing.json: the fingerprint
        // Alertmanager computed for these labels.
        let l = Labels::from_pairs([
            ("alertname", "HarnessTestAlert"),
            ("instance", "host-a:9100"),
            ("job", "harness"),
            ("severity", "critical"),
        ]);
        assert_eq!(l.fingerprint().to_string(), "91e4f03ad18ae588");
        let c = Labels::from_pairs([
            ("severity", "warning"),
            ("job", "harness"),
            ("instance", "host-c:9100"),
            ("alertname", "HarnessTestAlert"),
        ]);
        assert_eq!(c.fingerprint().to_string(), "e8c3d2373dc9418d");
    }

    #[test]
    fn empty_values_are_no_label() {
        assert_eq!(
            Labels::from_pairs([("a", ""), ("b", "1")]),
            Labels::from_pairs([("b", "1")])
        );
    }
}
