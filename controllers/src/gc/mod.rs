//! The garbage collector (kube's `pkg/controller/garbagecollector`, `garbage-collector-controller`
//! in `--controllers`, alias `garbagecollector`).
//!
//! Discovery names every resource that supports list, watch and delete (again every
//! [`RESYNC_PERIOD`], so kinds added later are covered — kube's deletable-resources resync); one
//! *monitor* per resource watches it into the dependency graph (`graph.rs`), through one bounded
//! channel read by a single graph task. The graph queues uids on two rate-limited work queues:
//! **attemptToDelete** — an object whose owners may all be gone is verified by a live GET of each
//! owner (by name, in the dependent's namespace, and uid) and deleted (Background, or Foreground
//! when an owner waits for its dependents and this object has its own; an object with some owners
//! alive loses its references to the absent ones), and an owner being deleted in the foreground
//! has its blocking dependents deleted, then its `foregroundDeletion` finalizer removed; and
//! **attemptToOrphan** — an owner being deleted with the `orphan` finalizer has its references
//! stripped from every dependent, then the finalizer removed. A dependent naming a namespaced
//! owner that lives in another namespace gets an `OwnerRefInvalidNamespace` Event. The decisions
//! are pure (`graph.rs`, `decide.rs`, `resources.rs`); this file does the reads and writes.
//!
//! Monitors watch metadata only (`PartialObjectMetadata`) when the API server serves it, and full
//! objects (`DynamicObject`) otherwise — decided once by a probe; either way the graph keeps
//! metadata only.
//!
//! Not done (kube does): the `/debug/controllers/garbagecollector/graph` dump, the
//! garbage_collector_* metrics, shared informers with other controllers, and per-group handling
//! of a partial discovery failure (a failed discovery keeps the previous set whole).

mod absent;
mod decide;
mod graph;
mod identity;
mod resources;

#[cfg(test)]
mod graph_tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::discovery::{ApiResource, Scope};
use kube::runtime::watcher::{self, metadata_watcher, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Discovery};
use mainstay_component::events::{EventType, Recorder};
use mainstay_component::Leading;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::util::queue::WorkQueue;
use crate::util::{api_code, is_conflict, is_not_found, supervise, write_with_retry};
use crate::{Error, Result};

use absent::AbsentOwners;
use decide::{Action, Classified, Foreground, OwnerLookup, Propagation};
use graph::{Change, ChangeKind, Effects, Graph, ItemView};
use identity::{Identity, Meta, FINALIZER_FOREGROUND, FINALIZER_ORPHAN};
use resources::{Found, Mapping, Resources};

/// The Event source and the controller's name in `--controllers`.
pub const CONTROLLER_NAME: &str = "garbage-collector-controller";

/// How often discovery is asked again for deletable resources (kube-controller-manager's 30 s).
pub const RESYNC_PERIOD: Duration = Duration::from_secs(30);

/// How long the workers wait for the monitors' first lists before collecting anyway (kube
/// proceeds after its initial sync timeout too).
pub const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Changes waiting for the graph task (kube's graphChanges queue); monitors wait when it is full.
pub const GRAPH_CHANGES_CAPACITY: usize = 4096;

/// The pause before asking again when the first probe or discovery failed.
const PROBE_RETRY: Duration = Duration::from_secs(1);

/// Tries of the finalizer removal on conflicts (client-go's `retry.DefaultBackoff.Steps`).
const FINALIZER_CONFLICT_TRIES: u32 = 5;

/// What a worker does with its key afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Forget,
    Requeue,
}

struct Gc {
    client: Client,
    leading: Leading,
    recorder: Recorder,
    graph: Mutex<Graph>,
    absent: Mutex<AbsentOwners>,
    resources: RwLock<Resources>,
    /// The API server answers `as=PartialObjectMetadata` (decided by the first probe).
    metadata_only: AtomicBool,
    attempt_to_delete: WorkQueue,
    attempt_to_orphan: WorkQueue,
    changes: mpsc::Sender<Change>,
}

