//! Slack → tocsin: the `/tocsin` slash command (`POST /slack/commands`) and the
//! buttons on alert messages (`POST /slack/interactions`).
//!
//! Every request is verified before its body is parsed: the signature over the raw
//! bytes with one of the signing secrets, a timestamp within five minutes of the
//! daemon's clock, and a signature not seen before. A refusal is a 401 with a JSON
//! reason and changes nothing. The Slack user must be one of the configured people
//! to act; they are recorded as the actor, via `slack`. The alert message itself is
//! updated by the notification path (the `acknowledged` notification), not here.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
use crate::alert::{Event, State as AlertState};
use crate::clock::Timestamp;
use crate::daemon::{AlertView, Daemon, OpError};
use crate::escalation::Person;
use crate::escape::mrkdwn;
use crate::matcher::{Matcher, MatcherError};
use crate::signature::{self, Refusal};
use crate::silence::Silence;

/// Signatures accepted in the last five minutes, at most this many. Slack sends far
/// fewer; past this the oldest are forgotten.
const SEEN_SIGNATURES: usize = 4096;

/// At most this many alerts in a `list` reply: a longer message is noise in Slack.
const LIST_LIMIT: usize = 20;

/// What the Silence 1h button sets.
const BUTTON_SILENCE: Duration = Duration::from_secs(3600);

#[derive(Clone)]
struct SlackInbound {
    daemon: Daemon,
    failures: AuthFailures,
    seen: Arc<Recent>,
}

