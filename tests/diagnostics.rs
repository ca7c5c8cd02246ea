//! Every kind of rule error, rendered exactly as `tocsin check` shows it. One fixture
//! per error in tests/fixtures/errors; the snapshots are the expected diagnostics.

use std::path::PathBuf;

use tocsin::rules::{CheckOptions, SourceFile, check_sources, diagnostic::render};

#[test]
fn error_fixtures_render_as_snapshots() {
    insta::glob!("fixtures/errors/*.rules", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = PathBuf::from(path.file_name().unwrap());
        let sources = [SourceFile { path: name, text }];
        let diags = check_sources(&sources, &CheckOptions::default())
            .expect_err("every fixture in errors/ has an error");
        insta::assert_snapshot!(render(&sources, &diags, false));
    });
}
