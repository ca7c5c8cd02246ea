//! The syntax tree of a rules file, as written: free of pest types, every node with
//! its span so diagnostics can point at it. Units and names are still words here; the
//! checker (`check.rs`) turns them into typed, base-unit values.

use std::fmt;

/// The deepest parenthesis nesting a condition may have. Parsing, checking and
/// printing recurse over expressions; bounding their depth keeps any input from
/// overflowing the stack. Real conditions nest a few levels.
pub const MAX_NESTING: usize = 32;

/// The most grammar nodes one condition may have: a bound on expression depth from
/// long operator chains and repeated `not`/`-`, which parentheses do not show.
pub const MAX_CONDITION_NODES: usize = 200;

use crate::matcher::MatchOp;

/// A byte range in one source file.
///
/// Spans are where a node was written, not what it means: two spans always compare
/// equal, so that `parse(fmt(x)) == parse(x)` compares meaning. Tests that care about
/// positions compare `start` and `end` directly.
#[derive(Clone, Copy, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A value with the span it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

/// One parsed rules file.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Metric(MetricDecl),
    Alert(Alert),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Metric(m) => m.span,
            Item::Alert(a) => a.span,
        }
    }
}

/// `metric NAME KIND [UNIT]`
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDecl {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub unit: Option<Spanned<String>>,
    pub span: Span,
}

/// `alert "NAME" { ... }`: fields in the order written; the checker finds missing and
/// repeated ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub name: Spanned<String>,
    pub fields: Vec<Field>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldKind {
    When(Condition),
    ResolveWhen(Condition),
    Severity(Spanned<String>),
    Labels(Vec<Pair>),
    Annotations(Vec<Pair>),
    KeepFiringFor(Quantity),
    Escalate(Spanned<String>),
    Route(Spanned<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub kind: FieldKind,
    pub span: Span,
}

/// `key = "value"` in a labels or annotations block.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub key: Spanned<String>,
    pub value: Spanned<String>,
}

/// An expression and how long it must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub expr: Expr,
    pub hold: Option<Hold>,
    pub span: Span,
}

/// The `for` clause.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// `for 15m`
    Duration(Quantity),
    /// `for 3 evaluations`
    Evaluations(Quantity),
}

/// A number as written, with its unit word: `90%`, `10MB/hour`, `0`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    pub number: String,
    pub unit: Option<String>,
    pub span: Span,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.number, self.unit.as_deref().unwrap_or(""))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Quantity(Quantity),
    Selector(Selector),
    Call {
        function: Spanned<String>,
        args: Vec<Expr>,
    },
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// `lhs OP rhs [in WINDOW]`
    Compare {
        op: CompareOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        window: Option<Quantity>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// Parentheses are kept so `fmt` writes them back where the author put them.
    Paren(Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            CompareOp::Lt => lhs < rhs,
            CompareOp::Le => lhs <= rhs,
            CompareOp::Gt => lhs > rhs,
            CompareOp::Ge => lhs >= rhs,
            CompareOp::Eq => lhs == rhs,
            CompareOp::Ne => lhs != rhs,
        }
    }
}

/// `metric{label="value", ...}`
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    pub metric: Spanned<String>,
    pub matchers: Vec<Matcher>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    pub label: Spanned<String>,
    pub op: MatchOp,
    pub value: Spanned<String>,
}
