//! The request plumbing both `http` and `handlers` read (kube's `endpoints/request` and
//! `endpoints/handlers/negotiation`): the request parsed once (`info`), media types, bodies and
//! the JSON, Table and Status responses (`negotiate`), and the request metrics (`metrics`).
//! It sits below `handlers` and uses only `registry`'s `ObjectRef`, `machinery`, `resources`
//! and `error`.

pub mod info;
pub mod metrics;
pub mod negotiate;
