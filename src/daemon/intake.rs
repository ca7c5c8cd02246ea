//! Alerts other systems evaluated (Alertmanager's webhook, Prometheus' `POST
//! /api/v2/alerts`), group-committed: a request queues its alerts, then waits for
//! the core. Whoever gets the core first takes every request queued by then into
//! one transaction, so requests that arrive during a commit's fsync share the next
//! one. Each caller returns once the commit that carried its alerts is durable.

use std::collections::HashMap;
use std::sync::Mutex;

use super::pipeline::{self, Step};
use super::state::Core;
use super::{Context, OpError};
use crate::clock::Timestamp;
use crate::engine::{ExternalAlert, Outcome};
use crate::store::StoreError;

/// External alerts waiting for the core.
#[derive(Default)]
pub(super) struct IntakeQueue {
    last_ticket: u64,
    waiting: Vec<(u64, Vec<ExternalAlert>)>,
    /// Outcomes of requests another caller committed, until their caller looks.
    done: HashMap<u64, Result<(), String>>,
}

impl IntakeQueue {
    /// Queues a request's alerts; its ticket names it until it is answered.
    pub fn queue(&mut self, alerts: Vec<ExternalAlert>) -> u64 {
        self.last_ticket += 1;
        self.waiting.push((self.last_ticket, alerts));
        self.last_ticket
    }
}

/// Commits the request `ticket` (and every other one waiting) with the core held.
/// The queue's lock is taken only briefly, never while committing.
pub(super) fn commit(
    ctx: &Context,
    core: &mut Core,
    queue: &Mutex<IntakeQueue>,
    ticket: u64,
    now: Timestamp,
) -> Result<(), OpError> {
    let lock = || queue.lock().unwrap_or_else(|e| e.into_inner());
    let taken = {
        let mut queue = lock();
        if let Some(done) = queue.done.remove(&ticket) {
            // Another caller committed it while this one waited for the core.
            return done.map_err(|e| StoreError::Shared(e).into());
        }
        std::mem::take(&mut queue.waiting)
    };
    let mut outcome = Outcome::default();
    let mut tickets = Vec::with_capacity(taken.len());
    for (t, alerts) in taken {
        tickets.push(t);
        for a in alerts {
            core.engine.receive_external(a, now, &mut outcome);
        }
    }
    let result = pipeline::commit(ctx, core, now, Step::from(outcome));
    let shared = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
    let mine = tickets.contains(&ticket);
    let mut queue = lock();
    for t in tickets.into_iter().filter(|t| *t != ticket) {
        queue.done.insert(t, shared.clone());
    }
    if !mine {
        // Taken by a caller that panicked before answering: not committed.
        return Err(StoreError::Shared("the commit carrying these alerts failed".into()).into());
    }
    result
}
