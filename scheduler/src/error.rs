//! The crate's one error type.

/// What can stop the scheduler or fail one of its steps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Leadership was lost before a write; the caller stops acting.
    #[error("scheduler: {0}")]
    NotLeading(#[from] mainstay_component::NotLeading),
    /// A call to the API server failed.
    #[error("scheduler: API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A pod was assumed twice (a bug in the caller).
    #[error("scheduler: pod {0} is already in the cache, so it can't be assumed")]
    AlreadyInCache(String),
    /// An object could not be encoded for the API server.
    #[error("scheduler: encoding failed: {0}")]
    Encode(#[from] serde_json::Error),
    /// A watch stream ended, which the watcher never does unless its task died.
    #[error("scheduler: the {0} watch ended")]
    WatchEnded(&'static str),
}
