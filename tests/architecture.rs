//! ARCHITECTURE.md's map, checked: every module's imports are among what its line
//! in "What may depend on what" allows, the allowed graph has no cycle, every module
//! under `src/` has a line, and no source file is longer than about 800 lines of
//! production code without saying why at its top.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Production lines (before a file's `#[cfg(test)]` module) above which a file must
/// say at its top why it is one file.
const LONG_FILE: usize = 800;
/// The words that start that reason, in the file's first lines.
const LONG_FILE_REASON: &str = "//! Why one file:";

/// `module → modules it may use`, from the fenced block after the heading
/// "What may depend on what" in ARCHITECTURE.md (lines `module: a b c`).
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split_once("## What may depend on what")
        .expect("ARCHITECTURE.md has a section \"What may depend on what\"")
        .1;
    let block = section
        .split("```")
        .nth(1)
        .expect("the section holds a fenced block of `module: dependencies` lines");
    let mut out = BTreeMap::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (module, deps) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not `module: deps`: {line:?}"));
        let deps = deps.split_whitespace().map(str::to_string).collect();
        assert!(
            out.insert(module.trim().to_string(), deps).is_none(),
            "{module} is listed twice"
        );
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a source file belongs to: its first path component under `src/`
/// (`src/notify/slack.rs` → `notify`, `src/clock.rs` → `clock`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and string literals, so a path named in a
/// doc comment or a message is not taken for an import.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' must not open a string.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\\") || rest.chars().nth(1) == Some('\'') {
                    let n = if rest.starts_with('\\') { 3 } else { 2 };
                    for _ in 0..n {
                        chars.next();
                    }
                    out.push_str("' '");
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The crate modules a file names (`crate::x`, and `tocsin::x` in the binary).
fn used(file: &Path) -> BTreeSet<String> {
    let text = code(&std::fs::read_to_string(file).unwrap());
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "tocsin::"] {
        for (i, _) in text.match_indices(prefix) {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let name: String = text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn every_import_is_one_the_map_allows() {
    let allowed = allowed();
    let mut files = Vec::new();
    sources(&Path::new(ROOT).join("src"), &mut files);
    files.sort();
    let mut forbidden = Vec::new();
    let mut unlisted = BTreeSet::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" {
            continue;
        }
        let Some(may) = allowed.get(&module) else {
            unlisted.insert(module);
            continue;
        };
        for dep in used(file) {
            if dep != module && !may.contains(&dep) {
                let rel = file.strip_prefix(ROOT).unwrap().display().to_string();
                forbidden.push(format!("{rel}: {module} uses {dep}"));
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "modules without a line in ARCHITECTURE.md's \"What may depend on what\": {unlisted:?}"
    );
    assert!(
        forbidden.is_empty(),
        "imports ARCHITECTURE.md does not allow (change the code, or the map and \
         its reasons):\n{}",
        forbidden.join("\n")
    );
    for (module, deps) in &allowed {
        for dep in deps {
            assert!(
                allowed.contains_key(dep),
                "{module} may use {dep}, which is not a module"
            );
        }
    }
}

#[test]
fn the_allowed_graph_has_no_cycle() {
    let allowed = allowed();
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!(
                "ARCHITECTURE.md allows a cycle: {} → {m}",
                path[i..].join(" → ")
            );
        }
        path.push(m.to_string());
        for dep in graph.get(m).into_iter().flatten() {
            visit(dep, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in allowed.keys() {
        visit(m, &allowed, &mut Vec::new(), &mut done);
    }
}

#[test]
fn long_files_say_why_they_are_one_file() {
    let mut files = Vec::new();
    sources(&Path::new(ROOT).join("src"), &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let production = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        let says_why = text
            .lines()
            .take(30)
            .any(|l| l.starts_with(LONG_FILE_REASON));
        if production > LONG_FILE && !says_why {
            let rel = file.strip_prefix(ROOT).unwrap().display().to_string();
            long.push(format!("{rel}: {production} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "files over {LONG_FILE} lines of production code that do not start with \
         `{LONG_FILE_REASON} ...`: split them by concern, or say why not:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_sees_imports_and_ignores_comments_and_strings() {
    let text = "use crate::alert::X; // crate::store is only named\nlet s = \"crate::http\";\nlet c = '\"'; fn f() -> crate::clock::T {}\n";
    let dir = std::env::temp_dir().join(format!("tocsin-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("x.rs");
    std::fs::write(&f, text).unwrap();
    let got: Vec<String> = used(&f).into_iter().collect();
    assert_eq!(got, ["alert", "clock"]);
}
