//! Watching through failures, and reading a prefix's change history back from the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{client_options, connect_with};
use crate::watchcheck::Change;
use crate::workload::Endpoints;

/// A watcher on a prefix that talks to one member at a time and, when its stream breaks,
/// reconnects to the next member and resumes from the revision after the last event it saw.
pub struct ResumingWatcher {
    seen: Arc<Mutex<Vec<Change>>>,
    last_revision: Arc<AtomicI64>,
    connected_to: Arc<Mutex<String>>,
    reconnects: Arc<AtomicUsize>,
    until: Arc<AtomicI64>,
    task: JoinHandle<()>,
}

impl ResumingWatcher {
    /// Starts watching `prefix` from `start_revision` through the `first`-th of `endpoints`.
    /// The task gives up (failing the test when awaited) after `limit`.
    pub fn spawn(
        endpoints: Endpoints,
        first: usize,
        prefix: &str,
        start_revision: i64,
        limit: Duration,
    ) -> ResumingWatcher {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let last_revision = Arc::new(AtomicI64::new(start_revision - 1));
        let connected_to = Arc::new(Mutex::new(String::new()));
        let reconnects = Arc::new(AtomicUsize::new(0));
        let until = Arc::new(AtomicI64::new(i64::MAX));
        let task = tokio::spawn(watch_loop(
            endpoints,
            first,
            prefix.to_string(),
            seen.clone(),
            last_revision.clone(),
            connected_to.clone(),
            reconnects.clone(),
            until.clone(),
            limit,
        ));
        ResumingWatcher {
            seen,
            last_revision,
            connected_to,
            reconnects,
            until,
            task,
        }
    }

    /// The revision of the last event seen (start revision - 1 before any).
    pub fn last_revision(&self) -> i64 {
        self.last_revision.load(Ordering::SeqCst)
    }

