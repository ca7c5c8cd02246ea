//! Stage one: the file as serde reads it. Every field is optional (absent means the
//! default) and keeps its span, so stage two can point at the value it refuses.
//! Strings stay strings here: `${VAR}` expansion and parsing (durations, addresses,
//! sizes) happen in `compile`, after deserialization, so a serde error can only ever
//! show what the file says and never an expanded secret.
//!
//! `deny_unknown_fields` everywhere: a misspelt key is an error, not a silent default.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::Spanned;

pub(crate) type Str = Option<Spanned<String>>;

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
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Str,
    pub body_limit: Option<Spanned<RawSize>>,
    pub request_timeout: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub path: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRules {
    pub paths: Option<Vec<Spanned<String>>>,
    pub max_window: Str,
    pub evaluation_interval: Str,
    pub lookback: Str,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_series: Option<Spanned<u64>>,
    pub max_samples_per_series: Option<Spanned<u64>>,
    pub max_labels: Option<Spanned<u64>>,
}

/// `name` and `token` are required: a token without a name could not be recorded as
/// the actor of what it does.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub name: Spanned<String>,
    pub token: Spanned<String>,
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
