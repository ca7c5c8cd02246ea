//! Recurring times in a time zone ("every Sunday at 02:00 Asia/Tokyo", "the first
//! Sunday of the month at 01:00"), from cron expressions: maintenance windows and
//! scheduled reports are built on this.
//!
//! The expression is read on the wall clock of its time zone, so "02:00 every day"
//! stays at 02:00 local time across daylight saving changes. A time skipped by a
//! spring-forward gap fires at the first instant after the gap; a time repeated by a
//! fall-back fires once, at its first instant (croner's rules, as Vixie cron does).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::clock::Timestamp;

/// A cron expression read in a time zone.
#[derive(Clone, PartialEq)]
pub struct Recurrence {
    /// As written, for messages.
    pub expression: String,
    pub time_zone: Tz,
    cron: Cron,
}

impl fmt::Debug for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recurrence({:?} in {})", self.expression, self.time_zone)
    }
}

/// What the five fields are, for messages about a wrong count.
const FIELDS: &str = "minute hour day-of-month month day-of-week";

impl Recurrence {
    /// Parses a 5-field cron expression (minute hour day-of-month month
    /// day-of-week; `SUN#1` for the first Sunday) in `time_zone`. The error says
    /// what is wrong, in words fit for a config message.
    pub fn parse(expression: &str, time_zone: Tz) -> Result<Recurrence, String> {
        let fields = expression.split_whitespace().count();
        // Nicknames (`@daily`) are one word; anything else must be five fields, or
        // croner would read a sixth as seconds.
        if !expression.trim_start().starts_with('@') && fields != 5 {
            return Err(format!("expected 5 fields ({FIELDS}), found {fields}"));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| match wrong_field(expression) {
                Some((field, text, why)) => {
                    format!("{} {text:?}: {why}; expected {}", field.0, field.1)
                }
                None => cron_message(&e),
            })?;
        Ok(Recurrence {
            expression: expression.to_string(),
            time_zone,
            cron,
        })
    }

    /// The first occurrence strictly after `t`; `None` if there is none (a date
    /// that never comes, such as `0 0 31 2 *`).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        // Occurrences fall on whole seconds: from the second `t` is in, excluded,
        // every answer is after `t` itself.
        let from = self.local(t)?;
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        Some(Timestamp(next.timestamp_millis()))
    }

    /// The last occurrence at or before `t`; `None` if there is none.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let from = self.local(t)?;
        let last = self.cron.find_previous_occurrence(&from, true).ok()?;
        Some(Timestamp(last.timestamp_millis()))
    }

    /// `t`, cut to its whole second, in our time zone.
    fn local(&self, t: Timestamp) -> Option<DateTime<Tz>> {
        let secs = t.0.div_euclid(1000);
        let utc = Utc.timestamp_opt(secs, 0).single()?;
        Some(utc.with_timezone(&self.time_zone))
    }
}

impl fmt::Display for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.time_zone)
    }
}

/// The first field that is wrong on its own, with every other field `*`: croner's
/// messages do not say which field they are about.
fn wrong_field(expression: &str) -> Option<((&'static str, &'static str), &str, String)> {
    const NAMES: [(&str, &str); 5] = [
        ("minute", "0-59"),
        ("hour", "0-23"),
        ("day-of-month", "1-31 or L"),
        ("month", "1-12 or JAN-DEC"),
        (
            "day-of-week",
            "0-7 or SUN-SAT, SUN#1 for the first Sunday, SUN#L for the last",
        ),
    ];
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != NAMES.len() {
        return None;
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    (0..fields.len()).find_map(|i| {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { fields[j] } else { "*" })
            .collect();
        parser
            .parse(&alone.join(" "))
            .err()
            .map(|e| (NAMES[i], fields[i], cron_message(&e)))
    })
}

