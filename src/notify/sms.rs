//! SMS and voice calls through Twilio's REST API (reqwest, form-encoded, basic auth).
//!
//! A text is written for a phone screen: severity, incident number, rule, the labels
//! that tell two alerts apart, the summary, and how to acknowledge. It is cut to the
//! configured number of segments, and the cut falls on the summary so "Reply ACK 42"
//! always survives; a batch always says how many alerts it stands for and offers
//! `ACK ALL`. Segment arithmetic (GSM-7 vs UCS-2) lives in pure functions here
//! because Japanese text costs more than twice as many segments as English. What a
//! call says is in `voice.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::fit::{self, one_line, ranges};
use super::webhook::{http_client, retry_after, transport_error};
use super::{AlertSnapshot, Delivered, Message, SendError, most_severe, severity_word, voice};
use crate::alert::NotifyReason;
use crate::config::{Secret, TwilioSettings};
use crate::escape::line;
use crate::limits;

pub struct Twilio {
    settings: TwilioSettings,
    /// Built once: it keeps the TLS connection to Twilio open between messages.
    client: Result<reqwest::Client, String>,
}

/// The part of a Twilio answer we read: `sid` on success, `code` and `message` on
/// failure.
#[derive(Deserialize, Default)]
struct TwilioAnswer {
    sid: Option<String>,
    code: Option<u32>,
    message: Option<String>,
}

impl Twilio {
    pub fn new(settings: TwilioSettings) -> Twilio {
        let client = http_client(settings.timeout);
        Twilio { settings, client }
    }

    /// Sends `msg` as one SMS to `to` (E.164). The reference is the Message SID.
    pub async fn send_sms(&self, to: &str, msg: &Message) -> Result<Delivered, SendError> {
        let body = sms_body(msg, self.settings.max_segments);
        let form = [
            ("To", to),
            ("From", self.settings.from.as_str()),
            ("Body", body.as_str()),
        ];
        self.create("Messages", "sms", &form).await
    }

    /// Calls `to` and reads `msg` out (TwiML `<Say>` in the configured voice). The
    /// reference is the Call SID.
    pub async fn call(&self, to: &str, msg: &Message) -> Result<Delivered, SendError> {
        let s = &self.settings;
        let twiml = voice::twiml(msg, &s.voice, &s.voice_language);
        let form = [
            ("To", to),
            ("From", self.settings.from.as_str()),
            ("Twiml", twiml.as_str()),
        ];
        self.create("Calls", "voice", &form).await
    }

