//! Label sets: the identity of a series and, with the alert name, of an alert.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A set of `name="value"` pairs, sorted by name, names unique; the metric name is
/// not part of it (it is the series' key beside it).
///
/// Labels are cloned and hashed on every evaluation of every series, so a clone is
/// a reference count and the hash is the Alertmanager fingerprint, computed once.
#[derive(Clone)]
pub struct Labels(Arc<Inner>);

/// A map of names to values, written from the sorted pairs without copying them
/// into a map first (the store writes every new alert's labels).
impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Read from a map of names to values, as [`Labels::from_pairs`] builds them.
impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        read_map(d).map(Labels::from_vec)
    }
}

struct Inner {
    pairs: Pairs,
    fingerprint: Fingerprint,
}

impl Labels {
    pub fn new() -> Self {
        Labels::from_pairs(std::iter::empty::<(&str, &str)>())
    }

    /// Builds from pairs in any order; a later duplicate name wins; empty values are
    /// dropped, as in Prometheus (an empty label is the same as no label).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let pairs = pairs.into_iter().filter(|(_, v)| !v.as_ref().is_empty());
        Labels::packed(Pairs::from_vec(pairs.collect()))
    }

    /// As [`Labels::from_pairs`], from a list it may reorder in place.
    fn from_vec<K: AsRef<str>, V: AsRef<str>>(mut pairs: Vec<(K, V)>) -> Self {
        pairs.retain(|(_, v)| !v.as_ref().is_empty());
        Labels::packed(Pairs::from_vec(pairs))
    }

    fn packed(pairs: Pairs) -> Self {
        let fingerprint = fingerprint(&pairs);
        Labels(Arc::new(Inner { pairs, fingerprint }))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.pairs.get(name)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        self.0.pairs.iter()
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
        self.0.pairs.to_map()
    }

    /// Alertmanager's fingerprint of this label set, so an alert has the same id here
    /// as in an Alertmanager webhook for the same labels.
    pub fn fingerprint(&self) -> Fingerprint {
        self.0.fingerprint
    }
}

/// Name/value pairs sorted by name, names unique, in two allocations: every name
/// and value one after the other in one string, and where each of them ends. Each
/// alert holds a label set and annotations, and a series a label set: as a list of
/// boxed strings, five labels took twelve allocations and twice the bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pairs {
    text: Box<str>,
    /// Pair `i`'s name ends at `ends[2i]`, its value at `ends[2i + 1]`; each
    /// starts where the one before ends.
    ends: Box<[u32]>,
}

impl Pairs {
    /// From pairs in any order; of two with the same name, the later one wins.
    pub fn collect<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Pairs {
        Pairs::from_vec(pairs.into_iter().collect())
    }

    /// As [`Pairs::collect`], from a list it may reorder in place (what a
    /// deserializer read: no second list).
    pub fn from_vec<K: AsRef<str>, V: AsRef<str>>(mut pairs: Vec<(K, V)>) -> Pairs {
        // Stable, so of equal names the later stays later (and is the one kept).
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let bytes = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len());
        let mut text = String::with_capacity(bytes.sum());
        let mut ends = Vec::with_capacity(2 * pairs.len());
        for (i, (name, value)) in pairs.iter().enumerate() {
            let name = name.as_ref();
            if pairs
                .get(i + 1)
                .is_some_and(|(next, _)| next.as_ref() == name)
            {
                continue;
            }
            for part in [name, value.as_ref()] {
                text.push_str(part);
                // Requests are bounded far below 4 GiB (`[limits]`).
                ends.push(u32::try_from(text.len()).expect("label text under 4 GiB"));
            }
        }
        Pairs {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let start = if i == 0 {
            0
        } else {
            self.ends[2 * i - 1] as usize
        };
        let (mid, end) = (self.ends[2 * i] as usize, self.ends[2 * i + 1] as usize);
        (&self.text[start..mid], &self.text[mid..end])
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = (low + high) / 2;
            let (k, v) = self.pair(mid);
            match k.cmp(name) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(v),
            }
        }
        None
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        (0..self.len()).map(|i| self.pair(i))
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl fmt::Debug for Pairs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A map of names to values, as pairs in the order read, borrowing the strings
/// where the format can lend them (the store's can): the load of 100,000 alerts
/// then allocates only the packed pairs, not every name and value on the way.
pub fn read_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Text<'de>, Text<'de>)>, D::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(Text<'de>, Text<'de>)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names to string values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            // The hint comes from the input: capped, the rest grows as read.
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    d.deserialize_map(Entries)
}

/// A string read from a serde input, borrowed from it when it can be.
pub struct Text<'de>(Cow<'de, str>);

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct Str;
        impl<'de> Visitor<'de> for Str {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Str)
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
fn fingerprint(pairs: &Pairs) -> Fingerprint {
    let mut h = fnv::FnvHasher::default();
    for (k, v) in pairs.iter() {
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
        self.iter().cmp(o.iter())
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

    #[test]
    fn packed_pairs_read_as_the_map_they_were_built_from() {
        let input = [
            ("zone", "eu-1"),
            ("b", "two"),
            ("a", "one"),
            ("b", "three"),
            ("long", "ünïcödé ✓"),
            ("", "nameless"),
        ];
        let map: BTreeMap<&str, &str> = input.into_iter().collect();
        let pairs = Pairs::collect(input);
        assert_eq!(
            pairs.iter().collect::<Vec<_>>(),
            map.clone().into_iter().collect::<Vec<_>>()
        );
        assert_eq!(pairs.len(), map.len());
        for (k, v) in &map {
            assert_eq!(pairs.get(k), Some(*v), "{k}");
        }
        for missing in ["c", "aa", "zzz", "b "] {
            assert_eq!(pairs.get(missing), None, "{missing}");
        }
        assert!(Pairs::collect(std::iter::empty::<(&str, &str)>()).is_empty());
        assert_eq!(Pairs::collect([("a", "")]).get("a"), Some(""));
    }

    #[test]
    fn labels_read_from_a_map_as_from_pairs_and_order_as_their_pairs() {
        // Escaped strings cannot be borrowed from the input: both ways are read.
        let json = r#"{"job":"node","a\"b":"x\ny","empty":"","job":"api"}"#;
        let read: Labels = serde_json::from_str(json).unwrap();
        let built = Labels::from_pairs([("a\"b", "x\ny"), ("job", "api")]);
        assert_eq!(read, built);
        assert_eq!(read.fingerprint(), built.fingerprint());
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"a\"b":"x\ny","job":"api"}"#
        );
        let stored = postcard::to_allocvec(&built).unwrap();
        assert_eq!(postcard::from_bytes::<Labels>(&stored).unwrap(), built);
        // Ordered pair by pair, name then value, as sorted lists of pairs are.
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("a", "1"), ("c", "0")]);
        let c = Labels::from_pairs([("a", "10")]);
        assert!(a < b && a < c && b < c);
        assert!(Labels::new() < a);
    }
}
