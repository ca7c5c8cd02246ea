//! The operator language: what a person types after `/tocsin` in Slack, or texts
//! back to a page (`ACK 42`), parsed into a [`Command`], carried out as that person
//! through the daemon, and answered with a [`Reply`] that each medium renders
//! (`render`: Slack mrkdwn, SMS text). One grammar for every medium, so
//! `ack 42 on my way` means the same in Slack and by SMS; the buttons on Slack
//! messages are commands too.
//!
//! Parsing is pure (and fuzzed); running needs a configured person: an unknown
//! Slack user or phone number can read (`list`, `who`, `help`) but not act.

mod render;

pub use render::{HELP_SLACK, HELP_SMS};

use std::time::Duration;

use crate::alert::Event;
use crate::clock::Timestamp;
use crate::daemon::{AlertView, Daemon, OpError};
use crate::escalation::{Address, Person};
use crate::matcher::{Matcher, MatcherError};
use crate::silence::Silence;

/// A command, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Ack {
        id: String,
        note: Option<String>,
    },
    /// Acknowledge every alert still firing that paged the caller where they reply
    /// from (their phone, by SMS; their Slack direct messages, in Slack): all a
    /// batched page stood for, in one reply.
    AckAll {
        note: Option<String>,
    },
    Unack {
        id: String,
    },
    Resolve {
        id: String,
        note: Option<String>,
    },
    /// Silence alerts matching every matcher for a while.
    Silence {
        matchers: Vec<Matcher>,
        duration: Duration,
        comment: String,
    },
    /// Silence alerts like alert `id`: every one of its labels, as they are.
    SilenceLike {
        id: String,
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
    /// The command's word, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ack { .. } => "ack",
            Command::AckAll { .. } => "ack_all",
            Command::Unack { .. } => "unack",
            Command::Resolve { .. } => "resolve",
            Command::Silence { .. } | Command::SilenceLike { .. } => "silence",
            Command::List { .. } => "list",
            Command::Who => "who",
            Command::Help => "help",
        }
    }

    /// Whether it changes something (and so needs a configured person).
    pub fn acts(&self) -> bool {
        !matches!(self, Command::List { .. } | Command::Who | Command::Help)
    }
}

/// Where a command came from: its answer's format, and the `via` on the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    Slack,
    Sms,
}

impl Medium {
    fn via(self) -> &'static str {
        match self {
            Medium::Slack => "slack",
            Medium::Sms => "sms",
        }
    }
}

/// What a command did, for the person who asked; rendered per medium.
#[derive(Clone, Debug)]
pub enum Reply {
    Help,
    Acked {
        alert: AlertView,
        note: Option<String>,
    },
    /// `ack all`: the alerts it acknowledged, by incident (maybe none).
    AckedAll {
        alerts: Vec<AlertView>,
    },
    Unacked {
        alert: AlertView,
    },
    Resolved {
        alert: AlertView,
        note: Option<String>,
    },
    Silenced {
        silence: Silence,
        duration: Duration,
        /// Alerts the silence holds now.
        silenced: usize,
        /// The comment as the person gave it, if they did.
        comment: Option<String>,
    },
    List {
        severity: Option<String>,
        /// Active alerts, newest incident first.
        alerts: Vec<AlertView>,
        now: Timestamp,
    },
    /// Who is on call now in each rotation.
    Who {
        on_call: Vec<(String, OnCall)>,
    },
    /// Nothing was done, and why.
    Refused(Refusal),
}

impl Reply {
    /// Whether others should see it (Slack answers in the channel): a change made.
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            Reply::Acked { .. }
                | Reply::AckedAll { .. }
                | Reply::Unacked { .. }
                | Reply::Resolved { .. }
                | Reply::Silenced { .. }
        )
    }
}

/// Who is on call in one rotation.
#[derive(Clone, Debug)]
pub enum OnCall {
    Nobody,
    Person(Person),
    /// An id the rotation names but `[people]` does not.
    Unknown(String),
}

