//! The canonical layout of rules files, so rule diffs in pull requests stay small.
//!
//! Printing builds a list of output lines, each remembering the source range of the
//! code it prints; comments are then attached to those lines by position. Without a
//! source (`print_file`) every range is empty, so there are no comments and no blank
//! lines beyond the ones the layout requires.

use super::ast::*;
use super::diagnostic::Diagnostic;

const INDENT: &str = "  ";

/// Formats a whole rules file, keeping its comments; a syntax error is the parser's.
pub fn format_source(text: &str) -> Result<String, Box<Diagnostic>> {
    let file = super::parser::parse_file(text)?;
    let source = Source::new(text);
    Ok(render(&file, Some(&source)))
}

/// Prints an AST in the canonical layout (no comments: they live in the source).
pub fn print_file(file: &File) -> String {
    render(file, None)
}

/// One `#` comment of the source. `end` excludes trailing whitespace.
#[derive(Clone, Copy)]
struct Comment<'a> {
    start: usize,
    end: usize,
    text: &'a str,
    /// Only whitespace precedes it on its source line.
    own_line: bool,
}

/// Source text with its comments, sorted by position.
struct Source<'a> {
    text: &'a str,
    comments: Vec<Comment<'a>>,
}

impl<'a> Source<'a> {
    /// Finds the comments; string literals are skipped because `#` is text there.
    fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut comments = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                b'#' => {
                    let line_end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                    let comment = text[i..line_end].trim_ascii_end();
                    let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
                    comments.push(Comment {
                        start: i,
                        end: i + comment.len(),
                        text: comment,
                        own_line: text[line_start..i].trim_ascii().is_empty(),
                    });
                    i = line_end;
                }
                _ => i += 1,
            }
        }
        Source { text, comments }
    }

    /// The end of the last code byte in `span`: pest spans can end after trailing
    /// whitespace and comments when an optional clause is absent.
    fn code_end(&self, span: Span) -> usize {
        let bytes = self.text.as_bytes();
        let mut end = span.end;
        loop {
            while end > span.start && bytes[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            let before = self.comments.partition_point(|c| c.start < end);
            match before.checked_sub(1).map(|i| self.comments[i]) {
                Some(c) if end <= c.end => end = c.start,
                _ => return end,
            }
        }
    }

    /// The position of the first code byte at or after `pos`.
    fn code_after(&self, mut pos: usize) -> usize {
        let bytes = self.text.as_bytes();
        while pos < bytes.len() {
            if bytes[pos].is_ascii_whitespace() {
                pos += 1;
            } else if bytes[pos] == b'#' {
                pos = self.text[pos..].find('\n').map_or(bytes.len(), |n| pos + n);
            } else {
                break;
            }
        }
        pos
    }

    /// Whether the author left an empty line between two positions.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let Some(gap) = self.text.get(from..to) else {
            return false;
        };
        let mut lines = gap.split('\n');
        lines.next();
        let mut whole_lines: Vec<&str> = lines.collect();
        whole_lines.pop();
        whole_lines.iter().any(|l| l.trim_ascii().is_empty())
    }
}

/// What an output line is, which decides blank lines and comment indentation.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Metric,
    Alert,
    Field,
    AlertClose,
    Pair,
    BlockClose,
}

impl Role {
    /// Whether a blank line the author left before this line (or before a comment
    /// attached to it) is kept. Never right after an opening brace.
    fn keeps_blank(self, before_comment: bool, after_open: bool) -> bool {
        match self {
            Role::Metric | Role::Alert => true,
            Role::Field => !after_open,
            Role::AlertClose => before_comment && !after_open,
            Role::Pair | Role::BlockClose => false,
        }
    }
}

/// One printed line and the source range `start..end` of the code it prints.
struct Line {
    indent: usize,
    text: String,
    start: usize,
    end: usize,
    role: Role,
    /// Ends with `{`.
    opens: bool,
}

impl Line {
    /// Comments before a closing brace belong to the block's contents.
    fn comment_indent(&self) -> usize {
        match self.role {
            Role::AlertClose | Role::BlockClose => self.indent + 1,
            _ => self.indent,
        }
    }
}

/// Turns the AST into lines; source positions come from `source` when there is one.
struct Builder<'a> {
    source: Option<&'a Source<'a>>,
    lines: Vec<Line>,
}

