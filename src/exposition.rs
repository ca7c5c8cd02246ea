//! The Prometheus text exposition format (0.0.4), read strictly: every line of a
//! body or none. Pure: bytes in, samples or the first bad line out.
//!
//! ```text
//! # HELP queue_depth Jobs waiting.
//! # TYPE queue_depth gauge
//! queue_depth{queue="emails"} 250
//! queue_depth{queue="sms"} 3 1764374400000
//! ```
//!
//! Both ways metrics arrive in this format read it here: a push to
//! `POST /api/v1/import/prometheus` (`http/import.rs`) and a scrape
//! ([`crate::scrape`]). The parser is hand-written rather than taken from a crate:
//! `prometheus-parse` skips lines it cannot read, splits labels on `,` and `=`
//! without unescaping, and falls back to "now" on a bad timestamp, so a malformed
//! body would be half-applied in silence. Here the first malformed line refuses the
//! body, and the error names it.

use std::collections::{HashMap, HashSet};

use crate::clock::Timestamp;
use crate::labels::Labels;
use crate::labels::valid_metric_name;
use crate::series::IncomingSample;

/// One sample of a body, with the line it was on: a sample the store refuses later
/// is reported by its line, which is what the sender wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleLine {
    /// 1-based line number in the body.
    pub line: usize,
    pub sample: IncomingSample,
}

/// Why a body was refused: the first malformed line.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Parses a text exposition body (format 0.0.4) strictly, every line or none.
///
/// - Lines end with `\n` (a `\r` before it is tolerated, and so is a missing final
///   newline); blank lines are skipped; blanks are spaces and tabs.
/// - `# HELP name doc` (escapes `\\`, `\n`) and `# TYPE name kind` (counter, gauge,
///   histogram, summary, untyped; the kind is informational) are checked: a valid
///   name, at most one of each per name, TYPE before the metric's first sample.
///   Other `#` lines are comments.
/// - `name{label="value",...} value [timestamp_ms]`: Prometheus' metric and label
///   names ([`valid_metric_name`], [`crate::labels::valid_name`]), label names
///   starting with `__` refused as in a JSON push; label values escape `\\`, `\"`
///   and `\n` and nothing else; a trailing comma is allowed; no label twice; the
///   value is a float, `NaN`, `+Inf` or `-Inf`; the
///   timestamp an int64 of milliseconds. Histogram and summary lines are plain
///   series (`x_bucket{le="0.1"}`, `x_sum`, `x_count`).
/// - A series (name and labels) appears once per body.
/// - UTF-8 quoted names (`{"my.metric"}`) are not supported.
///
/// Counts and sizes (labels per sample, bytes of names and values) and how far
/// ahead a timestamp may be are the daemon's to bound, as for every intake
/// (`crate::admission`); the body itself is bounded by its caller.
pub fn parse(body: &[u8]) -> Result<Vec<SampleLine>, LineError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        LineError {
            line,
            message: "invalid UTF-8".to_string(),
        }
    })?;
    let mut parser = Parser {
        samples: Vec::new(),
        series: HashMap::new(),
        sample_names: HashSet::new(),
        helps: HashMap::new(),
        types: HashMap::new(),
    };
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        parser
            .line(line, raw)
            .map_err(|message| LineError { line, message })?;
    }
    Ok(parser.samples)
}

struct Parser {
    samples: Vec<SampleLine>,
    /// Series seen so far, with the line that first gave them.
    series: HashMap<(String, Labels), usize>,
    sample_names: HashSet<String>,
    helps: HashMap<String, usize>,
    types: HashMap<String, usize>,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

impl Parser {
    fn line(&mut self, line: usize, raw: &str) -> Result<(), String> {
        let text = raw.trim_matches(is_blank);
        if text.is_empty() {
            return Ok(());
        }
        if let Some(comment) = text.strip_prefix('#') {
            return self.comment(line, comment);
        }
        let sample = self.sample(text)?;
        let key = (sample.metric.clone(), sample.labels.clone());
        if let Some(first) = self.series.insert(key, line) {
            return Err(format!(
                "duplicate series {}{} (first on line {first})",
                sample.metric, sample.labels
            ));
        }
        self.sample_names.insert(sample.metric.clone());
        self.samples.push(SampleLine { line, sample });
        Ok(())
    }

