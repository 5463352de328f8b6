//! `mainstay-server`: serves etcd's v3 gRPC API (KV, Watch, Lease, Maintenance, Cluster, gRPC
//! health) and etcd's HTTP `/health` and `/version` over one [`mainstay_store::Store`].
//!
//! Owns: the conversion between etcd's protobuf messages and the store's types (nowhere else), the
//! one table from errors to etcd's gRPC codes and messages ([`error`]), request limits (size, txn
//! ops, backend quota), batching of writes into log entries and of linearizable reads into
//! read-index rounds, lease deadlines ([`lessor`]), and the Watch stream protocol
//! (created/canceled responses, prev_kv, fragments, progress).
//!
//! Also owns a member's place in the cluster: the [`node::Node`] drives a `mainstay-raft` instance,
//! forwards what only the leader may do to it over the peer transport ([`peer`]), and serves the
//! peer URLs (Raft's RPCs and the forwarded requests, [`services::member_peer`]).
//!
//! Dependencies between modules run one way: `services` → `node` → `lessor`, `peer`, the
//! read-index batcher and the proposer. Those lower modules never name the node (etcd's lessor
//! pattern: the lessor hands out expired leases and the node's loops propose the revokes).
//!
//! Must not depend on: openraft's storage or network internals (the `raft` crate owns them), the
//! apiserver, or any Kubernetes type. Its unit tests use no sockets; processes on loopback are
//! tested from the `mainstay` binary's integration tests and `testkit`.

pub mod convert;
pub mod error;
pub mod lessor;
pub mod node;
pub mod peer;
mod proposer;
mod read_index;
pub mod services;
mod urls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use mainstay_proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use error::{Result, ServerError};
pub use node::{Node, NodeConfig};
pub use urls::{check_advertised_url, parse_listen_url};

/// gRPC's own framing on top of a request (etcd allows the same slack over `--max-request-bytes`).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// How long a stopping member lets open requests finish before it drops their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Concurrent requests per connection.
const MAX_CONCURRENT_STREAMS: u32 = 1000;

/// The gRPC services and HTTP routes of one node.
pub fn routes(node: &Arc<Node>) -> Routes {
    let limit = node.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let http = axum::Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .with_state(node.clone());
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    drop(health_reporter); // serving status of "" defaults to SERVING
    let kv = services::kv::KvService { node: node.clone() };
    let watch = services::watch::WatchService { node: node.clone() };
    let lease = services::lease::LeaseService { node: node.clone() };
    let maint = services::maintenance::MaintenanceService { node: node.clone() };
    let cluster = services::maintenance::ClusterService { node: node.clone() };
    // Built from tonic's `Routes` so an unknown gRPC service gets gRPC's UNIMPLEMENTED (tonic's
    // fallback), then the HTTP routes are merged in.
    let routes = Routes::new(health_service)
        .add_service(KvServer::new(kv).max_decoding_message_size(limit))
        .add_service(WatchServer::new(watch).max_decoding_message_size(limit))
        .add_service(LeaseServer::new(lease).max_decoding_message_size(limit))
        .add_service(MaintenanceServer::new(maint).max_decoding_message_size(limit))
        .add_service(ClusterServer::new(cluster).max_decoding_message_size(limit));
    Routes::from(
        routes
            .into_axum_router()
            .merge(http)
            .layer(axum::middleware::map_response(receive_limit_as_grpc_go)),
    )
}

