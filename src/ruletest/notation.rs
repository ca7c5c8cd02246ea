//! promtool's input notation: a series selector (`metric{label="value"}`) and its
//! values in expanding notation (`1+2x3` is `1 3 5 7`, `_x2` two missing samples,
//! `stale` a stale marker), as `promtool test rules` reads them.

use crate::labels::{self, Labels};

/// One value slot of an input series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    Value(f64),
    Missing,
    Stale,
}

/// Parses `metric{a="b", c="d"}` into the metric name and labels.
pub fn parse_series(text: &str) -> Result<(String, Labels), String> {
    match parse_labels(text)? {
        (Some(name), labels) => Ok((name, labels)),
        (None, _) => Err(format!("invalid metric name in series `{}`", text.trim())),
    }
}

/// Parses `metric{a="b"}` or `{a="b"}` (a sample whose name was dropped, as a
/// `promql_expr_test` expects one) into the name, if any, and the labels.
pub fn parse_labels(text: &str) -> Result<(Option<String>, Labels), String> {
    let text = text.trim();
    let (name, rest) = match text.find('{') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let name = name.trim();
    if !name.is_empty() && !labels::valid_metric_name(name) {
        return Err(format!("invalid metric name in series `{text}`"));
    }
    let mut pairs = Vec::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("unbalanced braces in series `{text}`"))?;
        let mut chars = inner.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let key: String =
                std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_'))
                    .collect();
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if !labels::valid_name(&key) || chars.next() != Some('=') {
                return Err(format!("expected `name=\"value\"` in series `{text}`"));
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next() != Some('"') {
                return Err(format!("label values are double-quoted in series `{text}`"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated string in series `{text}`")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated string in series `{text}`")),
                }
            }
            pairs.push((key, value));
        }
    }
    let name = (!name.is_empty()).then(|| name.to_string());
    Ok((name, Labels::from_pairs(pairs)))
}

/// Expands a `values` string into one slot per interval step, starting at time 0.
pub fn parse_values(text: &str) -> Result<Vec<Slot>, String> {
    let mut out = Vec::new();
    for item in text.split_whitespace() {
        expand(item, &mut out).map_err(|e| format!("{e} in values item `{item}`"))?;
    }
    Ok(out)
}

fn expand(item: &str, out: &mut Vec<Slot>) -> Result<(), String> {
    if item == "_" {
        out.push(Slot::Missing);
        return Ok(());
    }
    if item == "stale" {
        out.push(Slot::Stale);
        return Ok(());
    }
    let Some((head, times)) = item.rsplit_once('x') else {
        out.push(Slot::Value(number(item)?));
        return Ok(());
    };
    let n: usize = times
        .parse()
        .map_err(|_| "expected a repeat count after `x`".to_string())?;
    if head == "_" {
        // `_xN` is N missing values (no extra one for time 0, unlike values).
        out.extend(std::iter::repeat_n(Slot::Missing, n));
        return Ok(());
    }
    // `a+bxN` / `a-bxN`: find the sign that separates start and step, past any
    // sign of the start itself and any exponent sign.
    let split = head
        .char_indices()
        .skip(1)
        .filter(|&(i, c)| (c == '+' || c == '-') && !matches!(head.as_bytes()[i - 1], b'e' | b'E'))
        .map(|(i, _)| i)
        .last();
    let (start, step) = match split {
        Some(i) => (number(&head[..i])?, number(&head[i..])?),
        None => (number(head)?, 0.0),
    };
    // N+1 values: the start and N steps, accumulated as promtool does (`0+0.1x10`
    // ends at 0.9999999999999999, not 1).
    let mut v = start;
    for _ in 0..=n {
        out.push(Slot::Value(v));
        v += step;
    }
    Ok(())
}

fn number(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("`{s}` is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &str) -> Vec<Slot> {
        parse_values(s).unwrap()
    }

    #[test]
    fn expanding_notation_matches_promtool() {
        use Slot::*;
        assert_eq!(
            values("1+2x3"),
            [Value(1.0), Value(3.0), Value(5.0), Value(7.0)]
        );
        assert_eq!(
            values("-2+4x3"),
            [Value(-2.0), Value(2.0), Value(6.0), Value(10.0)]
        );
        assert_eq!(values("1-2x2"), [Value(1.0), Value(-1.0), Value(-3.0)]);
        assert_eq!(values("0.95x2"), [Value(0.95), Value(0.95), Value(0.95)]);
        assert_eq!(values("1 _x2 stale"), [Value(1.0), Missing, Missing, Stale]);
        assert_eq!(values("1e3+1e2x1"), [Value(1000.0), Value(1100.0)]);
        assert!(parse_values("1+x").is_err());
        assert!(parse_values("abc").is_err());
    }

    #[test]
    fn series_selectors() {
        let (name, labels) = parse_series(r#"cpu_usage{host="bot-1", job="a\"b"}"#).unwrap();
        assert_eq!(name, "cpu_usage");
        assert_eq!(
            labels,
            Labels::from_pairs([("host", "bot-1"), ("job", "a\"b")])
        );
        assert_eq!(
            parse_series("up").unwrap(),
            ("up".to_string(), Labels::new())
        );
        assert!(parse_series("cpu{host=bot}").is_err());
    }
}