    /// The member URL of the current (or last) stream.
    pub fn connected_to(&self) -> String {
        self.connected_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times a new stream was opened after the first.
    pub fn reconnects(&self) -> usize {
        self.reconnects.load(Ordering::SeqCst)
    }

    /// Waits until an event at or after `revision` was seen (or fails after `timeout`).
    pub async fn wait_for_revision(&self, revision: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.last_revision() < revision {
            assert!(
                !self.task.is_finished(),
                "the watcher stopped before revision {revision}"
            );
            if Instant::now() > deadline {
                panic!(
                    "the watcher did not reach revision {revision} within {timeout:?} (at {}, on {})",
                    self.last_revision(),
                    self.connected_to()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets the watcher run until it has seen `revision`, then returns everything it saw.
    pub async fn finish(self, revision: i64, timeout: Duration) -> Vec<Change> {
        self.until.store(revision, Ordering::SeqCst);
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            Err(_) => panic!(
                "the watcher did not reach revision {revision} within {timeout:?} (at {})",
                self.last_revision.load(Ordering::SeqCst)
            ),
        }
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.clone()
    }
}

#[allow(clippy::too_many_arguments)]
async fn watch_loop(
    endpoints: Endpoints,
    first: usize,
    prefix: String,
    seen: Arc<Mutex<Vec<Change>>>,
    last_revision: Arc<AtomicI64>,
    connected_to: Arc<Mutex<String>>,
    reconnects: Arc<AtomicUsize>,
    until: Arc<AtomicI64>,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    let mut position = first;
    let mut streams = 0usize;
    loop {
        if last_revision.load(Ordering::SeqCst) >= until.load(Ordering::SeqCst) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher ran out of its {limit:?}"
        );
        let urls = endpoints.get();
        let url = urls[position % urls.len()].clone();
        // No request timeout: it would cut the stream; keep-alive notices a dead connection.
        let mut client = connect_with(std::slice::from_ref(&url), client_options(None)).await;
        let from = last_revision.load(Ordering::SeqCst) + 1;
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let opened = tokio::time::timeout(
            Duration::from_secs(5),
            client.watch(prefix.as_str(), Some(options)),
        )
        .await;
        let mut stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) | Err(_) => {
                position += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        streams += 1;
        if streams > 1 {
            reconnects.fetch_add(1, Ordering::SeqCst);
        }
        *connected_to.lock().unwrap_or_else(|e| e.into_inner()) = url.clone();
        loop {
            if last_revision.load(Ordering::SeqCst) >= until.load(Ordering::SeqCst) {
                return;
            }
            // Wake up now and then to notice `until` and the deadline.
            let message =
                match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
                    Err(_) => {
                        assert!(
                            Instant::now() < deadline,
                            "the watcher ran out of its {limit:?}"
                        );
                        continue;
                    }
                    Ok(m) => m,
                };
            match message {
                Ok(Some(response)) => {
                    assert!(
                        !response.canceled() || response.compact_revision() == 0,
                        "the watch was canceled as compacted at {} (asked from {from})",
                        response.compact_revision()
                    );
                    if response.canceled() {
                        break; // e.g. the member is shutting down: resume elsewhere
                    }
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for event in response.events() {
                        let change = event_change(event);
                        last_revision.fetch_max(change.revision, Ordering::SeqCst);
                        seen.push(change);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        position += 1;
    }
}

fn event_change(event: &etcd_client::Event) -> Change {
    let kv = event.kv().expect("a watch event carries its key-value");
    Change {
        revision: kv.mod_revision(),
        key: kv.key().to_vec(),
        value: match event.event_type() {
            EventType::Put => Some(kv.value().to_vec()),
            EventType::Delete => None,
        },
    }
}

/// All changes under `prefix` with revisions in `from..=to`, by a fresh watch on `endpoint`.
pub async fn collect_watch(endpoint: &str, prefix: &str, from: i64, to: i64) -> Vec<Change> {
    let mut client = connect_with(&[endpoint.to_string()], client_options(None)).await;
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let collect = async {
        let mut stream = client
            .watch(prefix, Some(options))
            .await
            .expect("opening a watch");
        let mut changes = Vec::new();
        let mut last = from - 1;
        while last < to {
            let response = stream
                .message()
                .await
                .expect("reading a watch")
                .expect("the watch stream ended early");
            assert!(!response.canceled(), "the watch was canceled: {response:?}");
            for event in response.events() {
                let change = event_change(event);
                last = last.max(change.revision);
                if change.revision <= to {
                    changes.push(change);
                }
            }
        }
        changes
    };
    tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .expect("collecting a watch took longer than 60s")
}

/// All changes under `prefix` with revisions in `from..=to`, read with one Range per revision
/// (independent of the watch implementation): a key whose `mod_revision` is the revision was
/// put; a key present before and absent at the revision was deleted.
pub async fn history_by_ranges(endpoint: &str, prefix: &str, from: i64, to: i64) -> Vec<Change> {
    let mut client = connect_with(
        &[endpoint.to_string()],
        client_options(Some(Duration::from_secs(10))),
    )
    .await;
    let mut changes = Vec::new();
    let mut before = read_prefix_at(&mut client, prefix, from - 1).await;
    for revision in from..=to {
        let now = read_prefix_at(&mut client, prefix, revision).await;
        for (key, (value, mod_revision)) in &now {
            if *mod_revision == revision {
                changes.push(Change {
                    revision,
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for key in before.keys() {
            if !now.contains_key(key) {
                changes.push(Change {
                    revision,
                    key: key.clone(),
                    value: None,
                });
            }
        }
        before = now;
    }
    changes
}

async fn read_prefix_at(
    client: &mut etcd_client::Client,
    prefix: &str,
    revision: i64,
) -> BTreeMap<Vec<u8>, (Vec<u8>, i64)> {
    if revision < 1 {
        return BTreeMap::new(); // before the first revision; 0 would mean "latest"
    }
    let response = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_revision(revision)),
        )
        .await
        .unwrap_or_else(|e| panic!("reading {prefix:?} at revision {revision}: {e}"));
    response
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), (kv.value().to_vec(), kv.mod_revision())))
        .collect()
}
