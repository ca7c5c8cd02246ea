//! Text made inert for each format tocsin writes, one escaper per format: a label
//! or annotation value (anyone who can push a sample writes one) must not mention
//! `@channel` in Slack, close a TwiML element, or add markup to an email.
//!
//! Control characters: a format that travels inside JSON (mrkdwn) keeps them, as
//! JSON escapes every one of them. The markup formats (XML, HTML) keep tab, line
//! feed and carriage return, the only ones they define as text, and turn every
//! other control character (C0, DEL, C1) and the noncharacters U+FFFE and U+FFFF
//! into a space: XML 1.0 forbids the C0 ones and U+FFFE/U+FFFF outright (one in a
//! label would make Twilio refuse every call about that alert), HTML calls them all
//! parse errors, and none of them is anything a person reads or hears. A space
//! rather than nothing keeps the words on either side apart.

/// Slack mrkdwn: `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;`, so `<!channel>`,
/// `<@U123>` or `<http://evil|click>` are shown, not acted on. Those three are all
/// Slack asks to escape; `*`, `_`, `~` and backticks still format (Slack has no
/// escape for them), which is harmless. Control characters are kept: mrkdwn is
/// sent in JSON, which escapes them, and Slack shows a newline as one.
pub fn mrkdwn(text: &str) -> String {
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
            ("a\nb\tc\u{1}d\u{7f}", "a\nb\tc\u{1}d\u{7f}"),
            ("\"quoted\" 'single'", "\"quoted\" 'single'"),
            ("", ""),
        ] {
            assert_eq!(mrkdwn(text), want, "{text:?}");
        }
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
