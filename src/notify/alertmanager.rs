//! An Alertmanager that sends alerts to tocsin, told of acks: an ack becomes a
//! silence there matching exactly the acked alert's labels (the actor as
//! `createdBy`, the note as `comment`), and an unack, an ack that expired or a
//! resolve expires it. Its API v2: `GET/POST /api/v2/silences`,
//! `DELETE /api/v2/silence/{id}`, and `GET /api/v2/alerts` and `/silences` for
//! the watch. A silence is made for `max_silence`; an ack told again when less
//! than half of that is left (the watch asks) extends it in place.
//!
//! Deliveries are at least once, and Alertmanager has no idempotency key, so each
//! call first looks for the silence tocsin made: an active silence with exactly
//! the alert's labels as matchers whose comment ends with `(tocsin #N)`, N the
//! incident. A repeated ack finds it instead of making a second one; an expiry
//! expires whatever tocsin made for the incident, even one whose creation was
//! never confirmed.

use std::collections::{BTreeMap, HashMap, HashSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::webhook::{http_client, retry_after, transport_error};
use super::{AlertSnapshot, Delivered, Message, SendError};
use crate::alert::NotifyReason;
use crate::clock::Timestamp;
use crate::config::AlertmanagerSettings;
use crate::labels::Fingerprint;

/// What an Alertmanager holds, as its API says.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    /// When it started (its status' `uptime`): it knows only the alerts it was
    /// sent since.
    pub started_at: Option<Timestamp>,
    /// The alerts it has not resolved, silenced ones included.
    pub unresolved: HashSet<Fingerprint>,
    /// Their label sets, for group incidents (held while one alert of the group is).
    pub label_sets: Vec<BTreeMap<String, String>>,
    /// When the silences tocsin made there end, by incident (the latest when
    /// there are several): one ending soon is renewed while the ack stands.
    pub silences_end: HashMap<u64, Timestamp>,
}

impl Held {
    /// Whether it still holds an alert with exactly these labels (`group: false`)
    /// or one of the group with these labels (`group: true`).
    pub fn holds(&self, fp: Fingerprint, labels: &crate::labels::Labels, group: bool) -> bool {
        if !group {
            return self.unresolved.contains(&fp);
        }
        self.label_sets.iter().any(|set| {
            labels
                .iter()
                .all(|(k, v)| set.get(k).map(String::as_str) == Some(v))
        })
    }
}

pub struct Alertmanager {
    settings: AlertmanagerSettings,
    /// Built once: it keeps connections open between calls.
    client: Result<reqwest::Client, String>,
}

impl Alertmanager {
    pub fn new(settings: AlertmanagerSettings) -> Alertmanager {
        let client = http_client(settings.timeout);
        Alertmanager { settings, client }
    }

    /// Brings the silences there in line with the message: an ack makes (or keeps)
    /// the alert's silence, anything else expires it. The reference is what was
    /// done, for the alert's timeline.
    pub async fn send(&self, msg: &Message) -> Result<Delivered, SendError> {
        let mut done = Vec::new();
        for alert in &msg.alerts {
            let what = match msg.reason {
                NotifyReason::Acknowledged => self.silence(alert, msg).await?,
                _ => self.expire(alert).await?,
            };
            done.push(what);
        }
        Ok(Delivered {
            reference: Some(done.join("; ")),
        })
    }

