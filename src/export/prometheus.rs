//! Checked rules → Prometheus alerting-rule YAML.

use crate::rules::RuleSet;
use crate::rules::model::Origin;

/// A rule that uses a construct PromQL cannot express.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportError {
    pub rule: String,
    pub origin: Origin,
    pub message: String,
}

/// One rule group per source file, named after the file's stem.
pub fn to_prometheus(_set: &RuleSet) -> Result<String, Vec<ExportError>> {
    Err(Vec::new())
}
