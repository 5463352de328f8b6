//! No peer message can brick a cluster. A single 27-byte `RaftPeer/AppendEntries` carrying a vote
//! of term 2^64−1, sent to each member's peer port, used to put every member at that term; at the
//! next election the term wrapped, the Raft core panicked, and every member panicked again on each
//! restart. Now peer calls name their cluster and sender, and terms beyond what counting elections
//! can reach are refused: the cluster keeps writing, through an election and a full restart.
//!
//! Reproduce: `cargo test --release --workspace --test peer_messages -- --nocapture`
//! (`MAINSTAY_BIN=<an older mainstay>` runs the same messages against another build).

use std::time::Duration;

use mainstay_proto::mainstaypb::member_peer_client::MemberPeerClient;
use mainstay_proto::mainstaypb::raft_peer_client::RaftPeerClient;
use mainstay_proto::mainstaypb::RaftPayload;
use mainstay_raft::codec::encode;
use mainstay_raft::Member;
use mainstay_server::peer::wire::ClusterOp;
use mainstay_store::{Command, PutRequest};
use mainstay_testkit::cluster::{Cluster, ClusterOptions, Target};

/// bincode (fixed-width, little-endian) of openraft's `AppendEntriesRequest`: a vote
/// `{ leader_id: { term, node_id }, committed }`, no previous log id, no entries, no commit.
fn forged_append(term: u64, node_id: u64) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&term.to_le_bytes());
    data.extend_from_slice(&node_id.to_le_bytes());
    data.push(1); // committed
    data.push(0); // prev_log_id: None
    data.extend_from_slice(&0u64.to_le_bytes()); // entries: []
    data.push(0); // leader_commit: None
    assert_eq!(data.len(), 27);
    data
}

/// bincode of openraft's `VoteRequest`: a vote and no last log id.
fn forged_vote(term: u64, node_id: u64) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&term.to_le_bytes());
    data.extend_from_slice(&node_id.to_le_bytes());
    data.push(0); // committed
    data.push(0); // last_log_id: None
    data
}

fn request(data: Vec<u8>, ids: Option<(u64, u64)>) -> tonic::Request<RaftPayload> {
    let mut request = tonic::Request::new(RaftPayload { data });
    if let Some((cluster_id, member_id)) = ids {
        let md = request.metadata_mut();
        md.insert(
            "mainstay-cluster-id",
            format!("{cluster_id:x}").parse().unwrap(),
        );
        md.insert(
            "mainstay-member-id",
            format!("{member_id:x}").parse().unwrap(),
        );
    }
    request.set_timeout(Duration::from_secs(5));
    request
}

async fn put_within(cluster: &Cluster, i: usize, key: &str) {
    let mut client = cluster.client(i).await;
    tokio::time::timeout(Duration::from_secs(10), client.put(key, "v", None))
        .await
        .unwrap_or_else(|_| panic!("put {key} through member {i} timed out"))
        .unwrap_or_else(|e| panic!("put {key} through member {i}: {e}"));
}

