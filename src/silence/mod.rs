//! Silences: label matchers and a time range during which matching alerts are
//! suppressed (no notifications, escalation paused). Pure: matching takes `now`.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::labels::{self, Labels};
use crate::matcher::Matcher;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    /// When it was last created, changed or expired (Alertmanager's `updatedAt`).
    /// Silences stored before it was kept have none; their start stands in.
    // Stored: never `skip_serializing_if` (the store's encoding has no field
    // names; see `store/codec.rs`).
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
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
        self.status(now) == Status::Active && self.matchers.iter().all(|m| m.matches_labels(labels))
    }

    /// Checks a silence before it is stored: every reason it is refused. (A matcher
    /// with an invalid regex cannot exist: it was refused when it was made.)
    pub fn validate(&self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        for m in &self.matchers {
            if m.name().is_empty() {
                return Err("a matcher needs a label name".into());
            }
            // Alerts only carry label names (intake refuses others), so a matcher
            // on anything else could only ever match the empty string.
            if !labels::valid_name(m.name()) {
                return Err(format!("matcher {m}: {:?} is not a label name", m.name()));
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
                .map(|(n, op, v)| Matcher::new(*n, op.parse().unwrap(), *v).unwrap())
                .collect(),
            starts_at: Timestamp::from_secs(100),
            ends_at: Timestamp::from_secs(200),
            created_by: "alice".into(),
            comment: "maintenance".into(),
            updated_at: None,
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
    fn a_silence_stored_before_the_matcher_type_reads_the_same() {
        // A silence as the store (schema v2) and the HTTP API have written it.
        let stored = r#"{"id":"s","matchers":[{"name":"host","op":"=~","value":"bot-.*"},{"name":"severity","op":"!=","value":"info"}],"starts_at":100000,"ends_at":200000,"created_by":"alice","comment":"maintenance"}"#;
        let read: Silence = serde_json::from_str(stored).unwrap();
        assert_eq!(
            read,
            silence(&[("host", "=~", "bot-.*"), ("severity", "!=", "info")])
        );
        // Written again, it reads the same (`updated_at` is now written, as null:
        // the store's binary encoding cannot skip a field).
        let written = serde_json::to_string(&read).unwrap();
        assert_eq!(serde_json::from_str::<Silence>(&written).unwrap(), read);
        assert_eq!(
            written,
            stored.replace(r#""maintenance"}"#, r#""maintenance","updated_at":null}"#)
        );
        let bad = stored.replace("bot-.*", "bot-(");
        assert!(
            serde_json::from_str::<Silence>(&bad)
                .unwrap_err()
                .to_string()
                .contains("invalid regex")
        );
    }

    #[test]
    fn validation_refuses_what_would_silence_everything() {
        assert!(silence(&[("host", "=~", ".*")]).validate().is_err());
        assert!(silence(&[("host", "=", "")]).validate().is_err());
        assert!(silence(&[]).validate().is_err());
        assert!(silence(&[("host-name", "=", "x")]).validate().is_err());
        assert!(silence(&[("", "=", "x")]).validate().is_err());
        assert!(silence(&[("host", "=", "bot-1")]).validate().is_ok());
    }
}
