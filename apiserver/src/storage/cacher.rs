//! The watch cache (kube-apiserver's cacher): one store watch per resource per replica keeps an
//! in-memory copy of every object and a bounded window of recent changes. Watches are served from
//! it (so a thousand `kubectl get -w` cost one store watch), and so are lists that accept any
//! recent state (`resourceVersion=0`, or `NotOlderThan` a version the cache has reached).
//!
//! Invariant: `objects` is the store's state at `revision`, and `events` holds every change in
//! `(oldest, revision]`, in order. A watcher registered under the lock gets every event after its
//! start without gaps; one that falls `WATCHER_QUEUE` events behind is closed (its client
//! re-lists), so a slow client costs bounded memory.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::storage::etcd::{prefix_end, Storage};

/// Changes kept per resource for watches that start in the past.
pub const EVENT_WINDOW: usize = 10_000;
/// Events queued for one watcher before it is closed as too slow.
pub const WATCHER_QUEUE: usize = 1_024;
/// Objects read per page while (re)filling the cache, at most …
const FILL_PAGE: i64 = 5_000;
/// … and about this many bytes: the next page's size follows the objects' average size so far,
/// starting from a small first page (5,000 ConfigMaps of 1 MiB would be a 5 GB response).
const FILL_PAGE_BYTES: usize = 16 << 20;
const FILL_PAGE_FIRST: i64 = 100;
/// A cache whose store watch has been broken this long stops reporting ready (and serving): it
/// may be missing changes. Shorter breaks (a store member restarting, a leader election) resume
/// from the cache's revision without anyone noticing.
const FOLLOW_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change. For a deletion `object` is the last state with the deletion's revision.
#[derive(Debug)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    pub revision: i64,
}

struct Watcher {
    id: u64,
    key_prefix: String,
    tx: mpsc::Sender<Arc<Event>>,
}

struct State {
    objects: BTreeMap<String, Arc<Value>>,
    revision: i64,
    events: VecDeque<Arc<Event>>,
    /// Events cover revisions after this one.
    oldest: i64,
    watchers: Vec<Watcher>,
    next_id: u64,
    ready: bool,
    /// Since when the store watch has been broken (None while it is established).
    broken_since: Option<tokio::time::Instant>,
}

impl State {
    /// Filled, and following the store (or only briefly not).
    fn serving(&self) -> bool {
        self.ready
            && self
                .broken_since
                .is_none_or(|since| since.elapsed() < FOLLOW_GRACE)
    }
}

pub struct Cacher {
    pub resource: &'static ResourceInfo,
    prefix: String,
    state: Mutex<State>,
    revision_tx: watch::Sender<i64>,
}

/// A registered watch: events before registration (`initial`), then the live queue.
pub struct Subscription {
    pub initial: Vec<Arc<Event>>,
    pub rx: mpsc::Receiver<Arc<Event>>,
    pub start_revision: i64,
    source: Source,
}

enum Source {
    Cache {
        cacher: Arc<Cacher>,
        id: u64,
    },
    /// Without a watch cache: a store watch of this subscription's own, followed by a task.
    Direct {
        revision: Arc<AtomicI64>,
        task: tokio::task::AbortHandle,
    },
}

impl Drop for Subscription {
    fn drop(&mut self) {
        match &self.source {
            Source::Cache { cacher, id } => {
                let mut st = cacher.lock();
                st.watchers.retain(|w| w.id != *id);
            }
            Source::Direct { task, .. } => task.abort(),
        }
    }
}

impl Subscription {
    /// The revision this watch is current at; every event up to it is already queued.
    pub fn cache_revision(&self) -> i64 {
        match &self.source {
            Source::Cache { cacher, .. } => cacher.lock().revision,
            Source::Direct { revision, .. } => revision.load(Ordering::Acquire),
        }
    }
}

