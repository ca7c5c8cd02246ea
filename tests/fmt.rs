//! `tocsin fmt`: the canonical layout, comments, and round-trip properties.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tocsin::matcher::MatchOp;
use tocsin::rules::ast::*;
use tocsin::rules::fmt::{format_source, print_file};
use tocsin::rules::parser::parse_file;

fn fmt(text: &str) -> String {
    format_source(text).unwrap_or_else(|d| panic!("{d:?}\n{text}"))
}

#[test]
fn messy_input_gets_the_canonical_layout() {
    let messy = r#"
# Business alerts
metric success_rate   gauge ratio
metric chrome_startup_failures counter count   # per host
alert "投稿成功率低下" {when success_rate<90% for 15m
   severity critical labels { category="business" , }
  annotations { summary = "投稿成功率が {{ value }} に低下" # a trailing comment stays on its line
  }
    escalate "default" }
"#;
    let expected = r#"# Business alerts
metric success_rate gauge ratio
metric chrome_startup_failures counter count  # per host

alert "投稿成功率低下" {
  when success_rate < 90% for 15m
  severity critical
  labels {
    category = "business"
  }
  annotations {
    summary = "投稿成功率が {{ value }} に低下"  # a trailing comment stays on its line
  }
  escalate "default"
}
"#;
    assert_eq!(fmt(messy), expected);
}

#[test]
fn expressions_and_comments_everywhere() {
    let messy = r#"alert   "disk" {   # why this alert exists
  when disk_space{host="a",mount=~"/var.*"}<20%   or predict( disk_space , 6h,24h )<5%
     for 3 evaluations
  # who gets paged
  route   "ops"
  resolve when not(disk_space>30%)and-x*(a+b)-c/d>=1 in 1h
  when auth_failures>20 in 5m and not not f() != --y
  when (a # inside a condition
    + b) * 2 > 10MB/hour


  keep firing for 5m
  severity warning
  labels {}
  annotations { a = "quote \" backslash \\ newline \n hash # not a comment" b="" }
  # closing note

}
# trailing file comment
"#;
    let expected = r#"alert "disk" {  # why this alert exists
  when disk_space{host="a", mount=~"/var.*"} < 20% or predict(disk_space, 6h, 24h) < 5% for 3 evaluations
  # who gets paged
  route "ops"
  resolve when not (disk_space > 30%) and -x * (a + b) - c / d >= 1 in 1h
  when auth_failures > 20 in 5m and not not f() != --y
  # inside a condition
  when (a + b) * 2 > 10MB/hour

  keep firing for 5m
  severity warning
  labels {}
  annotations {
    a = "quote \" backslash \\ newline \n hash # not a comment"
    b = ""
  }
  # closing note
}
# trailing file comment
"#;
    assert_eq!(fmt(messy), expected);
}

#[test]
fn one_line_alert_from_the_cli_test() {
    assert_eq!(
        fmt("alert \"x\" {  when   a>1 for 5m\n severity   info }"),
        "alert \"x\" {\n  when a > 1 for 5m\n  severity info\n}\n"
    );
}

#[test]
fn blank_lines_between_items() {
    let source = "metric a gauge ratio\nmetric b gauge ratio\n\n\n\nmetric c gauge ratio\n\
                  alert \"x\" { severity info }\nmetric d gauge ratio\nalert \"y\" {}\n\n\n";
    let expected = "metric a gauge ratio\nmetric b gauge ratio\n\nmetric c gauge ratio\n\n\
                    alert \"x\" {\n  severity info\n}\n\nmetric d gauge ratio\n\nalert \"y\" {}\n";
    assert_eq!(fmt(source), expected);
}

#[test]
fn blank_lines_inside_alerts_are_kept_only_between_fields() {
    let source = "alert \"x\" {\n\n  when a > 1\n\n\n  severity info\n  labels {\n\n    a = \"1\"\n\n    b = \"2\"\n\n  }\n\n}\n";
    let expected = "alert \"x\" {\n  when a > 1\n\n  severity info\n  labels {\n    a = \"1\"\n    b = \"2\"\n  }\n}\n";
    assert_eq!(fmt(source), expected);
}

#[test]
fn comments_go_before_what_follows_them_at_its_indentation() {
    let source = "# top\n\n# about x\nalert \"x\" {\n# about when\nwhen a > 1\nlabels {\n# about k\nk = \"v\"\n# end of labels\n}\n      # end of alert\n}\n\n# end of file\n";
    let expected = "# top\n\n# about x\nalert \"x\" {\n  # about when\n  when a > 1\n  labels {\n    # about k\n    k = \"v\"\n    # end of labels\n  }\n  # end of alert\n}\n\n# end of file\n";
    assert_eq!(fmt(source), expected);
}

