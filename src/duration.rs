//! The one duration syntax, everywhere a person writes a duration: rules (`for 15m`,
//! `in 1h`), the config file (`"30s"`), the CLI (`--duration 2h`), the HTTP API, Slack
//! and SMS commands (`silence #42 2h`), and rule test files (`eval_time: 1h30m`).
//!
//! A duration is a number and a unit with nothing between them: `500ms`, `30s`,
//! `15m`, `1.5h`, `7d`, `2w`; parts may follow one another, largest unit first, as
//! in Prometheus: `1h30m`. `0` alone is zero. Everything else is refused with what
//! was meant: `15mins` → "did you mean `15m`?", `15 m` → "no space", `1h 30m` →
//! `1h30m`, so a slip reads the same wherever it was made.

use std::fmt;
use std::time::Duration;

/// Seconds per unit, largest last; a compound duration names them largest first.
pub const UNITS: &[(&str, f64)] = &[
    ("ms", 0.001),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
    ("w", 604800.0),
];

/// Spellings people reach for, and the unit they mean: `15mins` → `15m`.
pub const ALIASES: &[(&str, &str)] = &[
    ("sec", "s"),
    ("secs", "s"),
    ("second", "s"),
    ("seconds", "s"),
    ("min", "m"),
    ("mins", "m"),
    ("minute", "m"),
    ("minutes", "m"),
    ("hr", "h"),
    ("hrs", "h"),
    ("hour", "h"),
    ("hours", "h"),
    ("day", "d"),
    ("days", "d"),
    ("week", "w"),
    ("weeks", "w"),
    ("msec", "ms"),
    ("millis", "ms"),
    ("milliseconds", "ms"),
];

/// Ten years: far past any window, hold or silence anyone means, and inside what
/// `Duration` and timestamps represent.
pub const LONGEST: Duration = Duration::from_secs(10 * 365 * 86400);

/// How durations are written, for hints.
pub const EXAMPLES: &str = "durations are written `30s`, `15m`, `6h`, `7d` or `1h30m`";

/// Why a text is not a duration: what is wrong, and what was probably meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message, self.hint)
    }
}

impl std::error::Error for DurationError {}

/// Seconds per `unit`, when it is one.
pub fn unit_seconds(unit: &str) -> Option<f64> {
    UNITS.iter().find(|(u, _)| *u == unit).map(|&(_, s)| s)
}

/// The unit a misspelt `unit` most likely meant: an alias, or a close spelling.
pub fn suggest_unit(unit: &str) -> Option<&'static str> {
    if let Some(&(_, to)) = ALIASES.iter().find(|(from, _)| *from == unit) {
        return Some(to);
    }
    let lower = unit.to_ascii_lowercase();
    if let Some(&(_, to)) = ALIASES.iter().find(|(from, _)| *from == lower) {
        return Some(to);
    }
    if let Some(u) = UNITS
        .iter()
        .map(|(u, _)| *u)
        .find(|u| u.eq_ignore_ascii_case(unit))
    {
        return Some(u);
    }
    None
}

/// The unit a misspelt long form (`minuts`, `secnds`) most likely meant. Looser
/// than [`suggest_unit`], so asked only once a word is known not to be another
/// kind of unit (`MiBs` is a misspelt size, not `mins`).
pub fn suggest_misspelt_unit(unit: &str) -> Option<&'static str> {
    let lower = unit.to_ascii_lowercase();
    ALIASES
        .iter()
        .filter(|(from, _)| from.len() > 3)
        .map(|&(from, to)| (strsim::jaro_winkler(&lower, from), to))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, to)| to)
}

/// The length of the number at the start of `text`: digits, an optional fraction,
/// an optional exponent (`1.5`, `1e3`), as the rule language reads numbers.
pub fn number_len(text: &str) -> usize {
    let b = text.as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i > start).then_some(i)
    };
    let Some(mut i) = digits(0) else { return 0 };
    if b.get(i) == Some(&b'.')
        && let Some(j) = digits(i + 1)
    {
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        if let Some(j) = digits(i + 1 + sign) {
            i = j;
        }
    }
    i
}