/// Runs the garbage collector with `workers` workers per queue until `leading` is lost.
pub async fn run(client: Client, workers: usize, leading: Leading) -> Result<()> {
    let recorder =
        Recorder::new(client.clone(), CONTROLLER_NAME, None).with_leading(leading.clone());
    let (changes, changes_rx) = mpsc::channel(GRAPH_CHANGES_CAPACITY);
    let gc = Arc::new(Gc {
        client,
        leading: leading.clone(),
        recorder,
        graph: Mutex::new(Graph::new()),
        absent: Mutex::new(AbsentOwners::default()),
        resources: RwLock::new(Resources::default()),
        metadata_only: AtomicBool::new(false),
        attempt_to_delete: WorkQueue::default(),
        attempt_to_orphan: WorkQueue::default(),
        changes,
    });
    tracing::info!(controller = CONTROLLER_NAME, "starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(process_graph_changes(gc.clone(), changes_rx));
    let (synced_tx, mut synced_rx) = tokio::sync::watch::channel(false);
    tasks.spawn(sync_monitors(gc.clone(), synced_tx));

    let synced = async {
        let _ = tokio::time::timeout(INITIAL_SYNC_TIMEOUT, synced_rx.wait_for(|s| *s)).await;
    };
    tokio::select! {
        _ = leading.lost() => {}
        _ = synced => {
            tracing::info!(
                controller = CONTROLLER_NAME,
                nodes = gc.lock_graph().node_count(),
                workers = workers.max(1),
                "proceeding to collect garbage"
            );
            for _ in 0..workers.max(1) {
                tasks.spawn(delete_worker(gc.clone()));
                tasks.spawn(orphan_worker(gc.clone()));
            }
            supervise(&mut tasks, &leading, CONTROLLER_NAME).await;
        }
    }
    gc.attempt_to_delete.shut_down();
    gc.attempt_to_orphan.shut_down();
    tasks.shutdown().await;
    tracing::info!(controller = CONTROLLER_NAME, "stopped");
    Ok(())
}

impl Gc {
    fn lock_graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_absent(&self) -> MutexGuard<'_, AbsentOwners> {
        self.absent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mapping(&self, api_version: &str, kind: &str) -> Result<Mapping> {
        self.resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .mapping(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                // kube's restMappingError: retried, discovery may not know the kind yet.
                Error::Invalid(format!(
                    "unable to get REST mapping for {kind}/{api_version}."
                ))
            })
    }

    fn api(&self, mapping: &Mapping, namespace: &str) -> Api<DynamicObject> {
        if mapping.namespaced && !namespace.is_empty() {
            Api::namespaced_with(self.client.clone(), namespace, &mapping.resource)
        } else {
            Api::all_with(self.client.clone(), &mapping.resource)
        }
    }

    /// The live metadata of the object `identity` names (by name), `None` on 404.
    async fn get(&self, identity: &Identity) -> Result<Option<Meta>> {
        let mapping = self.mapping(&identity.api_version, &identity.kind)?;
        self.get_in(&mapping, &identity.namespace, &identity.name)
            .await
    }

    async fn get_in(&self, mapping: &Mapping, namespace: &str, name: &str) -> Result<Option<Meta>> {
        let api = self.api(mapping, namespace);
        let meta = if self.metadata_only.load(Ordering::Relaxed) {
            api.get_metadata_opt(name).await?.map(|p| p.metadata)
        } else {
            api.get_opt(name).await?.map(|o| o.metadata)
        };
        let r = &mapping.resource;
        Ok(meta.map(|m| Meta::from_object_meta(&r.api_version, &r.kind, &m)))
    }

    fn apply(&self, fx: Effects) {
        if !fx.absent.is_empty() {
            let mut absent = self.lock_absent();
            for identity in fx.absent {
                absent.add(identity);
            }
        }
        for uid in &fx.attempt_to_delete {
            self.attempt_to_delete.add(uid);
        }
        for uid in &fx.attempt_to_delete_rate_limited {
            self.attempt_to_delete.add_rate_limited(uid);
        }
        for uid in &fx.attempt_to_orphan {
            self.attempt_to_orphan.add(uid);
        }
        for invalid in fx.invalid_references {
            let d = &invalid.dependent;
            tracing::info!(item = %d, owner = %invalid.owner, "item references an owner but does not match namespaces");
            let regarding = ObjectReference {
                api_version: Some(d.api_version.clone()),
                kind: Some(d.kind.clone()),
                namespace: (!d.namespace.is_empty()).then(|| d.namespace.clone()),
                name: Some(d.name.clone()),
                uid: Some(d.uid.clone()),
                ..Default::default()
            };
            self.recorder.record(
                &regarding,
                EventType::Warning,
                graph::InvalidOwnerReference::REASON,
                invalid.message(),
            );
        }
    }

    /// Tells the graph an object the API says is absent is gone (kube's
    /// `enqueueVirtualDeleteEvent`).
    async fn virtual_delete(&self, identity: &Identity) {
        let change = Change {
            kind: ChangeKind::Delete,
            is_virtual: true,
            object: Meta {
                identity: identity.clone(),
                ..Default::default()
            },
        };
        let _ = self.changes.send(change).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The graph task and the monitors.

async fn process_graph_changes(gc: Arc<Gc>, mut changes: mpsc::Receiver<Change>) {
    while let Some(change) = changes.recv().await {
        let fx = gc.lock_graph().process(change);
        gc.apply(fx);
    }
}

/// Discovery, the metadata probe, and one monitor per deletable resource, again every
/// [`RESYNC_PERIOD`]. Monitors are tasks of this task's own set: they stop with it.
async fn sync_monitors(gc: Arc<Gc>, synced: tokio::sync::watch::Sender<bool>) {
    let mut monitors: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<String, (AbortHandle, Arc<AtomicBool>)> = HashMap::new();
    let mut probed = false;
    let mut reported_synced = false;
    let mut tick = tokio::time::interval(RESYNC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        if !probed {
            match probe_metadata(&gc.client).await {
                Some(only) => {
                    gc.metadata_only.store(only, Ordering::Relaxed);
                    probed = true;
                    tracing::info!(
                        controller = CONTROLLER_NAME,
                        metadata_only = only,
                        "watching {}",
                        if only {
                            "metadata only"
                        } else {
                            "full objects: the API server does not serve PartialObjectMetadata"
                        }
                    );
                }
                None => {
                    tokio::time::sleep(PROBE_RETRY).await;
                    continue;
                }
            }
        }
        let resources = match discover(&gc.client).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(controller = CONTROLLER_NAME, error = %e, "discovery failed; keeping the monitored resources");
                if running.is_empty() {
                    tokio::time::sleep(PROBE_RETRY).await;
                } else {
                    wait_for_tick(&mut tick, &mut monitors).await;
                }
                continue;
            }
        };
        let wanted: BTreeMap<String, Mapping> = resources.monitored().clone();
        *gc.resources.write().unwrap_or_else(|e| e.into_inner()) = resources;
        let stale: Vec<String> = running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in stale {
            if let Some((handle, _)) = running.remove(&key) {
                handle.abort();
                tracing::info!(controller = CONTROLLER_NAME, resource = %key, "monitor stopped");
            }
        }
        for (key, mapping) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let flag = Arc::new(AtomicBool::new(false));
            let handle = monitors.spawn(monitor(gc.clone(), mapping, flag.clone()));
            tracing::debug!(controller = CONTROLLER_NAME, resource = %key, "monitor started");
            running.insert(key, (handle, flag));
        }
        if !reported_synced {
            // Wait for this round's monitors (bounded by the caller's initial sync timeout).
            let flags: Vec<Arc<AtomicBool>> = running.values().map(|(_, f)| f.clone()).collect();
            let all = async {
                while !flags.iter().all(|f| f.load(Ordering::Relaxed)) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            if tokio::time::timeout(INITIAL_SYNC_TIMEOUT, all)
                .await
                .is_ok()
            {
                tracing::info!(
                    controller = CONTROLLER_NAME,
                    monitors = running.len(),
                    "all resource monitors have synced"
                );
            }
            reported_synced = true;
            synced.send_replace(true);
        }
        wait_for_tick(&mut tick, &mut monitors).await;
    }
}

