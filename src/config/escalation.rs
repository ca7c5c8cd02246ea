//! `[escalation]` and `[policies]` → [`Routing`], linked to the [`Directory`]
//! (`directory.rs`): every id a target or route names must exist, every person a
//! level reaches must have the address its methods need, and every channel a policy
//! uses must be configured. A mistake here would otherwise surface as a page that
//! never rings, at the worst moment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use toml::Spanned;

use super::Channels;
use super::compile::Compiler;
use super::raw::{RawConfig, RawLevel, RawPolicy, Strs};
use crate::escalation::{Directory, Level, Method, Policy, Route, Routing, Target};
use crate::labels;
use crate::matcher::Matcher;

/// How often the last level repeats while unacked, unless set (Alertmanager's
/// `repeat_interval` default).
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_POLICY: &str = "default";
/// The severities the rules language has, to catch a misspelt `phone_severities`.
const SEVERITIES: &[&str] = &["critical", "warning", "info"];
const TARGET_FORMS: &str = "person:ID, group:ID, schedule:ID, slack:by-severity, \
                            slack:#CHANNEL, email:ADDRESS, webhook:NAME or console";

/// What the targets and methods of a policy may refer to, declared in the file.
/// Ids come from the keys as written, so an entry whose fields are in error still
/// counts as declared and does not cause a second, misleading "unknown" error.
struct Known<'a> {
    people: BTreeSet<&'a str>,
    groups: BTreeSet<&'a str>,
    schedules: BTreeSet<&'a str>,
    webhooks: BTreeSet<&'a str>,
    /// Who each group and rotation names, as written: a rotation in error (a bad
    /// time zone) still says who a level reaches through it.
    group_members: BTreeMap<&'a str, Vec<&'a str>>,
    schedule_people: BTreeMap<&'a str, Vec<&'a str>>,
    /// Groups with mailing lists.
    mailing_lists: BTreeSet<&'a str>,
    directory: &'a Directory,
    /// Whether each channel section is present (even if in error: already reported).
    email: bool,
    slack: bool,
    slack_bot: bool,
    sms: bool,
    console: bool,
}

/// The kinds of thing an id can name, for "unknown …" messages.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Person,
    Group,
    Schedule,
    Policy,
    Webhook,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Group => "group",
            Kind::Schedule => "schedule",
            Kind::Policy => "policy",
            Kind::Webhook => "webhook",
        }
    }
}

