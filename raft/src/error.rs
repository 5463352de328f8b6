//! The Raft layer's one error type.

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("raft: storage: {0}")]
    Storage(String),
    #[error("raft: encoding: {0}")]
    Codec(String),
    #[error("raft: io: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("raft: store: {0}")]
    Store(#[from] mainstay_store::StoreError),
}

impl From<rocksdb::Error> for RaftError {
    fn from(e: rocksdb::Error) -> Self {
        RaftError::Storage(e.into_string())
    }
}

pub type Result<T, E = RaftError> = std::result::Result<T, E>;

/// An `io::Error` with what was being done.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RaftError {
    let context = context.into();
    move |source| RaftError::Io { context, source }
}
