//! Election tests: the pure decisions, then whole candidates on an in-memory Lease under tokio's
//! paused clock (every time below is simulated and exact).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

const LD: Duration = Duration::from_secs(15);
const RD: Duration = Duration::from_secs(10);
const RP: Duration = Duration::from_secs(2);

fn wall0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
}

fn rec(holder: &str, transitions: i32) -> LeaseRecord {
    LeaseRecord {
        holder_identity: holder.into(),
        lease_duration_seconds: 15,
        acquire_time: Some(wall0()),
        renew_time: Some(wall0()),
        lease_transitions: transitions,
    }
}

fn versioned(record: LeaseRecord, rv: &str) -> VersionedRecord {
    VersionedRecord {
        record,
        resource_version: rv.into(),
    }
}

// ----- pure decisions -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_missing_lease_is_created() {
    let wall = wall0() + chrono::Duration::seconds(5);
    let step = decide("me", 15, None, None, Instant::now(), wall);
    assert_eq!(
        step,
        Step::Create(LeaseRecord {
            holder_identity: "me".into(),
            lease_duration_seconds: 15,
            acquire_time: Some(wall),
            renew_time: Some(wall),
            lease_transitions: 0,
        })
    );
}

#[tokio::test(start_paused = true)]
async fn expiry_is_judged_by_local_observation_not_renew_time() {
    // The holder's renewTime is a year old (its clock is wrong), but we saw the record change
    // just now: it is valid.
    let mut old = rec("other", 3);
    old.renew_time = Some(wall0() - chrono::Duration::days(365));
    let mut observed = None;
    let t0 = Instant::now();
    observe(&mut observed, versioned(old.clone(), "7"), t0);
    let wall = wall0();
    assert_eq!(
        decide("me", 15, Some(&old), observed.as_ref(), t0, wall),
        Step::Wait
    );

    // Seeing the same record again later does not move the observation time.
    tokio::time::advance(Duration::from_secs(10)).await;
    observe(&mut observed, versioned(old.clone(), "8"), Instant::now());
    assert_eq!(observed.as_ref().map(|o| o.at), Some(t0));
    assert_eq!(
        observed.as_ref().map(|o| o.resource_version.as_str()),
        Some("8")
    );
    let just_before = t0 + LD - Duration::from_millis(1);
    assert_eq!(
        decide("me", 15, Some(&old), observed.as_ref(), just_before, wall),
        Step::Wait
    );

    // A lease duration after the last change it may be taken: new acquireTime, transitions + 1.
    match decide("me", 15, Some(&old), observed.as_ref(), t0 + LD, wall) {
        Step::Replace(r) => {
            assert_eq!(r.holder_identity, "me");
            assert_eq!(r.lease_transitions, 4);
            assert_eq!(r.acquire_time, Some(wall));
            assert_eq!(r.renew_time, Some(wall));
            assert_eq!(r.lease_duration_seconds, 15);
        }
        other => panic!("expected a takeover, got {other:?}"),
    }

    // A renewal by the holder restarts the wait.
    let mut renewed = old.clone();
    renewed.renew_time = Some(wall0());
    observe(&mut observed, versioned(renewed.clone(), "9"), t0 + LD);
    assert_eq!(
        decide("me", 15, Some(&renewed), observed.as_ref(), t0 + LD, wall),
        Step::Wait
    );
}