/// A watch served straight from the store (`--watch-cache=false`): the objects now as ADDED
/// events (for `Start::Now`), then the store's events from a watch of its own. Like a cached
/// watcher, one that falls `WATCHER_QUEUE` events behind is closed.
pub async fn direct_watch(
    storage: &Storage,
    key_prefix: &str,
    start: Start,
) -> Result<Subscription, ApiError> {
    let (initial, from) = match start {
        Start::Now => {
            let page = storage
                .list(key_prefix, 0, None, 0, &|_| true, false)
                .await?;
            let rev = page.revision;
            let evs = page
                .items
                .into_iter()
                // The key is only used to route cached events to watchers; this watch has one.
                .map(|s| {
                    Arc::new(Event {
                        kind: EventKind::Added,
                        key: String::new(),
                        object: Arc::new(s.object),
                        prev: None,
                        revision: rev,
                    })
                })
                .collect();
            (evs, rev)
        }
        Start::After(rv) => (Vec::new(), rv),
    };
    let revision = Arc::new(AtomicI64::new(from));
    let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
    let mut wc = storage.watch_client();
    let opts = WatchOptions::new()
        .with_range(prefix_end(key_prefix))
        .with_start_revision(from + 1)
        .with_prev_key()
        .with_progress_notify();
    let mut stream = wc.watch(key_prefix.to_string(), Some(opts)).await?;
    let rev = revision.clone();
    let task = tokio::spawn(async move {
        let mut progress = tokio::time::interval(Duration::from_secs(5));
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = progress.tick() => {
                    if stream.request_progress().await.is_err() { return; }
                    continue;
                }
            };
            let Ok(Some(resp)) = msg else { return };
            if resp.canceled() {
                return;
            }
            for e in resp.events() {
                let Some(ev) = convert(e, |_| None) else {
                    continue;
                };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(err) => {
                        tracing::error!(error = %err, "watch: skipping an object that cannot be decoded");
                        if let Some(kv) = e.kv() {
                            rev.fetch_max(kv.mod_revision(), Ordering::AcqRel);
                        }
                        continue;
                    }
                };
                rev.fetch_max(ev.revision, Ordering::AcqRel);
                if tx.try_send(Arc::new(ev)).is_err() {
                    return;
                }
            }
            if resp.events().is_empty() {
                if let Some(h) = resp.header() {
                    rev.fetch_max(h.revision(), Ordering::AcqRel);
                }
            }
        }
    })
    .abort_handle();
    Ok(Subscription {
        initial,
        rx,
        start_revision: from,
        source: Source::Direct { revision, task },
    })
}

/// A store event as a cache event; `known` supplies the last state of a deleted key when the
/// store sent no previous value. None: nothing to report.
fn convert(
    e: &etcd_client::Event,
    known: impl Fn(&str) -> Option<Arc<Value>>,
) -> Option<Result<Event, ApiError>> {
    let kv = e.kv()?;
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    // A previous value that cannot be decoded is as good as none (the cache's own copy stands in).
    let prev = e
        .prev_kv()
        .and_then(|p| Storage::decode(p).ok())
        .map(|s| Arc::new(s.object));
    Some(match e.event_type() {
        EventType::Put => Storage::decode(kv).map(|s| Event {
            kind: if kv.create_revision() == kv.mod_revision() {
                EventKind::Added
            } else {
                EventKind::Modified
            },
            key,
            object: Arc::new(s.object),
            prev,
            revision: kv.mod_revision(),
        }),
        EventType::Delete => {
            // The deleted object is its last state at the deletion's revision (what
            // kube-apiserver sends in a DELETED event).
            let last = prev.clone().or_else(|| known(&key))?;
            let mut obj = (*last).clone();
            crate::storage::etcd::set_resource_version(&mut obj, kv.mod_revision());
            Ok(Event {
                kind: EventKind::Deleted,
                key,
                object: Arc::new(obj),
                prev,
                revision: kv.mod_revision(),
            })
        }
    })
}

/// The next fill page: as many objects as fit in [`FILL_PAGE_BYTES`] at this page's average size.
fn next_fill_page(bytes: usize, objects: usize) -> i64 {
    let average = (bytes / objects.max(1)).max(1);
    i64::try_from(FILL_PAGE_BYTES / average)
        .unwrap_or(FILL_PAGE)
        .clamp(1, FILL_PAGE)
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// `resourceVersion` unset or "0": the current state as ADDED events, then changes.
    Now,
    /// Changes after this revision.
    After(i64),
}

impl Cacher {
    pub fn new(resource: &'static ResourceInfo, storage: &Storage) -> Arc<Self> {
        Self::with_prefix(resource, storage.resource_prefix(resource))
    }

