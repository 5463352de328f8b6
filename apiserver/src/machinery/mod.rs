//! API machinery: pure functions over `serde_json::Value` (kube's apimachinery). No I/O, no HTTP
//! types, and nothing else of this crate.

pub mod apply;
pub mod meta;
pub mod patch;
pub mod protobuf;
pub mod selectors;
pub mod validation;
