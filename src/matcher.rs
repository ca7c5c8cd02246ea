//! Label matchers, `name=value`, `name!=value`, `name=~regex` and `name!~regex`: one
//! type for every place tocsin picks alerts or series by their labels (rule
//! selectors, silences, maintenance windows, escalation routes) and one parser for
//! the text people type (the config file, the Slack command, the CLI).
//!
//! A regex is compiled once, when the matcher is made, and anchored as Prometheus
//! and Alertmanager anchor it (`^(?:regex)$`): a matcher that exists is a matcher
//! that works, and matching is never a compilation.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use regex::Regex;
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::{self, Labels};

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    /// The operator as written: `=`, `!=`, `=~`, `!~`.
    pub fn symbol(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    /// Whether the value is a regular expression (`=~`, `!~`).
    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }
}

impl FromStr for MatchOp {
    type Err = MatcherError;

    fn from_str(symbol: &str) -> Result<MatchOp, MatcherError> {
        match symbol {
            "=" => Ok(MatchOp::Equal),
            "!=" => Ok(MatchOp::NotEqual),
            "=~" => Ok(MatchOp::Regex),
            "!~" => Ok(MatchOp::NotRegex),
            other => Err(MatcherError::Op(other.to_string())),
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// One label matcher. Compares and hashes by (name, op, value); the compiled regex
/// follows from those.
#[derive(Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// `^(?:value)$`, compiled when the matcher was made; `None` for `=` and `!=`.
    regex: Option<Regex>,
}

/// Why a matcher could not be made. Messages name the matcher as it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatcherError {
    /// The text is not `name op value`.
    Syntax(String),
    /// An operator other than `=`, `!=`, `=~` and `!~`.
    Op(String),
    /// The value of a `=~` or `!~` matcher is not a regular expression; `reason` is
    /// the regex crate's own last line (`error: unclosed group`).
    Regex { matcher: String, reason: String },
}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatcherError::Syntax(text) => write!(
                f,
                "matcher {text:?} is not name=value, name!=value, name=~regex or name!~regex"
            ),
            MatcherError::Op(op) => {
                write!(f, "unknown matcher operator {op:?}: =, !=, =~ or !~")
            }
            MatcherError::Regex { matcher, reason } => {
                write!(f, "matcher {matcher:?}: invalid regex: {reason}")
            }
        }
    }
}

impl std::error::Error for MatcherError {}

