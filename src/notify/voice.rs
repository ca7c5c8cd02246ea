//! What a call says: inline TwiML with one `<Say>` in the configured voice, read
//! twice (the first words are often lost while the phone reaches an ear).
//!
//! Twilio counts a call's text in bytes, not characters: a `<Say>` holds 3,000
//! UTF-8 bytes for Amazon Polly voices (4,096 basic, 5,000 Google), the `Twiml`
//! parameter 4,000 characters, and the text URL-encoded 4,500 (`limits::twilio`).
//! A Japanese character is three bytes and nine URL-encoded characters, so about
//! 480 of them fit. What is cut is the details (labels, summary, the alerts of a
//! batch); what the call is about and how to acknowledge always survive.

use std::collections::BTreeMap;

use super::fit::one_line;
use super::fit::{self, ranges};
use super::{AlertSnapshot, Message, most_severe};
use crate::alert::NotifyReason;
use crate::escape::xml;
use crate::limits::twilio::{self as limits, Engine};

/// The TwiML for `msg`, spoken by `voice` in `language`, within every limit Twilio
/// puts on it.
pub fn twiml(msg: &Message, voice: &str, language: &str) -> String {
    let engine = limits::voice_named(voice).map_or(Engine::Polly, |v| v.engine);
    let open = format!(
        r#"<Response><Say voice="{}" language="{}" loop="2">"#,
        xml(voice),
        xml(language)
    );
    let close = "</Say></Response>";
    let document = |said: &str| format!("{open}{said}{close}");
    let fits = |said: &str| fits(&document(said), said, engine);

    let speech = speech(msg);
    let (head, tail) = (xml(&speech.head), xml(&speech.tail));
    let with = |details: &str| format!("{head}{}{tail}", xml(details));
    let said = match &speech.details {
        Details::Text(text) => {
            let cut_at = fit::cuts(text);
            fit::longest(cut_at.len() - 1, |k| fits(&with(&text[..cut_at[k]])))
                .map(|k| with(&text[..cut_at[k]]))
        }
        Details::Items(items) => fit::longest(items.len(), |k| fits(&with(&items[..k].concat())))
            .map(|k| with(&items[..k].concat())),
    };
    let said = said.unwrap_or_else(|| {
        // A rule name of thousands of characters: say what fits of everything.
        let all = format!("{}{}{}", speech.head, speech.details.concat(), speech.tail);
        let cut_at = fit::cuts(&all);
        let k = fit::longest(cut_at.len() - 1, |k| fits(&xml(&all[..cut_at[k]]))).unwrap_or(0);
        xml(&all[..cut_at[k]])
    });
    document(&said)
}

/// Whether a TwiML document whose `<Say>` holds `said` (escaped) is one Twilio
/// takes: the text within the voice's bytes, the document within 4,000, and the
/// form parameter carrying it within 4,500 URL-encoded characters.
pub fn fits(twiml: &str, said: &str, engine: Engine) -> bool {
    said.len() <= engine.say_bytes()
        && twiml.len() <= limits::TWIML_CHARS
        && url_encoded_len(twiml) <= limits::SAY_URL_ENCODED
}

/// The length of `text` as the `Twiml` form field carries it
/// (application/x-www-form-urlencoded, as reqwest's `form` writes it).
pub fn url_encoded_len(text: &str) -> usize {
    serde_urlencoded::to_string([("", text)]).map_or(usize::MAX, |s| s.len() - 1)
}

/// What the call says: a head (what and which incident), details that may be cut,
/// and a tail (how to acknowledge).
struct Speech {
    head: String,
    details: Details,
    tail: String,
}

enum Details {
    /// Cut anywhere (one alert's labels and summary).
    Text(String),
    /// Cut only between items (the alerts of a batch: a number is never half said).
    Items(Vec<String>),
}

impl Details {
    fn concat(&self) -> String {
        match self {
            Details::Text(t) => t.clone(),
            Details::Items(items) => items.concat(),
        }
    }
}

