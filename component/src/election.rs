//! Lease leader election with client-go's semantics (`tools/leaderelection`) on a
//! `coordination.k8s.io/v1` Lease.
//!
//! A candidate tries to acquire every retry period (jittered by client-go's factor 1.2: the wait is
//! `retry + rand·1.2·retry`); the leader renews every retry period. Whether another holder's lease
//! has expired is judged by **local observation time**, never by the record's `renewTime`: a
//! candidate takes over only when the record it sees has not changed for a lease duration since
//! it first saw it, so clocks need not agree, only run at the same rate. Every write is a
//! compare-and-swap on `resourceVersion`.
//!
//! Each successful renewal extends the [`Leading`] term to the moment its request was *sent* plus
//! the renew deadline. The record that request wrote reached the server after it was sent, so any
//! other candidate saw it change after that, and waits a lease duration (> renew deadline) more:
//! the term ends before anyone else can hold the lease. When no renewal succeeds within the renew
//! deadline the term ends and [`run_elected`] returns [`Error::LeadershipLost`] (kube's components
//! exit then). On shutdown the leader releases the lease as client-go's `ReleaseOnCancel` does, so
//! another candidate takes over at its next attempt.
//!
//! Beyond client-go, a waiting candidate also *watches* the Lease when the lock offers it
//! ([`LeaseLock::subscribe`]; [`ApiLeaseLock`] does): it sees each renewal when it is written
//! rather than at its next poll, and it wakes when the observed lease runs out instead of at its
//! next jittered retry. Both only make its observation more recent, never older, so the rule
//! above is unchanged; what changes is the takeover time after a leader dies: at most a lease
//! duration after the dead leader's last renewal (plus the watch's delay), where client-go's
//! polling can add up to two jittered retry periods (2 × 4.4 s with kube's defaults).
//!
//! The decisions (`decide`, `lease_valid`, `renewal`, `released`, `newer`) are pure; [`LeaseLock`] is the
//! only I/O, implemented on `Api<Lease>` by [`ApiLeaseLock`] and by an in-memory fake in tests.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Error;
use crate::leading::Leading;
use crate::metrics::{Gauge, Metrics};

/// client-go's `JitterFactor`.
pub const JITTER_FACTOR: f64 = 1.2;

/// Where and how to campaign.
#[derive(Clone)]
pub struct ElectionConfig {
    /// Namespace of the Lease (`kube-system` for the scheduler and the controller-manager).
    pub namespace: String,
    /// Name of the Lease (`kube-scheduler`, `kube-controller-manager`).
    pub name: String,
    /// This candidate's `holderIdentity`; unique per process.
    pub identity: String,
    /// How long others wait, after last seeing the record change, before taking over.
    /// Whole seconds (the Lease stores seconds).
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
    /// Where `leader_election_master_status{name}` is exported, if anywhere.
    pub metrics: Option<Metrics>,
}

impl ElectionConfig {
    /// kube's defaults: lease 15 s, renew deadline 10 s, retry 2 s, identity [`default_identity`].
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ElectionConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            metrics: None,
        }
    }

    /// client-go's checks in `NewLeaderElector`, plus whole seconds for the lease duration.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::ElectionConfig(m.to_string()));
        if self.lease_duration.is_zero() {
            return bad("leaseDuration must be greater than zero");
        }
        if self.renew_deadline.is_zero() {
            return bad("renewDeadline must be greater than zero");
        }
        if self.retry_period.is_zero() {
            return bad("retryPeriod must be greater than zero");
        }
        if self.lease_duration.subsec_nanos() != 0
            || self.lease_duration.as_secs() > i32::MAX as u64
        {
            return bad("leaseDuration must be a whole number of seconds");
        }
        if self.lease_duration <= self.renew_deadline {
            return bad("leaseDuration must be greater than renewDeadline");
        }
        if self.renew_deadline <= self.retry_period.mul_f64(JITTER_FACTOR) {
            return bad("renewDeadline must be greater than retryPeriod*JitterFactor");
        }
        if self.identity.is_empty() {
            return bad("Lock identity is empty");
        }
        if self.namespace.is_empty() || self.name.is_empty() {
            return bad("lease namespace and name must not be empty");
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `<hostname>_<uuid v4>`: kube's components add the uuid "so that two processes on the same
/// host don't accidentally both become active".
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}_{}", uuid_v4())
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The election fields of a Lease (client-go's `LeaderElectionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    pub holder_identity: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<DateTime<Utc>>,
    pub renew_time: Option<DateTime<Utc>>,
    pub lease_transitions: i32,
}

