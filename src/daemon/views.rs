//! What people look at besides the alerts (the web UI's rules and status pages):
//! each rule with its alerts by state, the `for` progress of its pending ones and its
//! last evaluation; each channel with what it owes and how its last sends went.
//! Plain data, copied out with the core locked; nothing here changes the state.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::Context;
use super::observed::{ChannelStatus, RuleEvaluation};
use super::state::Core;
use crate::alert::State;
use crate::clock::Timestamp;
use crate::labels::{Fingerprint, Labels};
use crate::rules::model::Hold;

/// One rule as the rules page shows it (Prometheus' `/rules` and `/alerts`, for
/// tocsin's language).
#[derive(Clone, Debug)]
pub struct RuleStatus {
    pub name: String,
    pub severity: &'static str,
    /// The condition as written, `for` clause included.
    pub condition: String,
    pub resolve_when: Option<String>,
    pub hold: Hold,
    pub path: PathBuf,
    pub line: usize,
    /// Its alerts that are not inactive, counted by state.
    pub states: BTreeMap<State, usize>,
    /// Its pending alerts, longest pending first.
    pub pending: Vec<PendingAlert>,
    /// When it was last evaluated and how long that took; `None` before the first.
    pub last_evaluation: Option<RuleEvaluation>,
}

/// A pending alert: its condition holds, but not yet for as long as `for` asks.
#[derive(Clone, Debug)]
pub struct PendingAlert {
    pub fingerprint: Fingerprint,
    pub labels: Labels,
    /// When the condition started holding.
    pub since: Timestamp,
    /// Evaluations in a row at which it held (`for N evaluations`).
    pub consecutive: u32,
    pub value_text: String,
}

/// The outcome of the last rules load or reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadStatus {
    pub at: Timestamp,
    /// The number of rules running after it.
    pub rules: usize,
    /// The diagnostics of a reload that was refused (the running rules stayed).
    pub refused: Option<String>,
}

/// The daemon as the status page shows it.
#[derive(Clone, Debug)]
pub struct Status {
    pub config_source: String,
    pub version: &'static str,
    pub opened_at: Timestamp,
    pub now: Timestamp,
    pub reload: ReloadStatus,
    pub channels: Vec<ChannelStatus>,
    /// `tocsin_escalations_overdue`, as the last evaluation counted it.
    pub escalations_overdue: i64,
    pub outbox_pending: usize,
    pub series: usize,
    /// Whether state changes can be made durable right now.
    pub store_ok: bool,
}

impl Core {
    /// Every rule, in the order of the rule set (file by file, as written).
    pub fn rule_statuses(&self) -> Vec<RuleStatus> {
        let rules = self.engine.rules().clone();
        let mut by_rule: HashMap<&str, (BTreeMap<State, usize>, Vec<PendingAlert>)> =
            HashMap::new();
        for a in self.engine.alerts() {
            if a.state == State::Inactive || a.external.is_some() {
                continue;
            }
            let (states, pending) = by_rule.entry(a.rule.as_str()).or_default();
            *states.entry(a.state).or_default() += 1;
            if a.state == State::Pending {
                pending.push(PendingAlert {
                    fingerprint: a.fingerprint,
                    labels: a.labels.clone(),
                    since: a.active_since.unwrap_or_default(),
                    consecutive: a.consecutive,
                    value_text: self.engine.value_text(a),
                });
            }
        }
        rules
            .alerts
            .iter()
            .map(|r| {
                let (states, mut pending) = by_rule.remove(r.name.as_str()).unwrap_or_default();
                pending.sort_by_key(|p| (p.since, p.fingerprint));
                RuleStatus {
                    name: r.name.clone(),
                    severity: r.severity.name(),
                    condition: r.condition.text.clone(),
                    resolve_when: r.resolve_when.as_ref().map(|c| c.text.clone()),
                    hold: r.condition.hold,
                    path: r.origin.path.clone(),
                    line: r.origin.line,
                    states,
                    pending,
                    last_evaluation: self.observed.evaluations.get(&r.name).copied(),
                }
            })
            .collect()
    }

    /// Every channel that is configured or has been used, with what it owes.
    pub fn channel_statuses(&self, configured: &[&'static str]) -> Vec<ChannelStatus> {
        let mut out = self.observed.channels.clone();
        for &c in configured {
            out.entry(c).or_insert_with(|| ChannelStatus {
                channel: c,
                ..ChannelStatus::default()
            });
        }
        for d in self.outbox.entries() {
            let c = d.address.channel();
            out.entry(c)
                .or_insert_with(|| ChannelStatus {
                    channel: c,
                    ..ChannelStatus::default()
                })
                .pending += 1;
        }
        out.into_values().collect()
    }
}

impl Core {
    /// The status page's view: where the config came from, the last reload, each
    /// configured or used channel with what it owes, overdue escalations, uptime.
    pub fn status(&self, ctx: &Context, now: Timestamp, reload: ReloadStatus) -> Status {
        let c = &ctx.config.channels;
        let configured: Vec<&'static str> = [
            (c.console.enabled, "console"),
            (c.slack.is_some(), "slack"),
            (c.email.is_some(), "email"),
            (c.sms.is_some(), "sms"),
            (c.sms.is_some(), "voice"),
            (!c.webhooks.is_empty(), "webhook"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        Status {
            config_source: ctx.config.source.to_string(),
            version: env!("CARGO_PKG_VERSION"),
            opened_at: ctx.opened_at,
            now,
            reload,
            channels: self.channel_statuses(&configured),
            escalations_overdue: ctx.metrics.escalations_overdue.get(),
            outbox_pending: self.outbox.len(),
            series: self.series.series_count(),
            store_ok: ctx.store_ok(),
        }
    }
}
