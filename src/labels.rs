//! Label sets: the identity of a series and, with the alert name, of an alert.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A set of `name="value"` pairs, sorted by name, names unique; the metric name is
/// not part of it (it is the series' key beside it).
///
/// Labels are cloned and hashed on every evaluation of every series, so a clone is
/// a reference count and the hash is the Alertmanager fingerprint, computed once.
#[derive(Clone, Deserialize)]
#[serde(from = "BTreeMap<String, String>")]
pub struct Labels(Arc<Inner>);

/// A map of names to values, written from the sorted pairs without copying them
/// into a map first (the store writes every new alert's labels).
impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

struct Inner {
    pairs: Box<[(Box<str>, Box<str>)]>,
    fingerprint: Fingerprint,
}

impl Labels {
    pub fn new() -> Self {
        Labels::from_pairs(std::iter::empty::<(String, String)>())
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
        let pairs: Box<[(Box<str>, Box<str>)]> =
            map.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let fingerprint = fingerprint(&pairs);
        Labels(Arc::new(Inner { pairs, fingerprint }))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let pairs = &self.0.pairs;
        pairs
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| &*pairs[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.pairs.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.pairs.is_empty()
    }

    /// These labels with `extra` added (overriding same names).
    pub fn merged<'a>(&'a self, extra: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        Labels::from_pairs(self.iter().chain(extra))
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Alertmanager's fingerprint of this label set, so an alert has the same id here
    /// as in an Alertmanager webhook for the same labels.
    pub fn fingerprint(&self) -> Fingerprint {
        self.0.fingerprint
    }
}

/// Prometheus' label name rule, `[a-zA-Z_][a-zA-Z0-9_]*`: the one check for every
/// label name tocsin reads (samples, alerts, scrape labels, matchers, templates).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names starting with `__` are reserved for Prometheus' own use (`__name__`,
/// `__address__`): valid, but refused on data pushed into tocsin.
pub fn reserved_name(name: &str) -> bool {
    name.starts_with("__")
}

/// Prometheus' metric name rule, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// FNV-1a 64 over the sorted names and values, each followed by 0xff: Alertmanager's
/// `LabelSet.Fingerprint`.
fn fingerprint(pairs: &[(Box<str>, Box<str>)]) -> Fingerprint {
    let mut h = fnv::FnvHasher::default();
    for (k, v) in pairs {
        h.write(k.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    Fingerprint(h.finish())
}

impl Default for Labels {
    fn default() -> Self {
        Labels::new()
    }
}

impl PartialEq for Labels {
    fn eq(&self, o: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
            || (self.0.fingerprint == o.0.fingerprint && self.0.pairs == o.0.pairs)
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.fingerprint.0);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, o: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Labels {
    fn cmp(&self, o: &Labels) -> std::cmp::Ordering {
        self.0.pairs.cmp(&o.0.pairs)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Self {
        Labels::from_pairs(m)
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(l: Labels) -> Self {
        l.to_map()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
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
    fn names_follow_prometheus() {
        for ok in ["a", "_", "host", "__name__", "A_1", "x9"] {
            assert!(valid_name(ok), "{ok:?}");
        }
        for bad in ["", "1a", "a-b", "a:b", "a b", "ホスト", "a\u{0}"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(reserved_name("__name__") && !reserved_name("_a"));
        for ok in ["up", ":a", "a:b_c", "_", "node_cpu:rate5m"] {
            assert!(valid_metric_name(ok), "{ok:?}");
        }
        for bad in ["", "1a", "a-b", "a.b", "a{"] {
            assert!(!valid_metric_name(bad), "{bad:?}");
        }
    }

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