/// A record as read, with the `resourceVersion` to compare-and-swap against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedRecord {
    pub record: LeaseRecord,
    pub resource_version: String,
}

/// The Lease as election sees it.
pub trait LeaseLock: Send + Sync {
    /// `namespace/name`, for logs.
    fn describe(&self) -> String;
    /// The current record; `None` when the Lease does not exist.
    fn get(&self) -> BoxFuture<'_, Result<Option<VersionedRecord>, Error>>;
    /// Creates the Lease; [`Error::Conflict`] when it exists. Returns the new resourceVersion.
    fn create<'a>(&'a self, record: &'a LeaseRecord) -> BoxFuture<'a, Result<String, Error>>;
    /// Replaces the record if the Lease is still at `resource_version`, else [`Error::Conflict`].
    /// Returns the new resourceVersion.
    fn replace<'a>(
        &'a self,
        record: &'a LeaseRecord,
        resource_version: &'a str,
    ) -> BoxFuture<'a, Result<String, Error>>;
    /// The record as it changes (`None` while the Lease does not exist), if this lock can watch;
    /// the watch ends when the receiver is dropped.
    fn subscribe(&self) -> Option<watch::Receiver<Option<VersionedRecord>>> {
        None
    }
}

/// [`LeaseLock`] on `coordination.k8s.io/v1` Leases through the API server.
pub struct ApiLeaseLock {
    api: Api<Lease>,
    namespace: String,
    name: String,
    /// The Lease last read or written: a replace keeps its other fields (labels, annotations,
    /// spec.strategy, spec.preferredHolder), as client-go's `LeaseLock.Update` does.
    last: Mutex<Option<Lease>>,
}

impl ApiLeaseLock {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> ApiLeaseLock {
        ApiLeaseLock {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            last: Mutex::new(None),
        }
    }

    fn remember(&self, lease: &Lease) -> String {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease.clone());
        lease.metadata.resource_version.clone().unwrap_or_default()
    }

    fn lock_error(&self, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(r) if r.code == 409 => Error::Conflict(self.describe()),
            other => Error::Kube(other),
        }
    }
}

fn record_of(spec: Option<&LeaseSpec>) -> LeaseRecord {
    let Some(s) = spec else {
        return LeaseRecord::default();
    };
    LeaseRecord {
        holder_identity: s.holder_identity.clone().unwrap_or_default(),
        lease_duration_seconds: s.lease_duration_seconds.unwrap_or(0),
        acquire_time: s.acquire_time.as_ref().map(|t| t.0),
        renew_time: s.renew_time.as_ref().map(|t| t.0),
        lease_transitions: s.lease_transitions.unwrap_or(0),
    }
}

fn write_record(spec: &mut LeaseSpec, r: &LeaseRecord) {
    spec.holder_identity = Some(r.holder_identity.clone());
    spec.lease_duration_seconds = Some(r.lease_duration_seconds);
    spec.acquire_time = r.acquire_time.map(MicroTime);
    spec.renew_time = r.renew_time.map(MicroTime);
    spec.lease_transitions = Some(r.lease_transitions);
}