/// Parses a duration written the one way (see the module's documentation).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let fail = |message: String, hint: String| Err(DurationError { message, hint });
    if text.is_empty() {
        return fail("empty duration".into(), EXAMPLES.into());
    }
    let mut rest = text;
    let mut seconds = 0.0;
    let mut last_unit: Option<usize> = None;
    // The parts read so far, written back the one way, for hints.
    let mut written = String::new();
    while !rest.is_empty() {
        let n = number_len(rest);
        if n == 0 {
            if rest.starts_with(char::is_whitespace) && !written.is_empty() {
                let fixed: String = text.split_whitespace().collect();
                return fail(
                    format!("no spaces inside a duration: `{text}`"),
                    format!("write `{fixed}`"),
                );
            }
            return fail(format!("`{text}` is not a duration"), EXAMPLES.into());
        }
        let number = &rest[..n];
        rest = &rest[n..];
        let gap = rest.len() - rest.trim_start().len();
        let after_gap = &rest[gap..];
        let word_len = after_gap
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after_gap.len());
        let word = &after_gap[..word_len];
        if word.is_empty() {
            let hint = format!("add a unit: `{number}s`, `{number}m`, `{number}h`");
            return fail(format!("`{text}` has no unit"), hint);
        }
        let unit = match UNITS.iter().position(|(u, _)| *u == word) {
            Some(i) => i,
            None => {
                let hint = match suggest_unit(word).or_else(|| suggest_misspelt_unit(word)) {
                    Some(u) => format!("did you mean `{written}{number}{u}`?"),
                    None => "the units are ms, s, m, h, d and w".to_string(),
                };
                return fail(format!("unknown unit `{word}` in `{text}`"), hint);
            }
        };
        if gap > 0 {
            return fail(
                format!("no space between a number and its unit: `{text}`"),
                format!("write `{written}{number}{word}`"),
            );
        }
        if last_unit.is_some_and(|last| unit >= last) {
            return fail(
                format!("the parts of `{text}` are not largest unit first"),
                "write each unit once, largest first, e.g. `1h30m`".into(),
            );
        }
        last_unit = Some(unit);
        // `number_len` only accepts what f64 parses.
        let value: f64 = number.parse().unwrap_or(f64::INFINITY);
        seconds += value * UNITS[unit].1;
        written.push_str(number);
        written.push_str(word);
        rest = &after_gap[word_len..];
    }
    if !seconds.is_finite() || seconds > LONGEST.as_secs_f64() {
        return fail(
            format!("`{text}` is too long"),
            "a duration is at most ten years".into(),
        );
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// For clap's `value_parser`: the error as one line.
pub fn parse_arg(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> f64 {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .as_secs_f64()
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_one_syntax() {
        assert_eq!(secs("500ms"), 0.5);
        assert_eq!(secs("30s"), 30.0);
        assert_eq!(secs("15m"), 900.0);
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("7d"), 604800.0);
        assert_eq!(secs("2w"), 1209600.0);
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("1d2h3m4s"), 93784.0);
        assert_eq!(secs("0"), 0.0);
        assert_eq!(secs("0s"), 0.0);
        assert_eq!(secs(" 2h "), 7200.0);
    }

    #[test]
    fn slips_say_what_was_meant() {
        assert_eq!(
            error("15mins"),
            "unknown unit `mins` in `15mins`; did you mean `15m`?"
        );
        assert_eq!(
            error("15 mins"),
            "unknown unit `mins` in `15 mins`; did you mean `15m`?"
        );
        assert_eq!(
            error("90 Minutes"),
            "unknown unit `Minutes` in `90 Minutes`; did you mean `90m`?"
        );
        assert_eq!(
            error("15 m"),
            "no space between a number and its unit: `15 m`; write `15m`"
        );
        assert_eq!(
            error("1h 30m"),
            "no spaces inside a duration: `1h 30m`; write `1h30m`"
        );
        assert_eq!(
            error("1h30mins"),
            "unknown unit `mins` in `1h30mins`; did you mean `1h30m`?"
        );
        assert_eq!(
            error("15"),
            "`15` has no unit; add a unit: `15s`, `15m`, `15h`"
        );
        assert_eq!(
            error("30m1h"),
            "the parts of `30m1h` are not largest unit first; write each unit once, largest first, e.g. `1h30m`"
        );
        assert_eq!(
            error("5 minuts"),
            "unknown unit `minuts` in `5 minuts`; did you mean `5m`?"
        );
        assert!(error("soon").starts_with("`soon` is not a duration"));
        assert!(error("").starts_with("empty duration"));
        assert!(error("11000d").contains("too long"));
        assert!(error("1e400s").contains("too long"));
    }
}