/// Why a command was not carried out.
#[derive(Clone, Debug)]
pub enum Refusal {
    /// The text is not a command: why, and the help follows.
    Parse(String),
    /// The caller is not one of the configured people; `who` is their Slack user
    /// id or phone number.
    Stranger {
        who: String,
    },
    NoSuchAlert {
        id: String,
    },
    /// The state machine refused (acking an alert that is not firing, …).
    Rejected {
        id: String,
        reason: String,
    },
    /// The state store refuses writes: nothing was changed.
    StoreDown,
    /// A silence that cannot be stored as asked.
    Silence(String),
    /// This medium does not take this command.
    NotHere,
}

/// Parses a command. The first word is case-insensitive (`ACK 42` by SMS); the
/// error says what was wrong, for the person who typed it.
pub fn parse(text: &str) -> Result<Command, String> {
    let text = text.trim();
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim()));
    let id_and_note = |what: &str| -> Result<(String, Option<String>), String> {
        let (id, note) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(i, n)| (i, n.trim()));
        let id = alert_id(id)
            .ok_or_else(|| format!("`{what}` needs an alert number, e.g. `{what} 42`."))?;
        let note = (!note.is_empty()).then(|| note.to_string());
        Ok((id, note))
    };
    match word.to_lowercase().as_str() {
        "" | "help" => Ok(Command::Help),
        "ack" => match rest.split_once(char::is_whitespace) {
            _ if rest.eq_ignore_ascii_case("all") => Ok(Command::AckAll { note: None }),
            Some((all, note)) if all.eq_ignore_ascii_case("all") => Ok(Command::AckAll {
                note: Some(note.trim().to_string()),
            }),
            _ => id_and_note("ack").map(|(id, note)| Command::Ack { id, note }),
        },
        "unack" => id_and_note("unack").map(|(id, _)| Command::Unack { id }),
        "resolve" => id_and_note("resolve").map(|(id, note)| Command::Resolve { id, note }),
        "silence" => parse_silence(rest),
        "list" => Ok(Command::List {
            severity: rest.split_whitespace().next().map(|s| s.to_lowercase()),
        }),
        "who" => Ok(Command::Who),
        other => Err(format!("Unknown command `{other}`.")),
    }
}

/// An alert id as people write it: `42` or `#42`, or a fingerprint.
fn alert_id(text: &str) -> Option<String> {
    let id = text.strip_prefix('#').unwrap_or(text);
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())).then(|| id.to_string())
}

/// `<matchers…> <duration> [comment]`, or `#42 <duration> [comment]` for alerts
/// like #42.
fn parse_silence(mut rest: &str) -> Result<Command, String> {
    const EXAMPLE: &str = "e.g. `silence host=bot-1 alertname=~\"CPU.*\" 2h maintenance`";
    // The one duration syntax (`crate::duration`), with its messages: `90mins`
    // says "did you mean `90m`?", as the CLI, the API and the config do. `90 mins`
    // is two tokens: the second is read with the first to say the same.
    let duration_of = |token: &str, after: &str| {
        if !token.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "`{token}` is neither a label matcher nor a duration (such as `2h` or `30m`); {EXAMPLE}."
            ));
        }
        crate::duration::parse(token).map_err(|e| {
            let unit = next_token(after).map(|(next, _)| next).unwrap_or_default();
            let spaced = crate::duration::parse(&format!("{token} {unit}"));
            let e = match spaced {
                Err(spaced) if is_unit(&unit) => spaced,
                _ => e,
            };
            // A reply is a sentence; a question already ends as one.
            let e = e.to_string();
            if e.ends_with('?') { e } else { format!("{e}.") }
        })
    };
    if let Some((first, after)) = next_token(rest)
        && first.starts_with('#')
        && let Some(id) = alert_id(&first)
    {
        let (token, comment) = next_token(after).ok_or_else(|| {
            format!("`silence {first}` needs a duration, e.g. `silence {first} 2h`.")
        })?;
        return Ok(Command::SilenceLike {
            id,
            duration: duration_of(&token, comment)?,
            comment: comment.trim().to_string(),
        });
    }
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
            Err(e @ MatcherError::Regex { .. }) => return Err(format!("{e}.")),
            Err(_) => {}
        }
        if matchers.is_empty() {
            return Err(format!(
                "`{token}` is not a label matcher (`name=value`, `!=`, `=~`, `!~`); {EXAMPLE}."
            ));
        }
        return Ok(Command::Silence {
            matchers,
            duration: duration_of(&token, after)?,
            comment: after.trim().to_string(),
        });
    }
}

