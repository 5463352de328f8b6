//! The watch hub: fans committed changes out to watchers. A layer over the [`Store`], which knows
//! nothing of it: whoever applies commands calls [`WatchHub::notify`] after each commit.
//!
//! Each watcher belongs to a *stream* (one gRPC Watch call) and delivers into that stream's bounded
//! channel. A *synced* watcher has seen everything up to the hub's revision and gets new events
//! straight from `notify`. When its channel is full — the client stopped reading — `notify` does not
//! wait: the watcher becomes *unsynced* and the catch-up loop later reads the missed history from the
//! store, a bounded number of revisions at a time, sending only when the channel has room. So a
//! stalled client neither blocks writers nor makes the server buffer its events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

use crate::error::StoreError;
use crate::kv::{Event, EventKind, KeyRange};
use crate::mvcc::Store;

/// One delivery to a stream: events for one watcher, or that watcher's cancellation because the
/// history it needs was compacted (`compact_revision != 0`, no events).
///
/// Events are shared: every watcher given one change holds the same allocation (as etcd's watchers
/// share `mvccpb.Event` pointers), so a 1.5 MiB put seen by 100,000 watchers costs 1.5 MiB, not
/// 150 GB; a copy is made only as each response is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchMessage {
    pub watch_id: i64,
    pub events: Vec<Arc<Event>>,
    /// The hub's revision when the message was made.
    pub revision: i64,
    pub compact_revision: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// First revision to deliver.
    pub start_revision: i64,
    pub filter_put: bool,
    pub filter_delete: bool,
}

#[derive(Clone, Debug)]
pub struct WatchHubConfig {
    /// Catch-up reads at most this many revisions from the store per round and watcher group.
    pub catch_up_revisions_max: usize,
    /// … and stops at the first revision boundary past this many bytes of records, so a round's
    /// memory stays bounded when values are large (1,000 revisions of 1.5 MiB would be 1.5 GB).
    pub catch_up_bytes_max: usize,
    /// How often the catch-up loop retries watchers whose channel was full.
    pub retry_interval: Duration,
}

