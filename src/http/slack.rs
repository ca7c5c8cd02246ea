//! Slack → tocsin: the `/tocsin` slash command (`POST /slack/commands`) and the
//! buttons on alert messages (`POST /slack/interactions`).
//!
//! Every request is verified before its body is parsed: the signature over the raw
//! bytes with one of the signing secrets, a timestamp within five minutes of the
//! daemon's clock, and a signature not seen before. A refusal is a 401 with a JSON
//! reason and changes nothing. The Slack user must be one of the configured people
//! to act; they are recorded as the actor, via `slack`. The alert message itself is
//! updated by the notification path (the `acknowledged` notification), not here.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use super::failures::{AuthFailures, ClientIp};
use super::replay::Recent;
use super::{ApiError, read_body};
use crate::command::{self, Command, Medium, Reply};
use crate::daemon::Daemon;
use crate::escalation::Person;
use crate::signature::{self, Refusal};

/// Signatures (their MACs) accepted, at most this many: the last five minutes of
/// Slack's requests, which the timestamp check bounds, are far fewer. Past this the
/// oldest are forgotten.
const SEEN_SIGNATURES: usize = 4096;

/// What the Silence 1h button sets.
const BUTTON_SILENCE: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Clone)]
struct SlackInbound {
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
        .route("/slack/commands", post(commands).route_layer(relay.clone()))
        .route("/slack/interactions", post(interactions).route_layer(relay))
        .with_state(SlackInbound {
            daemon,
            failures,
            seen: Arc::new(Recent::new(SEEN_SIGNATURES)),
        })
}

impl SlackInbound {
    /// The raw body, once it is proven to come from Slack; otherwise the refusal.
    async fn verified(
        &self,
        endpoint: &str,
        client: std::net::IpAddr,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Bytes, Response> {
        let config = self.daemon.config();
        let bytes = read_body(body, config.server.body_limit)
            .await
            .map_err(IntoResponse::into_response)?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let signature = header("x-slack-signature");
        let checked = signature::verify_slack(
            &config.channels.slack_signing_secrets,
            header("x-slack-request-timestamp"),
            signature,
            &bytes,
            self.daemon.now(),
        )
        .and_then(|verified| {
            // Keyed on the MAC, not the header's text: a second copy of the same
            // signed request, however it spells the signature, is a replay.
            if self.seen.first_time(&verified.mac) {
                Ok(())
            } else {
                Err(Refusal::Replayed)
            }
        });
        match checked {
            Ok(()) => Ok(bytes),
            Err(refusal) => {
                let message = match refusal {
                    Refusal::NotConfigured => "no Slack signing secret is configured \
                        ([channels.slack] signing_secrets), so every Slack request is refused"
                        .to_string(),
                    Refusal::MissingSignature => "missing X-Slack-Signature header".to_string(),
                    other => format!("slack request refused: {other}"),
                };
                Err(self.failures.refuse(
                    self.daemon.metrics(),
                    client,
                    endpoint,
                    refusal.reason(),
                    StatusCode::UNAUTHORIZED,
                    message,
                ))
            }
        }
    }

    fn count(&self, source: &str, command: &str, done: bool) {
        self.daemon
            .metrics()
            .inbound_commands
            .get_or_create(&vec![
                ("source".to_string(), source.to_string()),
                ("command".to_string(), command.to_string()),
                (
                    "outcome".to_string(),
                    if done { "done" } else { "refused" }.to_string(),
                ),
            ])
            .inc();
    }

    /// The configured person behind a Slack user, if any.
    fn person(&self, slack_user: &str) -> Option<Person> {
        self.daemon
            .config()
            .directory
            .by_slack_user(slack_user)
            .cloned()
    }

    /// Runs a command for Slack user `user`, counted by its outcome.
    async fn run(&self, source: &str, user: &str, command: Command) -> Reply {
        let name = command.name();
        let person = self.person(user);
        let reply = command::run(&self.daemon, person.as_ref(), Medium::Slack, user, command).await;
        let done = !matches!(reply, Reply::Refused(_));
        self.count(source, name, done);
        reply
    }
}

/// The form fields of a slash command that tocsin reads; Slack sends more.
#[derive(Deserialize)]
struct SlashCommand {
    user_id: String,
    #[serde(default)]
    text: String,
}

/// `POST /slack/commands`: `/tocsin ack 42 [note]`, `unack 42`, `resolve 42 [note]`,
/// `silence <matchers…> <duration> [comment]`, `list [severity]`, `who`, `help`.
async fn commands(
    State(inbound): State<SlackInbound>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match inbound
        .verified("/slack/commands", client, &headers, body)
        .await
    {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let Some(form) = decode_form(&bytes) else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "not a slash command: user_id is missing",
        )
        .into_response();
    };
    let reply = match command::parse(&unescape(&form.text)) {
        Ok(c) => inbound.run("slack", &form.user_id, c).await,
        Err(why) => {
            inbound.count("slack", "unknown", false);
            Reply::Refused(command::Refusal::Parse(why))
        }
    };
    // Changes are said in the channel; errors, lists and help only to the asker.
    let response_type = if reply.is_public() {
        "in_channel"
    } else {
        "ephemeral"
    };
    let text = reply.to_slack(&form.user_id);
    axum::Json(json!({ "response_type": response_type, "text": text })).into_response()
}