/// Waits for the next resync, reaping monitors that ended meanwhile (each logs why).
async fn wait_for_tick(tick: &mut tokio::time::Interval, monitors: &mut JoinSet<()>) {
    loop {
        tokio::select! {
            _ = tick.tick() => return,
            Some(_) = monitors.join_next(), if !monitors.is_empty() => {}
        }
    }
}

/// Whether the API server serves `as=PartialObjectMetadataList` (`None`: unknown yet).
async fn probe_metadata(client: &Client) -> Option<bool> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Some(true),
        Err(e) if api_code(&e) == Some(406) => Some(false),
        Err(e) => {
            tracing::warn!(controller = CONTROLLER_NAME, error = %e, "metadata probe failed; retrying");
            None
        }
    }
}

async fn discover(client: &Client) -> Result<Resources> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut found = Vec::new();
    for group in discovery.groups() {
        let preferred = group.preferred_version_or_latest().to_string();
        for version in group.versions() {
            for (resource, caps) in group.versioned_resources(version) {
                found.push(Found {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                    verbs: caps.operations.clone(),
                    preferred: version == preferred,
                });
            }
        }
    }
    Ok(Resources::from_found(found))
}

type MetaEvents = BoxStream<'static, std::result::Result<Event<ObjectMeta>, watcher::Error>>;