impl Builder<'_> {
    fn push(&mut self, indent: usize, text: String, range: (usize, usize), role: Role) {
        let opens = text.ends_with('{');
        self.lines.push(Line {
            indent,
            text,
            start: range.0,
            end: range.1,
            role,
            opens,
        });
    }

    /// The code range of a node.
    fn range(&self, span: Span) -> (usize, usize) {
        self.source
            .map_or((0, 0), |s| (span.start, s.code_end(span)))
    }

    /// The range from `span`'s start through the `{` that follows `after`.
    fn through_brace(&self, span: Span, after: usize) -> (usize, usize) {
        self.source
            .map_or((0, 0), |s| (span.start, s.code_after(after) + 1))
    }

    /// The range of the `}` that ends `span`.
    fn closing_brace(&self, span: Span) -> (usize, usize) {
        let (_, end) = self.range(span);
        (end.saturating_sub(1), end)
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Metric(m) => {
                let mut text = format!("metric {} {}", m.name.node, m.kind.node);
                if let Some(unit) = &m.unit {
                    text.push(' ');
                    text.push_str(&unit.node);
                }
                self.push(0, text, self.range(m.span), Role::Metric);
            }
            Item::Alert(a) => {
                let head = format!("alert {}", quote(&a.name.node));
                if a.fields.is_empty() {
                    self.push(0, head + " {}", self.range(a.span), Role::Alert);
                    return;
                }
                let open = self.through_brace(a.span, a.name.span.end);
                self.push(0, head + " {", open, Role::Alert);
                for field in &a.fields {
                    self.field(field);
                }
                let close = self.closing_brace(a.span);
                self.push(0, "}".to_string(), close, Role::AlertClose);
            }
        }
    }

    fn field(&mut self, field: &Field) {
        let text = match &field.kind {
            FieldKind::When(c) => format!("when {}", condition(c)),
            FieldKind::ResolveWhen(c) => format!("resolve when {}", condition(c)),
            FieldKind::Severity(s) => format!("severity {}", s.node),
            FieldKind::KeepFiringFor(q) => format!("keep firing for {q}"),
            FieldKind::Escalate(s) => format!("escalate {}", quote(&s.node)),
            FieldKind::Route(s) => format!("route {}", quote(&s.node)),
            FieldKind::Labels(pairs) => return self.block("labels", pairs, field.span),
            FieldKind::Annotations(pairs) => return self.block("annotations", pairs, field.span),
        };
        self.push(1, text, self.range(field.span), Role::Field);
    }

    /// A labels or annotations block: always one pair per line.
    fn block(&mut self, keyword: &str, pairs: &[Pair], span: Span) {
        if pairs.is_empty() {
            self.push(1, format!("{keyword} {{}}"), self.range(span), Role::Field);
            return;
        }
        let open = self.through_brace(span, span.start + keyword.len());
        self.push(1, format!("{keyword} {{"), open, Role::Field);
        for pair in pairs {
            let text = format!("{} = {}", pair.key.node, quote(&pair.value.node));
            let range = self.range(Span::new(pair.key.span.start, pair.value.span.end));
            self.push(2, text, range, Role::Pair);
        }
        let close = self.closing_brace(span);
        self.push(1, "}".to_string(), close, Role::BlockClose);
    }
}

/// Where each comment goes: own lines before a line, the end of a line, or the end of
/// the file. Every comment lands in exactly one place.
struct Placement<'a> {
    before: Vec<Vec<Comment<'a>>>,
    trailing: Vec<Vec<&'a str>>,
    tail: Vec<Comment<'a>>,
}

fn place<'a>(lines: &[Line], comments: &[Comment<'a>]) -> Placement<'a> {
    let mut placement = Placement {
        before: lines.iter().map(|_| Vec::new()).collect(),
        trailing: lines.iter().map(|_| Vec::new()).collect(),
        tail: Vec::new(),
    };
    for &c in comments {
        let next = lines.partition_point(|l| l.start <= c.start);
        match next.checked_sub(1) {
            // Inside code that prints on one line: it moves above that line, as if
            // written right before it.
            Some(i) if c.start < lines[i].end => placement.before[i].push(Comment {
                start: lines[i].start,
                end: lines[i].start,
                ..c
            }),
            Some(i) if !c.own_line => placement.trailing[i].push(c.text),
            _ if next < lines.len() => placement.before[next].push(c),
            _ => placement.tail.push(c),
        }
    }
    placement
}

