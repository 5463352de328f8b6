//! The `mainstay store` binary driven by the `etcd-client` crate, as an etcd v3 client would drive
//! etcd: KV, Watch, Lease, Maintenance, Cluster, and HTTP `/health`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_status, eventually, http_get, within, Server};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, KeyValue, LeaseGrantOptions,
    LeaseTimeToLiveOptions, PutOptions, ResponseHeader, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse, WatchOptions, WatchResponse, WatchStream,
};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tonic::Code;

fn rev(h: Option<&ResponseHeader>) -> i64 {
    h.expect("response header").revision()
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key_str().unwrap()).collect()
}

fn values(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.value_str().unwrap()).collect()
}

async fn get(c: &mut Client, key: &str, opts: GetOptions) -> etcd_client::GetResponse {
    within("get", c.get(key, Some(opts))).await.unwrap()
}

async fn current_revision(c: &mut Client) -> i64 {
    rev(c.get("\0", None).await.unwrap().header())
}

#[tokio::test]
async fn kv_put_get_range_sort_limit_and_history() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;

    // A new store is at revision 1.
    let r = get(&mut c, "kv/", GetOptions::new().with_prefix()).await;
    assert_eq!(rev(r.header()), 1);
    assert_eq!((r.kvs().len(), r.count(), r.more()), (0, 0, false));

    // Each put is one revision.
    let mut revs = Vec::new();
    for (i, k) in ["kv/c", "kv/a", "kv/e", "kv/b", "kv/d"].iter().enumerate() {
        let p = c.put(*k, format!("v{i}"), None).await.unwrap();
        assert!(p.prev_key().is_none());
        revs.push(rev(p.header()));
    }
    assert_eq!(revs, [2, 3, 4, 5, 6]);
    // Just outside the "kv/" prefix on either side.
    c.put("kv0", "after", None).await.unwrap();
    c.put("kv.", "before", None).await.unwrap();

    let r = get(&mut c, "kv/", GetOptions::new().with_prefix()).await;
    assert_eq!(rev(r.header()), 8);
    assert_eq!(keys(r.kvs()), ["kv/a", "kv/b", "kv/c", "kv/d", "kv/e"]);
    assert_eq!(values(r.kvs()), ["v1", "v3", "v0", "v4", "v2"]);
    assert_eq!((r.count(), r.more()), (5, false));
    for kv in r.kvs() {
        assert_eq!(kv.create_revision(), kv.mod_revision());
        assert_eq!((kv.version(), kv.lease()), (1, 0));
    }
    assert_eq!(r.kvs()[2].create_revision(), 2);

    // Limit: the first keys, the full count, and `more`.
    let r = get(&mut c, "kv/", GetOptions::new().with_prefix().with_limit(2)).await;
    assert_eq!(keys(r.kvs()), ["kv/a", "kv/b"]);
    assert_eq!((r.count(), r.more()), (5, true));

    // Sorting by each target.
    let sorted = |t, o| GetOptions::new().with_prefix().with_sort(t, o);
    let r = get(&mut c, "kv/", sorted(SortTarget::Key, SortOrder::Descend)).await;
    assert_eq!(keys(r.kvs()), ["kv/e", "kv/d", "kv/c", "kv/b", "kv/a"]);
    let r = get(&mut c, "kv/", sorted(SortTarget::Mod, SortOrder::Ascend)).await;
    assert_eq!(keys(r.kvs()), ["kv/c", "kv/a", "kv/e", "kv/b", "kv/d"]);
    let r = get(&mut c, "kv/", sorted(SortTarget::Value, SortOrder::Descend)).await;
    assert_eq!(values(r.kvs()), ["v4", "v3", "v2", "v1", "v0"]);
    let r = get(
        &mut c,
        "kv/",
        sorted(SortTarget::Create, SortOrder::Descend).with_limit(2),
    )
    .await;
    assert_eq!(keys(r.kvs()), ["kv/d", "kv/b"]);
    assert_eq!((r.count(), r.more()), (5, true));

    // Explicit ranges, from-key, keys-only, count-only.
    let r = get(&mut c, "kv/b", GetOptions::new().with_range("kv/d")).await;
    assert_eq!(keys(r.kvs()), ["kv/b", "kv/c"]);
    let r = get(&mut c, "kv/d", GetOptions::new().with_from_key()).await;
    assert_eq!(keys(r.kvs()), ["kv/d", "kv/e", "kv0"]);
    let r = get(
        &mut c,
        "kv/",
        GetOptions::new().with_prefix().with_keys_only(),
    )
    .await;
    assert_eq!(r.kvs().len(), 5);
    assert!(r.kvs().iter().all(|kv| kv.value().is_empty()));
    let r = get(
        &mut c,
        "kv/",
        GetOptions::new().with_prefix().with_count_only(),
    )
    .await;
    assert_eq!((r.kvs().len(), r.count()), (0, 5));

    // Overwriting moves version and mod_revision; create_revision stays; prev_kv is the old value.
    let p = c
        .put("kv/a", "v1-new", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(rev(p.header()), 9);
    let prev = p.prev_key().expect("prev_kv");
    assert_eq!((prev.value_str().unwrap(), prev.mod_revision()), ("v1", 3));
    let r = get(&mut c, "kv/a", GetOptions::new()).await;
    let kv = &r.kvs()[0];
    assert_eq!(kv.value_str().unwrap(), "v1-new");
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (3, 9, 2)
    );

    // Reads at a past revision see the store as it was; the header has the current revision.
    let r = get(&mut c, "kv/a", GetOptions::new().with_revision(8)).await;
    assert_eq!(values(r.kvs()), ["v1"]);
    assert_eq!(rev(r.header()), 9);
    let r = get(
        &mut c,
        "kv/",
        GetOptions::new().with_prefix().with_revision(3),
    )
    .await;
    assert_eq!(keys(r.kvs()), ["kv/a", "kv/c"]);

    // Delete a range, with the deleted pairs returned.
    let d = c
        .delete(
            "kv/b",
            Some(DeleteOptions::new().with_range("kv/d").with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(rev(d.header()), 10);
    assert_eq!(d.deleted(), 2);
    assert_eq!(keys(d.prev_kvs()), ["kv/b", "kv/c"]);
    assert_eq!(values(d.prev_kvs()), ["v3", "v0"]);
    let r = get(&mut c, "kv/", GetOptions::new().with_prefix()).await;
    assert_eq!(keys(r.kvs()), ["kv/a", "kv/d", "kv/e"]);
    // Deleting nothing does not make a revision.
    let d = c.delete("kv/zzz", None).await.unwrap();
    assert_eq!((d.deleted(), rev(d.header())), (0, 10));
    // The deleted keys are still there in history.
    let r = get(
        &mut c,
        "kv/",
        GetOptions::new().with_prefix().with_revision(9),
    )
    .await;
    assert_eq!(keys(r.kvs()), ["kv/a", "kv/b", "kv/c", "kv/d", "kv/e"]);
    // A recreated key starts a new generation: version 1, new create_revision.
    let p = c.put("kv/b", "again", None).await.unwrap();
    let r = get(&mut c, "kv/b", GetOptions::new()).await;
    let kv = &r.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (rev(p.header()), rev(p.header()), 1)
    );
}