impl LeaseLock for ApiLeaseLock {
    fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn get(&self) -> BoxFuture<'_, Result<Option<VersionedRecord>, Error>> {
        Box::pin(async move {
            let lease = self
                .api
                .get_opt(&self.name)
                .await
                .map_err(|e| self.lock_error(e))?;
            Ok(lease.map(|lease| {
                let resource_version = self.remember(&lease);
                VersionedRecord {
                    record: record_of(lease.spec.as_ref()),
                    resource_version,
                }
            }))
        })
    }

    fn create<'a>(&'a self, record: &'a LeaseRecord) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            let mut spec = LeaseSpec::default();
            write_record(&mut spec, record);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            let created = self
                .api
                .create(&PostParams::default(), &lease)
                .await
                .map_err(|e| self.lock_error(e))?;
            Ok(self.remember(&created))
        })
    }

    fn replace<'a>(
        &'a self,
        record: &'a LeaseRecord,
        resource_version: &'a str,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            let mut lease = self
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                });
            lease.metadata.resource_version = Some(resource_version.to_string());
            lease.metadata.managed_fields = None;
            write_record(lease.spec.get_or_insert_with(LeaseSpec::default), record);
            let replaced = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
                .map_err(|e| self.lock_error(e))?;
            Ok(self.remember(&replaced))
        })
    }

    fn subscribe(&self) -> Option<watch::Receiver<Option<VersionedRecord>>> {
        let (tx, rx) = watch::channel(None);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let events = watcher::watcher(self.api.clone(), config);
        let lease = self.describe();
        tokio::spawn(async move {
            let mut events = pin!(events);
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => return,
                    e = events.next() => e,
                };
                let seen = match next {
                    None => return,
                    Some(Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l))) => {
                        Some(VersionedRecord {
                            record: record_of(l.spec.as_ref()),
                            resource_version: l.metadata.resource_version.unwrap_or_default(),
                        })
                    }
                    Some(Ok(watcher::Event::Delete(_))) => None,
                    Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => continue,
                    Some(Err(e)) => {
                        // The watcher backs off and lists again; polling goes on meanwhile.
                        tracing::debug!(%lease, error = %e, "watching the lease");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        Some(rx)
    }
}

// ---------------------------------------------------------------------------------------------
// Pure decisions.

/// What a candidate last saw of the record, and when (its own clock).
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    record: LeaseRecord,
    resource_version: String,
    at: Instant,
}

/// What to do after reading the record.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Create(LeaseRecord),
    Replace(LeaseRecord),
    /// Someone else holds a lease that has not expired by our observation.
    Wait,
}

/// client-go's `isLeaseValid`: the observed holder's lease duration has not passed since we saw
/// the record change.
fn lease_valid(observed: &Observed, now: Instant) -> bool {
    let secs = u64::try_from(observed.record.lease_duration_seconds).unwrap_or(0);
    observed.at + Duration::from_secs(secs) > now
}

/// Updates the observation with the record just read; the observation time moves only when the
/// record changed (client-go compares the raw records).
fn observe(observed: &mut Option<Observed>, current: VersionedRecord, now: Instant) {
    match observed {
        Some(o) if o.record == current.record => o.resource_version = current.resource_version,
        _ => {
            *observed = Some(Observed {
                record: current.record,
                resource_version: current.resource_version,
                at: now,
            })
        }
    }
}

/// Whether a record seen on the watch is newer than the observation. resourceVersions are opaque
/// to clients, but every store behind this API orders them as integers; when either does not
/// parse, a different version counts as newer (an observation that moves later only delays a
/// takeover).
fn newer(seen: &VersionedRecord, observed: Option<&Observed>) -> bool {
    let Some(o) = observed else { return true };
    match (
        seen.resource_version.parse::<u64>(),
        o.resource_version.parse::<u64>(),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => seen.resource_version != o.resource_version,
    }
}

/// The record to write when `me` already holds the lease: acquireTime and transitions kept.
fn renewal(me: &str, lease_seconds: i32, held: &LeaseRecord, wall: DateTime<Utc>) -> LeaseRecord {
    LeaseRecord {
        holder_identity: me.to_string(),
        lease_duration_seconds: lease_seconds,
        acquire_time: held.acquire_time,
        renew_time: Some(wall),
        lease_transitions: held.lease_transitions,
    }
}

/// client-go's `tryAcquireOrRenew` after reading the record (`current`; `observed` already
/// updated with it).
fn decide(
    me: &str,
    lease_seconds: i32,
    current: Option<&LeaseRecord>,
    observed: Option<&Observed>,
    now: Instant,
    wall: DateTime<Utc>,
) -> Step {
    let Some(old) = current else {
        return Step::Create(LeaseRecord {
            holder_identity: me.to_string(),
            lease_duration_seconds: lease_seconds,
            acquire_time: Some(wall),
            renew_time: Some(wall),
            lease_transitions: 0,
        });
    };
    if old.holder_identity == me {
        return Step::Replace(renewal(me, lease_seconds, old, wall));
    }
    let valid = observed.is_some_and(|o| lease_valid(o, now));
    if !old.holder_identity.is_empty() && valid {
        return Step::Wait;
    }
    Step::Replace(LeaseRecord {
        holder_identity: me.to_string(),
        lease_duration_seconds: lease_seconds,
        acquire_time: Some(wall),
        renew_time: Some(wall),
        lease_transitions: old.lease_transitions.saturating_add(1),
    })
}

