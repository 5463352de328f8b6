//! Requests etcd refuses: the server must refuse them with etcd 3.4's exact gRPC code and message
//! (clients match on the message text), and keep serving afterwards.

mod common;

use common::{assert_status, grpc_status, http_get, Server};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseGrantOptions, PutOptions, Txn, TxnOp,
};
use tonic::Code;

const TOO_LARGE: &str = "etcdserver: request is too large";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";
/// etcd serves gRPC with a receive limit of `--max-request-bytes` plus this.
const GRPC_OVERHEAD: usize = 512 * 1024;

async fn current_revision(c: &mut Client) -> i64 {
    c.get("\0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

/// The node still runs and serves reads, writes and `/health`.
async fn assert_serving(server: &mut Server, c: &mut Client) {
    assert!(server.is_running(), "the server process died");
    let p = c.put("still/alive", "yes", None).await.unwrap();
    let r = c.get("still/alive", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"yes");
    assert_eq!(r.kvs()[0].mod_revision(), p.header().unwrap().revision());
    let (code, body) = http_get(server.port(), "/health").await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""health":"true""#), "{body}");
    assert!(server.is_running(), "the server process died");
}

/// A put whose value is `len` bytes.
async fn put_sized(
    c: &mut Client,
    len: usize,
) -> Result<etcd_client::PutResponse, etcd_client::Error> {
    c.put("big", vec![b'x'; len], None).await
}

/// A request larger than the gRPC receive limit: etcd's gRPC server (grpc-go) refuses it with
/// ResourceExhausted before etcd sees it.
fn assert_over_grpc_limit<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    grpc_limit: usize,
) {
    let status = grpc_status(result.expect_err("the request should have failed"));
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let prefix = "grpc: received message larger than max (";
    let suffix = format!(" vs. {grpc_limit})");
    assert!(
        status.message().starts_with(prefix) && status.message().ends_with(&suffix),
        "{status:?}"
    );
}

#[tokio::test]
async fn refused_requests_get_etcds_codes_and_messages() {
    let mut server = Server::start(&[]).await;
    let mut c = server.client().await;
    let max = 1536 * 1024; // the default --max-request-bytes

    // Empty keys.
    let key_missing = "etcdserver: key is not provided";
    assert_status(
        c.put("", "v", None).await,
        Code::InvalidArgument,
        key_missing,
    );
    assert_status(c.get("", None).await, Code::InvalidArgument, key_missing);
    assert_status(c.delete("", None).await, Code::InvalidArgument, key_missing);

    // Request size: comfortably under the limit is fine; just over it is refused by etcd's own
    // check; over the gRPC limit (max + 512 KiB) gRPC refuses it.
    put_sized(&mut c, max - 1024).await.unwrap();
    assert_status(
        put_sized(&mut c, max + 1).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    assert_status(
        put_sized(&mut c, max + GRPC_OVERHEAD / 2).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::put("big", vec![b'x'; max + 1], None)]))
            .await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    assert_over_grpc_limit(
        put_sized(&mut c, 2 * 1024 * 1024).await,
        max + GRPC_OVERHEAD,
    );

    // Txn op limits (--max-txn-ops 128), counted per branch and for compares.
    let puts = |n: usize| -> Vec<TxnOp> {
        (0..n)
            .map(|i| TxnOp::put(format!("ops/{i:03}"), "v", None))
            .collect()
    };
    let too_many = "etcdserver: too many operations in txn request";
    assert!(c
        .txn(Txn::new().and_then(puts(128)))
        .await
        .unwrap()
        .succeeded());
    assert_status(
        c.txn(Txn::new().and_then(puts(129))).await,
        Code::InvalidArgument,
        too_many,
    );
    assert_status(
        c.txn(Txn::new().or_else(puts(129))).await,
        Code::InvalidArgument,
        too_many,
    );
    let compares: Vec<Compare> = (0..129)
        .map(|i| Compare::version(format!("ops/{i:03}"), CompareOp::Greater, 0))
        .collect();
    assert_status(
        c.txn(Txn::new().when(compares)).await,
        Code::InvalidArgument,
        too_many,
    );

    // The same key written twice in one txn branch.
    let duplicate = "etcdserver: duplicate key given in txn request";
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::put("dup", "1", None), TxnOp::put("dup", "2", None)]))
            .await,
        Code::InvalidArgument,
        duplicate,
    );
    assert_status(
        c.txn(Txn::new().and_then([
            TxnOp::put("dup/a", "1", None),
            TxnOp::delete(
                "dup/",
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ),
        ]))
        .await,
        Code::InvalidArgument,
        duplicate,
    );
    assert!(c.get("dup", None).await.unwrap().kvs().is_empty());

    // Revisions in the future.
    let rev = current_revision(&mut c).await;
    assert_status(
        c.get("ops/000", Some(GetOptions::new().with_revision(rev + 1)))
            .await,
        Code::OutOfRange,
        FUTURE,
    );
    assert_status(c.compact(rev + 1, None).await, Code::OutOfRange, FUTURE);

    // Compacted revisions, and compacting twice at the same revision (or below it).
    c.put("c", "1", None).await.unwrap();
    c.put("c", "2", None).await.unwrap();
    let compact_at = current_revision(&mut c).await;
    c.compact(compact_at, None).await.unwrap();
    assert_status(
        c.get("c", Some(GetOptions::new().with_revision(compact_at - 1)))
            .await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(
        c.compact(compact_at, None).await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(
        c.compact(compact_at - 1, None).await,
        Code::OutOfRange,
        COMPACTED,
    );
    let r = c
        .get("c", Some(GetOptions::new().with_revision(compact_at)))
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value(), b"2");

    // Leases that do not exist, or already do.
    let lease_missing = "etcdserver: requested lease not found";
    assert_status(
        c.put("l", "v", Some(PutOptions::new().with_lease(0x7777)))
            .await,
        Code::NotFound,
        lease_missing,
    );
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::put(
            "l",
            "v",
            Some(PutOptions::new().with_lease(0x7777)),
        )]))
        .await,
        Code::NotFound,
        lease_missing,
    );
    assert_status(c.lease_revoke(0x7777).await, Code::NotFound, lease_missing);
    assert!(c.get("l", None).await.unwrap().kvs().is_empty());
    let id = c
        .lease_grant(60, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .unwrap()
        .id();
    assert_eq!(id, 0x1234);
    assert_status(
        c.lease_grant(60, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await,
        Code::FailedPrecondition,
        "etcdserver: lease already exists",
    );
    assert_status(
        c.lease_grant(9_000_000_001, None).await,
        Code::OutOfRange,
        "etcdserver: too large lease TTL",
    );

    // None of the refusals changed anything or hurt the node.
    assert_serving(&mut server, &mut c).await;
}

#[tokio::test]
async fn max_request_bytes_flag_sets_both_limits() {
    let max = 10 * 1024;
    let mut server = Server::start(&["--max-request-bytes", &max.to_string()]).await;
    let mut c = server.client().await;

    put_sized(&mut c, max - 1024).await.unwrap();
    assert_status(
        put_sized(&mut c, max + 1).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    // Between the limit and the gRPC limit: still etcd's own refusal.
    assert_status(
        put_sized(&mut c, max + GRPC_OVERHEAD - 1024).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    assert_over_grpc_limit(
        put_sized(&mut c, max + GRPC_OVERHEAD + 1024).await,
        max + GRPC_OVERHEAD,
    );
    let r = c.get("big", None).await.unwrap();
    assert_eq!(r.kvs()[0].value().len(), max - 1024);

    assert_serving(&mut server, &mut c).await;
}
