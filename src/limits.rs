//! What Slack, Twilio and mail servers accept, written down once, each limit with
//! the page that documents it. The channels (`notify`) shape every message to fit
//! these, and the configuration (`config`) refuses settings that could not (a
//! Twilio voice that does not speak the configured language). Counts are in the
//! unit the provider counts: Slack characters (counted here in UTF-16 units, never
//! fewer than Slack counts), Twilio's UTF-8 bytes and URL-encoded characters, SMS
//! septets and UTF-16 units, SMTP octets.

/// Slack's Block Kit and `chat.postMessage` limits.
pub mod slack {
    /// The top-level `text` of a message; Slack truncates beyond it
    /// (<https://api.slack.com/methods/chat.postMessage>, "truncating content").
    pub const TEXT: usize = 40_000;
    /// Blocks in one message (<https://api.slack.com/reference/block-kit/blocks>).
    pub const BLOCKS: usize = 50;
    /// A section's `text` (<https://api.slack.com/reference/block-kit/blocks#section>).
    pub const SECTION_TEXT: usize = 3_000;
    /// Entries in a section's `fields`, and the text of each (same page).
    pub const FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2_000;
    /// Elements of a context block (<https://api.slack.com/reference/block-kit/blocks#context>).
    /// Their text is held to [`FIELD_TEXT`] as well.
    pub const CONTEXT_ELEMENTS: usize = 10;
    /// Elements of an actions block (<https://api.slack.com/reference/block-kit/blocks#actions>).
    pub const ACTION_ELEMENTS: usize = 25;
    /// A block's `block_id` and an element's `action_id` (same pages).
    pub const BLOCK_ID: usize = 255;
    pub const ACTION_ID: usize = 255;
    /// A button's label and value
    /// (<https://api.slack.com/reference/block-kit/block-elements#button>).
    pub const BUTTON_TEXT: usize = 75;
    pub const BUTTON_VALUE: usize = 2_000;

    /// Characters as this module counts them for Slack: UTF-16 units, which is
    /// never fewer than Slack counts (an emoji is one character to Slack, two here).
    pub fn chars(text: &str) -> usize {
        text.encode_utf16().count()
    }
}

/// Twilio's limits on a text message and on a call's TwiML.
pub mod twilio {
    /// A message `Body`, in characters: longer is refused with error 21617
    /// (<https://www.twilio.com/docs/api/errors/21617>).
    pub const SMS_BODY_CHARS: usize = 1_600;
    /// Twilio recommends at most ten segments per message
    /// (<https://www.twilio.com/docs/glossary/what-sms-character-limit>); ten GSM-7
    /// parts (1,530 septets) also stay under [`SMS_BODY_CHARS`].
    pub const SMS_SEGMENTS: u32 = 10;
    /// GSM-7: septets in a lone segment and in each part of a concatenated message
    /// (the user data header takes the rest); UCS-2: UTF-16 units likewise
    /// (same glossary page, and 3GPP TS 23.038 / 23.040).
    pub const GSM7_SINGLE: usize = 160;
    pub const GSM7_PART: usize = 153;
    pub const UCS2_SINGLE: usize = 70;
    pub const UCS2_PART: usize = 67;

    /// The `Twiml` parameter of a Call, in characters: longer is refused with
    /// error 32018 (<https://www.twilio.com/docs/api/errors/32018>). Counted here
    /// in UTF-8 bytes, never fewer than the characters.
    pub const TWIML_CHARS: usize = 4_000;
    /// The text of one `<Say>` once URL-encoded: warning 13521
    /// (<https://www.twilio.com/docs/api/errors/13521>). Held here for the whole
    /// `Twiml` parameter as the form carries it, which contains the `<Say>` text.
    pub const SAY_URL_ENCODED: usize = 4_500;