#[tokio::test(start_paused = true)]
async fn the_holders_lease_duration_counts_not_ours() {
    let mut short = rec("other", 0);
    short.lease_duration_seconds = 3;
    let mut observed = None;
    let t0 = Instant::now();
    observe(&mut observed, versioned(short.clone(), "1"), t0);
    let wall = wall0();
    assert_eq!(
        decide(
            "me",
            15,
            Some(&short),
            observed.as_ref(),
            t0 + Duration::from_secs(2),
            wall
        ),
        Step::Wait
    );
    assert!(matches!(
        decide(
            "me",
            15,
            Some(&short),
            observed.as_ref(),
            t0 + Duration::from_secs(3),
            wall
        ),
        Step::Replace(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_at_once() {
    let held = rec("old-leader", 2);
    let gone = released(&held, wall0());
    assert_eq!(gone.holder_identity, "");
    assert_eq!(gone.lease_duration_seconds, 1);
    assert_eq!(gone.lease_transitions, 2);
    assert_eq!(gone.acquire_time, Some(wall0()));
    let mut observed = None;
    let now = Instant::now();
    observe(&mut observed, versioned(gone.clone(), "5"), now);
    match decide("me", 15, Some(&gone), observed.as_ref(), now, wall0()) {
        Step::Replace(r) => {
            assert_eq!((r.holder_identity.as_str(), r.lease_transitions), ("me", 3))
        }
        other => panic!("expected a takeover, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn renewing_keeps_acquire_time_and_transitions() {
    let held = rec("me", 5);
    let later = wall0() + chrono::Duration::seconds(30);
    let mut observed = None;
    let now = Instant::now();
    observe(&mut observed, versioned(held.clone(), "5"), now);
    match decide("me", 15, Some(&held), observed.as_ref(), now, later) {
        Step::Replace(r) => {
            assert_eq!(r.acquire_time, Some(wall0()));
            assert_eq!(r.renew_time, Some(later));
            assert_eq!(r.lease_transitions, 5);
        }
        other => panic!("expected a renewal, got {other:?}"),
    }
}

#[test]
fn jitter_follows_client_go() {
    assert_eq!(jittered(RP, 0.0), RP);
    assert_eq!(jittered(RP, 0.5), Duration::from_millis(3200));
    assert!(jittered(RP, 0.999_999) < RP.mul_f64(1.0 + JITTER_FACTOR));
}

#[test]
fn config_is_validated_like_client_go() {
    let ok = ElectionConfig::new("kube-system", "kube-scheduler");
    assert_eq!(
        (ok.lease_duration, ok.renew_deadline, ok.retry_period),
        (LD, RD, RP)
    );
    assert!(ok.validate().is_ok());
    let msg = |f: &dyn Fn(&mut ElectionConfig)| {
        let mut c = ok.clone();
        f(&mut c);
        c.validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        msg(&|c| c.renew_deadline = LD),
        "leader election: leaseDuration must be greater than renewDeadline"
    );
    assert_eq!(
        msg(&|c| c.retry_period = Duration::from_secs(9)),
        "leader election: renewDeadline must be greater than retryPeriod*JitterFactor"
    );
    assert_eq!(
        msg(&|c| c.retry_period = Duration::ZERO),
        "leader election: retryPeriod must be greater than zero"
    );
    assert_eq!(
        msg(&|c| c.lease_duration = Duration::from_millis(15_500)),
        "leader election: leaseDuration must be a whole number of seconds"
    );
    assert_eq!(
        msg(&|c| c.identity.clear()),
        "leader election: Lock identity is empty"
    );
}

#[test]
fn identities_are_host_underscore_uuid() {
    let a = default_identity();
    let b = default_identity();
    assert_ne!(a, b);
    let (host, uuid) = a.rsplit_once('_').expect("an underscore");
    assert!(!host.is_empty());
    assert_eq!(uuid.len(), 36);
    let groups: Vec<&str> = uuid.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12]
    );
    assert!(groups[2].starts_with('4'), "version 4: {uuid}");
    assert!(
        matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
        "variant: {uuid}"
    );
}

#[test]
fn lease_specs_round_trip_and_keep_other_fields() {
    let mut spec = LeaseSpec {
        strategy: Some("OldestEmulationVersion".into()),
        ..LeaseSpec::default()
    };
    let r = rec("a", 4);
    write_record(&mut spec, &r);
    assert_eq!(record_of(Some(&spec)), r);
    assert_eq!(spec.strategy.as_deref(), Some("OldestEmulationVersion"));
    assert_eq!(record_of(None), LeaseRecord::default());
}

// ----- an in-memory Lease -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Write {
    at: Instant,
    by: String,
    record: LeaseRecord,
}

#[derive(Debug, Clone)]
struct Read {
    at: Instant,
    by: String,
    record: Option<LeaseRecord>,
}

#[derive(Default)]
struct Store {
    lease: Option<(LeaseRecord, u64)>,
    next_rv: u64,
    writes: Vec<Write>,
    reads: Vec<Read>,
    /// Every write, for candidates that watch.
    feed: Option<watch::Sender<Option<VersionedRecord>>>,
}

impl Store {
    fn wrote(&mut self, write: Write, rv: u64) {
        self.lease = Some((write.record.clone(), rv));
        if let Some(feed) = &self.feed {
            feed.send_replace(Some(versioned(write.record.clone(), &rv.to_string())));
        }
        self.writes.push(write);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Normal,
    /// Requests never return (a partitioned or frozen candidate).
    Hang,
    /// Requests fail at once (the API server refuses).
    Fail,
}

#[derive(Clone)]
struct FakeLock {
    id: String,
    store: Arc<Mutex<Store>>,
    mode: Arc<Mutex<Mode>>,
    /// How long each request takes before it is applied.
    latency: Arc<Mutex<Duration>>,
    /// Whether `subscribe` offers the store's feed.
    watching: bool,
}

impl FakeLock {
    fn gate(&self) -> BoxFuture<'static, Result<(), Error>> {
        let mode = *self.mode.lock().expect("lock");
        let latency = *self.latency.lock().expect("lock");
        Box::pin(async move {
            match mode {
                Mode::Normal => {
                    tokio::time::sleep(latency).await;
                    Ok(())
                }
                Mode::Fail => Err(Error::Lock("refused".into())),
                Mode::Hang => futures::future::pending().await,
            }
        })
    }

    fn set_mode(&self, m: Mode) {
        *self.mode.lock().expect("lock") = m;
    }
}

fn bump(store: &mut Store) -> u64 {
    store.next_rv += 1;
    store.next_rv
}

impl LeaseLock for FakeLock {
    fn describe(&self) -> String {
        "kube-system/test".into()
    }

    fn get(&self) -> BoxFuture<'_, Result<Option<VersionedRecord>, Error>> {
        Box::pin(async move {
            self.gate().await?;
            let mut s = self.store.lock().expect("lock");
            let current = s.lease.clone();
            s.reads.push(Read {
                at: Instant::now(),
                by: self.id.clone(),
                record: current.as_ref().map(|(r, _)| r.clone()),
            });
            Ok(current.map(|(r, rv)| versioned(r, &rv.to_string())))
        })
    }

    fn create<'a>(&'a self, record: &'a LeaseRecord) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            self.gate().await?;
            let mut s = self.store.lock().expect("lock");
            if s.lease.is_some() {
                return Err(Error::Conflict("exists".into()));
            }
            let rv = bump(&mut s);
            let write = Write {
                at: Instant::now(),
                by: self.id.clone(),
                record: record.clone(),
            };
            s.wrote(write, rv);
            Ok(rv.to_string())
        })
    }

    fn replace<'a>(
        &'a self,
        record: &'a LeaseRecord,
        resource_version: &'a str,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            self.gate().await?;
            let mut s = self.store.lock().expect("lock");
            match &s.lease {
                Some((_, rv)) if rv.to_string() == resource_version => {}
                _ => return Err(Error::Conflict("rv".into())),
            }
            let rv = bump(&mut s);
            let write = Write {
                at: Instant::now(),
                by: self.id.clone(),
                record: record.clone(),
            };
            s.wrote(write, rv);
            Ok(rv.to_string())
        })
    }

    fn subscribe(&self) -> Option<watch::Receiver<Option<VersionedRecord>>> {
        if !self.watching {
            return None;
        }
        let mut s = self.store.lock().expect("lock");
        let current = s.lease.clone().map(|(r, rv)| versioned(r, &rv.to_string()));
        let feed = s.feed.get_or_insert_with(|| watch::channel(current).0);
        Some(feed.subscribe())
    }
}