pub(super) fn routes<S: Clone + Send + Sync + 'static>(
    daemon: Daemon,
    failures: AuthFailures,
) -> Router<S> {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
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
        .and_then(|_| {
            // Verified, so the header is there; a second copy is a replay.
            let signature = signature.unwrap_or_default();
            if self.seen.first_time(signature) {
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

    /// The configured person behind a Slack user, or the reason they cannot act.
    fn person(&self, slack_user: &str) -> Result<Person, String> {
        self.daemon
            .config()
            .directory
            .by_slack_user(slack_user)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "Your Slack user id `{}` is not in tocsin's `[people]`, so tocsin cannot \
                     record who acted; nothing was changed. Ask an admin to add \
                     `slack = \"{}\"` to your entry.",
                    mrkdwn(slack_user),
                    mrkdwn(slack_user)
                )
            })
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
    let command = match parse_command(&unescape(&form.text)) {
        Ok(c) => c,
        Err(why) => {
            inbound.count("slack", "unknown", false);
            return reply(Visibility::Ephemeral, format!("{why}\n\n{HELP}"));
        }
    };
    let name = command.name();
    let (visibility, text) = run(&inbound, &form.user_id, command).await;
    inbound.count(
        "slack",
        name,
        visibility == Visibility::InChannel || name_is_read(name),
    );
    reply(visibility, text)
}

fn decode_form(bytes: &[u8]) -> Option<SlashCommand> {
    serde_urlencoded::from_bytes::<SlashCommand>(bytes).ok()
}

/// A slash command body as the handler reads it (after its signature): the Slack
/// user and the command (`Debug`), or why it is refused. For the fuzz target.
pub fn decode_command(bytes: &[u8]) -> Result<(String, String), String> {
    let form = decode_form(bytes).ok_or("not a slash command")?;
    let command = parse_command(&unescape(&form.text))?;
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

fn name_is_read(name: &str) -> bool {
    matches!(name, "list" | "who" | "help")
}

/// Carries out a command for Slack user `user`: the reply and who may see it.
async fn run(inbound: &SlackInbound, user: &str, command: Command) -> (Visibility, String) {
    use Visibility::{Ephemeral, InChannel};
    let daemon = inbound.daemon.clone();
    match command {
        Command::Help => (Ephemeral, HELP.to_string()),
        Command::List { severity } => (Ephemeral, list(&daemon, severity.as_deref()).await),
        Command::Who => (Ephemeral, who(&daemon)),
        Command::Ack { .. }
        | Command::Unack { .. }
        | Command::Resolve { .. }
        | Command::Silence { .. } => {
            let person = match inbound.person(user) {
                Ok(p) => p,
                Err(why) => return (Ephemeral, why),
            };
            let mention = format!("<@{}>", mrkdwn(user));
            match act(&daemon, &person, command).await {
                Ok(done) => (InChannel, format!("{mention} {done}")),
                Err(why) => (Ephemeral, why),
            }
        }
    }
}

/// Applies an ack, unack, resolve or silence as `person`; the past-tense sentence
/// for the channel, or why it was refused.
async fn act(daemon: &Daemon, person: &Person, command: Command) -> Result<String, String> {
    let actor = person.id.clone();
    let (verb, id, note, event) = match command {
        Command::Ack { id, note } => (
            "acknowledged",
            id,
            note.clone(),
            Event::Ack {
                actor,
                via: "slack".into(),
                note,
            },
        ),
        Command::Unack { id } => ("took back the ack of", id, None, Event::Unack { actor }),
        Command::Resolve { id, note } => {
            ("resolved", id, note.clone(), Event::Resolve { actor, note })
        }
        Command::Silence {
            matchers,
            duration,
            comment,
        } => return silence(daemon, person, matchers, duration, comment).await,
        Command::Help | Command::List { .. } | Command::Who => {
            unreachable!("read-only commands do not act")
        }
    };
    let shown_id = id.clone();
    let view = daemon
        .act(&id, event)
        .await
        .map_err(|e| refusal_text(&shown_id, e))?;
    let mut text = format!("{verb} {}", title(&view));
    if let Some(note) = note.filter(|n| !n.is_empty()) {
        text.push_str(&format!(": {}", mrkdwn(&note)));
    }
    Ok(text)
}

async fn silence(
    daemon: &Daemon,
    person: &Person,
    matchers: Vec<Matcher>,
    duration: Duration,
    comment: String,
) -> Result<String, String> {
    let now = daemon.now();
    let shown = matchers
        .iter()
        .map(Matcher::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let silence = Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers,
        starts_at: now,
        ends_at: now + duration,
        created_by: person.id.clone(),
        comment: if comment.is_empty() {
            "from Slack".to_string()
        } else {
            comment.clone()
        },
    };
    let created = daemon
        .add_silence(silence)
        .await
        .map_err(|e| format!("Silence refused: {}", mrkdwn(&e.to_string())))?;
    let silenced = daemon
        .alerts()
        .await
        .iter()
        .filter(|v| v.alert.silenced_by.contains(&created.id))
        .count();
    let mut text = format!(
        "silenced `{}` for {} (until {}); {silenced} alert{} silenced now",
        mrkdwn(&shown),
        humantime::format_duration(duration),
        slack_date(created.ends_at),
        if silenced == 1 { "" } else { "s" },
    );
    if !comment.is_empty() {
        text.push_str(&format!(": {}", mrkdwn(&comment)));
    }
    Ok(text)
}

/// Why an operation on alert `id` did not happen, for the person who asked.
fn refusal_text(id: &str, e: OpError) -> String {
    match e {
        OpError::NotFound(_) => format!("There is no alert #{}.", mrkdwn(id)),
        OpError::Rejected(r) => format!("#{}: {}", mrkdwn(id), mrkdwn(&r.reason)),
        OpError::Store(_) => "tocsin could not record this (its state store refuses writes); \
                              nothing was changed. Try again shortly."
            .to_string(),
        other => mrkdwn(&other.to_string()),
    }
}

/// `#42 投稿成功率低下`, escaped for mrkdwn.
fn title(v: &AlertView) -> String {
    match v.alert.incident {
        Some(n) => format!("#{n} {}", mrkdwn(&v.alert.rule)),
        None => mrkdwn(&v.alert.rule),
    }
}

/// A time Slack shows in each reader's own time zone, with UTC as the fallback.
fn slack_date(t: Timestamp) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        t.0.div_euclid(1000),
        t.to_rfc3339()
    )
}

