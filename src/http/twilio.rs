//! Twilio → tocsin: `POST /twilio/sms`, an inbound SMS. A reply in the operator
//! language (`ACK 42 [note]`, `UNACK 42`, `RESOLVE 42`) from the phone number of a
//! configured person acts as that person, via `sms`; the answer is TwiML, a short
//! SMS back.
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
use crate::command::{self, Medium, Reply};
use crate::daemon::Daemon;
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
    forwarder: super::forward::Forwarder,
) -> Router<S> {
    let relay = axum::middleware::from_fn_with_state(forwarder, super::forward::to_holder);
    Router::new()
        .route(ENDPOINT, post(sms).route_layer(relay))
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
    let verified = match checked {
        Ok(verified) => verified,
        Err(refusal) => {
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
    };
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    // Twilio's signature has no timestamp: a copy of a signed request (its MAC,
    // however the header spells it) or a message delivered twice (its MessageSid)
    // is answered with no reply and not acted on again.
    let sid = field("MessageSid");
    let seen_sid = !sid.is_empty() && !inbound.seen.first_time(sid.as_bytes());
    if !inbound.seen.first_time(&verified.mac) || seen_sid {
        return twiml(None);
    }
    let (command, done, text) = answer(daemon, field("From"), field("Body")).await;
    daemon
        .metrics()
        .inbound_commands
        .get_or_create(&vec![
            ("source".to_string(), "sms".to_string()),
            ("command".to_string(), command.to_string()),
            (
                "outcome".to_string(),
                if done { "done" } else { "refused" }.to_string(),
            ),
        ])
        .inc();
    twiml(Some(&text))
}

/// Acts on an SMS from `from` saying `body` (the operator language, as in
/// Slack): the command's name, whether it was carried out, and the reply.
async fn answer(daemon: &Daemon, from: &str, body: &str) -> (&'static str, bool, String) {
    let person = daemon.config().directory.by_phone(from).cloned();
    let (name, reply) = match command::parse(body) {
        Ok(c) => (
            c.name(),
            command::run(daemon, person.as_ref(), Medium::Sms, from, c).await,
        ),
        Err(why) => ("unknown", Reply::Refused(command::Refusal::Parse(why))),
    };
    let done = !matches!(reply, Reply::Refused(_) | Reply::Help);
    (name, done, reply.to_sms())
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
