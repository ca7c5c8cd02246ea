//! Alertmanager's API v2, as Alertmanager 0.25's `api/v2/openapi.yaml` defines it,
//! for everything that reads an Alertmanager: amtool, Grafana's Alertmanager data
//! source, karma, bots. `GET /api/v2/status`, `/receivers`, `/alerts` (with
//! `filter`, `active`, `silenced`, `inhibited`, `unprocessed`, `receiver`),
//! `/alerts/groups`, `GET/POST /api/v2/silences`, `GET/DELETE /api/v2/silence/{id}`.
//! (`POST /api/v2/alerts`, the intake, is in `intake.rs`.)
//!
//! Silences are tocsin's own, the same objects `/api/v1/silences` shows. Receivers
//! are tocsin's escalation policies. How tocsin's states read as Alertmanager's:
//!
//! | tocsin | Alertmanager `status` |
//! |---|---|
//! | firing | `active` |
//! | acknowledged | `suppressed`, `silencedBy` and `inhibitedBy` empty; annotations `tocsin_acknowledged_by`, `…_at`, `…_via`, `tocsin_ack_note` |
//! | suppressed (silenced) | `suppressed`, `silencedBy` the silences' ids |
//! | pending | `unprocessed`: seen, not yet decided to notify |
//! | resolved, inactive | not listed (Alertmanager lists no resolved alert) |
//!
//! Every alert also carries `tocsin_state` and `tocsin_incident` annotations.
//! Refusals are a JSON string, as the spec's `BadRequest` is, so amtool prints them.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::intake::parse_time;
use super::{Caller, read_body};
use crate::alert::State as AlertState;
use crate::clock::Timestamp;
use crate::daemon::{AlertView, Daemon, OpError};
use crate::matcher::{MatchOp, Matcher};
use crate::silence::Silence;

/// An alert with no known end is shown ending this far ahead, as Alertmanager shows
/// an alert that was posted without `endsAt` (its default `resolve_timeout`).
const NO_END_SHOWN_AS: Duration = Duration::from_secs(300);

/// The Alertmanager release whose `api/v2/openapi.yaml` these handlers follow.
pub const ALERTMANAGER_API_VERSION: &str = "0.25.0";

/// A refusal as Alertmanager's API gives one: a status and a JSON string.
pub struct AmError(StatusCode, String);

