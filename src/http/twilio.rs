//! Twilio → tocsin: `POST /twilio/sms`, an inbound SMS. A reply `ACK 42 [note]` from
//! the phone number of a configured person acknowledges incident 42 as that person,
//! via `sms`; the answer is TwiML, a short SMS back.
//!
//! The request is verified first (`X-Twilio-Signature` over `server.public_url` plus
//! the path and query, and the sorted form parameters); a refusal is a 403 and
//! changes nothing. Twilio's signature has no timestamp, so a MessageSid already
//! taken is answered with no reply and not acted on again.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::failures::{AuthFailures, ClientIp};
use super::replay::Recent;
use super::{ApiError, read_body};
use crate::alert::Event;
use crate::daemon::{Daemon, OpError};
use crate::escape;
use crate::signature::{self, Refusal};

/// MessageSids remembered against replays.
const SEEN_MESSAGES: usize = 4096;

const ENDPOINT: &str = "/twilio/sms";

#[derive(Clone)]
struct TwilioInbound {
    daemon: Daemon,
    failures: AuthFailures,
    seen: Arc<Recent>,
}

pub(super) fn routes<S: Clone + Send + Sync + 'static>(
    daemon: Daemon,
    failures: AuthFailures,
) -> Router<S> {
    Router::new()
        .route(ENDPOINT, post(sms))
        .with_state(TwilioInbound {
            daemon,
            failures,
            seen: Arc::new(Recent::new(SEEN_MESSAGES)),
        })
}

async fn sms(
    State(inbound): State<TwilioInbound>,
    ClientIp(client): ClientIp,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let daemon = &inbound.daemon;
    let config = daemon.config();
    let bytes = match read_body(body, config.server.body_limit).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes) else {
        return ApiError::new(StatusCode::BAD_REQUEST, "body is not form-encoded").into_response();
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    let checked = match (&config.channels.sms, &config.server.public_url) {
        (None, _) => Err(Refusal::NotConfigured),
        (Some(_), None) => Err(Refusal::NoPublicUrl),
        (Some(sms), Some(base)) => {
            // What Twilio requested: the public base (the proxy's side), then the
            // path and query as they reached tocsin.
            let path = uri.path_and_query().map_or(ENDPOINT, |p| p.as_str());
            let url = format!("{}{path}", base.trim_end_matches('/'));
            signature::verify_twilio(&sms.auth_token, &url, &params, signature)
        }
    };
    if let Err(refusal) = checked {
        let message = match refusal {
            Refusal::NotConfigured => {
                "SMS is not configured ([channels.sms]), so inbound SMS are refused".to_string()
            }
            Refusal::MissingSignature => "missing X-Twilio-Signature header".to_string(),
            other => format!("twilio request refused: {other}"),
        };
        return inbound.failures.refuse(
            daemon.metrics(),
            client,
            ENDPOINT,
            refusal.reason(),
            StatusCode::FORBIDDEN,
            message,
        );
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let sid = field("MessageSid");
    if !sid.is_empty() && !inbound.seen.first_time(sid) {
        return twiml(None);
    }
    let (done, text) = answer(daemon, field("From"), field("Body")).await;
    daemon
        .metrics()
        .inbound_commands
        .get_or_create(&vec![
            ("source".to_string(), "sms".to_string()),
            ("command".to_string(), "ack".to_string()),
            (
                "outcome".to_string(),
                if done { "done" } else { "refused" }.to_string(),
            ),
        ])
        .inc();
    twiml(Some(&text))
}

/// Acts on an SMS from `from` saying `body`: whether it acked, and the reply.
async fn answer(daemon: &Daemon, from: &str, body: &str) -> (bool, String) {
    let Some(person) = daemon.config().directory.by_phone(from) else {
        return (
            false,
            "This number is not one of tocsin's people, so it cannot acknowledge alerts. \
             Nothing was changed."
                .to_string(),
        );
    };
    let Some((id, note)) = parse_ack(body) else {
        return (
            false,
            "Reply ACK and the alert number to acknowledge it, e.g. ACK 42.".to_string(),
        );
    };
    let event = Event::Ack {
        actor: person.id.clone(),
        via: "sms".into(),
        note,
    };
    let acted = daemon.act(&id, event).await;
    match acted {
        Ok(view) => {
            let number = view.alert.incident.map_or(id, |n| n.to_string());
            (true, format!("Acked #{number} {}", view.alert.rule))
        }
        Err(OpError::NotFound(_)) => (false, format!("There is no alert #{id}.")),
        Err(OpError::Rejected(r)) => (false, format!("#{id} was not acked: {}", r.reason)),
        Err(_) => (
            false,
            format!("tocsin could not record the ack of #{id}; try again shortly."),
        ),
    }
}

/// `ACK 42`, `ack #42 on my way`: the incident and the note.
fn parse_ack(body: &str) -> Option<(String, Option<String>)> {
    let mut words = body.trim().splitn(3, char::is_whitespace);
    if !words.next()?.eq_ignore_ascii_case("ack") {
        return None;
    }
    let id = words.next()?.trim_start_matches('#');
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let note = words
        .next()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    Some((id.to_string(), note))
}

/// A TwiML answer: one SMS back with `text`, or none.
fn twiml(text: Option<&str>) -> Response {
    let inner = text.map_or(String::new(), |t| {
        format!("<Message>{}</Message>", escape::xml(t))
    });
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{inner}</Response>"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_replies_parse() {
        assert_eq!(parse_ack("ACK 42"), Some(("42".into(), None)));
        assert_eq!(
            parse_ack("  ack #7  on my way "),
            Some(("7".into(), Some("on my way".into())))
        );
        assert_eq!(
            parse_ack("Ack 3\nnote"),
            Some(("3".into(), Some("note".into())))
        );
        for bad in ["", "ACK", "ACK x", "ACKNOWLEDGE 4", "STOP", "resolve 4"] {
            assert_eq!(parse_ack(bad), None, "{bad:?}");
        }
    }
}
