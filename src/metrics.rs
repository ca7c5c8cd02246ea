//! tocsin's own metrics, for `/metrics` (prometheus-client renders the exposition
//! format). One `Metrics` per daemon, updated where the work happens.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::alert::State;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub samples_ingested: Counter,
    pub samples_refused: Family<Labels, Counter>,
    pub series: Gauge,
    pub evaluations: Counter,
    pub evaluation_seconds: Histogram,
    pub alerts: Family<Labels, Gauge>,
    pub notifications: Family<Labels, Counter>,
    pub delivery_failures: Family<Labels, Counter>,
    pub outbox_pending: Gauge,
    pub escalations_overdue: Gauge,
    pub external_alerts: Family<Labels, Counter>,
    pub alertmanager_truncated_alerts: Counter,
    pub rules: Gauge,
    pub rules_last_reload_success: Gauge,
    pub reloads: Family<Labels, Counter>,
    /// Refused credentials, by endpoint (route) and reason.
    pub auth_failures: Family<Labels, Counter>,
    /// What people asked for from Slack and by SMS, by source, command and outcome.
    pub inbound_commands: Family<Labels, Counter>,
    /// Alerts from other systems refused whole, by source and reason.
    pub external_alerts_refused: Family<Labels, Counter>,
    /// Inbound HTTP connections held now, and the most held at once.
    pub http_connections: Gauge,
    pub http_connection_limit: Gauge,
    /// Connections closed to make room at the limit, by kind (idle, busy).
    pub http_connections_shed: Family<Labels, Counter>,
    /// State-changing requests refused as cross-site, by reason.
    pub cross_site_refused: Family<Labels, Counter>,
    /// Resolved alerts forgotten past `storage.retention`, with their timelines.
    pub pruned_alerts: Counter,
    /// Writes a standby relayed to the replica that acts, by outcome (`answered`:
    /// whatever it answered; `no_holder`, `unreachable`, `broken`: answered 503
    /// or 502 here).
    pub writes_relayed: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tocsin");
        let m = Metrics {
            samples_ingested: Counter::default(),
            samples_refused: Family::default(),
            series: Gauge::default(),
            evaluations: Counter::default(),
            evaluation_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            alerts: Family::default(),
            notifications: Family::default(),
            delivery_failures: Family::default(),
            outbox_pending: Gauge::default(),
            escalations_overdue: Gauge::default(),
            external_alerts: Family::default(),
            alertmanager_truncated_alerts: Counter::default(),
            rules: Gauge::default(),
            rules_last_reload_success: Gauge::default(),
            reloads: Family::default(),
            auth_failures: Family::default(),
            inbound_commands: Family::default(),
            external_alerts_refused: Family::default(),
            http_connections: Gauge::default(),
            http_connection_limit: Gauge::default(),
            http_connections_shed: Family::default(),
            cross_site_refused: Family::default(),
            pruned_alerts: Counter::default(),
            writes_relayed: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "samples_ingested",
            "Samples accepted by ingestion",
            m.samples_ingested.clone(),
        );
        registry.register(
            "samples_refused",
            "Samples refused, by reason",
            m.samples_refused.clone(),
        );
        registry.register("series", "Series held in memory", m.series.clone());
        registry.register(
            "evaluations",
            "Rule evaluations of the whole rule set",
            m.evaluations.clone(),
        );
        registry.register(
            "evaluation_duration_seconds",
            "Time to evaluate the whole rule set",
            m.evaluation_seconds.clone(),
        );
        registry.register("alerts", "Alerts by state", m.alerts.clone());
        registry.register(
            "notifications",
            "Notifications by channel and reason",
            m.notifications.clone(),
        );
        registry.register(
            "delivery_failures",
            "Failed delivery attempts, by channel and kind (retry or permanent)",
            m.delivery_failures.clone(),
        );
        registry.register(
            "outbox_pending",
            "Messages owed and not yet delivered",
            m.outbox_pending.clone(),
        );
        registry.register(
            "escalations_overdue",
            "Firing, unacknowledged alerts with no escalation step ahead and no message in flight (must be 0)",
            m.escalations_overdue.clone(),
        );
        registry.register(
            "external_alerts_received",
            "Alerts received from other systems, by source",
            m.external_alerts.clone(),
        );
        registry.register(
            "alertmanager_truncated_alerts",
            "Alerts Alertmanager dropped from webhooks (max_alerts)",
            m.alertmanager_truncated_alerts.clone(),
        );
        registry.register("rules", "Alert rules loaded", m.rules.clone());
        registry.register(
            "pruned_alerts",
            "Resolved alerts pruned with their timelines past storage.retention",
            m.pruned_alerts.clone(),
        );
        registry.register(
            "rules_last_reload_success",
            "1 if the last rules reload succeeded, 0 if it failed and the old rules run on",
            m.rules_last_reload_success.clone(),
        );
        registry.register(
            "rules_reloads",
            "Rules reloads, by outcome",
            m.reloads.clone(),
        );
        m.rules_last_reload_success.set(1);
        registry.register(
            "auth_failures",
            "Requests refused for a missing or wrong credential (bearer token, Slack or Twilio signature), by endpoint and reason",
            m.auth_failures.clone(),
        );
        registry.register(
            "inbound_commands",
            "Commands from Slack and SMS, by source, command and outcome (done or refused)",
            m.inbound_commands.clone(),
        );
        registry.register(
            "external_alerts_refused",
            "Alerts from other systems refused whole (the request's alerts), by source and reason",
            m.external_alerts_refused.clone(),
        );
        registry.register(
            "http_connections",
            "Inbound HTTP connections held now",
            m.http_connections.clone(),
        );
        registry.register(
            "http_connection_limit",
            "Inbound HTTP connections held at most (server.max_connections, or fewer when file descriptors are fewer)",
            m.http_connection_limit.clone(),
        );
        registry.register(
            "http_connections_shed",
            "Connections closed to make room for a new one at the limit, by kind (idle: no request in progress; busy: the oldest request)",
            m.http_connections_shed.clone(),
        );
        registry.register(
            "cross_site_refused",
            "State-changing requests refused as possibly cross-site, by reason (origin, content_type)",
            m.cross_site_refused.clone(),
        );
        registry.register(
            "writes_relayed",
            "Writes a standby relayed to the replica that acts, by outcome (answered, no_holder, unreachable, broken)",
            m.writes_relayed.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Sets the per-state alert gauges from a full count (every state, zeros too,
    /// so a state that empties drops to 0 rather than keeping its last value).
    pub fn set_alert_states<'a>(&self, states: impl Iterator<Item = &'a State>) {
        let mut counts = [0i64; State::ALL.len()];
        for s in states {
            if let Some(i) = State::ALL.iter().position(|x| x == s) {
                counts[i] += 1;
            }
        }
        for (s, n) in State::ALL.iter().zip(counts) {
            self.alerts
                .get_or_create(&vec![("state".to_string(), s.name().to_string())])
                .set(n);
        }
    }

    pub fn label(key: &str, value: &str) -> Labels {
        vec![(key.to_string(), value.to_string())]
    }

    /// The exposition text (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
