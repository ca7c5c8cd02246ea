//! TOML text → [`RawConfig`], with toml's errors turned into tocsin's: each names the
//! key and its section (`unknown key "listne" in [server]`) at the key's line:col.
//!
//! serde stops at the first error. The document is deserialized again without the
//! key at fault, so every problem is reported in one run: an unknown key changes
//! nothing when left out, and a value of the wrong type (`port = "25"`) leaves its
//! key at the default, which the problem already reports. Only a missing required
//! key ends this stage; one that is missing because its wrong-typed value was left
//! out is not reported again.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Problem, Source};
use super::raw::RawConfig;

/// Reads the document. `Ok` carries the raw config and the unknown keys skipped
/// (validation still runs, so those are reported together with its problems).
pub(crate) fn read(src: &Source) -> Result<(RawConfig, Vec<Problem>), Vec<Problem>> {
    let (mut table, errors) = DeTable::parse_recoverable(src.text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| {
                let message = format!("syntax error: {}", lowercase_first(e.message()));
                src.problem(e.span(), message)
            })
            .collect());
    }
    let mut nodes = Vec::new();
    index_table(table.get_ref(), &mut Vec::new(), &mut nodes);
    let mut problems = Vec::new();
    // Keys left out because their values had the wrong type: serde then misses
    // them, which is not a second problem.
    let mut left_out: Vec<String> = Vec::new();
    // Each pass removes one key, so this ends; the bound is a backstop.
    for _ in 0..=nodes.len() {
        let error = match RawConfig::deserialize(toml::de::Deserializer::from(table.clone())) {
            Ok(raw) => return Ok((raw, problems)),
            Err(e) => e,
        };
        let message = error.message();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'));
        if missing.is_some_and(|name| left_out.iter().any(|k| k == name)) {
            return Err(problems);
        }
        let (problem, key) = translate(&error, &nodes, src);
        problems.push(problem);
        let Some(span) = key else {
            return Err(problems);
        };
        if let Some(Seg::Key(name)) = nodes
            .iter()
            .find(|n| n.is_key && n.span == span)
            .and_then(|n| n.path.last())
        {
            left_out.push(name.clone());
        }
        if !remove_key(table.get_mut(), &span) {
            return Err(problems);
        }
    }
    Err(problems)
}

/// One step of a path into the document: a key, or an index into an array.
#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn same(&self, other: &Seg) -> bool {
        match (self, other) {
            (Seg::Key(a), Seg::Key(b)) => a == b,
            (Seg::Index(a), Seg::Index(b)) => a == b,
            _ => false,
        }
    }
}

/// A key or a value of the document, with where it is.
struct Node {
    span: Range<usize>,
    path: Vec<Seg>,
    is_key: bool,
    /// For values: "a string", "an integer", … as a message says what was found.
    found: &'static str,
}

fn index_table(table: &DeTable, path: &mut Vec<Seg>, out: &mut Vec<Node>) {
    for (key, value) in table.iter() {
        path.push(Seg::Key(key.get_ref().to_string()));
        out.push(Node {
            span: key.span(),
            path: path.clone(),
            is_key: true,
            found: "",
        });
        index_value(value, path, out);
        path.pop();
    }
}