/// Joins lines and comments, deciding blank lines: one between items (except between
/// two metrics), and one wherever the author left one and the layout allows it.
fn render(file: &File, source: Option<&Source>) -> String {
    let mut builder = Builder {
        source,
        lines: Vec::new(),
    };
    for item in &file.items {
        builder.item(item);
    }
    let lines = builder.lines;
    let placement = place(&lines, source.map_or(&[], |s| &s.comments));
    let blank_between = |from: Option<usize>, to: usize| {
        source
            .zip(from)
            .is_some_and(|(s, from)| s.blank_between(from, to))
    };

    let mut out = String::new();
    // Source end of the last printed line or comment; `None` before the first.
    let mut prev: Option<usize> = None;
    let mut after_open = false;
    let mut last_item: Option<Role> = None;
    for (i, line) in lines.iter().enumerate() {
        let mut forced = match line.role {
            Role::Alert => last_item.is_some(),
            Role::Metric => last_item == Some(Role::Alert),
            _ => false,
        };
        for c in &placement.before[i] {
            let kept = line.role.keeps_blank(true, after_open) && blank_between(prev, c.start);
            write_line(&mut out, forced || kept, line.comment_indent(), c.text);
            (prev, after_open, forced) = (Some(c.end), false, false);
        }
        let kept = line.role.keeps_blank(false, after_open) && blank_between(prev, line.start);
        write_line(&mut out, forced || kept, line.indent, &line.text);
        for text in &placement.trailing[i] {
            out.pop();
            out.push_str("  ");
            out.push_str(text);
            out.push('\n');
        }
        (prev, after_open) = (Some(line.end), line.opens);
        if matches!(line.role, Role::Metric | Role::Alert) {
            last_item = Some(line.role);
        }
    }
    for c in &placement.tail {
        write_line(&mut out, blank_between(prev, c.start), 0, c.text);
        prev = Some(c.end);
    }
    out
}

/// Appends one line, after a blank line if asked (never at the start of the file).
fn write_line(out: &mut String, blank: bool, indent: usize, text: &str) {
    if blank && !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&INDENT.repeat(indent));
    out.push_str(text);
    out.push('\n');
}

fn condition(c: &Condition) -> String {
    let mut out = String::new();
    expr(&c.expr, &mut out);
    match &c.hold {
        Some(Hold::Duration(q)) => out.push_str(&format!(" for {q}")),
        Some(Hold::Evaluations(q)) => out.push_str(&format!(" for {q} evaluations")),
        None => {}
    }
    out
}

/// Prints an expression on one line. Parentheses come only from `ExprKind::Paren`,
/// so the printed text parses back to the same tree.
fn expr(e: &Expr, out: &mut String) {
    match &e.kind {
        ExprKind::Quantity(q) => out.push_str(&q.to_string()),
        ExprKind::Selector(s) => {
            out.push_str(&s.metric.node);
            if !s.matchers.is_empty() {
                out.push('{');
                for (i, m) in s.matchers.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&m.label.node);
                    out.push_str(m.op.symbol());
                    out.push_str(&quote(&m.value.node));
                }
                out.push('}');
            }
        }
        ExprKind::Call { function, args } => {
            out.push_str(&function.node);
            out.push('(');
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                expr(arg, out);
            }
            out.push(')');
        }
        ExprKind::Neg(x) => {
            out.push('-');
            expr(x, out);
        }
        ExprKind::Arith(op, lhs, rhs) => binary(lhs, op.symbol(), rhs, out),
        ExprKind::Compare {
            op,
            lhs,
            rhs,
            window,
        } => {
            binary(lhs, op.symbol(), rhs, out);
            if let Some(w) = window {
                out.push_str(&format!(" in {w}"));
            }
        }
        ExprKind::And(lhs, rhs) => binary(lhs, "and", rhs, out),
        ExprKind::Or(lhs, rhs) => binary(lhs, "or", rhs, out),
        ExprKind::Not(x) => {
            out.push_str("not ");
            expr(x, out);
        }
        ExprKind::Paren(x) => {
            out.push('(');
            expr(x, out);
            out.push(')');
        }
    }
}

fn binary(lhs: &Expr, op: &str, rhs: &Expr, out: &mut String) {
    expr(lhs, out);
    out.push(' ');
    out.push_str(op);
    out.push(' ');
    expr(rhs, out);
}

/// A string literal with the grammar's three escapes, so it reads back unchanged.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