/// A duration unit, or a spelling of one (`mins`).
fn is_unit(word: &str) -> bool {
    crate::duration::unit_seconds(word).is_some()
        || crate::duration::suggest_unit(word)
            .or_else(|| crate::duration::suggest_misspelt_unit(word))
            .is_some()
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

/// Carries out `command` as `person` (None: a caller who is not one of the
/// configured people, who may only read), arriving through `medium`.
pub async fn run(
    daemon: &Daemon,
    person: Option<&Person>,
    medium: Medium,
    caller: &str,
    command: Command,
) -> Reply {
    if medium == Medium::Sms
        && matches!(
            command,
            Command::Silence { .. }
                | Command::SilenceLike { .. }
                | Command::List { .. }
                | Command::Who
        )
    {
        return Reply::Refused(Refusal::NotHere);
    }
    let person = match (command.acts(), person) {
        (true, None) => {
            return Reply::Refused(Refusal::Stranger {
                who: caller.to_string(),
            });
        }
        (_, p) => p,
    };
    let actor = || person.map(|p| p.id.clone()).unwrap_or_default();
    let via = medium.via().to_string();
    match command {
        Command::Help => Reply::Help,
        Command::Who => {
            let directory = &daemon.config().directory;
            let now = daemon.now();
            let on_call = directory
                .schedules
                .iter()
                .map(|(name, rotation)| {
                    let who = match rotation.on_call(now) {
                        None => OnCall::Nobody,
                        Some(id) => match directory.people.get(id) {
                            Some(p) => OnCall::Person(p.clone()),
                            None => OnCall::Unknown(id.to_string()),
                        },
                    };
                    (name.clone(), who)
                })
                .collect();
            Reply::Who { on_call }
        }
        Command::List { severity } => {
            let alerts = daemon
                .alerts()
                .await
                .into_iter()
                .filter(|v| v.alert.state.is_active())
                .filter(|v| {
                    severity
                        .as_deref()
                        .is_none_or(|s| v.severity.eq_ignore_ascii_case(s))
                })
                .collect();
            Reply::List {
                severity,
                alerts,
                now: daemon.now(),
            }
        }
        Command::Ack { id, note } => {
            let event = Event::Ack {
                actor: actor(),
                via,
                note: note.clone(),
            };
            match daemon.act(&id, event).await {
                Ok(alert) => Reply::Acked { alert, note },
                Err(e) => refused(&id, e),
            }
        }
        Command::AckAll { note } => {
            // Where this person was paged through the medium they answer from.
            let addresses = match (medium, person) {
                (Medium::Sms, Some(p)) => p
                    .phone
                    .iter()
                    .flat_map(|to| {
                        [
                            Address::Sms { to: to.clone() },
                            Address::Voice { to: to.clone() },
                        ]
                    })
                    .collect(),
                (Medium::Slack, Some(p)) => p
                    .slack
                    .iter()
                    .map(|id| Address::Slack {
                        channel: id.clone(),
                    })
                    .collect(),
                (_, None) => Vec::new(),
            };
            let event = Event::Ack {
                actor: actor(),
                via,
                note,
            };
            match daemon.act_paged(addresses, event).await {
                Ok(alerts) => Reply::AckedAll { alerts },
                Err(e) => refused("all", e),
            }
        }
        Command::Unack { id } => match daemon.act(&id, Event::Unack { actor: actor() }).await {
            Ok(alert) => Reply::Unacked { alert },
            Err(e) => refused(&id, e),
        },
        Command::Resolve { id, note } => {
            let event = Event::Resolve {
                actor: actor(),
                note: note.clone(),
            };
            match daemon.act(&id, event).await {
                Ok(alert) => Reply::Resolved { alert, note },
                Err(e) => refused(&id, e),
            }
        }
        Command::Silence {
            matchers,
            duration,
            comment,
        } => {
            let comment = (!comment.is_empty()).then_some(comment);
            silence(daemon, actor(), medium, matchers, duration, comment).await
        }
        Command::SilenceLike {
            id,
            duration,
            comment,
        } => {
            let alert = match daemon.alert(&id).await {
                Ok((view, _)) => view,
                Err(e) => return refused(&id, e),
            };
            let matchers = alert
                .alert
                .labels
                .iter()
                .map(|(name, value)| Matcher::equal(name, value))
                .collect();
            let comment = (!comment.is_empty()).then_some(comment);
            silence(daemon, actor(), medium, matchers, duration, comment).await
        }
    }
}

async fn silence(
    daemon: &Daemon,
    actor: String,
    medium: Medium,
    matchers: Vec<Matcher>,
    duration: Duration,
    comment: Option<String>,
) -> Reply {
    let now = daemon.now();
    let silence = Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers,
        starts_at: now,
        ends_at: now + duration,
        created_by: actor,
        comment: comment
            .clone()
            .unwrap_or_else(|| format!("from {}", medium.via())),
        updated_at: None,
    };
    let created = match daemon.add_silence(silence).await {
        Ok(s) => s,
        Err(e) => return Reply::Refused(Refusal::Silence(e.to_string())),
    };
    let silenced = daemon
        .alerts()
        .await
        .iter()
        .filter(|v| v.alert.silenced_by.contains(&created.id))
        .count();
    Reply::Silenced {
        silence: created,
        duration,
        silenced,
        comment,
    }
}

