//! `${VAR}` expansion in string values, so secrets live in the environment and not in
//! the file. `$${` is a literal `${`; any other `$` is itself.

/// Why a string value could not be expanded. Each names what the file says, never
/// a variable's value.
#[derive(Debug, PartialEq)]
pub(crate) enum ExpandError {
    Unset(String),
    Unterminated,
    BadName(String),
}

impl ExpandError {
    pub(crate) fn message(&self) -> String {
        match self {
            ExpandError::Unset(name) => format!("environment variable \"{name}\" is not set"),
            ExpandError::Unterminated => {
                "unterminated \"${\" (write \"$${\" for a literal \"${\")".to_string()
            }
            ExpandError::BadName(name) => format!(
                "invalid environment variable name \"{name}\" in \"${{{name}}}\": \
                 use letters, digits and _, not starting with a digit"
            ),
        }
    }
}

/// Expands every `${NAME}` in `text` through `env`, in one pass: a value that itself
/// contains `${` is not expanded again.
pub(crate) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or(ExpandError::Unterminated)?;
            let name = &after[..end];
            if !is_name(name) {
                return Err(ExpandError::BadName(name.to_string()));
            }
            let value = env(name).ok_or_else(|| ExpandError::Unset(name.to_string()))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A portable environment variable name, as POSIX shells accept.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "NESTED" => Some("${A}".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(expand("plain", &env), Ok("plain".into()));
        assert_eq!(expand("x${A}y${A}", &env), Ok("xalphayalpha".into()));
        assert_eq!(expand("$${A}", &env), Ok("${A}".into()));
        assert_eq!(expand("cost $5 $", &env), Ok("cost $5 $".into()));
        assert_eq!(expand("${NESTED}", &env), Ok("${A}".into()));
        assert_eq!(expand("${EMPTY}", &env), Ok(String::new()));
        assert_eq!(expand("${B}", &env), Err(ExpandError::Unset("B".into())));
        assert_eq!(expand("${A", &env), Err(ExpandError::Unterminated));
        assert_eq!(
            expand("${}", &env),
            Err(ExpandError::BadName(String::new()))
        );
        assert_eq!(
            expand("${A:-x}", &env),
            Err(ExpandError::BadName("A:-x".into()))
        );
    }
}