    fn with_prefix(resource: &'static ResourceInfo, prefix: String) -> Arc<Self> {
        let (revision_tx, _) = watch::channel(0);
        Arc::new(Cacher {
            resource,
            prefix,
            state: Mutex::new(State {
                objects: BTreeMap::new(),
                revision: 0,
                events: VecDeque::new(),
                oldest: 0,
                watchers: Vec::new(),
                next_id: 0,
                ready: false,
                broken_since: None,
            }),
            revision_tx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock is a bug that already stopped the process's correctness.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn revision(&self) -> i64 {
        self.lock().revision
    }

    /// Filled and following the store: a cache whose store watch stays broken (for longer than
    /// [`FOLLOW_GRACE`]) is not ready, as it may be missing changes.
    pub fn is_ready(&self) -> bool {
        self.lock().serving()
    }

    fn set_following(&self, following: bool) {
        let mut st = self.lock();
        if following {
            st.broken_since = None;
        } else if st.broken_since.is_none() {
            st.broken_since = Some(tokio::time::Instant::now());
        }
    }

    /// Waits until the cache has reached `revision` (at most `timeout`).
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> Result<(), ApiError> {
        let mut rx = self.revision_tx.subscribe();
        let wait = async {
            loop {
                if *rx.borrow_and_update() >= revision && self.is_ready() {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            return Err(ApiError {
                details: Some(serde_json::json!({
                    "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                    "retryAfterSeconds": 1,
                })),
                ..ApiError::timeout(format!(
                    "Timeout: Too large resource version: {revision}, current: {}",
                    self.revision()
                ))
            });
        }
        Ok(())
    }

    /// The cached object at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.lock().objects.get(key).cloned()
    }

    /// Objects cached, and the cache's revision (for /metrics: no copy of the objects).
    pub fn stats(&self) -> (usize, i64) {
        let st = self.lock();
        (st.objects.len(), st.revision)
    }

    /// Objects under `key_prefix` in key order, and the cache's revision.
    pub fn snapshot(&self, key_prefix: &str) -> (Vec<Arc<Value>>, i64) {
        let st = self.lock();
        let items = st
            .objects
            .range(key_prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(key_prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, st.revision)
    }

    /// Registers a watcher on `key_prefix` starting at `start`. 410 Gone when `start` is
    /// older than the window.
    pub fn subscribe(
        self: &Arc<Self>,
        key_prefix: &str,
        start: Start,
    ) -> Result<Subscription, ApiError> {
        let mut st = self.lock();
        if !st.serving() {
            return Err(ApiError::unavailable(format!(
                "the watch cache for {} is not ready yet",
                self.resource.plural
            )));
        }
        let (initial, start_revision) = match start {
            Start::Now => {
                let evs = st
                    .objects
                    .range(key_prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(key_prefix))
                    .map(|(k, v)| {
                        Arc::new(Event {
                            kind: EventKind::Added,
                            key: k.clone(),
                            object: v.clone(),
                            prev: None,
                            revision: st.revision,
                        })
                    })
                    .collect();
                (evs, st.revision)
            }
            Start::After(rv) => {
                if rv < st.oldest {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        st.oldest + 1
                    )));
                }
                let evs = st
                    .events
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(key_prefix))
                    .cloned()
                    .collect();
                (evs, rv.max(st.revision))
            }
        };
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let id = st.next_id;
        st.next_id += 1;
        st.watchers.push(Watcher {
            id,
            key_prefix: key_prefix.to_string(),
            tx,
        });
        drop(st);
        Ok(Subscription {
            initial,
            rx,
            start_revision,
            source: Source::Cache {
                cacher: self.clone(),
                id,
            },
        })
    }

    /// Applies one change from the store.
    fn apply(&self, st: &mut State, ev: Event) {
        match ev.kind {
            EventKind::Deleted => {
                st.objects.remove(&ev.key);
            }
            _ => {
                st.objects.insert(ev.key.clone(), ev.object.clone());
            }
        }
        st.revision = st.revision.max(ev.revision);
        let ev = Arc::new(ev);
        st.events.push_back(ev.clone());
        while st.events.len() > EVENT_WINDOW {
            if let Some(old) = st.events.pop_front() {
                st.oldest = old.revision;
            }
        }
        // A watcher that cannot take the event is dropped: its stream ends and its client
        // starts over (as kube-apiserver's cacher terminates blocked watchers).
        st.watchers.retain(|w| {
            if !ev.key.starts_with(&w.key_prefix) {
                return !w.tx.is_closed();
            }
            w.tx.try_send(ev.clone()).is_ok()
        });
    }