    /// `POST {api}/2010-04-01/Accounts/{sid}/{resource}.json`: creates a Message or
    /// a Call, and maps Twilio's answer to delivered / retry / permanent.
    async fn create(
        &self,
        resource: &str,
        what: &str,
        form: &[(&str, &str)],
    ) -> Result<Delivered, SendError> {
        let what = format!("twilio {what}");
        let s = &self.settings;
        let client = self
            .client
            .as_ref()
            .map_err(|e| SendError::permanent(format!("{what}: {e}")))?;
        let mut url = reqwest::Url::parse(&s.api_url)
            .map_err(|e| SendError::permanent(format!("{what}: api_url is invalid: {e}")))?;
        // Segments are escaped one by one, so an odd account SID cannot change the path.
        url.path_segments_mut()
            .map_err(|()| SendError::permanent(format!("{what}: api_url cannot take a path")))?
            .pop_if_empty()
            .extend([
                "2010-04-01",
                "Accounts",
                &s.account_sid,
                &format!("{resource}.json"),
            ]);

        let response = client
            .post(url)
            .basic_auth(&s.account_sid, Some(s.auth_token.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| transport_error(&what, e, s.timeout))?;

        let status = response.status();
        let headers = response.headers().clone();
        // Twilio's answers are small; a cap keeps a broken proxy from feeding us forever.
        let answer: TwilioAnswer = read_capped(response, 64 * 1024)
            .await
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        if status.is_success() {
            // Once Twilio said 201 the text is on its way: an unreadable body must not
            // turn into a retry that pages the person twice.
            return Ok(Delivered {
                reference: answer.sid,
            });
        }

        let reason = redact(&failure_reason(&what, status, &answer), &s.auth_token);
        let retry = status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || answer.code == Some(20429);
        if retry {
            Err(SendError::Retry {
                reason,
                after: retry_after(&headers),
            })
        } else {
            Err(SendError::permanent(reason))
        }
    }
}

/// `twilio sms: HTTP 400, error 21211: The 'To' number … is not a valid phone number
/// (check the person's number)`.
fn failure_reason(what: &str, status: reqwest::StatusCode, answer: &TwilioAnswer) -> String {
    let mut reason = format!("{what}: HTTP {}", status.as_u16());
    if let Some(code) = answer.code {
        reason.push_str(&format!(", error {code}"));
    }
    if let Some(message) = &answer.message {
        let message: String = message.chars().take(300).collect();
        reason.push_str(": ");
        reason.push_str(message.trim());
    }
    if let Some(hint) = answer.code.and_then(hint) {
        reason.push_str(&format!(" ({hint})"));
    }
    reason
}

/// What an operator should do about the errors that need one (PROTOCOLS.md §3.1).
fn hint(code: u32) -> Option<&'static str> {
    Some(match code {
        20003 => "check account_sid and auth_token",
        21211 | 21614 | 21612 => "check the person's number",
        21610 => "the recipient replied STOP; they must text START to the sending number",
        21608 => "a trial account can only send to verified numbers",
        21606 => "the `from` number cannot send SMS",
        21408 => "enable the destination country in Twilio's geo permissions",
        21602 => "the body was empty",
        _ => return None,
    })
}

/// Removes the token from a text that came from outside (Twilio's own message), in
/// case it ever echoes it.
fn redact(text: &str, token: &Secret) -> String {
    if token.is_empty() {
        text.to_string()
    } else {
        text.replace(token.expose(), "***")
    }
}

/// Reads at most `limit` bytes of a body; None when reading fails.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Some(body)
}

// ---------------------------------------------------------------------------------
// The text of an SMS

/// The SMS for `msg`, at most `max_segments` segments (and never more than Twilio
/// accepts). One alert:
/// `[CRITICAL] #42 投稿成功率低下 account=a1: {summary}. Reply ACK 42`;
/// several (alerts batched in the per-recipient window), each named while they
/// fit: `[CRITICAL] 3 alerts: #42 投稿成功率低下 account=a1; #43 …; #44 …. Reply
/// ACK ALL or ACK <n>`; more than fit, counted with their numbers as ranges and
/// their rules: `[CRITICAL] 204 alerts #2-205: 投稿成功率低下 x150, 巨大説明 x54.
/// Reply ACK ALL or ACK <n>`. The count and the way to ack survive any cut.
pub fn sms_body(msg: &Message, max_segments: u32) -> String {
    let max = max_segments.clamp(1, limits::twilio::SMS_SEGMENTS);
    let tail = ack_tail(msg);
    match msg.alerts.as_slice() {
        [one] => fit_keeping(&single_text(msg.reason, one), &tail, max),
        many => {
            let head = batch_head(msg.reason, many);
            let named: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    format!(
                        "{}{}",
                        if i == 0 { ": " } else { "; " },
                        per_alert(msg.reason, a)
                    )
                })
                .collect();
            let whole = format!("{head}{}.{tail}", named.concat());
            if segments(&whole) <= max {
                return whole;
            }
            fit_items(&head, &batch_items(many), &tail, max)
        }
    }
}

/// What must survive every cut: the escalation level, and how to acknowledge.
fn ack_tail(msg: &Message) -> String {
    let paging = msg.reason.is_page();
    let mut tail = String::new();
    if paging && msg.level > 1 {
        tail.push_str(&format!(" Escalation level {}.", msg.level));
    }
    match msg.alerts.as_slice() {
        [one] => {
            if paging && let Some(n) = one.incident {
                tail.push_str(&format!(" Reply ACK {n}"));
            }
        }
        many => {
            if paging && many.iter().any(|a| a.incident.is_some()) {
                tail.push_str(" Reply ACK ALL or ACK <n>");
            }
        }
    }
    tail
}