    /// The alert's silence: found, brought up to date, or made.
    async fn silence(&self, alert: &AlertSnapshot, msg: &Message) -> Result<String, SendError> {
        let tag = tag(alert);
        let created_by = alert.acked_by.clone().unwrap_or_else(|| "tocsin".into());
        let note = alert
            .ack_note
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "acknowledged in tocsin".into());
        let comment = format!("{note} {tag}");
        let matchers: Vec<Value> = alert
            .labels
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value, "isRegex": false, "isEqual": true }))
            .collect();
        let mut body = json!({
            "matchers": matchers,
            "startsAt": msg.at.to_rfc3339(),
            "endsAt": (msg.at + self.settings.max_silence).to_rfc3339(),
            "createdBy": created_by,
            "comment": comment,
        });
        let mut verb = "created";
        if let Some(existing) = self.ours(alert).await?.into_iter().next() {
            let id = existing["id"].as_str().unwrap_or_default().to_string();
            let ends_at = existing["endsAt"].as_str().and_then(parse_time);
            // An ack that outlasts half of max_silence gets its silence renewed
            // (the watch asks), so it lasts until the alert resolves.
            let renew_by = msg.at + self.settings.max_silence / 2;
            let ending = ends_at.is_none_or(|end| end < renew_by);
            let same = existing["createdBy"] == body["createdBy"]
                && existing["comment"] == body["comment"];
            if same && !ending {
                return Ok(format!("silence {id} stands"));
            }
            // The same silence, changed in place: the same start and matchers, an
            // end no sooner, so Alertmanager keeps its id.
            body["id"] = json!(id);
            body["startsAt"] = existing["startsAt"].clone();
            if !ending {
                body["endsAt"] = existing["endsAt"].clone();
            }
            verb = if same { "extended" } else { "updated" };
        }
        let answer = self
            .call(reqwest::Method::POST, "/api/v2/silences", Some(&body))
            .await?;
        let id = answer["silenceID"].as_str().unwrap_or("?");
        Ok(format!("silence {id} {verb}"))
    }

    /// Expires every silence tocsin made for the alert's incident.
    async fn expire(&self, alert: &AlertSnapshot) -> Result<String, SendError> {
        let ours = self.ours(alert).await?;
        if ours.is_empty() {
            return Ok("no silence of tocsin's to expire".into());
        }
        let mut expired = Vec::new();
        for s in ours {
            let id = s["id"].as_str().unwrap_or_default();
            let path = format!("/api/v2/silence/{id}");
            self.call(reqwest::Method::DELETE, &path, None).await?;
            expired.push(format!("silence {id} expired"));
        }
        Ok(expired.join(", "))
    }

    /// The active or pending silences tocsin made for this alert's incident.
    async fn ours(&self, alert: &AlertSnapshot) -> Result<Vec<Value>, SendError> {
        let filter: Vec<(&str, String)> = alert
            .labels
            .iter()
            .map(|(name, value)| ("filter", format!("{name}=\"{}\"", quote(value))))
            .collect();
        let query = serde_urlencoded::to_string(&filter)
            .map_err(|e| SendError::permanent(format!("{}: {e}", self.what())))?;
        let listed = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v2/silences?{query}"),
                None,
            )
            .await?;
        let tag = tag(alert);
        let ours = listed
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["status"]["state"] != "expired")
            .filter(|s| s["comment"].as_str().is_some_and(|c| c.ends_with(&tag)))
            .filter(|s| exact_matchers(s, &alert.labels))
            .cloned()
            .collect();
        Ok(ours)
    }

    /// What Alertmanager holds now: when it started, and the fingerprints of the
    /// alerts it has not resolved, silenced ones included.
    pub async fn holds(&self) -> Result<Held, SendError> {
        let status = self
            .call(reqwest::Method::GET, "/api/v2/status", None)
            .await?;
        let started_at = status["uptime"].as_str().and_then(parse_time);
        let listed = self
            .call(reqwest::Method::GET, "/api/v2/alerts", None)
            .await?;
        let alerts = listed.as_array().map(Vec::as_slice).unwrap_or_default();
        let unresolved = alerts
            .iter()
            .filter_map(|a| a["fingerprint"].as_str()?.parse().ok())
            .collect();
        let label_sets = alerts
            .iter()
            .filter_map(|a| serde_json::from_value(a["labels"].clone()).ok())
            .collect();
        let silences = self
            .call(reqwest::Method::GET, "/api/v2/silences", None)
            .await?;
        let mut silences_end: HashMap<u64, Timestamp> = HashMap::new();
        for s in silences.as_array().map(Vec::as_slice).unwrap_or_default() {
            let incident = s["comment"].as_str().and_then(incident_of);
            let end = s["endsAt"].as_str().and_then(parse_time);
            if let (Some(incident), Some(end), false) =
                (incident, end, s["status"]["state"] == "expired")
            {
                let latest = silences_end.entry(incident).or_insert(end);
                *latest = (*latest).max(end);
            }
        }
        Ok(Held {
            started_at,
            unresolved,
            label_sets,
            silences_end,
        })
    }

    fn what(&self) -> String {
        format!("alertmanager {}", self.settings.name)
    }

    /// One call to the API; the JSON answer (`null` when there is none).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SendError> {
        let what = self.what();
        let client = self
            .client
            .as_ref()
            .map_err(|e| SendError::permanent(format!("{what}: {e}")))?;
        let url =
            reqwest::Url::parse(&format!("{}{path}", self.settings.url.expose())).map_err(|e| {
                SendError::permanent(format!("{what}: the configured url is invalid: {e}"))
            })?;
        let mut request = client.request(method.clone(), url);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = &self.settings.bearer {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&what, e, self.settings.timeout))?;
        let status = response.status();
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        // Alertmanager's refusals are a JSON string saying why.
        let why: String = serde_json::from_str::<String>(&text)
            .unwrap_or(text)
            .chars()
            .take(200)
            .collect();
        let reason = format!("{what}: {method} {}: HTTP {status}: {why}", path_only(path));
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            Err(SendError::Retry { reason, after })
        } else {
            Err(SendError::permanent(reason))
        }
    }
}

/// What marks a silence as tocsin's for an incident, at the end of its comment.
fn tag(alert: &AlertSnapshot) -> String {
    format!("(tocsin #{})", alert.incident.unwrap_or(0))
}

/// The incident a silence of tocsin's is for, from the end of its comment.
fn incident_of(comment: &str) -> Option<u64> {
    let rest = comment.strip_suffix(')')?;
    let (_, n) = rest.rsplit_once("(tocsin #")?;
    n.parse().ok()
}

/// An RFC 3339 time as Alertmanager writes it (in its local offset).
fn parse_time(text: &str) -> Option<Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(Timestamp(t.timestamp_millis()))
}

/// A label value inside a double-quoted matcher, as Alertmanager reads it.
fn quote(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whether a silence's matchers are exactly `name="value"` for every label.
fn exact_matchers(silence: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(matchers) = silence["matchers"].as_array() else {
        return false;
    };
    let equal = |m: &Value| m["isRegex"] == false && m["isEqual"] != false;
    matchers.len() == labels.len()
        && matchers.iter().all(|m| {
            equal(m)
                && m["name"]
                    .as_str()
                    .and_then(|n| labels.get(n))
                    .is_some_and(|v| m["value"] == v.as_str())
        })
}

/// The path without its query, for reasons (a filter repeats every label).
fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}
