//! The rule language: parse → AST → checked rules, with diagnostics.
//!
//! `load` is the one entry point the rest of tocsin uses: paths in, a checked
//! [`RuleSet`] or every diagnostic out. A bad file never yields a partial rule set.

pub mod ast;
pub mod check;
mod descent;
pub mod diagnostic;
pub mod fmt;
pub mod model;
pub mod parser;
mod recover;
pub mod template;
pub mod units;

use std::io;
use std::path::{Path, PathBuf};

pub use check::CheckOptions;
pub use diagnostic::{Diagnostic, SourceFile};
pub use model::RuleSet;

/// The extension of rules files inside a rules folder.
pub const EXTENSION: &str = "rules";

/// Reads rules files: each path is a file, or a folder searched recursively for
/// `*.rules`, in a stable (sorted) order so diagnostics and exports are reproducible.
pub fn read_sources(paths: &[PathBuf]) -> io::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_dir(p, &mut files)?;
        } else {
            files.push(p.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Ok(SourceFile { path, text })
        })
        .collect()
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if p.extension().is_some_and(|e| e == EXTENSION) {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses every source, then checks them together. Reports all errors of all files:
/// every syntax error of a file (the parser recovers past each), and the check errors
/// of whatever parsed (an item recovery cut into is not blamed for what it lacks).
pub fn check_sources(
    sources: &[SourceFile],
    options: &CheckOptions,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut incomplete = Vec::new();
    let files: Vec<Option<ast::File>> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let parsed = parser::parse_recovering(&s.text);
            diags.extend(parsed.errors.into_iter().map(|d| d.in_file(i)));
            incomplete.push(damaged_items(parsed.file.as_ref(), &parsed.skipped));
            parsed.file
        })
        .collect();
    let checked = check::check_recovered(sources, &files, &incomplete, options);
    if diags.is_empty() {
        return checked;
    }
    if let Err(more) = checked {
        diags.extend(more);
    }
    // Syntax and check errors of a file together, in the order of the text.
    diags.sort_by_key(|d| (d.file, d.span.start));
    Err(diags)
}

/// Checks a standalone expression in tocsin's language against the metrics the
/// rule `sources` declare: `Ok((expr, is_condition))`, or its diagnostics, which
/// refer to `expression` as the source after the rule files (index
/// `sources.len()`).
pub fn check_expression(
    sources: &[SourceFile],
    expression: &SourceFile,
    options: &CheckOptions,
) -> Result<(model::Expr, bool), Vec<Diagnostic>> {
    let files: Vec<Option<ast::File>> = sources
        .iter()
        .map(|s| parser::parse_file(&s.text).ok())
        .collect();
    let expr = parser::parse_expression(&expression.text)
        .map_err(|d| vec![(*d).in_file(sources.len())])?;
    check::check_expression(sources, &files, expression, &expr, options)
}

/// The spans of the items that recovery cut into, so the checker does not report
/// what they lack (a `when` left out) on top of the syntax error that explains it.
fn damaged_items(
    file: Option<&ast::File>,
    skipped: &[std::ops::Range<usize>],
) -> Vec<std::ops::Range<usize>> {
    let Some(file) = file else {
        return Vec::new();
    };
    file.items
        .iter()
        .map(|item| match item {
            ast::Item::Alert(a) => a.span.range(),
            ast::Item::Metric(m) => m.span.range(),
        })
        .filter(|item| {
            skipped
                .iter()
                .any(|s| s.start < item.end.max(item.start + 1) && item.start < s.end)
        })
        .collect()
}

/// The closest of `candidates` to a misspelt `word`, if any is close enough to be
/// what was meant.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