#[test]
fn comments_inside_one_line_code_move_above_it() {
    let source = "metric # what\n  m gauge ratio\nalert # name next\n \"x\" # brace next\n {\n  when a >\n  # threshold\n  1 # unit-less\n  for 5m\n  labels # brace next\n  {}\n}\n";
    let expected = "# what\nmetric m gauge ratio\n\n# name next\n# brace next\nalert \"x\" {\n  # threshold\n  # unit-less\n  when a > 1 for 5m\n  # brace next\n  labels {}\n}\n";
    assert_eq!(fmt(source), expected);
}

#[test]
fn trailing_comments_stay_on_their_printed_line() {
    let source = "alert \"x\" { # open\n  labels { a = \"1\", # one\n b = \"2\" } # closed labels\n  severity info } # closed alert\n";
    let expected = "alert \"x\" {  # open\n  labels {\n    a = \"1\"  # one\n    b = \"2\"\n  }  # closed labels\n  severity info\n}  # closed alert\n";
    assert_eq!(fmt(source), expected);
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(fmt(""), "");
    assert_eq!(fmt("\n\n  \n"), "");
    assert_eq!(
        fmt("\n\n# one   \n\n\n# two\n# three"),
        "# one\n\n# two\n# three\n"
    );
}

#[test]
fn a_syntax_error_is_the_parsers_diagnostic() {
    let source = "alert \"x\" {\n  when a > for 5m\n}\n";
    assert_eq!(format_source(source), Err(parse_file(source).unwrap_err()));
}

#[test]
fn print_file_drops_comments_and_source_blank_lines() {
    let file = parse_file("# c\nmetric a gauge ratio # t\n\nmetric b gauge ratio\nalert \"x\" {\n\n when a > 1\n\n severity info}").unwrap();
    assert_eq!(
        print_file(&file),
        "metric a gauge ratio\nmetric b gauge ratio\n\nalert \"x\" {\n  when a > 1\n  severity info\n}\n"
    );
}

#[test]
fn shipped_rules_are_already_canonical() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let sources = tocsin::rules::read_sources(&[dir]).unwrap();
    assert!(sources.len() >= 6);
    for tocsin::rules::SourceFile { path, text } in sources {
        assert_eq!(fmt(&text), text, "{}", path.display());
    }
}

#[test]
fn formatting_is_idempotent() {
    let sources = [
        "metric a gauge ratio # t\n\n\n# group\nmetric b counter count\n",
        "alert \"x\" { # open\n when a >\n # inside\n 1 # after\n\n\n severity info # s\n labels { a = \"b#\" , # x\n # before close\n } \n # last\n\n} # e\n# end\n\n# end2\n",
        "alert \"a\" {} alert \"b\" { labels {} annotations { x = \"1\" y = \"2\\n\\\"\" } }\nmetric z g",
        "  # only a comment",
        "alert \"x\"{when(a)>1 in 5m and(b)<2 or not c for 2 evaluations resolve when a<1 keep firing for 5m escalate \"e\" route \"r\"}",
    ];
    for source in sources {
        let once = fmt(source);
        assert_eq!(fmt(&once), once, "from {source:?}");
        assert_eq!(parse_file(&once), parse_file(source));
    }
}

// ---------------------------------------------------------------------------------
// Properties over generated syntax trees.

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "for",
    "in",
    "when",
    "resolve",
    "severity",
    "labels",
    "annotations",
    "keep",
    "firing",
    "escalate",
    "route",
    "metric",
    "alert",
    "evaluations",
];

fn spanned(node: String) -> Spanned<String> {
    Spanned::new(node, Span::default())
}

fn expr_of(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn not_keyword(name: &str) -> bool {
    !KEYWORDS.contains(&name)
}

fn metric_name() -> impl Strategy<Value = String> {
    "[a-z_:][a-z0-9_:]{0,8}".prop_filter("keywords are not names", |n| not_keyword(n))
}

fn function_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,8}".prop_filter("keywords are not names", |n| not_keyword(n))
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}"
}

/// A bare word (kinds, units, severities): never a keyword, which the grammar
/// reads as the start of the next field or item.
fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z]{1,8}".prop_filter("keywords are not words", |w| not_keyword(w))
}

/// Any text, weighted towards what needs escaping or could pass for a comment.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => any::<char>(),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('\n'),
        1 => Just('#'),
        1 => Just('{'),
        1 => Just(' '),
        1 => prop::sample::select(vec!['投', '稿', 'é']),
    ];
    vec(c, 0..12).prop_map(|cs| cs.into_iter().collect())
}

