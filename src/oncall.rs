//! On-call rotations: who is on call at a given time.
//!
//! Shifts are counted in local calendar days, handing off at a local wall clock time,
//! so a weekly rotation hands off at 09:00 every Monday in its time zone whatever
//! daylight saving does (a day across a change is 23 or 25 hours long).

use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::clock::Timestamp;

/// A rotation: `people` take turns, each for `shift`, handing off at `handoff`
/// local time, counted from `start` at `handoff` (the first person's first shift).
#[derive(Clone, Debug, PartialEq)]
pub struct Rotation {
    pub name: String,
    /// Person ids, in turn order.
    pub people: Vec<String>,
    pub time_zone: Tz,
    pub handoff: NaiveTime,
    /// A whole number of days (`1d` daily, `7d` weekly); config checks it.
    pub shift: Duration,
    pub start: NaiveDate,
}

const DAY_SECS: u64 = 24 * 60 * 60;

impl Rotation {
    /// The person on call at `now`; None before the first shift begins or with no
    /// people.
    pub fn on_call(&self, now: Timestamp) -> Option<&str> {
        if self.people.is_empty() {
            return None;
        }
        let utc = Utc
            .timestamp_millis_opt(now.0)
            .single()?
            .with_timezone(&self.time_zone);
        let local = utc.naive_local();
        // The local day whose hand-off began the current duty day: before the
        // hand-off time, that is still yesterday's.
        let mut duty_day = local.date();
        if local.time() < self.handoff {
            duty_day = duty_day.pred_opt()?;
        }
        let days = (duty_day - self.start).num_days();
        if days < 0 {
            return None;
        }
        let shift_days = (self.shift.as_secs() / DAY_SECS).max(1);
        let turn = (days as u64 / shift_days) % self.people.len() as u64;
        self.people.get(turn as usize).map(String::as_str)
    }
}

/// A change of shift: from `at`, `person` is on call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub at: Timestamp,
    pub person: String,
}

