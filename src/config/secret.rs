//! A value that must never be printed: API tokens, and later passwords and webhook
//! URLs. Its `Debug` and `Display` print `***`, so a secret can sit in a struct that
//! derives `Debug`, or reach a log line or an error message by mistake, and still
//! not leak.

use std::fmt;

/// A secret string. Read it with [`Secret::expose`] only where it is used (an HTTP
/// header, a comparison); compare presented credentials with [`Secret::matches`].
#[derive(Clone)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into().into_boxed_str())
    }

    /// The secret itself. Every call site is a place the secret can leak: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret. The time taken depends on the lengths only,
    /// not on where the first differing byte is, so a client cannot guess a token one
    /// byte at a time by timing refusals.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        // black_box keeps the optimizer from turning the fold into an early exit.
        std::hint::black_box(diff) == 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.matches(other.expose())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