/// The record a leader writes when it steps down (client-go's `release`): no holder, a one-second
/// lease, times now, transitions kept.
fn released(held: &LeaseRecord, wall: DateTime<Utc>) -> LeaseRecord {
    LeaseRecord {
        holder_identity: String::new(),
        lease_duration_seconds: 1,
        acquire_time: Some(wall),
        renew_time: Some(wall),
        lease_transitions: held.lease_transitions,
    }
}

/// `retry + rand·1.2·retry` (client-go's `wait.Jitter`), `unit` in [0, 1).
fn jittered(retry: Duration, unit: f64) -> Duration {
    retry + retry.mul_f64(unit.clamp(0.0, 1.0) * JITTER_FACTOR)
}

// ---------------------------------------------------------------------------------------------
// The loop.

/// Clocks and randomness, replaceable in tests.
struct Env {
    /// Wall-clock time for the record's MicroTimes (microseconds, as they are stored).
    wall: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// Uniform in [0, 1).
    unit_random: Box<dyn Fn() -> f64 + Send + Sync>,
}

impl Env {
    fn real() -> Env {
        Env {
            wall: Box::new(|| Utc::now().trunc_subsecs(6)),
            unit_random: Box::new(rand::random::<f64>),
        }
    }
}

struct Elector<'a, L: LeaseLock + ?Sized> {
    lock: &'a L,
    cfg: &'a ElectionConfig,
    env: &'a Env,
    observed: Option<Observed>,
    reported_leader: Option<String>,
}

