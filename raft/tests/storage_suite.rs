//! openraft's storage conformance suite against our log store and state machine, plus a snapshot
//! transfer between two members' state machines through files.

use std::sync::Arc;

use mainstay_raft::log_store::LogStore;
use mainstay_raft::state_machine::{open_store, ApplyObserver, StateMachine};
use mainstay_raft::{Entry, LogId, Request, StorageError, TypeConfig};
use mainstay_store::{Applied, Command, PutRequest};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;

struct NoObserver;

impl ApplyObserver for NoObserver {
    fn applied(&self, _index: u64, _commands: &[Command], _applied: &Applied) {}
    fn store_replaced(&self, _index: u64) {}
}

fn state_machine(dir: &std::path::Path) -> StateMachine {
    let store = open_store(dir, false).expect("opening the store");
    StateMachine::new(store, dir.to_path_buf(), Arc::new(NoObserver)).expect("state machine")
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = LogStore::open(&dir.path().join("raft")).expect("opening the log");
        let sm = state_machine(dir.path());
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft's storage suite");
}

fn put(term: u64, index: u64, key: &str, value: &str) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Request::one(Command::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        }))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_moves_a_store_to_another_member_through_files() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut a = state_machine(a_dir.path());
    let mut b = state_machine(b_dir.path());
    let entries: Vec<Entry> = (1..=500)
        .map(|i| {
            put(
                1,
                i,
                &format!("k{:04}", i % 97),
                &"v".repeat(i as usize % 300),
            )
        })
        .collect();
    a.apply(entries).await.unwrap();
    // b has some older state that the snapshot must replace.
    b.apply(vec![put(1, 1, "only-on-b", "x")]).await.unwrap();

    let snapshot = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id.unwrap().index, 500);
    let current = a.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);

    // Copy the snapshot file into b's receiving file in small pieces, as openraft's chunks do.
    let mut incoming = b.begin_receiving_snapshot().await.unwrap();
    let mut source = snapshot.snapshot;
    let mut buf = vec![0u8; 4096];
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let n = source.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        incoming.write_all(&buf[..n]).await.unwrap();
    }
    b.install_snapshot(&snapshot.meta, incoming).await.unwrap();

    let (applied, _) = b.applied_state().await.unwrap();
    assert_eq!(applied, snapshot.meta.last_log_id);
    assert_eq!(
        a.store().hash_kv(0).unwrap(),
        b.store().hash_kv(0).unwrap(),
        "same data after the install"
    );
    assert_eq!(b.store().current_revision(), a.store().current_revision());
    drop(b);
    // After a restart, b opens the installed store (followed through the STORE pointer).
    let mut b = state_machine(b_dir.path());
    let (applied, _) = b.applied_state().await.unwrap();
    assert_eq!(applied, snapshot.meta.last_log_id);
    assert_eq!(a.store().hash_kv(0).unwrap(), b.store().hash_kv(0).unwrap());
    let current = b.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
    // Applying continues from the snapshot.
    b.apply(vec![put(2, 501, "after", "snapshot")])
        .await
        .unwrap();
    assert_eq!(
        b.store().current_revision(),
        a.store().current_revision() + 1
    );
}
