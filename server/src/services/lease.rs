//! The `Lease` service: Grant, Revoke, KeepAlive, TimeToLive, Leases.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use mainstay_proto::etcdserverpb as pb;
use mainstay_store::{Command, CommandOutput};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::node::Node;

/// Keep-alive answers buffered per stream; a client that does not read them slows its own stream.
const KEEPALIVE_BUFFER: usize = 16;

pub struct LeaseService {
    pub node: Arc<Node>,
}

fn fresh_lease_id(node: &Node) -> i64 {
    loop {
        let id = rand::random::<i64>() & i64::MAX;
        if id != 0 && node.store.lease(id).is_none() {
            return id;
        }
    }
}

#[tonic::async_trait]
impl pb::lease_server::Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        self.node.check_quota(0).await?;
        let id = if req.id == 0 {
            fresh_lease_id(&self.node)
        } else {
            req.id
        };
        match self
            .node
            .propose(Command::LeaseGrant {
                id,
                ttl_secs: req.ttl,
            })
            .await?
        {
            CommandOutput::LeaseGrant {
                id,
                ttl_secs,
                revision,
            } => Ok(Response::new(pb::LeaseGrantResponse {
                header: self.node.header(revision),
                id,
                ttl: ttl_secs,
                error: String::new(),
            })),
            other => Err(Status::internal(format!("unexpected output {other:?}"))),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let out = self.node.propose(Command::LeaseRevoke { id }).await?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: self.node.header(out.revision()),
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send + 'static>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_BUFFER);
        let node = self.node.clone();
        tokio::spawn(async move {
            while let Some(req) = incoming.next().await {
                let Ok(req) = req else { return };
                let ttl = match node.renew_lease(req.id).await {
                    Ok(ttl) => ttl,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let resp = pb::LeaseKeepAliveResponse {
                    header: node.header(node.store.current_revision()),
                    id: req.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let ttl = self.node.lease_ttl(req.id).await?;
        let header = self.node.header(self.node.store.current_revision());
        let Some(ttl) = ttl else {
            // etcd answers an unknown lease with TTL -1 rather than an error.
            return Ok(Response::new(pb::LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: vec![],
            }));
        };
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: ttl.remaining_secs,
            granted_ttl: ttl.granted_secs,
            keys: if req.keys { ttl.keys } else { vec![] },
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let leases = self
            .node
            .lessor
            .by_expiry()
            .into_iter()
            .map(|id| pb::LeaseStatus { id })
            .collect();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.node.header(self.node.store.current_revision()),
            leases,
        }))
    }
}