fn quantity() -> impl Strategy<Value = Quantity> {
    let unit = prop_oneof![Just("%".to_string()), "[a-zA-Z]{1,4}(/[a-zA-Z]{1,4})?"];
    ("[0-9]{1,4}(\\.[0-9]{1,3})?", option::of(unit)).prop_map(|(number, unit)| Quantity {
        number,
        unit,
        span: Span::default(),
    })
}

fn selector() -> impl Strategy<Value = Selector> {
    let op = prop_oneof![
        Just(MatchOp::Equal),
        Just(MatchOp::NotEqual),
        Just(MatchOp::Regex),
        Just(MatchOp::NotRegex),
    ];
    let matcher = (label_name(), op, text()).prop_map(|(label, op, value)| Matcher {
        label: spanned(label),
        op,
        value: spanned(value),
    });
    (metric_name(), vec(matcher, 0..3)).prop_map(|(metric, matchers)| Selector {
        metric: spanned(metric),
        matchers,
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        quantity().prop_map(|q| expr_of(ExprKind::Quantity(q))),
        selector().prop_map(|s| expr_of(ExprKind::Selector(s))),
    ];
    let tree = leaf.prop_recursive(4, 32, 3, |inner| {
        let arith = prop_oneof![
            Just(ArithOp::Add),
            Just(ArithOp::Sub),
            Just(ArithOp::Mul),
            Just(ArithOp::Div),
        ];
        let compare = prop_oneof![
            Just(CompareOp::Lt),
            Just(CompareOp::Le),
            Just(CompareOp::Gt),
            Just(CompareOp::Ge),
            Just(CompareOp::Eq),
            Just(CompareOp::Ne),
        ];
        let boxed = |e: Expr| Box::new(e);
        prop_oneof![
            (function_name(), vec(inner.clone(), 0..3)).prop_map(|(f, args)| {
                expr_of(ExprKind::Call {
                    function: spanned(f),
                    args,
                })
            }),
            inner
                .clone()
                .prop_map(move |x| expr_of(ExprKind::Neg(boxed(x)))),
            (arith, inner.clone(), inner.clone())
                .prop_map(move |(op, l, r)| expr_of(ExprKind::Arith(op, boxed(l), boxed(r)))),
            (
                compare,
                inner.clone(),
                inner.clone(),
                option::of(quantity())
            )
                .prop_map(move |(op, l, r, window)| expr_of(ExprKind::Compare {
                    op,
                    lhs: boxed(l),
                    rhs: boxed(r),
                    window,
                })),
            (inner.clone(), inner.clone())
                .prop_map(move |(l, r)| expr_of(ExprKind::And(boxed(l), boxed(r)))),
            (inner.clone(), inner.clone())
                .prop_map(move |(l, r)| expr_of(ExprKind::Or(boxed(l), boxed(r)))),
            inner
                .clone()
                .prop_map(move |x| expr_of(ExprKind::Not(boxed(x)))),
            inner.prop_map(move |x| expr_of(ExprKind::Paren(boxed(x)))),
        ]
    });
    tree.prop_map(parenthesize)
}

/// How tightly an expression binds, loosest first, following the grammar:
/// or < and < not < comparison < + - < * / < negation < atoms.
fn strength(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Or(..) => 0,
        ExprKind::And(..) => 1,
        ExprKind::Not(_) => 2,
        ExprKind::Compare { .. } => 3,
        ExprKind::Arith(ArithOp::Add | ArithOp::Sub, ..) => 4,
        ExprKind::Arith(ArithOp::Mul | ArithOp::Div, ..) => 5,
        ExprKind::Neg(_) => 6,
        _ => 7,
    }
}

/// Wraps every child in `Paren` where the parser could not otherwise have built the
/// tree: chains are left-associative, comparisons do not nest, and `not` holds a
/// comparison.
fn parenthesize(e: Expr) -> Expr {
    let kind = match e.kind {
        ExprKind::Call { function, args } => ExprKind::Call {
            function,
            args: args.into_iter().map(parenthesize).collect(),
        },
        ExprKind::Neg(x) => ExprKind::Neg(at_least(6, *x)),
        ExprKind::Arith(op, l, r) => {
            let own = if matches!(op, ArithOp::Add | ArithOp::Sub) {
                4
            } else {
                5
            };
            ExprKind::Arith(op, at_least(own, *l), at_least(own + 1, *r))
        }
        ExprKind::Compare {
            op,
            lhs,
            rhs,
            window,
        } => ExprKind::Compare {
            op,
            lhs: at_least(4, *lhs),
            rhs: at_least(4, *rhs),
            window,
        },
        ExprKind::And(l, r) => ExprKind::And(at_least(1, *l), at_least(2, *r)),
        ExprKind::Or(l, r) => ExprKind::Or(at_least(0, *l), at_least(1, *r)),
        ExprKind::Not(x) => ExprKind::Not(at_least(2, *x)),
        ExprKind::Paren(x) => ExprKind::Paren(Box::new(parenthesize(*x))),
        leaf => leaf,
    };
    expr_of(kind)
}