fn meta_events(gc: &Gc, resource: &ApiResource) -> MetaEvents {
    let api: Api<DynamicObject> = Api::all_with(gc.client.clone(), resource);
    let config = watcher::Config::default();
    if gc.metadata_only.load(Ordering::Relaxed) {
        metadata_watcher(api, config)
            .default_backoff()
            .map_ok(|e| to_meta_event(e, |p| p.metadata))
            .boxed()
    } else {
        watcher(api, config)
            .default_backoff()
            .map_ok(|e| to_meta_event(e, |o| o.metadata))
            .boxed()
    }
}

fn to_meta_event<K>(e: Event<K>, meta: impl Fn(K) -> ObjectMeta) -> Event<ObjectMeta> {
    match e {
        Event::Apply(o) => Event::Apply(meta(o)),
        Event::Delete(o) => Event::Delete(meta(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(meta(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// Watches one resource into the graph. Keeps the uid → (namespace, name) of what it has seen,
/// so that objects gone during a watch gap come out as deletes after the re-list.
async fn monitor(gc: Arc<Gc>, mapping: Mapping, synced: Arc<AtomicBool>) {
    let resource = mapping.resource;
    let mut events = meta_events(&gc, &resource);
    let mut known: HashMap<String, (String, String)> = HashMap::new();
    let mut relisted: Option<HashSet<String>> = None;
    let meta_of = |m: &ObjectMeta| Meta::from_object_meta(&resource.api_version, &resource.kind, m);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(controller = CONTROLLER_NAME, resource = %resources::key(&resource), error = %e, "watch failed; retrying");
                continue;
            }
        };
        let mut out: Vec<Change> = Vec::new();
        match event {
            Event::Apply(m) | Event::InitApply(m) => {
                let meta = meta_of(&m);
                let uid = meta.identity.uid.clone();
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(uid.clone());
                }
                known.insert(
                    uid,
                    (meta.identity.namespace.clone(), meta.identity.name.clone()),
                );
                out.push(Change {
                    kind: ChangeKind::Upsert,
                    is_virtual: false,
                    object: meta,
                });
            }
            Event::Delete(m) => {
                let meta = meta_of(&m);
                known.remove(&meta.identity.uid);
                out.push(Change {
                    kind: ChangeKind::Delete,
                    is_virtual: false,
                    object: meta,
                });
            }
            Event::Init => relisted = Some(HashSet::new()),
            Event::InitDone => {
                let seen = relisted.take().unwrap_or_default();
                let gone: Vec<String> = known
                    .keys()
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    let Some((namespace, name)) = known.remove(&uid) else {
                        continue;
                    };
                    out.push(Change {
                        kind: ChangeKind::Delete,
                        is_virtual: false,
                        object: Meta {
                            identity: Identity {
                                kind: resource.kind.clone(),
                                api_version: resource.api_version.clone(),
                                namespace,
                                name,
                                uid,
                            },
                            ..Default::default()
                        },
                    });
                }
                synced.store(true, Ordering::Relaxed);
            }
        }
        for change in out {
            if gc.changes.send(change).await.is_err() {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// attemptToDelete.

async fn delete_worker(gc: Arc<Gc>) {
    while let Some(uid) = gc.attempt_to_delete.get().await {
        let outcome = match attempt_to_delete(&gc, &uid).await {
            Ok(o) => o,
            Err(Error::NotLeading(_)) => Outcome::Forget,
            Err(e) => {
                tracing::warn!(controller = CONTROLLER_NAME, uid = %uid, error = %e, "error syncing item");
                Outcome::Requeue
            }
        };
        match outcome {
            Outcome::Forget => gc.attempt_to_delete.forget(&uid),
            Outcome::Requeue => gc.attempt_to_delete.add_rate_limited(&uid),
        }
        gc.attempt_to_delete.done(&uid);
    }
}

/// kube's `attemptToDeleteWorker` and `attemptToDeleteItem`.
async fn attempt_to_delete(gc: &Gc, uid: &str) -> Result<Outcome> {
    let Some(item) = gc.lock_graph().view(uid) else {
        return Ok(Outcome::Forget);
    };
    // "Being deleted" is a one-way trip: wait for the final deletion.
    if item.being_deleted && !item.deleting_dependents {
        return Ok(Outcome::Forget);
    }
    let latest = match gc.get(&item.identity).await? {
        Some(l) if l.identity.uid == item.identity.uid => l,
        // Not found, or a new object of the same name: this one is gone.
        _ => {
            gc.virtual_delete(&item.identity).await;
            return Ok(Outcome::Forget);
        }
    };
    if item.deleting_dependents {
        process_deleting_dependents(gc, &item).await?;
        return Ok(observed_or_requeue(&item));
    }
    if latest.owners.is_empty() {
        return Ok(observed_or_requeue(&item));
    }
    let mut classified = Classified::default();
    for reference in &latest.owners {
        match owner_state(gc, &item.identity, reference).await? {
            Some(state) => classified.push(reference.clone(), state),
            None => {
                tracing::info!(item = %item.identity, owner = %reference.uid, "item is cluster-scoped, but refers to a namespaced owner");
                return Ok(Outcome::Forget);
            }
        }
    }
    let has_dependents = !item.dependents.is_empty();
    let dependent_deleting = item.dependents.iter().any(|d| d.deleting_dependents);
    match decide::decide(&latest, &classified, has_dependents, dependent_deleting) {
        Action::Keep => {}
        Action::RemoveReferences { owner_uids } => {
            tracing::info!(item = %item.identity, owners = ?owner_uids, "removing dangling and waiting owner references");
            let smp = decide::delete_references_strategic(uid, &owner_uids);
            patch(gc, &item.identity, smp, |l| {
                decide::delete_references_merge(l, &owner_uids)
            })
            .await?;
        }
        Action::DeleteForeground { unblock_first } => {
            if unblock_first {
                let smp = decide::unblock_references_strategic(uid, &latest.owners);
                patch(gc, &item.identity, smp, decide::unblock_references_merge).await?;
            }
            tracing::info!(item = %item.identity, "an owner waits for its dependents: deleting in the foreground");
            if !delete(gc, &latest, Propagation::Foreground).await? {
                gc.virtual_delete(&item.identity).await;
                return Ok(Outcome::Forget);
            }
        }
        Action::Delete(policy) => {
            tracing::info!(item = %item.identity, propagation = policy.as_str(), "deleting item");
            if !delete(gc, &latest, policy).await? {
                gc.virtual_delete(&item.identity).await;
                return Ok(Outcome::Forget);
            }
        }
    }
    Ok(observed_or_requeue(&item))
}

/// A virtual item that exists is looked at again until a watch has seen it (kube #56121).
fn observed_or_requeue(item: &ItemView) -> Outcome {
    if item.is_virtual {
        Outcome::Requeue
    } else {
        Outcome::Forget
    }
}

/// kube's `processDeletingDependentsItem`.
async fn process_deleting_dependents(gc: &Gc, item: &ItemView) -> Result<()> {
    let blocking: Vec<(String, bool)> = item
        .blocking_dependents()
        .iter()
        .map(|d| (d.uid.clone(), d.deleting_dependents))
        .collect();
    match decide::foreground(&blocking) {
        Foreground::RemoveFinalizer => {
            tracing::info!(item = %item.identity, "removing the foregroundDeletion finalizer");
            remove_finalizer(gc, &item.identity, FINALIZER_FOREGROUND).await
        }
        Foreground::DeleteDependents(uids) => {
            for u in uids {
                gc.attempt_to_delete.add(&u);
            }
            Ok(())
        }
    }
}

/// kube's `isDangling` and `classifyReferences` for one reference; `None` for a cluster-scoped
/// item naming a namespaced owner.
async fn owner_state(
    gc: &Gc,
    item: &Identity,
    reference: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<Option<decide::OwnerState>> {
    let mut key = Identity::of_owner(reference, "");
    if gc.lock_absent().has(&key) {
        return Ok(Some(decide::OwnerState::Dangling));
    }
    key.namespace = item.namespace.clone();
    if gc.lock_absent().has(&key) {
        return Ok(Some(decide::OwnerState::Dangling));
    }
    let mapping = gc.mapping(&reference.api_version, &reference.kind)?;
    if !mapping.namespaced {
        key.namespace.clear();
    }
    let namespace = match decide::owner_lookup(&item.namespace, mapping.namespaced) {
        OwnerLookup::NamespacedOwnerOfClusterScopedItem => return Ok(None),
        OwnerLookup::Get { namespace } => namespace.unwrap_or_default(),
    };
    let live = gc.get_in(&mapping, &namespace, &reference.name).await?;
    let state = decide::owner_state(reference, live.as_ref());
    if state == decide::OwnerState::Dangling {
        gc.lock_absent().add(key);
    }
    Ok(Some(state))
}

/// kube's `deleteObject`: preconditions on uid and resourceVersion; on a conflict, again with
/// the uid only when the owner references did not change. `false` when the object is gone.
async fn delete(gc: &Gc, latest: &Meta, policy: Propagation) -> Result<bool> {
    let identity = &latest.identity;
    let mapping = gc.mapping(&identity.api_version, &identity.kind)?;
    let api = gc.api(&mapping, &identity.namespace);
    let params = |resource_version: Option<String>| DeleteParams {
        propagation_policy: Some(match policy {
            Propagation::Orphan => PropagationPolicy::Orphan,
            Propagation::Background => PropagationPolicy::Background,
            Propagation::Foreground => PropagationPolicy::Foreground,
        }),
        preconditions: Some(Preconditions {
            uid: Some(identity.uid.clone()),
            resource_version,
        }),
        ..Default::default()
    };
    let rv = (!latest.resource_version.is_empty()).then(|| latest.resource_version.clone());
    let guarded = params(rv.clone());
    let first = write_with_retry(&gc.leading, || api.delete(&identity.name, &guarded)).await;
    let result = match first {
        Err(Error::Kube(e)) if is_conflict(&e) && rv.is_some() => {
            match gc
                .get_in(&mapping, &identity.namespace, &identity.name)
                .await?
            {
                Some(live) if decide::retry_delete_without_version(latest, &live) => {
                    let uid_only = params(None);
                    write_with_retry(&gc.leading, || api.delete(&identity.name, &uid_only)).await
                }
                _ => Err(Error::Kube(e)),
            }
        }
        other => other,
    };
    match result {
        Ok(_) => Ok(true),
        Err(Error::Kube(e)) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// kube's `patch`: a strategic merge patch, or (415: the resource has none, e.g. a custom
/// resource) the JSON merge patch `merge` builds from the object as read now. 404 is success:
/// there is nothing left to patch.
async fn patch(
    gc: &Gc,
    identity: &Identity,
    smp: Value,
    merge: impl Fn(&Meta) -> Value,
) -> Result<()> {
    let mapping = gc.mapping(&identity.api_version, &identity.kind)?;
    let api = gc.api(&mapping, &identity.namespace);
    let pp = PatchParams::default();
    let strategic = Patch::Strategic(smp);
    let r = write_with_retry(&gc.leading, || api.patch(&identity.name, &pp, &strategic)).await;
    let r = match r {
        Err(Error::Kube(e)) if api_code(&e) == Some(415) => {
            let Some(latest) = gc
                .get_in(&mapping, &identity.namespace, &identity.name)
                .await?
            else {
                return Ok(());
            };
            let body = Patch::Merge(merge(&latest));
            write_with_retry(&gc.leading, || api.patch(&identity.name, &pp, &body)).await
        }
        other => other,
    };
    match r {
        Ok(_) => Ok(()),
        Err(Error::Kube(e)) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// kube's `removeFinalizer`: read, drop the finalizer, merge-patch with the resourceVersion read;
/// again on a conflict, up to [`FINALIZER_CONFLICT_TRIES`] times.
async fn remove_finalizer(gc: &Gc, identity: &Identity, finalizer: &str) -> Result<()> {
    let mapping = gc.mapping(&identity.api_version, &identity.kind)?;
    let api = gc.api(&mapping, &identity.namespace);
    for _ in 0..FINALIZER_CONFLICT_TRIES {
        let Some(latest) = gc
            .get_in(&mapping, &identity.namespace, &identity.name)
            .await?
        else {
            return Ok(());
        };
        if latest.identity.uid != identity.uid {
            return Ok(());
        }
        let Some(body) = decide::remove_finalizer_patch(&latest, finalizer) else {
            return Ok(());
        };
        let pp = PatchParams::default();
        let body = Patch::Merge(body);
        let r = write_with_retry(&gc.leading, || api.patch(&identity.name, &pp, &body)).await;
        match r {
            Ok(_) => return Ok(()),
            Err(Error::Kube(e)) if is_not_found(&e) => return Ok(()),
            Err(Error::Kube(e)) if is_conflict(&e) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Invalid(format!(
        "updateMaxRetries({FINALIZER_CONFLICT_TRIES}) has reached. The garbage collector will retry later for owner {identity}"
    )))
}

// ---------------------------------------------------------------------------------------------
// attemptToOrphan.

async fn orphan_worker(gc: Arc<Gc>) {
    while let Some(uid) = gc.attempt_to_orphan.get().await {
        let outcome = match attempt_to_orphan(&gc, &uid).await {
            Ok(o) => o,
            Err(Error::NotLeading(_)) => Outcome::Forget,
            Err(e) => {
                tracing::warn!(controller = CONTROLLER_NAME, uid = %uid, error = %e, "orphaning dependents failed");
                Outcome::Requeue
            }
        };
        match outcome {
            Outcome::Forget => gc.attempt_to_orphan.forget(&uid),
            Outcome::Requeue => gc.attempt_to_orphan.add_rate_limited(&uid),
        }
        gc.attempt_to_orphan.done(&uid);
    }
}

/// Writes in flight while one owner's dependents are orphaned (kube starts one goroutine per
/// dependent and relies on its client's rate limit; kube-rs has none).
const ORPHAN_PATCHES_IN_FLIGHT: usize = 16;

/// kube's `attemptToOrphanWorker`: strip the references to the owner from every dependent the
/// graph knows, then remove the `orphan` finalizer.
async fn attempt_to_orphan(gc: &Gc, uid: &str) -> Result<Outcome> {
    let Some(owner) = gc.lock_graph().view(uid) else {
        return Ok(Outcome::Forget);
    };
    let owner_uids = vec![owner.identity.uid.clone()];
    let results: Vec<Result<()>> = futures::stream::iter(owner.dependents.clone())
        .map(|dep: graph::DependentView| {
            let smp = decide::delete_references_strategic(&dep.uid, &owner_uids);
            let owner_uids = owner_uids.clone();
            async move {
                patch(gc, &dep.identity, smp, move |l| {
                    decide::delete_references_merge(l, &owner_uids)
                })
                .await
            }
        })
        .buffer_unordered(ORPHAN_PATCHES_IN_FLIGHT)
        .collect()
        .await;
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if !errors.is_empty() {
        return Err(Error::Invalid(format!(
            "failed to orphan dependents of owner {}, got errors: [{}]",
            owner.identity,
            errors.join(", ")
        )));
    }
    remove_finalizer(gc, &owner.identity, FINALIZER_ORPHAN).await?;
    Ok(Outcome::Forget)
}
