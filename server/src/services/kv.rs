//! The `KV` service: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use mainstay_proto::etcdserverpb as pb;
use mainstay_store::{validate, Command, CommandOutput};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::status;
use crate::node::Node;

/// Txn requests larger than this are converted and checked off the runtime's workers.
const HEAVY_TXN_BYTES: usize = 64 * 1024;

pub struct KvService {
    pub node: Arc<Node>,
}

fn unexpected(out: CommandOutput) -> Status {
    Status::internal(format!("mainstay: unexpected store output {out:?}"))
}

impl KvService {
    /// A read served from this member's store, as etcd serves a Range or a txn that only reads:
    /// after a read barrier unless `serializable`, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        serializable: bool,
        read: impl FnOnce(&mainstay_store::Store) -> mainstay_store::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        if !serializable {
            self.node.read_barrier().await?;
        }
        let store = self.node.store.clone();
        tokio::task::spawn_blocking(move || read(&store))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status)
    }
}

/// Whether a txn may add data (etcd checks the quota only for those).
fn txn_has_put(t: &mainstay_store::TxnRequest) -> bool {
    use mainstay_store::RequestOp;
    t.success.iter().chain(&t.failure).any(|op| match op {
        RequestOp::Put(_) => true,
        RequestOp::Txn(t) => txn_has_put(t),
        _ => false,
    })
}

/// etcd's `isTxnSerializable`: every top-level operation is a serializable Range.
fn txn_serializable(t: &pb::TxnRequest) -> bool {
    use pb::request_op::Request;
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| matches!(&op.request, Some(Request::RequestRange(r)) if r.serializable))
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let request = request.into_inner();
        let serializable = request.serializable;
        let req = convert::range_from_pb(request)?;
        validate::check_range(&req).map_err(status)?;
        let resp = self
            .read(serializable, move |store| store.range(&req))
            .await?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::range_to_pb(resp, header)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = request.into_inner();
        let size = req.encoded_len();
        self.node.check_size(size)?;
        let req = convert::put_from_pb(req);
        validate::check_put(&req).map_err(status)?;
        self.node.check_quota(size).await?;
        match self.node.propose(Command::Put(req)).await? {
            CommandOutput::Put(r) => {
                let header = self.node.header(r.revision);
                Ok(Response::new(convert::put_to_pb(r, header)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        self.node.check_size(req.encoded_len())?;
        let req = convert::delete_from_pb(req);
        validate::check_delete_range(&req).map_err(status)?;
        match self.node.propose(Command::DeleteRange(req)).await? {
            CommandOutput::DeleteRange(r) => {
                let header = self.node.header(r.revision);
                Ok(Response::new(convert::delete_to_pb(r, header)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let req = request.into_inner();
        let size = req.encoded_len();
        self.node.check_size(size)?;
        let serializable = txn_serializable(&req);
        let max_txn_ops = self.node.config.max_txn_ops;
        let check = move || -> Result<mainstay_store::TxnRequest, Status> {
            let req = convert::txn_from_pb(req)?;
            validate::check_txn(&req, max_txn_ops).map_err(status)?;
            Ok(req)
        };
        // A large txn (nested ones may hold 100,000 operations) is converted and checked on a
        // blocking thread, so it does not hold up the runtime workers that also carry heartbeats.
        let req = if size > HEAVY_TXN_BYTES {
            tokio::task::spawn_blocking(check)
                .await
                .map_err(|e| Status::internal(e.to_string()))??
        } else {
            check()?
        };
        if req.is_read_only() {
            // As etcd: a txn that only reads is served like a Range, not through the log.
            let resp = self
                .read(serializable, move |store| store.read_only_txn(&req))
                .await?;
            let header = self.node.header(resp.revision);
            return Ok(Response::new(convert::txn_to_pb(resp, header)));
        }
        if txn_has_put(&req) {
            self.node.check_quota(size).await?;
        }
        match self.node.propose(Command::Txn(req)).await? {
            CommandOutput::Txn(r) => {
                let header = self.node.header(r.revision);
                Ok(Response::new(convert::txn_to_pb(r, header)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let req = request.into_inner();
        match self
            .node
            .propose(Command::Compact {
                revision: req.revision,
            })
            .await?
        {
            CommandOutput::Compact { revision } => Ok(Response::new(pb::CompactionResponse {
                header: self.node.header(revision),
            })),
            other => Err(unexpected(other)),
        }
    }
}