/// Simulated wall time that follows tokio's paused clock, and a fixed "random" jitter.
fn test_env(unit: f64) -> Env {
    let start = Instant::now();
    Env {
        wall: Box::new(move || {
            let elapsed = chrono::Duration::from_std(Instant::now() - start).unwrap_or_default();
            (wall0() + elapsed).trunc_subsecs(6)
        }),
        unit_random: Box::new(move || unit),
    }
}

fn config(id: &str) -> ElectionConfig {
    ElectionConfig {
        identity: id.into(),
        ..ElectionConfig::new("kube-system", "test")
    }
}

#[derive(Default)]
struct Observations {
    leading: Option<Leading>,
    started: Option<Instant>,
    /// When the term ended (its deadline passed or `end()`).
    lost: Option<Instant>,
    /// When the `lead` future was dropped.
    dropped: Option<Instant>,
}

struct Candidate {
    lock: FakeLock,
    seen: Arc<Mutex<Observations>>,
    stop: Option<oneshot::Sender<()>>,
    run: JoinHandle<Result<(), Error>>,
    metrics: Metrics,
}

struct OnDrop(Arc<Mutex<Observations>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.lock().expect("lock").dropped = Some(Instant::now());
    }
}

impl Candidate {
    fn spawn(id: &str, store: &Arc<Mutex<Store>>, jitter: f64) -> Candidate {
        Candidate::spawn_with(id, store, jitter, false)
    }