fn at_least(strength_needed: u8, child: Expr) -> Box<Expr> {
    let child = parenthesize(child);
    if strength(&child) < strength_needed {
        Box::new(expr_of(ExprKind::Paren(Box::new(child))))
    } else {
        Box::new(child)
    }
}

fn condition() -> impl Strategy<Value = Condition> {
    let hold = prop_oneof![
        quantity().prop_map(Hold::Duration),
        quantity().prop_map(Hold::Evaluations),
    ];
    (expr(), option::of(hold)).prop_map(|(expr, hold)| Condition {
        expr,
        hold,
        span: Span::default(),
    })
}

fn pairs() -> impl Strategy<Value = Vec<Pair>> {
    let pair = (label_name(), text()).prop_map(|(key, value)| Pair {
        key: spanned(key),
        value: spanned(value),
    });
    vec(pair, 0..3)
}

fn field() -> impl Strategy<Value = Field> {
    let kind = prop_oneof![
        condition().prop_map(FieldKind::When),
        condition().prop_map(FieldKind::ResolveWhen),
        word().prop_map(|s| FieldKind::Severity(spanned(s))),
        pairs().prop_map(FieldKind::Labels),
        pairs().prop_map(FieldKind::Annotations),
        quantity().prop_map(FieldKind::KeepFiringFor),
        text().prop_map(|s| FieldKind::Escalate(spanned(s))),
        text().prop_map(|s| FieldKind::Route(spanned(s))),
    ];
    kind.prop_map(|kind| Field {
        kind,
        span: Span::default(),
    })
}

fn item() -> impl Strategy<Value = Item> {
    let unit = option::of(
        "[a-zA-Z]{1,8}(/[a-zA-Z]{1,8})?".prop_filter("keywords are not units", |u| {
            not_keyword(u.split('/').next().unwrap_or(""))
        }),
    );
    let metric = (metric_name(), word(), unit).prop_map(|(name, kind, unit)| {
        Item::Metric(MetricDecl {
            name: spanned(name),
            kind: spanned(kind),
            unit: unit.map(spanned),
            span: Span::default(),
        })
    });
    let alert = (text(), vec(field(), 0..6)).prop_map(|(name, fields)| {
        Item::Alert(Alert {
            name: spanned(name),
            fields,
            span: Span::default(),
        })
    });
    prop_oneof![metric, alert]
}

/// Any file of up to five items (a metric without a unit may be followed by more).
fn file() -> impl Strategy<Value = File> {
    vec(item(), 0..5).prop_map(|items| File { items })
}

/// Decorates printed lines: 1 = trailing comment, 2 = comment line above, 3 = blank
/// line above. Markers are numbered so each can be counted after formatting.
fn decorate(printed: &str, edits: &[u8]) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut markers = Vec::new();
    for (i, line) in printed.lines().enumerate() {
        let marker = format!("#@{i}@");
        match edits.get(i).copied().unwrap_or(0) {
            1 => out.push_str(&format!("{line} {marker}\n")),
            2 => out.push_str(&format!("   {marker}\n{line}\n")),
            3 => out.push_str(&format!("\n{line}\n")),
            _ => out.push_str(&format!("{line}\n")),
        }
        if matches!(edits.get(i), Some(1 | 2)) {
            markers.push(marker);
        }
    }
    (out, markers)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_trees_parse_back_and_are_canonical(ast in file()) {
        let printed = print_file(&ast);
        prop_assert_eq!(parse_file(&printed), Ok(ast), "{}", printed);
        prop_assert_eq!(format_source(&printed), Ok(printed.clone()));
    }

    #[test]
    fn comments_and_blank_lines_survive_and_settle(ast in file(), edits in vec(0u8..4, 0..64)) {
        let (source, markers) = decorate(&print_file(&ast), &edits);
        let once = format_source(&source).unwrap();
        for marker in &markers {
            prop_assert_eq!(once.matches(marker.as_str()).count(), 1, "{} lost:\n{}", marker, once);
        }
        prop_assert_eq!(format_source(&once), Ok(once.clone()));
        prop_assert_eq!(parse_file(&once), Ok(ast));
    }
}