fn speech(msg: &Message) -> Speech {
    let paging = msg.reason.is_page();
    let mut tail = String::new();
    let (head, details) = match msg.alerts.as_slice() {
        [a] => {
            let incident = a
                .incident
                .map_or_else(String::new, |n| format!("インシデント {n} 番、"));
            let rule = one_line(&a.rule);
            let mut details = String::new();
            if paging {
                let labels = spoken_labels(&a.labels);
                if !labels.is_empty() {
                    details.push_str(&format!("{labels}。"));
                }
                if let Some(summary) = a.annotations.get("summary") {
                    details.push_str(&format!("{}。", one_line(summary)));
                }
                if let Some(n) = a.incident {
                    tail = format!("確認するには、SMS で ACK {n} と返信してください。");
                }
            }
            let head = match msg.reason {
                NotifyReason::Resolved => format!("{incident}{rule} は解決しました。"),
                NotifyReason::Acknowledged => {
                    let who = a
                        .acked_by
                        .as_deref()
                        .map_or_else(String::new, |w| format!("{} さんが", one_line(w)));
                    format!("{incident}{rule} は{who}確認しました。")
                }
                reason => format!(
                    "tocsin から{}です。{}{incident}{rule}。",
                    severity_ja(&a.severity),
                    page_ja(reason)
                ),
            };
            (head, Details::Text(details))
        }
        many => {
            if paging && many.iter().any(|a| a.incident.is_some()) {
                tail = "まとめて確認するには、SMS で ACK ALL と返信してください。".to_string();
            }
            let n = many.len();
            let head = match msg.reason {
                NotifyReason::Resolved => format!("{n} 件のアラートが解決しました。"),
                NotifyReason::Acknowledged => format!("{n} 件のアラートが確認されました。"),
                reason => format!(
                    "tocsin から{} {n} 件です。{}",
                    severity_ja(most_severe(many.iter().map(|a| a.severity.as_str()))),
                    page_ja(reason)
                ),
            };
            (head, Details::Items(batch_items(many)))
        }
    };
    if paging && msg.level > 1 {
        tail = format!("エスカレーション レベル {} です。{tail}", msg.level);
    }
    Speech {
        head,
        details,
        tail,
    }
}

/// A batch, said in pieces: the incident numbers as ranges (`インシデント 2 から 205
/// 番、`, `300 番、`), then each rule with its count (`投稿成功率低下 150 件、`).
fn batch_items(alerts: &[AlertSnapshot]) -> Vec<String> {
    let mut items = Vec::new();
    for (i, r) in ranges(alerts.iter().filter_map(|a| a.incident))
        .into_iter()
        .enumerate()
    {
        let said = match r.split_once('-') {
            Some((from, to)) => format!("{from} から {to} 番"),
            None => format!("{r} 番"),
        };
        items.push(format!(
            "{}{said}、",
            if i == 0 { "インシデント " } else { "" }
        ));
    }
    let mut rules: Vec<(String, usize)> = Vec::new();
    for a in alerts {
        let rule = one_line(&a.rule);
        match rules.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, n)) => *n += 1,
            None => rules.push((rule, 1)),
        }
    }
    for (rule, n) in rules {
        items.push(format!("{rule} {n} 件、"));
    }
    items
}

fn severity_ja(severity: &str) -> String {
    match severity {
        "critical" => "重大アラート".to_string(),
        "warning" => "警告アラート".to_string(),
        "info" => "お知らせ".to_string(),
        "" => "アラート".to_string(),
        other => format!("{} アラート", one_line(other)),
    }
}

fn page_ja(reason: NotifyReason) -> &'static str {
    match reason {
        NotifyReason::AckExpired => "確認の期限が切れました。",
        NotifyReason::SilenceEnded => "サイレンスが終わりました。",
        NotifyReason::Unacknowledged => "確認が取り消されました。",
        _ => "",
    }
}