    /// A candidate whose lock also offers a watch of the Lease.
    fn spawn_watching(id: &str, store: &Arc<Mutex<Store>>, jitter: f64) -> Candidate {
        Candidate::spawn_with(id, store, jitter, true)
    }

    fn spawn_with(id: &str, store: &Arc<Mutex<Store>>, jitter: f64, watching: bool) -> Candidate {
        let lock = FakeLock {
            id: id.into(),
            store: store.clone(),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            latency: Arc::new(Mutex::new(Duration::ZERO)),
            watching,
        };
        let seen = Arc::new(Mutex::new(Observations::default()));
        let metrics = Metrics::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let run = tokio::spawn({
            let lock = lock.clone();
            let seen = seen.clone();
            let cfg = ElectionConfig {
                metrics: Some(metrics.clone()),
                ..config(id)
            };
            async move {
                let env = test_env(jitter);
                let shutdown = async {
                    let _ = stopped.await;
                };
                run(&lock, &cfg, &env, shutdown, move |leading| async move {
                    {
                        let mut s = seen.lock().expect("lock");
                        s.leading = Some(leading.clone());
                        s.started = Some(Instant::now());
                    }
                    tokio::spawn({
                        let seen = seen.clone();
                        let leading = leading.clone();
                        async move {
                            leading.lost().await;
                            seen.lock().expect("lock").lost = Some(Instant::now());
                        }
                    });
                    let _guard = OnDrop(seen);
                    futures::future::pending::<()>().await
                })
                .await
            }
        });
        Candidate {
            lock,
            seen,
            stop: Some(stop),
            run,
            metrics,
        }
    }

    fn started(&self) -> Option<Instant> {
        self.seen.lock().expect("lock").started
    }

    fn leading(&self) -> bool {
        self.seen
            .lock()
            .expect("lock")
            .leading
            .as_ref()
            .is_some_and(|l| l.is_leading())
    }

    fn lost(&self) -> Option<Instant> {
        self.seen.lock().expect("lock").lost
    }

    fn dropped(&self) -> Option<Instant> {
        self.seen.lock().expect("lock").dropped
    }

    fn master_status(&self) -> f64 {
        master_status(&ElectionConfig {
            metrics: Some(self.metrics.clone()),
            ..config("x")
        })
        .map(|g| g.get(&["test"]))
        .unwrap_or(-1.0)
    }

    async fn result(self) -> Result<(), Error> {
        self.run.await.expect("the election task does not panic")
    }
}

fn writes_by(store: &Arc<Mutex<Store>>, id: &str) -> Vec<Write> {
    store
        .lock()
        .expect("lock")
        .writes
        .iter()
        .filter(|w| w.by == id)
        .cloned()
        .collect()
}

fn current(store: &Arc<Mutex<Store>>) -> LeaseRecord {
    store
        .lock()
        .expect("lock")
        .lease
        .clone()
        .map(|(r, _)| r)
        .expect("a lease exists")
}

