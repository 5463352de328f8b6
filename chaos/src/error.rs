//! The chaos suite's one error type.

/// What stops a chaos run before its checks (a violation is not an error: it is a result).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A docker or docker compose command could not run or failed.
    #[error("{command}: {message}")]
    Docker { command: String, message: String },
    /// The cluster did not become healthy, or did not converge, in time.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A client endpoint URL tonic refused.
    #[error("bad endpoint {0}")]
    Endpoint(String),
    /// Writing the history or report.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
