//! API machinery (kube's `k8s.io/apimachinery`): pure functions over `serde_json::Value`
//! objects, shared by every layer of the apiserver.
//!
//! - `schema`: the one table of list types, map keys, patch strategies and atomic structs.
//! - `patch`: JSON patch, merge patch and strategic merge patch.
//! - `apply`: server-side apply and `metadata.managedFields`.
//! - `selectors`: label and field selectors.
//! - `protobuf`: decoding of Kubernetes protobuf request bodies.
//! - `time`: RFC 3339 timestamps and civil dates.
//! - `meta`: object metadata helpers; `validation`: names, label keys and values.
//! - `yaml`: YAML bodies, with what aliases may expand to bounded.
//!
//! Architecture Invariant: nothing here does I/O or knows HTTP, handlers, the registry or
//! storage; `machinery` uses nothing else in the crate but `error` and `resources` (the compiler
//! would enforce it if it became a crate of its own).

pub mod apply;
pub mod meta;
pub mod patch;
pub mod protobuf;
pub mod schema;
pub mod selectors;
pub mod time;
pub mod validation;
pub mod yaml;