impl Rotation {
    /// The hand-offs after `from` up to `until` (inclusive), in order: each shift's
    /// start at `handoff` local time. A hand-off time that does not exist on its day
    /// (skipped by daylight saving) is taken at the first instant after the gap.
    pub fn handoffs(&self, from: Timestamp, until: Timestamp) -> Vec<Handoff> {
        let mut out = Vec::new();
        if self.people.is_empty() || until <= from {
            return out;
        }
        let Some(first) = Utc.timestamp_millis_opt(from.0).single() else {
            return out;
        };
        let shift_days = ((self.shift.as_secs() / DAY_SECS).max(1)) as i64;
        // The first shift start on or after the day before `from` (local), so a
        // hand-off later on `from`'s own day is not missed.
        let from_day = first.with_timezone(&self.time_zone).date_naive().pred_opt();
        let Some(from_day) = from_day else {
            return out;
        };
        let since_start = (from_day - self.start).num_days();
        let skip = if since_start <= 0 {
            0
        } else {
            (since_start + shift_days - 1) / shift_days * shift_days
        };
        let mut day = self.start + chrono::Days::new(skip as u64);
        loop {
            let local = day.and_time(self.handoff);
            let at = match self.time_zone.from_local_datetime(&local) {
                chrono::LocalResult::Single(t) => t,
                chrono::LocalResult::Ambiguous(t, _) => t,
                // In a daylight-saving gap: an hour later is past it.
                chrono::LocalResult::None => {
                    let later = local + chrono::Duration::hours(1);
                    match self.time_zone.from_local_datetime(&later).earliest() {
                        Some(t) => t,
                        None => break,
                    }
                }
            };
            let at = Timestamp(at.timestamp_millis());
            if at > until {
                break;
            }
            if at > from
                && let Some(person) = self.on_call(at)
            {
                out.push(Handoff {
                    at,
                    person: person.to_string(),
                });
            }
            day = match day.checked_add_days(chrono::Days::new(shift_days as u64)) {
                Some(d) => d,
                None => break,
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(tz: &str) -> Rotation {
        Rotation {
            name: "primary".into(),
            people: vec!["tanaka".into(), "suzuki".into()],
            time_zone: tz.parse().unwrap(),
            handoff: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            shift: Duration::from_secs(7 * DAY_SECS),
            // A Monday.
            start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
        }
    }

    fn local(r: &Rotation, y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> Timestamp {
        let naive = NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, s)
            .unwrap();
        let t = r.time_zone.from_local_datetime(&naive).earliest().unwrap();
        Timestamp(t.timestamp_millis())
    }

    #[test]
    fn weekly_rotation_in_tokyo() {
        let r = weekly("Asia/Tokyo");
        let at = |m, d, h, min, s| r.on_call(local(&r, 2026, m, d, h, min, s));
        assert_eq!(at(1, 5, 9, 0, 0), Some("tanaka"), "first shift begins");
        assert_eq!(at(1, 8, 3, 0, 0), Some("tanaka"));
        assert_eq!(
            at(1, 12, 8, 59, 59),
            Some("tanaka"),
            "last second of week 1"
        );
        assert_eq!(
            at(1, 12, 9, 0, 0),
            Some("suzuki"),
            "hand-off exactly at 09:00"
        );
        assert_eq!(at(1, 19, 8, 59, 59), Some("suzuki"));
        assert_eq!(at(1, 19, 9, 0, 0), Some("tanaka"), "and back");
        // Week 10 from the start (even): tanaka again; week 11: suzuki.
        assert_eq!(at(3, 16, 12, 0, 0), Some("tanaka"));
        assert_eq!(at(3, 23, 12, 0, 0), Some("suzuki"));
    }

    #[test]
    fn hand_off_is_at_local_time_not_utc() {
        let r = weekly("Asia/Tokyo");
        // 2026-01-12 09:00 JST is 00:00 UTC: a millisecond before, still tanaka.
        let handoff = Timestamp::from_secs(1_768_176_000);
        assert_eq!(handoff, local(&r, 2026, 1, 12, 9, 0, 0));
        assert_eq!(r.on_call(Timestamp(handoff.0 - 1)), Some("tanaka"));
        assert_eq!(r.on_call(handoff), Some("suzuki"));
    }

    #[test]
    fn handoffs_over_two_weeks_in_tokyo() {
        let r = weekly("Asia/Tokyo");
        let from = local(&r, 2026, 1, 10, 12, 0, 0);
        let until = local(&r, 2026, 1, 24, 12, 0, 0);
        let got = r.handoffs(from, until);
        assert_eq!(
            got,
            vec![
                Handoff {
                    at: local(&r, 2026, 1, 12, 9, 0, 0),
                    person: "suzuki".into()
                },
                Handoff {
                    at: local(&r, 2026, 1, 19, 9, 0, 0),
                    person: "tanaka".into()
                },
            ]
        );
        // A hand-off exactly at `from` is not ahead of it; one exactly at `until` is.
        let at = local(&r, 2026, 1, 12, 9, 0, 0);
        assert_eq!(r.handoffs(at, until).len(), 1);
        assert_eq!(r.handoffs(from, at).len(), 1);
    }

    #[test]
    fn handoffs_start_with_the_rotation() {
        let r = weekly("Asia/Tokyo");
        let got = r.handoffs(
            local(&r, 2025, 12, 20, 0, 0, 0),
            local(&r, 2026, 1, 13, 0, 0, 0),
        );
        let people: Vec<&str> = got.iter().map(|h| h.person.as_str()).collect();
        assert_eq!(people, ["tanaka", "suzuki"]);
        assert_eq!(got[0].at, local(&r, 2026, 1, 5, 9, 0, 0));
    }

    #[test]
    fn daily_handoffs_keep_local_time_across_daylight_saving() {
        let r = Rotation {
            people: vec!["a".into(), "b".into()],
            shift: Duration::from_secs(DAY_SECS),
            start: NaiveDate::from_ymd_opt(2026, 3, 6).unwrap(),
            ..weekly("America/New_York")
        };
        let got = r.handoffs(
            local(&r, 2026, 3, 6, 10, 0, 0),
            local(&r, 2026, 3, 8, 10, 0, 0),
        );
        assert_eq!(
            got.iter().map(|h| h.at).collect::<Vec<_>>(),
            [
                local(&r, 2026, 3, 7, 9, 0, 0),
                local(&r, 2026, 3, 8, 9, 0, 0)
            ]
        );
        // 23 hours apart: the clocks moved forward in between.
        assert_eq!(got[1].at.since(got[0].at), Duration::from_secs(23 * 3600));
    }

    #[test]
    fn nobody_before_the_start() {
        let r = weekly("Asia/Tokyo");
        assert_eq!(
            r.on_call(local(&r, 2026, 1, 4, 12, 0, 0)),
            None,
            "day before"
        );
        assert_eq!(
            r.on_call(local(&r, 2026, 1, 5, 8, 59, 59)),
            None,
            "start day, before the hand-off"
        );
        let nobody = Rotation {
            people: Vec::new(),
            ..weekly("Asia/Tokyo")
        };
        assert_eq!(nobody.on_call(local(&r, 2026, 2, 1, 12, 0, 0)), None);
    }

    #[test]
    fn daily_rotation_keeps_local_hand_off_across_daylight_saving() {
        let r = Rotation {
            people: vec!["a".into(), "b".into(), "c".into()],
            shift: Duration::from_secs(DAY_SECS),
            start: NaiveDate::from_ymd_opt(2026, 3, 6).unwrap(),
            ..weekly("America/New_York")
        };
        // Clocks move forward on 2026-03-08; hand-offs stay at 09:00 local.
        let at = |d, h, min| r.on_call(local(&r, 2026, 3, d, h, min, 0));
        assert_eq!(at(6, 9, 0), Some("a"));
        assert_eq!(at(7, 9, 0), Some("b"));
        assert_eq!(at(8, 8, 59), Some("b"));
        assert_eq!(at(8, 9, 0), Some("c"));
        assert_eq!(at(9, 8, 59), Some("c"));
        assert_eq!(at(9, 9, 0), Some("a"));
    }
}