#[tokio::test]
async fn txn_compare_and_swap_takes_the_right_branch() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;

    let r1 = rev(c.put("cas", "1", None).await.unwrap().header());
    let cas = || {
        Txn::new()
            .when([
                Compare::value("cas", CompareOp::Equal, "1"),
                Compare::mod_revision("cas", CompareOp::Equal, r1),
            ])
            .and_then([TxnOp::put("cas", "2", None), TxnOp::get("cas", None)])
            .or_else([TxnOp::get("cas", None)])
    };

    // Success: both ops of the success branch ran, at one new revision.
    let t = c.txn(cas()).await.unwrap();
    assert!(t.succeeded());
    assert_eq!(rev(t.header()), r1 + 1);
    let ops = t.op_responses();
    assert_eq!(ops.len(), 2);
    match &ops[0] {
        TxnOpResponse::Put(p) => assert_eq!(rev(p.header()), r1 + 1),
        other => panic!("expected a put response, got {other:?}"),
    }
    match &ops[1] {
        TxnOpResponse::Get(g) => assert_eq!(values(g.kvs()), ["2"]),
        other => panic!("expected a get response, got {other:?}"),
    }

    // The same compare now fails: the failure branch runs and nothing is written.
    let t = c.txn(cas()).await.unwrap();
    assert!(!t.succeeded());
    assert_eq!(rev(t.header()), r1 + 1);
    let ops = t.op_responses();
    assert_eq!(ops.len(), 1);
    match &ops[0] {
        TxnOpResponse::Get(g) => {
            assert_eq!(values(g.kvs()), ["2"]);
            assert_eq!(g.kvs()[0].mod_revision(), r1 + 1);
        }
        other => panic!("expected a get response, got {other:?}"),
    }

    // Create-if-absent (version == 0), then the same again fails.
    let create = || {
        Txn::new()
            .when([Compare::version("lock", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("lock", "me", None)])
    };
    assert!(c.txn(create()).await.unwrap().succeeded());
    assert!(!c.txn(create()).await.unwrap().succeeded());

    // Several writes in one txn share one revision.
    let t = c
        .txn(
            Txn::new()
                .when([Compare::create_revision("cas", CompareOp::Less, r1 + 1)])
                .and_then([
                    TxnOp::put("multi/1", "a", None),
                    TxnOp::put("multi/2", "b", None),
                    TxnOp::delete("lock", None),
                ]),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    let txn_rev = rev(t.header());
    let r = get(&mut c, "multi/", GetOptions::new().with_prefix()).await;
    assert!(r.kvs().iter().all(|kv| kv.mod_revision() == txn_rev));
    assert_eq!(r.kvs().len(), 2);
    assert!(get(&mut c, "lock", GetOptions::new())
        .await
        .kvs()
        .is_empty());
    assert_eq!(current_revision(&mut c).await, txn_rev);
}

#[tokio::test]
async fn compaction_removes_history_below_it() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;

    for i in 1..=5 {
        c.put("c", format!("v{i}"), None).await.unwrap(); // revisions 2..=6
    }
    c.compact(4, None).await.unwrap();

    assert_status(
        c.get("c", Some(GetOptions::new().with_revision(3))).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    // The compaction revision itself is still readable, and so is everything after it.
    let r = get(&mut c, "c", GetOptions::new().with_revision(4)).await;
    assert_eq!(values(r.kvs()), ["v3"]);
    let r = get(&mut c, "c", GetOptions::new()).await;
    assert_eq!(values(r.kvs()), ["v5"]);
    assert_eq!(r.kvs()[0].version(), 5);

    let mut m = c.maintenance_client();
    let h = m.hash_kv(0).await.unwrap();
    assert_eq!(h.compact_version(), 4);
    assert_eq!(h.hash_revision(), 6);

    // A watch from before the compaction is created, then canceled with the compact revision.
    let mut w = within(
        "watch",
        c.watch("c", Some(WatchOptions::new().with_start_revision(2))),
    )
    .await
    .unwrap();
    let created = next_message(&mut w).await;
    assert!(created.created());
    let canceled = next_message(&mut w).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), created.watch_id());
    assert_eq!(canceled.compact_revision(), 4);
    assert_eq!(
        canceled.cancel_reason(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}

async fn next_message(w: &mut WatchStream) -> WatchResponse {
    within("a watch response", w.message())
        .await
        .expect("watch stream error")
        .expect("watch stream ended")
}

/// Reads watch responses until `n` events have arrived for `watch_id`.
async fn next_events(w: &mut WatchStream, watch_id: i64, n: usize) -> Vec<etcd_client::Event> {
    let mut events = Vec::new();
    while events.len() < n {
        let m = next_message(w).await;
        assert_eq!(m.watch_id(), watch_id, "unexpected response {m:?}");
        assert!(!m.canceled(), "watch canceled: {m:?}");
        events.extend(m.events().iter().cloned());
    }
    assert_eq!(events.len(), n, "more events than expected: {events:?}");
    events
}

/// (type, key, value, mod_revision, prev value) of an event.
fn describe(e: &etcd_client::Event) -> (EventType, String, String, i64, Option<String>) {
    let kv = e.kv().expect("event kv");
    (
        e.event_type(),
        kv.key_str().unwrap().to_string(),
        kv.value_str().unwrap().to_string(),
        kv.mod_revision(),
        e.prev_kv().map(|p| p.value_str().unwrap().to_string()),
    )
}

#[tokio::test]
async fn watch_replays_history_then_follows_live_and_cancels() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;

    c.put("w/a", "a1", None).await.unwrap(); // 2
    c.put("w/b", "b1", None).await.unwrap(); // 3
    c.put("w/a", "a2", None).await.unwrap(); // 4
    c.delete("w/b", None).await.unwrap(); // 5
    c.put("other", "x", None).await.unwrap(); // 6

    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(2)
        .with_prev_key();
    let mut w = within("watch", c.watch("w/", Some(opts))).await.unwrap();
    let created = next_message(&mut w).await;
    assert!(created.created() && !created.canceled());
    assert_eq!(rev(created.header()), 6);
    let id = created.watch_id();

    // History from revision 2, with the previous values.
    let events = next_events(&mut w, id, 4).await;
    let got: Vec<_> = events.iter().map(describe).collect();
    use EventType::{Delete, Put};
    assert_eq!(
        got,
        [
            (Put, "w/a".into(), "a1".into(), 2, None),
            (Put, "w/b".into(), "b1".into(), 3, None),
            (Put, "w/a".into(), "a2".into(), 4, Some("a1".into())),
            (Delete, "w/b".into(), "".into(), 5, Some("b1".into())),
        ]
    );
    assert_eq!(events[2].kv().unwrap().version(), 2);

    // Live events after the replay.
    c.put("w/c", "c1", None).await.unwrap(); // 7
    c.put("w/a", "a3", None).await.unwrap(); // 8
    let events = next_events(&mut w, id, 2).await;
    let got: Vec<_> = events.iter().map(describe).collect();
    assert_eq!(
        got,
        [
            (Put, "w/c".into(), "c1".into(), 7, None),
            (Put, "w/a".into(), "a3".into(), 8, Some("a2".into())),
        ]
    );

    // Cancel: a canceled response, and no more events for that watcher.
    w.cancel(id).await.unwrap();
    let canceled = next_message(&mut w).await;
    assert!(
        canceled.canceled(),
        "expected a cancel response: {canceled:?}"
    );
    assert_eq!(canceled.watch_id(), id);
    w.watch("z", None).await.unwrap();
    let created = next_message(&mut w).await;
    assert!(created.created());
    let z = created.watch_id();
    assert_ne!(z, id);
    c.put("w/a", "a4", None).await.unwrap(); // would reach the canceled watcher first
    c.put("z", "z1", None).await.unwrap();
    let events = next_events(&mut w, z, 1).await;
    assert_eq!(
        describe(&events[0]),
        (Put, "z".into(), "z1".into(), 10, None)
    );
}

