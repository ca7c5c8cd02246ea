//! Arbitrary bytes → parse + check a rules file, render every diagnostic (text, colour
//! and JSON), and format the source. None of it may panic, whatever the input. The
//! parser's fast path must build exactly what pest builds (spans included).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::rules::diagnostic::{self, SourceFile};
use tocsin::rules::{CheckOptions, check_sources, fmt, parser};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        format!("{:?}", parser::parse_file(text)),
        format!("{:?}", parser::parse_with_pest(text)),
        "the fast path and pest disagree"
    );
    let sources = [SourceFile {
        path: "fuzz.rules".into(),
        text: text.to_owned(),
    }];
    if let Err(diags) = check_sources(&sources, &CheckOptions::default()) {
        let plain = diagnostic::render(&sources, &diags, false);
        std::hint::black_box(plain);
        let coloured = diagnostic::render(&sources, &diags, true);
        std::hint::black_box(coloured);
        for d in &diags {
            let json = serde_json::to_string(&diagnostic::to_json(&sources, d))
                .expect("a diagnostic serialises to JSON");
            std::hint::black_box(json);
        }
    }
    let _ = std::hint::black_box(fmt::format_source(text));
});
