//! The suite's own etcd v3 calls (health probes, status, HashKV, final state), over plain gRPC
//! stubs, each bounded by a timeout. The workload's calls are the testkit's, through the
//! `etcd-client` crate.

use std::collections::BTreeMap;
use std::time::Duration;

use mainstay_proto::etcdserverpb::kv_client::KvClient;
use mainstay_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use mainstay_proto::etcdserverpb::{HashKvRequest, PutRequest, RangeRequest, StatusRequest};
use mainstay_testkit::client::prefix_end;
use tonic::transport::{Channel, Endpoint};

use crate::Error;

/// A lazily connected channel to one member; it reconnects by itself after the member comes
/// back, and HTTP/2 keep-alives drop a connection to a frozen or cut-off member.
pub fn channel(url: &str) -> Result<Channel, Error> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|_| Error::Endpoint(url.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// A short name for a failure, so the report can count failures by kind.
fn failure_kind(status: &tonic::Status) -> String {
    let message: String = status.message().chars().take(60).collect();
    format!("{:?}: {message}", status.code())
}

fn revision(header: Option<&mainstay_proto::etcdserverpb::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

/// A member's view of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub member_id: u64,
    pub leader: u64,
    pub raft_term: u64,
    pub revision: i64,
}

pub async fn status(channel: Channel, timeout: Duration) -> Result<Status, String> {
    let call = async {
        MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await
            .map(|r| r.into_inner())
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => {
            let header = r.header.unwrap_or_default();
            Ok(Status {
                member_id: header.member_id,
                leader: r.leader,
                raft_term: r.raft_term,
                revision: header.revision,
            })
        }
        Ok(Err(status)) => Err(failure_kind(&status)),
        Err(_) => Err("timeout".into()),
    }
}

/// A put outside the workload's keys (probing whether the cluster takes writes); its revision.
pub async fn probe_put(channel: Channel, key: &str, timeout: Duration) -> Result<i64, String> {
    let mut kv = KvClient::new(channel);
    let call = kv.put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"probe".to_vec(),
        ..Default::default()
    });
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => Ok(revision(r.into_inner().header.as_ref())),
        Ok(Err(status)) => Err(failure_kind(&status)),
        Err(_) => Err("timeout".into()),
    }
}

/// HashKV at `revision`: (hash, compact revision).
pub async fn hash_kv(
    channel: Channel,
    revision: i64,
    timeout: Duration,
) -> Result<(u32, i64), String> {
    let mut maintenance = MaintenanceClient::new(channel);
    let call = maintenance.hash_kv(HashKvRequest { revision });
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => {
            let r = r.into_inner();
            Ok((r.hash, r.compact_revision))
        }
        Ok(Err(status)) => Err(failure_kind(&status)),
        Err(_) => Err("timeout".into()),
    }
}

/// Every key under `prefix` as this member has it at `revision` (a serializable read: each
/// member answers from its own state).
pub async fn prefix_state(
    channel: Channel,
    prefix: &str,
    revision: i64,
    timeout: Duration,
) -> Result<BTreeMap<String, String>, String> {
    let mut kv = KvClient::new(channel);
    let call = kv.range(RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        revision,
        serializable: true,
        ..Default::default()
    });
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => Ok(r
            .into_inner()
            .kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                )
            })
            .collect()),
        Ok(Err(status)) => Err(failure_kind(&status)),
        Err(_) => Err("timeout".into()),
    }
}