impl Matcher {
    /// A matcher; for `=~` and `!~` its regex is compiled here, and refused if it
    /// is not one. The name is taken as given: [`Matcher::parse`] and the places
    /// that create silences check that it is a label name.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let (name, value) = (name.into(), value.into());
        let regex = if op.is_regex() {
            match Regex::new(&format!("^(?:{value})$")) {
                Ok(r) => Some(r),
                Err(e) => {
                    let reason = e.to_string();
                    let reason = reason.lines().last().unwrap_or("").trim().to_string();
                    return Err(MatcherError::Regex {
                        matcher: format!("{name}{op}{value}"),
                        reason,
                    });
                }
            }
        } else {
            None
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// A matcher as people type one: `host=bot-1`, `host != db-1`,
    /// `host=~"bot-.*"`, `env!~test`. Space around the operator is allowed, the
    /// value may be in double quotes (which keep space at its ends), and everything
    /// after the operator is the value (`a!=b=c` is `a` `!=` `b=c`). The name must
    /// be a label name.
    pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
        let syntax = || MatcherError::Syntax(text.to_string());
        let trimmed = text.trim();
        let name_end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(trimmed.len());
        let (name, rest) = trimmed.split_at(name_end);
        if !labels::valid_name(name) {
            return Err(syntax());
        }
        let rest = rest.trim_start();
        // Two-character operators first: `=~` is not `=` with a value `~…`.
        let op = [
            MatchOp::Regex,
            MatchOp::NotRegex,
            MatchOp::NotEqual,
            MatchOp::Equal,
        ]
        .into_iter()
        .find(|op| rest.starts_with(op.symbol()))
        .ok_or_else(syntax)?;
        let mut value = rest[op.symbol().len()..].trim();
        if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value = &value[1..value.len() - 1];
        }
        Matcher::new(name, op, value).map_err(|e| match e {
            MatcherError::Regex { reason, .. } => MatcherError::Regex {
                matcher: text.to_string(),
                reason,
            },
            other => other,
        })
    }

    /// A matcher as Alertmanager's API and amtool write one (`alertname="Disk
    /// full"`, `instance=~"db.*"`; Prometheus' `labels.ParseMatcher`): a value in
    /// double quotes is unescaped as Go quoted it (`\"`, `\\`, `\n`; any other
    /// backslash is kept), and a double quote inside it must be escaped. A bare
    /// value is taken as it stands.
    pub fn parse_alertmanager(text: &str) -> Result<Matcher, MatcherError> {
        let syntax = || MatcherError::Syntax(text.to_string());
        let trimmed = text.trim();
        // Alertmanager's label names allow `:` as Prometheus' metric names do.
        let name_end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(trimmed.len());
        let (name, rest) = trimmed.split_at(name_end);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(syntax());
        }
        let rest = rest.trim_start();
        let op = [
            MatchOp::Regex,
            MatchOp::NotRegex,
            MatchOp::NotEqual,
            MatchOp::Equal,
        ]
        .into_iter()
        .find(|op| rest.starts_with(op.symbol()))
        .ok_or_else(syntax)?;
        let raw = rest[op.symbol().len()..].trim();
        let (raw, quoted) = match raw.strip_prefix('"') {
            Some(inner) => (inner, true),
            None => (raw, false),
        };
        let unescaped_quote = || {
            MatcherError::Syntax(format!(
                "{text} (the value has a double quote that is not escaped)"
            ))
        };
        let mut value = String::with_capacity(raw.len());
        let mut chars = raw.char_indices().peekable();
        let mut closed = !quoted;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.peek().map(|(_, n)| *n) {
                    Some('n') => {
                        value.push('\n');
                        chars.next();
                    }
                    Some(n @ ('"' | '\\')) => {
                        value.push(n);
                        chars.next();
                    }
                    _ => value.push('\\'),
                },
                '"' if quoted && i + 1 == raw.len() => closed = true,
                '"' => return Err(unescaped_quote()),
                c => value.push(c),
            }
        }
        if !closed {
            return Err(unescaped_quote());
        }
        Matcher::new(name, op, value)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label's value matches; an absent label is the empty string, as in
    /// Prometheus and Alertmanager (so `host=""` matches alerts without a host).
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the value of this matcher's label in `labels` matches.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// The text [`Matcher::parse`] reads back: the value bare when it is a plain word
/// (`host=bot-1`), in double quotes for a regex (`host=~"bot-.*"`) and for a value
/// that is empty, holds a space or a quote, or starts with `~` (which would read as
/// part of the operator).
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.op.is_regex()
            && !self.value.is_empty()
            && !self.value.starts_with('~')
            && !self.value.contains(|c: char| c.is_whitespace() || c == '"');
        if plain {
            write!(f, "{}{}{}", self.name, self.op, self.value)
        } else {
            write!(f, "{}{}\"{}\"", self.name, self.op, self.value)
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("name", &self.name)
            .field("op", &self.op)
            .field("value", &self.value)
            .finish()
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Matcher) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl Eq for Matcher {}

impl Hash for Matcher {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.op.hash(state);
        self.value.hash(state);
    }
}

/// `{"name": "host", "op": "=~", "value": "bot-.*"}`: the shape silences have in the
/// store and in the HTTP API, so state files and clients written before this type
/// read the same.
impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Matcher", 3)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("op", self.op.symbol())?;
        s.serialize_field("value", &self.value)?;
        s.end()
    }
}

