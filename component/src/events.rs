//! An Event recorder that writes **core/v1 Events** the way client-go's legacy recorder
//! (`tools/record`) does.
//!
//! `record` never waits: it names the Event, puts it on a bounded queue (1000 items, the size of
//! client-go's broadcaster queue) and returns; beyond that bound the Event is dropped and counted.
//! One background task per recorder drains the queue and writes. Like client-go's
//! `EventCorrelator`, a repeat of the same (source, object, type, reason, message) within
//! [`CORRELATION_WINDOW`] of its last occurrence patches `count` and `lastTimestamp` of the Event
//! already written instead of creating another one; the cache behind that decision is an LRU of
//! [`CORRELATION_CACHE_ENTRIES`] keys (client-go's `maxLruCacheEntries`).
//!
//! Not done (client-go does them): the spam filter (a token bucket per source and object), and
//! the aggregation of *similar* Events (same reason, different messages) into
//! "(combined from similar events)".

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use tokio::sync::mpsc;

use crate::leading::Leading;

/// Events waiting to be written, per recorder (client-go's `maxQueuedEvents`).
pub const QUEUE_CAPACITY: usize = 1000;
/// Distinct Events remembered for correlation (client-go's `maxLruCacheEntries`).
pub const CORRELATION_CACHE_ENTRIES: usize = 4096;
/// A repeat within this time of the last occurrence updates the existing Event.
pub const CORRELATION_WINDOW: Duration = Duration::from_secs(600);
/// Tries per Event when the API server cannot be reached (client-go's `maxTriesPerEvent`).
const MAX_TRIES_PER_EVENT: u32 = 12;
/// Pause between those tries (client-go's `defaultSleepDuration`).
const RETRY_SLEEP: Duration = Duration::from_secs(10);

/// The `type` of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Records Events about objects; clones share the queue, the writer and the counters.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Queued>,
}

struct Shared {
    source: EventSource,
    /// Last nanosecond timestamp used in a name: names stay unique within the process even when
    /// two Events about one object are recorded in the same nanosecond.
    last_name_nanos: AtomicI64,
    dropped: AtomicU64,
    leading: std::sync::Mutex<Option<Leading>>,
}

struct Queued {
    event: Event,
    key: EventKey,
}

impl Recorder {
    /// `component`: source.component and reportingComponent (e.g. "default-scheduler",
    /// "replicaset-controller", "kubelet"); `host`: source.host and reportingInstance (kubelet
    /// sets its node name). Spawns the writer task, so it must be called inside a tokio runtime.
    pub fn new(client: kube::Client, component: &str, host: Option<String>) -> Recorder {
        Self::with_sink(ApiSink { client }, component, host)
    }

    fn with_sink(sink: impl Sink, component: &str, host: Option<String>) -> Recorder {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            source: EventSource {
                component: Some(component.to_string()),
                host,
            },
            last_name_nanos: AtomicI64::new(0),
            dropped: AtomicU64::new(0),
            leading: std::sync::Mutex::new(None),
        });
        tokio::spawn(write_events(rx, sink, shared.clone()));
        Recorder { shared, queue }
    }

    /// Makes the writer check `leading.ensure()` immediately before each write and drop the
    /// Event when the term is over, as every write of a leader must. Applies to all clones.
    pub fn with_leading(self, leading: Leading) -> Recorder {
        *self
            .shared
            .leading
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(leading);
        self
    }

    /// Fire and forget: queued on a bounded queue (1000 items, as client-go's broadcaster;
    /// beyond it the event is dropped and counted) and written by a background task.
    pub fn record(
        &self,
        regarding: &ObjectReference,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        if regarding.name.as_deref().unwrap_or("").is_empty() {
            tracing::warn!(reason, %message, "event about an object without a name dropped");
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = Utc::now();
        let nanos = self.unique_nanos(now);
        let event = make_event(
            &self.shared.source,
            regarding,
            kind,
            reason,
            message,
            now,
            nanos,
        );
        tracing::debug!(
            object = %event_object(&event),
            event_type = kind.as_str(),
            reason,
            message = event.message.as_deref().unwrap_or(""),
            "event"
        );
        let key = EventKey::of(&event);
        if self.queue.try_send(Queued { event, key }).is_err() {
            let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped_total = n, "event queue full: events dropped");
            }
        }
    }

    /// Events dropped so far: queue full, no object name, not leading, or rejected by the server.
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn unique_nanos(&self, now: DateTime<Utc>) -> i64 {
        let wanted = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let prev = self
            .shared
            .last_name_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(wanted.max(last.saturating_add(1)))
            })
            .unwrap_or(wanted);
        wanted.max(prev.saturating_add(1))
    }
}

