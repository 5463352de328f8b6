//! The crate's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("client: reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error(
        "client: no kubeconfig given and none found in $KUBECONFIG, ~/.kube/config or the pod: {0}"
    )]
    InferConfig(#[source] kube::config::InferConfigError),

    #[error("client: invalid user agent {0:?}")]
    UserAgent(String),

    /// Building the client, or a request the crate made (Lease, Event).
    #[error("client: {0}")]
    Kube(#[from] kube::Error),

    #[error("leader election: {0}")]
    ElectionConfig(String),

    /// The lease was written by someone else since it was read (resourceVersion mismatch), or
    /// created by someone else first.
    #[error("leader election: lease {0} was changed concurrently")]
    Conflict(String),

    /// The term ended because no renewal succeeded within the renew deadline, or another
    /// candidate holds the lease. Kubernetes components exit on this.
    #[error("leader election: leadership lost")]
    LeadershipLost,

    /// A lease lock that is not the API (tests).
    #[error("leader election: lock: {0}")]
    Lock(String),

    #[error("health server: binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("health server: {0}")]
    Serve(#[source] std::io::Error),
}
