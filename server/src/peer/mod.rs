//! What members ask of each other besides Raft's own traffic: a follower forwards proposals,
//! read-index requests, lease keep-alives and time-to-live queries, and membership changes to the
//! leader; a joining member asks who it is. Served as the `MemberPeer` gRPC service on the peer
//! URLs (`services::member_peer`), with bincode payloads.
//!
//! - [`wire`]: the payloads and the leader's refusals, shared by the client and the service.
//! - [`client`]: [`client::PeerClients`], which calls another member at a URL the node resolved.
//!
//! Neither knows the node: the node resolves the leader's URL and calls the client, and the
//! service calls the node, so the arrows run services → node → peer client.

pub mod client;
pub mod wire;