/// croner's messages ("Invalid pattern: Pattern must have …. ") in our style:
/// lowercase, no trailing period.
fn cron_message(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let text = match e {
        E::EmptyPattern => "the expression is empty".to_string(),
        // croner has already replaced names with numbers ("SUNDAY" → "0DAY") in
        // what it would quote.
        E::IllegalCharacters(_) => "not a cron value".to_string(),
        E::InvalidPattern(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::NaiveDate;

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    /// A local wall clock time in `tz` (the earlier instant if it is repeated).
    fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> Timestamp {
        let naive = NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap();
        let dt = tz.from_local_datetime(&naive).earliest().unwrap();
        Timestamp(dt.timestamp_millis())
    }

    fn utc(rfc3339: &str) -> Timestamp {
        Timestamp(
            DateTime::parse_from_rfc3339(rfc3339)
                .unwrap()
                .timestamp_millis(),
        )
    }

    #[test]
    fn weekly_in_tokyo() {
        let tokyo = tz("Asia/Tokyo");
        let r = Recurrence::parse("0 2 * * SUN", tokyo).unwrap();
        // 2026-03-01 is a Sunday.
        let sunday_2am = at(tokyo, 2026, 3, 1, 2, 0);
        assert_eq!(sunday_2am, utc("2026-02-28T17:00:00Z"));
        assert_eq!(
            r.next_after(at(tokyo, 2026, 2, 26, 12, 0)),
            Some(sunday_2am)
        );
        // Strictly after: the occurrence itself gives the next week's.
        assert_eq!(r.next_after(sunday_2am), Some(at(tokyo, 2026, 3, 8, 2, 0)));
        assert_eq!(
            r.next_after(Timestamp(sunday_2am.0 - 1)),
            Some(sunday_2am),
            "a millisecond before"
        );
        // At or before: the occurrence itself counts.
        assert_eq!(r.last_at_or_before(sunday_2am), Some(sunday_2am));
        assert_eq!(
            r.last_at_or_before(Timestamp(sunday_2am.0 - 1)),
            Some(at(tokyo, 2026, 2, 22, 2, 0))
        );
        assert_eq!(
            r.last_at_or_before(Timestamp(sunday_2am.0 + 999)),
            Some(sunday_2am)
        );
    }

    #[test]
    fn first_sunday_of_the_month() {
        let tokyo = tz("Asia/Tokyo");
        let r = Recurrence::parse("0 1 * * SUN#1", tokyo).unwrap();
        // March 2026: Sunday the 1st; April: Sunday the 5th; May: the 3rd.
        let t = at(tokyo, 2026, 3, 1, 0, 59);
        assert_eq!(r.next_after(t), Some(at(tokyo, 2026, 3, 1, 1, 0)));
        assert_eq!(
            r.next_after(at(tokyo, 2026, 3, 1, 1, 0)),
            Some(at(tokyo, 2026, 4, 5, 1, 0))
        );
        assert_eq!(
            r.last_at_or_before(at(tokyo, 2026, 5, 2, 23, 0)),
            Some(at(tokyo, 2026, 4, 5, 1, 0))
        );
    }

    #[test]
    fn new_york_across_daylight_saving() {
        let ny = tz("America/New_York");
        let daily = Recurrence::parse("0 9 * * *", ny).unwrap();
        // 2026-03-08: clocks go from 02:00 EST to 03:00 EDT. 09:00 stays 09:00 local,
        // so the UTC time moves by an hour.
        assert_eq!(
            daily.next_after(utc("2026-03-07T15:00:00Z")),
            Some(utc("2026-03-08T13:00:00Z"))
        );
        assert_eq!(
            daily.last_at_or_before(utc("2026-03-08T13:59:00Z")),
            Some(utc("2026-03-08T13:00:00Z"))
        );
        assert_eq!(
            daily.last_at_or_before(utc("2026-03-08T12:59:00Z")),
            Some(utc("2026-03-07T14:00:00Z"))
        );

        // 02:30 does not exist that day: it fires at the first instant after the gap.
        let in_gap = Recurrence::parse("30 2 * * *", ny).unwrap();
        assert_eq!(
            in_gap.next_after(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T07:00:00Z")),
            "03:00 EDT"
        );
        assert_eq!(
            in_gap.next_after(utc("2026-03-08T07:00:00Z")),
            Some(utc("2026-03-09T06:30:00Z"))
        );

        // 2026-11-01: 01:00–02:00 happens twice. 01:30 fires once, the first time.
        let in_overlap = Recurrence::parse("30 1 * * *", ny).unwrap();
        let first = utc("2026-11-01T05:30:00Z"); // 01:30 EDT
        assert_eq!(
            in_overlap.next_after(utc("2026-11-01T04:00:00Z")),
            Some(first)
        );
        assert_eq!(
            in_overlap.next_after(first),
            Some(utc("2026-11-02T06:30:00Z")),
            "not again at 01:30 EST"
        );
        assert_eq!(
            in_overlap.last_at_or_before(utc("2026-11-01T06:45:00Z")),
            Some(first),
            "during the repeated hour, the last one is the first pass"
        );
    }

    #[test]
    fn a_date_that_never_comes_has_no_occurrence() {
        let r = Recurrence::parse("0 0 31 2 *", Tz::UTC).unwrap();
        assert_eq!(r.next_after(Timestamp(0)), None);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let err = |e: &str| Recurrence::parse(e, Tz::UTC).unwrap_err();
        assert_eq!(
            err("0 2 * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week), found 4"
        );
        assert_eq!(
            err("0 0 2 * * SUN"),
            "expected 5 fields (minute hour day-of-month month day-of-week), found 6"
        );
        assert_eq!(
            err(""),
            "expected 5 fields (minute hour day-of-month month day-of-week), found 0"
        );
        assert_eq!(
            err("0 25 * * *"),
            "hour \"25\": number out of bounds; expected 0-23"
        );
        assert_eq!(
            err("0 2 * * SUNDAY"),
            "day-of-week \"SUNDAY\": not a cron value; expected 0-7 or SUN-SAT, \
             SUN#1 for the first Sunday, SUN#L for the last"
        );
        assert_eq!(
            err("0 1 * * SUN#6"),
            "day-of-week \"SUN#6\": nth specifier out of bounds; expected 0-7 or \
             SUN-SAT, SUN#1 for the first Sunday, SUN#L for the last"
        );
        assert!(Recurrence::parse("@daily", Tz::UTC).is_ok());
        assert!(Recurrence::parse("0 1 * * SUN#L", Tz::UTC).is_ok());
    }
}