impl<L: LeaseLock + ?Sized> Elector<'_, L> {
    fn me(&self) -> &str {
        &self.cfg.identity
    }

    fn is_leader(&self) -> bool {
        self.observed
            .as_ref()
            .is_some_and(|o| o.record.holder_identity == self.cfg.identity)
    }

    fn wrote(&mut self, record: LeaseRecord, resource_version: String) {
        self.observed = Some(Observed {
            record,
            resource_version,
            at: Instant::now(),
        });
    }

    /// client-go's `tryAcquireOrRenew`: Ok(true) when this candidate holds the lease now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, Error> {
        let wall = (self.env.wall)();
        let lease_seconds = self.cfg.lease_seconds();
        // Fast path: the leader writes over the version it wrote last.
        if let Some(o) = self.observed.as_ref().filter(|o| {
            o.record.holder_identity == self.cfg.identity && lease_valid(o, Instant::now())
        }) {
            let record = renewal(self.me(), lease_seconds, &o.record, wall);
            let rv = o.resource_version.clone();
            match self.lock.replace(&record, &rv).await {
                Ok(rv) => {
                    self.wrote(record, rv);
                    return Ok(true);
                }
                Err(e) => tracing::debug!(
                    lease = %self.lock.describe(),
                    error = %e,
                    "failed to update lock optimistically, falling back to slow path"
                ),
            }
        }
        let current = self.lock.get().await?;
        let now = Instant::now();
        let current_record = current.as_ref().map(|c| c.record.clone());
        let resource_version = current.as_ref().map(|c| c.resource_version.clone());
        if let Some(c) = current {
            observe(&mut self.observed, c, now);
        }
        let step = decide(
            self.me(),
            lease_seconds,
            current_record.as_ref(),
            self.observed.as_ref(),
            now,
            wall,
        );
        match step {
            Step::Wait => Ok(false),
            Step::Create(record) => {
                let rv = self.lock.create(&record).await?;
                self.wrote(record, rv);
                Ok(true)
            }
            Step::Replace(record) => {
                let rv = self
                    .lock
                    .replace(&record, resource_version.as_deref().unwrap_or(""))
                    .await?;
                self.wrote(record, rv);
                Ok(true)
            }
        }
    }

    /// When the observed holder's lease runs out by our observation (None when nobody else holds
    /// it).
    fn expiry(&self) -> Option<Instant> {
        let o = self.observed.as_ref()?;
        if o.record.holder_identity.is_empty() || o.record.holder_identity == self.cfg.identity {
            return None;
        }
        let secs = u64::try_from(o.record.lease_duration_seconds).unwrap_or(0);
        Some(o.at + Duration::from_secs(secs))
    }

    /// Takes in a record seen on the watch; true when it is worth trying at once (the Lease was
    /// released or deleted).
    fn saw(&mut self, seen: Option<VersionedRecord>) -> bool {
        let Some(seen) = seen else { return true };
        if !newer(&seen, self.observed.as_ref()) {
            return false;
        }
        let released = seen.record.holder_identity.is_empty();
        observe(&mut self.observed, seen, Instant::now());
        self.report_leader();
        released
    }

    /// Logs a change of leader, once per change.
    fn report_leader(&mut self) {
        let Some(holder) = self
            .observed
            .as_ref()
            .map(|o| o.record.holder_identity.clone())
        else {
            return;
        };
        if holder.is_empty() || self.reported_leader.as_deref() == Some(holder.as_str()) {
            return;
        }
        if holder != self.cfg.identity {
            tracing::info!(lease = %self.cfg.describe(), "new leader elected: {holder}");
        }
        self.reported_leader = Some(holder);
    }

    /// client-go's `release`: re-read, and if still the holder, step down.
    async fn release(&mut self) -> Result<bool, Error> {
        let Some(current) = self.lock.get().await? else {
            return Ok(false);
        };
        let rv = current.resource_version.clone();
        observe(&mut self.observed, current, Instant::now());
        if !self.is_leader() {
            return Ok(true);
        }
        let held = self
            .observed
            .as_ref()
            .map(|o| o.record.clone())
            .unwrap_or_default();
        let record = released(&held, (self.env.wall)());
        let rv = self.lock.replace(&record, &rv).await?;
        self.wrote(record, rv);
        Ok(true)
    }

    /// Renews every retry period while the term lasts; returns when it is over.
    async fn renew_until_lost(&mut self, leading: &Leading) {
        let retry = self.cfg.retry_period;
        loop {
            tokio::select! {
                biased;
                _ = leading.lost() => return,
                _ = tokio::time::sleep(retry) => {}
            }
            let sent = Instant::now();
            let attempt = tokio::select! {
                biased;
                _ = leading.lost() => return,
                r = self.try_acquire_or_renew() => r,
            };
            match attempt {
                Ok(true) => leading.extend_to(sent + self.cfg.renew_deadline),
                Ok(false) => {
                    let holder = self
                        .observed
                        .as_ref()
                        .map(|o| o.record.holder_identity.clone())
                        .unwrap_or_default();
                    tracing::info!(lease = %self.cfg.describe(), "lease is held by {holder}: leadership lost");
                    self.report_leader();
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.cfg.describe(), error = %e, "failed to renew lease")
                }
            }
        }
    }
}

/// Campaigns for the Lease `cfg.namespace/cfg.name` until elected, then runs `lead(leading)` while
/// leading. Returns Ok(()) after `shutdown` resolves (releasing the Lease if held);
/// Err(Error::LeadershipLost) when the term ended because renewal failed or another candidate
/// holds the lease; the `lead` future is dropped as soon as the term ends. If `lead` returns by
/// itself, the lease is kept (and renewed) until shutdown, as client-go does.
pub async fn run_elected<F, Fut>(
    client: kube::Client,
    cfg: ElectionConfig,
    shutdown: impl Future<Output = ()>,
    lead: F,
) -> Result<(), Error>
where
    F: FnOnce(Leading) -> Fut,
    Fut: Future<Output = ()>,
{
    let lock = ApiLeaseLock::new(client, &cfg.namespace, &cfg.name);
    run_elected_with(&lock, cfg, shutdown, lead).await
}

/// [`run_elected`] on any [`LeaseLock`].
pub async fn run_elected_with<L, F, Fut>(
    lock: &L,
    cfg: ElectionConfig,
    shutdown: impl Future<Output = ()>,
    lead: F,
) -> Result<(), Error>
where
    L: LeaseLock + ?Sized,
    F: FnOnce(Leading) -> Fut,
    Fut: Future<Output = ()>,
{
    run(lock, &cfg, &Env::real(), shutdown, lead).await
}

