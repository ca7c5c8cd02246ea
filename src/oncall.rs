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
