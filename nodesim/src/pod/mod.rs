//! Pods on simulated nodes, all pure: what a node keeps of a Pod (`observe`), the per-node
//! state machine standing in for kubelet's pod workers and status manager (`sim`), and the
//! status it writes (`status`).

pub mod observe;
pub mod sim;
pub mod state;
pub mod status;
