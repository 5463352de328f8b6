//! gRPC services: thin adapters that convert at the edge, validate, and call the [`crate::node::Node`]:
//! etcd's client-facing services, and `MemberPeer` on the peer URLs ([`member_peer`]).

pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod member_peer;
pub mod watch;