/// tonic's refusal of a request over the receive limit, as (found, limit) bytes.
fn tonic_too_large(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

/// etcd's gRPC server (grpc-go) refuses a request over its receive limit with ResourceExhausted
/// "grpc: received message larger than max (N vs. M)"; tonic says OutOfRange "Error, decoded
/// message length too large: ...". Clients see grpc-go's answer. (Unary calls only: there the
/// refusal is a trailers-only response, so the status is in the headers.)
async fn receive_limit_as_grpc_go(mut resp: axum::response::Response) -> axum::response::Response {
    if resp.headers().get("grpc-status").map(|v| v.as_bytes()) != Some(b"11") {
        return resp;
    }
    let Some(status) = tonic::Status::from_header_map(resp.headers()) else {
        return resp;
    };
    if let Some((found, limit)) = tonic_too_large(status.message()) {
        let etcd = tonic::Status::resource_exhausted(format!(
            "grpc: received message larger than max ({found} vs. {limit})"
        ));
        let headers = resp.headers_mut();
        headers.remove("grpc-message");
        headers.remove("grpc-status-details-bin");
        if etcd.add_header(headers).is_err() {
            tracing::warn!("could not rewrite a receive-limit status");
        }
    }
    resp
}

/// Binds every client and peer URL first (so a port clash fails fast), then serves until
/// `shutdown`.
pub async fn serve(
    node: Arc<Node>,
    client_listen_urls: &[String],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut listeners = Vec::new();
    for url in client_listen_urls {
        let addr = parse_listen_url(url)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Io {
                context: format!("listening on {url}"),
                source,
            })?;
        tracing::info!(%url, "serving client requests");
        listeners.push(l);
    }
    let mut peer_listeners = Vec::new();
    for url in &node.config.listen_peer_urls {
        let addr = parse_listen_url(url)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Io {
                context: format!("listening for peers on {url}"),
                source,
            })?;
        tracing::info!(%url, "serving peers");
        peer_listeners.push(l);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let peers = tokio::spawn(serve_peers(node.clone(), peer_listeners, stop_rx.clone()));
    let mut tasks = Vec::new();
    // As etcd, clients are served once this member has published itself to the cluster; until
    // then their connections wait in the listen backlog.
    let mut stop = stop_rx.clone();
    tokio::select! {
        _ = node.wait_ready() => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    tracing::info!("published to the cluster; serving clients");
    for l in listeners {
        let routes = routes(&node);
        let mut stop = stop_rx.clone();
        let incoming = nodelay(l);
        tasks.push(tokio::spawn(
            tonic::transport::Server::builder()
                .accept_http1(true)
                .tcp_nodelay(true)
                .http2_keepalive_interval(Some(Duration::from_secs(10)))
                .http2_keepalive_timeout(Some(Duration::from_secs(20)))
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        ));
    }
    let servers = async {
        for t in tasks {
            t.await
                .map_err(|e| ServerError::Config(format!("server task: {e}")))??;
        }
        peers
            .await
            .map_err(|e| ServerError::Config(format!("peer server task: {e}")))?
    };
    // A graceful shutdown waits for open requests, and a watch stream never ends by itself: after
    // the grace period the remaining connections are dropped (what is acknowledged is on disk).
    let mut stop = stop_rx.clone();
    tokio::select! {
        result = servers => result,
        _ = async {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::info!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period are dropped");
            Ok(())
        }
    }
}

/// Accepted connections with Nagle's algorithm off. tonic's `tcp_nodelay` applies only to the
/// listeners it binds itself, not to an incoming stream we hand it; without this, a response
/// written in two pieces waits for the client's delayed ACK (40 ms).
fn nodelay(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|c| {
            if let Err(e) = c.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        })
    })
}

/// Raft's RPCs and the forwarded requests, on the peer listeners, until `stop`.
async fn serve_peers(
    node: Arc<Node>,
    listeners: Vec<TcpListener>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut tasks = Vec::new();
    for l in listeners {
        let mut stop = stop.clone();
        let incoming = nodelay(l);
        tasks.push(tokio::spawn(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .http2_keepalive_interval(Some(Duration::from_secs(5)))
                .http2_keepalive_timeout(Some(Duration::from_secs(10)))
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .add_service(mainstay_raft::peer::service(
                    node.raft.clone(),
                    node.cluster_id,
                    node.leader_lease(),
                ))
                .add_service(services::member_peer::service(node.clone()))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        ));
    }
    for t in tasks {
        t.await
            .map_err(|e| ServerError::Config(format!("peer server task: {e}")))??;
    }
    Ok(())
}

/// etcd's `/health`: healthy while the store answers and no alarm is raised.
async fn health(
    axum::extract::State(node): axum::extract::State<Arc<Node>>,
) -> (http::StatusCode, axum::Json<serde_json::Value>) {
    let alarms = node.store.alarms();
    if node.leader().is_none() {
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"health": "false", "reason": "RAFT NO LEADER"})),
        );
    }
    if alarms.is_empty() {
        (
            http::StatusCode::OK,
            axum::Json(serde_json::json!({"health": "true", "reason": ""})),
        )
    } else {
        let names: Vec<String> = alarms
            .iter()
            .map(|a| format!("{:?}", a.kind).to_uppercase())
            .collect();
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({"health": "false", "reason": format!("ALARM {}", names.join(","))}),
            ),
        )
    }
}

async fn version() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "etcdserver": services::maintenance::ETCD_VERSION,
        "etcdcluster": "3.5.0",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn over_limit_requests_get_grpc_gos_status() {
        let limit = 16;
        let mut resp = axum::response::Response::new(axum::body::Body::empty());
        let tonic_status = tonic::Status::out_of_range(format!(
            "Error, decoded message length too large: found 20 bytes, the limit is: {limit} bytes"
        ));
        tonic_status.add_header(resp.headers_mut()).unwrap();
        let resp = receive_limit_as_grpc_go(resp).await;
        let s = tonic::Status::from_header_map(resp.headers()).unwrap();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "grpc: received message larger than max (20 vs. 16)"
        );

        // Any other status passes through untouched.
        let mut resp = axum::response::Response::new(axum::body::Body::empty());
        let other =
            tonic::Status::out_of_range("etcdserver: mvcc: required revision is a future revision");
        other.add_header(resp.headers_mut()).unwrap();
        let resp = receive_limit_as_grpc_go(resp).await;
        let s = tonic::Status::from_header_map(resp.headers()).unwrap();
        assert_eq!((s.code(), s.message()), (other.code(), other.message()));
    }
}