    fn comment(&mut self, line: usize, comment: &str) -> Result<(), String> {
        let mut cur = Cursor::new(comment);
        cur.skip_blanks();
        let keyword = cur.token();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        cur.skip_blanks();
        let name = cur.token();
        if name.is_empty() {
            return Err(format!("{keyword} line without a metric name"));
        }
        if !valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in {keyword} line"));
        }
        cur.skip_blanks();
        if keyword == "HELP" {
            check_help_escapes(cur.rest())?;
            if let Some(first) = self.helps.insert(name.to_string(), line) {
                return Err(format!(
                    "second HELP line for {name} (first on line {first})"
                ));
            }
            return Ok(());
        }
        let kind = cur.token();
        if kind.is_empty() {
            return Err(format!("TYPE line for {name} without a type"));
        }
        if !KINDS.contains(&kind) {
            return Err(format!(
                "unknown metric type {kind:?}: counter, gauge, histogram, summary or untyped"
            ));
        }
        cur.skip_blanks();
        if !cur.rest().is_empty() {
            return Err(format!("unexpected text after the type: {:?}", cur.rest()));
        }
        if let Some(first) = self.types.insert(name.to_string(), line) {
            return Err(format!(
                "second TYPE line for {name} (first on line {first})"
            ));
        }
        let family: &[&str] = match kind {
            "histogram" => &["", "_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        if let Some(seen) = family
            .iter()
            .map(|suffix| format!("{name}{suffix}"))
            .find(|n| self.sample_names.contains(n))
        {
            return Err(format!(
                "TYPE line for {name} after a sample of {seen}: it must come first"
            ));
        }
        Ok(())
    }

    fn sample(&self, text: &str) -> Result<IncomingSample, String> {
        let mut cur = Cursor::new(text);
        let metric = cur.take_while(|c| !is_blank(c) && c != '{');
        if metric.is_empty() {
            return Err(if cur.rest().starts_with("{\"") {
                "quoted (UTF-8) metric names are not supported".to_string()
            } else {
                "missing metric name".to_string()
            });
        }
        if !valid_metric_name(metric) {
            return Err(format!("invalid metric name {metric:?}"));
        }
        cur.skip_blanks();
        let mut labels: Vec<(&str, String)> = Vec::new();
        if cur.eat('{') {
            loop {
                cur.skip_blanks();
                if cur.eat('}') {
                    break;
                }
                if cur.at_end() {
                    return Err("unterminated label set: expected '}'".to_string());
                }
                if cur.rest().starts_with('"') {
                    return Err("quoted (UTF-8) label names are not supported".to_string());
                }
                let name =
                    cur.take_while(|c| !is_blank(c) && !matches!(c, '=' | ',' | '{' | '}' | '"'));
                if name.is_empty() {
                    return Err(format!(
                        "expected a label name, found {:?}",
                        cur.rest().chars().next().unwrap_or_default()
                    ));
                }
                if !crate::labels::valid_name(name) || name.starts_with("__") {
                    let why = if name.starts_with("__") {
                        " (names starting with __ are reserved)"
                    } else {
                        ""
                    };
                    return Err(format!("invalid label name {name:?}{why}"));
                }
                cur.skip_blanks();
                if !cur.eat('=') {
                    return Err(format!("expected '=' after label name {name:?}"));
                }
                cur.skip_blanks();
                if !cur.eat('"') {
                    return Err(format!("expected '\"' to open the value of label {name:?}"));
                }
                let value = cur
                    .quoted()
                    .map_err(|why| format!("label {name:?}: {why}"))?;
                if labels.iter().any(|(n, _)| *n == name) {
                    return Err(format!("duplicate label name {name:?}"));
                }
                labels.push((name, value));
                cur.skip_blanks();
                if cur.eat(',') {
                    continue;
                }
                if cur.eat('}') {
                    break;
                }
                if cur.at_end() {
                    return Err("unterminated label set: expected '}'".to_string());
                }
                return Err(format!(
                    "expected ',' or '}}' after the value of label {name:?}, found {:?}",
                    cur.rest().chars().next().unwrap_or_default()
                ));
            }
            cur.skip_blanks();
        }
        let value_text = cur.token();
        if value_text.is_empty() {
            return Err(format!("missing value after {metric}"));
        }
        let value = parse_value(value_text)
            .ok_or_else(|| format!("invalid value {value_text:?}: a float, NaN, +Inf or -Inf"))?;
        cur.skip_blanks();
        let at = match cur.token() {
            "" => None,
            t => Some(Timestamp(t.parse::<i64>().map_err(|_| {
                format!("invalid timestamp {t:?}: integer milliseconds since the epoch")
            })?)),
        };
        cur.skip_blanks();
        if !cur.at_end() {
            return Err(format!(
                "unexpected text after the timestamp: {:?}",
                cur.rest()
            ));
        }
        Ok(IncomingSample {
            metric: metric.to_string(),
            labels: Labels::from_pairs(labels),
            value,
            at,
        })
    }
}

/// Go's `ParseFloat` as the format uses it: decimal floats, `NaN`, `[+-]Inf`
/// (any case, `Infinity` too). Hex floats are not accepted.
fn parse_value(text: &str) -> Option<f64> {
    let digits = text.trim_start_matches(['+', '-']);
    // Rust also reads "nan"/"inf" case-insensitively; it takes nothing else that
    // Go refuses, apart from a sign on NaN, which is harmless.
    if digits.len() + 1 < text.len() {
        return None; // "--1", "+-Inf"
    }
    text.parse::<f64>().ok()
}

fn check_help_escapes(doc: &str) -> Result<(), String> {
    let mut chars = doc.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\' | 'n') => {}
                Some(other) => {
                    return Err(format!(
                        "invalid escape sequence \\{other} in HELP text: only \\\\ and \\n"
                    ));
                }
                None => return Err("HELP text ends with a lone backslash".to_string()),
            }
        }
    }
    Ok(())
}