    /// Who synthesises a voice, which sets how long a `<Say>` may be.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Engine {
        /// Twilio's own `man` and `woman`.
        Basic,
        Polly,
        Google,
    }

    impl Engine {
        /// The longest `<Say>` text in UTF-8 bytes (error 13521, above): 4,096 for
        /// basic voices, 3,000 for Amazon Polly, 5,000 for Google.
        pub fn say_bytes(self) -> usize {
            match self {
                Engine::Basic => 4_096,
                Engine::Polly => 3_000,
                Engine::Google => 5_000,
            }
        }
    }

    /// A Twilio `<Say>` voice and the `language` values it speaks.
    #[derive(Clone, Copy, Debug)]
    pub struct Voice {
        pub name: &'static str,
        pub engine: Engine,
        pub languages: &'static [&'static str],
    }

    const fn voice(
        name: &'static str,
        engine: Engine,
        languages: &'static [&'static str],
    ) -> Voice {
        Voice {
            name,
            engine,
            languages,
        }
    }

    const JA: &[&str] = &["ja-JP"];
    const EN_US: &[&str] = &["en-US"];
    const EN_GB: &[&str] = &["en-GB"];

    /// The (voice, language) pairs Twilio documents for Japanese and English
    /// (<https://www.twilio.com/docs/voice/twiml/say/text-speech>, the voices table;
    /// <https://www.twilio.com/docs/voice/twiml/say> for `man` and `woman`). "Using
    /// an invalid combination of voice and language may result in error and
    /// `<Say>` instruction failure": a call that says nothing, so the configuration
    /// refuses any pair not listed here.
    pub const VOICES: &[Voice] = &[
        voice("man", Engine::Basic, &["en", "en-gb", "es", "fr", "de"]),
        voice("woman", Engine::Basic, &["en", "en-gb", "es", "fr", "de"]),
        // Japanese.
        voice("Polly.Mizuki", Engine::Polly, JA),
        voice("Polly.Takumi", Engine::Polly, JA),
        voice("Polly.Takumi-Neural", Engine::Polly, JA),
        voice("Polly.Kazuha-Neural", Engine::Polly, JA),
        voice("Polly.Tomoko-Neural", Engine::Polly, JA),
        voice("Google.ja-JP-Standard-A", Engine::Google, JA),
        voice("Google.ja-JP-Standard-B", Engine::Google, JA),
        voice("Google.ja-JP-Standard-C", Engine::Google, JA),
        voice("Google.ja-JP-Standard-D", Engine::Google, JA),
        voice("Google.ja-JP-Wavenet-A", Engine::Google, JA),
        voice("Google.ja-JP-Wavenet-B", Engine::Google, JA),
        voice("Google.ja-JP-Wavenet-C", Engine::Google, JA),
        voice("Google.ja-JP-Wavenet-D", Engine::Google, JA),
        voice("Google.ja-JP-Neural2-B", Engine::Google, JA),
        voice("Google.ja-JP-Neural2-C", Engine::Google, JA),
        voice("Google.ja-JP-Neural2-D", Engine::Google, JA),
        // English.
        voice("Polly.Joanna", Engine::Polly, EN_US),
        voice("Polly.Salli", Engine::Polly, EN_US),
        voice("Polly.Kendra", Engine::Polly, EN_US),
        voice("Polly.Kimberly", Engine::Polly, EN_US),
        voice("Polly.Ivy", Engine::Polly, EN_US),
        voice("Polly.Joey", Engine::Polly, EN_US),
        voice("Polly.Justin", Engine::Polly, EN_US),
        voice("Polly.Matthew", Engine::Polly, EN_US),
        voice("Polly.Joanna-Neural", Engine::Polly, EN_US),
        voice("Polly.Matthew-Neural", Engine::Polly, EN_US),
        voice("Polly.Amy", Engine::Polly, EN_GB),
        voice("Polly.Emma", Engine::Polly, EN_GB),
        voice("Polly.Brian", Engine::Polly, EN_GB),
        voice("Polly.Amy-Neural", Engine::Polly, EN_GB),
        voice("Polly.Brian-Neural", Engine::Polly, EN_GB),
        voice("Google.en-US-Standard-C", Engine::Google, EN_US),
        voice("Google.en-US-Standard-D", Engine::Google, EN_US),
        voice("Google.en-GB-Standard-A", Engine::Google, EN_GB),
        voice("Google.en-GB-Standard-B", Engine::Google, EN_GB),
    ];

    /// The default: Amazon Polly's Mizuki, a standard Japanese voice, since the
    /// seed's alerts are written in Japanese.
    pub const DEFAULT_VOICE: &str = "Polly.Mizuki";
    pub const DEFAULT_LANGUAGE: &str = "ja-JP";

    /// The voice named `name`, if Twilio documents it.
    pub fn voice_named(name: &str) -> Option<&'static Voice> {
        VOICES.iter().find(|v| v.name == name)
    }
}

/// What any mail server must take.
pub mod email {
    /// A message, header and body as sent in SMTP DATA, in octets: RFC 5321
    /// §4.5.3.1.7 says no server may refuse less than 64K octets, so a mail within
    /// this is accepted everywhere (<https://www.rfc-editor.org/rfc/rfc5321#section-4.5.3.1.7>).
    pub const MESSAGE_OCTETS: usize = 64 * 1024;
    /// A line, without its CRLF (RFC 5322 §2.1.1,
    /// <https://www.rfc-editor.org/rfc/rfc5322#section-2.1.1>). lettre's transfer
    /// encodings and header folding keep every line within it.
    pub const LINE_OCTETS: usize = 998;
}

#[cfg(test)]
mod tests {
    use super::twilio::*;

    #[test]
    fn every_voice_is_listed_once_and_the_default_speaks_japanese() {
        let mut names: Vec<&str> = VOICES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        let default = voice_named(DEFAULT_VOICE).unwrap();
        assert!(default.languages.contains(&DEFAULT_LANGUAGE));
        // Google names carry their language; the table agrees with them.
        for v in VOICES.iter().filter(|v| v.engine == Engine::Google) {
            let lang = &v.name["Google.".len().."Google.".len() + 5];
            assert_eq!(v.languages, [lang], "{}", v.name);
        }
    }
}