/// Reads the shape [`Serialize`] writes, compiling the regex; an unknown operator
/// or an invalid regex is refused.
impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Matcher, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            name: String,
            op: String,
            value: String,
        }
        let w = Wire::deserialize(deserializer)?;
        let op = w.op.parse().map_err(D::Error::custom)?;
        Matcher::new(w.name, op, w.value).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher::new(name, op, value).unwrap()
    }

    #[test]
    fn ops_read_and_print_their_symbols() {
        for op in [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
        ] {
            assert_eq!(op.symbol().parse::<MatchOp>(), Ok(op));
            assert_eq!(op.to_string(), op.symbol());
        }
        for bad in ["", "~", "==", "=!", " =", "!"] {
            assert_eq!(
                bad.parse::<MatchOp>(),
                Err(MatcherError::Op(bad.to_string()))
            );
        }
        assert_eq!(
            "~".parse::<MatchOp>().unwrap_err().to_string(),
            "unknown matcher operator \"~\": =, !=, =~ or !~"
        );
    }

    #[test]
    fn the_parser_reads_what_people_type() {
        use MatchOp::*;
        for (text, name, op, value) in [
            ("host=bot-1", "host", Equal, "bot-1"),
            ("severity=critical", "severity", Equal, "critical"),
            ("host != db-1", "host", NotEqual, "db-1"),
            ("  host =~ \"bot-.*\"  ", "host", Regex, "bot-.*"),
            ("host=~bot-.*", "host", Regex, "bot-.*"),
            ("env!~test", "env", NotRegex, "test"),
            ("a!=b=c", "a", NotEqual, "b=c"),
            ("x=", "x", Equal, ""),
            ("x=\"\"", "x", Equal, ""),
            ("job!=api server", "job", NotEqual, "api server"),
            ("job=\" padded \"", "job", Equal, " padded "),
            ("job=\"a\"b\"", "job", Equal, "a\"b"),
            ("job=\"", "job", Equal, "\""),
            ("_private=1", "_private", Equal, "1"),
            ("__name__=up", "__name__", Equal, "up"),
            (
                "alertname=~\"CPU使用率.*\"",
                "alertname",
                Regex,
                "CPU使用率.*",
            ),
            ("x==y", "x", Equal, "=y"),
            ("x=!~y", "x", Equal, "!~y"),
        ] {
            assert_eq!(Matcher::parse(text), Ok(m(name, op, value)), "{text:?}");
        }
    }

    #[test]
    fn the_parser_refuses_what_is_not_a_matcher() {
        for text in [
            "",
            "host",
            "severity critical",
            "=critical",
            "1x=a",
            "host-name=a",
            "ホスト=a",
            "\"host\"=a",
            "host~a",
            "host:=a",
            "2h",
        ] {
            assert_eq!(
                Matcher::parse(text),
                Err(MatcherError::Syntax(text.to_string())),
                "{text:?}"
            );
        }
        assert_eq!(
            Matcher::parse("severity critical").unwrap_err().to_string(),
            "matcher \"severity critical\" is not name=value, name!=value, name=~regex or name!~regex"
        );
    }

    #[test]
    fn an_invalid_regex_is_refused_when_the_matcher_is_made() {
        assert_eq!(
            Matcher::parse("host=~(").unwrap_err().to_string(),
            "matcher \"host=~(\": invalid regex: error: unclosed group"
        );
        assert_eq!(
            Matcher::parse("host !~ \"bot-(\"").unwrap_err().to_string(),
            "matcher \"host !~ \\\"bot-(\\\"\": invalid regex: error: unclosed group"
        );
        assert_eq!(
            Matcher::new("host", MatchOp::Regex, "(").unwrap_err(),
            MatcherError::Regex {
                matcher: "host=~(".into(),
                reason: "error: unclosed group".into()
            }
        );
        // `=` and `!=` take any value, regex syntax or not.
        assert!(Matcher::new("host", MatchOp::Equal, "(").is_ok());
        assert!(Matcher::new("host", MatchOp::NotEqual, "[").is_ok());
    }

    #[test]
    fn regexes_are_anchored_and_an_absent_label_is_empty() {
        let bots = m("host", MatchOp::Regex, "bot-.*");
        assert!(bots.matches("bot-1"));
        assert!(!bots.matches("a-bot-1"), "anchored at the start");
        assert!(
            !m("host", MatchOp::Regex, "bot").matches("bot-1"),
            "and the end"
        );
        // `^(?:a|b)$`, not `^a|b$`.
        let either = m("host", MatchOp::Regex, "a|b");
        assert!(either.matches("b") && !either.matches("ab") && !either.matches("ba"));
        assert!(!m("host", MatchOp::NotRegex, "bot-.*").matches("bot-1"));
        assert!(m("host", MatchOp::NotRegex, "bot-.*").matches("db-1"));
        assert!(m("host", MatchOp::Equal, "x").matches("x"));
        assert!(!m("host", MatchOp::Equal, "x").matches("xx"));
        assert!(m("host", MatchOp::NotEqual, "x").matches(""));

        let labels = Labels::from_pairs([("host", "bot-1"), ("severity", "critical")]);
        assert!(bots.matches_labels(&labels));
        assert!(m("env", MatchOp::Equal, "").matches_labels(&labels));
        assert!(m("env", MatchOp::Regex, ".*").matches_labels(&labels));
        assert!(!m("env", MatchOp::Regex, ".+").matches_labels(&labels));
        assert!(Matcher::equal("severity", "critical").matches_labels(&labels));
    }

    #[test]
    fn display_is_what_people_type_and_reads_back() {
        for (matcher, text) in [
            (m("host", MatchOp::Equal, "bot-1"), "host=bot-1"),
            (m("host", MatchOp::NotEqual, "db-1"), "host!=db-1"),
            (m("host", MatchOp::Regex, "bot-.*"), "host=~\"bot-.*\""),
            (m("env", MatchOp::NotRegex, "test"), "env!~\"test\""),
            (m("x", MatchOp::Equal, ""), "x=\"\""),
            (m("job", MatchOp::Equal, "api server"), "job=\"api server\""),
            (m("x", MatchOp::Equal, "~y"), "x=\"~y\""),
            (m("x", MatchOp::Equal, "a\"b"), "x=\"a\"b\""),
            (m("x", MatchOp::Equal, "=y"), "x==y"),
            (
                m("rule", MatchOp::Equal, "投稿成功率低下"),
                "rule=投稿成功率低下",
            ),
        ] {
            assert_eq!(matcher.to_string(), text);
            assert_eq!(Matcher::parse(text), Ok(matcher), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn every_matcher_reads_back_from_its_text(
            name in "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
            op in prop_oneof![
                Just(MatchOp::Equal),
                Just(MatchOp::NotEqual),
                Just(MatchOp::Regex),
                Just(MatchOp::NotRegex),
            ],
            value in "[ a-z\"'~=!.*()\\[\\]|\\\\\t\n日本-]{0,12}",
        ) {
            // Values that are not regexes cannot make a `=~` or `!~` matcher.
            if let Ok(matcher) = Matcher::new(name, op, value) {
                prop_assert_eq!(Matcher::parse(&matcher.to_string()), Ok(matcher));
            }
        }
    }

    #[test]
    fn equality_and_hash_follow_the_text() {
        use std::collections::HashSet;
        let set: HashSet<Matcher> = [
            m("host", MatchOp::Regex, "a"),
            Matcher::parse("host=~\"a\"").unwrap(),
            m("host", MatchOp::Equal, "a"),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 2);
        assert_ne!(
            m("host", MatchOp::Regex, "a"),
            m("host", MatchOp::Regex, "b")
        );
        assert_ne!(
            m("host", MatchOp::Equal, "a"),
            m("name", MatchOp::Equal, "a")
        );
    }

    #[test]
    fn json_is_the_shape_silences_were_stored_in() {
        // As the store and the HTTP API have written silences' matchers since v2.
        let old = r#"[{"name":"host","op":"=~","value":"bot-.*"},{"name":"severity","op":"!=","value":"info"},{"name":"job","op":"=","value":"api"},{"name":"env","op":"!~","value":"te\"st"}]"#;
        let read: Vec<Matcher> = serde_json::from_str(old).unwrap();
        assert_eq!(
            read,
            vec![
                m("host", MatchOp::Regex, "bot-.*"),
                m("severity", MatchOp::NotEqual, "info"),
                m("job", MatchOp::Equal, "api"),
                m("env", MatchOp::NotRegex, "te\"st"),
            ]
        );
        assert!(read[0].matches("bot-1"), "the regex is compiled on reading");
        assert_eq!(serde_json::to_string(&read).unwrap(), old);

        let refused = |json: &str| {
            serde_json::from_str::<Matcher>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(
            refused(r#"{"name":"host","op":"=~","value":"("}"#)
                .starts_with("matcher \"host=~(\": invalid regex: error: unclosed group"),
            "{}",
            refused(r#"{"name":"host","op":"=~","value":"("}"#)
        );
        assert!(
            refused(r#"{"name":"host","op":"~","value":"x"}"#)
                .starts_with("unknown matcher operator \"~\"")
        );
        assert!(refused(r#"{"name":"host","value":"x"}"#).contains("missing field `op`"));
    }

    #[test]
    fn alertmanager_filters_read_as_amtool_writes_them() {
        let parse = |t: &str| Matcher::parse_alertmanager(t).map(|m| m.to_string());
        assert_eq!(
            parse(r#"alertname="Disk full""#).unwrap(),
            r#"alertname="Disk full""#
        );
        assert_eq!(parse("instance=~\"db.*\"").unwrap(), "instance=~\"db.*\"");
        assert_eq!(parse("job != node").unwrap(), "job!=node");
        let m = Matcher::parse_alertmanager(r#"path="C:\\tmp \"x\"\n""#).unwrap();
        assert_eq!(m.value(), "C:\\tmp \"x\"\n");
        let m = Matcher::parse_alertmanager(r#"re=~"a\.b""#).unwrap();
        assert_eq!(m.value(), r"a\.b", "a spurious escape keeps its backslash");
        assert!(Matcher::parse_alertmanager(r#"a="x"y""#).is_err());
        assert!(Matcher::parse_alertmanager(r#"a="open"#).is_err());
        assert!(Matcher::parse_alertmanager("1a=b").is_err());
        assert!(Matcher::parse_alertmanager("a~b").is_err());
        assert!(Matcher::parse_alertmanager(r#"a=~"(""#).is_err());
    }
}
