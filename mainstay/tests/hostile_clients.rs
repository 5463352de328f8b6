//! Clients that hold a member's resources without using them cannot stop it serving others.
//!
//! Reproduce: `cargo test --release --workspace --test hostile_clients -- --nocapture`

mod common;

use std::time::{Duration, Instant};

use common::{within, Server};
use mainstay_proto::etcdserverpb as pb;
use pb::maintenance_client::MaintenanceClient;

/// The tests here take turns: each loads its own member hard (hundreds of streams, a 10 MiB
/// request), and on two cores one test's load would be measured as the other's latency.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 512 `Maintenance.Snapshot` streams whose client never reads used to park 512 threads of the
/// runtime's blocking pool (its default size) in a blocking send: reads, applies and watch
/// catch-up, which run there too, stopped. Snapshots now have threads of their own, a few at a
/// time (the rest are refused with etcd's "too many requests"), so the member keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_snapshot_streams_leave_reads_and_writes_running() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = Server::start(&[]).await;
    let mut client = server.client().await;
    // Larger than what the stream's buffers and HTTP/2 windows hold, so a writer that nobody
    // reads from blocks.
    let value = "v".repeat(64 * 1024);
    for i in 0..48 {
        client
            .put(format!("big/{i:02}"), value.clone(), None)
            .await
            .unwrap();
    }

    let mut held = Vec::new();
    let mut channels = Vec::new();
    let (mut opened, mut refused) = (0, 0);
    // Several connections: one HTTP/2 connection carries a bounded number of streams.
    for _ in 0..8 {
        let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap();
        for _ in 0..64 {
            let mut m = MaintenanceClient::new(channel.clone());
            let answer = within(
                "opening a snapshot stream",
                m.snapshot(pb::SnapshotRequest {}),
            )
            .await;
            match answer {
                // Opened: kept, never read.
                Ok(stream) => {
                    opened += 1;
                    held.push(stream.into_inner());
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                    assert_eq!(status.message(), "etcdserver: too many requests");
                    refused += 1;
                }
            }
        }
        channels.push(channel);
    }
    assert_eq!(opened + refused, 512);
    assert!(opened >= 1, "some snapshots are served");

    // Reads and writes still complete promptly.
    let started = Instant::now();
    for i in 0..20 {
        let key = format!("after/{i}");
        tokio::time::timeout(Duration::from_secs(5), client.put(key.clone(), "x", None))
            .await
            .expect("a put while snapshot streams sit unread")
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), client.get(key, None))
            .await
            .expect("a read while snapshot streams sit unread")
            .unwrap();
        assert_eq!(got.kvs().len(), 1);
    }
    println!(
        "{opened} snapshot streams served, {refused} refused; 20 puts and reads in {:?}",
        started.elapsed()
    );
    drop(held);
    drop(channels);
}

/// A txn tree two nested txns wide and `depth` deep, with a put and a delete of its own keys in
/// every leaf: within 128 operations a level, it holds 2^(depth+1) writes.
fn txn_tree(prefix: &str, depth: usize) -> pb::TxnRequest {
    use pb::request_op::Request;
    let op = |request| pb::RequestOp {
        request: Some(request),
    };
    let success = if depth == 0 {
        vec![
            op(Request::RequestPut(pb::PutRequest {
                key: format!("{prefix}p").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
            op(Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: format!("{prefix}d").into_bytes(),
                ..Default::default()
            })),
        ]
    } else {
        ["0", "1"]
            .iter()
            .map(|b| {
                op(Request::RequestTxn(txn_tree(
                    &format!("{prefix}{b}"),
                    depth - 1,
                )))
            })
            .collect()
    };
    pb::TxnRequest {
        success,
        ..Default::default()
    }
}

/// Sends the largest txn tree `depth` levels deep (two nested txns a level, a put and a delete
/// in each leaf: 2^(depth+1) writes) to a member with `args`, twice: as it is (its comparison
/// fails; a txn that may write goes through the log all the same, as in etcd), then with one put
/// at the top that an innermost delete covers. Returns how long the first took to be answered.
async fn maximal_txn(args: &[&str], depth: usize) -> Duration {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let server = Server::start(args).await;
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut kv = pb::kv_client::KvClient::new(channel).max_decoding_message_size(16 << 20);
    let mut txn = txn_tree("", depth);
    txn.compare = vec![pb::Compare {
        result: CompareResult::Greater as i32,
        target: CompareTarget::Version as i32,
        key: b"absent".to_vec(),
        target_union: Some(TargetUnion::Version(0)),
        ..Default::default()
    }];
    let size = prost::Message::encoded_len(&txn);
    let started = Instant::now();
    let answer = within("a maximal txn", kv.txn(txn.clone())).await.unwrap();
    let took = started.elapsed();
    assert!(!answer.into_inner().succeeded);
    println!(
        "a txn of {} nested writes ({size} bytes) answered in {took:?}",
        1usize << (depth + 1)
    );

    // A put at the top that an innermost delete covers.
    let innermost: String = (0..depth)
        .map(|i| if i % 3 == 0 { '1' } else { '0' })
        .collect();
    txn.success.push(pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: format!("{innermost}d").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
    });
    let status = within("a maximal txn with a duplicate", kv.txn(txn))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "etcdserver: duplicate key given in txn request"
    );
    took
}

/// The duplicate-key check compared every put with every delete of a request: a maximal nested
/// txn took seconds of a runtime worker, delaying every other request and Raft's heartbeats on
/// it. Now the check is a sort and a sweep per nesting level, on a blocking thread. At etcd's
/// default `--max-request-bytes` (1.5 MiB) the largest such txn (32,768 writes, 14 levels) is
/// answered well under a second, and a duplicate deep inside it is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maximal_nested_txn_is_answered_quickly() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let took = maximal_txn(&[], 14).await;
    assert!(took < Duration::from_millis(600), "took {took:?}");
}

/// With the request limit raised to 10 MiB, a txn four times larger (131,072 writes, 16 levels)
/// is answered and checked too. Its time is printed, not bounded: most of it is the log write
/// and the encoding and decoding of 3.8 MB of nested messages, which grow with the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_nested_txn_under_a_raised_limit_is_checked() {
    let _turn = ONE_AT_A_TIME.lock().await;
    maximal_txn(&["--max-request-bytes", "10485760"], 16).await;
}