/// `account a1、host web-1`: spoken, so no `=` for the voice to read out.
fn spoken_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
        .map(|(k, v)| format!("{k} {}", one_line(v)))
        .collect::<Vec<_>>()
        .join("、")
}

#[cfg(test)]
mod tests {
    use super::super::sms::tests::{alert, message};
    use super::*;

    fn said(t: &str) -> &str {
        let start = t
            .find('>')
            .and_then(|i| t[i + 1..].find('>').map(|j| i + j + 2));
        &t[start.unwrap()..t.len() - "</Say></Response>".len()]
    }

    #[test]
    fn the_voice_and_language_are_named_and_label_text_is_escaped() {
        let mut a = alert(42, "Disk<Full>", &[("note", "a & \"b\"\u{1}")]);
        a.annotations.insert("summary".into(), "<Hangup/>".into());
        let t = twiml(
            &message(NotifyReason::Firing, 1, vec![a]),
            "Polly.Mizuki",
            "ja-JP",
        );
        assert!(
            t.starts_with(r#"<Response><Say voice="Polly.Mizuki" language="ja-JP" loop="2">"#),
            "{t}"
        );
        assert!(t.ends_with("</Say></Response>"), "{t}");
        assert!(t.contains("Disk&lt;Full&gt;"), "{t}");
        assert!(t.contains("note a &amp; &quot;b&quot; 。"), "{t}");
        assert!(t.contains("&lt;Hangup/&gt;"), "{t}");
        assert!(!t.contains('\u{1}'));
        assert!(t.contains("ACK 42"), "{t}");
    }

    #[test]
    fn a_japanese_summary_is_cut_to_twilios_bytes_and_the_ack_line_survives() {
        let mut a = alert(42, "巨大説明テスト", &[]);
        a.annotations.insert("summary".into(), "説明".repeat(960));
        let t = twiml(
            &message(NotifyReason::Firing, 1, vec![a]),
            "Polly.Mizuki",
            "ja-JP",
        );
        assert!(
            said(&t).len() <= Engine::Polly.say_bytes(),
            "{}",
            said(&t).len()
        );
        assert!(t.len() <= limits::TWIML_CHARS);
        assert!(url_encoded_len(&t) <= limits::SAY_URL_ENCODED);
        assert!(t.contains("ACK 42 と返信してください。</Say>"), "{t}");
        // As much of the summary as the limits allow: the next character would not fit.
        let kept = said(&t).matches('説').count() + said(&t).matches('明').count();
        assert!(kept > 400, "{kept}");
    }

    #[test]
    fn entities_are_never_cut_in_half_and_a_giant_rule_is_cut_whole() {
        let mut a = alert(42, "DiskFull", &[]);
        a.annotations.insert("summary".into(), "&".repeat(5000));
        let t = twiml(&message(NotifyReason::Firing, 1, vec![a]), "man", "en");
        assert!(url_encoded_len(&t) <= limits::SAY_URL_ENCODED);
        assert!(t.contains("ACK 42 と返信してください。</Say>"), "{t}");
        assert_eq!(t.matches('&').count(), t.matches("&amp;").count());

        let giant = alert(43, &"<".repeat(5000), &[]);
        let t = twiml(&message(NotifyReason::Firing, 1, vec![giant]), "man", "en");
        assert!(url_encoded_len(&t) <= limits::SAY_URL_ENCODED);
        assert!(t.ends_with("&lt;</Say></Response>"), "{t}");
    }

    #[test]
    fn a_batch_says_its_count_and_numbers_and_how_to_ack_all() {
        let alerts: Vec<AlertSnapshot> =
            (2..=205).map(|n| alert(n, "投稿成功率低下", &[])).collect();
        let t = twiml(
            &message(NotifyReason::Firing, 1, alerts),
            "Polly.Mizuki",
            "ja-JP",
        );
        assert_eq!(
            said(&t),
            "tocsin から重大アラート 204 件です。インシデント 2 から 205 番、\
             投稿成功率低下 204 件、まとめて確認するには、SMS で ACK ALL と返信してください。"
        );
    }
}