fn decode_form(bytes: &[u8]) -> Option<SlashCommand> {
    serde_urlencoded::from_bytes::<SlashCommand>(bytes).ok()
}

/// A slash command body as the handler reads it (after its signature): the Slack
/// user and the command (`Debug`), or why it is refused. For the fuzz target.
pub fn decode_command(bytes: &[u8]) -> Result<(String, String), String> {
    let form = decode_form(bytes).ok_or("not a slash command")?;
    let command = command::parse(&unescape(&form.text))?;
    Ok((form.user_id, format!("{command:?}")))
}

/// A button payload as the handler reads it: its type, the user, and each
/// action's id and value. For the fuzz target.
#[allow(clippy::type_complexity)]
pub fn decode_interaction(
    bytes: &[u8],
) -> Option<(String, Option<String>, Vec<(String, Option<String>)>)> {
    let i = decode_payload(bytes)?;
    let actions = i
        .actions
        .into_iter()
        .map(|a| (a.action_id, a.value))
        .collect();
    Some((i.kind, i.user.map(|u| u.id), actions))
}

fn decode_payload(bytes: &[u8]) -> Option<Interaction> {
    serde_urlencoded::from_bytes::<InteractionForm>(bytes)
        .ok()
        .and_then(|f| serde_json::from_str::<Interaction>(&f.payload).ok())
}

/// Slack sends `&`, `<` and `>` in a command's text as HTML entities.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

/// The parts of an interaction payload tocsin reads (PROTOCOLS.md §2e).
#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: Option<SlackUser>,
    #[serde(default)]
    actions: Vec<ButtonAction>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Deserialize)]
struct ButtonAction {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// `POST /slack/interactions`: the Ack, Resolve and Silence 1h buttons. Answers an
/// empty 200; a refusal is told to the clicker through `response_url`, as a message
/// only they see, since Slack shows nothing of the answer to a button.
async fn interactions(
    State(inbound): State<SlackInbound>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match inbound
        .verified("/slack/interactions", client, &headers, body)
        .await
    {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let Some(interaction) = decode_payload(&bytes) else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "not an interaction: expected a form field payload with a JSON object",
        )
        .into_response();
    };
    // Other buttons (links to dashboards) also send block_actions: only ours act.
    let ours: Vec<&ButtonAction> = interaction
        .actions
        .iter()
        .filter(|a| a.action_id.starts_with("tocsin_"))
        .collect();
    if interaction.kind != "block_actions" || ours.is_empty() {
        return StatusCode::OK.into_response();
    }
    let user = interaction.user.as_ref().map_or("", |u| u.id.as_str());
    let mut refusals = Vec::new();
    for action in ours {
        let reply = match button(action) {
            Ok(command) => inbound.run("slack_button", user, command).await,
            Err(why) => {
                inbound.count("slack_button", "unknown", false);
                Reply::Refused(command::Refusal::Rejected {
                    id: action.value.clone().unwrap_or_default(),
                    reason: why,
                })
            }
        };
        if let Reply::Refused(_) = reply {
            refusals.push(reply.to_slack(user));
        }
    }
    if !refusals.is_empty()
        && let Some(url) = interaction.response_url
    {
        // Slack shows nothing of the answer to a button: a refusal is told to the
        // clicker alone, through the interaction's response_url.
        inbound.daemon.tell_slack(url, refusals.join("\n"));
    }
    StatusCode::OK.into_response()
}

/// The command one of tocsin's buttons stands for.
fn button(action: &ButtonAction) -> Result<Command, String> {
    let id = action
        .value
        .as_deref()
        .map(|v| v.trim_start_matches('#').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "this button names no alert".to_string())?;
    match action.action_id.as_str() {
        "tocsin_ack" => Ok(Command::Ack { id, note: None }),
        "tocsin_resolve" => Ok(Command::Resolve { id, note: None }),
        "tocsin_silence_1h" => Ok(Command::SilenceLike {
            id,
            duration: BUTTON_SILENCE,
            comment: String::new(),
        }),
        other => Err(format!("tocsin has no button `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_entities_are_decoded_once() {
        assert_eq!(unescape("a&amp;lt;b &lt;x&gt;"), "a&lt;b <x>");
    }
}