/// The reference an Event's `involvedObject` holds: apiVersion, kind, namespace, name, uid and
/// resourceVersion of `obj`.
pub fn object_reference<K: kube::Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// `<involvedObject.name>.<16 hex digits of a nanosecond timestamp>`, as client-go names Events.
fn event_name(object_name: &str, unix_nanos: i64) -> String {
    format!("{object_name}.{unix_nanos:016x}")
}

/// Cluster-scoped objects get their Events in `default`, as in client-go.
fn event_namespace(regarding: &ObjectReference) -> String {
    match regarding.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => "default".to_string(),
    }
}

fn make_event(
    source: &EventSource,
    regarding: &ObjectReference,
    kind: EventType,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
    unix_nanos: i64,
) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(
                regarding.name.as_deref().unwrap_or(""),
                unix_nanos,
            )),
            namespace: Some(event_namespace(regarding)),
            ..ObjectMeta::default()
        },
        involved_object: regarding.clone(),
        reason: Some(reason.to_string()),
        message: Some(message),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        type_: Some(kind.as_str().to_string()),
        source: Some(source.clone()),
        reporting_component: source.component.clone(),
        reporting_instance: source.host.clone(),
        ..Event::default()
    }
}

fn event_object(event: &Event) -> String {
    let o = &event.involved_object;
    format!(
        "{}/{}/{}",
        o.kind.as_deref().unwrap_or(""),
        o.namespace.as_deref().unwrap_or(""),
        o.name.as_deref().unwrap_or("")
    )
}

/// What makes two Events "the same" (client-go's `getEventKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey(Vec<String>);

impl EventKey {
    fn of(event: &Event) -> EventKey {
        let o = &event.involved_object;
        let source = event.source.as_ref();
        let s = |v: Option<&String>| v.cloned().unwrap_or_default();
        EventKey(vec![
            s(source.and_then(|s| s.component.as_ref())),
            s(source.and_then(|s| s.host.as_ref())),
            s(o.api_version.as_ref()),
            s(o.kind.as_ref()),
            s(o.namespace.as_ref()),
            s(o.name.as_ref()),
            s(o.uid.as_ref()),
            s(o.field_path.as_ref()),
            s(event.type_.as_ref()),
            s(event.reason.as_ref()),
            s(event.message.as_ref()),
        ])
    }
}

/// What the writer does with a queued Event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Create,
    /// Bump the Event already written under `name`.
    Patch {
        namespace: String,
        name: String,
        count: i32,
    },
}

#[derive(Debug, Clone)]
struct Seen {
    namespace: String,
    name: String,
    count: i32,
    last: DateTime<Utc>,
    tick: u64,
}

/// The correlation cache: Events written recently, least recently used evicted first.
struct Correlator {
    capacity: usize,
    window: chrono::Duration,
    entries: HashMap<EventKey, Seen>,
    /// tick → key, oldest first: the LRU order.
    order: BTreeMap<u64, EventKey>,
    tick: u64,
}

impl Correlator {
    fn new(capacity: usize, window: Duration) -> Correlator {
        Correlator {
            capacity: capacity.max(1),
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    fn decide(&self, key: &EventKey, now: DateTime<Utc>) -> Decision {
        match self.entries.get(key) {
            Some(seen) if now.signed_duration_since(seen.last) <= self.window => Decision::Patch {
                namespace: seen.namespace.clone(),
                name: seen.name.clone(),
                count: seen.count.saturating_add(1),
            },
            _ => Decision::Create,
        }
    }

    /// Remembers an Event the server accepted (created, or patched to `count`).
    fn written(
        &mut self,
        key: EventKey,
        namespace: &str,
        name: &str,
        count: i32,
        at: DateTime<Utc>,
    ) {
        self.tick += 1;
        if let Some(old) = self.entries.get(&key) {
            self.order.remove(&old.tick);
        } else if self.entries.len() >= self.capacity {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        self.order.insert(self.tick, key.clone());
        self.entries.insert(
            key,
            Seen {
                namespace: namespace.to_string(),
                name: name.to_string(),
                count,
                last: at,
                tick: self.tick,
            },
        );
    }

    fn forget(&mut self, key: &EventKey) {
        if let Some(old) = self.entries.remove(key) {
            self.order.remove(&old.tick);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.order.len());
        self.entries.len()
    }
}

/// Why a write failed, as far as the writer cares.
#[derive(Debug)]
enum SinkError {
    /// The Event to patch is gone (expired or deleted): create a new one.
    NotFound,
    /// The server refused it (validation, admission, conflict): retrying will not help.
    Rejected(String),
    /// Not reached or not answered: retry.
    Transient(String),
}

/// Where Events go: the API server, or a fake in tests.
trait Sink: Send + Sync + 'static {
    fn create<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), SinkError>>;
    fn patch<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), SinkError>>;
}

