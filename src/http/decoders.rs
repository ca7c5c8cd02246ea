//! The request decoders, bytes in and a value or a refusal out, exactly as the
//! handlers run them: the entry points of the fuzz targets (`fuzz/`). The text
//! format's target calls [`crate::exposition::parse`], all its handler decodes.

pub use super::ingest::decode_samples;
pub use super::intake::{WebhookBody, decode_v2_alerts, decode_webhook};
pub use super::slack::{decode_command, decode_interaction};