#[tokio::test]
async fn lease_grant_keepalive_ttl_and_revoke() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;

    let g = c.lease_grant(60, None).await.unwrap();
    let id = g.id();
    assert!(id > 0);
    assert_eq!(g.ttl(), 60);
    c.put("l/1", "a", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.put("l/2", "b", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.put("l/free", "c", None).await.unwrap();
    let r = get(&mut c, "l/1", GetOptions::new()).await;
    assert_eq!(r.kvs()[0].lease(), id);

    let t = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!((t.id(), t.granted_ttl()), (id, 60));
    assert!((55..=60).contains(&t.ttl()), "ttl {}", t.ttl());
    let attached: BTreeSet<&[u8]> = t.keys().iter().map(|k| k.as_slice()).collect();
    assert_eq!(attached, BTreeSet::from([&b"l/1"[..], &b"l/2"[..]]));
    let t = c.lease_time_to_live(id, None).await.unwrap();
    assert!(t.keys().is_empty(), "keys only when asked for");

    let leases = c.leases().await.unwrap();
    assert!(leases.leases().iter().any(|l| l.id() == id));

    // Keep-alive answers with the granted TTL, every time it is asked.
    let (mut keeper, mut stream) = c.lease_keep_alive(id).await.unwrap();
    assert_eq!(keeper.id(), id);
    for _ in 0..2 {
        keeper.keep_alive().await.unwrap();
        let k = within("keep-alive response", stream.message())
            .await
            .unwrap()
            .expect("keep-alive stream ended");
        assert_eq!((k.id(), k.ttl()), (id, 60));
    }

    // Revoking deletes the attached keys (and only those).
    let before = current_revision(&mut c).await;
    let rv = c.lease_revoke(id).await.unwrap();
    assert_eq!(rev(rv.header()), before + 1, "one revision for the deletes");
    let r = get(&mut c, "l/", GetOptions::new().with_prefix()).await;
    assert_eq!(keys(r.kvs()), ["l/free"]);
    let t = c.lease_time_to_live(id, None).await.unwrap();
    assert_eq!(t.ttl(), -1);
    assert!(!c
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .any(|l| l.id() == id));
    assert_status(
        c.lease_revoke(id).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    // A keep-alive for a revoked lease gets TTL 0, which the client reports as an error.
    assert!(c.lease_keep_alive(id).await.is_err());

    // A client-chosen ID is honoured.
    let g = c
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(12345)))
        .await
        .unwrap();
    assert_eq!((g.id(), g.ttl()), (12345, 30));
    // Revoking a lease without keys deletes nothing, so makes no revision.
    let before = current_revision(&mut c).await;
    let rv = c.lease_revoke(12345).await.unwrap();
    assert_eq!(rev(rv.header()), before);
    // TTLs below etcd's minimum (2 s with default election settings) are raised to it.
    let g = c.lease_grant(1, None).await.unwrap();
    assert_eq!(g.ttl(), 2);
}

