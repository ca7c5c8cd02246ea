//! Who is told, through what, and when: people, groups, escalation policies and the
//! routes that pick a policy for an alert. Built from config; pure data.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::oncall::Rotation;
use crate::rules::model::ESCALATION_LABEL;

/// A person who can be paged, and how to reach them.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    /// The id used in config and recorded as the actor of their acks.
    pub id: String,
    /// Display name.
    pub name: String,
    pub email: Option<String>,
    /// E.164, for SMS and voice.
    pub phone: Option<String>,
    /// Slack user id (`U…`): direct messages, and who may ack from Slack.
    pub slack: Option<String>,
}

/// A team: people, and mailing lists that reach it (the seed's recipient groups).
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub id: String,
    pub members: Vec<String>,
    pub emails: Vec<String>,
}

/// People, groups and on-call rotations, by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directory {
    pub people: BTreeMap<String, Person>,
    pub groups: BTreeMap<String, Group>,
    pub schedules: BTreeMap<String, Rotation>,
}

impl Directory {
    /// The person with this Slack user id: who may ack from Slack.
    pub fn by_slack_user(&self, user: &str) -> Option<&Person> {
        self.people
            .values()
            .find(|p| p.slack.as_deref() == Some(user))
    }

    /// The person with this phone number: who may ack by SMS reply.
    pub fn by_phone(&self, phone: &str) -> Option<&Person> {
        self.people
            .values()
            .find(|p| p.phone.as_deref() == Some(phone))
    }
}

/// How a person is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Email,
    /// A Slack direct message (needs a bot token).
    Slack,
    Sms,
    Voice,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Email => "email",
            Method::Slack => "slack",
            Method::Sms => "sms",
            Method::Voice => "voice",
        }
    }
}

/// One thing a level notifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Person(String),
    /// Every member (by the level's methods) and the group's mailing lists.
    Group(String),
    /// Whoever is on call in this rotation when the level runs.
    Schedule(String),
    /// The Slack channel for the alert's severity (`#alerts-critical`, ...).
    SlackBySeverity,
    /// A named Slack channel.
    SlackChannel(String),
    /// An email address.
    Email(String),
    /// A configured webhook, by name.
    Webhook(String),
    Console,
}

/// One step of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// Since the alert fired (or resumed): when this level runs unless acked.
    pub after: Duration,
    pub targets: Vec<Target>,
    /// How the people among the targets are reached at this level.
    pub via: Vec<Method>,
}

/// An escalation policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub name: String,
    /// In order of `after`; the first usually runs at once.
    pub levels: Vec<Level>,
    /// While unacked after the last level, repeat it this often.
    pub repeat_interval: Duration,
    /// An ack older than this re-notifies if the alert still fires.
    pub ack_timeout: Option<Duration>,
    /// Where a message goes when its own channel keeps failing.
    pub fallback: Vec<Target>,
    /// SMS and voice only for alerts of these severities (the seed: critical).
    pub phone_severities: Vec<String>,
}

/// Picks a policy by labels; the first route that matches wins.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub matchers: Vec<Matcher>,
    pub policy: String,
}

/// The routing table, with the policy for alerts no route matches.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    pub routes: Vec<Route>,
    pub default_policy: String,
    pub policies: BTreeMap<String, Policy>,
    /// Alerts sharing these labels that fire within `group_wait` of each other go
    /// out as one message per address.
    pub group_by: Vec<String>,
    pub group_wait: Duration,
}

impl Routing {
    /// The policy for an alert with these labels: the one its rule names
    /// (`escalate "POLICY"`, or the `tocsin_escalation` label an exported rule
    /// carries) if it exists, else the first route that matches.
    pub fn policy_for(&self, labels: &Labels, named: Option<&str>) -> &Policy {
        let named = named.or_else(|| labels.get(ESCALATION_LABEL));
        if let Some(p) = named.and_then(|n| self.policies.get(n)) {
            return p;
        }
        let name = self
            .routes
            .iter()
            .find(|r| r.matchers.iter().all(|m| m.matches_labels(labels)))
            .map_or(&self.default_policy, |r| &r.policy);
        self.policies
            .get(name)
            .or_else(|| self.policies.get(&self.default_policy))
            .expect("config checks that every route names a policy and the default exists")
    }

    /// The grouping key of an alert: the values of the `group_by` labels. Alerts
    /// with the same key that fire within `group_wait` go out as one message.
    pub fn group_key(&self, labels: &Labels) -> String {
        self.group_by
            .iter()
            .map(|l| format!("{l}={}", labels.get(l).unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The embedded default: one level, the console, at once.
    pub fn console_only() -> Routing {
        let policy = Policy {
            name: "default".into(),
            levels: vec![Level {
                after: Duration::ZERO,
                targets: vec![Target::Console],
                via: Vec::new(),
            }],
            repeat_interval: Duration::from_secs(4 * 3600),
            ack_timeout: None,
            fallback: Vec::new(),
            phone_severities: vec!["critical".into()],
        };
        Routing {
            routes: Vec::new(),
            default_policy: "default".into(),
            policies: BTreeMap::from([("default".into(), policy)]),
            group_by: vec!["alertname".into()],
            group_wait: Duration::from_secs(30),
        }
    }
}