/// Why an operation on alert `id` did not happen.
fn refused(id: &str, e: OpError) -> Reply {
    let id = id.to_string();
    Reply::Refused(match e {
        OpError::NotFound(_) => Refusal::NoSuchAlert { id },
        OpError::Rejected(r) => Refusal::Rejected {
            id,
            reason: r.reason,
        },
        OpError::Store(_) | OpError::Internal => Refusal::StoreDown,
        other => Refusal::Rejected {
            id,
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text).unwrap()
    }

    #[test]
    fn commands_parse() {
        let ok = |t: &str| parse(t).unwrap();
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
        assert_eq!(
            ok("Ack 3\nnote"),
            Command::Ack {
                id: "3".into(),
                note: Some("note".into())
            }
        );
        assert_eq!(ok("ACK ALL"), Command::AckAll { note: None });
        assert_eq!(
            ok("ack all  on it"),
            Command::AckAll {
                note: Some("on it".into())
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
            parse(r#"silence host=bot-1 alertname=~"CPU.*" 2h maintenance of bot-1"#),
            Ok(Command::Silence {
                matchers: vec![m("host=bot-1"), m(r#"alertname=~"CPU.*""#)],
                duration: Duration::from_secs(7200),
                comment: "maintenance of bot-1".into(),
            })
        );
        // Curly quotes, and a quoted value with a space.
        assert_eq!(
            parse("silence job!=“api server” 1h30m"),
            Ok(Command::Silence {
                matchers: vec![m(r#"job!="api server""#)],
                duration: Duration::from_secs(5400),
                comment: String::new(),
            })
        );
        assert_eq!(
            parse("silence #42 30m deploy"),
            Ok(Command::SilenceLike {
                id: "42".into(),
                duration: Duration::from_secs(1800),
                comment: "deploy".into(),
            })
        );
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let err = |t: &str| parse(t).unwrap_err();
        assert!(
            err("ack").contains("needs an alert number"),
            "{}",
            err("ack")
        );
        assert!(err("ack <!channel>").contains("needs an alert number"));
        assert!(err("silence 2h").contains("is not a label matcher"));
        assert!(err("silence host=a").contains("needs label matchers and then a duration"));
        assert!(err("silence host=a soon").contains("neither a label matcher nor a duration"));
        assert!(err("silence #4").contains("needs a duration"));
        // The one duration syntax, with the messages it has everywhere.
        assert_eq!(
            err("silence host=a 90mins reboot"),
            "unknown unit `mins` in `90mins`; did you mean `90m`?"
        );
        assert_eq!(
            err("silence host=a 90 mins reboot"),
            "unknown unit `mins` in `90 mins`; did you mean `90m`?"
        );
        assert_eq!(
            err("silence #4 2 h"),
            "no space between a number and its unit: `2 h`; write `2h`."
        );
        assert!(
            err(r#"silence host=~"(" 1h"#).contains("invalid regex"),
            "{}",
            err(r#"silence host=~"(" 1h"#)
        );
        assert_eq!(err("<!channel>"), "Unknown command `<!channel>`.");
    }
}
