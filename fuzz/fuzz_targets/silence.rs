//! Arbitrary bytes → a silence as people type one: `Matcher::parse` on each
//! line, then whether the silence would match every alert
//! (`Matcher::matches_every_value`, a walk over the regex's DFA), and the Slack
//! command (`command::parse`). None may panic or run away. A matcher judged to
//! match every value must match the values the input itself suggests.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::matcher::Matcher;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tocsin::command::parse(&format!("silence {text}"));
    for line in text.lines().take(4) {
        let Ok(m) = Matcher::parse(line) else {
            continue;
        };
        // Values a label could hold: every line of the input, without control
        // characters (which the judgement leaves out), and a few fixed ones.
        let values: Vec<String> = text
            .lines()
            .map(|l| l.chars().filter(|c| !c.is_control()).collect())
            .chain(["a", "Z9", "日本語", "x y", "🚨"].map(String::from))
            .filter(|v: &String| !v.is_empty())
            .collect();
        for always_set in [true, false] {
            if m.matches_every_value(always_set) {
                for v in &values {
                    assert!(m.matches(v), "{m} is said to match every value, not {v:?}");
                }
                if !always_set {
                    assert!(m.matches(""), "{m} is said to match an absent label");
                }
            }
        }
    }
});
