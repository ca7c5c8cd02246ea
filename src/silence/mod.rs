//! Silences: label matchers and a time range during which matching alerts are
//! suppressed (no notifications, escalation paused). Pure: matching takes `now`.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::labels::Labels;
use crate::rules::ast::MatchOp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`; regexes are anchored, as in Alertmanager.
    pub op: String,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Active,
    Expired,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Expired => "expired",
        }
    }
}

impl Matcher {
    fn op(&self) -> Option<MatchOp> {
        match self.op.as_str() {
            "=" => Some(MatchOp::Equal),
            "!=" => Some(MatchOp::NotEqual),
            "=~" => Some(MatchOp::Regex),
            "!~" => Some(MatchOp::NotRegex),
            _ => None,
        }
    }

    fn regex(&self) -> Result<regex::Regex, regex::Error> {
        regex::Regex::new(&format!("^(?:{})$", self.value))
    }

    /// Whether a label value (empty when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op() {
            Some(MatchOp::Equal) => value == self.value,
            Some(MatchOp::NotEqual) => value != self.value,
            Some(MatchOp::Regex) => self.regex().is_ok_and(|r| r.is_match(value)),
            Some(MatchOp::NotRegex) => !self.regex().is_ok_and(|r| r.is_match(value)),
            None => false,
        }
    }
}

impl Silence {
    pub fn status(&self, now: Timestamp) -> Status {
        if now < self.starts_at {
            Status::Pending
        } else if now < self.ends_at {
            Status::Active
        } else {
            Status::Expired
        }
    }

    /// Whether this silence suppresses an alert with `labels` at `now`.
    pub fn silences(&self, labels: &Labels, now: Timestamp) -> bool {
        self.status(now) == Status::Active
            && self
                .matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }

    /// Checks a silence before it is stored: every reason it is refused.
    pub fn validate(&self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        for m in &self.matchers {
            if m.name.is_empty() {
                return Err("a matcher needs a label name".into());
            }
            match m.op() {
                None => return Err(format!("matcher op {:?}: =, !=, =~ or !~", m.op)),
                Some(MatchOp::Regex | MatchOp::NotRegex) => {
                    if let Err(e) = m.regex() {
                        let why = e.to_string();
                        let last = why.lines().last().unwrap_or("").trim();
                        return Err(format!("matcher {}: invalid regex: {last}", m.name));
                    }
                }
                _ => {}
            }
        }
        // As in Alertmanager: a silence whose matchers all match the empty string
        // would silence everything.
        if self.matchers.iter().all(|m| m.matches("")) {
            return Err("at least one matcher must not match the empty string (this would silence every alert)".into());
        }
        if self.ends_at <= self.starts_at {
            return Err("a silence must end after it starts".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(matchers: &[(&str, &str, &str)]) -> Silence {
        Silence {
            id: "s".into(),
            matchers: matchers
                .iter()
                .map(|(n, op, v)| Matcher {
                    name: n.to_string(),
                    op: op.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            starts_at: Timestamp::from_secs(100),
            ends_at: Timestamp::from_secs(200),
            created_by: "alice".into(),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn matches_labels_while_active() {
        let s = silence(&[("host", "=~", "bot-.*"), ("severity", "!=", "info")]);
        let l = Labels::from_pairs([("host", "bot-1"), ("severity", "critical")]);
        assert!(!s.silences(&l, Timestamp::from_secs(99)), "pending");
        assert!(s.silences(&l, Timestamp::from_secs(100)));
        assert!(!s.silences(&l, Timestamp::from_secs(200)), "expired");
        assert!(!s.silences(
            &Labels::from_pairs([("host", "db-1")]),
            Timestamp::from_secs(150)
        ));
        assert!(!s.silences(
            &Labels::from_pairs([("host", "bot-2"), ("severity", "info")]),
            Timestamp::from_secs(150)
        ));
    }

    #[test]
    fn validation_refuses_what_would_silence_everything() {
        assert!(silence(&[("host", "=~", ".*")]).validate().is_err());
        assert!(silence(&[("host", "=", "")]).validate().is_err());
        assert!(silence(&[]).validate().is_err());
        assert!(silence(&[("host", "=~", "(")]).validate().is_err());
        assert!(silence(&[("host", "~", "x")]).validate().is_err());
        assert!(silence(&[("host", "=", "bot-1")]).validate().is_ok());
    }
}
