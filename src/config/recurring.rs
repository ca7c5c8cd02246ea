//! Time zones, cron expressions, and the sections built on them: `[[maintenance]]`
//! windows and `[[reports]]`.

use std::collections::HashMap;

use chrono_tz::Tz;
use toml::Spanned;

use super::compile::Compiler;
use super::raw::{RawMaintenance, RawReport, Str};
use crate::calendar::Recurrence;
use crate::maintenance::MaintenanceWindow;
use crate::report::ReportSchedule;

impl Compiler<'_> {
    /// An IANA time zone (`Asia/Tokyo`); UTC when not given.
    pub(super) fn time_zone(&mut self, value: &Str, key: &str) -> Option<Tz> {
        let Some(value) = value else {
            return Some(Tz::UTC);
        };
        let text = self.text(value, key)?;
        let text = text.trim();
        if let Ok(tz) = text.parse::<Tz>() {
            return Some(tz);
        }
        let names = || chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
        let suggestion = names()
            .find(|n| n.eq_ignore_ascii_case(text))
            .or_else(|| crate::rules::suggest(text, names()));
        let hint = match suggestion {
            Some(s) => format!(" (did you mean {s:?}?)"),
            None => ", expected an IANA name such as \"Asia/Tokyo\" or \"UTC\"".to_string(),
        };
        self.report(
            value.span(),
            format!("{key}: unknown time zone {text:?}{hint}"),
        );
        None
    }

    /// A 5-field cron expression read in `tz`.
    pub(super) fn recurrence(
        &mut self,
        value: &Spanned<String>,
        tz: Tz,
        key: &str,
    ) -> Option<Recurrence> {
        let text = self.text(value, key)?;
        match Recurrence::parse(text.trim(), tz) {
            // A date that never comes (`0 0 31 2 *`) would quietly never open a
            // window or send a report. Searched from a fixed instant: checking stays
            // a pure function of the file.
            Ok(r) if r.next_after(crate::clock::Timestamp(0)).is_none() => {
                self.report(
                    value.span(),
                    format!("{key}: cron expression {:?} never occurs", text.trim()),
                );
                None
            }
            Ok(r) => Some(r),
            Err(why) => {
                self.report(
                    value.span(),
                    format!("{key}: invalid cron expression {:?}: {why}", text.trim()),
                );
                None
            }
        }
    }

    pub(super) fn maintenance(&mut self, raw: &[RawMaintenance]) -> Vec<MaintenanceWindow> {
        let mut names = HashMap::new();
        let mut windows = Vec::new();
        for (i, m) in raw.iter().enumerate() {
            let key = |field: &str| format!("maintenance[{i}].{field}");
            let name = self.unique_name(&m.name, &key("name"), "maintenance", &mut names);
            let tz = self.time_zone(&m.time_zone, &key("time_zone"));
            let starts = tz.and_then(|tz| self.recurrence(&m.start, tz, &key("start")));
            let duration = self.parse_duration(&Some(m.duration.clone()), &key("duration"));
            let matchers = self.matchers(&m.matchers, &key("match"));
            let (Some(name), Some(starts), Some(duration), Some(matchers)) =
                (name, starts, duration, matchers)
            else {
                continue;
            };
            let window = MaintenanceWindow {
                name,
                starts,
                duration,
                matchers,
            };
            // The window becomes a silence; refuse here what a silence would refuse
            // (matchers that all match the empty string) rather than at 02:00 on a
            // Sunday. An empty list is fine: it stands for every alert.
            if !window.matchers.is_empty()
                && let Err(why) = window.silence(crate::clock::Timestamp(0)).validate()
            {
                let span = m.matchers[0].span();
                self.report(span, format!("{}: {why}", key("match")));
                continue;
            }
            windows.push(window);
        }
        windows
    }

    pub(super) fn reports(&mut self, raw: &[RawReport], has_email: bool) -> Vec<ReportSchedule> {
        let mut names = HashMap::new();
        let mut reports = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let key = |field: &str| format!("reports[{i}].{field}");
            let name = self.unique_name(&r.name, &key("name"), "report", &mut names);
            let tz = self.time_zone(&r.time_zone, &key("time_zone"));
            let when = tz.and_then(|tz| self.recurrence(&r.at, tz, &key("at")));
            let period = self.parse_duration(&Some(r.period.clone()), &key("period"));
            let mut to = Vec::new();
            let mut to_ok = true;
            for (j, address) in r.to.get_ref().iter().enumerate() {
                match self.email_address(address, &format!("{}[{j}]", key("to"))) {
                    Some(a) => to.push(a),
                    None => to_ok = false,
                }
            }
            if r.to.get_ref().is_empty() {
                self.report(
                    r.to.span(),
                    format!("{}: a report needs at least one address", key("to")),
                );
                to_ok = false;
            } else if !has_email {
                self.report(
                    r.to.span(),
                    format!(
                        "{}: reports are sent by email, which needs [channels.email]",
                        key("to")
                    ),
                );
                to_ok = false;
            }
            if let (Some(name), Some(when), Some(period), true) = (name, when, period, to_ok) {
                reports.push(ReportSchedule {
                    name,
                    when,
                    period,
                    to,
                });
            }
        }
        reports
    }
}
