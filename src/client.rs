//! The CLI's client side: `tocsin alerts`, `ack`, `unack`, `resolve`, `silence ...`
//! over the HTTP API. Formatting for people lives here too; `main.rs` only parses
//! flags.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::matcher::Matcher;

/// Where the daemon is and how to authenticate. The token is never printed.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with a refusal: its JSON reason.
    #[error("{0}")]
    Refused(String),
    #[error(
        "cannot reach {base}: {reason}\nhint: is `tocsin serve` running there? Point --server (or TOCSIN_SERVER) at its address"
    )]
    Unreachable { base: String, reason: String },
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: crate::tls::http_client()
                .build()
                .expect("a plain client builds"),
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            base: self.base.clone(),
            reason: cause(&e),
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            let reason = body["error"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_string);
            Err(ClientError::Refused(reason))
        }
    }

    /// `base` + path segments, each escaped: an id can never reach another endpoint.
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, ClientError> {
        let bad = |reason: String| ClientError::Unreachable {
            base: self.base.clone(),
            reason,
        };
        let mut url = reqwest::Url::parse(&self.base).map_err(|e| bad(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| bad("not a base URL".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    pub async fn alerts(&self, filters: &[(String, String)]) -> Result<Value, ClientError> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/alerts", self.base), filters)
            .map_err(|e| ClientError::Unreachable {
                base: self.base.clone(),
                reason: e.to_string(),
            })?;
        self.call(self.http.get(url)).await
    }

    pub async fn alert(&self, id: &str) -> Result<Value, ClientError> {
        self.call(self.http.get(self.url(&["api", "v1", "alerts", id])?))
            .await
    }

    /// `action` is `ack`, `unack` or `resolve`.
    pub async fn act(
        &self,
        id: &str,
        action: &str,
        actor: Option<&str>,
        note: Option<&str>,
    ) -> Result<Value, ClientError> {
        let body = json!({ "actor": actor, "note": note });
        self.call(
            self.http
                .post(self.url(&["api", "v1", "alerts", id, action])?)
                .json(&body),
        )
        .await
    }

    pub async fn silences(&self) -> Result<Value, ClientError> {
        self.call(self.http.get(format!("{}/api/v1/silences", self.base)))
            .await
    }

    pub async fn add_silence(&self, body: Value) -> Result<Value, ClientError> {
        self.call(
            self.http
                .post(format!("{}/api/v1/silences", self.base))
                .json(&body),
        )
        .await
    }

    pub async fn expire_silence(&self, id: &str) -> Result<Value, ClientError> {
        self.call(self.http.delete(self.url(&["api", "v1", "silences", id])?))
            .await
    }
}

/// What went wrong in words: the innermost cause (`Connection refused (os error
/// 111)`), not reqwest's "error sending request for url (…)".
fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".to_string();
    }
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    innermost.to_string()
}

/// Drops resolved alerts from a list answer, for `tocsin alerts` without `--all`:
/// they stay listed by the API for review, but a person asking what is going on
/// wants what is still open. Returns how many were hidden.
pub fn hide_resolved(body: &mut Value) -> usize {
    let Some(alerts) = body["alerts"].as_array_mut() else {
        return 0;
    };
    let before = alerts.len();
    alerts.retain(|a| a["state"] != "resolved");
    before - alerts.len()
}

