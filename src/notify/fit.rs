//! Cutting a message to what its provider accepts: the longest start of a text, or
//! of a list of items, that a test of the whole rendered message accepts. Each
//! channel says what "fits" means (segments, bytes, URL-encoded length); the search
//! is shared. A test must be monotone: what fits stays fitting when shortened.

/// A text on one line, its runs of whitespace one space: a mail header or label never
/// breaks its lines, and line breaks cost SMS segments and say nothing on a phone
/// or in a call.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The largest `k` in `0..=n` for which `fits(k)` holds, given that it holds for
/// every smaller `k` when it holds for `k`; None when even `fits(0)` fails.
pub fn longest(n: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
    if fits(n) {
        return Some(n);
    }
    if !fits(0) {
        return None;
    }
    let (mut ok, mut too_long) = (0, n);
    while too_long - ok > 1 {
        let mid = ok + (too_long - ok) / 2;
        if fits(mid) {
            ok = mid;
        } else {
            too_long = mid;
        }
    }
    Some(ok)
}

/// The byte offsets where `text` may be cut (every character boundary, the end
/// included), so a cut never splits a character.
pub fn cuts(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect()
}

/// A list in ranges: `[2, 3, 4, 5, 7, 9, 10]` → `["2-5", "7", "9-10"]`, sorted,
/// each number once. Long batches of incident numbers stay short this way.
pub fn ranges(numbers: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut all: Vec<u64> = numbers.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let start = all[i];
        let mut end = start;
        while i + 1 < all.len() && all[i + 1] == end + 1 {
            i += 1;
            end = all[i];
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_finds_the_last_prefix_that_fits() {
        assert_eq!(longest(10, |k| k <= 4), Some(4));
        assert_eq!(longest(10, |_| true), Some(10));
        assert_eq!(longest(10, |k| k == 0), Some(0));
        assert_eq!(longest(10, |_| false), None);
        assert_eq!(longest(0, |_| true), Some(0));
    }

    #[test]
    fn numbers_become_ranges() {
        assert_eq!(ranges([7, 2, 3, 4, 5, 9, 10, 3]), ["2-5", "7", "9-10"]);
        assert_eq!(ranges([42]), ["42"]);
        assert_eq!(ranges(2..=205), ["2-205"]);
        assert!(ranges([]).is_empty());
    }

    #[test]
    fn cuts_fall_between_characters() {
        assert_eq!(cuts("a投b"), [0, 1, 4, 5]);
        assert_eq!(cuts(""), [0]);
    }
}