    /// Keeps the cache in sync forever: fill from a list, then follow a watch; on any break,
    /// resume from the last revision, or re-fill if that was compacted.
    pub async fn run(self: Arc<Self>, storage: Storage) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if !self.lock().ready {
                if let Err(e) = self.fill(&storage).await {
                    tracing::warn!(resource = self.resource.plural, error = %e, "watch cache: fill failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            // A broken store watch resumes from the cache's revision: watchers keep their
            // streams. Only a compacted resume point (ready = false) forces a re-fill.
            let from = self.revision();
            let started = tokio::time::Instant::now();
            if let Err(e) = self.follow(&storage, from).await {
                tracing::warn!(resource = self.resource.plural, error = %e, "watch cache: store watch ended");
            }
            self.set_following(false);
            if started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Reads every object at one revision and resets the cache to it. Watchers are closed:
    /// their streams would otherwise miss the changes between the old and new state.
    async fn fill(&self, storage: &Storage) -> Result<i64, ApiError> {
        let mut kv = storage.kv_client();
        let end = prefix_end(&self.prefix);
        let mut from = self.prefix.clone().into_bytes();
        let mut revision = 0;
        let mut objects = BTreeMap::new();
        let mut page = FILL_PAGE_FIRST;
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(page);
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            let resp = kv.get(from.clone(), Some(opts)).await?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            let mut bytes = 0usize;
            for kv in resp.kvs() {
                bytes += kv.key().len() + kv.value().len();
                // As kube-apiserver: an object that cannot be decoded is logged and left out,
                // not a reason to leave the whole resource without a cache.
                let stored = match Storage::decode(kv) {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::error!(resource = self.resource.plural, error = %e, "watch cache: skipping an object that cannot be decoded");
                        continue;
                    }
                };
                objects.insert(
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    Arc::new(stored.object),
                );
            }
            page = next_fill_page(bytes, resp.kvs().len());
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        self.reset(objects, revision);
        Ok(revision)
    }

    fn reset(&self, objects: BTreeMap<String, Arc<Value>>, revision: i64) {
        let mut st = self.lock();
        st.objects = objects;
        st.revision = revision;
        st.events.clear();
        st.oldest = revision;
        st.watchers.clear();
        st.ready = true;
        drop(st);
        self.revision_tx.send_replace(revision);
    }

    async fn follow(&self, storage: &Storage, from_revision: i64) -> Result<(), ApiError> {
        let mut wc = storage.watch_client();
        let opts = WatchOptions::new()
            .with_range(prefix_end(&self.prefix))
            .with_start_revision(from_revision + 1)
            .with_prev_key()
            .with_progress_notify();
        let mut stream = wc.watch(self.prefix.clone(), Some(opts)).await?;
        self.set_following(true);
        let mut progress = tokio::time::interval(Duration::from_secs(1));
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                m = stream.message() => m?,
                _ = progress.tick() => {
                    // Lets the cache's revision follow the store's even when this resource is
                    // quiet, so NotOlderThan lists and bookmarks see recent versions.
                    stream.request_progress().await?;
                    continue;
                }
            };
            let Some(resp) = msg else {
                return Err(ApiError::unavailable("store watch closed"));
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    self.lock().ready = false;
                }
                return Err(ApiError::unavailable(format!(
                    "store watch cancelled: {}",
                    resp.cancel_reason()
                )));
            }
            let header_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            let mut st = self.lock();
            for e in resp.events() {
                let known = |k: &str| st.objects.get(k).cloned();
                match convert(e, known) {
                    None => {}
                    Some(Ok(ev)) => self.apply(&mut st, ev),
                    // Logged and skipped, as kube-apiserver does; the cache moves past it (a
                    // failing event would otherwise be read again on every resume, forever).
                    Some(Err(err)) => {
                        tracing::error!(resource = self.resource.plural, error = %err, "watch cache: skipping an object that cannot be decoded");
                        if let Some(kv) = e.kv() {
                            st.revision = st.revision.max(kv.mod_revision());
                        }
                    }
                }
            }
            if resp.events().is_empty() && header_rev > st.revision {
                // A progress notification: nothing under the prefix changed up to header_rev.
                st.revision = header_rev;
            }
            let rev = st.revision;
            drop(st);
            self.revision_tx.send_replace(rev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    fn event(kind: EventKind, key: &str, rev: i64, prev: Option<i64>) -> Event {
        let obj = |r: i64| {
            Arc::new(
                json!({"metadata": {"name": key.rsplit('/').next().unwrap(), "resourceVersion": r.to_string()}}),
            )
        };
        Event {
            kind,
            key: key.to_string(),
            object: obj(rev),
            prev: prev.map(obj),
            revision: rev,
        }
    }

    fn feed(c: &Cacher, e: Event) {
        let mut st = c.lock();
        c.apply(&mut st, e);
    }

    #[test]
    fn watchers_get_every_later_event_under_their_prefix() {
        let c = Cacher::with_prefix(pods(), "/registry/pods/".into());
        let mut objects = BTreeMap::new();
        objects.insert(
            "/registry/pods/a/p1".to_string(),
            Arc::new(json!({"metadata": {"name": "p1"}})),
        );
        c.reset(objects, 10);
        let mut all = c.subscribe("/registry/pods/", Start::Now).unwrap();
        assert_eq!(all.initial.len(), 1, "the state now, as ADDED events");
        let mut ns_b = c.subscribe("/registry/pods/b/", Start::After(10)).unwrap();
        feed(&c, event(EventKind::Added, "/registry/pods/a/p2", 11, None));
        feed(&c, event(EventKind::Added, "/registry/pods/b/p3", 12, None));
        feed(
            &c,
            event(EventKind::Modified, "/registry/pods/b/p3", 13, Some(12)),
        );
        let revs: Vec<i64> = std::iter::from_fn(|| all.rx.try_recv().ok())
            .map(|e| e.revision)
            .collect();
        assert_eq!(revs, vec![11, 12, 13]);
        let revs: Vec<i64> = std::iter::from_fn(|| ns_b.rx.try_recv().ok())
            .map(|e| e.revision)
            .collect();
        assert_eq!(revs, vec![12, 13]);
        // A watch starting in the window replays what it missed.
        let late = c.subscribe("/registry/pods/", Start::After(11)).unwrap();
        let revs: Vec<i64> = late.initial.iter().map(|e| e.revision).collect();
        assert_eq!(revs, vec![12, 13]);
        assert_eq!(c.snapshot("/registry/pods/b/").0.len(), 1);
    }

    #[test]
    fn versions_before_the_window_are_gone_and_slow_watchers_are_closed() {
        let c = Cacher::with_prefix(pods(), "/registry/pods/".into());
        c.reset(BTreeMap::new(), 1);
        let mut slow = c.subscribe("/registry/pods/", Start::Now).unwrap();
        let n = (EVENT_WINDOW + 10) as i64;
        for rev in 2..=n + 1 {
            feed(
                &c,
                event(
                    EventKind::Added,
                    &format!("/registry/pods/a/p{rev}"),
                    rev,
                    None,
                ),
            );
        }
        let err = c
            .subscribe("/registry/pods/", Start::After(1))
            .err()
            .unwrap();
        assert_eq!(err.code, 410);
        assert!(
            err.message.starts_with("too old resource version: 1 ("),
            "{}",
            err.message
        );
        assert!(c.subscribe("/registry/pods/", Start::After(n)).is_ok());
        // The slow watcher got its queue's worth, then its stream ended.
        let mut got = 0;
        while let Ok(_e) = slow.rx.try_recv() {
            got += 1;
        }
        assert_eq!(got, WATCHER_QUEUE);
        assert!(slow.rx.try_recv().is_err());
        assert!(matches!(
            slow.rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn a_refill_closes_watchers_and_a_deletion_removes_the_object() {
        let c = Cacher::with_prefix(pods(), "/registry/pods/".into());
        c.reset(BTreeMap::new(), 5);
        feed(&c, event(EventKind::Added, "/registry/pods/a/p", 6, None));
        feed(
            &c,
            event(EventKind::Deleted, "/registry/pods/a/p", 7, Some(6)),
        );
        assert!(c.snapshot("/registry/pods/").0.is_empty());
        assert_eq!(c.revision(), 7);
        let mut w = c.subscribe("/registry/pods/", Start::After(7)).unwrap();
        c.reset(BTreeMap::new(), 20);
        assert!(matches!(
            w.rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