fn single_text(reason: NotifyReason, a: &AlertSnapshot) -> String {
    let name = alert_name(a);
    match reason {
        NotifyReason::Resolved => format!("RESOLVED {name}"),
        NotifyReason::Acknowledged => format!("ACKED {name}{}", acked_by(a)),
        _ => {
            let mut s = format!(
                "[{}] {}{name}",
                sms_line(&severity_word(&a.severity)),
                page_word(reason)
            );
            match a.annotations.get("summary").map(|s| sms_line(s)) {
                Some(summary) if !summary.is_empty() => {
                    s.push_str(": ");
                    s.push_str(&summary);
                    if !summary.ends_with(['.', '。', '!', '?', '！', '？']) {
                        s.push('.');
                    }
                }
                _ => s.push('.'),
            }
            s
        }
    }
}

/// `[CRITICAL] 204 alerts`, `RESOLVED 3 alerts`: what a batch is and how many
/// alerts it stands for. Never cut.
fn batch_head(reason: NotifyReason, alerts: &[AlertSnapshot]) -> String {
    let n = alerts.len();
    match reason {
        NotifyReason::Resolved => format!("RESOLVED {n} alerts"),
        NotifyReason::Acknowledged => format!("ACKED {n} alerts"),
        _ => {
            let severity = most_severe(alerts.iter().map(|a| a.severity.as_str()));
            match page_word(reason).trim() {
                "" => format!("[{}] {n} alerts", severity_word(severity)),
                why => format!("[{}] {n} alerts, {why}", severity_word(severity)),
            }
        }
    }
}

/// One alert of a batch that names each: `#42 投稿成功率低下 account=a1`.
fn per_alert(reason: NotifyReason, a: &AlertSnapshot) -> String {
    match reason {
        NotifyReason::Acknowledged => format!("{}{}", alert_name(a), acked_by(a)),
        _ => alert_name(a),
    }
}

/// A batch too long to name each alert, as pieces cut only between them: the
/// incident numbers as ranges (` #2-50`, `,52`), then each rule with its count
/// (`: 投稿成功率低下 x150`, `, 巨大説明 x54`), then a full stop.
fn batch_items(alerts: &[AlertSnapshot]) -> Vec<String> {
    let mut items: Vec<String> = ranges(alerts.iter().filter_map(|a| a.incident))
        .into_iter()
        .enumerate()
        .map(|(i, r)| format!("{}{r}", if i == 0 { " #" } else { "," }))
        .collect();
    let mut rules: Vec<(String, usize)> = Vec::new();
    for a in alerts {
        let rule = one_line(&a.rule);
        match rules.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, n)) => *n += 1,
            None => rules.push((rule, 1)),
        }
    }
    for (i, (rule, n)) in rules.into_iter().enumerate() {
        let sep = if i == 0 { ": " } else { ", " };
        items.push(format!("{sep}{rule} x{n}"));
    }
    items.push(".".to_string());
    items
}

/// Why a page that is not a first notification came: said before the alert.
fn page_word(reason: NotifyReason) -> &'static str {
    match reason {
        NotifyReason::AckExpired => "ACK EXPIRED ",
        NotifyReason::SilenceEnded => "SILENCE ENDED ",
        NotifyReason::Unacknowledged => "UNACKED ",
        _ => "",
    }
}

/// `#42 投稿成功率低下 account=a1 host=web-1`: the incident, the rule, and the
/// labels that tell this alert from its siblings.
fn alert_name(a: &AlertSnapshot) -> String {
    let mut s = String::new();
    if let Some(n) = a.incident {
        s.push_str(&format!("#{n} "));
    }
    s.push_str(&sms_line(&a.rule));
    let labels = compact_labels(&a.labels);
    if !labels.is_empty() {
        s.push(' ');
        s.push_str(&labels);
    }
    s
}

