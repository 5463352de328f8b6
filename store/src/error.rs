//! The store's one error type.

/// Everything the store can refuse or fail at. Variants that are a client's mistake carry no detail:
/// the server maps each to etcd's exact gRPC code and message (clients match on the message text).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    #[error("store: mvcc: required revision has been compacted")]
    Compacted,
    #[error("store: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("store: key is not provided")]
    EmptyKey,
    #[error("store: key not found")]
    KeyNotFound,
    #[error("store: value is provided")]
    ValueProvided,
    #[error("store: lease is provided")]
    LeaseProvided,
    #[error("store: too many operations in txn request")]
    TooManyOps,
    #[error("store: duplicate key given in txn request")]
    DuplicateKey,
    #[error("store: requested lease not found")]
    LeaseNotFound,
    #[error("store: lease already exists")]
    LeaseExists,
    #[error("store: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("store: backend: {0}")]
    Backend(String),
    #[error("store: corrupt data: {0}")]
    Corrupt(String),
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Backend(e.into_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