#[tokio::test]
async fn expired_lease_deletes_its_keys() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;

    let granted_at = Instant::now();
    let g = c.lease_grant(2, None).await.unwrap();
    assert_eq!(g.ttl(), 2);
    let put = c
        .put("exp/k", "v", Some(PutOptions::new().with_lease(g.id())))
        .await
        .unwrap();
    let opts = WatchOptions::new().with_start_revision(rev(put.header()) + 1);
    let mut w = within("watch", c.watch("exp/k", Some(opts))).await.unwrap();
    let created = next_message(&mut w).await;
    assert!(created.created());

    // The expiry arrives as a delete event for the attached key.
    let events = next_events(&mut w, created.watch_id(), 1).await;
    let expired_after = granted_at.elapsed();
    assert_eq!(events[0].event_type(), EventType::Delete);
    assert_eq!(events[0].kv().unwrap().key(), b"exp/k");
    assert!(
        expired_after >= Duration::from_millis(1900),
        "a 2 s lease expired after {expired_after:?}"
    );
    assert!(get(&mut c, "exp/k", GetOptions::new())
        .await
        .kvs()
        .is_empty());
    assert_eq!(c.lease_time_to_live(g.id(), None).await.unwrap().ttl(), -1);
}

#[tokio::test]
async fn keepalive_holds_a_lease_past_its_ttl() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;

    let g = c.lease_grant(3, None).await.unwrap();
    c.put("ka/k", "v", Some(PutOptions::new().with_lease(g.id())))
        .await
        .unwrap();
    let (mut keeper, mut stream) = c.lease_keep_alive(g.id()).await.unwrap();
    // Renew every half second for half as long again as the TTL: the key must survive throughout.
    let until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < until {
        keeper.keep_alive().await.unwrap();
        let k = within("keep-alive response", stream.message())
            .await
            .unwrap()
            .expect("keep-alive stream ended");
        assert_eq!(k.ttl(), 3);
        assert_eq!(get(&mut c, "ka/k", GetOptions::new()).await.kvs().len(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await; // keep-alive cadence
    }
    // Stop renewing: it expires.
    drop((keeper, stream));
    eventually(
        "the unrenewed lease expires",
        Duration::from_secs(10),
        || {
            let mut c = c.clone();
            async move {
                let r = c.get("ka/k", None).await.unwrap();
                r.kvs().is_empty().then_some(())
            }
        },
    )
    .await;
    assert_eq!(c.lease_time_to_live(g.id(), None).await.unwrap().ttl(), -1);
}

#[tokio::test]
async fn maintenance_status_hash_snapshot_and_members() {
    let server = Server::start(&[]).await;
    let mut c = server.client().await;
    for i in 0..50 {
        c.put(format!("m/{i:02}"), vec![b'x'; 1000], None)
            .await
            .unwrap();
    }
    let current = current_revision(&mut c).await;
    assert_eq!(current, 51);

    let s = c.status().await.unwrap();
    let member_id = s.header().unwrap().member_id();
    assert_eq!(rev(s.header()), current);
    assert_eq!(s.leader(), member_id);
    assert!(!s.version().is_empty());
    assert!(s.db_size() > 0, "db_size {}", s.db_size());
    assert!(s.raft_index() > 0);
    assert!(!s.is_learner());
    assert!(s.errors().is_empty());

    // HashKV: stable while nothing changes, different after a write, and the hash at an old
    // revision is unchanged by later writes.
    let h1 = c.hash_kv(0).await.unwrap();
    assert_eq!(h1.hash_revision(), current);
    assert_eq!(c.hash_kv(0).await.unwrap().hash(), h1.hash());
    c.put("m/new", "y", None).await.unwrap();
    let h2 = c.hash_kv(0).await.unwrap();
    assert_eq!(h2.hash_revision(), current + 1);
    assert_ne!(h2.hash(), h1.hash());
    let h_old = c.hash_kv(current).await.unwrap();
    assert_eq!((h_old.hash(), h_old.hash_revision()), (h1.hash(), current));

    // Snapshot: the stream ends, and the last 32 bytes are the SHA-256 of everything before.
    let mut snap = within("snapshot", c.snapshot()).await.unwrap();
    let mut data = Vec::new();
    let mut last_remaining = None;
    while let Some(m) = within("snapshot chunk", snap.message()).await.unwrap() {
        data.extend_from_slice(m.blob());
        last_remaining = Some(m.remaining_bytes());
    }
    assert_eq!(
        last_remaining,
        Some(0),
        "the last message says nothing remains"
    );
    assert!(data.len() > 50_000 + 32, "snapshot of {} bytes", data.len());
    let (body, sum) = data.split_at(data.len() - 32);
    assert_eq!(Sha256::digest(body).as_slice(), sum);

    // Cluster: one member, as configured.
    let ml = c.member_list().await.unwrap();
    assert_eq!(ml.members().len(), 1);
    let m = &ml.members()[0];
    assert_eq!(m.id(), member_id);
    assert_eq!(m.name(), common::MEMBER_NAME);
    assert_eq!(m.peer_urls(), [server.peer_url()]);
    assert_eq!(m.client_urls(), [server.endpoint()]);
    assert!(!m.is_learner());
    assert_eq!(ml.header().unwrap().member_id(), member_id);
}

#[tokio::test]
async fn http_health_and_version() {
    let server = Server::start(&[]).await;
    let (code, body) = http_get(server.port(), "/health").await.unwrap();
    assert_eq!(code, 200, "body {body}");
    assert!(body.starts_with(r#"{"health":"true""#), "body {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["health"], "true");

    let (code, body) = http_get(server.port(), "/version").await.unwrap();
    assert_eq!(code, 200, "body {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(json["etcdserver"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
}