struct ApiSink {
    client: kube::Client,
}

fn sink_error(e: kube::Error) -> SinkError {
    match e {
        kube::Error::Api(r) if r.code == 404 => SinkError::NotFound,
        kube::Error::Api(r) if r.code == 429 || r.code >= 500 => {
            SinkError::Transient(format!("{} ({})", r.message, r.code))
        }
        kube::Error::Api(r) => SinkError::Rejected(format!("{} ({})", r.message, r.code)),
        other => SinkError::Transient(other.to_string()),
    }
}

impl Sink for ApiSink {
    fn create<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let ns = event.metadata.namespace.as_deref().unwrap_or("default");
            let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
            api.create(&PostParams::default(), event)
                .await
                .map(|_| ())
                .map_err(sink_error)
        })
    }

    fn patch<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(sink_error)
        })
    }
}

/// The patch client-go sends for a repeat: count, lastTimestamp and message.
fn repeat_patch(count: i32, last: &Time, message: &str) -> serde_json::Value {
    serde_json::json!({
        "count": count,
        "lastTimestamp": last,
        "message": message,
    })
}

async fn write_events(mut rx: mpsc::Receiver<Queued>, sink: impl Sink, shared: Arc<Shared>) {
    let mut correlator = Correlator::new(CORRELATION_CACHE_ENTRIES, CORRELATION_WINDOW);
    while let Some(Queued { event, key }) = rx.recv().await {
        if !write_one(&sink, &shared, &mut correlator, event, key).await {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes one Event (create, or patch of an earlier one), retrying while the server cannot be
/// reached. False when it was dropped.
async fn write_one(
    sink: &impl Sink,
    shared: &Shared,
    correlator: &mut Correlator,
    event: Event,
    key: EventKey,
) -> bool {
    let now = event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(Utc::now);
    let mut decision = correlator.decide(&key, now);
    for attempt in 1..=MAX_TRIES_PER_EVENT {
        let leading = shared
            .leading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(leading) = leading {
            if leading.ensure().is_err() {
                tracing::debug!(object = %event_object(&event), "not leading: event dropped");
                return false;
            }
        }
        let result = match &decision {
            Decision::Create => sink.create(&event).await,
            Decision::Patch {
                namespace,
                name,
                count,
            } => {
                let last = event.last_timestamp.clone().unwrap_or(Time(now));
                let patch = repeat_patch(*count, &last, event.message.as_deref().unwrap_or(""));
                sink.patch(namespace, name, patch).await
            }
        };
        match (result, decision.clone()) {
            (Ok(()), Decision::Create) => {
                let ns = event.metadata.namespace.as_deref().unwrap_or("default");
                let name = event.metadata.name.as_deref().unwrap_or("");
                correlator.written(key, ns, name, 1, now);
                return true;
            }
            (
                Ok(()),
                Decision::Patch {
                    namespace,
                    name,
                    count,
                },
            ) => {
                correlator.written(key, &namespace, &name, count, now);
                return true;
            }
            (Err(SinkError::NotFound), Decision::Patch { .. }) => {
                // The Event we would bump has expired (the apiserver keeps Events for an hour).
                correlator.forget(&key);
                decision = Decision::Create;
            }
            (Err(SinkError::NotFound), _) => {
                tracing::warn!(object = %event_object(&event), "event's namespace not found: dropped");
                correlator.forget(&key);
                return false;
            }
            (Err(SinkError::Rejected(why)), _) => {
                tracing::warn!(object = %event_object(&event), reason = %why, "event rejected by the server: dropped");
                correlator.forget(&key);
                return false;
            }
            (Err(SinkError::Transient(e)), _) => {
                if attempt == MAX_TRIES_PER_EVENT {
                    break;
                }
                tracing::debug!(error = %e, attempt, "writing an event failed; will retry");
                tokio::time::sleep(RETRY_SLEEP).await;
            }
        }
    }
    tracing::warn!(object = %event_object(&event), "unable to write event: dropped after {MAX_TRIES_PER_EVENT} tries");
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn pod_ref(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some("ns1".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn source() -> EventSource {
        EventSource {
            component: Some("default-scheduler".into()),
            host: None,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid")
    }

    #[test]
    fn names_are_object_name_dot_sixteen_hex_digits() {
        assert_eq!(
            event_name("web-1", 0x17a2_b3c4_d5e6_f708),
            "web-1.17a2b3c4d5e6f708"
        );
        // Early timestamps are padded, so names always sort by time.
        assert_eq!(event_name("n", 255), "n.00000000000000ff");
    }

    #[test]
    fn cluster_scoped_objects_get_events_in_default() {
        let mut node = pod_ref("node-1");
        node.kind = Some("Node".into());
        node.namespace = None;
        assert_eq!(event_namespace(&node), "default");
        node.namespace = Some(String::new());
        assert_eq!(event_namespace(&node), "default");
        assert_eq!(event_namespace(&pod_ref("p")), "ns1");
    }

    #[test]
    fn make_event_fills_the_legacy_fields() {
        let src = EventSource {
            component: Some("kubelet".into()),
            host: Some("node-7".into()),
        };
        let e = make_event(
            &src,
            &pod_ref("p"),
            EventType::Warning,
            "BackOff",
            "restarting".into(),
            at(0),
            at(0).timestamp_nanos_opt().expect("in range"),
        );
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(
            v["metadata"]["name"],
            format!("p.{:016x}", at(0).timestamp_nanos_opt().expect("in range"))
        );
        assert_eq!(v["metadata"]["namespace"], "ns1");
        assert_eq!(v["involvedObject"]["uid"], "uid-p");
        assert_eq!(v["type"], "Warning");
        assert_eq!(v["reason"], "BackOff");
        assert_eq!(v["message"], "restarting");
        assert_eq!(v["count"], 1);
        assert_eq!(v["firstTimestamp"], v["lastTimestamp"]);
        assert_eq!(v["source"]["component"], "kubelet");
        assert_eq!(v["source"]["host"], "node-7");
        assert_eq!(v["reportingComponent"], "kubelet");
        assert_eq!(v["reportingInstance"], "node-7");
    }

    fn event(name: &str, reason: &str, message: &str, now: DateTime<Utc>) -> Event {
        make_event(
            &source(),
            &pod_ref(name),
            EventType::Normal,
            reason,
            message.into(),
            now,
            now.timestamp_nanos_opt().expect("in range"),
        )
    }

    #[test]
    fn the_key_separates_object_type_reason_and_message() {
        let base = EventKey::of(&event("p", "Scheduled", "m", at(0)));
        assert_eq!(base, EventKey::of(&event("p", "Scheduled", "m", at(5))));
        assert_ne!(base, EventKey::of(&event("q", "Scheduled", "m", at(0))));
        assert_ne!(base, EventKey::of(&event("p", "Failed", "m", at(0))));
        assert_ne!(base, EventKey::of(&event("p", "Scheduled", "m2", at(0))));
        let mut warning = event("p", "Scheduled", "m", at(0));
        warning.type_ = Some("Warning".into());
        assert_ne!(base, EventKey::of(&warning));
        let mut other_uid = event("p", "Scheduled", "m", at(0));
        other_uid.involved_object.uid = Some("recreated".into());
        assert_ne!(base, EventKey::of(&other_uid));
    }

    #[test]
    fn a_repeat_within_the_window_patches_the_first_event() {
        let mut c = Correlator::new(16, CORRELATION_WINDOW);
        let k = EventKey::of(&event("p", "R", "m", at(0)));
        assert_eq!(c.decide(&k, at(0)), Decision::Create);
        c.written(k.clone(), "ns1", "p.1", 1, at(0));
        let d = c.decide(&k, at(599));
        assert_eq!(
            d,
            Decision::Patch {
                namespace: "ns1".into(),
                name: "p.1".into(),
                count: 2
            }
        );
        c.written(k.clone(), "ns1", "p.1", 2, at(599));
        // The window runs from the last occurrence: still the same series 20 minutes in.
        assert!(matches!(
            c.decide(&k, at(1199)),
            Decision::Patch { count: 3, .. }
        ));
        // After ten quiet minutes a new Event starts.
        assert_eq!(c.decide(&k, at(599 + 601)), Decision::Create);
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
        let mut c = Correlator::new(3, CORRELATION_WINDOW);
        let keys: Vec<EventKey> = (0..4)
            .map(|i| EventKey::of(&event(&format!("p{i}"), "R", "m", at(0))))
            .collect();
        for k in &keys[..3] {
            c.written(k.clone(), "ns1", "x", 1, at(0));
        }
        // Touch p0 so that p1 is the least recently used.
        c.written(keys[0].clone(), "ns1", "x", 2, at(1));
        c.written(keys[3].clone(), "ns1", "x", 1, at(2));
        assert_eq!(c.len(), 3);
        assert_eq!(c.decide(&keys[1], at(3)), Decision::Create);
        assert!(matches!(
            c.decide(&keys[0], at(3)),
            Decision::Patch { count: 3, .. }
        ));
        assert!(matches!(c.decide(&keys[2], at(3)), Decision::Patch { .. }));
        assert!(matches!(c.decide(&keys[3], at(3)), Decision::Patch { .. }));
        c.forget(&keys[3]);
        assert_eq!(c.len(), 2);
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Create { name: String, count: i32 },
        Patch { name: String, count: i64 },
    }

    #[derive(Clone, Default)]
    struct FakeSink {
        calls: Arc<Mutex<Vec<Call>>>,
        /// Results to return before succeeding, in order.
        script: Arc<Mutex<Vec<SinkError>>>,
    }

    impl FakeSink {
        fn next(&self) -> Result<(), SinkError> {
            let mut s = self.script.lock().expect("lock");
            if s.is_empty() {
                Ok(())
            } else {
                Err(s.remove(0))
            }
        }
        fn calls(&self) -> Vec<Call> {
            self.calls.lock().expect("lock").clone()
        }
    }

    impl Sink for FakeSink {
        fn create<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), SinkError>> {
            Box::pin(async move {
                self.calls.lock().expect("lock").push(Call::Create {
                    name: event.metadata.name.clone().unwrap_or_default(),
                    count: event.count.unwrap_or(0),
                });
                self.next()
            })
        }
        fn patch<'a>(
            &'a self,
            _namespace: &'a str,
            name: &'a str,
            patch: serde_json::Value,
        ) -> BoxFuture<'a, Result<(), SinkError>> {
            Box::pin(async move {
                self.calls.lock().expect("lock").push(Call::Patch {
                    name: name.to_string(),
                    count: patch["count"].as_i64().unwrap_or(0),
                });
                self.next()
            })
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_patch_and_new_messages_create() {
        let sink = FakeSink::default();
        let r = Recorder::with_sink(sink.clone(), "default-scheduler", None);
        let p = pod_ref("web");
        r.record(
            &p,
            EventType::Warning,
            "FailedScheduling",
            "0/3 nodes".into(),
        );
        r.record(
            &p,
            EventType::Warning,
            "FailedScheduling",
            "0/3 nodes".into(),
        );
        r.record(
            &p,
            EventType::Warning,
            "FailedScheduling",
            "0/3 nodes".into(),
        );
        r.record(
            &p,
            EventType::Warning,
            "FailedScheduling",
            "0/4 nodes".into(),
        );
        settle().await;
        let calls = sink.calls();
        assert_eq!(calls.len(), 4, "{calls:?}");
        let Call::Create {
            name: first,
            count: 1,
        } = &calls[0]
        else {
            panic!("first write creates: {calls:?}")
        };
        assert!(first.starts_with("web.") && first.len() == "web.".len() + 16);
        assert_eq!(
            calls[1],
            Call::Patch {
                name: first.clone(),
                count: 2
            }
        );
        assert_eq!(
            calls[2],
            Call::Patch {
                name: first.clone(),
                count: 3
            }
        );
        let Call::Create {
            name: other,
            count: 1,
        } = &calls[3]
        else {
            panic!("a new message creates: {calls:?}")
        };
        assert_ne!(other, first);
        assert_eq!(r.dropped_total(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_event_is_created_again_and_rejections_are_dropped() {
        let sink = FakeSink::default();
        let r = Recorder::with_sink(sink.clone(), "kubelet", Some("n1".into()));
        let p = pod_ref("web");
        r.record(&p, EventType::Normal, "Pulled", "ok".into());
        settle().await;
        sink.script.lock().expect("lock").push(SinkError::NotFound);
        r.record(&p, EventType::Normal, "Pulled", "ok".into());
        settle().await;
        let calls = sink.calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(matches!(calls[1], Call::Patch { count: 2, .. }));
        assert!(matches!(calls[2], Call::Create { count: 1, .. }));

        sink.script
            .lock()
            .expect("lock")
            .push(SinkError::Rejected("invalid".into()));
        r.record(&pod_ref("other"), EventType::Normal, "X", "y".into());
        settle().await;
        assert_eq!(sink.calls().len(), 4, "a rejected event is not retried");
        assert_eq!(r.dropped_total(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unreachable_servers_are_retried_then_the_event_dropped() {
        let sink = FakeSink::default();
        let r = Recorder::with_sink(sink.clone(), "kubelet", None);
        sink.script
            .lock()
            .expect("lock")
            .extend((0..2).map(|_| SinkError::Transient("connection refused".into())));
        r.record(&pod_ref("a"), EventType::Normal, "X", "y".into());
        settle().await;
        assert_eq!(sink.calls().len(), 1);
        tokio::time::sleep(RETRY_SLEEP * 2 + Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(sink.calls().len(), 3, "third try succeeds");
        assert_eq!(r.dropped_total(), 0);

        sink.script.lock().expect("lock").extend(
            (0..MAX_TRIES_PER_EVENT).map(|_| SinkError::Transient("connection refused".into())),
        );
        r.record(&pod_ref("b"), EventType::Normal, "X", "y".into());
        tokio::time::sleep(RETRY_SLEEP * MAX_TRIES_PER_EVENT).await;
        settle().await;
        assert_eq!(sink.calls().len(), 3 + MAX_TRIES_PER_EVENT as usize);
        assert_eq!(r.dropped_total(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded() {
        let sink = FakeSink::default();
        let r = Recorder::with_sink(sink.clone(), "kubelet", None);
        // The writer cannot run until this task yields: everything past the bound is dropped.
        for i in 0..(QUEUE_CAPACITY + 5) {
            r.record(
                &pod_ref(&format!("p{i}")),
                EventType::Normal,
                "X",
                "y".into(),
            );
        }
        assert_eq!(r.dropped_total(), 5);
        settle().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..QUEUE_CAPACITY {
            tokio::task::yield_now().await;
        }
        assert_eq!(sink.calls().len(), QUEUE_CAPACITY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_recorder_bound_to_a_term_writes_nothing_after_it() {
        let sink = FakeSink::default();
        let leading = Leading::always();
        let r = Recorder::with_sink(sink.clone(), "replicaset-controller", None)
            .with_leading(leading.clone());
        r.record(
            &pod_ref("a"),
            EventType::Normal,
            "SuccessfulCreate",
            "x".into(),
        );
        settle().await;
        leading.end();
        r.record(
            &pod_ref("a"),
            EventType::Normal,
            "SuccessfulCreate",
            "y".into(),
        );
        settle().await;
        assert_eq!(sink.calls().len(), 1);
        assert_eq!(r.dropped_total(), 1);
    }

    #[test]
    fn names_stay_unique_within_one_nanosecond() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let r = Recorder::with_sink(FakeSink::default(), "x", None);
            let now = at(0);
            let a = r.unique_nanos(now);
            let b = r.unique_nanos(now);
            assert_eq!(b, a + 1);
        });
    }

    #[test]
    fn object_reference_takes_type_and_identity() {
        let pod = k8s_openapi::api::core::v1::Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            ..Default::default()
        };
        let r = object_reference(&pod);
        assert_eq!(r.api_version.as_deref(), Some("v1"));
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(r.name.as_deref(), Some("p"));
        assert_eq!(r.uid.as_deref(), Some("u"));
        assert_eq!(r.resource_version.as_deref(), Some("42"));
        let rs = k8s_openapi::api::apps::v1::ReplicaSet::default();
        assert_eq!(
            object_reference(&rs).api_version.as_deref(),
            Some("apps/v1")
        );
    }
}