fn acked_by(a: &AlertSnapshot) -> String {
    a.acked_by
        .as_deref()
        .map_or_else(String::new, |who| format!(" by {}", sms_line(who)))
}

/// `account=a1 host=web-1`, without `alertname` and `severity` (already said).
fn compact_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
        .map(|(k, v)| {
            let v = sms_line(v);
            if v.is_empty() || v.contains(' ') {
                format!("{k}=\"{v}\"")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`one_line`] for the SMS text, any other control character shown as an escape
/// (an ESC would start a GSM-7 extension character). A call's speech is not: the
/// TwiML escaper turns them into pauses, not words read aloud.
fn sms_line(text: &str) -> String {
    line(&one_line(text)).into_owned()
}

// ---------------------------------------------------------------------------------
// Encoding and segments

/// How an SMS body travels. Twilio picks GSM-7 when every character is in the GSM
/// 03.38 alphabet, UCS-2 otherwise; one character outside it (a kana, an emoji, `…`)
/// turns the whole message into UCS-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsEncoding {
    /// 7-bit GSM 03.38: 160 septets in one segment, 153 per part when concatenated.
    Gsm7,
    /// UTF-16: 70 code units in one segment, 67 per part when concatenated.
    Ucs2,
}

/// The GSM 03.38 default alphabet, in table order (0x1B, the escape to the extension
/// table, left out).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: each of these is sent as escape + character, two septets.
const GSM_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets `c` takes in GSM-7, or None when GSM-7 cannot carry it.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

pub fn encoding(body: &str) -> SmsEncoding {
    if body.chars().all(|c| gsm_septets(c).is_some()) {
        SmsEncoding::Gsm7
    } else {
        SmsEncoding::Ucs2
    }
}

/// How many segments (billed SMS) `body` takes. Concatenated parts lose room to the
/// header that joins them, and a two-unit character (a GSM escape pair, a UTF-16
/// surrogate pair) is never split between parts, so it may start a new one early.
pub fn segments(body: &str) -> u32 {
    match encoding(body) {
        SmsEncoding::Gsm7 => pack(
            body.chars().filter_map(gsm_septets),
            limits::twilio::GSM7_SINGLE,
            limits::twilio::GSM7_PART,
        ),
        SmsEncoding::Ucs2 => pack(
            body.chars().map(char::len_utf16),
            limits::twilio::UCS2_SINGLE,
            limits::twilio::UCS2_PART,
        ),
    }
}

/// Segments for characters of the given sizes: one if all fit in `single`, else
/// parts of at most `part` filled in order without splitting a character.
fn pack(sizes: impl Iterator<Item = usize> + Clone, single: usize, part: usize) -> u32 {
    if sizes.clone().sum::<usize>() <= single {
        return 1;
    }
    let (mut parts, mut used) = (1u32, 0usize);
    for size in sizes {
        if used + size > part {
            parts = parts.saturating_add(1);
            used = 0;
        }
        used += size;
    }
    parts
}

/// `body` cut so it fits in `max_segments` (at least one), ending in an ellipsis
/// when cut: `...` while the result is GSM-7 (a `…` would make it UCS-2 and halve
/// the room), `…` otherwise.
pub fn fit(body: &str, max_segments: u32) -> String {
    fit_keeping(body, "", max_segments)
}

/// The ellipsis that ends a cut text: `...` while the rest is GSM-7, `…` otherwise.
fn ellipsis(kept: &str, tail: &str) -> &'static str {
    match encoding(&format!("{kept}{tail}")) {
        SmsEncoding::Gsm7 => "...",
        SmsEncoding::Ucs2 => "…",
    }
}