async fn list(daemon: &Daemon, severity: Option<&str>) -> String {
    let all = daemon.alerts().await;
    let now = daemon.now();
    let active: Vec<&AlertView> = all
        .iter()
        .filter(|v| v.alert.state.is_active())
        .filter(|v| severity.is_none_or(|s| v.severity.eq_ignore_ascii_case(s)))
        .collect();
    let which = severity.map_or(String::new(), |s| format!(" {}", mrkdwn(s)));
    if active.is_empty() {
        return format!("No active{which} alerts.");
    }
    let mut lines = vec![format!(
        "{} active{which} alert{}:",
        active.len(),
        if active.len() == 1 { "" } else { "s" }
    )];
    for v in active.iter().take(LIST_LIMIT) {
        lines.push(list_line(v, now));
    }
    if active.len() > LIST_LIMIT {
        lines.push(format!(
            "… and {} more (`tocsin alerts` shows all)",
            active.len() - LIST_LIMIT
        ));
    }
    lines.join("\n")
}

fn list_line(v: &AlertView, now: Timestamp) -> String {
    let a = &v.alert;
    let since = a
        .fired_at
        .map_or(String::new(), |t| format!(" for {}", age(now.since(t))));
    let state = match (&a.state, &a.ack) {
        (AlertState::Acknowledged, Some(ack)) => format!("acked by {}", mrkdwn(&ack.actor)),
        (AlertState::Suppressed, _) => "silenced".to_string(),
        (s, _) => s.name().to_string(),
    };
    let labels: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| !matches!(*k, "alertname" | "severity"))
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!(" `{}`", mrkdwn(&labels.join(" ")))
    };
    format!(
        "• {} *{}*{labels}: {state}{since}",
        title(v),
        mrkdwn(&crate::notify::severity_word(&v.severity)),
    )
}

/// `12m`, `3h 5m`: how long, to the minute.
fn age(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        "under a minute".to_string()
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs() / 60 * 60)).to_string()
    }
}

fn who(daemon: &Daemon) -> String {
    let directory = &daemon.config().directory;
    if directory.schedules.is_empty() {
        return "No on-call rotations are configured.".to_string();
    }
    let now = daemon.now();
    let mut lines = vec!["On call now:".to_string()];
    for (name, rotation) in &directory.schedules {
        let who = match rotation.on_call(now) {
            None => "nobody".to_string(),
            Some(id) => match directory.people.get(id) {
                Some(p) => match &p.slack {
                    Some(u) => format!("<@{}> ({})", mrkdwn(u), mrkdwn(&p.name)),
                    None => mrkdwn(&p.name),
                },
                None => mrkdwn(id),
            },
        };
        lines.push(format!("• *{}*: {who}", mrkdwn(name)));
    }
    lines.join("\n")
}

const HELP: &str = "*/tocsin* commands:
• `ack 42 [note]`: acknowledge alert #42 (escalation stops)
• `unack 42`: take back an ack
• `resolve 42 [note]`: close alert #42 by hand
• `silence host=bot-1 alertname=~\"CPU.*\" 2h [comment]`: silence matching alerts for a while (`=`, `!=`, `=~`, `!~`)
• `list [severity]`: the active alerts
• `who`: who is on call now
• `help`: this text";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Visibility {
    /// Everyone in the channel sees the command and the reply: acks and the like.
    InChannel,
    /// Only the person who typed it: errors, lists, help.
    Ephemeral,
}

fn reply(visibility: Visibility, text: String) -> Response {
    let response_type = match visibility {
        Visibility::InChannel => "in_channel",
        Visibility::Ephemeral => "ephemeral",
    };
    axum::Json(json!({ "response_type": response_type, "text": text })).into_response()
}

/// A slash command, parsed.
#[derive(Clone, Debug, PartialEq)]
enum Command {
    Ack {
        id: String,
        note: Option<String>,
    },
    Unack {
        id: String,
    },
    Resolve {
        id: String,
        note: Option<String>,
    },
    Silence {
        matchers: Vec<Matcher>,
        duration: Duration,
        comment: String,
    },
    List {
        severity: Option<String>,
    },
    Who,
    Help,
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Ack { .. } => "ack",
            Command::Unack { .. } => "unack",
            Command::Resolve { .. } => "resolve",
            Command::Silence { .. } => "silence",
            Command::List { .. } => "list",
            Command::Who => "who",
            Command::Help => "help",
        }
    }
}

