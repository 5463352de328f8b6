//! The crate's one error type.

/// What can stop the simulated nodes, or be wrong in their configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value (flag) that cannot be used.
    #[error("nodesim: invalid configuration: {0}")]
    Config(String),
    /// A `--register-with-taints` style taint that does not parse.
    #[error("nodesim: invalid taint {taint:?}: {reason}")]
    Taint { taint: String, reason: String },
    /// A `--node-labels` style label list that does not parse.
    #[error("nodesim: invalid labels {labels:?}: {reason}")]
    Labels { labels: String, reason: String },
    /// The API server refused a node for good (not a transient failure): kubelet would not
    /// start either.
    #[error("nodesim: registering node {node}: {source}")]
    Register {
        node: String,
        /// Boxed: the error type stays small for the many `Result`s that never hold it.
        #[source]
        source: Box<kube::Error>,
    },
    /// A background task of the simulation ended when it should not have (a bug).
    #[error("nodesim: {0} stopped unexpectedly")]
    TaskStopped(&'static str),
}