/// A 3-member Mainstay cluster that has written "before": the cluster, its leader, the cluster
/// ID and the members' IDs.
async fn writing_cluster() -> (Cluster, usize, u64, Vec<u64>) {
    let options = ClusterOptions {
        target: Some(Target::Mainstay),
        ..Default::default()
    };
    let mut cluster = Cluster::start_with(3, options).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    put_within(&cluster, leader, "before").await;
    let cluster_id = cluster
        .status(0)
        .await
        .unwrap()
        .header()
        .unwrap()
        .cluster_id();
    let ids: Vec<u64> = (0..3).map(|i| cluster.member_id(i).unwrap()).collect();
    (cluster, leader, cluster_id, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_maximal_term_is_refused_and_the_cluster_keeps_writing() {
    let (mut cluster, leader, cluster_id, ids) = writing_cluster().await;

    for i in 0..3 {
        let mut peer = RaftPeerClient::connect(cluster.peer_url(i)).await.unwrap();
        // Claiming to be another member of this cluster, with everything right but the term.
        let other = ids[(i + 1) % 3];
        for forged in [
            peer.append_entries(request(
                forged_append(u64::MAX, other),
                Some((cluster_id, other)),
            ))
            .await,
            peer.vote(request(
                forged_vote(u64::MAX, other),
                Some((cluster_id, other)),
            ))
            .await,
        ] {
            let status = forged.expect_err("a maximal term must be refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains("term"), "{status:?}");
        }
        // No identity, another cluster's, a stranger, or a vote in another member's name.
        let cases = [
            (None, other, tonic::Code::FailedPrecondition),
            (
                Some((cluster_id ^ 1, other)),
                other,
                tonic::Code::FailedPrecondition,
            ),
            (
                Some((cluster_id, 0x5eed)),
                0x5eed,
                tonic::Code::PermissionDenied,
            ),
            (
                Some((cluster_id, other)),
                ids[i],
                tonic::Code::InvalidArgument,
            ),
        ];
        for (who, claimed, code) in cases {
            let status = peer
                .append_entries(request(forged_append(u64::MAX, claimed), who))
                .await
                .expect_err("refused");
            assert_eq!(
                status.code(),
                code,
                "member {i}, sender {who:?}: {status:?}"
            );
        }
    }

    // The cluster writes on, elects a new leader when the old one dies, and starts again.
    put_within(&cluster, leader, "after-forgery").await;
    cluster.kill(leader);
    let next = cluster.wait_for_leader(Duration::from_secs(15)).await;
    put_within(&cluster, next, "after-election").await;
    cluster.start_member(leader).await;
    // Each member starts again from what it stored (a forged term, once taken, was stored with
    // its vote and brought the panic back on every start).
    for i in 0..3 {
        cluster.restart(i).await;
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    put_within(&cluster, leader, "after-restart").await;
    let mut client = cluster.client(leader).await;
    for key in ["before", "after-forgery", "after-election", "after-restart"] {
        let got = client.get(key, None).await.unwrap();
        assert_eq!(got.kvs().len(), 1, "{key} is there");
    }
    for i in 0..3 {
        assert!(
            !cluster.log(i).contains("panicked"),
            "member {i} panicked:\n{}",
            cluster.log_tail(i, 40)
        );
    }
}

/// The `MemberPeer` service (forwarded proposals, reads, lease calls, membership changes) checks
/// its callers as the Raft service does, and a member may publish only itself, never another
/// member's peer URLs: a rewrite would cut that member off from the cluster for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_peer_calls_name_their_sender_and_publish_only_themselves() {
    let (mut cluster, leader, cluster_id, ids) = writing_cluster().await;
    let mut peer = MemberPeerClient::connect(cluster.peer_url(leader))
        .await
        .unwrap();

    // A forwarded put from nobody, from another cluster, and from a stranger.
    let put = encode(&Command::Put(PutRequest {
        key: b"forged".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    }))
    .unwrap();
    for (who, code) in [
        (None, tonic::Code::FailedPrecondition),
        (
            Some((cluster_id ^ 1, ids[0])),
            tonic::Code::FailedPrecondition,
        ),
        (Some((cluster_id, 0x5eed)), tonic::Code::PermissionDenied),
    ] {
        let status = peer
            .propose(request(put.clone(), who))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "sender {who:?}: {status:?}");
    }
    let mut client = cluster.client(leader).await;
    assert!(client.get("forged", None).await.unwrap().kvs().is_empty());

    // One member publishing another, with its own peer URL in it.
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let hijack = |id: u64| {
        encode(&ClusterOp::Publish {
            id,
            member: Member {
                name: "hijacked".into(),
                peer_urls: vec![cluster.peer_url(a)],
                client_urls: vec!["http://127.0.0.1:1".into()],
            },
        })
        .unwrap()
    };
    let status = peer
        .cluster(request(hijack(ids[b]), Some((cluster_id, ids[a]))))
        .await
        .expect_err("a member may not publish another");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // In its own name (the IDs are public), a publish may rename it but keeps its peer URLs.
    peer.cluster(request(hijack(ids[b]), Some((cluster_id, ids[b]))))
        .await
        .expect("a member publishes itself");
    let listed = cluster.member_list().await;
    let b_listed = listed.iter().find(|m| m.id == ids[b]).expect("b is listed");
    assert_eq!(b_listed.peer_urls, vec![cluster.peer_url(b)], "{listed:?}");

    // The cluster writes on through member b (its publish loop names it again).
    put_within(&cluster, b, "after").await;
    cluster.kill(leader);
    let next = cluster.wait_for_leader(Duration::from_secs(15)).await;
    put_within(&cluster, next, "after-election").await;
}