fn index_value(value: &Spanned<DeValue>, path: &mut Vec<Seg>, out: &mut Vec<Node>) {
    out.push(Node {
        span: value.span(),
        path: path.clone(),
        is_key: false,
        found: found(value.get_ref()),
    });
    match value.get_ref() {
        DeValue::Table(t) => index_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                index_value(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn found(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Removes the key written at `span`, wherever it is in the document.
fn remove_key(table: &mut DeTable, span: &Range<usize>) -> bool {
    // Keys compare by name, and a table holds a name once.
    let key = table.keys().find(|k| k.span() == *span).cloned();
    if let Some(key) = key {
        return table.remove(&key).is_some();
    }
    table
        .iter_mut()
        .any(|(_, v)| remove_key_in_value(v.get_mut(), span))
}

fn remove_key_in_value(value: &mut DeValue, span: &Range<usize>) -> bool {
    match value {
        DeValue::Table(t) => remove_key(t, span),
        DeValue::Array(items) => items
            .iter_mut()
            .any(|item| remove_key_in_value(item.get_mut(), span)),
        _ => false,
    }
}

/// toml's error as tocsin's problem; the second value is the span of the key at
/// fault (unknown, or its value of the wrong type), which the caller may remove and
/// try again.
fn translate(
    error: &toml::de::Error,
    nodes: &[Node],
    src: &Source,
) -> (Problem, Option<Range<usize>>) {
    let message = error.message();
    let span = error.span();
    // The deepest node wins: `[[tokens]]` is the span of both `tokens` and `tokens[0]`.
    let node = |is_key: bool| {
        let span = span.as_ref()?;
        nodes
            .iter()
            .filter(|n| n.is_key == is_key && n.span == *span)
            .max_by_key(|n| n.path.len())
    };
    if let (true, Some(key)) = (message.starts_with("unknown field "), node(true))
        && let Some((Seg::Key(name), parent)) = key.path.split_last()
    {
        let mut text = format!("unknown key {name:?} {}", in_section(parent));
        if let Some(meant) = suggestion(name, message) {
            text.push_str(&format!(" (did you mean {meant:?}?)"));
        }
        return (src.problem(span.clone(), text), span);
    }
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        let section = node(false).map_or(String::new(), |n| format!(" {}", in_section(&n.path)));
        return (
            src.problem(span, format!("missing key {name:?}{section}")),
            None,
        );
    }
    let value = node(false);
    // The key whose value is at fault: left out, the rest of the file is read on.
    let key_of_value = value.and_then(|v| {
        nodes
            .iter()
            .filter(|n| n.is_key && n.path.len() == v.path.len())
            .find(|n| n.path.iter().zip(&v.path).all(|(a, b)| a.same(b)))
            .map(|n| n.span.clone())
    });
    let recoverable =
        message.starts_with("invalid type: ") || message.starts_with("invalid value: ");
    let text = if let Some(rest) = message.strip_prefix("invalid type: ") {
        let expected = rest.rfind(", expected ").map(|i| &rest[i + 11..]);
        match (value, expected) {
            // What was found is said by its type only: the value might be a secret
            // written where a number was expected.
            (Some(v), Some(expected)) => format!(
                "{}: expected {}, found {}",
                dotted(&v.path),
                expected_words(expected),
                v.found
            ),
            _ => lowercase_first(message),
        }
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        let split = rest.rfind(", expected ");
        match (value, split) {
            (Some(v), Some(i)) => format!(
                "{}: expected {}, found {}",
                dotted(&v.path),
                expected_words(&rest[i + 11..]),
                rest[..i].replace('`', "")
            ),
            _ => lowercase_first(message),
        }
    } else {
        match value {
            Some(v) if !v.path.is_empty() => {
                format!("{}: {}", dotted(&v.path), lowercase_first(message))
            }
            _ => lowercase_first(message),
        }
    };
    let key = if recoverable { key_of_value } else { None };
    (src.problem(span, text), key)
}

/// The field serde expected that `name` most likely meant, from its message
/// "unknown field `listn`, expected one of `listen`, `body_limit`, …".
fn suggestion<'m>(name: &str, message: &'m str) -> Option<&'m str> {
    let expected = message.split_once("expected ")?.1;
    let candidates = expected.split('`').skip(1).step_by(2);
    crate::rules::suggest(name, candidates)
}

/// serde's names for what a field wants, in the words of a TOML user.
fn expected_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".to_string(),
        "a sequence" => "an array".to_string(),
        e if e.starts_with("struct ") || e == "a map" => "a table".to_string(),
        e => e.to_string(),
    }
}

/// `in [server]`, `in [[tokens]]`, `in [channels.console]`, `at the top level`.
fn in_section(path: &[Seg]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match path.last() {
        None => "at the top level".to_string(),
        Some(Seg::Index(_)) => format!("in [[{}]]", keys.join(".")),
        Some(Seg::Key(_)) => format!("in [{}]", keys.join(".")),
    }
}

/// `server.listen`, `tokens[0].token`, `rules.paths[2]`.
fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