impl AmError {
    fn bad(message: impl Into<String>) -> AmError {
        AmError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<OpError> for AmError {
    fn from(e: OpError) -> AmError {
        let status = match &e {
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Invalid(_) | OpError::Sample { .. } => StatusCode::BAD_REQUEST,
            OpError::Rejected(_) => StatusCode::CONFLICT,
            OpError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            OpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        AmError(status, e.to_string())
    }
}

impl From<super::ApiError> for AmError {
    fn from(e: super::ApiError) -> AmError {
        let message = e.body["error"]
            .as_str()
            .unwrap_or("bad request")
            .to_string();
        AmError(e.status, message)
    }
}

/// `GET /api/v2/status`. No cluster (tocsin's replicas share a database, not
/// gossip); `config.original` is the routing as an Alertmanager config, policies as
/// receivers, so `amtool config routes` reads it.
pub async fn status(State(daemon): State<Daemon>) -> Json<Value> {
    let config = daemon.config();
    let routing = &config.routing;
    let routes: Vec<Value> = routing
        .routes
        .iter()
        .map(|r| {
            let matchers: Vec<String> = r.matchers.iter().map(alertmanager_text).collect();
            json!({ "receiver": r.policy, "matchers": matchers })
        })
        .collect();
    let receivers: Vec<Value> = routing
        .policies
        .keys()
        .map(|name| json!({ "name": name }))
        .collect();
    let original = json!({
        "route": {
            "receiver": routing.default_policy,
            "group_by": routing.group_by,
            "group_wait": humantime::format_duration(routing.group_wait).to_string(),
            "routes": routes,
        },
        "receivers": receivers,
    });
    let original = format!(
        "# tocsin {}: escalation policies as Alertmanager receivers\n{}\n",
        env!("CARGO_PKG_VERSION"),
        serde_json::to_string_pretty(&original).unwrap_or_default()
    );
    Json(json!({
        "cluster": { "status": "disabled", "peers": [] },
        // The Alertmanager whose API this follows: clients (amtool, karma) pick
        // their behaviour by it. tocsin's own version is the revision.
        "versionInfo": {
            "version": ALERTMANAGER_API_VERSION,
            "revision": format!("tocsin-{}", env!("CARGO_PKG_VERSION")),
            "branch": "tocsin",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        },
        "config": { "original": original },
        "uptime": daemon.opened_at().to_rfc3339(),
    }))
}

/// A matcher as Alertmanager's config and API write it: the value always quoted.
fn alertmanager_text(m: &Matcher) -> String {
    let value = m
        .value()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("{}{}\"{value}\"", m.name(), m.op())
}

/// `GET /api/v2/receivers`: the escalation policies.
pub async fn receivers(State(daemon): State<Daemon>) -> Json<Value> {
    let names: Vec<Value> = daemon
        .config()
        .routing
        .policies
        .keys()
        .map(|name| json!({ "name": name }))
        .collect();
    Json(Value::Array(names))
}

/// The query of `GET /api/v2/alerts` and `/alerts/groups`.
struct AlertQuery {
    filter: Vec<Matcher>,
    active: bool,
    silenced: bool,
    unprocessed: bool,
    receiver: Option<Regex>,
}

impl AlertQuery {
    /// Reads the query string; unknown parameters are ignored, as Alertmanager does.
    fn parse(query: &[(String, String)]) -> Result<AlertQuery, AmError> {
        let mut q = AlertQuery {
            filter: Vec::new(),
            active: true,
            silenced: true,
            unprocessed: true,
            receiver: None,
        };
        for (key, value) in query {
            match key.as_str() {
                "filter" => q.filter.push(filter_matcher(value)?),
                "active" => q.active = boolean(key, value)?,
                "silenced" => q.silenced = boolean(key, value)?,
                // Nothing in tocsin inhibits another alert: `inhibited=false`
                // hides nothing, but a value that is not a boolean is refused.
                "inhibited" => {
                    boolean(key, value)?;
                }
                "unprocessed" => q.unprocessed = boolean(key, value)?,
                "receiver" if !value.is_empty() => {
                    let re = Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                        AmError::bad(format!("failed to parse receiver param: {e}"))
                    })?;
                    q.receiver = Some(re);
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// Whether an alert shown as `shown` is asked for (Alertmanager's `alertFilter`).
    fn wants(&self, view: &AlertView, shown: &Shown) -> bool {
        if !self.active && shown.state == "active"
            || !self.unprocessed && shown.state == "unprocessed"
            || !self.silenced && !shown.silenced_by.is_empty()
        {
            return false;
        }
        if let Some(re) = &self.receiver
            && !re.is_match(&view.policy)
        {
            return false;
        }
        self.filter
            .iter()
            .all(|m| m.matches_labels(&view.alert.labels))
    }
}

fn filter_matcher(text: &str) -> Result<Matcher, AmError> {
    let m = Matcher::parse_alertmanager(text).map_err(|e| AmError::bad(e.to_string()))?;
    Ok(m)
}

fn boolean(key: &str, value: &str) -> Result<bool, AmError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "no" | "n" | "off" => Ok(false),
        _ => Err(AmError::bad(format!(
            "{key} in query must be of type boolean: {value:?}"
        ))),
    }
}

/// An alert's Alertmanager status.
struct Shown {
    state: &'static str,
    silenced_by: Vec<String>,
}

/// How an alert reads in Alertmanager's terms; None for the states Alertmanager
/// would not list.
fn shown(view: &AlertView) -> Option<Shown> {
    let a = &view.alert;
    let (state, silenced_by) = match a.state {
        AlertState::Firing => ("active", Vec::new()),
        AlertState::Acknowledged => ("suppressed", Vec::new()),
        AlertState::Suppressed => ("suppressed", a.silenced_by.iter().cloned().collect()),
        AlertState::Pending => ("unprocessed", Vec::new()),
        AlertState::Inactive | AlertState::Resolved => return None,
    };
    Some(Shown { state, silenced_by })
}

/// `gettableAlert`.
fn gettable_alert(view: &AlertView, shown: &Shown, now: Timestamp) -> Value {
    let a = &view.alert;
    let mut annotations: BTreeMap<String, String> = view.annotations.clone();
    annotations.insert("tocsin_state".into(), a.state.name().into());
    if let Some(n) = a.incident {
        annotations.insert("tocsin_incident".into(), n.to_string());
    }
    if let Some(ack) = &a.ack {
        annotations.insert("tocsin_acknowledged_by".into(), ack.actor.clone());
        annotations.insert("tocsin_acknowledged_at".into(), ack.at.to_rfc3339());
        annotations.insert("tocsin_acknowledged_via".into(), ack.via.clone());
        if let Some(note) = &ack.note {
            annotations.insert("tocsin_ack_note".into(), note.clone());
        }
    }
    let external = a.external.as_ref();
    let starts_at = external
        .map(|e| e.starts_at)
        .or(a.fired_at)
        .or(a.active_since)
        .unwrap_or(now);
    let ends_at = external
        .and_then(|e| e.ends_at)
        .unwrap_or(now + NO_END_SHOWN_AS);
    let updated_at = [a.fired_at, a.active_since, a.ack.as_ref().map(|k| k.at)]
        .into_iter()
        .flatten()
        .chain(std::iter::once(starts_at))
        .max()
        .unwrap_or(starts_at);
    let mut alert = json!({
        "labels": a.labels.to_map(),
        "annotations": annotations,
        "receivers": [{ "name": view.policy }],
        "fingerprint": a.fingerprint.to_string(),
        "startsAt": starts_at.to_rfc3339(),
        "updatedAt": updated_at.to_rfc3339(),
        "endsAt": ends_at.to_rfc3339(),
        "status": {
            "state": shown.state,
            "silencedBy": shown.silenced_by,
            "inhibitedBy": [],
        },
    });
    if let Some(url) = external
        .and_then(|e| e.generator_url.as_deref())
        .filter(|u| !u.is_empty())
    {
        alert["generatorURL"] = json!(url);
    }
    alert
}

/// `GET /api/v2/alerts`.
pub async fn alerts(
    State(daemon): State<Daemon>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, AmError> {
    let q = AlertQuery::parse(&query)?;
    let now = daemon.now();
    let mut views = daemon.alerts().await;
    views.sort_by_key(|v| v.alert.fingerprint);
    let alerts: Vec<Value> = views
        .iter()
        .filter_map(|v| {
            let s = shown(v)?;
            q.wants(v, &s).then(|| gettable_alert(v, &s, now))
        })
        .collect();
    Ok(Json(Value::Array(alerts)))
}

/// `GET /api/v2/alerts/groups`: alerts grouped by receiver (policy) and the
/// `group_by` labels, as tocsin groups its messages.
pub async fn groups(
    State(daemon): State<Daemon>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, AmError> {
    let q = AlertQuery::parse(&query)?;
    let now = daemon.now();
    let group_by = daemon.config().routing.group_by.clone();
    let mut views = daemon.alerts().await;
    views.sort_by_key(|v| v.alert.fingerprint);
    let mut groups: BTreeMap<(String, BTreeMap<String, String>), Vec<Value>> = BTreeMap::new();
    for v in &views {
        let Some(s) = shown(v) else { continue };
        if !q.wants(v, &s) {
            continue;
        }
        let labels: BTreeMap<String, String> = group_by
            .iter()
            .filter_map(|l| Some((l.clone(), v.alert.labels.get(l)?.to_string())))
            .collect();
        groups
            .entry((v.policy.clone(), labels))
            .or_default()
            .push(gettable_alert(v, &s, now));
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|((receiver, labels), alerts)| {
            json!({ "labels": labels, "receiver": { "name": receiver }, "alerts": alerts })
        })
        .collect();
    Ok(Json(Value::Array(groups)))
}

/// `gettableSilence`.
fn gettable_silence(s: &Silence, now: Timestamp) -> Value {
    let matchers: Vec<Value> = s
        .matchers
        .iter()
        .map(|m| {
            json!({
                "name": m.name(),
                "value": m.value(),
                "isRegex": m.op().is_regex(),
                "isEqual": matches!(m.op(), MatchOp::Equal | MatchOp::Regex),
            })
        })
        .collect();
    json!({
        "id": s.id,
        "status": { "state": s.status(now).name() },
        "updatedAt": s.updated_at.unwrap_or(s.starts_at).to_rfc3339(),
        "matchers": matchers,
        "startsAt": s.starts_at.to_rfc3339(),
        "endsAt": s.ends_at.to_rfc3339(),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

/// `GET /api/v2/silences?filter=…`: active ones first (soonest end first), then
/// pending (soonest start first), then expired (latest end first), as Alertmanager
/// sorts them. A filter matcher selects silences that have the same matcher.
pub async fn silences(
    State(daemon): State<Daemon>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, AmError> {
    let mut filter = Vec::new();
    for (key, value) in &query {
        if key == "filter" {
            filter.push(filter_matcher(value)?);
        }
    }
    let now = daemon.now();
    let mut all: Vec<Silence> = daemon
        .silences()
        .await
        .into_iter()
        .filter(|s| filter.iter().all(|f| s.matchers.contains(f)))
        .collect();
    all.sort_by_key(|s| {
        use crate::silence::Status::*;
        match s.status(now) {
            Active => (0, s.ends_at.0),
            Pending => (1, s.starts_at.0),
            Expired => (2, -s.ends_at.0),
        }
    });
    Ok(Json(Value::Array(
        all.iter().map(|s| gettable_silence(s, now)).collect(),
    )))
}

/// `GET /api/v2/silence/{id}`.
pub async fn silence(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AmError> {
    let found = daemon.silences().await.into_iter().find(|s| s.id == id);
    match found {
        Some(s) => Ok(Json(gettable_silence(&s, daemon.now()))),
        None => Err(AmError(
            StatusCode::NOT_FOUND,
            format!("no silence with id {id}"),
        )),
    }
}

/// `DELETE /api/v2/silence/{id}`: expires it now.
pub async fn expire(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
) -> Result<StatusCode, AmError> {
    daemon.expire_silence(&id).await?;
    Ok(StatusCode::OK)
}

/// `postableSilence`. Unknown fields are refused: a field tocsin would drop
/// silently could be one the sender relies on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<PostableMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PostableMatcher {
    name: String,
    value: String,
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/v2/silences`: a new silence, or (with `id`) a change to one.
/// `{"silenceID": "…"}` names the silence that stands: the same id when it was
/// changed in place, a new one when the old had to be expired and replaced.
pub async fn post_silence(
    State(daemon): State<Daemon>,
    caller: Option<axum::Extension<Caller>>,
    body: axum::body::Body,
) -> Result<Json<Value>, AmError> {
    let bytes = read_body(body, daemon.config().server.body_limit).await?;
    let now = daemon.now();
    let (replaces, silence) = decode_silence(&bytes, now)?;
    // With tokens, the token's name is the creator, as on every write.
    let silence = match caller {
        Some(axum::Extension(Caller(name))) => Silence {
            created_by: name,
            ..silence
        },
        None => silence,
    };
    let standing = match replaces.filter(|id| !id.is_empty()) {
        Some(id) => daemon.update_silence(&id, silence).await?,
        None => {
            let silence = Silence {
                starts_at: silence.starts_at.max(now),
                ..silence
            };
            daemon.add_silence(silence).await?
        }
    };
    Ok(Json(json!({ "silenceID": standing.id })))
}

/// Decodes a `postableSilence` as of `now`: the silence (under a new id) and the
/// id of the one it changes, if any. Refused as Alertmanager refuses: no matcher,
/// an empty `createdBy` or `comment`, an end not after the start or in the past.
/// The start is as given: a change in place compares it with the silence's.
fn decode_silence(bytes: &[u8], now: Timestamp) -> Result<(Option<String>, Silence), AmError> {
    let posted: PostableSilence =
        serde_json::from_slice(bytes).map_err(|e| AmError::bad(format!("invalid silence: {e}")))?;
    if posted.created_by.is_empty() {
        return Err(AmError::bad("createdBy in body is required"));
    }
    if posted.comment.is_empty() {
        return Err(AmError::bad("comment in body is required"));
    }
    if posted.matchers.is_empty() {
        return Err(AmError::bad(
            "matchers in body should have at least 1 items",
        ));
    }
    let time = |text: &str, what: &str| -> Result<Timestamp, AmError> {
        parse_time(text)
            .map_err(|e| AmError::bad(format!("{what}: {e}")))?
            .ok_or_else(|| AmError::bad(format!("{what} is the zero time")))
    };
    let starts_at = time(&posted.starts_at, "startsAt")?;
    let ends_at = time(&posted.ends_at, "endsAt")?;
    if starts_at >= ends_at {
        return Err(AmError::bad(
            "Failed to create silence: start time must be before end time",
        ));
    }
    if ends_at < now {
        return Err(AmError::bad(
            "Failed to create silence: end time can't be in the past",
        ));
    }
    let matchers = posted
        .matchers
        .into_iter()
        .map(|m| {
            let op = match (m.is_regex, m.is_equal) {
                (false, true) => MatchOp::Equal,
                (false, false) => MatchOp::NotEqual,
                (true, true) => MatchOp::Regex,
                (true, false) => MatchOp::NotRegex,
            };
            Matcher::new(m.name, op, m.value).map_err(|e| AmError::bad(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let silence = Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers,
        starts_at,
        ends_at,
        created_by: posted.created_by,
        comment: posted.comment,
        updated_at: None,
    };
    Ok((posted.id, silence))
}
