//! Stage one: the file as serde reads it. Every field is optional (absent means the
//! default) and keeps its span, so stage two can point at the value it refuses.
//! Strings stay strings here: `${VAR}` expansion and parsing (durations, addresses,
//! sizes) happen in `compile`, after deserialization, so a serde error can only ever
//! show what the file says and never an expanded secret.
//!
//! `deny_unknown_fields` everywhere: a misspelt key is an error, not a silent default.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::Spanned;

pub(crate) type Str = Option<Spanned<String>>;
/// A list of strings, each with its span; absent is empty.
pub(crate) type Strs = Vec<Spanned<String>>;
/// A table of named entries (`[people.tanaka]`), keyed by the id as written.
pub(crate) type Named<T> = BTreeMap<Spanned<String>, T>;

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub storage: RawStorage,
    pub rules: RawRules,
    pub limits: RawLimits,
    pub tokens: Vec<RawToken>,
    pub scrape: Vec<RawScrape>,
    pub channels: RawChannels,
    pub log: RawLog,
    pub people: Named<RawPerson>,
    pub groups: Named<RawGroup>,
    pub schedules: Named<RawSchedule>,
    pub escalation: RawEscalation,
    pub policies: Named<RawPolicy>,
    pub maintenance: Vec<RawMaintenance>,
    pub reports: Vec<RawReport>,
    pub web: RawWeb,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWeb {
    pub user_header: Str,
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Str,
    pub body_limit: Option<Spanned<RawSize>>,
    pub request_timeout: Str,
    pub public_url: Str,
    pub advertise_url: Str,
    pub max_connections: Option<Spanned<u64>>,
    pub header_read_timeout: Str,
    pub idle_timeout: Str,
    pub open: Option<Strs>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub backend: Str,
    pub path: Str,
    pub url: Str,
    pub retention: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRules {
    pub paths: Option<Vec<Spanned<String>>>,
    pub max_window: Str,
    pub evaluation_interval: Str,
    pub lookback: Str,
    pub watch_interval: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_series: Option<Spanned<u64>>,
    pub max_samples_per_series: Option<Spanned<u64>>,
    pub max_labels: Option<Spanned<u64>>,
    pub max_label_name_bytes: Option<Spanned<RawSize>>,
    pub max_label_value_bytes: Option<Spanned<RawSize>>,
    pub max_annotation_value_bytes: Option<Spanned<RawSize>>,
    pub future_tolerance: Str,
    pub max_silence_duration: Str,
}

/// `name` and `token` are required: a token without a name could not be recorded as
/// the actor of what it does.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub name: Spanned<String>,
    pub token: Spanned<String>,
    /// Absent: every scope but `admin`, as tokens could do before scopes existed.
    #[serde(default)]
    pub scopes: Option<Strs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScrape {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub interval: Str,
    #[serde(default)]
    pub timeout: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawChannels {
    pub console: RawConsole,
    /// Spanned, so a section missing a required choice can be pointed at.
    pub slack: Option<Spanned<RawSlack>>,
    pub email: Option<Spanned<RawEmail>>,
    pub sms: Option<Spanned<RawSms>>,
    pub webhook: Vec<RawWebhook>,
    pub alertmanager: Vec<RawAlertmanager>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSlack {
    pub bot_token: Str,
    pub webhook_url: Str,
    pub signing_secrets: Strs,
    pub api_url: Str,
    pub timeout: Str,
    pub default_channel: Str,
    pub channels: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    pub host: Spanned<String>,
    #[serde(default)]
    pub port: Option<Spanned<u64>>,
    #[serde(default)]
    pub tls: Str,
    #[serde(default)]
    pub username: Str,
    #[serde(default)]
    pub password: Str,
    pub from: Spanned<String>,
    #[serde(default)]
    pub message_id_domain: Str,
    #[serde(default)]
    pub timeout: Str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSms {
    pub account_sid: Spanned<String>,
    pub auth_token: Spanned<String>,
    pub from: Spanned<String>,
    #[serde(default)]
    pub api_url: Str,
    #[serde(default)]
    pub max_segments: Option<Spanned<u64>>,
    #[serde(default)]
    pub voice: Str,
    #[serde(default)]
    pub voice_language: Str,
    #[serde(default)]
    pub timeout: Str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub bearer: Str,
    #[serde(default)]
    pub timeout: Str,
}

/// `[[channels.alertmanager]]`: an Alertmanager that sends alerts to tocsin and
/// is silenced when one of them is acknowledged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlertmanager {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub external_urls: Strs,
    #[serde(default)]
    pub generator_urls: Strs,
    #[serde(default)]
    pub bearer: Str,
    #[serde(default)]
    pub timeout: Str,
    #[serde(default)]
    pub max_silence: Str,
    #[serde(default)]
    pub watch_interval: Str,
    #[serde(default)]
    pub incident: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPerson {
    pub name: Str,
    pub email: Str,
    pub phone: Str,
    pub slack: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub members: Strs,
    pub emails: Strs,
}

/// `people` and `start` are required: a rotation of nobody, or counted from no
/// day, would page no one without saying so.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub people: Spanned<Strs>,
    pub start: Spanned<String>,
    #[serde(default)]
    pub time_zone: Str,
    #[serde(default)]
    pub handoff: Str,
    #[serde(default)]
    pub shift: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawEscalation {
    pub default_policy: Str,
    pub group_by: Option<Strs>,
    pub group_wait: Str,
    pub routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    #[serde(rename = "match", default)]
    pub matchers: Strs,
    pub policy: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub levels: Vec<RawLevel>,
    #[serde(default)]
    pub repeat_interval: Str,
    #[serde(default)]
    pub ack_timeout: Str,
    #[serde(default)]
    pub fallback: Strs,
    #[serde(default)]
    pub phone_severities: Option<Strs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLevel {
    #[serde(default)]
    pub after: Str,
    pub notify: Spanned<Strs>,
    #[serde(default)]
    pub via: Strs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    pub name: Spanned<String>,
    pub start: Spanned<String>,
    pub duration: Spanned<String>,
    #[serde(default)]
    pub time_zone: Str,
    #[serde(rename = "match", default)]
    pub matchers: Strs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReport {
    pub name: Spanned<String>,
    pub at: Spanned<String>,
    pub period: Spanned<String>,
    pub to: Spanned<Strs>,
    #[serde(default)]
    pub time_zone: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConsole {
    pub enabled: Option<Spanned<bool>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Str,
    pub level: Str,
}

/// A size as written: a number of bytes, or a string with a unit (`"1MiB"`).
pub(crate) enum RawSize {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<RawSize, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = RawSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size such as \"1MiB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                u64::try_from(v)
                    .map(RawSize::Bytes)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }

        d.deserialize_any(SizeVisitor)
    }
}
