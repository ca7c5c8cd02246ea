//! The console channel: one line per alert of a message on standard output, for the
//! embedded default and for trying tocsin out.

use std::io::Write;

use super::{AlertSnapshot, Message};
use crate::alert::NotifyReason;

/// The line printed for one alert of a message, e.g.
/// `FIRING #3 CPU使用率異常 [critical] {host="bot-1"} — bot-1 の CPU 使用率が 95% です`,
/// or `ACKED #3 by alice CPU使用率異常 …`.
pub fn line(reason: NotifyReason, level: u32, alert: &AlertSnapshot) -> String {
    let what = match reason {
        NotifyReason::Firing if level > 1 => format!("ESCALATED L{level}"),
        NotifyReason::Firing => "FIRING".to_string(),
        NotifyReason::Resolved => "RESOLVED".to_string(),
        NotifyReason::Acknowledged => "ACKED".to_string(),
        NotifyReason::Unacknowledged => "UNACKED".to_string(),
        NotifyReason::AckExpired => "ACK EXPIRED".to_string(),
        NotifyReason::SilenceEnded => "SILENCE ENDED".to_string(),
    };
    let mut id = alert
        .incident
        .map_or_else(|| alert.fingerprint.to_string(), |i| format!("#{i}"));
    // Who took it: `ACKED #1 by alice`.
    if let (NotifyReason::Acknowledged, Some(who)) = (reason, &alert.acked_by) {
        id.push_str(" by ");
        id.push_str(who);
    }
    let series = crate::labels::Labels::from_pairs(
        alert
            .labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity")),
    );
    let mut s = format!("{what} {id} {} [{}] {series}", alert.rule, alert.severity);
    if let Some(summary) = alert.annotations.get("summary") {
        s.push_str(" — ");
        s.push_str(summary);
    }
    s
}

pub fn send(msg: &Message) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not take the daemon down; the store has the state.
    for a in &msg.alerts {
        let _ = writeln!(out, "{}", line(msg.reason, msg.level, a));
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::State;
    use crate::labels::Fingerprint;

    fn snapshot() -> AlertSnapshot {
        AlertSnapshot {
            fingerprint: Fingerprint(0xb29dc9ba201e0e6d),
            incident: Some(1),
            rule: "異常API呼び出し".into(),
            severity: "critical".into(),
            labels: [("host", "bot-1"), ("alertname", "異常API呼び出し")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: Default::default(),
            state: State::Acknowledged,
            fired_at: None,
            resolved_at: None,
            acked_by: Some("alice".into()),
            acked_at: None,
            ack_note: None,
            resolved_by: None,
            resolve_note: None,
            generator_url: None,
        }
    }

    #[test]
    fn an_ack_says_who_took_it() {
        assert_eq!(
            line(NotifyReason::Acknowledged, 0, &snapshot()),
            r#"ACKED #1 by alice 異常API呼び出し [critical] {host="bot-1"}"#
        );
        let mut firing = snapshot();
        firing.acked_by = None;
        firing.state = State::Firing;
        assert_eq!(
            line(NotifyReason::Firing, 1, &firing),
            r#"FIRING #1 異常API呼び出し [critical] {host="bot-1"}"#
        );
    }
}
