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

/// Parses every source, then checks them together. Reports all errors of all files.
pub fn check_sources(
    sources: &[SourceFile],
    options: &CheckOptions,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let files: Vec<Option<ast::File>> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| match parser::parse_file(&s.text) {
            Ok(f) => Some(f),
            Err(d) => {
                diags.push((*d).in_file(i));
                None
            }
        })
        .collect();
    match check::check_files(sources, &files, options) {
        Ok(set) if diags.is_empty() => Ok(set),
        Ok(_) => Err(diags),
        Err(more) => {
            diags.extend(more);
            Err(diags)
        }
    }
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
