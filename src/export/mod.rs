//! Rules → other systems' formats. Exporters read checked rules (`rules::model`) only.

pub mod prometheus;
