//! Incident reports: the daily summary (last 24 h: fired, acked, resolved, time to
//! ack and to resolve) and the weekly report, computed from stored alerts and their
//! timelines, sent by email on schedule.

use std::time::Duration;

use crate::calendar::Recurrence;

/// One `[[reports]]` entry: what period it covers, when it is sent, to whom.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSchedule {
    /// `daily`, `weekly`, ... shown in the subject.
    pub name: String,
    pub when: Recurrence,
    /// The period covered, ending at the send time (24h, 7d).
    pub period: Duration,
    pub to: Vec<String>,
}
