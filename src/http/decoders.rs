//! The request decoders, bytes in and a value or a refusal out, exactly as the
//! handlers run them: the entry points of the fuzz targets (`fuzz/`).

pub use super::ingest::decode_samples;
pub use super::intake::{WebhookBody, decode_v2_alerts, decode_webhook};
pub use super::slack::{decode_command, decode_interaction};

/// Parses a Prometheus text-format body as `POST /api/v1/import/prometheus` does:
/// the samples, or the first bad line.
pub fn decode_exposition(
    body: &[u8],
    max_labels: usize,
) -> Result<Vec<crate::series::IncomingSample>, String> {
    super::import::parse_exposition(body, max_labels)
        .map(|samples| samples.into_iter().map(|s| s.into_incoming()).collect())
        .map_err(|e| e.to_string())
}
