//! gRPC services: thin adapters that convert at the edge, validate, and call the [`crate::node::Node`].

pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;
