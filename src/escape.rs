//! Text made inert for each format tocsin writes, one escaper per format: a label
//! or annotation value (anyone who can push a sample writes one) must not mention
//! `@channel` in Slack, close a TwiML element, add markup to an email, or drive the
//! terminal that shows it.
//!
//! Control characters, the one rule: a person reading the output must see what
//! the text holds and nothing must act on it.
//!
//! - Formats read as text (a terminal line, a table cell in the CLI, an email
//!   subject, plain text: the email's text part, an SMS, Slack mrkdwn) show every
//!   control character as an escape a person can read, `\x1b`, `\r`, `\u{85}`,
//!   and so do the bidirectional overrides and isolates (U+202A–U+202E,
//!   U+2066–U+2069), which reorder what is shown. One-line formats ([`line`]) show
//!   line feeds and tabs that way too, so a label cannot forge a second line
//!   (`FIRING #999 …`); multi-line ones ([`text`], [`mrkdwn`]) keep line feeds and
//!   tabs, and a CR LF is a line feed.
//! - The markup formats (XML, HTML) keep tab, line feed and carriage return, the
//!   only ones they define as text, and turn every other control character (C0,
//!   DEL, C1) and the noncharacters U+FFFE and U+FFFF into a space: XML 1.0
//!   forbids the C0 ones and U+FFFE/U+FFFF outright (one in a label would make
//!   Twilio refuse every call about that alert), HTML calls them all parse
//!   errors, and none of them is anything a person reads or hears. A space rather
//!   than nothing keeps the words on either side apart.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One line of text for a terminal or a header (the console channel, the CLI's
/// tables, an email subject): every control character, line feeds and tabs
/// included, and every bidirectional control shown as an escape.
pub fn line(text: &str) -> Cow<'_, str> {
    escaped(text, false)
}

/// Plain text of several lines (an email's text part, an SMS): line feeds and
/// tabs kept, a CR LF read as a line feed, every other control character and
/// bidirectional control shown as an escape.
pub fn text(text: &str) -> Cow<'_, str> {
    escaped(text, true)
}

