//! Where to resume after a syntax error, so one run reports every syntax error of a
//! file instead of the first.
//!
//! The parser stops at its first error. Recovery blanks the statement at fault (the
//! field, the declaration, or the whole alert whose header or braces are broken) with
//! spaces, keeping every newline and every byte offset, and parses again: later
//! errors keep their true positions, and what parses of the rest is checked too.
//!
//! Statements are found by lines, the way people write rules files (and `tocsin fmt`
//! lays them out): a line that starts with `alert "` or `metric NAME` starts an item,
//! a line that starts with a field keyword starts a field, and a line holding only
//! `}` closes a block. This is a heuristic; its only duty is to resume somewhere
//! sensible, never to accept anything: the blanked text is an error already reported.

use std::ops::Range;

/// What a line starts, for recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `alert "…" {` or `metric NAME …`.
    Item,
    /// `when …`, `severity …`, `labels {`, ….
    Field,
    /// A line holding only `}`.
    Close,
    /// Anything else: a continuation, a pair, a comment, a blank line.
    Other,
}

const FIELD_WORDS: &[&str] = &[
    "when",
    "resolve",
    "severity",
    "labels",
    "annotations",
    "keep",
    "escalate",
    "route",
];

struct Line {
    start: usize,
    /// Offset of the first token (after indentation).
    token: usize,
    kind: Kind,
}

fn lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let token = start + (line.len() - body.len());
        out.push(Line {
            start,
            token,
            kind: kind(body),
        });
        start += line.len();
    }
    out
}

fn kind(body: &str) -> Kind {
    let word_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (word, after) = body.split_at(word_len);
    let next = after.trim_start().chars().next();
    let spaced = after.starts_with([' ', '\t']);
    match word {
        // `alert = "x"` and `metric = "x"` are label pairs, not items.
        "alert" if next == Some('"') => Kind::Item,
        "metric" if spaced && next.is_some_and(|c| c.is_ascii_alphabetic() || c == '_') => {
            Kind::Item
        }
        w if FIELD_WORDS.contains(&w) && next != Some('=') && !after.starts_with(':') => {
            Kind::Field
        }
        "" if body.trim_end() == "}" => Kind::Close,
        _ => Kind::Other,
    }
}

/// The bytes to blank after a syntax error at `at`, or `None` when there is nothing
/// left to blank (recovery stops: the error is the file's last).
pub(super) fn region(text: &str, at: usize) -> Option<Range<usize>> {
    // At the end of the file (an unclosed block): nothing after it to resume at.
    if at >= text.trim_end().len() {
        return None;
    }
    let lines = lines(text);
    let here = lines.iter().rposition(|l| l.start <= at)?;
    let line = &lines[here];
    let next = |from: usize, kinds: &[Kind]| {
        lines[from + 1..]
            .iter()
            .find(|l| kinds.contains(&l.kind))
            .map_or(text.len(), |l| l.start)
    };
    let starts = [Kind::Item, Kind::Field, Kind::Close];
    let region = if at <= line.token && line.kind != Kind::Other {
        // The error is at the start of a statement: the one before it is unfinished
        // (`when x >` then `severity`, or an alert whose `}` is missing).
        let before = lines[..here]
            .iter()
            .rposition(|l| matches!(l.kind, Kind::Item | Kind::Field))?;
        match (line.kind, lines[before].kind) {
            // A broken header leaves its fields orphaned: the whole item goes.
            (Kind::Field | Kind::Close, Kind::Item) => {
                lines[before].start..next(before, &[Kind::Item])
            }
            (Kind::Item, _) => {
                let item = lines[..here].iter().rposition(|l| l.kind == Kind::Item)?;
                lines[item].start..line.start
            }
            _ => lines[before].start..line.start,
        }
    } else if line.kind == Kind::Item {
        // In a header or a declaration: the whole item.
        line.start..next(here, &[Kind::Item])
    } else {
        line.start..next(here, &starts)
    };
    text[region.clone()]
        .contains(|c: char| !c.is_whitespace())
        .then_some(region)
}

/// `text` with `range` replaced by spaces, newlines kept: offsets do not move.
pub(super) fn blank(text: &str, range: Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..range.start]);
    for c in text[range.clone()].chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out.push_str(&text[range.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "alert \"A\" {\n  wehn x > 1\n  severity critical\n}\n\nalert \"B\" {\n  when y >\n  severity warning\n}\n";

    #[test]
    fn a_broken_field_line_is_blanked_alone() {
        let at = FILE.find("wehn").unwrap();
        let r = region(FILE, at).unwrap();
        assert_eq!(&FILE[r], "  wehn x > 1\n");
    }

    #[test]
    fn an_unfinished_field_is_blanked_when_the_next_one_starts() {
        let at = FILE.rfind("severity warning").unwrap();
        let r = region(FILE, at).unwrap();
        assert_eq!(&FILE[r], "  when y >\n");
    }

    #[test]
    fn a_missing_brace_drops_the_item_before() {
        let text = "alert \"A\" {\n  when x > 1\n  severity info\n\nalert \"B\" {\n}\n";
        let at = text.find("alert \"B\"").unwrap();
        let r = region(text, at).unwrap();
        assert_eq!(&text[r], "alert \"A\" {\n  when x > 1\n  severity info\n\n");
    }

    #[test]
    fn blanking_keeps_offsets_and_lines() {
        let text = "a 投稿\nb\n";
        let out = blank(text, 0..text.find('b').unwrap());
        assert_eq!(out.len(), text.len());
        assert_eq!(out.lines().count(), 2);
        assert!(out.ends_with("b\n"));
    }

    #[test]
    fn nothing_left_stops_recovery() {
        let text = "alert \"A\" {\n  when x > 1\n";
        assert_eq!(region(text, text.len()), None);
    }

    #[test]
    fn pairs_named_like_keywords_are_not_statements() {
        assert_eq!(kind("alert = \"x\""), Kind::Other);
        assert_eq!(kind("metric = \"x\""), Kind::Other);
        assert_eq!(kind("severity = \"x\""), Kind::Other);
        assert_eq!(kind("severity critical"), Kind::Field);
        assert_eq!(kind("metric cpu gauge"), Kind::Item);
        assert_eq!(kind("}"), Kind::Close);
    }
}
