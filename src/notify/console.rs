//! The console channel: one line per notification on standard output, for the
//! embedded default and for trying tocsin out.

use std::collections::BTreeMap;
use std::io::Write;

use crate::alert::{Alert, NotifyReason};
use crate::engine::Notification;

/// The line printed for a notification, e.g.
/// `FIRING #3 CPU使用率異常 [critical] {host="bot-1"} — bot-1 の CPU 使用率が 95% です`.
pub fn line(alert: &Alert, n: &Notification, annotations: &BTreeMap<String, String>) -> String {
    let what = match n.reason {
        NotifyReason::Firing => "FIRING",
        NotifyReason::Resolved => "RESOLVED",
        NotifyReason::Acknowledged => "ACKED",
        NotifyReason::Unacknowledged => "UNACKED",
        NotifyReason::AckExpired => "ACK EXPIRED",
        NotifyReason::SilenceEnded => "SILENCE ENDED",
    };
    let id = n
        .incident
        .map_or_else(|| alert.fingerprint.to_string(), |i| format!("#{i}"));
    let severity = alert.labels.get("severity").unwrap_or("");
    let series = crate::labels::Labels::from_pairs(
        alert
            .labels
            .iter()
            .filter(|(k, _)| !matches!(*k, "alertname" | "severity")),
    );
    let mut s = format!("{what} {id} {} [{severity}] {series}", alert.rule);
    if let Some(summary) = annotations.get("summary") {
        s.push_str(" — ");
        s.push_str(summary);
    }
    s
}

pub fn send(alert: &Alert, n: &Notification, annotations: &BTreeMap<String, String>) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not take the daemon down; the store has the state.
    let _ = writeln!(out, "{}", line(alert, n, annotations));
    let _ = out.flush();
}
