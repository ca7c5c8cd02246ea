//! Recurring maintenance windows from config: while one is open, the alerts it
//! matches are suppressed as by a silence (no notifications, escalation paused);
//! when it closes, alerts still active resume.

use std::time::Duration;

use crate::calendar::Recurrence;
use crate::clock::Timestamp;
use crate::matcher::{MatchOp, Matcher};
use crate::silence::Silence;

/// One `[[maintenance]]` window.
#[derive(Clone, Debug, PartialEq)]
pub struct MaintenanceWindow {
    pub name: String,
    /// When the window opens.
    pub starts: Recurrence,
    pub duration: Duration,
    /// Which alerts it covers; empty covers every alert.
    pub matchers: Vec<Matcher>,
}

impl MaintenanceWindow {
    /// The window open at `now`, as a silence (id `maintenance:{name}:{start ms}`),
    /// so the engine suppresses and resumes alerts exactly as for silences.
    pub fn active(&self, now: Timestamp) -> Option<Silence> {
        // The latest opening is enough: an earlier window still open would close
        // no later than this one.
        let start = self.starts.last_at_or_before(now)?;
        let end = start + self.duration;
        (now < end).then(|| self.silence(start))
    }

    /// The next time `active` gives a different answer after `now`: the open
    /// window closes, or the next one opens (whichever is first).
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        let close = self.active(now).map(|s| s.ends_at);
        let open = self.starts.next_after(now);
        match (close, open) {
            (Some(c), Some(o)) => Some(c.min(o)),
            (c, o) => c.or(o),
        }
    }

    /// The silence for the window opening at `start`.
    pub fn silence(&self, start: Timestamp) -> Silence {
        Silence {
            id: format!("maintenance:{}:{}", self.name, start.0),
            matchers: if self.matchers.is_empty() {
                vec![every_alert()]
            } else {
                self.matchers.clone()
            },
            starts_at: start,
            ends_at: start + self.duration,
            created_by: "maintenance".into(),
            comment: format!("maintenance window {:?} ({})", self.name, self.starts),
            updated_at: None,
        }
    }
}

/// A matcher every alert meets: each has an `alertname`. A silence needs one
/// matcher that does not match the empty string, so an empty list cannot stand
/// for "everything".
fn every_alert() -> Matcher {
    Matcher::new("alertname", MatchOp::Regex, ".+").expect("`.+` is a regex")
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::{NaiveDate, TimeZone};
    use chrono_tz::Tz;

    use crate::labels::Labels;

    const TOKYO: Tz = chrono_tz::Asia::Tokyo;

    fn window(name: &str, cron: &str, hours: u64) -> MaintenanceWindow {
        MaintenanceWindow {
            name: name.into(),
            starts: Recurrence::parse(cron, TOKYO).unwrap(),
            duration: Duration::from_secs(hours * 3600),
            matchers: Vec::new(),
        }
    }

    fn jst(m: u32, d: u32, h: u32, min: u32) -> Timestamp {
        let naive = NaiveDate::from_ymd_opt(2026, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap();
        Timestamp(
            TOKYO
                .from_local_datetime(&naive)
                .unwrap()
                .timestamp_millis(),
        )
    }

    #[test]
    fn weekly_sunday_two_to_four() {
        let w = window("weekly", "0 2 * * SUN", 2);
        // 2026-03-08 is a Sunday.
        let open = jst(3, 8, 2, 0);
        let close = jst(3, 8, 4, 0);
        assert_eq!(w.active(Timestamp(open.0 - 1)), None, "just before");
        let s = w.active(open).expect("open at 02:00");
        assert_eq!(s.id, format!("maintenance:weekly:{}", open.0));
        assert_eq!((s.starts_at, s.ends_at), (open, close));
        assert_eq!(s.created_by, "maintenance");
        assert!(s.comment.contains("\"weekly\""), "{}", s.comment);
        assert_eq!(w.active(jst(3, 8, 3, 59)), Some(s.clone()), "inside");
        assert_eq!(w.active(Timestamp(close.0 - 1)), Some(s));
        assert_eq!(w.active(close), None, "closed at 04:00");
        assert_eq!(w.active(jst(3, 9, 2, 30)), None, "Monday");
        assert_eq!(w.active(jst(3, 7, 2, 30)), None, "Saturday");
    }

    #[test]
    fn monthly_first_sunday_one_to_five() {
        let w = window("monthly", "0 1 * * SUN#1", 4);
        // April 2026: the first Sunday is the 5th; the 12th is the second.
        assert_eq!(w.active(jst(4, 5, 0, 59)), None, "just before");
        let s = w.active(jst(4, 5, 1, 0)).expect("open at 01:00");
        assert_eq!((s.starts_at, s.ends_at), (jst(4, 5, 1, 0), jst(4, 5, 5, 0)));
        assert!(w.active(jst(4, 5, 4, 59)).is_some(), "inside");
        assert_eq!(w.active(jst(4, 5, 5, 0)), None, "after");
        assert_eq!(w.active(jst(4, 12, 2, 0)), None, "second Sunday");
        assert_eq!(w.active(jst(3, 29, 2, 0)), None, "last Sunday of March");
    }

    #[test]
    fn next_change_is_the_next_open_or_close() {
        let w = window("weekly", "0 2 * * SUN", 2);
        assert_eq!(w.next_change(jst(3, 5, 12, 0)), Some(jst(3, 8, 2, 0)));
        assert_eq!(w.next_change(jst(3, 8, 2, 0)), Some(jst(3, 8, 4, 0)));
        assert_eq!(w.next_change(jst(3, 8, 3, 0)), Some(jst(3, 8, 4, 0)));
        assert_eq!(w.next_change(jst(3, 8, 4, 0)), Some(jst(3, 15, 2, 0)));

        // Windows longer than the period: the next opening comes first.
        let hourly = window("hourly", "0 * * * *", 2);
        assert_eq!(hourly.next_change(jst(3, 8, 2, 30)), Some(jst(3, 8, 3, 0)));
        assert_eq!(
            hourly.active(jst(3, 8, 3, 0)).unwrap().starts_at,
            jst(3, 8, 3, 0)
        );
    }

    #[test]
    fn an_empty_match_list_silences_every_alert_and_validates() {
        let w = window("weekly", "0 2 * * SUN", 2);
        let s = w.active(jst(3, 8, 3, 0)).unwrap();
        assert_eq!(s.validate(), Ok(()));
        let any = Labels::from_pairs([("alertname", "CPU使用率異常"), ("severity", "critical")]);
        assert!(s.silences(&any, jst(3, 8, 3, 0)));
        assert!(!s.silences(&any, jst(3, 8, 4, 0)), "not after it ends");

        let only_bots = MaintenanceWindow {
            matchers: vec![Matcher::parse("host=~bot-.*").unwrap()],
            ..w
        };
        let s = only_bots.active(jst(3, 8, 3, 0)).unwrap();
        let db = Labels::from_pairs([("alertname", "x"), ("host", "db-1")]);
        let bot = Labels::from_pairs([("alertname", "x"), ("host", "bot-1")]);
        assert!(!s.silences(&db, jst(3, 8, 3, 0)));
        assert!(s.silences(&bot, jst(3, 8, 3, 0)));
    }
}
