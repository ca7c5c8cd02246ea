//! Units as dimensions. Every quantity is converted to base units when checked —
//! seconds, bytes, bytes per second, and plain ratios (`90%` is 0.9) — which is also
//! what metrics are expected to carry, as in Prometheus.

use std::fmt;

/// Exponents of the base dimensions. A ratio or a count is dimensionless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dim {
    pub time: i8,
    pub bytes: i8,
}

impl Dim {
    pub const NONE: Dim = Dim { time: 0, bytes: 0 };
    pub const TIME: Dim = Dim { time: 1, bytes: 0 };
    pub const BYTES: Dim = Dim { time: 0, bytes: 1 };
    pub const BYTE_RATE: Dim = Dim { time: -1, bytes: 1 };
    pub const PER_TIME: Dim = Dim { time: -1, bytes: 0 };

    pub fn times(self, o: Dim) -> Dim {
        Dim {
            time: self.time + o.time,
            bytes: self.bytes + o.bytes,
        }
    }

    pub fn per(self, o: Dim) -> Dim {
        Dim {
            time: self.time - o.time,
            bytes: self.bytes - o.bytes,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dim::NONE => f.write_str("a plain number or ratio"),
            Dim::TIME => f.write_str("a duration"),
            Dim::BYTES => f.write_str("a size in bytes"),
            Dim::BYTE_RATE => f.write_str("a byte rate"),
            Dim::PER_TIME => f.write_str("a rate per second"),
            Dim { time, bytes } => write!(f, "a quantity in bytes^{bytes}·seconds^{time}"),
        }
    }
}

/// A unit word that is not known, with the closest known spelling.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownUnit {
    pub suggestion: Option<&'static str>,
}

const BYTE_UNITS: &[(&str, f64)] = &[
    ("B", 1.0),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("TB", 1e12),
    ("KiB", 1024.0),
    ("MiB", 1048576.0),
    ("GiB", 1073741824.0),
    ("TiB", 1099511627776.0),
];

/// The denominators of a rate, `10MB/hour`, in their long and short spellings.
const PER_UNITS: &[(&str, f64)] = &[
    ("s", 1.0),
    ("sec", 1.0),
    ("second", 1.0),
    ("m", 60.0),
    ("min", 60.0),
    ("minute", 60.0),
    ("h", 3600.0),
    ("hour", 3600.0),
    ("d", 86400.0),
    ("day", 86400.0),
];

/// How a number with a unit converts to base units: `number * mul / div`. Kept as
/// a fraction so `95%` is exactly `95 / 100` = 0.95, not `95 * 0.01` =
/// 0.9500000000000001.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub mul: f64,
    pub div: f64,
}

impl Scale {
    pub fn apply(self, number: f64) -> f64 {
        number * self.mul / self.div
    }
}

/// Resolves a literal's unit word to its scale to base units and its dimension.
pub fn literal_unit(unit: &str) -> Result<(Scale, Dim), UnknownUnit> {
    let scale = |mul, div| Scale { mul, div };
    if unit == "%" {
        return Ok((scale(1.0, 100.0), Dim::NONE));
    }
    // `ms` divides, so `500ms` is exactly 0.5.
    if unit == "ms" {
        return Ok((scale(1.0, 1000.0), Dim::TIME));
    }
    if let Some(f) = crate::duration::unit_seconds(unit) {
        return Ok((scale(f, 1.0), Dim::TIME));
    }
    if let Some(&(_, f)) = BYTE_UNITS.iter().find(|(u, _)| *u == unit) {
        return Ok((scale(f, 1.0), Dim::BYTES));
    }
    if let Some((num, den)) = unit.split_once('/') {
        let num = BYTE_UNITS.iter().find(|(u, _)| *u == num);
        let den = PER_UNITS.iter().find(|(u, _)| *u == den);
        if let (Some(&(_, n)), Some(&(_, d))) = (num, den) {
            return Ok((scale(n, d), Dim::BYTE_RATE));
        }
    }
    Err(UnknownUnit {
        suggestion: suggest_unit(unit),
    })
}

fn suggest_unit(unit: &str) -> Option<&'static str> {
    if let Some(to) = crate::duration::suggest_unit(unit) {
        return Some(to);
    }
    // Case slips: `mb` for `MB`, `gib` for `GiB`.
    if let Some(&(u, _)) = BYTE_UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit))
    {
        return Some(u);
    }
    let all = crate::duration::UNITS
        .iter()
        .chain(BYTE_UNITS)
        .map(|(u, _)| *u);
    crate::rules::suggest(unit, all).or_else(|| crate::duration::suggest_misspelt_unit(unit))
}

/// A metric's declared unit, as written after its kind: `metric disk_space gauge ratio`.
/// Values of the metric are expected in the base unit it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclaredUnit {
    Ratio,
    Count,
    Seconds,
    Bytes,
    BytesPerSecond,
    PerSecond,
}

pub const DECLARED_UNITS: &[(&str, DeclaredUnit)] = &[
    ("ratio", DeclaredUnit::Ratio),
    ("count", DeclaredUnit::Count),
    ("seconds", DeclaredUnit::Seconds),
    ("bytes", DeclaredUnit::Bytes),
    ("bytes/second", DeclaredUnit::BytesPerSecond),
    ("per_second", DeclaredUnit::PerSecond),
];

impl DeclaredUnit {
    pub fn parse(word: &str) -> Result<DeclaredUnit, UnknownUnit> {
        DECLARED_UNITS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|&(_, u)| u)
            .ok_or_else(|| UnknownUnit {
                suggestion: crate::rules::suggest(word, DECLARED_UNITS.iter().map(|(w, _)| *w)),
            })
    }

    pub fn name(self) -> &'static str {
        DECLARED_UNITS
            .iter()
            .find(|(_, u)| *u == self)
            .map(|(w, _)| *w)
            .expect("every unit is in the table")
    }

    pub fn dim(self) -> Dim {
        match self {
            DeclaredUnit::Ratio | DeclaredUnit::Count => Dim::NONE,
            DeclaredUnit::Seconds => Dim::TIME,
            DeclaredUnit::Bytes => Dim::BYTES,
            DeclaredUnit::BytesPerSecond => Dim::BYTE_RATE,
            DeclaredUnit::PerSecond => Dim::PER_TIME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_convert_to_base_units() {
        let base = |u: &str, n: f64| literal_unit(u).map(|(s, d)| (s.apply(n), d));
        assert_eq!(base("%", 95.0), Ok((0.95, Dim::NONE)));
        assert_eq!(base("m", 15.0), Ok((900.0, Dim::TIME)));
        assert_eq!(base("ms", 500.0), Ok((0.5, Dim::TIME)));
        assert_eq!(base("GiB", 1.0), Ok((1073741824.0, Dim::BYTES)));
        assert_eq!(base("MB/hour", 10.0), Ok((10e6 / 3600.0, Dim::BYTE_RATE)));
        assert!(literal_unit("15m").is_err());
    }

    #[test]
    fn misspelled_units_get_a_suggestion() {
        assert_eq!(literal_unit("mins").unwrap_err().suggestion, Some("m"));
        assert_eq!(literal_unit("mb").unwrap_err().suggestion, Some("MB"));
        assert_eq!(literal_unit("hours").unwrap_err().suggestion, Some("h"));
    }
}