/// `text` + `tail`, with `text` cut so the whole fits in `max_segments`; the tail is
/// cut only when it cannot fit even after all of `text`.
fn fit_keeping(text: &str, tail: &str, max_segments: u32) -> String {
    let max = max_segments.max(1);
    let whole = format!("{text}{tail}");
    if segments(&whole) <= max {
        return whole;
    }
    let cut_at = fit::cuts(text);
    let cut = |k: usize| {
        let kept = text[..cut_at[k]].trim_end();
        format!("{kept}{}{tail}", ellipsis(kept, tail))
    };
    // The segments of cut(k) never fall as k grows.
    match fit::longest(cut_at.len() - 1, |k| segments(&cut(k)) <= max) {
        Some(k) => cut(k),
        // Even the tail alone is too long: cut it too ("..." always fits).
        None if !tail.is_empty() => fit_keeping(&whole, "", max),
        None => String::new(),
    }
}

/// `head` + as many of `items` as fit + `tail`, within `max_segments`; an ellipsis
/// says items were left out. A cut falls only between items, so a range of incident
/// numbers is never shown half (`#2-5…` for `#2-50`).
fn fit_items(head: &str, items: &[String], tail: &str, max: u32) -> String {
    let render = |k: usize| {
        let kept = format!("{head}{}", items[..k].concat());
        if k == items.len() {
            format!("{kept}{tail}")
        } else {
            format!("{kept}{}{tail}", ellipsis(&kept, tail))
        }
    };
    match fit::longest(items.len(), |k| segments(&render(k)) <= max) {
        Some(k) => render(k),
        None => fit_keeping(head, tail, max),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn the_gsm_alphabet_has_127_characters_and_10_extensions() {
        assert_eq!(GSM_BASIC.chars().count(), 127);
        assert_eq!(GSM_EXTENSION.chars().count(), 10);
    }

    #[test]
    fn plain_english_is_gsm_and_one_kana_or_backtick_is_not() {
        assert_eq!(
            encoding("[CRITICAL] #42 DiskFull host=db1"),
            SmsEncoding::Gsm7
        );
        assert_eq!(encoding("price: 5€ {a|b} ~[x]^\\"), SmsEncoding::Gsm7);
        assert_eq!(encoding("Ünïcode? no: ï"), SmsEncoding::Ucs2);
        assert_eq!(encoding("DiskFull あ"), SmsEncoding::Ucs2);
        assert_eq!(encoding("`code`"), SmsEncoding::Ucs2);
        assert_eq!(encoding("wait…"), SmsEncoding::Ucs2);
    }

    #[test]
    fn gsm_fits_160_in_one_segment_then_153_per_part() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        assert_eq!(segments(""), 1);
    }

    #[test]
    fn gsm_extension_characters_count_twice() {
        assert_eq!(segments(&"{".repeat(80)), 1);
        assert_eq!(segments(&"{".repeat(81)), 2);
        assert_eq!(segments(&format!("{}€", "a".repeat(158))), 1);
        assert_eq!(segments(&format!("{}€", "a".repeat(159))), 2);
    }

    #[test]
    fn an_escape_pair_is_not_split_between_parts() {
        // 306 septets would be two full parts, but the `{` cannot straddle them.
        let body = format!("{}{{{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&body), 3);
    }

    #[test]
    fn japanese_fits_70_in_one_segment_then_67_per_part() {
        assert_eq!(segments(&"投".repeat(70)), 1);
        assert_eq!(segments(&"投".repeat(71)), 2);
        assert_eq!(segments(&"投".repeat(134)), 2);
        assert_eq!(segments(&"投".repeat(135)), 3);
    }

    #[test]
    fn emoji_take_two_utf16_units_and_are_never_split() {
        assert_eq!(segments(&"🔥".repeat(35)), 1);
        assert_eq!(segments(&"🔥".repeat(36)), 2);
        // 134 units would be two full parts, but 67 is odd: a pair would straddle.
        assert_eq!(segments(&"🔥".repeat(67)), 3);
    }

    #[test]
    fn fit_leaves_a_fitting_body_alone() {
        let body = "a".repeat(160);
        assert_eq!(fit(&body, 1), body);
        assert_eq!(fit("投稿成功率低下", 1), "投稿成功率低下");
    }

    #[test]
    fn fit_cuts_gsm_with_three_dots_so_it_stays_gsm() {
        let cut = fit(&"a".repeat(161), 1);
        assert_eq!(cut, format!("{}...", "a".repeat(157)));
        assert_eq!(encoding(&cut), SmsEncoding::Gsm7);
        let cut = fit(&"b".repeat(1000), 2);
        assert_eq!(cut.len(), 306);
        assert_eq!(segments(&cut), 2);
    }

    #[test]
    fn fit_cuts_japanese_to_70_units_with_an_ellipsis() {
        let cut = fit(&"投".repeat(71), 1);
        assert_eq!(cut, format!("{}…", "投".repeat(69)));
        assert_eq!(segments(&cut), 1);
        let cut = fit(&"投".repeat(500), 3);
        assert_eq!(cut.encode_utf16().count(), 3 * 67);
        assert_eq!(segments(&cut), 3);
    }

    #[test]
    fn fit_keeps_whole_emoji() {
        let cut = fit(&"🔥".repeat(40), 1);
        assert_eq!(cut, format!("{}…", "🔥".repeat(34)));
        assert_eq!(segments(&cut), 1);
    }

    #[test]
    fn fit_treats_zero_segments_as_one() {
        assert_eq!(segments(&fit(&"a".repeat(500), 0)), 1);
    }

    #[test]
    fn fit_keeping_cuts_the_text_and_keeps_the_tail() {
        let fitted = fit_keeping(&"x".repeat(300), " Reply ACK 42", 1);
        assert!(fitted.ends_with("... Reply ACK 42"), "{fitted}");
        assert_eq!(fitted.len(), 160);
        // A tail longer than the room is cut too, rather than overflowing.
        let fitted = fit_keeping("x", &"y".repeat(400), 1);
        assert_eq!(segments(&fitted), 1);
    }

    pub(in crate::notify) fn alert(
        incident: u64,
        rule: &str,
        labels: &[(&str, &str)],
    ) -> AlertSnapshot {
        let mut all: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.insert("alertname".into(), rule.into());
        all.insert("severity".into(), "critical".into());
        AlertSnapshot {
            fingerprint: crate::labels::Fingerprint(incident),
            incident: Some(incident),
            rule: rule.into(),
            severity: "critical".into(),
            labels: all,
            annotations: BTreeMap::new(),
            state: crate::alert::State::Firing,
            fired_at: None,
            resolved_at: None,
            acked_by: None,
            acked_at: None,
            ack_note: None,
            resolved_by: None,
            resolve_note: None,
            generator_url: None,
        }
    }

    pub(in crate::notify) fn message(
        reason: NotifyReason,
        level: u32,
        alerts: Vec<AlertSnapshot>,
    ) -> Message {
        Message {
            key: "k".into(),
            reason,
            level,
            alerts,
            update: None,
            at: crate::clock::Timestamp(0),
        }
    }

    #[test]
    fn one_alert_says_severity_incident_labels_summary_and_how_to_ack() {
        let mut a = alert(42, "投稿成功率低下", &[("account", "a1")]);
        a.annotations
            .insert("summary".into(), "成功率 80%\n(閾値 95%)".into());
        let msg = message(NotifyReason::Firing, 1, vec![a]);
        assert_eq!(
            sms_body(&msg, 3),
            "[CRITICAL] #42 投稿成功率低下 account=a1: 成功率 80% (閾値 95%). Reply ACK 42"
        );
    }

    #[test]
    fn an_escalated_page_says_its_level() {
        let msg = message(NotifyReason::Firing, 3, vec![alert(7, "DiskFull", &[])]);
        assert_eq!(
            sms_body(&msg, 1),
            "[CRITICAL] #7 DiskFull. Escalation level 3. Reply ACK 7"
        );
    }

    #[test]
    fn updates_say_resolved_or_acked_by_whom_without_asking_for_an_ack() {
        let a = alert(42, "DiskFull", &[("host", "db 1")]);
        let msg = message(NotifyReason::Resolved, 0, vec![a.clone()]);
        assert_eq!(sms_body(&msg, 1), "RESOLVED #42 DiskFull host=\"db 1\"");
        let mut acked = a;
        acked.acked_by = Some("alice".into());
        let msg = message(NotifyReason::Acknowledged, 0, vec![acked]);
        assert_eq!(
            sms_body(&msg, 1),
            "ACKED #42 DiskFull host=\"db 1\" by alice"
        );
    }

    #[test]
    fn control_characters_are_shown_not_sent() {
        let mut a = alert(42, "Disk\u{1b}Full", &[("host", "a\u{7}b")]);
        a.annotations
            .insert("summary".into(), "x\r\nFIRING #999".into());
        let body = sms_body(&message(NotifyReason::Firing, 1, vec![a]), 3);
        assert_eq!(
            body,
            "[CRITICAL] #42 Disk\\x1bFull host=a\\x07b: x FIRING #999. Reply ACK 42"
        );
    }

    #[test]
    fn a_long_summary_is_cut_and_the_ack_line_survives() {
        let mut a = alert(42, "投稿成功率低下", &[]);
        a.annotations.insert("summary".into(), "低下".repeat(200));
        let body = sms_body(&message(NotifyReason::Firing, 1, vec![a]), 2);
        assert_eq!(segments(&body), 2);
        assert!(body.ends_with("… Reply ACK 42"), "{body}");
    }

    #[test]
    fn a_small_batch_names_each_alert_and_offers_ack_all() {
        let alerts = vec![
            alert(42, "投稿成功率低下", &[("account", "a1")]),
            alert(43, "投稿成功率低下", &[("account", "a2")]),
        ];
        let body = sms_body(&message(NotifyReason::Firing, 3, alerts), 3);
        assert_eq!(
            body,
            "[CRITICAL] 2 alerts: #42 投稿成功率低下 account=a1; #43 投稿成功率低下 \
             account=a2. Escalation level 3. Reply ACK ALL or ACK <n>"
        );
    }

    #[test]
    fn a_long_batch_keeps_its_count_ranges_and_ack_all_within_the_segments() {
        let mut alerts: Vec<AlertSnapshot> = (2..=151)
            .map(|n| alert(n, "投稿成功率低下", &[("label_00", &"x".repeat(100))]))
            .collect();
        alerts.extend((152..=205).map(|n| alert(n, "巨大説明テスト", &[])));
        alerts.push(alert(300, "投稿成功率低下", &[]));
        let body = sms_body(&message(NotifyReason::Firing, 1, alerts), 3);
        assert_eq!(
            body,
            "[CRITICAL] 205 alerts #2-205,300: 投稿成功率低下 x151, 巨大説明テスト x54. \
             Reply ACK ALL or ACK <n>"
        );
        assert!(segments(&body) <= 3);
    }

    #[test]
    fn ranges_that_do_not_fit_are_cut_between_ranges_never_inside_one() {
        let alerts: Vec<AlertSnapshot> = (1..=300).map(|n| alert(n * 2, "DiskFull", &[])).collect();
        let body = sms_body(&message(NotifyReason::Firing, 1, alerts), 1);
        assert!(segments(&body) <= 1, "{body}");
        assert!(body.starts_with("[CRITICAL] 300 alerts #2,4,6,"), "{body}");
        assert!(body.ends_with("... Reply ACK ALL or ACK <n>"), "{body}");
        // The last number shown is whole: the one before the ellipsis is even.
        let last = body
            .split("...")
            .next()
            .unwrap()
            .rsplit(',')
            .next()
            .unwrap();
        assert_eq!(last.parse::<u64>().unwrap() % 2, 0, "{body}");
        // A batch of updates counts too, and asks for nothing.
        let resolved: Vec<AlertSnapshot> = (1..=300).map(|n| alert(n, "DiskFull", &[])).collect();
        let body = sms_body(&message(NotifyReason::Resolved, 0, resolved), 1);
        assert_eq!(body, "RESOLVED 300 alerts #1-300: DiskFull x300.");
    }
}
