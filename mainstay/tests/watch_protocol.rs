//! The Watch stream protocol at the wire level (raw gRPC, as etcd's Go client speaks it):
//! fragmentation, `WatchProgressRequest`, and a watcher that stops reading while writes go on.

mod common;

use common::{within, Server};
use mainstay_proto::etcdserverpb as pb;
use mainstay_proto::etcdserverpb::watch_request::RequestUnion;
use pb::kv_client::KvClient;
use pb::watch_client::WatchClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

async fn connect(
    server: &Server,
) -> (
    KvClient<tonic::transport::Channel>,
    WatchClient<tonic::transport::Channel>,
) {
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .expect("connecting");
    (KvClient::new(channel.clone()), WatchClient::new(channel))
}

async fn open_watch(
    w: &mut WatchClient<tonic::transport::Channel>,
) -> (mpsc::Sender<pb::WatchRequest>, Streaming<pb::WatchResponse>) {
    let (tx, rx) = mpsc::channel(16);
    let stream = w.watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    (tx, stream)
}

fn create(key: &[u8], range_end: &[u8], start: i64, fragment: bool) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            start_revision: start,
            fragment,
            ..Default::default()
        })),
    }
}

async fn next(s: &mut Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    within("a watch response", s.message())
        .await
        .unwrap()
        .expect("stream open")
}

async fn put(kv: &mut KvClient<tonic::transport::Channel>, key: &str, value: Vec<u8>) -> i64 {
    let r = kv
        .put(pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.header.unwrap().revision
}

#[tokio::test]
async fn large_histories_are_fragmented_only_for_watchers_that_ask() {
    let server = Server::start(&["--max-request-bytes", "10240"]).await;
    let (mut kv, mut w) = connect(&server).await;
    // 20 keys of 1 KiB written in one txn: one revision whose events exceed the 10 KiB limit.
    let ops = (0..20)
        .map(|i| pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: format!("f/{i:02}").into_bytes(),
                value: vec![b'x'; 1024],
                ..Default::default()
            })),
        })
        .collect();
    let txn = kv
        .txn(pb::TxnRequest {
            success: ops,
            ..Default::default()
        })
        .await;
    // The txn itself is over 10 KiB: etcd refuses it, so write in two halves of one txn each.
    assert_eq!(
        txn.unwrap_err().message(),
        "etcdserver: request is too large"
    );
    let mut first = 0;
    for half in 0..2 {
        let ops = (0..8)
            .map(|i| pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: format!("f/{half}{i}").into_bytes(),
                    value: vec![b'x'; 1024],
                    ..Default::default()
                })),
            })
            .collect();
        let r = kv
            .txn(pb::TxnRequest {
                success: ops,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if half == 0 {
            first = r.header.unwrap().revision;
        }
    }
    let (tx, mut s) = open_watch(&mut w).await;
    tx.send(create(b"f/", b"f0", first, true)).await.unwrap();
    assert!(next(&mut s).await.created);
    let mut events = 0;
    let mut parts = 0;
    loop {
        let r = next(&mut s).await;
        parts += 1;
        events += r.events.len();
        assert!(!r.events.is_empty());
        if !r.fragment {
            break;
        }
    }
    assert_eq!(events, 16, "every event arrives across the fragments");
    assert!(
        parts > 1,
        "a 16 KiB history under a 10 KiB limit comes in fragments"
    );

    // Without `fragment`, the same history comes whole.
    let (tx, mut s) = open_watch(&mut w).await;
    tx.send(create(b"f/", b"f0", first, false)).await.unwrap();
    assert!(next(&mut s).await.created);
    let r = next(&mut s).await;
    assert_eq!(r.events.len(), 16);
    assert!(!r.fragment);
}

#[tokio::test]
async fn progress_request_is_answered_with_watch_id_minus_one_at_the_current_revision() {
    let server = Server::start(&[]).await;
    let (mut kv, mut w) = connect(&server).await;
    let (tx, mut s) = open_watch(&mut w).await;
    tx.send(create(b"p/", b"p0", 0, false)).await.unwrap();
    let created = next(&mut s).await;
    assert!(created.created);
    let rev = put(&mut kv, "p/a", b"1".to_vec()).await;
    put(&mut kv, "other", b"1".to_vec()).await;
    let ev = next(&mut s).await;
    assert_eq!(ev.events.len(), 1);
    tx.send(pb::WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(
            pb::WatchProgressRequest::default(),
        )),
    })
    .await
    .unwrap();
    let progress = next(&mut s).await;
    assert_eq!(progress.watch_id, -1);
    assert!(progress.events.is_empty() && !progress.created && !progress.canceled);
    assert_eq!(progress.header.unwrap().revision, rev + 1);
}

#[tokio::test]
async fn a_watcher_that_stops_reading_neither_stalls_writers_nor_loses_events() {
    let server = Server::start(&[]).await;
    let (mut kv, mut w) = connect(&server).await;
    let (tx, mut s) = open_watch(&mut w).await;
    tx.send(create(b"s/", b"s0", 0, false)).await.unwrap();
    let start = next(&mut s).await.header.unwrap().revision;
    // The watcher reads nothing while 3000 writes of 1 KiB land: far more than the stream's
    // buffers hold. The writes must still complete promptly.
    let writes = 3000;
    within("writes while a watcher is stalled", async {
        let mut handles = Vec::new();
        for t in 0..4 {
            let mut kv = kv.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..writes / 4 {
                    put(&mut kv, &format!("s/{t}/{i}"), vec![b'v'; 1024]).await;
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    })
    .await;
    let end = put(&mut kv, "s/last", b"end".to_vec()).await;
    // Now it reads: every revision from start+1 to end, in order, exactly once.
    let mut next_rev = start + 1;
    while next_rev <= end {
        let r = next(&mut s).await;
        for e in r.events {
            let kv = e.kv.unwrap();
            assert_eq!(kv.mod_revision, next_rev, "no gap, no duplicate");
            next_rev += 1;
        }
    }
    assert_eq!(next_rev, end + 1);
}