/// `text` padded with spaces to `width` terminal columns: a Japanese character
/// takes two, so padding by characters would misalign the columns after it.
fn pad(text: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

/// The series labels of an alert, without `alertname` and `severity`.
fn labels(a: &Value) -> String {
    let pairs: Vec<String> = a["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "alertname" && k.as_str() != "severity")
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.join(",")
}

fn id(a: &Value) -> String {
    a["id"].as_u64().map_or_else(
        || a["fingerprint"].as_str().unwrap_or("").to_string(),
        |n| format!("#{n}"),
    )
}

/// One line per alert: id, state, severity, rule, labels, since. Columns are as
/// wide as their widest cell (at least the heading), in terminal columns.
pub fn alerts_table(body: &Value) -> String {
    let heading = ["ID", "STATE", "SEVERITY", "RULE", "LABELS", "SINCE"];
    let rows: Vec<[String; 6]> = body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            [
                id(a),
                a["state"].as_str().unwrap_or("").to_string(),
                a["severity"].as_str().unwrap_or("").to_string(),
                a["rule"].as_str().unwrap_or("").to_string(),
                labels(a),
                a["fired_at"]
                    .as_str()
                    .or(a["active_since"].as_str())
                    .unwrap_or("")
                    .to_string(),
            ]
        })
        .collect();
    let mut widths = heading.map(unicode_width::UnicodeWidthStr::width);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(unicode_width::UnicodeWidthStr::width(cell.as_str()));
        }
    }
    let line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&pad(cell, widths[i]));
                l.push(' ');
            }
        }
        l.push('\n');
        l
    };
    let mut out = line(heading);
    for row in &rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

/// An alert and its timeline, for people.
pub fn alert_details(a: &Value) -> String {
    let mut out = format!(
        "{} {} [{}] {}\n  labels: {}\n",
        id(a),
        a["rule"].as_str().unwrap_or(""),
        a["severity"].as_str().unwrap_or(""),
        a["state"].as_str().unwrap_or(""),
        labels(a)
    );
    for (k, v) in a["annotations"].as_object().into_iter().flatten() {
        out.push_str(&format!("  {k}: {}\n", v.as_str().unwrap_or("")));
    }
    let ack = &a["ack"];
    if let Some(actor) = ack["actor"].as_str() {
        let via = ack["via"]
            .as_str()
            .map(|v| format!(" via {v}"))
            .unwrap_or_default();
        let note = ack["note"]
            .as_str()
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  acked by {actor}{via} at {}{note}\n",
            ack["at"].as_str().unwrap_or("")
        ));
    }
    out.push_str("  timeline:\n");
    for e in a["timeline"].as_array().into_iter().flatten() {
        let who = e["actor"]
            .as_str()
            .map(|a| format!(" by {a}"))
            .unwrap_or_default();
        let note = e["note"]
            .as_str()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {} {} -> {}{}: {}{note}\n",
            e["at"].as_str().unwrap_or(""),
            e["from"].as_str().unwrap_or(""),
            e["to"].as_str().unwrap_or(""),
            who,
            e["reason"].as_str().unwrap_or("")
        ));
    }
    out
}

/// The one-line result of an ack, unack or resolve.
pub fn state_line(a: &Value) -> String {
    let by = a["ack"]["actor"]
        .as_str()
        .filter(|_| a["state"] == "acknowledged")
        .map(|x| format!(" by {x}"))
        .unwrap_or_default();
    format!(
        "{} {} {}{by}",
        id(a),
        a["rule"].as_str().unwrap_or(""),
        a["state"].as_str().unwrap_or("")
    )
}

/// One line per silence.
pub fn silences_table(body: &Value) -> String {
    let mut out = format!(
        "{:<36} {:<8} {:<24} {:<24} {:<10} {}\n",
        "ID", "STATUS", "ENDS", "MATCHERS", "BY", "COMMENT"
    );
    for s in body["silences"].as_array().into_iter().flatten() {
        // As typed to `tocsin silence add`, so a matcher can be pasted back.
        let matchers: Vec<String> = s["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| match Matcher::deserialize(m) {
                Ok(m) => m.to_string(),
                Err(_) => m.to_string(),
            })
            .collect();
        out.push_str(&format!(
            "{:<36} {:<8} {:<24} {:<24} {:<10} {}\n",
            s["id"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            s["ends_at"].as_str().unwrap_or(""),
            matchers.join(","),
            s["created_by"].as_str().unwrap_or(""),
            s["comment"].as_str().unwrap_or("")
        ));
    }
    out
}