/// Parses the text after `/tocsin`; the error says what was wrong, for the user.
fn parse_command(text: &str) -> Result<Command, String> {
    let text = text.trim();
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim()));
    let id_and_note = |what: &str| -> Result<(String, Option<String>), String> {
        let (id, note) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(i, n)| (i, n.trim()));
        let id = id.strip_prefix('#').unwrap_or(id);
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "`{what}` needs an alert number, e.g. `/tocsin {what} 42`."
            ));
        }
        let note = (!note.is_empty()).then(|| note.to_string());
        Ok((id.to_string(), note))
    };
    match word.to_lowercase().as_str() {
        "" | "help" => Ok(Command::Help),
        "ack" => id_and_note("ack").map(|(id, note)| Command::Ack { id, note }),
        "unack" => id_and_note("unack").map(|(id, _)| Command::Unack { id }),
        "resolve" => id_and_note("resolve").map(|(id, note)| Command::Resolve { id, note }),
        "silence" => parse_silence(rest),
        "list" => Ok(Command::List {
            severity: rest.split_whitespace().next().map(|s| s.to_lowercase()),
        }),
        "who" => Ok(Command::Who),
        other => Err(format!("Unknown command `{}`.", mrkdwn(other))),
    }
}

/// `<matchers…> <duration> [comment]`.
fn parse_silence(mut rest: &str) -> Result<Command, String> {
    const EXAMPLE: &str = "e.g. `/tocsin silence host=bot-1 alertname=~\"CPU.*\" 2h maintenance`";
    let mut matchers = Vec::new();
    loop {
        let Some((token, after)) = next_token(rest) else {
            return Err(format!(
                "`silence` needs label matchers and then a duration, {EXAMPLE}."
            ));
        };
        match Matcher::parse(&token) {
            Ok(m) => {
                matchers.push(m);
                rest = after;
                continue;
            }
            // A matcher whose regex is not one: say so, rather than that it is
            // not a duration.
            Err(e @ MatcherError::Regex { .. }) => {
                return Err(format!("{}.", mrkdwn(&e.to_string())));
            }
            Err(_) => {}
        }
        if matchers.is_empty() {
            return Err(format!(
                "`{}` is not a label matcher (`name=value`, `!=`, `=~`, `!~`); {EXAMPLE}.",
                mrkdwn(&token)
            ));
        }
        let duration = humantime::parse_duration(&token).map_err(|_| {
            format!(
                "`{}` is neither a label matcher nor a duration (such as `2h` or `30m`); {EXAMPLE}.",
                mrkdwn(&token)
            )
        })?;
        return Ok(Command::Silence {
            matchers,
            duration,
            comment: after.trim().to_string(),
        });
    }
}

/// The next whitespace-separated token, with double quotes (straight or the curly
/// ones Slack clients type) grouping and removed; and the text after it.
fn next_token(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let mut token = String::new();
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' | '“' | '”' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Some((token, &text[i..])),
            c => token.push(c),
        }
    }
    Some((token, ""))
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
    match inbound.person(user) {
        Err(why) => {
            inbound.count("slack_button", "any", false);
            refusals.push(why);
        }
        Ok(person) => {
            for action in ours {
                let name = action.action_id.trim_start_matches("tocsin_");
                let outcome = button(&inbound.daemon, &person, action).await;
                inbound.count("slack_button", name, outcome.is_ok());
                if let Err(why) = outcome {
                    refusals.push(why);
                }
            }
        }
    }
    if !refusals.is_empty()
        && let Some(url) = interaction.response_url
    {
        tokio::spawn(tell(url, refusals.join("\n")));
    }
    StatusCode::OK.into_response()
}

