//! What the core notices as it works, for the web UI's rules and status pages:
//! each rule's last evaluation, each channel's last success and failure. In memory
//! only (it describes this run); below `state`, so the core can keep it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::clock::Timestamp;

/// One evaluation of one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleEvaluation {
    pub at: Timestamp,
    pub took: Duration,
}

/// How one channel (`slack`, `email`, `sms`, ...) is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelStatus {
    pub channel: &'static str,
    /// Messages owed through it, not yet confirmed (waiting, retrying or in flight).
    pub pending: usize,
    pub last_success: Option<Timestamp>,
    pub last_failure: Option<Failure>,
}

/// A send that failed: when, and the channel's error (never a secret: channels
/// word their errors for the timeline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub at: Timestamp,
    pub error: String,
}

/// What the core remembers for these views, beside the state proper; in memory
/// only (it describes this run).
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Per rule name, its last evaluation.
    pub evaluations: HashMap<String, RuleEvaluation>,
    /// Per channel name, its last success and failure.
    pub channels: BTreeMap<&'static str, ChannelStatus>,
}

impl Observed {
    pub fn sent(&mut self, channel: &'static str, at: Timestamp) {
        self.channel(channel).last_success = Some(at);
    }

    pub fn failed(&mut self, channel: &'static str, at: Timestamp, error: String) {
        self.channel(channel).last_failure = Some(Failure { at, error });
    }

    fn channel(&mut self, channel: &'static str) -> &mut ChannelStatus {
        self.channels
            .entry(channel)
            .or_insert_with(|| ChannelStatus {
                channel,
                ..ChannelStatus::default()
            })
    }
}
