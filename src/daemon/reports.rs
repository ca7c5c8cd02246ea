//! Scheduled reports (the daily summary, the weekly report): each occurrence of a
//! report's schedule is a deadline; when it comes, the period it ends is summarised
//! from the alerts and their timelines and mailed. The run is recorded in the store,
//! so a restart neither skips nor repeats one; a failed send is retried five minutes
//! later.

use super::Daemon;
use super::schedule::Due;
use crate::alert::{Alert, TimelineEntry};
use crate::store::{Batch, Durability};

/// Sends report `index` for the occurrence of its schedule that is due now.
pub(super) async fn run(daemon: Daemon, index: usize) {
    let ctx = &daemon.shared.ctx;
    let Some(schedule) = ctx.config.reports.get(index) else {
        return;
    };
    let now = ctx.clock.now();
    let Some(due) = schedule.when.last_at_or_before(now) else {
        return;
    };
    let history = daemon
        .blocking(|d| {
            let alerts: Vec<Alert> = d
                .core()
                .engine
                .alerts()
                .filter(|a| a.incident.is_some())
                .cloned()
                .collect();
            alerts
                .into_iter()
                .map(|a| {
                    let t = d.shared.ctx.store.timeline(a.fingerprint)?;
                    Ok::<(Alert, Vec<TimelineEntry>), crate::store::StoreError>((a, t))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    let history = match history {
        Ok(Ok(h)) => h,
        _ => {
            tracing::error!(report = %schedule.name, "cannot read alert history for a report");
            finish(&daemon, index, false, due).await;
            return;
        }
    };
    let report = crate::report::summarize(&history, due - schedule.period, due)
        .with_retention(now - ctx.config.storage.retention);
    let sent = daemon
        .shared
        .channels
        .send_report(&schedule.name, &schedule.to, &report)
        .await;
    match &sent {
        Ok(_) => tracing::info!(report = %schedule.name, "report sent"),
        Err(e) => {
            tracing::warn!(error = %e, report = %schedule.name, "report not sent; retrying in 5 minutes")
        }
    }
    finish(&daemon, index, sent.is_ok(), due).await;
}

/// Records the outcome and arms the report's next deadline (its next occurrence,
/// or the retry).
async fn finish(daemon: &Daemon, index: usize, sent: bool, due: crate::clock::Timestamp) {
    let _ = daemon
        .blocking(move |d| {
            let ctx = &d.shared.ctx;
            // Read with the core locked, as in `Daemon::with_core`.
            let mut core = d.core();
            let now = ctx.clock.now();
            let name = ctx.config.reports[index].name.clone();
            if sent {
                let batch = Batch {
                    jobs: vec![(name.clone(), due)],
                    ..Default::default()
                };
                if let Err(e) = ctx.store.commit(&batch, Durability::Immediate) {
                    tracing::error!(error = %e, report = %name, "cannot record a sent report");
                }
                core.reports[index].last_ran = Some(due);
                core.reports[index].failed_at = None;
            } else {
                core.reports[index].failed_at = Some(now);
            }
            core.arm(ctx, Due::Report(index), now);
        })
        .await;
}