impl Compiler<'_> {
    pub(super) fn routing(
        &mut self,
        raw: &RawConfig,
        directory: &Directory,
        channels: &Channels,
    ) -> Routing {
        let known = Known {
            people: ids(&raw.people),
            groups: ids(&raw.groups),
            schedules: ids(&raw.schedules),
            webhooks: raw
                .channels
                .webhook
                .iter()
                .map(|w| w.name.get_ref().as_str())
                .collect(),
            group_members: raw
                .groups
                .iter()
                .map(|(id, g)| (id.get_ref().as_str(), strs(&g.members)))
                .collect(),
            schedule_people: raw
                .schedules
                .iter()
                .map(|(id, s)| (id.get_ref().as_str(), strs(s.people.get_ref())))
                .collect(),
            mailing_lists: raw
                .groups
                .iter()
                .filter(|(_, g)| !g.emails.is_empty())
                .map(|(id, _)| id.get_ref().as_str())
                .collect(),
            directory,
            email: raw.channels.email.is_some(),
            slack: raw.channels.slack.is_some(),
            slack_bot: raw
                .channels
                .slack
                .as_ref()
                .is_some_and(|s| s.get_ref().bot_token.is_some()),
            sms: raw.channels.sms.is_some(),
            console: channels.console.enabled,
        };

        let mut routing = Routing::console_only();
        if !raw.policies.is_empty() {
            routing.policies = BTreeMap::new();
            for (id, p) in &raw.policies {
                let id_ok = self.check_id(id, "policies");
                if let (true, Some(policy)) = (id_ok, self.policy(id, p, &known)) {
                    routing.policies.insert(id.get_ref().clone(), policy);
                }
            }
        }
        // Without [policies], routes may still name the embedded "default".
        let policy_ids: BTreeSet<&str> = if raw.policies.is_empty() {
            BTreeSet::from([DEFAULT_POLICY])
        } else {
            ids(&raw.policies)
        };

        let esc = &raw.escalation;
        match &esc.default_policy {
            Some(d) => {
                if let Some(name) =
                    self.known_id(d, "escalation.default_policy", Kind::Policy, &policy_ids)
                {
                    routing.default_policy = name;
                }
            }
            None => {
                if let Some(first) = raw.policies.keys().next()
                    && !policy_ids.contains(DEFAULT_POLICY)
                {
                    self.report(
                        first.span(),
                        "policies: no policy named \"default\" for alerts no route matches; \
                         add [policies.default] or set escalation.default_policy"
                            .to_string(),
                    );
                }
            }
        }
        if let Some(group_by) = &esc.group_by {
            routing.group_by = group_by
                .iter()
                .enumerate()
                .filter_map(|(i, l)| self.label_name(l, &format!("escalation.group_by[{i}]")))
                .collect();
        }
        if let Some(wait) = &esc.group_wait {
            routing.group_wait = self
                .duration_or_zero(wait, "escalation.group_wait")
                .unwrap_or(DEFAULT_GROUP_WAIT);
        }
        for (i, r) in esc.routes.iter().enumerate() {
            let key = format!("escalation.routes[{i}]");
            let matchers = self.matchers(&r.matchers, &format!("{key}.match"));
            let policy = self.known_id(
                &r.policy,
                &format!("{key}.policy"),
                Kind::Policy,
                &policy_ids,
            );
            if let (Some(matchers), Some(policy)) = (matchers, policy) {
                routing.routes.push(Route { matchers, policy });
            }
        }
        routing
    }

    fn policy(&mut self, id: &Spanned<String>, raw: &RawPolicy, known: &Known) -> Option<Policy> {
        let key = format!("policies.{}", id.get_ref());
        let mut ok = true;
        if raw.levels.is_empty() {
            self.report(
                id.span(),
                format!("{key}: a policy needs at least one level ([[{key}.levels]])"),
            );
            ok = false;
        }
        let mut levels = Vec::new();
        let mut previous: Option<Duration> = None;
        for (i, l) in raw.levels.iter().enumerate() {
            let level = self.level(l, &format!("{key}.levels[{i}]"), previous, known);
            match level {
                Some(level) => {
                    previous = Some(level.after);
                    levels.push(level);
                }
                None => ok = false,
            }
        }
        let repeat_interval = self.duration(
            &raw.repeat_interval,
            &format!("{key}.repeat_interval"),
            DEFAULT_REPEAT_INTERVAL,
        );
        let ack_timeout = self.parse_duration(&raw.ack_timeout, &format!("{key}.ack_timeout"));
        let mut fallback = Vec::new();
        for (i, f) in raw.fallback.iter().enumerate() {
            let k = format!("{key}.fallback[{i}]");
            match self.target(f, &k, known) {
                Some(Target::Person(_) | Target::Group(_) | Target::Schedule(_)) => {
                    self.report(
                        f.span(),
                        format!(
                            "{k}: a fallback is a channel (email:, slack:, webhook: or \
                             console), not people"
                        ),
                    );
                    ok = false;
                }
                Some(t) => fallback.push(t),
                None => ok = false,
            }
        }
        let phone_severities = match &raw.phone_severities {
            None => vec!["critical".to_string()],
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, s)| self.severity(s, &format!("{key}.phone_severities[{i}]")))
                .collect(),
        };
        ok.then(|| Policy {
            name: id.get_ref().clone(),
            levels,
            repeat_interval,
            ack_timeout,
            fallback,
            phone_severities,
        })
    }

    fn level(
        &mut self,
        raw: &RawLevel,
        key: &str,
        previous: Option<Duration>,
        known: &Known,
    ) -> Option<Level> {
        let mut ok = true;
        let after = match &raw.after {
            Some(a) => self.duration_or_zero(a, &format!("{key}.after")),
            None => Some(Duration::ZERO),
        };
        if let (Some(after), Some(previous)) = (after, previous)
            && after <= previous
        {
            let span = raw.after.as_ref().map_or(raw.notify.span(), |a| a.span());
            self.report(
                span,
                format!(
                    "{key}.after: {} is not later than the level before ({}); levels run \
                     in order of after",
                    fmt_duration(after),
                    fmt_duration(previous)
                ),
            );
            ok = false;
        }

        let mut via = Vec::new();
        for (j, v) in raw.via.iter().enumerate() {
            let k = format!("{key}.via[{j}]");
            match self.method(v, &k, known) {
                Some(m) if !via.contains(&m) => via.push(m),
                Some(_) => {}
                None => ok = false,
            }
        }

        if raw.notify.get_ref().is_empty() {
            self.report(
                raw.notify.span(),
                format!("{key}.notify: a level needs at least one target"),
            );
            ok = false;
        }
        let mut targets = Vec::new();
        for (k, t) in raw.notify.get_ref().iter().enumerate() {
            let tkey = format!("{key}.notify[{k}]");
            let Some(target) = self.target(t, &tkey, known) else {
                ok = false;
                continue;
            };
            let reaches_people = matches!(
                target,
                Target::Person(_) | Target::Group(_) | Target::Schedule(_)
            );
            if reaches_people && raw.via.is_empty() {
                self.report(
                    t.span(),
                    format!(
                        "{tkey}: {:?} names people, but the level has no via saying how to \
                         reach them (email, slack, sms or voice)",
                        t.get_ref().trim()
                    ),
                );
                ok = false;
            } else if reaches_people && !self.reachable(&target, &via, t, &tkey, known) {
                ok = false;
            }
            targets.push(target);
        }
        ok.then(|| Level {
            after: after.unwrap_or_default(),
            targets,
            via,
        })
    }

    /// Whether everyone `target` stands for has what each method needs; each who
    /// does not is reported, by name.
    fn reachable(
        &mut self,
        target: &Target,
        via: &[Method],
        at: &Spanned<String>,
        key: &str,
        known: &Known,
    ) -> bool {
        let (people, through): (&[&str], Option<String>) = match target {
            Target::Person(id) => (&[id.as_str()], None),
            Target::Group(id) => (
                known
                    .group_members
                    .get(id.as_str())
                    .map_or(&[], Vec::as_slice),
                Some(format!(" (in group {id:?})")),
            ),
            Target::Schedule(id) => (
                known
                    .schedule_people
                    .get(id.as_str())
                    .map_or(&[], Vec::as_slice),
                Some(format!(" (in schedule {id:?})")),
            ),
            _ => return true,
        };
        if let Target::Group(id) = target
            && known.mailing_lists.contains(id.as_str())
            && !known.email
        {
            self.report(
                at.span(),
                format!("{key}: group {id:?} has mailing lists, which need [channels.email]"),
            );
            return false;
        }
        let mut ok = true;
        for &id in people {
            // A person whose own entry is in error (or unknown) was reported there.
            let Some(person) = known.directory.people.get(id) else {
                continue;
            };
            // Methods grouped by the address they need: sms and voice share the phone.
            let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for &m in via {
                let (field, has) = match m {
                    Method::Email => ("an email", person.email.is_some()),
                    Method::Slack => ("a slack user id", person.slack.is_some()),
                    Method::Sms | Method::Voice => ("a phone", person.phone.is_some()),
                };
                if !has {
                    missing.entry(field).or_default().push(m.name());
                }
            }
            for (field, methods) in missing {
                self.report(
                    at.span(),
                    format!(
                        "{key}: person {id:?}{} has no {}, needed for {}",
                        through.as_deref().unwrap_or(""),
                        field.trim_start_matches("an ").trim_start_matches("a "),
                        methods.join(" and ")
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    /// A method of reaching people, and whether its channel is configured.
    fn method(&mut self, value: &Spanned<String>, key: &str, known: &Known) -> Option<Method> {
        let text = self.text(value, key)?;
        let method = match text.trim() {
            "email" => Method::Email,
            "slack" => Method::Slack,
            "sms" => Method::Sms,
            "voice" => Method::Voice,
            other => {
                let hint = crate::rules::suggest(other, ["email", "slack", "sms", "voice"])
                    .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
                self.report(
                    value.span(),
                    format!(
                        "{key}: unknown method {other:?}{hint}, expected email, slack, sms \
                         or voice"
                    ),
                );
                return None;
            }
        };
        let missing = match method {
            Method::Email if !known.email => "[channels.email]",
            Method::Slack if !known.slack_bot => {
                "a bot_token in [channels.slack] (direct messages use the Web API)"
            }
            Method::Sms | Method::Voice if !known.sms => "[channels.sms]",
            _ => return Some(method),
        };
        self.report(
            value.span(),
            format!("{key}: {:?} needs {missing}", method.name()),
        );
        None
    }

    /// One target, resolved and checked against what is configured.
    fn target(&mut self, value: &Spanned<String>, key: &str, known: &Known) -> Option<Target> {
        let text = self.text(value, key)?;
        let text = text.trim();
        let span = value.span();
        let Some((kind, rest)) = text.split_once(':') else {
            if text == "console" {
                if !known.console {
                    self.report(
                        span,
                        format!("{key}: \"console\" needs [channels.console] enabled = true"),
                    );
                    return None;
                }
                return Some(Target::Console);
            }
            let guess = if text.contains('@') {
                Some(format!("email:{text}"))
            } else if text.starts_with('#') {
                Some(format!("slack:{text}"))
            } else if known.people.contains(text) {
                Some(format!("person:{text}"))
            } else if known.groups.contains(text) {
                Some(format!("group:{text}"))
            } else if known.schedules.contains(text) {
                Some(format!("schedule:{text}"))
            } else {
                None
            };
            self.unknown_target(span, key, text, guess);
            return None;
        };
        let rest = rest.trim();
        let id = Spanned::new(span.clone(), rest.to_string());
        let target = match kind.trim() {
            "person" => Target::Person(self.known_id(&id, key, Kind::Person, &known.people)?),
            "group" => Target::Group(self.known_id(&id, key, Kind::Group, &known.groups)?),
            "schedule" => {
                Target::Schedule(self.known_id(&id, key, Kind::Schedule, &known.schedules)?)
            }
            "webhook" => {
                Target::Webhook(self.known_id(&id, key, Kind::Webhook, &known.webhooks)?)
            }
            "email" => Target::Email(self.email_address(&id, key)?),
            "slack" if rest == "by-severity" => Target::SlackBySeverity,
            "slack"
                if rest.starts_with('#')
                    && rest.len() > 1
                    && !rest.contains(char::is_whitespace) =>
            {
                Target::SlackChannel(rest.to_string())
            }
            "slack" => {
                self.report(
                    span,
                    format!(
                        "{key}: unknown Slack target {text:?}: expected slack:by-severity or \
                         slack:#CHANNEL"
                    ),
                );
                return None;
            }
            other => {
                let kinds = ["person", "group", "schedule", "slack", "email", "webhook"];
                let guess = crate::rules::suggest(other, kinds).map(|k| format!("{k}:{rest}"));
                self.unknown_target(span, key, text, guess);
                return None;
            }
        };
        let missing = match target {
            Target::SlackBySeverity | Target::SlackChannel(_) if !known.slack => "[channels.slack]",
            Target::Email(_) if !known.email => "[channels.email]",
            _ => return Some(target),
        };
        self.report(span, format!("{key}: {text:?} needs {missing}"));
        None
    }

    fn unknown_target(
        &mut self,
        span: std::ops::Range<usize>,
        key: &str,
        text: &str,
        guess: Option<String>,
    ) {
        let message = match guess {
            Some(g) => format!("{key}: unknown target {text:?} (did you mean {g:?}?)"),
            None => format!("{key}: unknown target {text:?}: expected {TARGET_FORMS}"),
        };
        self.report(span, message);
    }

    /// `value` if it is one of `known`; otherwise reported, with the closest id.
    pub(super) fn known_id(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        kind: Kind,
        known: &BTreeSet<&str>,
    ) -> Option<String> {
        let id = self.text(value, key)?;
        let id = id.trim();
        if known.contains(id) {
            return Some(id.to_string());
        }
        let hint = match crate::rules::suggest(id, known.iter().copied()) {
            Some(s) => format!(" (did you mean {s:?}?)"),
            None if known.is_empty() => format!(" (there is no [{}] section)", section(kind)),
            None => String::new(),
        };
        self.report(
            value.span(),
            format!("{key}: unknown {} {id:?}{hint}", kind.name()),
        );
        None
    }

    /// Ids are keys of the file and words of targets (`person:ID`): letters, digits,
    /// `_` and `-` only, so a target never has to be quoted or escaped.
    pub(super) fn check_id(&mut self, id: &Spanned<String>, section: &str) -> bool {
        let text = id.get_ref();
        if !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return true;
        }
        self.report(
            id.span(),
            format!("{section}.{text:?}: an id may hold only letters, digits, _ and -"),
        );
        false
    }

    fn label_name(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.text(value, key)?;
        let text = text.trim();
        if labels::valid_name(text) {
            return Some(text.to_string());
        }
        self.report(value.span(), format!("{key}: {text:?} is not a label name"));
        None
    }

    /// A severity for `phone_severities`. Alerts from Alertmanager may carry any
    /// severity, so only a near miss of tocsin's own is refused.
    fn severity(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.nonempty(value, key)?;
        if SEVERITIES.contains(&text.as_str()) {
            return Some(text);
        }
        match crate::rules::suggest(&text, SEVERITIES.iter().copied()) {
            Some(s) => {
                self.report(
                    value.span(),
                    format!("{key}: unknown severity {text:?} (did you mean {s:?}?)"),
                );
                None
            }
            None => Some(text),
        }
    }

    /// Label matchers as silences write them: `severity=critical`, `host!=db-1`,
    /// `host=~"bot-.*"`, `env!~test`. `None` if any is refused (each is reported).
    pub(super) fn matchers(&mut self, list: &Strs, key: &str) -> Option<Vec<Matcher>> {
        let mut matchers = Vec::new();
        let mut ok = true;
        for (i, m) in list.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(text) = self.text(m, &k) else {
                ok = false;
                continue;
            };
            match Matcher::parse(&text) {
                Ok(matcher) => matchers.push(matcher),
                Err(why) => {
                    self.report(m.span(), format!("{k}: {why}"));
                    ok = false;
                }
            }
        }
        ok.then_some(matchers)
    }
}

pub(super) fn strs(list: &[Spanned<String>]) -> Vec<&str> {
    list.iter().map(|s| s.get_ref().as_str()).collect()
}

pub(super) fn ids<T>(map: &BTreeMap<Spanned<String>, T>) -> BTreeSet<&str> {
    map.keys().map(|k| k.get_ref().as_str()).collect()
}

fn section(kind: Kind) -> &'static str {
    match kind {
        Kind::Person => "people",
        Kind::Group => "groups",
        Kind::Schedule => "schedules",
        Kind::Policy => "policies",
        Kind::Webhook => "[channels.webhook]",
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_string()
    } else {
        humantime::format_duration(d).to_string()
    }
}