async fn sleep(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

// ----- whole candidates -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn one_of_two_candidates_wins_and_the_other_waits_while_it_renews() {
    let store = Arc::new(Mutex::new(Store::default()));
    let a = Candidate::spawn("a", &store, 0.5);
    let b = Candidate::spawn("b", &store, 0.5);
    sleep(61).await;
    let (winner, loser) = if a.started().is_some() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(winner.leading());
    assert!(loser.started().is_none(), "only one leads");
    assert_eq!(winner.master_status(), 1.0);
    assert_eq!(loser.master_status(), 0.0);
    let winner_id = winner.lock.id.clone();
    let lease = current(&store);
    assert_eq!(lease.holder_identity, winner_id);
    assert_eq!(lease.lease_transitions, 0);
    // Renewed every retry period, keeping its acquireTime.
    let writes = writes_by(&store, &winner_id);
    assert_eq!(
        writes.len(),
        31,
        "create at 0 s, then a renewal every 2 s up to 60 s"
    );
    for pair in writes.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, RP);
    }
    assert!(writes
        .iter()
        .all(|w| w.record.acquire_time == writes[0].record.acquire_time));
    assert_eq!(
        lease.renew_time,
        Some(wall0() + chrono::Duration::seconds(60))
    );
    assert!(writes_by(&store, &loser.lock.id).is_empty());
    assert!(!a.run.is_finished() && !b.run.is_finished());
}

/// A leader whose requests stop returning (frozen, partitioned) is replaced no sooner than a lease
/// duration after the other candidate last saw the record change, and within a lease duration
/// and one jittered retry period of it; its own term ends before that.
async fn frozen_leader_is_replaced(jitter: f64) {
    let store = Arc::new(Mutex::new(Store::default()));
    let a = Candidate::spawn("a", &store, jitter);
    sleep(1).await;
    let b = Candidate::spawn("b", &store, jitter);
    sleep(20).await;
    assert!(a.leading() && b.started().is_none());
    a.lock.set_mode(Mode::Hang);
    sleep(40).await;

    let last_a = writes_by(&store, "a").last().cloned().expect("a wrote");
    let b_writes = writes_by(&store, "b");
    let takeover = b_writes.first().expect("b took over").at;
    let seen_change = store
        .lock()
        .expect("lock")
        .reads
        .iter()
        .filter(|r| r.by == "b" && r.record.as_ref() == Some(&last_a.record))
        .map(|r| r.at)
        .min()
        .expect("b saw a's last renewal");
    assert!(takeover >= seen_change + LD, "not before a lease duration");
    assert!(
        takeover <= seen_change + LD + jittered(RP, jitter),
        "within a lease duration and one jittered retry: {:?}",
        takeover - seen_change
    );
    // A's term ended at its last successful renewal's send time plus the renew deadline (the
    // fake answers at once), strictly before anyone else could take over.
    let a_lost = a.lost().expect("a's term ended");
    assert_eq!(a_lost, last_a.at + RD);
    assert_eq!(
        a.dropped(),
        Some(a_lost),
        "the lead future is dropped when the term ends"
    );
    assert!(takeover - a_lost >= LD - RD);
    assert!(!a.leading());
    assert_eq!(a.master_status(), 0.0);
    assert!(b.leading());
    assert_eq!(b.started(), Some(takeover));

    let lease = current(&store);
    assert_eq!(lease.holder_identity, "b");
    assert_eq!(lease.lease_transitions, 1);
    assert_eq!(
        b_writes[0].record.acquire_time,
        b_writes[0].record.renew_time
    );
    assert!(a.run.is_finished());
    assert!(matches!(a.result().await, Err(Error::LeadershipLost)));
}

/// A candidate that watches sees each renewal as it is written and wakes when the lease it saw
/// runs out: it takes over exactly a lease duration after the frozen leader's last renewal,
/// whatever its jitter, where a polling candidate may take up to two jittered retries more.
#[tokio::test(start_paused = true)]
async fn a_watching_candidate_takes_over_a_lease_duration_after_the_last_renewal() {
    for jitter in [0.0, 0.5, 0.99] {
        let store = Arc::new(Mutex::new(Store::default()));
        let a = Candidate::spawn("a", &store, jitter);
        sleep(1).await;
        let b = Candidate::spawn_watching("b", &store, jitter);
        // Freeze a at an odd moment, between two of b's polls.
        tokio::time::sleep(Duration::from_millis(20_700)).await;
        assert!(a.leading() && b.started().is_none());
        a.lock.set_mode(Mode::Hang);
        sleep(40).await;
        let last_a = writes_by(&store, "a").last().cloned().expect("a wrote");
        let takeover = writes_by(&store, "b").first().expect("b took over").at;
        assert_eq!(takeover - last_a.at, LD, "jitter {jitter}");
        assert!(takeover - a.lost().expect("a's term ended") >= LD - RD);
        assert!(b.leading());
        assert_eq!(current(&store).lease_transitions, 1);
    }
}