impl Default for WatchHubConfig {
    fn default() -> Self {
        WatchHubConfig {
            catch_up_revisions_max: 1000,
            catch_up_bytes_max: 4 << 20,
            retry_interval: Duration::from_millis(100),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct WatcherKey {
    stream: u64,
    watch_id: i64,
}

struct Watcher {
    range: KeyRange,
    filter_put: bool,
    filter_delete: bool,
    /// Next revision this watcher needs.
    min_rev: i64,
    synced: bool,
    sink: mpsc::Sender<WatchMessage>,
}

impl Watcher {
    fn wants(&self, ev: &Event) -> bool {
        ev.kv.mod_revision >= self.min_rev
            && self.range.contains(&ev.kv.key)
            && !(self.filter_put && ev.kind == EventKind::Put)
            && !(self.filter_delete && ev.kind == EventKind::Delete)
    }
}

#[derive(Default)]
struct Inner {
    /// Revision of the last `notify`; everything up to it is committed in the store.
    revision: i64,
    watchers: HashMap<WatcherKey, Watcher>,
    /// Synced single-key watchers by key, for `notify` to find without scanning.
    synced_keys: HashMap<Vec<u8>, BTreeSet<WatcherKey>>,
    /// Synced range watchers.
    synced_ranges: BTreeSet<WatcherKey>,
    unsynced: BTreeSet<WatcherKey>,
    /// Watch IDs by stream, so closing a stream or answering its progress request visits only
    /// that stream's watchers.
    streams: HashMap<u64, BTreeSet<i64>>,
    next_stream: u64,
}

impl Inner {
    fn mark_synced(&mut self, key: WatcherKey) {
        let w = self.watchers.get_mut(&key).expect("watcher exists");
        w.synced = true;
        self.unsynced.remove(&key);
        match &w.range {
            KeyRange::Single(k) => {
                self.synced_keys.entry(k.clone()).or_default().insert(key);
            }
            _ => {
                self.synced_ranges.insert(key);
            }
        }
    }

    fn unmark_synced(&mut self, key: WatcherKey) {
        let Some(w) = self.watchers.get_mut(&key) else {
            return;
        };
        if !w.synced {
            return;
        }
        w.synced = false;
        match &w.range {
            KeyRange::Single(k) => {
                if let Some(set) = self.synced_keys.get_mut(k) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.synced_keys.remove(k);
                    }
                }
            }
            _ => {
                self.synced_ranges.remove(&key);
            }
        }
    }

    fn remove(&mut self, key: WatcherKey) -> bool {
        self.unmark_synced(key);
        self.unsynced.remove(&key);
        if let Some(ids) = self.streams.get_mut(&key.stream) {
            ids.remove(&key.watch_id);
            if ids.is_empty() {
                self.streams.remove(&key.stream);
            }
        }
        self.watchers.remove(&key).is_some()
    }
}

pub struct WatchHub {
    store: Arc<Store>,
    config: WatchHubConfig,
    inner: Mutex<Inner>,
    wake: Notify,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateId,
}

impl WatchHub {
    pub fn new(store: Arc<Store>, config: WatchHubConfig) -> Arc<WatchHub> {
        let revision = store.current_revision();
        Arc::new(WatchHub {
            store,
            config,
            inner: Mutex::new(Inner {
                revision,
                ..Inner::default()
            }),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Revision up to which the hub has delivered (or will deliver) every change.
    pub fn revision(&self) -> i64 {
        self.lock().revision
    }

    pub fn new_stream(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_stream += 1;
        inner.next_stream
    }

    /// Starts a watcher delivering into `sink` from `spec.start_revision`.
    pub fn watch(
        &self,
        stream: u64,
        watch_id: i64,
        spec: WatchSpec,
        sink: mpsc::Sender<WatchMessage>,
    ) -> Result<(), WatchError> {
        let key = WatcherKey { stream, watch_id };
        let mut inner = self.lock();
        if inner.watchers.contains_key(&key) {
            return Err(WatchError::DuplicateId);
        }
        let watcher = Watcher {
            range: KeyRange::new(&spec.key, &spec.range_end),
            filter_put: spec.filter_put,
            filter_delete: spec.filter_delete,
            min_rev: spec.start_revision,
            synced: false,
            sink,
        };
        let synced = watcher.min_rev > inner.revision;
        inner.watchers.insert(key, watcher);
        inner.streams.entry(stream).or_default().insert(watch_id);
        if synced {
            inner.mark_synced(key);
        } else {
            inner.unsynced.insert(key);
            drop(inner);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Stops a watcher; nothing more is sent for it after this returns.
    pub fn cancel(&self, stream: u64, watch_id: i64) -> bool {
        self.lock().remove(WatcherKey { stream, watch_id })
    }

    pub fn cancel_stream(&self, stream: u64) {
        let mut inner = self.lock();
        let ids = inner.streams.remove(&stream).unwrap_or_default();
        for watch_id in ids {
            inner.remove(WatcherKey { stream, watch_id });
        }
    }

    /// The revision a progress notification for this watcher may claim, if it has seen everything.
    pub fn synced_revision(&self, stream: u64, watch_id: i64) -> Option<i64> {
        let inner = self.lock();
        let w = inner.watchers.get(&WatcherKey { stream, watch_id })?;
        w.synced.then_some(inner.revision)
    }

    /// The revision a progress notification for the whole stream may claim: only when every one of
    /// its watchers has seen everything up to it.
    pub fn stream_synced_revision(&self, stream: u64) -> Option<i64> {
        let inner = self.lock();
        let all_synced = inner.streams.get(&stream).is_none_or(|ids| {
            ids.iter()
                .all(|&watch_id| inner.watchers[&WatcherKey { stream, watch_id }].synced)
        });
        all_synced.then_some(inner.revision)
    }

    pub fn watcher_count(&self) -> usize {
        self.lock().watchers.len()
    }

    /// Delivers the changes of a commit that brought the store to `revision`. Never blocks.
    pub fn notify(&self, revision: i64, events: &[Event]) {
        let mut inner = self.lock();
        assert!(
            revision >= inner.revision,
            "watch hub: notified revision {revision} after {}",
            inner.revision
        );
        let first_new = inner.revision + 1;
        inner.revision = revision;
        if events.is_empty() || inner.watchers.is_empty() {
            return;
        }
        let mut batches: BTreeMap<WatcherKey, Vec<Arc<Event>>> = BTreeMap::new();
        for ev in events {
            // One copy of the event, made only if some watcher wants it, shared by all of them.
            let mut shared: Option<Arc<Event>> = None;
            let by_key = inner.synced_keys.get(&ev.kv.key).into_iter().flatten();
            for key in by_key.chain(inner.synced_ranges.iter()) {
                if inner.watchers[key].wants(ev) {
                    let shared = shared.get_or_insert_with(|| Arc::new(ev.clone()));
                    batches.entry(*key).or_default().push(shared.clone());
                }
            }
        }
        let mut fell_behind = false;
        for (key, events) in batches {
            let w = inner.watchers.get_mut(&key).expect("synced watcher exists");
            let msg = WatchMessage {
                watch_id: key.watch_id,
                events,
                revision,
                compact_revision: 0,
            };
            match w.sink.try_send(msg) {
                Ok(()) => w.min_rev = revision + 1,
                Err(TrySendError::Full(_)) => {
                    // Everything before this commit was delivered; catch-up restarts from it (or
                    // from a later start revision the watcher asked for). A synced watcher's
                    // `min_rev` may lag behind commits it had no events in: that is why it is
                    // raised here, once, rather than for every synced watcher on every commit.
                    w.min_rev = w.min_rev.max(first_new);
                    inner.unmark_synced(key);
                    inner.unsynced.insert(key);
                    fell_behind = true;
                }
                Err(TrySendError::Closed(_)) => {
                    inner.remove(key);
                }
            }
        }
        drop(inner);
        if fell_behind {
            self.wake.notify_one();
        }
    }

    /// The store's contents were replaced (a snapshot installed) and now stand at `revision`.
    /// Every watcher continues from what it was last given: synced watchers become unsynced and
    /// catch up from the new contents (or are canceled as compacted, when the snapshot's history
    /// no longer reaches back to them).
    pub fn store_replaced(&self, revision: i64) {
        let mut inner = self.lock();
        let delivered = inner.revision;
        let synced: Vec<WatcherKey> = inner
            .watchers
            .iter()
            .filter(|(_, w)| w.synced)
            .map(|(k, _)| *k)
            .collect();
        for key in synced {
            inner.unmark_synced(key);
            inner.unsynced.insert(key);
            let w = inner.watchers.get_mut(&key).expect("watcher exists");
            w.min_rev = w.min_rev.max(delivered + 1);
        }
        inner.revision = revision;
        drop(inner);
        self.wake.notify_one();
    }

    /// Runs catch-up rounds until the hub is dropped elsewhere and this task is aborted.
    pub async fn run_catch_up(self: Arc<Self>) {
        loop {
            let hub = self.clone();
            let progressed = tokio::task::spawn_blocking(move || hub.catch_up_once())
                .await
                .unwrap_or(false);
            if !progressed {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.retry_interval) => {}
                }
            }
        }
    }

    /// One catch-up round over the unsynced watchers. Returns whether any watcher advanced (so
    /// another round right away may advance more).
    pub fn catch_up_once(&self) -> bool {
        let compact_rev = self.store.compact_revision();
        let (targets, to) = {
            let mut inner = self.lock();
            let to = inner.revision;
            let mut targets = Vec::new();
            let unsynced: Vec<WatcherKey> = inner.unsynced.iter().copied().collect();
            for key in unsynced {
                let w = &inner.watchers[&key];
                if w.min_rev < compact_rev {
                    let msg = WatchMessage {
                        watch_id: key.watch_id,
                        events: vec![],
                        revision: to,
                        compact_revision: compact_rev,
                    };
                    match w.sink.try_send(msg) {
                        Ok(()) | Err(TrySendError::Closed(_)) => {
                            inner.remove(key);
                        }
                        Err(TrySendError::Full(_)) => {}
                    }
                    continue;
                }
                if w.min_rev > to {
                    inner.mark_synced(key);
                    continue;
                }
                targets.push((key, w.min_rev));
            }
            (targets, to)
        };
        let Some(from) = targets.iter().map(|(_, min_rev)| *min_rev).min() else {
            return false;
        };
        let (events, upto) = match self.store.events_between_bounded(
            from,
            to,
            self.config.catch_up_revisions_max,
            self.config.catch_up_bytes_max,
        ) {
            Ok(read) => read,
            // Compacted meanwhile: the next round cancels the watchers concerned.
            Err(StoreError::Compacted) => return true,
            Err(e) => {
                tracing::error!("watch catch-up read failed: {e}");
                return false;
            }
        };
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        let mut inner = self.lock();
        let mut progressed = false;
        for (key, min_rev) in targets {
            let Some(w) = inner.watchers.get_mut(&key) else {
                continue;
            };
            if w.synced || w.min_rev != min_rev {
                continue;
            }
            let mine: Vec<Arc<Event>> = events.iter().filter(|ev| w.wants(ev)).cloned().collect();
            if !mine.is_empty() {
                let msg = WatchMessage {
                    watch_id: key.watch_id,
                    events: mine,
                    revision: to,
                    compact_revision: 0,
                };
                match w.sink.try_send(msg) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => continue,
                    Err(TrySendError::Closed(_)) => {
                        inner.remove(key);
                        continue;
                    }
                }
            }
            // A watcher ahead of this round's chunk (its start lies past `upto`) keeps its own
            // position: the round read history for the watcher furthest behind.
            w.min_rev = w.min_rev.max(upto + 1);
            progressed = true;
            if w.min_rev > inner.revision {
                inner.mark_synced(key);
            }
        }
        progressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Command, DeleteRangeRequest, PutRequest};
    use crate::StoreConfig;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        hub: Arc<WatchHub>,
        index: u64,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let config = StoreConfig {
                sync_writes: false,
                ..StoreConfig::default()
            };
            let store = Arc::new(Store::open(dir.path(), config).unwrap());
            let hub = WatchHub::new(
                store.clone(),
                WatchHubConfig {
                    catch_up_revisions_max: 2,
                    ..Default::default()
                },
            );
            Fixture {
                _dir: dir,
                store,
                hub,
                index: 0,
            }
        }

        fn apply(&mut self, cmd: Command) {
            self.index += 1;
            let applied = self.store.apply(self.index, &[cmd]);
            self.hub.notify(applied.revision, &applied.events);
        }

        fn put(&mut self, k: &str, v: &str) {
            self.apply(Command::Put(PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            }));
        }
    }