/// A position in one line.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let end = rest.find(|c| !keep(c)).unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    /// Up to the next blank.
    fn token(&mut self) -> &'a str {
        self.take_while(|c| !is_blank(c))
    }

    fn skip_blanks(&mut self) {
        self.take_while(is_blank);
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// A label value after its opening quote, through the closing one, unescaped.
    fn quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, other)) => {
                        return Err(format!(
                            "invalid escape sequence \\{other} in the value: only \\\\, \\\" and \\n"
                        ));
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated value: expected a closing '\"'".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Vec<SampleLine>, LineError> {
        parse(text.as_bytes())
    }

    fn one(text: &str) -> IncomingSample {
        let mut all = parse_text(text).unwrap();
        assert_eq!(all.len(), 1, "{text:?}");
        let only = all.remove(0);
        assert_eq!(only.line, 1, "{text:?}");
        only.sample
    }

    fn error(text: &str) -> (usize, String) {
        let e = parse_text(text).expect_err(text);
        (e.line, e.message)
    }

    #[test]
    fn reads_names_labels_values_and_timestamps() {
        let s = one("http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n");
        assert_eq!(s.metric, "http_requests_total");
        assert_eq!(
            s.labels,
            Labels::from_pairs([("method", "post"), ("code", "200")])
        );
        assert_eq!((s.value, s.at), (1027.0, Some(Timestamp(1395066363000))));

        let s = one("  \t x:y_z \t {  a = \"1\" ,\tb=\"2\" , } \t -3.5e2 \t -7  \r\n");
        assert_eq!(
            (s.metric.as_str(), s.value, s.at),
            ("x:y_z", -350.0, Some(Timestamp(-7)))
        );
        assert_eq!(s.labels, Labels::from_pairs([("a", "1"), ("b", "2")]));

        let s = one("no_labels 1");
        assert_eq!((s.labels.len(), s.at), (0, None));
        assert_eq!(one("empty{} 1").labels.len(), 0);
        assert_eq!(one("tight{a=\"b\"}2").value, 2.0);
    }

    #[test]
    fn unescapes_label_values() {
        let s = one(r#"msg{text="a \"quoted\" C:\\path\nnext line, {braces}=x"} 1"#);
        assert_eq!(
            s.labels.get("text"),
            Some("a \"quoted\" C:\\path\nnext line, {braces}=x")
        );
        assert_eq!(one("u{v=\"日本語 ✓\"} 1").labels.get("v"), Some("日本語 ✓"));
    }

    #[test]
    fn special_values() {
        assert!(one("a NaN").value.is_nan());
        assert!(one("a nan").value.is_nan());
        assert_eq!(one("a +Inf").value, f64::INFINITY);
        assert_eq!(one("a -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("a Inf").value, f64::INFINITY);
        assert_eq!(one("a 1e-3").value, 0.001);
        assert_eq!(one("a .5").value, 0.5);
        assert_eq!(one("a +7").value, 7.0);
        for bad in [
            "a --1",
            "a +-Inf",
            "a 0x10",
            "a 1_000",
            "a high",
            "a 1,5",
            "a Infinit",
        ] {
            assert!(error(bad).1.contains("invalid value"), "{bad}");
        }
    }

    #[test]
    fn comments_help_type_and_histograms() {
        let body = "\
# A free comment
#
# HELP rpc_duration_seconds A summary of RPC durations.\\nSecond line \\\\ ok
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.5\"} 4773
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693

#\tTYPE req histogram
req_bucket{le=\"0.05\"} 24054
req_bucket{le=\"+Inf\"} 144320
req_sum 53423
req_count 144320
# HELP empty_help
";
        let all = parse_text(body).unwrap();
        let got: Vec<(usize, &str)> = all
            .iter()
            .map(|s| (s.line, s.sample.metric.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (5, "rpc_duration_seconds"),
                (6, "rpc_duration_seconds_sum"),
                (7, "rpc_duration_seconds_count"),
                (10, "req_bucket"),
                (11, "req_bucket"),
                (12, "req_sum"),
                (13, "req_count"),
            ]
        );
        assert_eq!(all[4].sample.labels.get("le"), Some("+Inf"));
        assert!(parse_text("").unwrap().is_empty());
        assert!(parse_text("\n\n  \n# only comments\n").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("ok 1\n9bad 1\n", 2, "invalid metric name \"9bad\""),
            ("ok 1\nbad-name 1\n", 2, "invalid metric name \"bad-name\""),
            ("ok 1\n\n{a=\"b\"} 1\n", 3, "missing metric name"),
            ("{\"my.metric\"} 1", 1, "quoted (UTF-8) metric names"),
            ("m{\"a.b\"=\"c\"} 1", 1, "quoted (UTF-8) label names"),
            (
                "m{a=\"x\\q\"} 1",
                1,
                "label \"a\": invalid escape sequence \\q",
            ),
            ("m{a=\"x\\\"} 1", 1, "unterminated value"),
            ("m{a=\"x} 1", 1, "unterminated value"),
            ("m{a=\"x\"", 1, "unterminated label set"),
            ("m{a=\"x\" b=\"y\"} 1", 1, "expected ',' or '}'"),
            ("m{a} 1", 1, "expected '=' after label name \"a\""),
            (
                "m{a=x} 1",
                1,
                "expected '\"' to open the value of label \"a\"",
            ),
            ("m{,} 1", 1, "expected a label name"),
            ("m{a-b=\"x\"} 1", 1, "invalid label name \"a-b\""),
            ("m{__name__=\"x\"} 1", 1, "reserved"),
            ("m{a=\"1\",a=\"2\"} 1", 1, "duplicate label name \"a\""),
            ("m", 1, "missing value after m"),
            ("m{a=\"b\"}", 1, "missing value after m"),
            ("m{a=\"b\"}   ", 1, "missing value after m"),
            ("m 1 12.5", 1, "invalid timestamp \"12.5\""),
            ("m 1 99999999999999999999", 1, "invalid timestamp"),
            ("m 1 2 3", 1, "unexpected text after the timestamp: \"3\""),
            ("m 1 # {trace_id=\"x\"} 1", 1, "invalid timestamp \"#\""),
            ("m 1\nm 2\n", 2, "duplicate series m{} (first on line 1)"),
            ("m{a=\"\"} 1\nm 2\n", 2, "duplicate series"),
            (
                "# TYPE m gauge\n# TYPE m gauge\n",
                2,
                "second TYPE line for m",
            ),
            ("# HELP m x\n# HELP m y\n", 2, "second HELP line for m"),
            (
                "m 1\n# TYPE m counter\n",
                2,
                "TYPE line for m after a sample of m",
            ),
            (
                "h_bucket{le=\"1\"} 1\n# TYPE h histogram\n",
                2,
                "after a sample of h_bucket",
            ),
            ("# TYPE m gaugee\n", 1, "unknown metric type \"gaugee\""),
            ("# TYPE m\n", 1, "TYPE line for m without a type"),
            (
                "# TYPE m gauge extra\n",
                1,
                "unexpected text after the type",
            ),
            ("# TYPE\n", 1, "TYPE line without a metric name"),
            (
                "# HELP 1m x\n",
                1,
                "invalid metric name \"1m\" in HELP line",
            ),
            (
                "# HELP m bad \\t escape\n",
                1,
                "invalid escape sequence \\t in HELP",
            ),
            ("# HELP m trailing \\\n", 1, "lone backslash"),
        ];
        for (body, line, want) in cases {
            let (got_line, message) = error(body);
            assert_eq!(got_line, *line, "{body:?}: {message}");
            assert!(
                message.contains(want),
                "{body:?}: {message:?} lacks {want:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let e = parse(b"a 1\nb{v=\"\xff\"} 1\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "invalid UTF-8"));
    }
}