/// A watch that shows a stale record (an older resourceVersion) does not move the observation.
#[test]
fn only_newer_records_from_the_watch_count() {
    let o = Observed {
        record: rec("a", 0),
        resource_version: "10".into(),
        at: Instant::now(),
    };
    assert!(newer(&versioned(rec("a", 0), "11"), Some(&o)));
    assert!(!newer(&versioned(rec("b", 1), "9"), Some(&o)));
    assert!(!newer(&versioned(rec("a", 0), "10"), Some(&o)));
    assert!(newer(&versioned(rec("a", 0), "x"), Some(&o)));
    assert!(newer(&versioned(rec("a", 0), "1"), None));
}

#[tokio::test(start_paused = true)]
async fn a_frozen_leader_is_replaced_after_the_lease_duration_shortest_jitter() {
    frozen_leader_is_replaced(0.0).await;
}

#[tokio::test(start_paused = true)]
async fn a_frozen_leader_is_replaced_after_the_lease_duration_longest_jitter() {
    frozen_leader_is_replaced(0.999).await;
}

#[tokio::test(start_paused = true)]
async fn lease_transitions_count_every_takeover() {
    let store = Arc::new(Mutex::new(Store::default()));
    let a = Candidate::spawn("a", &store, 0.3);
    sleep(1).await;
    let b = Candidate::spawn("b", &store, 0.3);
    let c = Candidate::spawn("c", &store, 0.7);
    sleep(10).await;
    assert_eq!(current(&store).holder_identity, "a");
    a.lock.set_mode(Mode::Hang);
    sleep(30).await;
    let second = current(&store).holder_identity;
    assert!(second == "b" || second == "c", "{second}");
    assert_eq!(current(&store).lease_transitions, 1);
    let (second_c, third_c) = if second == "b" { (&b, &c) } else { (&c, &b) };
    second_c.lock.set_mode(Mode::Hang);
    sleep(30).await;
    let lease = current(&store);
    assert_eq!(lease.holder_identity, third_c.lock.id);
    assert_eq!(lease.lease_transitions, 2);
    assert!(third_c.leading() && !second_c.leading() && !a.leading());
}