fn escaped(text: &str, lines: bool) -> Cow<'_, str> {
    let keep = |c: char| lines && matches!(c, '\n' | '\t');
    if !text.chars().any(|c| shown_escaped(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if lines && c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if !shown_escaped(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// A character the text formats show as an escape: a control character or a
/// bidirectional override or isolate.
fn shown_escaped(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Slack mrkdwn: `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;`, so `<!channel>`,
/// `<@U123>` or `<http://evil|click>` are shown, not acted on. Those three are all
/// Slack asks to escape; `*`, `_`, `~` and backticks still format (Slack has no
/// escape for them), which is harmless. Line feeds and tabs are kept (Slack
/// shows a newline as one); other control characters are shown as escapes, as in
/// [`text`]. A field that must stay on one line is passed through [`line`] first.
pub fn mrkdwn(text: &str) -> String {
    let text = self::text(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Slack mrkdwn for a field that must stay on one line (a rule name, a label): as
/// [`mrkdwn`] after [`line`], so a line feed in a label cannot start a line of
/// its own in the message.
pub fn mrkdwn_line(text: &str) -> String {
    mrkdwn(&line(text))
}

/// XML 1.0 character data or a quoted attribute value (TwiML): `&`, `<`, `>`, `"`
/// and `'` become entities; a character XML cannot hold becomes a space (see the
/// module documentation).
pub fn xml(text: &str) -> String {
    xml_within(text, usize::MAX)
}

/// As [`xml`], the longest start of `text` whose escaped form has at most `budget`
/// characters; an entity is never cut in half (Twilio counts a TwiML document's
/// characters, entities included).
pub fn xml_within(text: &str, budget: usize) -> String {
    let mut out = String::with_capacity(text.len().min(budget));
    let mut used = 0usize;
    for c in text.chars() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&apos;",
            c if not_text(c) => " ",
            _ => "",
        };
        // Every entity is ASCII: its length in bytes is its length in characters.
        let len = if piece.is_empty() { 1 } else { piece.len() };
        if used + len > budget {
            break;
        }
        used += len;
        if piece.is_empty() {
            out.push(c);
        } else {
            out.push_str(piece);
        }
    }
    out
}

/// HTML element content or a quoted attribute value (the email's HTML part): `&`,
/// `<`, `>`, `"` and `'` become entities; a control character other than tab, line
/// feed and carriage return becomes a space (see the module documentation).
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if not_text(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A character the markup formats do not carry as text.
fn not_text(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_makes_mentions_and_links_inert() {
        for (text, want) in [
            ("<!channel>", "&lt;!channel&gt;"),
            ("<!channel> & <@U1>", "&lt;!channel&gt; &amp; &lt;@U1&gt;"),
            ("<http://evil|click>", "&lt;http://evil|click&gt;"),
            ("&lt;", "&amp;lt;"),
            ("plain *bold* _it_ `code`", "plain *bold* _it_ `code`"),
            ("投稿成功率 < 90% 🚨", "投稿成功率 &lt; 90% 🚨"),
            ("a\nb\tc\u{1}d\u{7f}", "a\nb\tc\\x01d\\x7f"),
            ("\u{1b}[2J<!here>", "\\x1b[2J&lt;!here&gt;"),
            ("\"quoted\" 'single'", "\"quoted\" 'single'"),
            ("", ""),
        ] {
            assert_eq!(mrkdwn(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_line_shows_every_control_character() {
        for (text, want) in [
            ("CPU使用率異常 on bot-1", "CPU使用率異常 on bot-1"),
            ("x\r\nFIRING #999 Fake", "x\\r\\nFIRING #999 Fake"),
            ("\u{1b}[2J\u{1b}[H", "\\x1b[2J\\x1b[H"),
            ("a\tb\u{0}c\u{7f}", "a\\tb\\x00c\\x7f"),
            ("a\u{85}b\u{9b}c", "a\\u{85}b\\u{9b}c"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            ("C:\\path", "C:\\path"),
            ("", ""),
        ] {
            assert_eq!(line(text), want, "{text:?}");
        }
        assert!(matches!(line("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn text_keeps_lines_and_shows_the_rest() {
        for (text, want) in [
            ("first\nsecond\tcolumn", "first\nsecond\tcolumn"),
            ("windows\r\nlines\r\n", "windows\nlines\n"),
            ("bare\rreturn", "bare\\rreturn"),
            ("\u{1b}]0;title\u{7}", "\\x1b]0;title\\x07"),
            ("rtl\u{2067}x", "rtl\\u{2067}x"),
        ] {
            assert_eq!(text_of(text), want, "{text:?}");
        }
    }

    fn text_of(s: &str) -> String {
        text(s).into_owned()
    }

    #[test]
    fn xml_escapes_markup_and_drops_what_xml_cannot_hold() {
        for (text, want) in [
            (
                r#"<script>"a" & 'b'"#,
                "&lt;script&gt;&quot;a&quot; &amp; &apos;b&apos;",
            ),
            ("<!channel>", "&lt;!channel&gt;"),
            ("<Hangup/>", "&lt;Hangup/&gt;"),
            ("ディスク残量 < 10% 🔥", "ディスク残量 &lt; 10% 🔥"),
            ("a\tb\nc\rd", "a\tb\nc\rd"),
            ("a\u{0}b\u{1}c\u{8}d\u{b}e\u{c}f\u{1f}g", "a b c d e f g"),
            ("a\u{7f}b\u{80}c\u{9f}d", "a b c d"),
            ("a\u{fffe}b\u{ffff}c\u{fffd}", "a b c\u{fffd}"),
            ("", ""),
        ] {
            assert_eq!(xml(text), want, "{text:?}");
        }
    }

    #[test]
    fn xml_within_never_cuts_an_entity_or_a_character() {
        assert_eq!(xml_within("a&b", 1), "a");
        assert_eq!(xml_within("a&b", 5), "a");
        assert_eq!(xml_within("a&b", 6), "a&amp;");
        assert_eq!(xml_within("a&b", 7), "a&amp;b");
        assert_eq!(xml_within("監視<", 2), "監視");
        assert_eq!(xml_within("監視<", 6), "監視&lt;");
        assert_eq!(xml_within("anything", 0), "");
        let long = "&".repeat(100);
        let cut = xml_within(&long, 23);
        assert_eq!(cut, "&amp;".repeat(4));
    }

    #[test]
    fn html_escapes_markup_and_controls() {
        for (text, want) in [
            (
                r#"<a href="x" onclick='y'>&</a>"#,
                "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
            ),
            ("<!channel>", "&lt;!channel&gt;"),
            ("ホスト web-1 <停止>", "ホスト web-1 &lt;停止&gt;"),
            ("a\tb\nc\rd", "a\tb\nc\rd"),
            ("a\u{0}b\u{1b}c\u{7f}d\u{85}e", "a b c d e"),
            ("", ""),
        ] {
            assert_eq!(html(text), want, "{text:?}");
        }
    }
}
