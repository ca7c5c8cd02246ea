//! `[people]`, `[groups]` and `[schedules]` → the [`Directory`]: who can be paged,
//! how to reach them, and who is on call. Every member and rotation must name a
//! declared person; a person with a field in error is left out, so no later check
//! complains about an address that is merely misspelt.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use toml::Spanned;

use super::compile::Compiler;
use super::escalation::{Kind, ids};
use super::raw::{RawConfig, RawSchedule};
use crate::escalation::{Directory, Group, Person};
use crate::oncall::Rotation;

const DEFAULT_HANDOFF: &str = "09:00";
const DEFAULT_SHIFT: Duration = Duration::from_secs(7 * DAY_SECS);
const DAY_SECS: u64 = 24 * 60 * 60;

impl Compiler<'_> {
    pub(super) fn directory(&mut self, raw: &RawConfig) -> Directory {
        let mut directory = Directory::default();
        let people = ids(&raw.people);
        for (id, p) in &raw.people {
            let key = format!("people.{}", id.get_ref());
            let id_ok = self.check_id(id, "people");
            let name = match &p.name {
                Some(n) => self.nonempty(n, &format!("{key}.name")),
                None => Some(id.get_ref().clone()),
            };
            let email = optional(p.email.as_ref(), |e| {
                self.email_address(e, &format!("{key}.email"))
            });
            let phone = optional(p.phone.as_ref(), |ph| {
                self.phone(ph, &format!("{key}.phone"))
            });
            let slack = optional(p.slack.as_ref(), |s| {
                self.slack_user(s, &format!("{key}.slack"))
            });
            // A person with a field in error is left out, so no check downstream
            // says "has no phone" about a phone that is merely misspelt.
            if let (true, Some(name), Some(email), Some(phone), Some(slack)) =
                (id_ok, name, email, phone, slack)
            {
                let id = id.get_ref().clone();
                directory.people.insert(
                    id.clone(),
                    Person {
                        id,
                        name,
                        email,
                        phone,
                        slack,
                    },
                );
            }
        }
        for (id, g) in &raw.groups {
            let key = format!("groups.{}", id.get_ref());
            let id_ok = self.check_id(id, "groups");
            let mut ok = id_ok;
            let mut members = Vec::new();
            for (i, m) in g.members.iter().enumerate() {
                let k = format!("{key}.members[{i}]");
                match self.known_id(m, &k, Kind::Person, &people) {
                    Some(m) => members.push(m),
                    None => ok = false,
                }
            }
            let mut emails = Vec::new();
            for (i, e) in g.emails.iter().enumerate() {
                match self.email_address(e, &format!("{key}.emails[{i}]")) {
                    Some(e) => emails.push(e),
                    None => ok = false,
                }
            }
            if g.members.is_empty() && g.emails.is_empty() {
                self.report(id.span(), format!("{key}: a group needs members or emails"));
                ok = false;
            }
            if ok {
                let id = id.get_ref().clone();
                directory.groups.insert(
                    id.clone(),
                    Group {
                        id,
                        members,
                        emails,
                    },
                );
            }
        }
        for (id, s) in &raw.schedules {
            let id_ok = self.check_id(id, "schedules");
            if let (true, Some(rotation)) = (id_ok, self.schedule(id.get_ref(), s, &people)) {
                directory.schedules.insert(id.get_ref().clone(), rotation);
            }
        }
        directory
    }

    fn schedule(
        &mut self,
        id: &str,
        raw: &RawSchedule,
        people: &BTreeSet<&str>,
    ) -> Option<Rotation> {
        let key = |field: &str| format!("schedules.{id}.{field}");
        let mut ok = true;
        let mut members = Vec::new();
        for (i, p) in raw.people.get_ref().iter().enumerate() {
            match self.known_id(p, &format!("{}[{i}]", key("people")), Kind::Person, people) {
                Some(p) => members.push(p),
                None => ok = false,
            }
        }
        if raw.people.get_ref().is_empty() {
            self.report(
                raw.people.span(),
                format!("{}: a rotation needs at least one person", key("people")),
            );
            ok = false;
        }
        let time_zone = self.time_zone(&raw.time_zone, &key("time_zone"));
        let handoff = match &raw.handoff {
            Some(h) => self.time_of_day(h, &key("handoff")),
            None => NaiveTime::parse_from_str(DEFAULT_HANDOFF, "%H:%M").ok(),
        };
        let shift = match &raw.shift {
            None => Some(DEFAULT_SHIFT),
            Some(s) => self
                .parse_duration(&Some(s.clone()), &key("shift"))
                .and_then(|d| {
                    if d.as_secs() % DAY_SECS == 0 && d.subsec_nanos() == 0 {
                        return Some(d);
                    }
                    self.report(
                        s.span(),
                        format!(
                            "{}: {} is not a whole number of days (\"1d\", \"7d\")",
                            key("shift"),
                            humantime::format_duration(d)
                        ),
                    );
                    None
                }),
        };
        let start = self.date(&raw.start, &key("start"));
        Some(Rotation {
            name: id.to_string(),
            people: ok.then_some(members)?,
            time_zone: time_zone?,
            handoff: handoff?,
            shift: shift?,
            start: start?,
        })
    }

    /// A Slack user id (`U012ABCDEF`, `W…` on Enterprise Grid), as a profile's
    /// "Copy member ID" gives it; not a display name.
    fn slack_user(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.text(value, key)?;
        let text = text.trim();
        let valid = text.len() >= 9
            && text.starts_with(['U', 'W'])
            && text
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if valid {
            return Some(text.to_string());
        }
        self.report(
            value.span(),
            format!(
                "{key}: {text:?} is not a Slack user id: expected U and upper-case letters \
                 and digits, from the profile's \"Copy member ID\""
            ),
        );
        None
    }

    /// `HH:MM` (or `HH:MM:SS`), local time.
    fn time_of_day(&mut self, value: &Spanned<String>, key: &str) -> Option<NaiveTime> {
        let text = self.text(value, key)?;
        let text = text.trim();
        let parsed = NaiveTime::parse_from_str(text, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"));
        match parsed {
            Ok(t) => Some(t),
            Err(_) => {
                self.report(
                    value.span(),
                    format!("{key}: invalid time {text:?}: expected HH:MM, such as \"09:00\""),
                );
                None
            }
        }
    }

    /// `YYYY-MM-DD`.
    fn date(&mut self, value: &Spanned<String>, key: &str) -> Option<NaiveDate> {
        let text = self.text(value, key)?;
        let text = text.trim();
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.report(
                    value.span(),
                    format!(
                        "{key}: invalid date {text:?}: expected YYYY-MM-DD, such as \
                         \"2026-01-05\""
                    ),
                );
                None
            }
        }
    }
}

/// `Some(None)` for a field not given; `Some(Some(x))` for a good one; `None` for a
/// field given and refused.
fn optional<T, U>(value: Option<&T>, parse: impl FnOnce(&T) -> Option<U>) -> Option<Option<U>> {
    match value {
        None => Some(None),
        Some(v) => parse(v).map(Some),
    }
}
