//! The one error type of the controllers.

/// What a controller's sync can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed (the sync is retried with backoff).
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A watch failed; kube-rs's watcher retries it.
    #[error("watch: {0}")]
    Watch(#[from] kube::runtime::watcher::Error),
    /// This process no longer leads: it must stop writing.
    #[error(transparent)]
    NotLeading(#[from] mainstay_component::NotLeading),
    /// An object the controller cannot act on as it is (e.g. an invalid selector); retrying will
    /// not help until the object changes.
    #[error("{0}")]
    Invalid(String),
    /// The controller names given to `--controllers` are not valid.
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
