//! Diagnostics: what went wrong, where, what was expected and how to fix it. Rendered
//! for people by codespan-reporting (file:line:col, the source line, the span
//! underlined) and as JSON lines for CI bots.

use std::path::PathBuf;

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use serde::Serialize;

use super::ast::Span;

/// One rules file as read from disk. Diagnostics refer to it by its index in the
/// slice of sources being checked.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// A span in another place that explains this diagnostic ("first defined here").
#[derive(Clone, Debug, PartialEq)]
pub struct Related {
    pub file: usize,
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub level: Level,
    /// Index of the source file; set by whoever knows which file was being read.
    pub file: usize,
    pub span: Span,
    pub message: String,
    /// Short text printed under the underline.
    pub label: Option<String>,
    /// "did you mean `15m`?" and the like.
    pub hint: Option<String>,
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Error,
            file: 0,
            span,
            message: message.into(),
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_related(mut self, file: usize, span: Span, message: impl Into<String>) -> Self {
        self.related.push(Related {
            file,
            span,
            message: message.into(),
        });
        self
    }

    pub fn in_file(mut self, file: usize) -> Self {
        self.file = file;
        self
    }
}

/// The byte offsets where lines start, for offset → line:column lookups that do not
/// rescan the file each time.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// Line and column (both 1-based, column in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let col = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }
}

/// Line and column (both 1-based, column in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(text, offset)
}

/// Renders diagnostics the way a person reads them: `error: ...`, then
/// `┌─ file:line:col`, the source line with the span underlined, and notes.
pub fn render(sources: &[SourceFile], diagnostics: &[Diagnostic], color: bool) -> String {
    let mut files = SimpleFiles::new();
    for s in sources {
        files.add(s.path.display().to_string(), s.text.as_str());
    }
    let config = term::Config::default();
    let mut out = Vec::new();
    for d in diagnostics {
        let cs_diag = to_codespan(d);
        if color {
            let mut w = term::termcolor::Ansi::new(&mut out);
            term::emit_to_write_style(&mut w, &config, &files, &cs_diag)
                .expect("writing to a Vec cannot fail");
        } else {
            let mut w = term::termcolor::NoColor::new(&mut out);
            term::emit_to_write_style(&mut w, &config, &files, &cs_diag)
                .expect("writing to a Vec cannot fail");
        }
    }
    String::from_utf8(out).expect("codespan writes UTF-8")
}

fn to_codespan(d: &Diagnostic) -> cs::Diagnostic<usize> {
    let base = match d.level {
        Level::Error => cs::Diagnostic::error(),
        Level::Warning => cs::Diagnostic::warning(),
    };
    let mut labels = vec![
        cs::Label::primary(d.file, d.span.range())
            .with_message(d.label.clone().unwrap_or_default()),
    ];
    labels.extend(
        d.related
            .iter()
            .map(|r| cs::Label::secondary(r.file, r.span.range()).with_message(&r.message)),
    );
    let mut notes = Vec::new();
    if let Some(h) = &d.hint {
        notes.push(format!("help: {h}"));
    }
    base.with_message(&d.message)
        .with_labels(labels)
        .with_notes(notes)
}

/// The JSON shape of one diagnostic, for `--format json` (one object per line).
#[derive(Serialize)]
pub struct JsonDiagnostic<'a> {
    pub level: Level,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'a str>,
}

pub fn to_json<'a>(sources: &[SourceFile], d: &'a Diagnostic) -> JsonDiagnostic<'a> {
    let (file, text) = sources
        .get(d.file)
        .map(|s| (s.path.display().to_string(), s.text.as_str()))
        .unwrap_or_default();
    let (line, column) = line_col(text, d.span.start);
    let (end_line, end_column) = line_col(text, d.span.end);
    JsonDiagnostic {
        level: d.level,
        file,
        line,
        column,
        end_line,
        end_column,
        message: &d.message,
        label: d.label.as_deref(),
        hint: d.hint.as_deref(),
    }
}
