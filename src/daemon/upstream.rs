//! The watch of the Alertmanagers tocsin silenced alerts in. A silence mutes
//! Alertmanager's webhook to tocsin as much as to anyone, and an alert that
//! resolves while muted is dropped from its group unannounced: its resolve never
//! reaches tocsin. So, every `watch_interval` while an ack holds a silence there,
//! tocsin asks which alerts that Alertmanager still holds, and resolves an acked
//! alert it no longer holds; the resolve expires the silence (an owed message like
//! any other) and tells whoever was paged.
//!
//! An Alertmanager that restarted has forgotten its alerts until their senders
//! send them again (Prometheus: within a minute), so an absence counts only if it
//! was running when the alert was acked, or has been for [`SETTLE`] since.

use std::time::Duration;

use super::pipeline::{self, Step};
use super::schedule::Due;
use super::state::Core;
use super::{Context, Daemon};
use crate::alert::Event;
use crate::clock::Timestamp;
use crate::engine::Outcome;
use crate::escalation::Address;
use crate::labels::Fingerprint;
use crate::notify::alertmanager::Held;

/// How long a restarted Alertmanager is given to be sent every alert that still
/// fires: Prometheus re-sends each one every minute, and lets one that was not
/// refreshed end after four.
const SETTLE: Duration = Duration::from_secs(300);

/// Asks Alertmanager `index` (in `[[channels.alertmanager]]`) what it still holds,
/// and resolves the acked alerts it silenced that it holds no more.
pub(super) async fn watch(daemon: Daemon, index: usize) {
    let Some(am) = daemon.config().channels.alertmanagers.get(index) else {
        return;
    };
    let name = am.name.clone();
    let answer = daemon.shared.channels.alertmanager_holds(&name).await;
    let done = daemon
        .with_core(move |ctx, core, now| {
            if let Some(last) = core.upstream_watched.get_mut(index) {
                *last = Some(now);
            }
            let committed = match answer {
                Ok(Some(held)) => {
                    let step = core.follow_upstream(ctx, index, &name, &held, now);
                    pipeline::commit(ctx, core, now, step)
                }
                // Recording channels: nothing to ask.
                Ok(None) => Ok(()),
                Err(e) => {
                    tracing::warn!(alertmanager = %name, error = %e, "cannot ask alertmanager which alerts it holds; asking again later");
                    Ok(())
                }
            };
            core.arm(ctx, Due::Upstream(index), now);
            committed
        })
        .await;
    if let Err(e) = done {
        tracing::error!(error = %e, "cannot record what alertmanager no longer holds");
    }
}

impl Core {
    /// The alerts whose ack holds a silence in Alertmanager `index`.
    pub fn upstream_held(&self, ctx: &Context, index: usize) -> Vec<Fingerprint> {
        let Some(am) = ctx.config.channels.alertmanagers.get(index) else {
            return Vec::new();
        };
        let address = Address::Alertmanager {
            name: am.name.clone(),
        };
        self.escalations
            .values()
            .filter(|e| e.notified.contains(&address))
            .map(|e| e.fingerprint)
            .collect()
    }

    /// Resolves the acked alerts silenced in Alertmanager `index` that it no
    /// longer holds, as their sender would have, and renews the silences of the
    /// others that end within half of `max_silence`.
    fn follow_upstream(
        &mut self,
        ctx: &Context,
        index: usize,
        name: &str,
        held: &Held,
        now: Timestamp,
    ) -> Step {
        let mut outcome = Outcome::default();
        let mut renew = Vec::new();
        let Some(am) = ctx.config.channels.alertmanagers.get(index) else {
            return Step::default();
        };
        let address = Address::Alertmanager {
            name: name.to_string(),
        };
        for fp in self.upstream_held(ctx, index) {
            let Some(alert) = self.engine.alert(fp) else {
                continue;
            };
            let Some(ack) = &alert.ack else {
                continue;
            };
            let knew_it = held
                .started_at
                .is_some_and(|started| started <= ack.at || started + SETTLE <= now);
            let group = alert
                .external
                .as_ref()
                .is_some_and(|e| e.group_key.is_some());
            if !knew_it || held.holds(fp, &alert.labels, group) {
                let ends = alert.incident.and_then(|n| held.silences_end.get(&n));
                // A call there still owed (a renewal that keeps failing) renews
                // it when it goes through: one is enough.
                let owed = self
                    .outbox
                    .entries()
                    .any(|d| d.alert.fingerprint == fp && d.address == address);
                if ends.is_some_and(|end| *end < now + am.max_silence / 2) && !owed {
                    renew.push((fp, address.clone()));
                }
                continue;
            }
            let resolve = Event::Resolve {
                actor: format!("alertmanager {name}"),
                note: Some("no longer firing there".into()),
            };
            if let Ok(o) = self.engine.apply(fp, &resolve, now) {
                outcome.absorb(o);
            }
        }
        Step {
            outcome,
            renew_upstream: renew,
            ..Step::default()
        }
    }

    /// When Alertmanager `index` is next asked: a watch interval after it was last
    /// asked (or after the first silence), while an ack holds a silence there.
    pub fn upstream_due(&self, ctx: &Context, index: usize, now: Timestamp) -> Option<Timestamp> {
        let am = ctx.config.channels.alertmanagers.get(index)?;
        if self.upstream_held(ctx, index).is_empty() {
            return None;
        }
        let armed = self.schedule.when(&Due::Upstream(index));
        let last = self.upstream_watched.get(index).copied().flatten();
        armed.or(Some(last.unwrap_or(now) + am.watch_interval))
    }
}
