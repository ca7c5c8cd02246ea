//! Annotation templates: text with `{{ field }}` placeholders, filled in when an alert
//! is rendered. The fields are few and fixed, so a misspelt one is a check error
//! rather than an empty string in a 3 a.m. page.

use std::collections::BTreeMap;

/// A placeholder's meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// The value that made the condition true.
    Value,
    /// The alert's name.
    Name,
    /// `critical`, `warning` or `info`.
    Severity,
    /// One label of the alert's series: `{{ labels.host }}`.
    Label(String),
}

impl Field {
    /// The names accepted, for messages.
    pub const NAMES: &[&str] = &["value", "name", "severity", "labels.<name>"];

    pub fn source(&self) -> String {
        match self {
            Field::Value => "value".into(),
            Field::Name => "name".into(),
            Field::Severity => "severity".into(),
            Field::Label(l) => format!("labels.{l}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Field(Field),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Template {
    pub segments: Vec<Segment>,
}

/// A problem in a template, at a byte range of the template text.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateError {
    pub range: std::ops::Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Template {
    /// Parses template text (already unescaped). Reports every bad placeholder.
    pub fn parse(text: &str) -> Result<Template, Vec<TemplateError>> {
        let mut segments = Vec::new();
        let mut errors = Vec::new();
        let mut rest = 0;
        while let Some(open) = text[rest..].find("{{").map(|i| i + rest) {
            if open > rest {
                segments.push(Segment::Text(text[rest..open].to_string()));
            }
            let Some(close) = text[open..].find("}}").map(|i| i + open) else {
                errors.push(TemplateError {
                    range: open..text.len(),
                    message: "unclosed `{{` in template".into(),
                    hint: Some("close the placeholder with `}}`".into()),
                });
                rest = text.len();
                break;
            };
            let inner = text[open + 2..close].trim();
            match parse_field(inner) {
                Some(f) => segments.push(Segment::Field(f)),
                None => errors.push(TemplateError {
                    range: open..close + 2,
                    message: format!("unknown template field `{inner}`"),
                    hint: Some(
                        match crate::rules::suggest(
                            inner.trim_start_matches('$'),
                            ["value", "name", "severity"],
                        ) {
                            Some(s) => format!("did you mean `{{{{ {s} }}}}`?"),
                            None => format!("the fields are: {}", Field::NAMES.join(", ")),
                        },
                    ),
                }),
            }
            rest = close + 2;
        }
        if rest < text.len() {
            segments.push(Segment::Text(text[rest..].to_string()));
        }
        if errors.is_empty() {
            Ok(Template { segments })
        } else {
            Err(errors)
        }
    }

    /// Fills the placeholders. `value` is already formatted for people.
    pub fn render(
        &self,
        value: &str,
        name: &str,
        severity: &str,
        labels: &BTreeMap<String, String>,
    ) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Text(t) => out.push_str(t),
                Segment::Field(Field::Value) => out.push_str(value),
                Segment::Field(Field::Name) => out.push_str(name),
                Segment::Field(Field::Severity) => out.push_str(severity),
                Segment::Field(Field::Label(l)) => {
                    out.push_str(labels.get(l).map_or("", String::as_str))
                }
            }
        }
        out
    }
}

fn parse_field(inner: &str) -> Option<Field> {
    match inner {
        "value" => Some(Field::Value),
        "name" => Some(Field::Name),
        "severity" => Some(Field::Severity),
        _ => {
            let label = inner.strip_prefix("labels.")?;
            crate::labels::valid_name(label).then(|| Field::Label(label.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_and_labels() {
        let t = Template::parse("{{ name }} on {{labels.host}}: {{ value }}").unwrap();
        let labels = BTreeMap::from([("host".to_string(), "bot-1".to_string())]);
        assert_eq!(
            t.render("85%", "CPU", "critical", &labels),
            "CPU on bot-1: 85%"
        );
    }

    #[test]
    fn unknown_fields_are_errors_with_positions() {
        let errs =
            Template::parse("now {{ valeu }} and {{ labels.host }} {{ $labels }}").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].range, 4..15);
        assert_eq!(errs[0].hint.as_deref(), Some("did you mean `{{ value }}`?"));
    }

    #[test]
    fn unclosed_placeholder_is_an_error() {
        assert!(Template::parse("value {{ value").is_err());
    }
}
