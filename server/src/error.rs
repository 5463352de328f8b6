//! The server's error type and the one table that maps errors to etcd's gRPC codes and messages.
//!
//! Clients (etcd's Go client, etcd-client, kube-apiserver) recognise errors by message text, so the
//! messages below are etcd's, byte for byte.

use mainstay_store::StoreError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutLeaderFail,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// etcd's strict reconfiguration check: the change would leave fewer started members than
    /// the quorum of the new configuration.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// Removing the member would leave fewer active members than a quorum.
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimeoutLeaderTransfer,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// A bounded queue is full (etcd answers this when its applied index lags far behind).
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// An error the leader answered a forwarded request with, passed on unchanged.
    #[error("{message}")]
    Forwarded { code: i32, message: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Raft(#[from] mainstay_raft::RaftError),
}

pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// etcd's code and message for a store error (etcd's `rpctypes` table).
fn store_code_message(e: &StoreError) -> (Code, &'static str) {
    match e {
        StoreError::Compacted => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        StoreError::FutureRevision => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        StoreError::EmptyKey => (Code::InvalidArgument, "etcdserver: key is not provided"),
        StoreError::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
        StoreError::ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
        StoreError::LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
        StoreError::TooManyOps => (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        StoreError::DuplicateKey => (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ),
        StoreError::LeaseNotFound => (Code::NotFound, "etcdserver: requested lease not found"),
        StoreError::LeaseExists => (Code::FailedPrecondition, "etcdserver: lease already exists"),
        StoreError::LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
        StoreError::Backend(_) => (Code::Unavailable, "etcdserver: backend error"),
        StoreError::Corrupt(_) => (Code::DataLoss, "etcdserver: corrupt cluster"),
    }
}

impl ServerError {
    /// The gRPC status etcd would answer with.
    pub fn to_status(&self) -> Status {
        let e = self;
        match e {
            ServerError::Store(s) => {
                let (code, message) = store_code_message(s);
                if matches!(s, StoreError::Backend(_) | StoreError::Corrupt(_)) {
                    tracing::error!(error = %s, "store failure");
                }
                Status::new(code, message)
            }
            ServerError::RequestTooLarge => Status::invalid_argument(e.to_string()),
            ServerError::NoSpace | ServerError::TooManyRequests => {
                Status::resource_exhausted(e.to_string())
            }
            ServerError::Stopped
            | ServerError::NoLeader
            | ServerError::Timeout
            | ServerError::TimeoutLeaderFail
            | ServerError::TimeoutLeaderTransfer
            | ServerError::NotSupportedForLearner
            | ServerError::Unhealthy => Status::unavailable(e.to_string()),
            ServerError::NotLeader
            | ServerError::PeerUrlExists
            | ServerError::MemberNotLearner
            | ServerError::LearnerNotReady
            | ServerError::TooManyLearners
            | ServerError::NotEnoughStartedMembers
            | ServerError::BadLeaderTransferee => Status::failed_precondition(e.to_string()),
            ServerError::MemberNotFound => Status::not_found(e.to_string()),
            ServerError::MemberBadUrls => Status::invalid_argument(e.to_string()),
            ServerError::Forwarded { code, message } => {
                Status::new(Code::from_i32(*code), message.clone())
            }
            ServerError::InvalidArgument(m) => Status::invalid_argument(m.clone()),
            ServerError::Unimplemented(m) => Status::unimplemented(m.clone()),
            ServerError::Config(_)
            | ServerError::Io { .. }
            | ServerError::Transport(_)
            | ServerError::Raft(_) => Status::internal(e.to_string()),
        }
    }

    /// An error with the same gRPC code and message, for each waiter of one shared result.
    pub(crate) fn duplicate(&self) -> ServerError {
        match self {
            ServerError::Stopped => ServerError::Stopped,
            ServerError::NoLeader => ServerError::NoLeader,
            ServerError::NotLeader => ServerError::NotLeader,
            ServerError::Timeout => ServerError::Timeout,
            ServerError::TimeoutLeaderFail => ServerError::TimeoutLeaderFail,
            ServerError::NotSupportedForLearner => ServerError::NotSupportedForLearner,
            other => {
                let status = other.to_status();
                ServerError::Forwarded {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                }
            }
        }
    }
}

/// What a failed openraft client write (a proposal or a membership change) means for the caller:
/// `None` when this member was not the leader (nothing was appended, the write may be retried),
/// else the error to answer with.
pub(crate) fn client_write_error(
    e: openraft::error::RaftError<
        u64,
        openraft::error::ClientWriteError<u64, mainstay_raft::Member>,
    >,
) -> Option<ServerError> {
    use openraft::error::{ClientWriteError, RaftError};
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => None,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Some(ServerError::Forwarded {
                code: Code::FailedPrecondition as i32,
                message: format!("etcdserver: {e}"),
            })
        }
        RaftError::Fatal(_) => Some(ServerError::Stopped),
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        e.to_status()
    }
}

/// A store error as the gRPC status etcd would send.
pub fn status(e: StoreError) -> Status {
    ServerError::Store(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_etcd_codes_and_messages() {
        let s = status(StoreError::Compacted);
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = status(StoreError::LeaseNotFound);
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "etcdserver: requested lease not found");
        let s: Status = ServerError::RequestTooLarge.into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "etcdserver: request is too large");
        let s: Status = ServerError::NoSpace.into();
        assert_eq!(s.code(), Code::ResourceExhausted);
        let s: Status = ServerError::NoLeader.into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let s: Status = ServerError::MemberNotFound.into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "etcdserver: member not found")
        );
        // A forwarded answer reaches the client exactly as the leader gave it.
        let s: Status = ServerError::Forwarded {
            code: Code::FailedPrecondition as i32,
            message: "etcdserver: lease already exists".into(),
        }
        .into();
        assert_eq!(
            (s.code(), s.message()),
            (Code::FailedPrecondition, "etcdserver: lease already exists")
        );
    }
}