    fn spec(key: &str, end: &str, start: i64) -> WatchSpec {
        WatchSpec {
            key: key.into(),
            range_end: end.into(),
            start_revision: start,
            filter_put: false,
            filter_delete: false,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<WatchMessage>) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            for ev in msg.events {
                out.push((
                    ev.kv.mod_revision,
                    String::from_utf8(ev.kv.key.clone()).unwrap(),
                ));
            }
        }
        out
    }

    #[test]
    fn a_future_start_is_kept_when_the_watcher_falls_behind_mid_batch() {
        let mut f = Fixture::new();
        let (tx, mut rx) = mpsc::channel(1);
        let stream = f.hub.new_stream();
        let start = f.hub.revision() + 2;
        f.hub
            .watch(stream, 1, spec("k", "", start), tx.clone())
            .unwrap();
        // The channel is full, and one apply commits three revisions: the watcher falls behind
        // in a batch that begins before its start revision.
        tx.try_send(WatchMessage {
            watch_id: 9,
            events: vec![],
            revision: 0,
            compact_revision: 0,
        })
        .unwrap();
        let puts: Vec<Command> = (0..3)
            .map(|i| {
                Command::Put(PutRequest {
                    key: "k".into(),
                    value: format!("{i}").into(),
                    ..Default::default()
                })
            })
            .collect();
        f.index += 1;
        let applied = f.store.apply(f.index, &puts);
        f.hub.notify(applied.revision, &applied.events);
        assert_eq!(rx.try_recv().unwrap().watch_id, 9);
        while f.hub.catch_up_once() {}
        let got: Vec<i64> = drain(&mut rx).into_iter().map(|(rev, _)| rev).collect();
        assert_eq!(
            got,
            vec![start, start + 1],
            "nothing before the start revision"
        );
    }

    #[test]
    fn a_watcher_ahead_of_the_catch_up_chunk_never_moves_backwards() {
        // Two unsynced watchers on one member: one far behind, one whose start lies beyond the
        // first catch-up chunk (two revisions here). The round reads history for the one behind;
        // the one ahead must get neither events before its start nor any event twice.
        let mut f = Fixture::new();
        for i in 0..20 {
            f.put(&format!("k{i}"), "v");
        }
        let stream = f.hub.new_stream();
        let (tx_behind, mut rx_behind) = mpsc::channel(64);
        let (tx_ahead, mut rx_ahead) = mpsc::channel(64);
        f.hub
            .watch(stream, 1, spec("", "\0", 2), tx_behind)
            .unwrap();
        f.hub
            .watch(stream, 2, spec("", "\0", 15), tx_ahead)
            .unwrap();
        let mut rounds = 0;
        while f.hub.synced_revision(stream, 1).is_none()
            || f.hub.synced_revision(stream, 2).is_none()
        {
            assert!(f.hub.catch_up_once(), "catch-up stalled");
            rounds += 1;
            assert!(rounds < 100, "catch-up did not finish");
        }
        f.put("live", "v");
        let behind: Vec<i64> = drain(&mut rx_behind).into_iter().map(|(r, _)| r).collect();
        let ahead: Vec<i64> = drain(&mut rx_ahead).into_iter().map(|(r, _)| r).collect();
        assert_eq!(behind, (2..=22).collect::<Vec<_>>());
        assert_eq!(ahead, (15..=22).collect::<Vec<_>>());
    }

    #[test]
    fn a_catch_up_round_is_bounded_by_bytes_as_well_as_revisions() {
        let mut f = Fixture::new();
        f.hub = WatchHub::new(
            f.store.clone(),
            WatchHubConfig {
                catch_up_revisions_max: 1000,
                catch_up_bytes_max: 3000,
                ..Default::default()
            },
        );
        let big = "x".repeat(1000);
        for i in 0..10 {
            f.put(&format!("k{i}"), &big);
        }
        let (tx, mut rx) = mpsc::channel(64);
        let stream = f.hub.new_stream();
        f.hub.watch(stream, 1, spec("", "\0", 2), tx).unwrap();
        let mut per_round = Vec::new();
        while f.hub.synced_revision(stream, 1).is_none() {
            assert!(f.hub.catch_up_once());
            per_round.push(drain(&mut rx).len());
        }
        // About 1 KB a revision: a round stops at the first boundary past 3,000 bytes.
        assert_eq!(per_round, vec![3, 3, 3, 1]);
    }

    #[test]
    fn watchers_of_one_change_share_one_copy_of_it() {
        let mut f = Fixture::new();
        let stream = f.hub.new_stream();
        let now = f.hub.revision();
        let receivers: Vec<_> = (0..3)
            .map(|id| {
                let (tx, rx) = mpsc::channel(4);
                f.hub.watch(stream, id, spec("k", "", now + 1), tx).unwrap();
                rx
            })
            .collect();
        f.put("k", &"v".repeat(1 << 20));
        let events: Vec<Arc<Event>> = receivers
            .into_iter()
            .map(|mut rx| rx.try_recv().unwrap().events[0].clone())
            .collect();
        assert!(events.iter().all(|ev| Arc::ptr_eq(ev, &events[0])));
    }

    #[test]
    fn streams_index_their_watchers() {
        let f = Fixture::new();
        let (a, b) = (f.hub.new_stream(), f.hub.new_stream());
        let (tx, _rx) = mpsc::channel(16);
        let now = f.hub.revision();
        for id in 0..3 {
            f.hub
                .watch(a, id, spec("k", "", now + 1), tx.clone())
                .unwrap();
        }
        f.hub.watch(b, 0, spec("k", "", 1), tx.clone()).unwrap();
        assert_eq!(f.hub.stream_synced_revision(a), Some(now));
        assert_eq!(
            f.hub.stream_synced_revision(b),
            None,
            "b's watcher is unsynced"
        );
        assert!(f.hub.cancel(a, 1));
        f.hub.cancel_stream(a);
        assert_eq!(f.hub.watcher_count(), 1);
        assert_eq!(
            f.hub.stream_synced_revision(a),
            Some(now),
            "no watchers left"
        );
        f.hub.cancel_stream(b);
        assert_eq!(f.hub.watcher_count(), 0);
        assert!(f.hub.lock().streams.is_empty());
        // An ID freed by a cancel may be used again on its stream.
        f.hub.watch(a, 1, spec("k", "", now + 1), tx).unwrap();
        assert_eq!(f.hub.watcher_count(), 1);
    }

    #[test]
    fn synced_watcher_gets_live_events_in_its_range_only() {
        let mut f = Fixture::new();
        let (tx, mut rx) = mpsc::channel(16);
        let stream = f.hub.new_stream();
        f.hub
            .watch(stream, 1, spec("a", "c", f.hub.revision() + 1), tx)
            .unwrap();
        f.put("a", "1");
        f.put("z", "1");
        f.put("b", "1");
        assert_eq!(drain(&mut rx), vec![(2, "a".into()), (4, "b".into())]);
        assert_eq!(f.hub.synced_revision(stream, 1), Some(4));
    }

    #[test]
    fn historical_start_is_replayed_then_live() {
        let mut f = Fixture::new();
        for i in 0..5 {
            f.put("k", &i.to_string());
        }
        let (tx, mut rx) = mpsc::channel(16);
        let stream = f.hub.new_stream();
        f.hub.watch(stream, 7, spec("k", "", 3), tx).unwrap();
        assert_eq!(f.hub.synced_revision(stream, 7), None);
        // Two revisions per round: 3-4, then 5-6.
        assert!(f.hub.catch_up_once());
        assert!(f.hub.catch_up_once());
        assert_eq!(f.hub.synced_revision(stream, 7), Some(6));
        f.put("k", "live");
        let got: Vec<i64> = drain(&mut rx).into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn stalled_client_falls_behind_and_catches_up_without_gaps_or_duplicates() {
        let mut f = Fixture::new();
        let (tx, mut rx) = mpsc::channel(2);
        let stream = f.hub.new_stream();
        f.hub.watch(stream, 1, spec("", "\0", 2), tx).unwrap();
        for i in 0..20 {
            f.put(&format!("k{i}"), "v");
        }
        // Only two messages fit; the watcher is unsynced and writers were never blocked.
        assert_eq!(f.hub.synced_revision(stream, 1), None);
        let mut seen = drain(&mut rx);
        while f.hub.synced_revision(stream, 1).is_none() {
            f.hub.catch_up_once();
            seen.extend(drain(&mut rx));
        }
        f.put("last", "v");
        seen.extend(drain(&mut rx));
        let revs: Vec<i64> = seen.iter().map(|(r, _)| *r).collect();
        assert_eq!(revs, (2..=22).collect::<Vec<_>>());
    }

    #[test]
    fn filters_and_cancel() {
        let mut f = Fixture::new();
        let (tx, mut rx) = mpsc::channel(16);
        let stream = f.hub.new_stream();
        let mut s = spec("k", "", 2);
        s.filter_put = true;
        f.hub.watch(stream, 1, s, tx.clone()).unwrap();
        assert_eq!(
            f.hub.watch(stream, 1, spec("x", "", 2), tx),
            Err(WatchError::DuplicateId)
        );
        f.put("k", "v");
        f.apply(Command::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        }));
        assert_eq!(drain(&mut rx), vec![(3, "k".into())]);
        assert!(f.hub.cancel(stream, 1));
        f.put("k", "v");
        f.apply(Command::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        }));
        assert!(drain(&mut rx).is_empty());
        assert_eq!(f.hub.watcher_count(), 0);
    }

    #[test]
    fn after_a_snapshot_replaces_the_store_watchers_continue_without_gaps_or_duplicates() {
        let mut f = Fixture::new();
        let (tx, mut rx) = mpsc::channel(64);
        let stream = f.hub.new_stream();
        f.hub.watch(stream, 1, spec("", "\0", 2), tx).unwrap();
        // A leader that applied the same five puts, then five this member missed.
        let mut leader = Fixture::new();
        for i in 0..10 {
            if i < 5 {
                f.put(&format!("k{i}"), "v");
            }
            leader.put(&format!("k{i}"), "v");
        }
        let mut seen = drain(&mut rx);
        let mut bytes = Vec::new();
        leader
            .store
            .write_snapshot(256, |c| {
                bytes.extend_from_slice(&c);
                true
            })
            .unwrap();
        let new_path = f._dir.path().join("replaced");
        f.store
            .replace_from_snapshot(&new_path, &bytes[..])
            .unwrap();
        f.hub.store_replaced(f.store.current_revision());
        assert_eq!(f.hub.synced_revision(stream, 1), None, "catching up");
        while f.hub.synced_revision(stream, 1).is_none() {
            f.hub.catch_up_once();
            seen.extend(drain(&mut rx));
        }
        let revs: Vec<i64> = seen.iter().map(|(r, _)| *r).collect();
        assert_eq!(revs, (2..=11).collect::<Vec<_>>());
        // Live again: the next commit is delivered straight away.
        f.index = 100;
        f.put("live", "v");
        assert_eq!(drain(&mut rx).len(), 1);
    }

    #[test]
    fn watcher_behind_compaction_is_canceled_with_the_compact_revision() {
        let mut f = Fixture::new();
        for _ in 0..5 {
            f.put("k", "v");
        }
        f.apply(Command::Compact { revision: 4 });
        let (tx, mut rx) = mpsc::channel(16);
        let stream = f.hub.new_stream();
        f.hub.watch(stream, 3, spec("k", "", 2), tx).unwrap();
        f.hub.catch_up_once();
        let msg = rx.try_recv().unwrap();
        assert_eq!(
            (msg.watch_id, msg.compact_revision, msg.events.len()),
            (3, 4, 0)
        );
        assert_eq!(f.hub.watcher_count(), 0);
    }
}