/// The next record the watch shows; pending forever when there is no watch (or it ended).
async fn next_seen(
    changes: &mut Option<watch::Receiver<Option<VersionedRecord>>>,
) -> Option<VersionedRecord> {
    if let Some(rx) = changes {
        if rx.changed().await.is_ok() {
            return rx.borrow_and_update().clone();
        }
    }
    *changes = None;
    std::future::pending().await
}

fn master_status(cfg: &ElectionConfig) -> Option<Gauge> {
    cfg.metrics.as_ref().map(|m| {
        m.gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
            &["name"],
        )
    })
}

async fn run<L, F, Fut>(
    lock: &L,
    cfg: &ElectionConfig,
    env: &Env,
    shutdown: impl Future<Output = ()>,
    lead: F,
) -> Result<(), Error>
where
    L: LeaseLock + ?Sized,
    F: FnOnce(Leading) -> Fut,
    Fut: Future<Output = ()>,
{
    cfg.validate()?;
    let status = master_status(cfg);
    let set_status = |v: f64| {
        if let Some(g) = &status {
            g.set(&[cfg.name.as_str()], v);
        }
    };
    set_status(0.0);
    let mut shutdown = pin!(shutdown.fuse());
    let mut elector = Elector {
        lock,
        cfg,
        env,
        observed: None,
        reported_leader: None,
    };
    let desc = cfg.describe();
    tracing::info!(lease = %desc, identity = %cfg.identity, "attempting to acquire leader lease {desc}...");
    let mut changes = lock.subscribe();

    // Campaign. A shutdown during an attempt abandons it: if that write landed, the lease
    // expires a lease duration later instead of being released.
    let leading = loop {
        let sent = Instant::now();
        let attempt = tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(()),
            r = tokio::time::timeout(cfg.renew_deadline, elector.try_acquire_or_renew()) => r,
        };
        match attempt {
            Ok(Ok(true)) => break Leading::until(sent + cfg.renew_deadline),
            Ok(Ok(false)) => {}
            // Another candidate wrote first: the normal race, not worth a warning.
            Ok(Err(e @ Error::Conflict(_))) => {
                tracing::debug!(lease = %desc, error = %e, "lost a race for the lease")
            }
            Ok(Err(e)) => tracing::warn!(lease = %desc, error = %e, "error acquiring lease"),
            Err(_) => tracing::warn!(lease = %desc, "acquiring the lease timed out"),
        }
        elector.report_leader();
        // Wait a jittered retry period, or less: until the observed lease runs out, or until
        // the watch shows it released.
        let retry_at = Instant::now() + jittered(cfg.retry_period, (env.unit_random)());
        loop {
            let until = elector.expiry().map_or(retry_at, |e| e.min(retry_at));
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep_until(until) => break,
                seen = next_seen(&mut changes) => {
                    if elector.saw(seen) {
                        break;
                    }
                }
            }
        }
    };
    drop(changes);
    tracing::info!(lease = %desc, "successfully acquired lease {desc}");
    elector.report_leader();
    set_status(1.0);

    let shut_down = {
        let mut lead = pin!(lead(leading.clone()).fuse());
        let mut renew = pin!(elector.renew_until_lost(&leading));
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break true,
                _ = &mut renew => break false,
                _ = &mut lead => tracing::info!(lease = %desc, "the leader's work returned; keeping the lease until shutdown"),
            }
        }
        // `lead` and the renewal are dropped here, before anything else happens.
    };
    leading.end();
    set_status(0.0);
    if !shut_down {
        tracing::info!(lease = %desc, "stopped leading");
        return Err(Error::LeadershipLost);
    }
    match tokio::time::timeout(cfg.renew_deadline, elector.release()).await {
        Ok(Ok(_)) => tracing::info!(lease = %desc, "released lease {desc}"),
        Ok(Err(e)) => tracing::warn!(lease = %desc, error = %e, "failed to release lease"),
        Err(_) => tracing::warn!(lease = %desc, "releasing the lease timed out"),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