/// One of tocsin's buttons, clicked by `person`.
async fn button(daemon: &Daemon, person: &Person, action: &ButtonAction) -> Result<(), String> {
    let id = action
        .value
        .as_deref()
        .map(|v| v.trim_start_matches('#').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "This button names no alert.".to_string())?;
    let actor = person.id.clone();
    let shown_id = id.clone();
    let done = match action.action_id.as_str() {
        "tocsin_ack" => {
            let event = Event::Ack {
                actor,
                via: "slack".into(),
                note: None,
            };
            daemon.act(&id, event).await.map(|_| ())
        }
        "tocsin_resolve" => {
            let event = Event::Resolve { actor, note: None };
            daemon.act(&id, event).await.map(|_| ())
        }
        "tocsin_silence_1h" => {
            async {
                let (view, _) = daemon.alert(&id).await?;
                let now = daemon.now();
                let silence = Silence {
                    id: uuid::Uuid::new_v4().to_string(),
                    matchers: view
                        .alert
                        .labels
                        .iter()
                        .map(|(name, value)| Matcher::equal(name, value))
                        .collect(),
                    starts_at: now,
                    ends_at: now + BUTTON_SILENCE,
                    created_by: actor,
                    comment: format!("Silence 1h button on {}", title(&view)),
                };
                daemon.add_silence(silence).await.map(|_| ())
            }
            .await
        }
        other => {
            return Err(format!("tocsin has no button `{}`.", mrkdwn(other)));
        }
    };
    done.map_err(|e| refusal_text(&shown_id, e))
}

/// Posts a message only the clicker sees, through the interaction's `response_url`
/// (the URL is the credential: it is never logged).
async fn tell(response_url: String, text: String) {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        crate::tls::http_client()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()
    });
    let Some(client) = client else {
        tracing::warn!("slack: cannot build an HTTP client to answer a button");
        return;
    };
    let body = json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": text,
    });
    match client.post(&response_url).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            tracing::warn!(status = %r.status(), "slack: response_url refused the reply to a button")
        }
        Err(e) => tracing::warn!(error = %e.without_url(), "slack: cannot reply to a button"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: &str, value: &str) -> Matcher {
        Matcher::new(name, op.parse().unwrap(), value).unwrap()
    }

    #[test]
    fn commands_parse() {
        let ok = |t: &str| parse_command(t).unwrap();
        assert_eq!(
            ok("ack 42 looking into it"),
            Command::Ack {
                id: "42".into(),
                note: Some("looking into it".into())
            }
        );
        assert_eq!(
            ok("ACK #7"),
            Command::Ack {
                id: "7".into(),
                note: None
            }
        );
        assert_eq!(ok("unack 42"), Command::Unack { id: "42".into() });
        assert_eq!(
            ok("resolve 42"),
            Command::Resolve {
                id: "42".into(),
                note: None
            }
        );
        assert_eq!(
            ok("list Critical"),
            Command::List {
                severity: Some("critical".into())
            }
        );
        assert_eq!(ok("list"), Command::List { severity: None });
        assert_eq!(ok("who"), Command::Who);
        assert_eq!(ok(""), Command::Help);
        assert_eq!(ok("help"), Command::Help);
    }

    #[test]
    fn silence_parses_matchers_duration_and_comment() {
        assert_eq!(
            parse_command(r#"silence host=bot-1 alertname=~"CPU.*" 2h maintenance of bot-1"#),
            Ok(Command::Silence {
                matchers: vec![m("host", "=", "bot-1"), m("alertname", "=~", "CPU.*")],
                duration: Duration::from_secs(7200),
                comment: "maintenance of bot-1".into(),
            })
        );
        // Curly quotes, and a quoted value with a space.
        assert_eq!(
            parse_command("silence job!=“api server” 1h30m"),
            Ok(Command::Silence {
                matchers: vec![m("job", "!=", "api server")],
                duration: Duration::from_secs(5400),
                comment: String::new(),
            })
        );
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let err = |t: &str| parse_command(t).unwrap_err();
        assert!(
            err("ack").contains("needs an alert number"),
            "{}",
            err("ack")
        );
        assert!(err("ack <!channel>").contains("needs an alert number"));
        assert!(err("silence 2h").contains("is not a label matcher"));
        assert!(err("silence host=a").contains("needs label matchers and then a duration"));
        assert!(err("silence host=a soon").contains("neither a label matcher nor a duration"));
        assert_eq!(
            err("silence host=~bot-( 2h"),
            "matcher \"host=~bot-(\": invalid regex: error: unclosed group."
        );
        assert_eq!(err("<!channel>"), "Unknown command `&lt;!channel&gt;`.");
    }

    #[test]
    fn unescaping_reads_what_slack_sends() {
        assert_eq!(unescape("a&amp;lt;b &lt;x&gt;"), "a&lt;b <x>");
    }
}
