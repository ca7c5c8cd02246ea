//! Numbers for people, formatted exactly as Prometheus' template functions format
//! them, so an annotation reads the same from tocsin and from an exported rule run by
//! Prometheus (and one test file can pass `tocsin test` and `promtool test rules`).

use crate::rules::units::DeclaredUnit;

/// How `{{ value }}` is shown, chosen from the unit of the value (see
/// `rules::model::Expr::value_unit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueFormat {
    /// Go's `%v`: `{{ $value }}`.
    Plain,
    /// `{{ $value | humanizePercentage }}`: 0.85 → `85%`.
    Percentage,
    /// `{{ $value | humanizeDuration }}`: 90 → `1m 30s`.
    Duration,
    /// `{{ $value | humanize1024 }}B`: 1536 → `1.5kiB`.
    Bytes,
    /// `{{ $value | humanize1024 }}B/s`.
    BytesPerSecond,
}

impl ValueFormat {
    pub fn for_unit(unit: Option<DeclaredUnit>) -> Self {
        match unit {
            Some(DeclaredUnit::Ratio) => ValueFormat::Percentage,
            Some(DeclaredUnit::Seconds) => ValueFormat::Duration,
            Some(DeclaredUnit::Bytes) => ValueFormat::Bytes,
            Some(DeclaredUnit::BytesPerSecond) => ValueFormat::BytesPerSecond,
            Some(DeclaredUnit::Count | DeclaredUnit::PerSecond) | None => ValueFormat::Plain,
        }
    }

    pub fn format(self, v: f64) -> String {
        match self {
            ValueFormat::Plain => go_v(v),
            ValueFormat::Percentage => format!("{}%", go_g4(v * 100.0)),
            ValueFormat::Duration => humanize_duration(v),
            ValueFormat::Bytes => format!("{}B", humanize_1024(v)),
            ValueFormat::BytesPerSecond => format!("{}B/s", humanize_1024(v)),
        }
    }

    /// The same formatting as a Go template pipeline over `$value`.
    pub fn prometheus_template(self) -> &'static str {
        match self {
            ValueFormat::Plain => "{{ $value }}",
            ValueFormat::Percentage => "{{ $value | humanizePercentage }}",
            ValueFormat::Duration => "{{ $value | humanizeDuration }}",
            ValueFormat::Bytes => "{{ $value | humanize1024 }}B",
            ValueFormat::BytesPerSecond => "{{ $value | humanize1024 }}B/s",
        }
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form below 1e-4 or from 1e6
/// (Go's `strconv` uses precision 6 for that choice when printing shortest).
pub fn go_v(v: f64) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "2.5e-5", "1e21".
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if !(-4..6).contains(&exp) {
        go_exponent(mantissa, exp)
    } else {
        format!("{v}")
    }
}

/// Go's `%.4g`: four significant digits, trailing zeros dropped.
pub fn go_g4(v: f64) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    if v == 0.0 {
        return "0".into();
    }
    let e = format!("{v:.3e}");
    let (mantissa, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if !(-4..4).contains(&exp) {
        return go_exponent(trim_zeros(mantissa), exp);
    }
    let decimals = (3 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn go_exponent(mantissa: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn non_finite(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

/// Prometheus' `humanizeDuration`.
pub fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_g4(v);
    }
    if v == 0.0 {
        return "0s".into();
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g4(v))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g4(v))
}

/// Prometheus' `humanize1024`.
pub fn humanize_1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return go_g4(v);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g4(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        // What Go's fmt.Sprint and fmt.Sprintf("%.4g") print for these values.
        assert_eq!(go_v(0.85), "0.85");
        assert_eq!(go_v(21.0), "21");
        assert_eq!(go_v(123456.0), "123456");
        assert_eq!(go_v(1e6), "1e+06");
        assert_eq!(go_v(1234567.0), "1.234567e+06");
        assert_eq!(go_v(0.0001), "0.0001");
        assert_eq!(go_v(0.00001), "1e-05");
        assert_eq!(go_v(2777.777777777778), "2777.777777777778");
        assert_eq!(go_v(-3.5), "-3.5");
        assert_eq!(go_g4(85.00000000000001), "85");
        assert_eq!(go_g4(12345.0), "1.234e+04");
        assert_eq!(go_g4(0.5), "0.5");
        assert_eq!(go_g4(2.71234), "2.712");
        assert_eq!(go_g4(0.000012), "1.2e-05");
    }

    #[test]
    fn prometheus_humanizers() {
        assert_eq!(ValueFormat::Percentage.format(0.85), "85%");
        assert_eq!(ValueFormat::Percentage.format(0.123456), "12.35%");
        assert_eq!(humanize_duration(90.0), "1m 30s");
        assert_eq!(humanize_duration(31.0), "31s");
        assert_eq!(humanize_duration(30.5), "30.5s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_1024(1536.0), "1.5ki");
        assert_eq!(ValueFormat::Bytes.format(3.0 * 1073741824.0), "3GiB");
    }
}