async fn released_lease_is_taken_over(jitter: f64) {
    let store = Arc::new(Mutex::new(Store::default()));
    let mut a = Candidate::spawn("a", &store, jitter);
    sleep(1).await;
    let b = Candidate::spawn("b", &store, jitter);
    sleep(20).await;
    let stop_at = Instant::now();
    let _ = a.stop.take().expect("stop").send(());
    sleep(10).await;

    let a_writes = writes_by(&store, "a");
    let release = a_writes.last().expect("a released");
    assert_eq!(release.at, stop_at);
    assert_eq!(release.record.holder_identity, "");
    assert_eq!(release.record.lease_duration_seconds, 1);
    assert_eq!(release.record.lease_transitions, 0);
    assert_eq!(release.record.acquire_time, release.record.renew_time);
    assert!(a.dropped().expect("lead dropped") <= release.at);
    assert!(!a.leading());

    let takeover = writes_by(&store, "b").first().expect("b took over").at;
    assert!(
        takeover - stop_at <= jittered(RP, jitter),
        "within one jittered retry period: {:?}",
        takeover - stop_at
    );
    assert!(b.leading());
    assert_eq!(current(&store).lease_transitions, 1);
    assert!(a.result().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_within_one_retry_period() {
    released_lease_is_taken_over(0.0).await;
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_within_one_jittered_retry_period() {
    released_lease_is_taken_over(0.999).await;
}

#[tokio::test(start_paused = true)]
async fn renew_errors_for_the_renew_deadline_end_the_term() {
    let store = Arc::new(Mutex::new(Store::default()));
    let a = Candidate::spawn("a", &store, 0.5);
    sleep(7).await;
    a.lock.set_mode(Mode::Fail);
    let last_ok = writes_by(&store, "a").last().expect("a renewed").at;
    sleep(5).await;
    assert!(
        a.leading(),
        "a few failures inside the deadline are tolerated"
    );
    sleep(10).await;
    assert_eq!(a.lost(), Some(last_ok + RD));
    assert_eq!(a.dropped(), Some(last_ok + RD));
    assert!(!a.leading());
    assert_eq!(a.master_status(), 0.0);
    assert!(matches!(a.result().await, Err(Error::LeadershipLost)));
}

#[tokio::test(start_paused = true)]
async fn the_term_runs_from_when_the_renewal_was_sent_not_answered() {
    let store = Arc::new(Mutex::new(Store::default()));
    let a = Candidate::spawn("a", &store, 0.5);
    let latency = Duration::from_millis(700);
    *a.lock.latency.lock().expect("lock") = latency;
    sleep(9).await;
    a.lock.set_mode(Mode::Fail);
    sleep(20).await;
    // Each renewal is applied `latency` after it was sent (the one in flight at 9 s still lands).
    let last_ok = writes_by(&store, "a").last().expect("a renewed").at;
    assert_eq!(a.lost(), Some(last_ok - latency + RD));
    assert!(matches!(a.result().await, Err(Error::LeadershipLost)));
}

#[tokio::test(start_paused = true)]
async fn a_conflict_on_renew_is_retried_not_fatal() {
    let store = Arc::new(Mutex::new(Store::default()));
    let a = Candidate::spawn("a", &store, 0.5);
    sleep(5).await;
    let acquired = current(&store).acquire_time;
    // Someone else writes the Lease (an annotation, say) without touching the election fields:
    // the leader's next optimistic renewal fails its compare-and-swap.
    for _ in 0..5 {
        {
            let mut s = store.lock().expect("lock");
            let rv = s.next_rv + 1000;
            s.next_rv = rv;
            if let Some(lease) = s.lease.as_mut() {
                lease.1 = rv;
            }
        }
        sleep(3).await;
    }
    assert!(a.leading());
    assert!(a.lost().is_none());
    let lease = current(&store);
    assert_eq!(lease.holder_identity, "a");
    assert_eq!(lease.acquire_time, acquired);
    assert_eq!(lease.lease_transitions, 0);
    assert!(!a.run.is_finished());
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_campaigning_returns_without_writing() {
    let store = Arc::new(Mutex::new(Store::default()));
    let _a = Candidate::spawn("a", &store, 0.5);
    sleep(1).await;
    let mut b = Candidate::spawn("b", &store, 0.5);
    sleep(5).await;
    let _ = b.stop.take().expect("stop").send(());
    sleep(1).await;
    assert!(b.started().is_none());
    assert!(writes_by(&store, "b").is_empty());
    assert!(b.result().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_invalid_config_is_refused_before_campaigning() {
    let store = Arc::new(Mutex::new(Store::default()));
    let lock = FakeLock {
        id: "a".into(),
        store: store.clone(),
        mode: Arc::new(Mutex::new(Mode::Normal)),
        latency: Arc::new(Mutex::new(Duration::ZERO)),
        watching: false,
    };
    let cfg = ElectionConfig {
        renew_deadline: LD,
        ..config("a")
    };
    let called = Arc::new(AtomicU32::new(0));
    let r = run_elected_with(&lock, cfg, futures::future::pending::<()>(), {
        let called = called.clone();
        move |_| async move {
            called.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
    assert!(matches!(r, Err(Error::ElectionConfig(_))));
    assert_eq!(called.load(Ordering::Relaxed), 0);
    assert!(store.lock().expect("lock").reads.is_empty());
}

/// Compile-time: what the binary spawns or shares is Send (and Sync where shared).
#[allow(dead_code)]
fn public_futures_and_handles_are_send(client: kube::Client) {
    fn send<T: Send>(_: T) {}
    fn send_sync<T: Send + Sync>(_: &T) {}
    send(run_elected(
        client.clone(),
        ElectionConfig::new("kube-system", "kube-scheduler"),
        async {},
        |leading: Leading| async move { leading.lost().await },
    ));
    send(crate::serve::serve_health(
        "127.0.0.1:0".parse().expect("addr"),
        Metrics::new(),
        || true,
        async {},
    ));
    send(crate::client::client(None, "x"));
    send_sync(&crate::events::Recorder::new(client, "x", None));
    send_sync(&Metrics::new());
    send_sync(&Leading::always());
}
